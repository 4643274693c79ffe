"""Policy engine at scale: compile, class-level matrix, single verdicts, memory.

Generates a cluster of 5,000 pods (100 namespaces x 5 Deployments x 10
replicas, 25 nodes) with 2,000 NetworkPolicies (20 per namespace: default
deny, DNS, per-app ingress and egress with named ports, namespace selectors,
ipBlocks with except, endPort ranges, SCTP), 50 Admin-tier policies (40
ClusterNetworkPolicies + 10 AdminNetworkPolicies: Deny/Accept/Pass on
namespaces, pods, networks, nodes) and 10 Baseline-tier policies (9
ClusterNetworkPolicies + the BaselineAdminNetworkPolicy), then prints:

- load time (the pipeline, for reference) and compile time (program + engine);
- the full class-level matrix on 3 ports (classes + rows), and the number of
  classes against pods (the ratio that makes it fast);
- single-verdict latency after compile (random pod pairs, with explanation);
- peak RSS of the process.

Targets (2-core machine): matrix <= 5 s, verdict <= 50 us, RSS <= 1.5 GiB.

    .venv/bin/python benchmarks/policy.py [--namespaces 100] [--verdicts 5000]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time

from netlet.cluster.build import load_text
from netlet.policy.classes import build_classes
from netlet.policy.compile import compile_program
from netlet.policy.matrix import compute_matrix, parse_probe
from netlet.policy.verdict import Endpoint, PolicyEngine

MATRIX_TARGET_S = 5.0
VERDICT_TARGET_US = 50.0
RSS_TARGET_GIB = 1.5

APPS = (
    # app, tier, (port name, number, protocol)
    ("web", "frontend", (("http", 8080, "TCP"),)),
    ("api", "backend", (("http", 8080, "TCP"), ("grpc", 9090, "TCP"))),
    ("worker", "backend", (("metrics", 9100, "TCP"), ("sig", 7000, "SCTP"))),
    ("db", "data", (("postgres", 5432, "TCP"),)),
    ("cache", "data", (("redis", 6379, "TCP"),)),
)
ENVS = ("prod", "staging", "dev")


def _namespace(i: int) -> str:
    return f"ns-{i:03d}"


def cluster_yaml(namespaces: int, replicas: int, worst_case: bool = False) -> str:
    docs: list[str] = []
    # A node's /24 holds 253 pods: keep them at most 200 per node.
    for n in range(max(10, -(-namespaces * replicas * len(APPS) // 200))):
        docs.append(
            f"apiVersion: v1\nkind: Node\nmetadata:\n  name: node-{n}\n"
            f"  labels: {{zone: z{n % 3}, role: {'infra' if n < 2 else 'worker'}}}\n"
        )
    for i in range(namespaces):
        ns = _namespace(i)
        team = "platform" if i < 5 else f"t{i % 10}"
        docs.append(
            f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
            f"  labels: {{team: {team}, env: {ENVS[i % 3]}, gateway: '{str(i % 7 == 0).lower()}'}}\n"
        )
        for app, tier, ports in APPS:
            port_lines = "".join(
                f"        - {{name: {name}, containerPort: {number}, protocol: {proto}}}\n"
                for name, number, proto in ports
            )
            docs.append(
                f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {app}, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {app}}}}}
  template:
    metadata: {{labels: {{app: {app}, tier: {tier}, version: v{1 + (i + len(app)) % 2}}}}}
    spec:
      containers:
      - name: main
        image: example/{app}:1
        ports:
{port_lines}"""
            )
        docs.extend(network_policies(i, namespaces, worst_case))
    docs.extend(admin_policies(namespaces))
    docs.extend(baseline_policies())
    return "---\n".join(docs)


def _np(ns: str, name: str, body: str) -> str:
    return (
        f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        f"metadata: {{name: {name}, namespace: {ns}}}\nspec:\n{body}"
    )


def network_policies(i: int, namespaces: int, worst_case: bool = False) -> list[str]:
    """20 policies for namespace i. `worst_case`: the ipBlock carving cuts every node's pod
    range into three atoms, so (nearly) every pod becomes its own class."""
    ns = _namespace(i)
    peer_ns = _namespace((i + 1) % namespaces)
    octet = i % 64  # carves node-0's or node-1's pod range out of the pod CIDR
    bodies = [
        ("default-deny", "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n"),
        (
            "allow-dns",
            "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n"
            "    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}\n"
            "    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]\n",
        ),
        (
            "web-ingress",
            "  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from:\n"
            "    - namespaceSelector: {matchLabels: {gateway: 'true'}}\n"
            "    - ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 192.168.0.0/16]}\n"
            "    ports: [{port: http}]\n",
        ),
        (
            "api-ingress",
            "  podSelector: {matchLabels: {app: api}}\n  ingress:\n  - from:\n"
            "    - podSelector: {matchLabels: {app: web}}\n    ports: [{port: http}, {port: grpc}]\n"
            "  - from:\n    - namespaceSelector: {matchLabels: {team: platform}}\n"
            "      podSelector: {matchExpressions: [{key: tier, operator: In, values: [backend, frontend]}]}\n",
        ),
        (
            "db-ingress",
            "  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from:\n"
            "    - podSelector: {matchLabels: {app: api}}\n    - podSelector: {matchLabels: {app: worker}}\n"
            "    ports: [{port: 5432}]\n",
        ),
        (
            "cache-ingress",
            "  podSelector: {matchLabels: {app: cache}}\n  ingress:\n  - from:\n"
            "    - podSelector: {matchExpressions: [{key: app, operator: In, values: [api, worker]}]}\n"
            "    ports: [{port: redis}]\n",
        ),
        (
            "worker-ingress",
            "  podSelector: {matchLabels: {app: worker}}\n  ingress:\n  - from:\n"
            "    - namespaceSelector: {matchLabels: {team: platform}}\n    ports: [{port: metrics}]\n",
        ),
        (
            "web-egress",
            "  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Egress]\n  egress:\n"
            "  - to:\n    - podSelector: {matchLabels: {app: api}}\n    ports: [{port: http}]\n",
        ),
        (
            "api-egress",
            "  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress:\n"
            "  - to:\n    - podSelector: {matchLabels: {tier: data}}\n"
            "    ports: [{port: 5432}, {port: 6379}]\n"
            "  - to:\n    - ipBlock: {cidr: 203.0.113.0/24}\n    ports: [{port: 443}]\n",
        ),
        (
            "worker-egress",
            "  podSelector: {matchLabels: {app: worker}}\n  policyTypes: [Egress]\n  egress:\n"
            "  - to:\n    - podSelector: {matchLabels: {app: db}}\n"
            "  - to:\n    - ipBlock: {cidr: 198.51.100.0/24, except: [198.51.100.128/25]}\n",
        ),
        (
            "cross-ns-api",
            f"  podSelector: {{matchLabels: {{app: api}}}}\n  ingress:\n  - from:\n"
            f"    - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {peer_ns}}}}}\n"
            f"      podSelector: {{matchLabels: {{app: api}}}}\n    ports: [{{port: 9090}}]\n",
        ),
        (
            "cross-ns-egress",
            f"  podSelector: {{matchLabels: {{app: api}}}}\n  policyTypes: [Egress]\n  egress:\n"
            f"  - to:\n    - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {peer_ns}}}}}\n"
            f"      podSelector: {{matchLabels: {{app: api}}}}\n    ports: [{{port: grpc}}]\n",
        ),
        (
            "node-ports",
            "  podSelector: {matchLabels: {tier: frontend}}\n  ingress:\n"
            "  - ports: [{port: 30000, endPort: 32767}]\n",
        ),
        (
            "sctp-signals",
            "  podSelector: {matchLabels: {app: worker}}\n  ingress:\n  - from:\n"
            "    - podSelector: {matchLabels: {app: worker}}\n    ports: [{protocol: SCTP, port: sig}]\n",
        ),
        (
            "pod-cidr-block",
            "  podSelector: {matchLabels: {app: cache}}\n  ingress:\n  - from:\n"
            + (
                f"    - ipBlock: {{cidr: 10.244.{octet}.0/24, except: [10.244.{octet}.128/26]}}\n"
                if worst_case
                else f"    - ipBlock: {{cidr: 10.244.0.0/16, except: [10.244.{octet % 2}.0/24]}}\n"
            ),
        ),
        (
            "version-canary",
            "  podSelector: {matchLabels: {version: v2}}\n  ingress:\n  - from:\n"
            "    - podSelector: {matchExpressions: [{key: version, operator: NotIn, values: [v1]}]}\n",
        ),
        (
            "monitoring",
            "  podSelector: {}\n  ingress:\n  - from:\n"
            "    - namespaceSelector: {matchLabels: {team: platform}}\n"
            "      podSelector: {matchLabels: {app: worker}}\n    ports: [{port: 9100}, {port: 9090}]\n",
        ),
        (
            "env-peers",
            f"  podSelector: {{matchLabels: {{tier: backend}}}}\n  ingress:\n  - from:\n"
            f"    - namespaceSelector: {{matchLabels: {{env: {ENVS[i % 3]}}}}}\n"
            f"      podSelector: {{matchLabels: {{tier: backend}}}}\n    ports: [{{protocol: TCP}}]\n",
        ),
        (
            "udp-telemetry",
            "  podSelector: {matchLabels: {tier: backend}}\n  policyTypes: [Egress]\n  egress:\n"
            "  - to:\n    - ipBlock: {cidr: 100.64.0.0/10}\n    ports: [{protocol: UDP, port: 8125}]\n",
        ),
        (
            "same-ns",
            "  podSelector: {matchLabels: {tier: data}}\n  ingress:\n  - from:\n    - podSelector: {}\n",
        ),
    ]
    return [_np(ns, name, body) for name, body in bodies]


def admin_policies(namespaces: int) -> list[str]:
    docs = []
    for k in range(40):
        env = ENVS[k % 3]
        kind = k % 5
        if kind == 0:
            body = (
                f"  ingress:\n  - name: monitoring\n    action: Accept\n    from:\n"
                f"    - namespaces: {{matchLabels: {{team: platform}}}}\n"
                f"    protocols: [{{tcp: {{destinationPort: {{number: {9100 + k}}}}}}}]\n"
            )
        elif kind == 1:
            body = (
                "  egress:\n  - name: metadata\n    action: Deny\n    to:\n"
                "    - networks: [169.254.169.254/32]\n"
                f"  - name: pass-team\n    action: Pass\n    to:\n"
                f"    - namespaces: {{matchLabels: {{team: t{k % 10}}}}}\n"
            )
        elif kind == 2:
            body = (
                f"  ingress:\n  - name: no-dev\n    action: Deny\n    from:\n"
                f"    - namespaces: {{matchLabels: {{env: dev}}}}\n"
                f"    protocols: [{{tcp: {{destinationPort: {{range: {{start: {5000 + k}, end: {5100 + k}}}}}}}}}]\n"
            )
        elif kind == 3:
            body = (
                "  egress:\n  - name: nodes\n    action: Accept\n    to:\n"
                "    - nodes: {matchLabels: {role: infra}}\n"
                "    protocols: [{tcp: {destinationPort: {number: 10250}}}]\n"
            )
        else:
            body = (
                f"  ingress:\n  - name: pass-db\n    action: Pass\n    from:\n"
                f"    - pods: {{namespaceSelector: {{matchLabels: {{env: {env}}}}}, "
                f"podSelector: {{matchLabels: {{app: api}}}}}}\n"
                f"    protocols: [{{destinationNamedPort: postgres}}]\n"
            )
        subject = (
            f"namespaces: {{matchLabels: {{env: {env}}}}}"
            if k % 2
            else f"pods: {{namespaceSelector: {{matchLabels: {{env: {env}}}}}, podSelector: {{matchLabels: {{tier: backend}}}}}}"
        )
        docs.append(
            f"apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"
            f"metadata: {{name: admin-{k:02d}}}\nspec:\n  tier: Admin\n  priority: {k * 10}\n"
            f"  subject:\n    {subject}\n{body}"
        )
    for k in range(10):
        docs.append(
            f"""apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {{name: anp-{k:02d}}}
spec:
  priority: {500 + k}
  subject:
    namespaces: {{matchLabels: {{team: t{k}}}}}
  ingress:
  - name: allow-platform
    action: Allow
    from:
    - namespaces: {{matchLabels: {{team: platform}}}}
    ports: [{{portNumber: {{protocol: TCP, port: 8080}}}}]
  egress:
  - name: deny-cidr
    action: Deny
    to:
    - networks: [192.0.2.0/24]
"""
        )
    return docs


def baseline_policies() -> list[str]:
    docs = []
    for k in range(9):
        docs.append(
            f"""apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {{name: baseline-{k}}}
spec:
  tier: Baseline
  priority: {k * 10}
  subject:
    namespaces: {{matchLabels: {{team: t{k}}}}}
  ingress:
  - name: same-team
    action: Accept
    from:
    - namespaces: {{matchLabels: {{team: t{k}}}}}
  - name: others
    action: Deny
    from:
    - namespaces: {{}}
"""
        )
    docs.append(
        """apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject:
    namespaces: {}
  egress:
  - name: deny-external
    action: Deny
    to:
    - networks: [0.0.0.0/0]
"""
    )
    return docs


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--verdicts", type=int, default=5000)
    parser.add_argument(
        "--worst-case",
        action="store_true",
        help="carve every node's pod range with ipBlocks: about one class per pod",
    )
    args = parser.parse_args()

    text = cluster_yaml(args.namespaces, args.replicas, args.worst_case)
    started = time.perf_counter()
    result = load_text(text, name="bench.yaml")
    load_s = time.perf_counter() - started
    if not result.ok:
        raise SystemExit("\n".join(str(d) for d in result.errors[:5]))
    state = result.state

    started = time.perf_counter()
    program = compile_program(state)
    engine = PolicyEngine(program)
    compile_s = time.perf_counter() - started
    pods = [p for p in program.pods if not p.host_network]
    policies = {t.tier.value: len(t.policies) for t in program.tiers}

    probes = [parse_probe("8080/TCP"), parse_probe("5432/TCP"), parse_probe("53/UDP")]
    started = time.perf_counter()
    index = build_classes(program)
    matrix = compute_matrix(engine, index, probes)
    matrix_s = time.perf_counter() - started
    allowed = sum(bin(row).count("1") for rows in matrix.rows for row in rows)

    started = time.perf_counter()
    declared_index = build_classes(program, with_declared_ports=True)
    declared = compute_matrix(engine, declared_index)
    declared_s = time.perf_counter() - started

    rng = random.Random(7)
    endpoints = [engine.pod_endpoint(p.key) for p in pods]
    by_ns: dict[str, list[Endpoint]] = {}
    for endpoint in endpoints:
        assert endpoint.pod is not None
        by_ns.setdefault(endpoint.pod.namespace, []).append(endpoint)
    samples = []
    for k in range(args.verdicts):
        src = rng.choice(endpoints)
        assert src.pod is not None
        # Half the pairs inside one namespace, where policies allow most.
        dst = rng.choice(by_ns[src.pod.namespace] if k % 2 else endpoints)
        samples.append((src, dst, rng.choice(probes)))
    timings = []
    denied = 0
    for src, dst, probe in samples:
        t0 = time.perf_counter()
        verdict = engine.verdict(src, dst, probe.protocol, probe.port)
        timings.append(time.perf_counter() - t0)
        denied += not verdict.allowed
    mean_us = statistics.fmean(timings) * 1e6
    p99_us = sorted(timings)[int(len(timings) * 0.99)] * 1e6
    naive_estimate_s = statistics.fmean(timings) * len(pods) ** 2 * len(probes)
    rss = rss_gib()

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(
        f"cluster: {len(pods)} pods, {args.namespaces} namespaces, {len(program.nodes)} nodes, "
        f"policies per tier {policies}"
    )
    print(f"load (pipeline, reference): {load_s:.2f} s")
    print(f"compile (program + engine): {compile_s:.2f} s")
    print(
        f"class-level matrix on 3 ports: {matrix_s:.2f} s "
        f"(target <= {MATRIX_TARGET_S:.0f} s: {mark(matrix_s <= MATRIX_TARGET_S)}); "
        f"{len(index.classes)} classes for {len(index.endpoints)} pods "
        f"({len(index.endpoints) / max(1, len(index.classes)):.1f} pods/class), "
        f"{allowed} allowed class pairs"
    )
    print(
        f"matrix on every declared container port ({len(declared.probes)} ports, the CLI's "
        f"default): {declared_s:.2f} s, {len(declared_index.classes)} classes"
    )
    print(
        f"single verdict: mean {mean_us:.1f} us, p99 {p99_us:.1f} us over {len(samples)} "
        f"random pairs ({denied} denied) (target <= {VERDICT_TARGET_US:.0f} us: "
        f"{mark(mean_us <= VERDICT_TARGET_US)})"
    )
    print(
        f"naive all-pairs walk estimate: {naive_estimate_s:.0f} s "
        f"(pods^2 x ports x verdict); class matrix is {naive_estimate_s / matrix_s:.0f}x faster"
    )
    print(
        f"peak RSS: {rss:.2f} GiB (target <= {RSS_TARGET_GIB} GiB: {mark(rss <= RSS_TARGET_GIB)})"
    )


if __name__ == "__main__":
    main()
