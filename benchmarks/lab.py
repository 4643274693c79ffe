"""Node lab timings: bring up and tear down 100 pods on 2 nodes, probe 100x100 pairs.

Targets (issue 5): up <= 30 s, probe of 100x100 pairs <= 20 s on the 2-core
machine. Needs root (it builds a real lab named `bench`, removed at the end even
on failure). Bounded: one lab, 100 pods, each probe pass is 10,000 connections
with at most 256 in flight and a 1 s timeout per phase.

    sudo .venv/bin/python benchmarks/lab.py [--pods 100] [--http]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from netlet.cluster.build import load_text
from netlet.dataplane.lab.lab import Lab, down
from netlet.dataplane.lab.probe import Outcome

UP_TARGET = 30.0
PROBE_TARGET = 20.0


def manifest(pods: int) -> str:
    return f"""
apiVersion: v1
kind: Node
metadata: {{name: node-a}}
---
apiVersion: v1
kind: Node
metadata: {{name: node-b}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: bench, namespace: bench}}
spec:
  replicas: {pods}
  selector: {{matchLabels: {{app: bench}}}}
  template:
    metadata: {{labels: {{app: bench}}}}
    spec:
      containers:
      - name: c
        ports:
        - {{name: http, containerPort: 8080}}
        - {{name: raw, containerPort: 7000}}
        - {{name: dns, containerPort: 5353, protocol: UDP}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--lab", default="bench")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("benchmarks/lab.py needs root (it builds network namespaces)", file=sys.stderr)
        return 2
    result = load_text(manifest(args.pods))
    assert result.ok, [str(d) for d in result.errors]
    state = result.state
    print(f"node lab benchmark: {args.pods} pods on 2 nodes, {os.cpu_count()} cores")
    down(args.lab)  # a previous interrupted run
    rows: list[tuple[str, float, float | None]] = []
    try:
        start = time.monotonic()
        lab = Lab.up(state, args.lab)
        up = time.monotonic() - start
        rows.append(("up (namespaces, CNI ADD, workloads ready)", up, UP_TARGET))
        again_start = time.monotonic()
        Lab.up(state, args.lab)
        rows.append(("up again (nothing to do)", time.monotonic() - again_start, None))
        sources = [p.key for p in lab.plan.pods]
        for label, ports in (("TCP", "raw"), ("UDP", "dns"), ("HTTP", "http")):
            start = time.monotonic()
            matrix = lab.probe(to="pods", ports=ports, sources=sources)
            took = time.monotonic() - start
            pairs = len(matrix.results)
            ok = sum(1 for r in matrix.results if r.outcome == Outcome.CONNECTED)
            rows.append(
                (
                    f"probe {len(sources)}x{len(matrix.targets)} {label} ({pairs} pairs, {ok} connected)",
                    took,
                    PROBE_TARGET,
                )
            )
            if ok != pairs:
                print(f"warning: {pairs - ok} {label} probes did not connect: {matrix.summary()}")
    finally:
        start = time.monotonic()
        report = down(args.lab)
        rows.append(
            (
                f"down (CNI DEL, {len(report.namespaces)} namespaces, verified)",
                time.monotonic() - start,
                None,
            )
        )
    width = max(len(r[0]) for r in rows)
    for label, seconds, target in rows:
        ratio = f"   {seconds / target:5.2f} of target {target:.0f} s" if target else ""
        print(f"{label:<{width}}  {seconds:7.2f} s{ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
