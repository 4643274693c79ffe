"""Service table build and incremental update, at 1,000 and 10,000 Services.

For each size: N Services (80% ClusterIP, 10% NodePort, 10% LoadBalancer with
externalTrafficPolicy Local and a source range) with one EndpointSlice of 10
endpoints each (so 10 x N endpoints) on 2 nodes, plus 100 pods selected by 10
selector Services. Prints:

- full build: `ServiceTableBuilder(state, node)` from the ClusterState (index
  the slices, merge, categorize, build every entry and the persistent maps);
- one EndpointSlice change: apply a modified slice to the ClusterState and
  sync the builder (event -> recompute one Service -> new table), median and
  p95 over 200 changes;
- one new Service with its EndpointSlice, same;
- one new selector Service whose slices the EndpointSlice controller writes
  from 10 existing pods, same;
- the ratio of each incremental figure at the largest size to the smallest
  (targets: full build <= 3 s at 10,000 Services / 100,000 endpoints;
  incremental <= 5 ms and independent of size, i.e. ratio ~1).

Setup objects are frozen out of the garbage collector before timing (as a
long-running proxy's steady state would be).

    .venv/bin/python benchmarks/services.py [--sizes 1000 10000] [--changes 200]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import statistics
import time
from typing import Any

from netlet.cluster.state import ClusterState
from netlet.resources.core import EndpointSlice, Node, Pod, Service
from netlet.services.builder import ServiceTableBuilder, build_table
from netlet.services.table import ServiceName

ENDPOINTS_PER_SERVICE = 10
SERVICE_BASE = int(ipaddress.ip_address("10.96.0.0"))
POD_BASE = int(ipaddress.ip_address("10.244.0.0"))
FULL_TARGET_S = 3.0
INCREMENTAL_TARGET_MS = 5.0


def _node(name: str, ip: str, zone: str) -> Node:
    return Node.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
        }
    )


def _service(
    i: int, selector: dict[str, str] | None = None, namespace: str | None = None
) -> Service:
    spec: dict[str, Any] = {
        "clusterIP": str(ipaddress.ip_address(SERVICE_BASE + 10 + i)),
        "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
    }
    kind = i % 10
    if kind == 8:
        spec["type"] = "NodePort"
        spec["ports"][0]["nodePort"] = 30000 + i % 2768
    elif kind == 9:
        spec["type"] = "LoadBalancer"
        spec["externalTrafficPolicy"] = "Local"
        spec["healthCheckNodePort"] = 30000 + (i + 1) % 2768
        spec["loadBalancerSourceRanges"] = ["203.0.113.0/24"]
        spec["ports"][0]["nodePort"] = 30000 + i % 2768
    if selector is not None:
        spec["selector"] = selector
    data: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"svc-{i}", "namespace": namespace or f"ns-{i % 50}"},
        "spec": spec,
    }
    if kind == 9:
        data["status"] = {
            "loadBalancer": {"ingress": [{"ip": str(ipaddress.ip_address(0xC0000200 + i % 250))}]}
        }
    return Service.model_validate(data)


def _slice(i: int, generation: int = 0) -> EndpointSlice:
    endpoints = []
    for j in range(ENDPOINTS_PER_SERVICE):
        ip = str(ipaddress.ip_address(POD_BASE + 1 + i * ENDPOINTS_PER_SERVICE + j))
        ready = not (generation and j == generation % ENDPOINTS_PER_SERVICE)
        endpoints.append(
            {
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": ready, "terminating": False},
                "nodeName": "node-a" if j % 2 else "node-b",
                "zone": "zone-a" if j % 2 else "zone-b",
            }
        )
    return EndpointSlice.model_validate(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"svc-{i}-abcde",
                "namespace": f"ns-{i % 50}",
                "labels": {"kubernetes.io/service-name": f"svc-{i}"},
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }
    )


def _pod(k: int) -> Pod:
    ip = str(ipaddress.ip_address(int(ipaddress.ip_address("10.250.0.0")) + k))
    return Pod.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"pod-{k}",
                "namespace": "ns-0",
                "labels": {"group": f"g{k // 10}"},
            },
            "spec": {
                "nodeName": "node-a" if k % 2 else "node-b",
                "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}],
            },
            "status": {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    )


def make_state(services: int) -> ClusterState:
    state = ClusterState()
    state.apply(_node("node-a", "172.18.0.2", "zone-a"))
    state.apply(_node("node-b", "172.18.0.3", "zone-b"))
    for i in range(services):
        state.apply(_service(i))
        state.apply(_slice(i))
    for k in range(100):
        state.apply(_pod(k))
    return state


def _time_ms(fn: Any, count: int) -> tuple[float, float]:
    samples = []
    for n in range(count):
        start = time.perf_counter()
        fn(n)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def run(size: int, changes: int) -> dict[str, Any]:
    state = make_state(size)
    gc.collect()
    gc.freeze()
    start = time.perf_counter()
    builder = ServiceTableBuilder(state, "node-a", follow=True)
    full = time.perf_counter() - start
    table = builder.table
    endpoints = sum(len(e.endpoints) for e in table.entries.values())

    # Precompute the new objects so only apply + sync is timed.
    changed = [_slice((n * 7919) % size, generation=n + 1) for n in range(changes)]
    new_services = [(_service(size + n), _slice(size + n)) for n in range(changes)]
    selector_services = [
        _service(2 * size + n, selector={"group": f"g{n % 10}"}, namespace="ns-0")
        for n in range(changes)
    ]

    def slice_change(n: int) -> None:
        state.apply(changed[n])
        builder.sync()

    def new_service(n: int) -> None:
        svc, es = new_services[n]
        state.apply(svc)
        state.apply(es)
        builder.sync()

    def selector_service(n: int) -> None:
        state.apply(selector_services[n])
        builder.sync()

    result = {
        "size": size,
        "endpoints": endpoints,
        "full": full,
        "slice": _time_ms(slice_change, changes),
        "service": _time_ms(new_service, changes),
        "selector": _time_ms(selector_service, changes),
    }
    # The controller path really generated endpoints, and the incremental table is exact.
    picked = builder.table.entries_of(ServiceName("ns-0", f"svc-{2 * size}"))
    assert picked and len(picked[0].cluster_endpoints) == 10, picked
    assert builder.table == build_table(state, "node-a")
    builder.close()
    gc.unfreeze()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    results = [run(size, args.changes) for size in args.sizes]
    print(
        f"{'services':>9} {'endpoints':>10} {'full build':>11}   "
        f"{'slice change ms (p50/p95)':>26} {'new Service ms':>16} {'new selector Service ms':>24}"
    )
    for r in results:
        print(
            f"{r['size']:>9,} {r['endpoints']:>10,} {r['full']:>9.2f} s   "
            f"{r['slice'][0]:>12.3f} / {r['slice'][1]:<11.3f}"
            f"{r['service'][0]:>8.3f} / {r['service'][1]:<6.3f}"
            f"{r['selector'][0]:>10.3f} / {r['selector'][1]:<8.3f}"
        )
    small, large = results[0], results[-1]
    print(f"\nratio {large['size']:,} / {small['size']:,} services (median):")
    for key, label in (
        ("slice", "EndpointSlice change"),
        ("service", "new Service"),
        ("selector", "new selector Service"),
    ):
        print(f"  {label:<22} {large[key][0] / small[key][0]:.2f}x")
    worst = max(large[k][0] for k in ("slice", "service", "selector"))
    ok_full = large["full"] <= FULL_TARGET_S
    ok_incr = worst <= INCREMENTAL_TARGET_MS
    print(
        f"\ntargets: full build <= {FULL_TARGET_S} s: {'met' if ok_full else 'MISSED'} "
        f"({large['full']:.2f} s); incremental <= {INCREMENTAL_TARGET_MS} ms: "
        f"{'met' if ok_incr else 'MISSED'} (worst median {worst:.3f} ms)"
    )


if __name__ == "__main__":
    main()
