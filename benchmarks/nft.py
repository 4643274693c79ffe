"""The nftables data plane at 100 / 1,000 / 10,000 Services (10 endpoints each), as root.

Every figure is printed next to the tool's floor measured in the same run on
the same table: one `nft -f` of a one-element transaction, an element added to
`cluster-ips` and one deleted (medians of each; an `nft -f` holding a deletion
takes 10-15 ms more: closing nft's netlink socket waits for the kernel's
RCU-deferred release, docs/nftables.md "Deletions wait for the kernel"). Prints:

- full sync: render the `netlet` table from the node's service table (fragments,
  slots) and apply it with one `nft -f` into a fresh network namespace;
- partial sync for one endpoint change: an EndpointSlice whose endpoint moves
  to a new address, through the whole path (ClusterState event -> services
  brain incremental table -> renderer update -> diff -> one `nft -f`), median
  and p95 over the changes, and the nft run alone. The move only adds (its new
  address under a spare slot); the deletions wait for a collection, timed
  apart: one forced every COLLECT_EVERY changes (it runs after the change took
  effect, off the critical path);
- policy compile + apply for 1,000 NetworkPolicies (compile the program, render
  the `netlet-policy` table, one `nft -f`);
- connection setup latency through a ClusterIP with 10 and with 10,000
  Services programmed: a client namespace opens new TCP connections to a
  ClusterIP whose endpoint is a server namespace, both routed through a node
  namespace holding the tables (median of 2,000 connects each).

Targets (issue 8): full sync of 10,000 Services <= 5 s; partial sync at 10,000
<= 100 ms and <= 1.5x the floor (checked against the one-element add, the
lower floor; the ratio to the one-element delete is printed too); latency
ratio 10,000 / 10 <= 1.2.

Everything happens in namespaces named netlet-bench-<hex>-*, deleted at the end.

    sudo .venv/bin/python benchmarks/nft.py [--sizes 100 1000 10000] [--changes 20]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from netlet.cluster.state import ClusterState
from netlet.dataplane.nft.model import Element, Family, Transaction, Verb
from netlet.dataplane.nft.policy import render_policy
from netlet.dataplane.nft.runner import NftRunner
from netlet.dataplane.nft.services import ServicesRenderer
from netlet.dataplane.nft.sync import Syncer, full_sync
from netlet.policy.compile import compile_program
from netlet.resources.core import EndpointSlice, Namespace, Node, Pod, Service
from netlet.resources.networking import NetworkPolicy
from netlet.services.builder import ServiceTableBuilder

ENDPOINTS = 10
SERVICE_BASE = int(ipaddress.ip_address("10.96.0.0"))
POD_BASE = int(ipaddress.ip_address("10.244.0.0"))
FULL_TARGET_S = 5.0
PARTIAL_TARGET_MS = 100.0
PARTIAL_FLOOR_RATIO = 1.5
LATENCY_RATIO = 1.2
CONNECTS = 2000
COLLECT_EVERY = 5  # changes between two forced collections of the deferred deletions


def node(name: str, ip: str) -> Node:
    return Node.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
        }
    )


def service(i: int) -> Service:
    spec: dict[str, Any] = {
        "clusterIP": str(ipaddress.ip_address(SERVICE_BASE + 10 + i)),
        "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
    }
    if i % 10 == 9:  # one in ten is a NodePort
        spec["type"] = "NodePort"
        spec["ports"][0]["nodePort"] = 30000 + i % 2768
    return Service.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": f"ns-{i % 50}"},
            "spec": spec,
        }
    )


def endpoint_slice(i: int, addresses: list[str] | None = None, port: int = 8080) -> EndpointSlice:
    if addresses is None:
        addresses = [
            str(ipaddress.ip_address(POD_BASE + 256 + (i * ENDPOINTS + j) % 60000))
            for j in range(ENDPOINTS)
        ]
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
            "endpoints": [
                {"addresses": [a], "conditions": {"ready": True}, "nodeName": "node-a"}
                for a in addresses
            ],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        }
    )


def services_state(size: int, first: list[str] | None = None) -> ClusterState:
    state = ClusterState()
    state.apply(node("node-a", "172.18.0.2"))
    for i in range(size):
        state.apply(service(i))
        state.apply(endpoint_slice(i, first if i == 0 and first else None))
    return state


# Namespaces ------------------------------------------------------------------------


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@contextmanager
def namespaces(*roles: str) -> Iterator[dict[str, str]]:
    prefix = f"netlet-bench-{secrets.token_hex(3)}"
    made = {role: f"{prefix}-{role}" for role in roles}
    try:
        for name in made.values():
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        yield made
    finally:
        for name in made.values():
            subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def floors_ms(
    runner: NftRunner, family: Family, table: str, count: int = 20
) -> tuple[float, float]:
    """One `nft -f` of a one-element transaction on `table`: (add, delete) medians.

    They differ: the kernel commits a deletion more slowly (about 10 ms more on this
    machine, whatever the table size), and a moved endpoint is a map key taking a
    new value, which nft can only write as a delete plus an add."""
    adds, deletes = [], []
    for k in range(count):
        elem = Element("cluster-ips", (f"10.111.{k // 250}.{k % 250 + 1}",))
        add = Transaction(family, table).add(elem)
        delete = Transaction(family, table).delete(elem)
        adds.append(timed(lambda tx=add: runner.run(tx)))  # type: ignore[misc]
        deletes.append(timed(lambda tx=delete: runner.run(tx)))  # type: ignore[misc]
    return statistics.median(adds) * 1000, statistics.median(deletes) * 1000


# Services: full and partial syncs -------------------------------------------------


def services_run(size: int, changes: int) -> dict[str, float]:
    state = services_state(size)
    gc.collect()
    gc.freeze()
    builder = ServiceTableBuilder(state, "node-a", follow=True)
    renderer = ServicesRenderer()
    with namespaces("node") as ns:
        runner = NftRunner(ns["node"])
        syncer = Syncer(runner)
        start = time.perf_counter()
        desired = renderer.full(builder.table)[Family.IP]
        render_s = time.perf_counter() - start
        # What Syncer.sync does for a first sync, step by step: plan (the full-sync
        # transaction), one nft -f, then the index the partial syncs diff against.
        plan = syncer.plan(desired)
        tx_s = time.perf_counter() - start - render_s
        apply_s = timed(lambda: runner.run(plan.tx))
        index_s = timed(lambda: syncer.commit(desired, plan))
        total_s = time.perf_counter() - start
        # Steady state of a long-running proxy: what the full sync built is old now.
        gc.collect()
        gc.freeze()
        floor_add, floor_delete = floors_ms(runner, Family.IP, "netlet")
        # One endpoint moves to a new address, back and forth.
        moved = [
            endpoint_slice(
                (n * 7919) % size,
                [
                    str(
                        ipaddress.ip_address(
                            POD_BASE + 256 + (((n * 7919) % size) * ENDPOINTS + j) % 60000
                        )
                    )
                    if j
                    else f"10.250.{n % 200}.{n // 200 + 1}"
                    for j in range(ENDPOINTS)
                ],
            )
            for n in range(changes)
        ]
        whole, nft_only, ops, deletes, collections = [], [], [], [], []
        for n in range(changes):
            start = time.perf_counter()
            state.apply(moved[n])
            diff = builder.sync()
            new = renderer.update(diff)[Family.IP]
            plan = syncer.plan(new)
            t0 = time.perf_counter()
            runner.run(plan.tx)
            nft_only.append(time.perf_counter() - t0)
            syncer.commit(new, plan)
            whole.append(time.perf_counter() - start)
            ops.append(len(plan.tx))
            deletes.append(plan.tx.count(Verb.DELETE) + plan.tx.count(Verb.FLUSH))
            if (n + 1) % COLLECT_EVERY == 0 or n == changes - 1:
                waiting = len(syncer.pending)  # moved slots and lingering hairpin pairs
                collections.append((timed(lambda: syncer.collect(force=True)), waiting))
                assert not syncer.pending
    gc.unfreeze()
    whole.sort()
    return {
        "size": size,
        "elements": desired.stats()["elements"],
        "chains": desired.stats()["chains"],
        "render_s": render_s,
        "tx_s": tx_s,
        "apply_s": apply_s,
        "index_s": index_s,
        "full_s": total_s,
        "floor_add_ms": floor_add,
        "floor_delete_ms": floor_delete,
        "partial_ms": statistics.median(whole) * 1000,
        "partial_p95_ms": whole[max(0, int(len(whole) * 0.95) - 1)] * 1000,
        "partial_nft_ms": statistics.median(nft_only) * 1000,
        "ops": statistics.median(ops),
        "deletes": sum(deletes),
        "collect_ms": statistics.median(t for t, _ in collections) * 1000,
        "collect_waiting": statistics.median(w for _, w in collections),
    }


# Policy ----------------------------------------------------------------------------


def policy_state(policies: int) -> ClusterState:
    state = ClusterState()
    state.apply(node("node-a", "172.18.0.2"))
    for n in range(20):
        state.apply(
            Namespace.model_validate(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": f"ns-{n}", "labels": {"team": f"t{n % 5}"}},
                }
            )
        )
    for k in range(400):
        ip = str(ipaddress.ip_address(POD_BASE + 10 + k))
        state.apply(
            Pod.model_validate(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"p{k}",
                        "namespace": f"ns-{k % 20}",
                        "labels": {"app": f"a{k % 40}", "tier": f"t{k % 4}"},
                    },
                    "spec": {
                        "nodeName": "node-a",
                        "containers": [
                            {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
                        ],
                    },
                    "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
                }
            )
        )
    for i in range(policies):
        state.apply(
            NetworkPolicy.model_validate(
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": {"name": f"np-{i}", "namespace": f"ns-{i % 20}"},
                    "spec": {
                        "podSelector": {"matchLabels": {"app": f"a{i % 40}"}},
                        "policyTypes": ["Ingress", "Egress"],
                        "ingress": [
                            {
                                "from": [
                                    {"podSelector": {"matchLabels": {"tier": f"t{i % 4}"}}},
                                    {"namespaceSelector": {"matchLabels": {"team": f"t{i % 5}"}}},
                                    {
                                        "ipBlock": {
                                            "cidr": f"192.168.{i % 250}.0/24",
                                            "except": [f"192.168.{i % 250}.128/25"],
                                        }
                                    },
                                ],
                                "ports": [
                                    {"port": 8000 + i % 100},
                                    {"port": "http"},
                                    {"port": 9000, "endPort": 9000 + i % 50},
                                ],
                            }
                        ],
                        "egress": [
                            {
                                "to": [{"podSelector": {}}],
                                "ports": [{"port": 53, "protocol": "UDP"}],
                            }
                        ],
                    },
                }
            )
        )
    return state


def policy_run(policies: int) -> dict[str, float]:
    state = policy_state(policies)
    with namespaces("node") as ns:
        runner = NftRunner(ns["node"])
        start = time.perf_counter()
        program = compile_program(state)
        compile_s = time.perf_counter() - start
        desired = render_policy(program, "node-a", Family.IP)
        render_s = time.perf_counter() - start - compile_s
        tx = full_sync(desired)
        apply_s = timed(lambda: runner.run(tx))
        total_s = time.perf_counter() - start
        # The floor on this table: a one-element transaction into the local-pods set.
        samples = []
        for k in range(20):
            elem = Element("local-pods", (f"10.111.0.{k + 1}",))
            samples.append(
                timed(lambda e=elem: runner.run(Transaction(Family.IP, "netlet-policy").add(e)))
            )  # type: ignore[misc]
            samples.append(
                timed(lambda e=elem: runner.run(Transaction(Family.IP, "netlet-policy").delete(e)))
            )  # type: ignore[misc]
    stats = desired.stats()
    return {
        "policies": policies,
        "compile_s": compile_s,
        "render_s": render_s,
        "apply_s": apply_s,
        "total_s": total_s,
        "floor_ms": statistics.median(samples) * 1000,
        **{f"n_{k}": v for k, v in stats.items()},
    }


# Latency ---------------------------------------------------------------------------

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.244.0.3", 8080)); s.listen(512)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()
"""

CLIENT = """
import socket, statistics, sys, time
n = int(sys.argv[1]); samples = []
for _ in range(n):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
    t = time.perf_counter(); s.connect(("10.96.0.10", 80)); samples.append(time.perf_counter() - t); s.close()
print(statistics.median(samples) * 1e6)
"""


def wire(ns: dict[str, str]) -> None:
    """client 10.244.0.2 -- node -- server 10.244.0.3, /32 routes through the node."""
    for role, ip in (("client", "10.244.0.2"), ("server", "10.244.0.3")):
        host, peer = f"nb{role[0]}{secrets.token_hex(3)}", f"np{role[0]}{secrets.token_hex(3)}"
        sh(
            "ip",
            "link",
            "add",
            host,
            "netns",
            ns["node"],
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            ns[role],
        )
        sh("ip", "-n", ns[role], "addr", "add", f"{ip}/32", "dev", peer)
        sh("ip", "-n", ns[role], "link", "set", peer, "up")
        sh("ip", "-n", ns["node"], "addr", "add", "10.244.0.1/32", "dev", host)
        sh("ip", "-n", ns["node"], "link", "set", host, "up")
        sh("ip", "-n", ns["node"], "route", "add", f"{ip}/32", "dev", host)
        sh("ip", "-n", ns[role], "route", "add", "10.244.0.1/32", "dev", peer)
        sh("ip", "-n", ns[role], "route", "add", "default", "via", "10.244.0.1", "dev", peer)
    sh("ip", "netns", "exec", ns["node"], "sysctl", "-qw", "net.ipv4.ip_forward=1")


def latency_us(services: int) -> float:
    state = services_state(services, first=["10.244.0.3"])
    table = ServiceTableBuilder(state, "node-a").table
    desired = ServicesRenderer().full(table)[Family.IP]
    with namespaces("node", "client", "server") as ns:
        wire(ns)
        NftRunner(ns["node"]).run(full_sync(desired))
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns["server"], sys.executable, "-c", SERVER],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            out = subprocess.run(
                ["ip", "netns", "exec", ns["client"], sys.executable, "-c", CLIENT, str(CONNECTS)],
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout
            return float(out.strip())
        finally:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--policies", type=int, default=1000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks/nft.py needs root (it makes network namespaces)")
    print(
        f"nft {subprocess.run(['nft', '--version'], check=False, capture_output=True, text=True).stdout.strip()}, kernel {os.uname().release}, {os.cpu_count()} CPUs"
    )
    print()
    print(
        "Services: full sync (render + one nft -f into an empty namespace) and partial sync (one endpoint change)"
    )
    header = (
        f"{'services':>9} {'elements':>9} {'chains':>7} {'render':>7} {'tx':>6} {'nft -f':>7} "
        f"{'index':>6} {'full':>7} | {'floor add':>9} {'floor del':>9} {'partial':>8} {'p95':>7} "
        f"{'nft part':>8} {'ops':>4} {'x add':>6} {'x del':>6} | {'collection':>10} {'deferred':>8}"
    )
    print(header)
    rows = []
    for size in args.sizes:
        r = services_run(size, args.changes)
        rows.append(r)
        print(
            f"{r['size']:>9,} {r['elements']:>9,} {r['chains']:>7,} {r['render_s']:>6.2f}s "
            f"{r['tx_s']:>5.2f}s {r['apply_s']:>6.2f}s {r['index_s']:>5.2f}s {r['full_s']:>6.2f}s | "
            f"{r['floor_add_ms']:>7.1f}ms {r['floor_delete_ms']:>7.1f}ms {r['partial_ms']:>6.1f}ms "
            f"{r['partial_p95_ms']:>5.1f}ms {r['partial_nft_ms']:>6.1f}ms {r['ops']:>4.0f} "
            f"{r['partial_ms'] / r['floor_add_ms']:>5.2f}x {r['partial_ms'] / r['floor_delete_ms']:>5.2f}x | "
            f"{r['collect_ms']:>8.1f}ms {r['collect_waiting']:>8.0f}"
        )
        if r["deletes"]:
            print(f"          ({r['deletes']:.0f} deletions on the critical path: not deferred)")
    big = rows[-1]
    print()
    print(
        f"full sync at {big['size']:,}: {big['full_s']:.2f} s (target <= {FULL_TARGET_S:.0f} s): {'OK' if big['full_s'] <= FULL_TARGET_S else 'MISSED'}"
    )
    floor = big["floor_add_ms"]  # the lower floor: a partial sync that only adds
    ok = big["partial_ms"] <= PARTIAL_TARGET_MS and big["partial_ms"] <= PARTIAL_FLOOR_RATIO * floor
    print(
        f"partial sync at {big['size']:,}: {big['partial_ms']:.1f} ms = "
        f"{big['partial_ms'] / floor:.2f}x a one-element add ({floor:.1f} ms), "
        f"{big['partial_ms'] / big['floor_delete_ms']:.2f}x a one-element delete "
        f"({big['floor_delete_ms']:.1f} ms) (targets <= {PARTIAL_TARGET_MS:.0f} ms and <= "
        f"{PARTIAL_FLOOR_RATIO}x): {'OK' if ok else 'MISSED'}"
    )
    print(
        f"deferred deletions at {big['size']:,}: one collection every {COLLECT_EVERY} changes "
        f"({big['collect_waiting']:.0f} slots and hairpin pairs waiting) takes "
        f"{big['collect_ms']:.1f} ms = {big['collect_ms'] / COLLECT_EVERY:.1f} ms per change, "
        "after the changes took effect"
    )
    print()
    p = policy_run(args.policies)
    print(
        f"Policy: {p['policies']:,} NetworkPolicies -> {p['n_chains']:,} chains, {p['n_rules']:,} rules, {p['n_sets']:,} sets, {p['n_elements']:,} elements: "
        f"compile {p['compile_s']:.2f} s + render {p['render_s']:.2f} s + nft -f {p['apply_s']:.2f} s = {p['total_s']:.2f} s "
        f"(floor on that table {p['floor_ms']:.1f} ms)"
    )
    print()
    small, large = min(args.sizes[0], 10), max(args.sizes)
    small_us = latency_us(10)
    large_us = latency_us(large)
    ratio = large_us / small_us
    print(
        f"Connection setup through a ClusterIP (median of {CONNECTS:,} connects): {small_us:.0f} us with {small} Services, "
        f"{large_us:.0f} us with {large:,}: ratio {ratio:.2f} (target <= {LATENCY_RATIO}): {'OK' if ratio <= LATENCY_RATIO else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
