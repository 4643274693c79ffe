"""BackendTLSPolicy: which backends the Gateway dials over TLS, and policy status
per ancestor Gateway.

Spec: backendtlspolicy_types.go (TargetRefs "When more than one BackendTLSPolicy
selects the same target and sectionName ... The older policy by creation
timestamp takes precedence ... Accepted ... False, with Reason Conflicted";
CACertificateRefs invalid -> InvalidCACertificateRef, unknown kind ->
InvalidKind, "If ALL CACertificateRefs are invalid ... Accepted ... False, with a
Reason NoValidCACertificate"; WellKnownCACertificates; Hostname is the SNI),
policy_types.go (PolicyAncestorStatus: "the Gateway will be the most useful
object to place Policy status on"; PolicyReasonTargetNotFound). Conformance:
BackendTLSPolicy, BackendTLSPolicyConflictResolution, BackendTLSPolicyInvalidCACertificateRef.
"""

from __future__ import annotations

import pytest

from netlet.gateway.conditions import ConditionType
from netlet.gateway.match import match_http
from netlet.gateway.status import PolicyStatus
from netlet.gateway.table import Request
from tests.gateway.manifests import CA_PEM, HTTP_ALL, http_route, world

CA = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca, namespace: app}\ndata:\n  ca.crt: |\n"
    + "\n".join("    " + line for line in CA_PEM.splitlines())
)


def policy(
    name: str = "p",
    target: str = "{group: '', kind: Service, name: web}",
    validation: str = "caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]",
    created: str | None = None,
) -> str:
    stamp = f", creationTimestamp: '{created}'" if created else ""
    return (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\n"
        f"metadata: {{name: {name}, namespace: app{stamp}}}\n"
        f"spec:\n  targetRefs: [{target}]\n  validation:\n    hostname: web.app.example\n    {validation}"
    )


def _policy(*docs: str, name: str = "p") -> PolicyStatus:
    found = world(HTTP_ALL, http_route(), CA, *docs).policy("app", name)
    assert found is not None
    return found


def _cond(status: PolicyStatus, type_: ConditionType) -> tuple[str, str]:
    found = status.condition(type_)
    assert found is not None
    return found.status, found.reason.value


@pytest.mark.parametrize(
    ("validation", "target", "accepted", "resolved"),
    [
        pytest.param(
            "caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]",
            "{group: '', kind: Service, name: web}",
            ("True", "Accepted"),
            ("True", "ResolvedRefs"),
            id="a ConfigMap CA bundle is accepted",
        ),
        pytest.param(
            "wellKnownCACertificates: System",
            "{group: '', kind: Service, name: web}",
            ("True", "Accepted"),
            ("True", "ResolvedRefs"),
            id="the system trust store is accepted",
        ),
        pytest.param(
            "caCertificateRefs: [{group: '', kind: ConfigMap, name: nope}]",
            "{group: '', kind: Service, name: web}",
            ("False", "NoValidCACertificate"),
            ("False", "InvalidCACertificateRef"),
            id="a missing CA ConfigMap leaves no valid CA",
        ),
        pytest.param(
            "caCertificateRefs: [{group: '', kind: Service, name: web}]",
            "{group: '', kind: Service, name: web}",
            ("False", "NoValidCACertificate"),
            ("False", "InvalidKind"),
            id="a CA reference of another kind is InvalidKind",
        ),
        pytest.param(
            "caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}, {group: '', kind: ConfigMap, name: nope}]",
            "{group: '', kind: Service, name: web}",
            ("True", "Accepted"),
            ("False", "InvalidCACertificateRef"),
            id="one valid CA keeps the policy accepted",
        ),
        pytest.param(
            "wellKnownCACertificates: System",
            "{group: '', kind: Service, name: nope}",
            ("False", "TargetNotFound"),
            ("True", "ResolvedRefs"),
            id="a missing target Service is TargetNotFound",
        ),
        pytest.param(
            "wellKnownCACertificates: System",
            "{group: '', kind: Service, name: web, sectionName: nope}",
            ("False", "TargetNotFound"),
            ("True", "ResolvedRefs"),
            id="a sectionName naming no port is TargetNotFound",
        ),
    ],
)
def test_policy_conditions(
    validation: str, target: str, accepted: tuple[str, str], resolved: tuple[str, str]
) -> None:
    status = _policy(policy(target=target, validation=validation))
    assert _cond(status, ConditionType.ACCEPTED) == accepted
    assert _cond(status, ConditionType.RESOLVED_REFS) == resolved


def test_the_policy_reaches_the_backend_in_the_table() -> None:
    w = world(HTTP_ALL, http_route(), CA, policy())
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/"))
    tls = decision.backends[0].backend.tls
    assert tls is not None and tls.valid
    assert (tls.policy, tls.hostname) == ("app/p", "web.app.example")
    assert tls.ca_bundle.startswith(b"-----BEGIN CERTIFICATE-----")


def test_a_policy_without_valid_ca_makes_its_backend_fail() -> None:
    w = world(
        HTTP_ALL,
        http_route(),
        policy(validation="caCertificateRefs: [{group: '', kind: ConfigMap, name: nope}]"),
    )
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/"))
    tls = decision.backends[0].backend.tls
    assert tls is not None and not tls.valid


def test_the_older_of_two_conflicting_policies_wins() -> None:
    w = world(
        HTTP_ALL,
        http_route(),
        CA,
        policy("newer", created="2024-01-01T00:00:00Z"),
        policy(
            "older", validation="wellKnownCACertificates: System", created="2020-01-01T00:00:00Z"
        ),
    )
    newer, older = w.policy("app", "newer"), w.policy("app", "older")
    assert newer is not None and older is not None
    assert _cond(older, ConditionType.ACCEPTED) == ("True", "Accepted")
    assert _cond(newer, ConditionType.ACCEPTED) == ("False", "Conflicted")
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/"))
    tls = decision.backends[0].backend.tls
    assert tls is not None and tls.policy == "app/older"


def test_a_port_specific_policy_beats_a_service_wide_one() -> None:
    w = world(
        HTTP_ALL,
        http_route(),
        CA,
        policy("whole", validation="wellKnownCACertificates: System"),
        policy("port", target="{group: '', kind: Service, name: web, sectionName: http}"),
    )
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/"))
    tls = decision.backends[0].backend.tls
    assert tls is not None and tls.policy == "app/port"


def test_ancestors_are_the_gateways_whose_routes_use_the_service() -> None:
    status = _policy(policy())
    (ancestor,) = status.ancestors
    assert ancestor.ancestor.to_api() == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": "infra",
        "name": "gw",
    }
    api = status.to_api()
    assert api["status"]["ancestors"][0]["controllerName"] == "netlet.dev/gateway-controller"


def test_a_policy_no_route_uses_has_no_ancestors() -> None:
    w = world(HTTP_ALL, CA, policy())
    status = w.policy("app", "p")
    assert status is not None and status.ancestors == ()
