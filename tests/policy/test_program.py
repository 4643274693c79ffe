"""The compiled policy program (the IR a kernel backend renders).

What a backend relies on: group ids name selectors, not members (a label change
edits set elements, not rules); tiers come in evaluation order with netlet's
documented tie-break; rules carry resolved address sets and port sets, named
ports stay symbolic with per-pod elements; fail-closed peers are already
translated. Spec references as in the scenario files (kubernetes.io
NetworkPolicy page; network-policy-api api-overview and v1alpha2/v1alpha1 types).
"""

from __future__ import annotations

import ipaddress

import pytest

from netlet.cluster.build import load_text
from netlet.policy.changes import diff_programs
from netlet.policy.compile import compile_program
from netlet.policy.dns import make_answers
from netlet.policy.program import (
    BANP_PRIORITY,
    Action,
    Direction,
    NamedPort,
    PeerKind,
    PodKey,
    PolicyProgram,
    PortRange,
    Tier,
    port_set_name,
)
from netlet.resources.core import Protocol
from netlet.resources.net import AddressSet
from tests.policy.harness import world

NP_API = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: prod}
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - podSelector: {matchLabels: {app: web}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.244.0.0/16, 10.96.0.0/12]}
    ports:
    - {port: http}
    - {protocol: UDP}
    - {port: 8000, endPort: 8100}
  egress:
  - {}
"""


def compile_world(
    manifests: str = "", resolve: dict[str, list[str]] | None = None
) -> PolicyProgram:
    result = load_text(world(manifests), name="world.yaml")
    assert result.ok, [str(d) for d in result.errors]
    dns = make_answers(resolve) if resolve else None
    return compile_program(result.state, dns)


def test_a_network_policy_becomes_rules_with_resolved_sets_and_symbolic_named_ports() -> None:
    program = compile_world(NP_API)
    (policy,) = program.tier(Tier.NETWORK_POLICY).policies
    assert policy.isolates == {Direction.INGRESS, Direction.EGRESS}
    (rule,) = policy.ingress
    pods, block = rule.peers
    assert pods.kind == PeerKind.PODS
    assert program.pod_group(pods.group).members == {PodKey("prod", "web")}
    assert program.pod_group(pods.group).addresses == AddressSet.of("10.244.1.10/32")
    assert block.kind == PeerKind.CIDRS
    assert block.addresses == AddressSet.of("10.0.0.0/8") - AddressSet.of(
        "10.244.0.0/16", "10.96.0.0/12"
    )
    assert rule.ports == (
        NamedPort("http", Protocol.TCP),
        PortRange(Protocol.UDP, 1, 65535),
        PortRange(Protocol.TCP, 8000, 8100),
    )
    (out,) = policy.egress
    assert [p.kind for p in out.peers] == [PeerKind.ANY] and out.ports is None
    assert rule.action == out.action == Action.ACCEPT


def test_group_ids_name_the_selector_so_a_label_change_edits_members_not_rules() -> None:
    before = compile_world(NP_API)
    relabel = world(NP_API).replace(
        "metadata: {name: web, namespace: prod, labels: {app: web, tier: frontend}}",
        "metadata: {name: web, namespace: prod, labels: {app: legacy, tier: frontend}}",
    )
    result = load_text(relabel)
    assert result.ok
    after = compile_program(result.state)
    assert after.tiers == before.tiers  # rules, peers, ports, actions unchanged
    group = before.tier(Tier.NETWORK_POLICY).policies[0].ingress[0].peers[0].group
    assert before.pod_group(group).members == {PodKey("prod", "web")}
    assert after.pod_group(group).members == frozenset()
    web = after.pod(PodKey("prod", "web"))
    assert web is not None and group not in web.groups


def test_pod_groups_of_a_pod_are_the_inverse_of_group_members() -> None:
    program = compile_world(NP_API + "---\n" + ADMIN_AND_BASELINE)
    for pod in program.pods:
        for group in program.pod_groups:
            assert (pod.key in group.members) == (group.id in pod.groups)


def test_host_network_pods_are_in_no_group_and_listed_on_their_node() -> None:
    program = compile_world(ADMIN_AND_BASELINE)
    exporter = program.pod(PodKey("monitoring", "node-exporter"))
    assert exporter is not None and exporter.host_network and exporter.groups == frozenset()
    node = program.node("node-b")
    assert node is not None and node.host_network_pods == (PodKey("monitoring", "node-exporter"),)
    assert node.ips == (ipaddress.ip_address("172.18.0.3"),)


ADMIN_AND_BASELINE = """apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: b-second}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: a-first}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  ingress: [{action: Accept, from: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a-first}
spec:
  priority: 5
  subject: {namespaces: {}}
  ingress: [{action: Allow, from: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: zero}
spec:
  tier: Admin
  priority: 0
  subject: {namespaces: {}}
  egress: [{action: Pass, to: [{nodes: {matchLabels: {role: infra}}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: base-1000}
spec:
  tier: Baseline
  priority: 1000
  subject: {namespaces: {}}
  ingress: [{action: Accept, from: [{namespaces: {}}]}]
"""


def test_tiers_list_policies_in_evaluation_order_with_the_documented_tie_break() -> None:
    program = compile_world(ADMIN_AND_BASELINE)
    assert [t.tier for t in program.tiers] == [Tier.ADMIN, Tier.NETWORK_POLICY, Tier.BASELINE]
    admin = [p.ref.qualified for p in program.tier(Tier.ADMIN).policies]
    # priority first; then name; then ClusterNetworkPolicy before AdminNetworkPolicy.
    assert admin == ["cnp/zero", "cnp/a-first", "anp/a-first", "cnp/b-second"]
    baseline = program.tier(Tier.BASELINE).policies
    assert [p.ref.qualified for p in baseline] == ["cnp/base-1000", "banp/default"]
    assert baseline[1].priority == BANP_PRIORITY


def test_a_nodes_peer_is_a_node_group_matched_on_node_addresses() -> None:
    program = compile_world(ADMIN_AND_BASELINE)
    (rule,) = program.tier(Tier.ADMIN).policies[0].egress
    (peer,) = rule.peers
    assert peer.kind == PeerKind.NODES
    group = program.node_group(peer.group)
    assert group.members == {"node-a"} and group.addresses == AddressSet.of("172.18.0.2/32")
    assert program.node("node-a") is not None and peer.group in program.node("node-a").groups  # type: ignore[union-attr]


FAIL_CLOSED = """apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: future}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  ingress:
  - {action: Accept, from: [{namespaces: {}}, {serviceAccounts: {name: a}}]}
  - {action: Pass, from: [{serviceAccounts: {name: a}}], protocols: [{tcp: {destinationPort: {number: 80}}}]}
  - {action: Deny, from: [{namespaces: {}}]}
"""


@pytest.mark.parametrize(
    ("index", "action", "peer_kinds", "has_ports"),
    [
        (0, Action.ACCEPT, [], False),
        (1, Action.DENY, [PeerKind.ANY], False),
        (2, Action.DENY, [PeerKind.PODS], False),
    ],
    ids=[
        "an Accept rule with an unknown peer matches nothing",
        "a Pass rule with an unknown peer becomes Deny all, ports dropped",
        "a rule whose peers are all known is left alone",
    ],
)
def test_fail_closed_rules_are_translated_in_the_program(
    index: int, action: Action, peer_kinds: list[PeerKind], has_ports: bool
) -> None:
    rule = compile_world(FAIL_CLOSED).tier(Tier.ADMIN).policies[0].ingress[index]
    assert rule.action == action
    assert [p.kind for p in rule.peers] == peer_kinds
    assert (rule.ports is not None) == has_ports
    assert rule.fail_closed == (index < 2)


def test_named_port_elements_list_every_pod_where_the_name_resolves() -> None:
    program = compile_world()
    http = program.named_port_elements("http", None)
    assert http == (
        (ipaddress.ip_address("10.244.1.10"), Protocol.TCP, 8080),
        (ipaddress.ip_address("10.244.1.30"), Protocol.TCP, 8081),
        (ipaddress.ip_address("10.244.2.10"), Protocol.TCP, 8080),
        (ipaddress.ip_address("10.244.2.20"), Protocol.TCP, 8080),
    )
    assert program.named_port_elements("dns", Protocol.TCP) == ()
    # Host-network pods never contribute: their ports are the node's.
    assert program.named_port_elements("metrics", None) == ()


def test_isolated_pods_per_direction_follow_policy_types() -> None:
    program = compile_world(
        NP_API
        + """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dev-in, namespace: dev}
spec: {podSelector: {}}
"""
    )
    assert program.isolated(Direction.INGRESS) == {
        PodKey("prod", "api"),
        PodKey("dev", "web"),
        PodKey("dev", "api"),
    }
    assert program.isolated(Direction.EGRESS) == {PodKey("prod", "api")}


def test_domain_groups_hold_the_answered_names_that_match() -> None:
    program = compile_world(
        """apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: out}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  egress: [{action: Accept, to: [{domainNames: ["*.example.com", kubernetes.io]}]}]
""",
        resolve={"www.example.com": ["203.0.113.5"], "example.com": ["198.51.100.7"]},
    )
    (group,) = program.domain_groups
    assert group.patterns == ("*.example.com", "kubernetes.io")
    assert group.names == ("www.example.com",)
    assert group.addresses == AddressSet.of("203.0.113.5/32")


def test_set_names_are_stable_and_depend_only_on_content() -> None:
    ports = (
        PortRange(Protocol.TCP, 80, 80),
        NamedPort("http", None),
        PortRange(Protocol.UDP, 53, 53),
    )
    same = (PortRange(Protocol.UDP, 53, 53), PortRange(Protocol.TCP, 80, 80))
    assert port_set_name(ports) == port_set_name(same)
    assert port_set_name(ports) != port_set_name((PortRange(Protocol.TCP, 81, 81),))
    first, second = compile_world(NP_API), compile_world(NP_API)
    block = first.tier(Tier.NETWORK_POLICY).policies[0].ingress[0].peers[1]
    again = second.tier(Tier.NETWORK_POLICY).policies[0].ingress[0].peers[1]
    assert block.set_name == again.set_name and block.set_name.startswith("cidrs-")


NEW_POD = """---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: prod, labels: {app: web, tier: frontend}}
spec: {nodeName: node-b, containers: [{name: c}]}
status: {podIP: 10.244.2.77}
"""


def test_a_new_pod_is_a_set_element_change_not_a_rule_change() -> None:
    old = compile_world(NP_API)
    new = compile_world(NP_API + NEW_POD)
    changes = diff_programs(old, new)
    assert not changes.rules_changed and changes.created == () and changes.deleted == ()
    web_group = old.tier(Tier.NETWORK_POLICY).policies[0].ingress[0].peers[0].group
    by_name = {c.name: c for c in changes.updated}
    assert by_name[web_group].added == AddressSet.of("10.244.2.77/32")
    assert by_name[web_group].removed == AddressSet()
    # Every set the new pod joined got exactly its address, and nothing else changed.
    web2 = new.pod(PodKey("prod", "web-2"))
    assert web2 is not None and set(by_name) == set(web2.groups)


def test_editing_a_policy_changes_the_rules() -> None:
    old = compile_world(NP_API)
    new = compile_world(
        NP_API.replace("{port: 8000, endPort: 8100}", "{port: 8000, endPort: 8200}")
    )
    changes = diff_programs(old, new)
    assert changes.rules_changed and changes.updated == ()
    assert diff_programs(old, compile_world(NP_API)).empty
