"""Bad policy input is rejected at load, naming the file, the object and the field.

Sources: the network-policy-api CRDs at v0.2.0 (ClusterNetworkPolicy v1alpha2:
config/crd/*/policy.networking.k8s.io_clusternetworkpolicies.yaml — enums,
minimum/maximum, minItems, maxProperties/minProperties, the isCIDR and
"Start port must be less than End port" CEL rules, the egress rule's named-port
CEL rule) and v1alpha1 (apis/v1alpha1/*_types.go: the same rules for
AdminNetworkPolicy / BaselineAdminNetworkPolicy, the BANP name rule), and
pkg/apis/networking/validation for NetworkPolicy.
"""

from __future__ import annotations

import pytest

from netlet.cluster.build import load_text
from netlet.resources.networking import NetworkPolicy

CNP = "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: c}\n"
ANP = (
    "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\n"
)
BANP = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\n"
NP = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\n"
ADMIN = "spec:\n  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n"

CASES = [
    # (id, manifest, object, field path, words in the message)
    (
        "an unknown action in a ClusterNetworkPolicy (Allow is v1alpha1's word)",
        CNP + ADMIN + "  ingress: [{action: Allow, from: [{namespaces: {}}]}]",
        "ClusterNetworkPolicy c",
        "spec.ingress[0].action",
        "'Accept', 'Deny' or 'Pass'",
    ),
    (
        "a priority below 0",
        CNP + "spec: {tier: Admin, priority: -1, subject: {namespaces: {}}}",
        "ClusterNetworkPolicy c",
        "spec.priority",
        "greater than or equal to 0",
    ),
    (
        "a priority above 1000",
        ANP + "spec: {priority: 1001, subject: {namespaces: {}}}",
        "AdminNetworkPolicy a",
        "spec.priority",
        "less than or equal to 1000",
    ),
    (
        "an unknown tier",
        CNP + "spec: {tier: Platform, priority: 1, subject: {namespaces: {}}}",
        "ClusterNetworkPolicy c",
        "spec.tier",
        "'Admin' or 'Baseline'",
    ),
    (
        "a named port with a networks peer",
        CNP + ADMIN + "  egress: [{action: Deny, to: [{networks: [10.0.0.0/8]}], "
        "protocols: [{destinationNamedPort: http}]}]",
        "ClusterNetworkPolicy c",
        "spec.egress[0]",
        "networks/nodes/domainNames peer cannot be set with namedPorts",
    ),
    (
        "a named port with a nodes peer in an AdminNetworkPolicy",
        ANP + "spec: {priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, "
        "to: [{nodes: {}}], ports: [{namedPort: http}]}]}",
        "AdminNetworkPolicy a",
        "spec.egress[0]",
        "peer cannot be set with namedPorts",
    ),
    (
        "a peer with two fields set",
        CNP
        + ADMIN
        + "  ingress: [{action: Deny, from: [{namespaces: {}, pods: {podSelector: {}}}]}]",
        "ClusterNetworkPolicy c",
        "spec.ingress[0].from[0]",
        "at most 1 properties",
    ),
    (
        "a protocols entry naming two protocols",
        CNP + ADMIN + "  ingress: [{action: Deny, from: [{namespaces: {}}], protocols: "
        "[{tcp: {destinationPort: {number: 1}}, udp: {destinationPort: {number: 1}}}]}]",
        "ClusterNetworkPolicy c",
        "spec.ingress[0].protocols[0]",
        "exactly one field must be set",
    ),
    (
        "a port range whose start is not below its end",
        CNP + ADMIN + "  ingress: [{action: Deny, from: [{namespaces: {}}], protocols: "
        "[{tcp: {destinationPort: {range: {start: 90, end: 80}}}}]}]",
        "ClusterNetworkPolicy c",
        "spec.ingress[0].protocols[0].tcp.destinationPort.range",
        "Start port must be less than End port",
    ),
    (
        "a subject with both namespaces and pods",
        CNP
        + "spec: {tier: Admin, priority: 1, subject: {namespaces: {}, pods: {podSelector: {}}}}",
        "ClusterNetworkPolicy c",
        "spec.subject",
        "exactly one field must be set",
    ),
    (
        "a rule with an empty from list",
        CNP + ADMIN + "  ingress: [{action: Deny, from: []}]",
        "ClusterNetworkPolicy c",
        "spec.ingress[0].from",
        "at least 1 item",
    ),
    (
        "a networks entry that is not a CIDR",
        CNP + ADMIN + "  egress: [{action: Deny, to: [{networks: [10.0.0.0/33]}]}]",
        "ClusterNetworkPolicy c",
        "spec.egress[0].to[0].networks",
        "Invalid CIDR format provided",
    ),
    (
        "a domain name with a wildcard that is not a whole leading label",
        CNP + ADMIN + '  egress: [{action: Accept, to: [{domainNames: ["foo*.example.com"]}]}]',
        "ClusterNetworkPolicy c",
        "spec.egress[0].to[0].domainNames",
        "must be a domain name",
    ),
    (
        "a domainNames peer on a Deny rule",
        CNP + ADMIN + "  egress: [{action: Deny, to: [{domainNames: [example.com]}]}]",
        "ClusterNetworkPolicy c",
        "spec.egress[0]",
        "only supported for Accept rules",
    ),
    (
        "an AdminNetworkPolicy action spelled Accept",
        ANP
        + "spec: {priority: 1, subject: {namespaces: {}}, ingress: [{action: Accept, from: [{namespaces: {}}]}]}",
        "AdminNetworkPolicy a",
        "spec.ingress[0].action",
        "'Allow', 'Deny' or 'Pass'",
    ),
    (
        "an empty ports list in an AdminNetworkPolicy",
        ANP
        + "spec: {priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}], ports: []}]}",
        "AdminNetworkPolicy a",
        "spec.ingress[0].ports",
        "at least 1 item",
    ),
    (
        "an AdminNetworkPolicy port with an unknown protocol",
        ANP + "spec: {priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, "
        "from: [{namespaces: {}}], ports: [{portNumber: {protocol: ICMP, port: 1}}]}]}",
        "AdminNetworkPolicy a",
        "spec.ingress[0].ports[0].portNumber.protocol",
        "'TCP', 'UDP' or 'SCTP'",
    ),
    (
        "a BaselineAdminNetworkPolicy not named default",
        BANP + "metadata: {name: mine}\nspec: {subject: {namespaces: {}}}",
        "BaselineAdminNetworkPolicy mine",
        "metadata.name",
        'metadata.name="default"',
    ),
    (
        "a Pass action in the BaselineAdminNetworkPolicy",
        BANP
        + "metadata: {name: default}\nspec: {subject: {namespaces: {}}, ingress: [{action: Pass, from: [{namespaces: {}}]}]}",
        "BaselineAdminNetworkPolicy default",
        "spec.ingress[0].action",
        "'Allow' or 'Deny'",
    ),
    (
        "a NetworkPolicy endPort with a named port",
        NP + "spec: {podSelector: {}, ingress: [{ports: [{port: http, endPort: 90}]}]}",
        "NetworkPolicy default/n",
        "spec.ingress[0].ports[0].endPort",
        "may not be specified when port is not a number",
    ),
    (
        "a NetworkPolicy port with an unknown protocol",
        NP + "spec: {podSelector: {}, ingress: [{ports: [{protocol: ICMP, port: 1}]}]}",
        "NetworkPolicy default/n",
        "spec.ingress[0].ports[0].protocol",
        "'TCP', 'UDP' or 'SCTP'",
    ),
    (
        "a NetworkPolicy peer with an ipBlock and a podSelector",
        NP
        + "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]}",
        "NetworkPolicy default/n",
        "spec.ingress[0].from[0]",
        "may not specify both ipBlock and another peer",
    ),
    (
        "a NetworkPolicy peer with nothing in it",
        NP + "spec: {podSelector: {}, ingress: [{from: [{}]}]}",
        "NetworkPolicy default/n",
        "spec.ingress[0].from[0]",
        "must specify a peer",
    ),
    (
        "an unknown policyType",
        NP + "spec: {podSelector: {}, policyTypes: [Inbound]}",
        "NetworkPolicy default/n",
        "spec.policyTypes[0]",
        "'Ingress' or 'Egress'",
    ),
    (
        "a named port longer than 15 characters",
        NP + "spec: {podSelector: {}, egress: [{ports: [{port: this-name-is-far-too-long}]}]}",
        "NetworkPolicy default/n",
        "spec.egress[0].ports[0].port",
        "no more than 15 characters",
    ),
    (
        "port 0",
        NP + "spec: {podSelector: {}, egress: [{ports: [{port: 0}]}]}",
        "NetworkPolicy default/n",
        "spec.egress[0].ports[0].port",
        "between 1 and 65535",
    ),
    (
        "a NetworkPolicy without podSelector",
        NP + "spec: {ingress: [{}]}",
        "NetworkPolicy default/n",
        "spec.podSelector",
        "Required value",
    ),
]

GOOD = NP.replace("{name: n}", "{name: survivor}") + "spec: {podSelector: {}}\n"


@pytest.mark.parametrize(
    ("manifest", "obj", "path", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_policy_is_rejected_with_file_object_and_field(
    manifest: str, obj: str, path: str, words: str
) -> None:
    result = load_text(manifest + "\n---\n" + GOOD, name="policies.yaml")
    (diag,) = result.errors
    text = str(diag)
    assert text.startswith("policies.yaml:"), text
    assert diag.obj is not None and str(diag.obj) == obj, text
    assert diag.field_path == path, text
    assert words in diag.message, text
    # The other objects still load.
    assert result.state.get(NetworkPolicy, "default", "survivor") is not None


def test_a_peer_with_only_unknown_fields_loads_and_is_left_to_fail_closed() -> None:
    # The CRD's peers have minProperties 1, but a field from a newer CRD is dropped on
    # decode: the engine must see the empty peer and fail closed (not reject the object).
    result = load_text(
        CNP + ADMIN + "  ingress: [{action: Deny, from: [{serviceAccounts: {name: x}}]}]",
        name="future.yaml",
    )
    assert result.ok, [str(d) for d in result.errors]
