"""Gateway brain at scale: 5,000 HTTPRoutes / 20,000 rules on one Gateway.

Measures, on one process:

- validation: the objects through the pydantic models (what loading costs
  after YAML parsing; reported, not a target);
- build: `build_world(state)` — attachment, status, and the compiled, ordered,
  indexed route table (target <= 3 s);
- match: `match_http` per request over a mix of hits on exact hostnames,
  wildcard hostnames and hostname-less routes, header/method/query matches and
  misses (target p99 <= 50 us).

Run: .venv/bin/python benchmarks/gateway_match.py [--routes 5000] [--requests 100000]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from typing import Any

from netlet.cluster.state import ClusterState
from netlet.gateway.build import build_world
from netlet.gateway.match import Action, match_http
from netlet.gateway.table import Request
from netlet.resources.core import Namespace, Pod, Service
from netlet.resources.gateway_api import Gateway, GatewayClass, HTTPRoute

NAMESPACES = 50
SERVICES = 100
RULES_PER_ROUTE = 4
BUILD_TARGET_S = 3.0
P99_TARGET_US = 50.0


def objects(routes: int, rnd: random.Random) -> list[Any]:
    out: list[Any] = [
        GatewayClass.model_validate(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": "netlet"},
                "spec": {"controllerName": "netlet.dev/gateway-controller"},
            }
        ),
        Gateway.model_validate(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": {"name": "gw", "namespace": "infra"},
                "spec": {
                    "gatewayClassName": "netlet",
                    "listeners": [
                        {
                            "name": "http",
                            "port": 80,
                            "protocol": "HTTP",
                            "allowedRoutes": {"namespaces": {"from": "All"}},
                        }
                    ],
                },
            }
        ),
    ]
    for n in range(NAMESPACES):
        out.append(
            Namespace.model_validate(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns{n}"}}
            )
        )
    for s in range(SERVICES):
        ns = f"ns{s % NAMESPACES}"
        out.append(
            Service.model_validate(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": f"svc{s}", "namespace": ns},
                    "spec": {
                        "selector": {"app": f"svc{s}"},
                        "ports": [{"port": 80, "targetPort": 8080}],
                    },
                }
            )
        )
        for p in range(2):
            out.append(
                Pod.model_validate(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": f"svc{s}-{p}",
                            "namespace": ns,
                            "labels": {"app": f"svc{s}"},
                        },
                        "spec": {"containers": [{"name": "c", "image": "x"}]},
                        "status": {"podIP": f"10.{s // 250}.{s % 250}.{p + 1}"},
                    }
                )
            )
    for r in range(routes):
        ns_index = r % NAMESPACES
        service = f"svc{(ns_index + NAMESPACES * rnd.randrange(SERVICES // NAMESPACES))}"
        kind = r % 10
        if kind < 7:
            hostnames = [f"app{r % 1000}.example.com"]  # 5 routes share each precise host
        elif kind < 9:
            hostnames = [f"*.team{r % 50}.example.com"]
        else:
            hostnames = []
        rules = []
        for i in range(RULES_PER_ROUTE):
            base = f"/r{r}/p{i}"
            match: dict[str, Any] = {
                "path": {"type": "PathPrefix" if i % 2 else "Exact", "value": base}
            }
            if i == 1:
                match["method"] = "POST"
            if i == 2:
                match["headers"] = [{"name": "x-version", "value": "v2"}]
            if i == 3:
                match["queryParams"] = [{"name": "debug", "value": "1"}]
            rules.append({"matches": [match], "backendRefs": [{"name": service, "port": 80}]})
        out.append(
            HTTPRoute.model_validate(
                {
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "HTTPRoute",
                    "metadata": {
                        "name": f"route{r}",
                        "namespace": f"ns{ns_index}",
                        "creationTimestamp": f"2026-01-01T00:{(r // 60) % 60:02d}:{r % 60:02d}Z",
                    },
                    "spec": {
                        "parentRefs": [{"name": "gw", "namespace": "infra"}],
                        "hostnames": hostnames,
                        "rules": rules,
                    },
                }
            )
        )
    return out


def requests(routes: int, count: int, rnd: random.Random) -> list[Request]:
    out = []
    for _ in range(count):
        r = rnd.randrange(routes)
        i = rnd.randrange(RULES_PER_ROUTE)
        kind = r % 10
        if kind < 7:
            host = f"app{r % 1000}.example.com"
        elif kind < 9:
            host = f"svc{rnd.randrange(100)}.team{r % 50}.example.com"
        else:
            host = f"other{rnd.randrange(1000)}.example.net"
        path = f"/r{r}/p{i}" + ("/sub/item" if i % 2 else "")
        method = "POST" if i == 1 else "GET"
        headers: tuple[tuple[str, str], ...] = (("x-version", "v2"),) if i == 2 else ()
        query = "debug=1" if i == 3 else ""
        if rnd.random() < 0.1:  # misses: unknown path or unmet condition
            path = f"/missing/{rnd.randrange(10**6)}"
        out.append(
            Request(method, path, host, 80, "http", query, (*headers, ("user-agent", "bench")))
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rnd = random.Random(args.seed)

    start = time.perf_counter()
    objs = objects(args.routes, rnd)
    validation = time.perf_counter() - start
    state = ClusterState()
    for obj in objs:
        state.apply(obj)

    gc.collect()
    start = time.perf_counter()
    world = build_world(state)
    build = time.perf_counter() - start
    program = world.programs["infra/gw"]
    (listener,) = program.listeners
    assert listener.http is not None
    entries = len(listener.http.entries)
    accepted = sum(1 for r in world.routes if r.parents and r.parents[0].accepted)

    reqs = requests(args.routes, args.requests, rnd)
    for request in reqs[:2000]:  # warm caches
        match_http(program, request)
    gc.collect()
    gc.disable()
    timings = []
    hits = 0
    clock = time.perf_counter_ns
    for request in reqs:
        t0 = clock()
        decision = match_http(program, request)
        timings.append(clock() - t0)
        hits += decision.action == Action.FORWARD
    gc.enable()
    timings.sort()

    def pct(p: float) -> float:
        return timings[min(len(timings) - 1, int(p / 100 * len(timings)))] / 1000

    p50, p99, p999 = pct(50), pct(99), pct(99.9)
    mean = statistics.fmean(timings) / 1000
    print(
        f"routes: {args.routes} ({accepted} accepted), rules: {args.routes * RULES_PER_ROUTE}, table entries: {entries}"
    )
    print(f"validation of {len(objs)} objects (pydantic): {validation:.2f} s")
    print(
        f"build_world (attach, status, compile, index): {build:.2f} s  target <= {BUILD_TARGET_S:.1f} s  ratio {build / BUILD_TARGET_S:.2f}"
    )
    print(f"match_http over {len(reqs)} requests ({hits} forwarded, {len(reqs) - hits} 404):")
    print(f"  mean {mean:.1f} us  p50 {p50:.1f} us  p99 {p99:.1f} us  p99.9 {p999:.1f} us")
    print(
        f"  p99 target <= {P99_TARGET_US:.0f} us  ratio {p99 / P99_TARGET_US:.2f}  throughput {1e6 / mean:,.0f} req/s"
    )


if __name__ == "__main__":
    main()
