"""The scenario tables (scenarios/*.yaml): verdicts and the explanation's deciding
policy and rule, for NetworkPolicy v1, ClusterNetworkPolicy v1alpha2 and
AdminNetworkPolicy/BaselineAdminNetworkPolicy v1alpha1. Each scenario cites the
upstream doc section it encodes (`doc:`); the file headers cite the pages.

Every scenario also checks that the class-level matrix agrees with the per-pair
verdicts on all its endpoints (pods, nodes, the outside addresses it names).
"""

from __future__ import annotations

import ipaddress

import pytest

from netlet.policy.classes import build_classes
from netlet.policy.matrix import Probe, compute_matrix
from netlet.resources.core import Protocol
from tests.policy.harness import Scenario, assert_check, engine_for, load_scenarios, run

SCENARIOS = load_scenarios()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.test_id for s in SCENARIOS])
def test_verdicts_and_explanations(scenario: Scenario) -> None:
    engine = engine_for(scenario.manifests, scenario.resolve)
    for check in scenario.checks:
        assert_check(run(engine, check), check)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.test_id for s in SCENARIOS])
def test_class_matrix_agrees_with_per_pair_verdicts(scenario: Scenario) -> None:
    engine = engine_for(scenario.manifests, scenario.resolve)
    outside = set()
    for check in scenario.checks:
        for text in (check.src, check.dst):
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            if engine.ip_endpoint(address).kind.value == "external":
                outside.add(ipaddress.ip_network(address))
    index = build_classes(engine.program, include_nodes=True, probes=sorted(outside))
    probes = sorted(
        {Probe(Protocol(c.protocol), c.port) for c in scenario.checks}
        | {Probe(Protocol.TCP, 8080), Probe(Protocol.UDP, 53)}
    )
    matrix = compute_matrix(engine, index, probes)
    for i, a in enumerate(index.endpoints):
        for j, b in enumerate(index.endpoints):
            for k, probe in enumerate(probes):
                want = engine.verdict(a.endpoint, b.endpoint, probe.protocol, probe.port).allowed
                assert matrix.allowed(i, j, k) == want, (a.label, b.label, str(probe))


def test_there_are_at_least_80_scenarios_and_each_cites_its_source() -> None:
    assert len(SCENARIOS) >= 80
    for scenario in SCENARIOS:
        assert scenario.doc.strip(), scenario.test_id
        assert scenario.checks, scenario.test_id
