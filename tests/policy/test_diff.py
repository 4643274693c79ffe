"""`diff_policies`: the connections whose verdict changes between two clusters, with
the rules responsible before and after (semantics as in the scenario files)."""

from __future__ import annotations

from netlet.cluster.build import load_text
from netlet.policy.compile import compile_program
from netlet.policy.diff import diff_policies
from netlet.policy.explain import decisive
from netlet.policy.matrix import Probe
from netlet.policy.verdict import PolicyEngine
from netlet.resources.core import Protocol
from tests.policy.harness import world

ALLOW_WEB = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: prod}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: http}]}]
"""
DENY_DEV = """apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: no-dev}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {matchLabels: {env: prod}}}
  ingress: [{action: Deny, from: [{namespaces: {matchLabels: {env: dev}}}]}]
"""


def engine(manifests: str) -> PolicyEngine:
    result = load_text(world(manifests), name="x.yaml")
    assert result.ok, [str(d) for d in result.errors]
    return PolicyEngine(compile_program(result.state))


def test_identical_clusters_have_no_changes() -> None:
    result = diff_policies(engine(ALLOW_WEB), engine(ALLOW_WEB))
    assert result.changes == () and result.added == () and result.removed == ()


def test_a_new_policy_lists_every_connection_it_closes_with_the_rule_responsible() -> None:
    probes = (Probe(Protocol.TCP, 8080),)
    result = diff_policies(engine(""), engine(ALLOW_WEB), probes=probes)
    closed = {(src, dst) for c in result.changes for src in c.sources for dst in c.destinations}
    # Everyone but prod/web lost prod/api:8080; the host-network pod on api's node is exempt.
    expected = {
        (src, "prod/api")
        for src in ("dev/api", "dev/web", "monitoring/prometheus", "other/client", "prod/db")
    }
    assert closed == expected
    for change in result.changes:
        assert change.before and not change.after
        assert change.after_verdict.ingress.reason.value == "isolated"
        assert "isolated" in decisive(change.after_verdict)
        assert change.before_verdict.allowed
    assert sum(c.pairs for c in result.changes) == len(expected)


def test_changes_on_default_ports_and_from_nodes() -> None:
    old, new = engine(ALLOW_WEB), engine(ALLOW_WEB + "---\n" + DENY_DEV)
    result = diff_policies(old, new, include_nodes=True)
    by_pair = {
        (s, d, str(c.probe)): c for c in result.changes for s in c.sources for d in c.destinations
    }
    # dev pods lose everything into prod that they had (default ports of each destination).
    assert ("dev/web", "prod/web", "8080/TCP") in by_pair
    assert ("dev/api", "prod/db", "7000/SCTP") in by_pair
    assert ("dev/web", "prod/api", "8080/TCP") not in by_pair  # already denied before
    change = by_pair[("dev/web", "prod/db", "5432/TCP")]
    assert change.after_verdict.ingress.policy is not None
    assert change.after_verdict.ingress.policy.name == "no-dev"
    # Nodes are not pods: the Admin rule's namespaces peer never matched them.
    assert not any(s.startswith("node/") for s, _, _ in by_pair)


def test_pods_only_in_one_cluster_are_listed_not_compared() -> None:
    extra = """apiVersion: v1
kind: Pod
metadata: {name: new, namespace: prod, labels: {app: web}}
spec: {nodeName: node-a, containers: [{name: c}]}
status: {podIP: 10.244.1.99}
"""
    result = diff_policies(engine(ALLOW_WEB), engine(ALLOW_WEB + "---\n" + extra))
    assert result.added == ("prod/new",)
    assert result.removed == ()
    assert result.changes == ()
