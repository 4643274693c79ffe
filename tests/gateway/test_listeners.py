"""Listener validation, conflicts, certificates and the Gateway/GatewayClass
conditions that summarize them.

Spec: gateway_types.go GatewaySpec.Listeners ("Distinct Listeners", "Handling
indistinct Listeners": every Conflicted listener is refused and the Gateway gets
ListenersNotValid), ListenerTLSConfig.CertificateRefs (RefNotPermitted without a
ReferenceGrant), ListenerConditionReason, GatewayConditionReason,
ListenerConditionOverlappingTLSConfig, FrontendTLSValidation, GatewayBackendTLS,
AllowedRoutes.Kinds (InvalidRouteKinds), gatewayclass_types.go (Accepted,
InvalidParameters, SupportedVersion), referencegrant_types.go.
Conformance names: GatewayInvalidRouteKind, GatewayInvalidTLSConfiguration,
GatewaySecretMissingReferenceGrant, GatewaySecretInvalidReferenceGrant,
GatewaySecretReferenceGrantAllInNamespace, GatewaySecretReferenceGrantSpecific.
"""

from __future__ import annotations

import pytest

from netlet.gateway.conditions import ConditionType
from netlet.gateway.status import GatewayStatus, ListenerStatus
from tests.gateway.manifests import CA_PEM, dedent, gateway, world


def _gw(*docs: str) -> GatewayStatus:
    found = world(*docs).gateway("infra", "gw")
    assert found is not None
    return found


def _listener(gw: GatewayStatus, name: str) -> ListenerStatus:
    found = gw.listener(name)
    assert found is not None
    return found


def _cond(status: ListenerStatus | GatewayStatus, type_: ConditionType) -> tuple[str, str]:
    found = status.condition(type_)
    assert found is not None, f"no {type_} condition"
    return found.status, found.reason.value


HTTPS = "- {{name: s, port: 443, protocol: HTTPS, tls: {{certificateRefs: [{ref}]}}}}"


@pytest.mark.parametrize(
    ("ref", "extra", "expected"),
    [
        pytest.param(
            "{name: cert}",
            "",
            ("True", "ResolvedRefs"),
            id="a local kubernetes.io/tls Secret resolves",
        ),
        pytest.param(
            "{name: nope}",
            "",
            ("False", "InvalidCertificateRef"),
            id="a missing Secret is InvalidCertificateRef",
        ),
        pytest.param(
            "{name: broken}",
            "",
            ("False", "InvalidCertificateRef"),
            id="a malformed certificate is InvalidCertificateRef",
        ),
        pytest.param(
            "{name: cert, kind: ConfigMap}",
            "",
            ("False", "InvalidCertificateRef"),
            id="a kind other than Secret is InvalidCertificateRef",
        ),
        pytest.param(
            "{name: cert, group: example.com, kind: Secret}",
            "",
            ("False", "InvalidCertificateRef"),
            id="a Secret of another group is InvalidCertificateRef",
        ),
        pytest.param(
            "{name: cert, namespace: other}",
            "",
            ("False", "RefNotPermitted"),
            id="a Secret in another namespace without a grant is RefNotPermitted",
        ),
        pytest.param(
            "{name: cert, namespace: other}",
            "from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]\nto: [{group: '', kind: Secret}]",
            ("True", "ResolvedRefs"),
            id="a grant for every Secret of the namespace allows the reference",
        ),
        pytest.param(
            "{name: cert, namespace: other}",
            "from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]\nto: [{group: '', kind: Secret, name: cert}]",
            ("True", "ResolvedRefs"),
            id="a grant naming that Secret allows the reference",
        ),
        pytest.param(
            "{name: cert, namespace: other}",
            "from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]\nto: [{group: '', kind: Secret, name: another}]",
            ("False", "RefNotPermitted"),
            id="a grant naming another Secret does not allow the reference",
        ),
        pytest.param(
            "{name: cert, namespace: other}",
            "from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}]\nto: [{group: '', kind: Secret}]",
            ("False", "RefNotPermitted"),
            id="a grant for HTTPRoutes does not allow a Gateway",
        ),
        pytest.param(
            "{name: cert, namespace: other}",
            "from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: app}]\nto: [{group: '', kind: Secret}]",
            ("False", "RefNotPermitted"),
            id="a grant for another namespace does not allow the reference",
        ),
    ],
)
def test_certificate_refs(ref: str, extra: str, expected: tuple[str, str]) -> None:
    docs = [gateway(HTTPS.format(ref=ref))]
    if extra:
        spec = "\n".join("  " + line for line in extra.splitlines())
        docs.append(
            "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n"
            f"metadata: {{name: g, namespace: other}}\nspec:\n{spec}"
        )
    listener = _listener(_gw(*docs), "s")
    assert _cond(listener, ConditionType.RESOLVED_REFS) == expected
    programmed = "True" if expected[0] == "True" else "False"
    assert _cond(listener, ConditionType.PROGRAMMED)[0] == programmed


@pytest.mark.parametrize(
    ("listeners", "expected"),
    [
        pytest.param(
            "- {name: a, port: 80, protocol: HTTP}\n- {name: b, port: 80, protocol: TCP}",
            {"a": "ProtocolConflict", "b": "ProtocolConflict"},
            id="HTTP and TCP on one port both conflict",
        ),
        pytest.param(
            "- {name: a, port: 80, protocol: HTTP}\n- {name: b, port: 80, protocol: http}",
            {"a": "HostnameConflict", "b": "HostnameConflict"},
            id="HTTP and http on one port are indistinct",
        ),
        pytest.param(
            "- {name: a, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: cert}]}}\n"
            "- {name: b, port: 443, protocol: TLS, hostname: b.example.com, tls: {mode: Passthrough}}",
            {"a": None, "b": None},
            id="HTTPS and TLS share a port when SNI tells them apart",
        ),
        pytest.param(
            "- {name: a, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: cert}]}}\n"
            "- {name: b, port: 443, protocol: TLS, hostname: a.example.com, tls: {mode: Passthrough}}",
            {"a": "HostnameConflict", "b": "HostnameConflict"},
            id="HTTPS and TLS with one hostname on one port conflict",
        ),
        pytest.param(
            "- {name: a, port: 53, protocol: TCP}\n- {name: b, port: 53, protocol: UDP}",
            {"a": None, "b": None},
            id="TCP and UDP share a port number",
        ),
        pytest.param(
            "- {name: a, port: 80, protocol: HTTP, hostname: a.example.com}\n- {name: b, port: 80, protocol: HTTP, hostname: b.example.com}",
            {"a": None, "b": None},
            id="HTTP listeners distinct by hostname do not conflict",
        ),
        pytest.param(
            "- {name: a, port: 80, protocol: HTTP}\n- {name: b, port: 443, protocol: TLS, tls: {mode: Passthrough}}\n- {name: c, port: 443, protocol: TCP}",
            {"a": None, "b": "ProtocolConflict", "c": "ProtocolConflict"},
            id="a TCP listener makes every TLS listener on its port conflict",
        ),
    ],
)
def test_listener_conflicts(listeners: str, expected: dict[str, str | None]) -> None:
    gw = _gw(gateway(listeners))
    for name, reason in expected.items():
        listener = _listener(gw, name)
        if reason is None:
            assert _cond(listener, ConditionType.CONFLICTED) == ("False", "NoConflicts")
            assert _cond(listener, ConditionType.ACCEPTED) == ("True", "Accepted")
        else:
            assert _cond(listener, ConditionType.CONFLICTED) == ("True", reason)
            assert _cond(listener, ConditionType.ACCEPTED) == ("False", "PortUnavailable")
            assert _cond(listener, ConditionType.PROGRAMMED)[0] == "False"


def test_a_gateway_with_some_invalid_listeners_is_accepted_with_listeners_not_valid() -> None:
    gw = _gw(
        gateway(
            "- {name: a, port: 80, protocol: HTTP}\n- {name: b, port: 81, protocol: example.com/quic}"
        )
    )
    assert _cond(gw, ConditionType.ACCEPTED) == ("True", "ListenersNotValid")
    assert _cond(gw, ConditionType.PROGRAMMED) == ("True", "Programmed")
    b = _listener(gw, "b")
    assert _cond(b, ConditionType.ACCEPTED) == ("False", "UnsupportedProtocol")
    assert b.supported_kinds == ()


def test_a_gateway_without_valid_listeners_is_not_accepted() -> None:
    gw = _gw(gateway("- {name: a, port: 80, protocol: HTTP}\n- {name: b, port: 80, protocol: TCP}"))
    assert _cond(gw, ConditionType.ACCEPTED) == ("False", "ListenersNotValid")
    assert _cond(gw, ConditionType.PROGRAMMED) == ("False", "Invalid")


@pytest.mark.parametrize(
    ("listener", "kinds", "resolved"),
    [
        pytest.param(
            "{name: l, port: 80, protocol: http}",
            ["HTTPRoute", "GRPCRoute"],
            ("True", "ResolvedRefs"),
            id="protocols are case-insensitive",
        ),
        pytest.param(
            "{name: l, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: FooRoute}]}}",
            [],
            ("False", "InvalidRouteKinds"),
            id="an unknown route kind leaves no supported kinds",
        ),
        pytest.param(
            "{name: l, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: HTTPRoute}, {kind: TCPRoute}]}}",
            ["HTTPRoute"],
            ("False", "InvalidRouteKinds"),
            id="valid kinds are kept beside invalid ones",
        ),
        pytest.param(
            "{name: l, port: 443, protocol: TLS, tls: {mode: Passthrough}}",
            ["TLSRoute"],
            ("True", "ResolvedRefs"),
            id="a Passthrough listener carries TLSRoutes",
        ),
        pytest.param(
            "{name: l, port: 443, protocol: TLS, tls: {certificateRefs: [{name: cert}]}}",
            ["TLSRoute", "TCPRoute"],
            ("True", "ResolvedRefs"),
            id="a Terminate TLS listener carries TLSRoutes and TCPRoutes",
        ),
        pytest.param(
            "{name: l, port: 53, protocol: UDP}",
            ["UDPRoute"],
            ("True", "ResolvedRefs"),
            id="a UDP listener carries UDPRoutes",
        ),
    ],
)
def test_supported_kinds(listener: str, kinds: list[str], resolved: tuple[str, str]) -> None:
    status = _listener(_gw(gateway(f"- {listener}")), "l")
    assert [k for _, k in status.supported_kinds] == kinds
    assert _cond(status, ConditionType.RESOLVED_REFS) == resolved


def test_gateway_resolved_refs_summarizes_listeners() -> None:
    gw = _gw(gateway(HTTPS.format(ref="{name: nope}")))
    assert _cond(gw, ConditionType.RESOLVED_REFS) == ("False", "ListenersNotResolved")


def test_overlapping_tls_hostnames_are_flagged_on_both_listeners_only() -> None:
    # ListenerConditionOverlappingTLSConfig: A foo.example.com, B foo.example.org,
    # C *.example.com -> A and C overlap, B does not.
    listeners = "\n".join(
        f"- {{name: {n}, port: 443, protocol: HTTPS, hostname: '{h}', tls: {{certificateRefs: [{{name: cert}}]}}}}"
        for n, h in (("a", "foo.example.com"), ("b", "foo.example.org"), ("c", "*.example.com"))
    )
    gw = _gw(gateway(listeners))
    flagged = {
        lst.name
        for lst in gw.listeners
        if lst.condition(ConditionType.OVERLAPPING_TLS_CONFIG) is not None
    }
    assert flagged == {"a", "c"}


@pytest.mark.parametrize(
    ("extra", "condition", "expected"),
    [
        pytest.param(
            "addresses: [{type: Hostname, value: gw.example.com}]",
            ConditionType.ACCEPTED,
            ("False", "UnsupportedAddress"),
            id="a Hostname address is UnsupportedAddress",
        ),
        pytest.param(
            "addresses: [{type: IPAddress}]",
            ConditionType.PROGRAMMED,
            ("False", "AddressNotAssigned"),
            id="an IPAddress without value is AddressNotAssigned",
        ),
        pytest.param(
            "addresses: [{type: IPAddress, value: 192.0.2.1}]",
            ConditionType.PROGRAMMED,
            ("True", "Programmed"),
            id="a given IPAddress is programmed",
        ),
        pytest.param(
            "infrastructure: {parametersRef: {group: '', kind: ConfigMap, name: p}}",
            ConditionType.ACCEPTED,
            ("False", "InvalidParameters"),
            id="infrastructure parametersRef is InvalidParameters",
        ),
        pytest.param(
            "tls: {backend: {clientCertificateRef: {name: cert, namespace: other}}}",
            ConditionType.RESOLVED_REFS,
            ("False", "RefNotPermitted"),
            id="a client certificate in another namespace needs a grant",
        ),
        pytest.param(
            "tls: {backend: {clientCertificateRef: {name: nope}}}",
            ConditionType.RESOLVED_REFS,
            ("False", "InvalidClientCertificateRef"),
            id="a missing client certificate is InvalidClientCertificateRef",
        ),
    ],
)
def test_gateway_conditions(
    extra: str, condition: ConditionType, expected: tuple[str, str]
) -> None:
    gw = _gw(gateway("- {name: l, port: 80, protocol: HTTP}", extra=extra))
    assert _cond(gw, condition) == expected


def test_gateway_status_addresses_are_the_requested_ips() -> None:
    gw = _gw(
        gateway(
            "- {name: l, port: 80, protocol: HTTP}", extra="addresses: [{value: '2001:db8::1'}]"
        )
    )
    assert gw.addresses == (("IPAddress", "2001:db8::1"),)


def test_gateway_class_conditions() -> None:
    w = world(
        dedent(
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: GatewayClass
            metadata: {name: with-params}
            spec:
              controllerName: netlet.dev/gateway-controller
              parametersRef: {group: example.com, kind: Params, name: p}
            """
        ),
        gateway("- {name: l, port: 80, protocol: HTTP}").replace(
            "gatewayClassName: netlet", "gatewayClassName: with-params"
        ),
    )
    ours = w.gateway_class("netlet")
    assert ours is not None
    assert [(c.type.value, c.status, c.reason.value) for c in ours.conditions] == [
        ("Accepted", "True", "Accepted"),
        ("SupportedVersion", "True", "SupportedVersion"),
    ]
    params = w.gateway_class("with-params")
    assert params is not None and params.conditions[0].reason.value == "InvalidParameters"
    other = w.gateway_class("other-class")
    assert other is not None and not other.managed and other.conditions == ()
    gw = w.gateway("infra", "gw")
    assert gw is not None and _cond(gw, ConditionType.ACCEPTED) == ("False", "Invalid")
    assert "infra/gw" not in w.programs


FRONTEND = """
tls:
  frontend:
    default:
      validation: {{caCertificateRefs: [{{group: '', kind: {kind}, name: {name}}}]{mode}}}
"""
CA_CONFIGMAP = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca, namespace: infra}\n"
    "data:\n  ca.crt: |\n" + "\n".join("    " + line for line in CA_PEM.splitlines())
)


@pytest.mark.parametrize(
    ("kind", "name", "accepted", "resolved"),
    [
        pytest.param(
            "ConfigMap",
            "ca",
            ("True", "Accepted"),
            ("True", "ResolvedRefs"),
            id="a ConfigMap with ca.crt validates clients",
        ),
        pytest.param(
            "ConfigMap",
            "nope",
            ("False", "NoValidCACertificate"),
            ("False", "InvalidCACertificateRef"),
            id="a missing CA ConfigMap leaves no valid CA",
        ),
        pytest.param(
            "Service",
            "web",
            ("False", "NoValidCACertificate"),
            ("False", "InvalidCACertificateKind"),
            id="a CA reference of another kind is InvalidCACertificateKind",
        ),
    ],
)
def test_frontend_client_certificate_validation(
    kind: str, name: str, accepted: tuple[str, str], resolved: tuple[str, str]
) -> None:
    extra = FRONTEND.format(kind=kind, name=name, mode="")
    gw = _gw(gateway(HTTPS.format(ref="{name: cert}"), extra=extra), CA_CONFIGMAP)
    listener = _listener(gw, "s")
    assert _cond(listener, ConditionType.ACCEPTED) == accepted
    assert _cond(listener, ConditionType.RESOLVED_REFS) == resolved


def test_insecure_frontend_fallback_is_announced_on_the_gateway() -> None:
    extra = FRONTEND.format(kind="ConfigMap", name="ca", mode=", mode: AllowInsecureFallback")
    w = world(gateway(HTTPS.format(ref="{name: cert}"), extra=extra), CA_CONFIGMAP)
    gw = w.gateway("infra", "gw")
    assert gw is not None
    assert _cond(gw, ConditionType.INSECURE_FRONTEND_VALIDATION_MODE) == (
        "True",
        "ConfigurationChanged",
    )
    listener = w.programs["infra/gw"].listeners[0].info
    assert listener.tls is not None and listener.tls.frontend_validation is not None
    assert listener.tls.frontend_validation.mode == "AllowInsecureFallback"
    assert b"BEGIN CERTIFICATE" in listener.tls.frontend_validation.ca_bundle


def test_https_without_tls_is_not_accepted() -> None:
    # ListenerTLSConfig: "This field is required if the Protocol field is HTTPS".
    listener = _listener(_gw(gateway("- {name: l, port: 443, protocol: HTTPS}")), "l")
    assert _cond(listener, ConditionType.ACCEPTED) == ("False", "UnsupportedValue")


def test_programmed_listener_carries_its_certificate_to_the_table() -> None:
    w = world(gateway(HTTPS.format(ref="{name: cert}")))
    (table,) = w.programs["infra/gw"].listeners
    assert table.info.tls is not None
    (certificate,) = table.info.tls.certificates
    assert certificate.secret == "infra/cert"
    assert certificate.cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
