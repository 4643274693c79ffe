"""Load + validate + index throughput on 10,000 mixed objects.

Generates a multi-document YAML stream of realistic objects (Deployments,
Services, Pods, NetworkPolicies, ConfigMaps-free: only kinds netlet models,
HTTPRoutes, Namespaces), writes it to a temporary file, then times
`load_cluster` end to end (read, parse, decode/validate, expand workloads,
allocate addresses, index). Prints objects/s for the whole pipeline and for
parsing alone as the baseline measured in the same run.

    .venv/bin/python benchmarks/load.py [--objects 10000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import yaml

from netlet.cluster.build import load_cluster
from netlet.resources.loading import read_sources

TARGET = 10_000  # objects/s


def generate(count: int) -> str:
    """`count` documents: per namespace 1 Namespace, then a rotating mix."""
    docs: list[str] = []
    ns_count = max(1, count // 100)
    i = 0
    while len(docs) < count:
        ns = f"team-{i % ns_count}"
        if i < ns_count:
            docs.append(
                f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
                f"  labels:\n    team: t{i % 7}\n    env: prod\n"
            )
            i += 1
            continue
        kind = i % 5
        name = f"app-{i}"
        if kind == 0:
            docs.append(
                f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
  labels: {{app: {name}, tier: web}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}, tier: web, version: v1}}
    spec:
      containers:
      - name: main
        image: registry.example.com/{name}:1.0
        ports:
        - name: http
          containerPort: 8080
        - name: metrics
          containerPort: 9090
"""
            )
        elif kind == 1:
            docs.append(
                f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}
spec:
  selector: {{app: app-{i - 1}}}
  ports:
  - name: http
    port: 80
    targetPort: http
  - name: metrics
    port: 9090
    targetPort: metrics
"""
            )
        elif kind == 2:
            docs.append(
                f"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
  namespace: {ns}
spec:
  podSelector:
    matchLabels: {{app: app-{i - 2}}}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {{team: t{i % 7}}}
      podSelector:
        matchLabels: {{tier: web}}
    - ipBlock:
        cidr: 10.0.0.0/8
        except: [10.1.0.0/16]
    ports:
    - port: http
    - port: 9090
      protocol: TCP
"""
            )
        elif kind == 3:
            docs.append(
                f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  labels: {{app: {name}, tier: batch}}
spec:
  containers:
  - name: main
    image: busybox
    ports:
    - containerPort: 7000
      protocol: UDP
"""
            )
        else:
            docs.append(
                f"""apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  namespace: {ns}
spec:
  parentRefs:
  - name: gw
    namespace: infra
  hostnames: [{name}.example.com]
  rules:
  - matches:
    - path: {{type: PathPrefix, value: /api}}
      headers:
      - {{name: x-version, value: v1}}
    backendRefs:
    - {{name: app-{i - 3}, port: 80}}
"""
            )
        i += 1
    return "---\n".join(docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    text = generate(args.objects)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "objects.yaml")
        with open(path, "w") as handle:
            handle.write(text)
        size = len(text.encode())
        print(f"input: {args.objects} documents, {size / 2**20:.1f} MiB")

        libyaml = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        start = time.perf_counter()
        list(yaml.load_all(text, Loader=libyaml))
        t_libyaml = time.perf_counter() - start

        parse_times, load_times = [], []
        result = None
        for _ in range(args.rounds):
            start = time.perf_counter()
            _docs, _diags = read_sources([path])
            parse_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = load_cluster([path])
            load_times.append(time.perf_counter() - start)
        assert result is not None
        if result.errors:
            raise SystemExit(f"benchmark input did not load cleanly: {result.errors[0]}")
        objects = sum(1 for _ in result.state.all_objects())
        t_parse, t_load = min(parse_times), min(load_times)
        rate = args.objects / t_load
        print(
            f"parse only (netlet reader, best of {args.rounds}): {t_parse:.3f} s "
            f"= {args.objects / t_parse:,.0f} docs/s"
        )
        print(
            f"parse only (PyYAML libyaml, baseline):  {t_libyaml:.3f} s "
            f"= {args.objects / t_libyaml:,.0f} docs/s"
        )
        print(
            f"load+validate+expand+allocate+index:    {t_load:.3f} s "
            f"= {rate:,.0f} objects/s  ({objects} objects in the store)"
        )
        print(f"pipeline / libyaml-parse-alone time ratio: {t_load / t_libyaml:.2f}")
        verdict = "PASS" if rate >= TARGET else "FAIL"
        print(f"target >= {TARGET:,} objects/s: {verdict}")


if __name__ == "__main__":
    main()
