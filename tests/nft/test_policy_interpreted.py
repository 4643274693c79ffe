"""The rendered policy ruleset decides every connection as the policy engine does.

Every scenario of the policy engine's suite (tests/policy/scenarios/*.yaml, each
citing the NetworkPolicy or network-policy-api section it comes from) is
rendered for each node of its world, and every connection - the scenario's own
checks, plus each pod, node and outside address to each pod's and node's
declared ports - is sent along the path it takes between the lab's nodes
through the interpreted rules (tests/nft/interpreter.py): the forward hook of
the source pod's node, the forward (or input) hook of the destination's node.
The kernel rules must accept exactly what netlet.policy.verdict allows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from netlet.dataplane.nft.fake import FakeNft
from netlet.dataplane.nft.model import Family, Hook
from netlet.dataplane.nft.policy import render_policy
from netlet.dataplane.nft.sync import full_sync
from netlet.policy.program import PolicyProgram
from netlet.policy.verdict import Endpoint, EndpointKind, PolicyEngine
from netlet.resources.core import Protocol
from tests.nft.interpreter import Node, policy_fates
from tests.policy.harness import Scenario, engine_for, load_scenarios, run

OUTSIDE = ("203.0.113.5", "198.51.100.7")


_KERNELS: dict[int, dict[str, Node]] = {}


def kernels(program: PolicyProgram) -> dict[str, Node]:
    """The rendered tables of every node (cached per program: programs are cached)."""
    cached = _KERNELS.get(id(program))
    if cached is not None:
        return cached
    out = {}
    for node in program.nodes:
        kernel = FakeNft()
        kernel.run(full_sync(render_policy(program, node.name, Family.IP)))
        out[node.name] = Node(kernel, frozenset(node.ips), Family.IP)
    _KERNELS[id(program)] = out
    return out


def _node_of(engine: PolicyEngine, endpoint: Endpoint) -> str | None:
    return endpoint.node


def rules_allow(engine: PolicyEngine, src: Endpoint, dst: Endpoint, proto: str, port: int) -> bool:
    """Walk the hooks the connection crosses in the lab and ask the rendered rules."""
    nodes = kernels(engine.program)
    hops: list[tuple[str, Hook]] = []
    if src.kind == EndpointKind.POD:
        assert src.node is not None
        if dst.kind == EndpointKind.NODE and dst.node == src.node:
            hops.append((src.node, Hook.INPUT))
        else:
            hops.append((src.node, Hook.FORWARD))
            if dst.kind == EndpointKind.POD and dst.node != src.node:
                assert dst.node is not None
                hops.append((dst.node, Hook.FORWARD))
            elif dst.kind == EndpointKind.NODE and dst.node is not None:
                hops.append((dst.node, Hook.INPUT))
    elif dst.kind == EndpointKind.POD:
        assert dst.node is not None
        # A node's own traffic takes the output hook, where no walk runs (own node).
        if not (src.kind == EndpointKind.NODE and src.node == dst.node):
            hops.append((dst.node, Hook.FORWARD))
    for node, hook in hops:
        fates = policy_fates(nodes[node], src.ip, proto, dst.ip, port, hook)
        assert len(fates) == 1, fates
        if fates != {"accept"}:
            return False
    return True


def endpoints(engine: PolicyEngine) -> list[Endpoint]:
    out = [engine.pod_endpoint(p.key) for p in engine.program.pods if p.ip(4) is not None]
    out += [engine.node_endpoint(n.name) for n in engine.program.nodes if n.ip(4) is not None]
    out += [engine.ip_endpoint(ipaddress.ip_address(ip)) for ip in OUTSIDE]
    return out


def targets(engine: PolicyEngine) -> Iterator[tuple[Endpoint, str, int]]:
    for pod in engine.program.pods:
        if pod.ip(4) is None:
            continue
        dst = engine.pod_endpoint(pod.key)
        ports = set(pod.declared_ports) | {(Protocol.TCP, 1), (Protocol.UDP, 53)}
        for proto, number in sorted(ports):
            yield dst, proto.value.lower(), number


def grid(scenario: Scenario) -> Iterator[tuple[Endpoint, Endpoint, str, int, bool]]:
    engine = engine_for(scenario.manifests, scenario.resolve)
    for check in scenario.checks:
        verdict = run(engine, check)
        if verdict.src.ip.version == 4:
            yield verdict.src, verdict.dst, check.protocol.lower(), check.port, check.via_service
    for src in endpoints(engine):
        for dst, proto, port in targets(engine):
            if src.kind == EndpointKind.POD and src.pod == dst.pod:
                yield src, dst, proto, port, True  # only reachable through a Service
            else:
                yield src, dst, proto, port, False


SCENARIOS = load_scenarios()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.test_id for s in SCENARIOS])
def test_the_rendered_policy_rules_allow_exactly_what_the_engine_allows(scenario: Scenario) -> None:
    engine = engine_for(scenario.manifests, scenario.resolve)
    mismatches = []
    count = 0
    for src, dst, proto, port, via_service in grid(scenario):
        if src.kind == EndpointKind.POD and src.pod == dst.pod and not via_service:
            continue  # never leaves the pod's namespace
        if proto not in ("tcp", "udp", "sctp"):
            continue
        verdict = engine.verdict(src, dst, proto.upper(), port, via_service=via_service)
        got = rules_allow(engine, src, dst, proto, port)
        count += 1
        if got != verdict.allowed:
            mismatches.append(
                f"{src} -> {dst} {port}/{proto}: engine {verdict.allowed} "
                f"(egress {verdict.egress.reason}, ingress {verdict.ingress.reason}), rules {got}"
            )
    assert count > 50
    assert mismatches == [], "\n".join(mismatches[:10])


def test_there_are_at_least_fifteen_policy_scenarios() -> None:
    assert len(SCENARIOS) >= 15
