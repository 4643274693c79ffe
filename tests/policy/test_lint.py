"""Policy findings (`netlet check`, `netlet policy lint`): shadowed and redundant
rules, selectors that select nothing, named ports that resolve nowhere,
same-priority overlaps (implementation-defined upstream: ClusterNetworkPolicySpec.priority,
"If two (or more) policies in the same tier with the same priority could match a
connection ..."), peers that fail closed, domainNames without answers.

Each case lists every finding expected, so a missing or an extra one fails.
"""

from __future__ import annotations

import pytest

from netlet.cluster.build import load_text
from netlet.policy.lint import policy_findings, ports_cover
from netlet.policy.program import NamedPort, PortRange
from netlet.resources.core import Protocol
from netlet.resources.diagnostics import Severity
from tests.policy.harness import world


def cnp(
    name: str, priority: int, body: str, tier: str = "Admin", subject: str = "{namespaces: {}}"
) -> str:
    return (
        f"apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"
        f"metadata: {{name: {name}}}\nspec:\n  tier: {tier}\n  priority: {priority}\n"
        f"  subject: {subject}\n{body}---\n"
    )


def np(name: str, namespace: str, body: str) -> str:
    return (
        f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}---\n"
    )


WARN, INFO = Severity.WARNING, Severity.INFO

CASES = [
    (
        "a rule after a rule that matches everything it does is shadowed",
        cnp(
            "ordered",
            1,
            "  ingress:\n  - {action: Deny, from: [{namespaces: {}}]}\n"
            "  - {action: Accept, from: [{namespaces: {matchLabels: {env: dev}}}]}\n",
        ),
        [
            (
                WARN,
                "policy-shadowed-rule",
                "ClusterNetworkPolicy ordered",
                "spec.ingress[1]",
                "rule 0 (Deny)",
            )
        ],
    ),
    (
        "a rule of a later policy whose subject an earlier policy covers is shadowed",
        cnp("first", 1, "  ingress: [{action: Deny, from: [{namespaces: {}}]}]\n")
        + cnp(
            "second",
            2,
            "  ingress: [{action: Accept, from: [{namespaces: {matchLabels: {team: b}}}]}]\n",
            subject="{namespaces: {matchLabels: {env: prod}}}",
        ),
        [
            (
                WARN,
                "policy-shadowed-rule",
                "ClusterNetworkPolicy second",
                "spec.ingress[0]",
                "cnp/first rule 0",
            )
        ],
    ),
    (
        "an earlier rule limited to one port does not shadow a rule on all ports",
        cnp(
            "ports",
            1,
            "  ingress:\n  - action: Deny\n    from: [{namespaces: {}}]\n"
            "    protocols: [{tcp: {destinationPort: {number: 80}}}]\n"
            "  - {action: Accept, from: [{namespaces: {matchLabels: {env: dev}}}]}\n",
        ),
        [],
    ),
    (
        "an earlier policy with a narrower subject shadows nothing",
        cnp(
            "dev-only",
            1,
            "  ingress: [{action: Deny, from: [{namespaces: {}}]}]\n",
            subject="{namespaces: {matchLabels: {env: dev}}}",
        )
        + cnp("everyone", 2, "  ingress: [{action: Accept, from: [{namespaces: {}}]}]\n"),
        [],
    ),
    (
        "a NetworkPolicy rule another rule of the same policy already allows is redundant",
        np(
            "api",
            "prod",
            "  podSelector: {matchLabels: {app: api}}\n  ingress:\n"
            "  - {from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}\n"
            "  - {from: [{namespaceSelector: {}}]}\n",
        ),
        [
            (
                WARN,
                "policy-redundant-rule",
                "NetworkPolicy prod/api",
                "spec.ingress[0]",
                "rule 1 already allows",
            )
        ],
    ),
    (
        "of two identical NetworkPolicy rules only the later one is reported",
        np(
            "api",
            "prod",
            "  podSelector: {matchLabels: {app: api}}\n  ingress:\n"
            "  - {from: [{podSelector: {matchLabels: {app: web}}}]}\n"
            "  - {from: [{podSelector: {matchLabels: {app: web}}}]}\n",
        ),
        [
            (
                WARN,
                "policy-redundant-rule",
                "NetworkPolicy prod/api",
                "spec.ingress[1]",
                "rule 0 already allows",
            )
        ],
    ),
    (
        "a subject that selects no pod is a warning, a peer that selects none is information",
        np(
            "ghost",
            "prod",
            "  podSelector: {matchLabels: {app: ghost}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]\n",
        )
        + np(
            "api",
            "prod",
            "  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {team: nobody}}}]}]\n",
        ),
        [
            (
                WARN,
                "policy-selects-nothing",
                "NetworkPolicy prod/ghost",
                "spec.podSelector",
                "selects no pods",
            ),
            (
                INFO,
                "policy-selects-nothing",
                "NetworkPolicy prod/api",
                "spec.ingress[0].from[0]",
                "team=nobody",
            ),
        ],
    ),
    (
        "a nodes peer that selects no node is information",
        cnp(
            "kubelet",
            1,
            "  egress: [{action: Accept, to: [{nodes: {matchLabels: {role: gpu}}}]}]\n",
        ),
        [
            (
                INFO,
                "policy-selects-nothing",
                "ClusterNetworkPolicy kubelet",
                "spec.egress[0].to[0]",
                "selects no nodes",
            )
        ],
    ),
    (
        "a named port no destination pod declares is reported, on ingress and on egress",
        np(
            "web-in",
            "prod",
            "  podSelector: {matchLabels: {app: web}}\n  ingress: [{ports: [{port: grpc}, {port: http}]}]\n",
        )
        + np(
            "web-out",
            "prod",
            "  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Egress]\n"
            "  egress: [{to: [{podSelector: {matchLabels: {app: api}}}], ports: [{port: metrics}, {port: grpc}]}]\n",
        ),
        [
            (
                WARN,
                "policy-named-port-unresolved",
                "NetworkPolicy prod/web-in",
                "spec.ingress[0]",
                "grpc/TCP",
            ),
            (
                WARN,
                "policy-named-port-unresolved",
                "NetworkPolicy prod/web-out",
                "spec.egress[0]",
                "metrics/TCP",
            ),
        ],
    ),
    (
        "a named port with the wrong protocol resolves nowhere",
        np(
            "dns",
            "prod",
            "  podSelector: {matchLabels: {app: api}}\n  ingress: [{ports: [{protocol: TCP, port: dns}]}]\n",
        ),
        [
            (
                WARN,
                "policy-named-port-unresolved",
                "NetworkPolicy prod/dns",
                "spec.ingress[0]",
                "dns/TCP",
            )
        ],
    ),
    (
        "two policies of one priority that can match the same connection with different actions",
        cnp(
            "b-deny",
            3,
            "  ingress: [{action: Deny, from: [{namespaces: {matchLabels: {env: dev}}}]}]\n",
        )
        + cnp("a-accept", 3, "  ingress: [{action: Accept, from: [{namespaces: {}}]}]\n"),
        [
            (
                WARN,
                "policy-same-priority",
                "ClusterNetworkPolicy b-deny",
                "spec.ingress[0]",
                "different actions (Accept vs Deny)",
            ),
            (
                WARN,
                "policy-shadowed-rule",
                "ClusterNetworkPolicy b-deny",
                "spec.ingress[0]",
                "cnp/a-accept rule 0",
            ),
        ],
    ),
    (
        "two policies of one priority with the same action only change the explanation",
        cnp("one", 3, "  egress: [{action: Deny, to: [{networks: [10.0.0.0/8]}]}]\n")
        + cnp(
            "two", 3, "  egress: [{action: Deny, to: [{networks: [10.1.0.0/16, 192.0.2.0/24]}]}]\n"
        ),
        [
            (
                WARN,
                "policy-same-priority",
                "ClusterNetworkPolicy two",
                "spec.egress[0]",
                "same action",
            )
        ],
    ),
    (
        "policies of one priority that cannot match the same connection are fine",
        cnp(
            "dev",
            3,
            "  ingress: [{action: Deny, from: [{namespaces: {}}]}]\n",
            subject="{namespaces: {matchLabels: {env: dev}}}",
        )
        + cnp(
            "prod",
            3,
            "  ingress: [{action: Accept, from: [{namespaces: {}}]}]\n",
            subject="{namespaces: {matchLabels: {env: prod}}}",
        )
        + cnp(
            "tcp",
            4,
            "  ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {number: 80}}}]}]\n",
        )
        + cnp(
            "udp",
            4,
            "  ingress: [{action: Accept, from: [{namespaces: {}}], protocols: [{udp: {destinationPort: {number: 80}}}]}]\n",
        ),
        [],
    ),
    (
        "a peer with no field netlet knows makes its rule fail closed",
        cnp("future", 1, "  ingress: [{action: Deny, from: [{serviceAccounts: {name: x}}]}]\n"),
        [
            (
                WARN,
                "policy-fail-closed",
                "ClusterNetworkPolicy future",
                "spec.ingress[0]",
                "denies all traffic",
            )
        ],
    ),
    (
        "domainNames peers need DNS answers",
        cnp("dns", 1, "  egress: [{action: Accept, to: [{domainNames: [example.com]}]}]\n"),
        [
            (
                INFO,
                "policy-domain-names",
                "ClusterNetworkPolicy dns",
                "spec.egress[0].to[0]",
                "--resolve",
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("manifests", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_policy_findings(
    manifests: str, expected: list[tuple[Severity, str, str, str, str]]
) -> None:
    result = load_text(world(manifests.rstrip("-\n")), name="policies.yaml")
    assert result.ok, [str(d) for d in result.errors]
    found = policy_findings(result.state)
    got = sorted((d.severity, d.code, str(d.obj), d.field_path) for d in found)
    assert got == sorted(e[:4] for e in expected), [str(d) for d in found]
    for _severity, code, obj, path, words in expected:
        (diag,) = [d for d in found if (d.code, str(d.obj), d.field_path) == (code, obj, path)]
        assert words in diag.message, str(diag)
        assert diag.origin is not None and diag.origin.file == "policies.yaml"


@pytest.mark.parametrize(
    ("outer", "inner", "covers"),
    [
        (None, (PortRange(Protocol.TCP, 80, 80),), True),
        (
            (PortRange(Protocol.TCP, 1, 100), PortRange(Protocol.TCP, 101, 65535)),
            (PortRange(Protocol.TCP, 50, 200),),
            True,
        ),
        ((PortRange(Protocol.TCP, 1, 100),), (PortRange(Protocol.TCP, 50, 200),), False),
        ((PortRange(Protocol.TCP, 1, 65535),), (PortRange(Protocol.UDP, 53, 53),), False),
        ((PortRange(Protocol.TCP, 1, 65535),), (NamedPort("http", Protocol.TCP),), True),
        ((PortRange(Protocol.TCP, 1, 65535),), (NamedPort("http", None),), False),
        ((NamedPort("http", None),), (NamedPort("http", Protocol.TCP),), True),
        ((PortRange(Protocol.TCP, 80, 80),), (NamedPort("http", Protocol.TCP),), False),
        ((PortRange(Protocol.TCP, 1, 65535),), None, False),
    ],
    ids=[
        "all ports cover a port",
        "adjacent ranges cover a range across their seam",
        "a range does not cover a wider one",
        "TCP does not cover UDP",
        "all of TCP covers a TCP named port",
        "all of TCP does not cover a named port of any protocol",
        "a named port of any protocol covers the same name on TCP",
        "a number never covers a named port (it resolves per pod)",
        "one protocol does not cover every port of every protocol",
    ],
)
def test_port_coverage(outer: object, inner: object, covers: bool) -> None:
    assert ports_cover(outer, inner) is covers  # type: ignore[arg-type]
