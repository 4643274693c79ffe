"""Listeners: the Gateway's own and those its ListenerSets merge in, validated.

Spec sources: apis/v1 gateway_types.go (GatewaySpec.Listeners "Distinct
Listeners", Listener, ListenerTLSConfig, ListenerConditionType), listenerset_types.go
and GEP-1713 (ListenerSet precedence and conflicts).

- Merged order: the Gateway's listeners, then the ListenerSets its
  `allowedListeners` selects, oldest first, then by "{namespace}/{name}".
- Route kinds per protocol (ProtocolType doc, "Document the route kinds compatible
  for each protocolType"): HTTP/HTTPS carry HTTPRoute and GRPCRoute; TLS
  Passthrough carries TLSRoute; TLS Terminate carries TLSRoute and TCPRoute; TCP
  carries TCPRoute; UDP carries UDPRoute. Protocols are case-insensitive.
- Distinctness on one port: HTTP, HTTPS/TLS (one TLS stack, split by SNI), TCP
  and UDP are protocol groups; two groups sharing a TCP port conflict
  (ProtocolConflict); within the HTTP or TLS group the hostname must differ, and
  two TCP (or UDP) listeners on one port always conflict (HostnameConflict).
  Inside one object every indistinct listener is Conflicted ("MUST NOT pick one
  conflicting Listener as the winner"); across objects the earlier one in merged
  order wins (GEP-1713 "Listener and ListenerSet Conflicts").
- TLS listeners on one port whose hostnames overlap get OverlappingTLSConfig.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field

from netlet.cluster.state import ClusterState
from netlet.gateway.certs import ca_bundle, tls_secret_problem
from netlet.gateway.conditions import (
    Condition,
    ConditionType,
    ListenerReason,
    ListenerSetReason,
    cond,
)
from netlet.gateway.hostnames import hostnames_intersect
from netlet.gateway.refs import Grants
from netlet.gateway.table import Certificate, FrontendValidation, ListenerTLS
from netlet.resources.core import ConfigMap, Secret
from netlet.resources.gateway_api import (
    GROUP,
    Gateway,
    Listener,
    ListenerNamespaces,
    ListenerSet,
    RouteNamespaces,
    TLSConfig,
)
from netlet.resources.selectors import compile_selector

HTTP_KINDS = ((GROUP, "HTTPRoute"), (GROUP, "GRPCRoute"))
CORE_PROTOCOLS = ("HTTP", "HTTPS", "TLS", "TCP", "UDP")
PROTOCOL_GROUP = {"HTTP": "http", "HTTPS": "tls", "TLS": "tls", "TCP": "tcp", "UDP": "udp"}


def route_kinds_for(protocol: str, tls_mode: str | None) -> tuple[tuple[str, str], ...]:
    """The route kinds a listener of this protocol (and TLS mode) can carry."""
    if protocol in ("HTTP", "HTTPS"):
        return HTTP_KINDS
    if protocol == "TLS":
        if tls_mode == "Terminate":
            return ((GROUP, "TLSRoute"), (GROUP, "TCPRoute"))
        return ((GROUP, "TLSRoute"),)
    if protocol == "TCP":
        return ((GROUP, "TCPRoute"),)
    if protocol == "UDP":
        return ((GROUP, "UDPRoute"),)
    return ()


def creation_order(timestamp: str | None) -> float:
    """Sort key for metadata.creationTimestamp: older first; missing = newest."""
    if not timestamp:
        return float("inf")
    try:
        when = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def namespace_selected(
    state: ClusterState,
    namespaces: ListenerNamespaces | RouteNamespaces,
    own: str,
    other: str,
) -> bool:
    """allowedListeners / allowedRoutes `from`: All, Same, Selector (None selects nothing)."""
    mode = namespaces.from_
    if mode == "All":
        return True
    if mode == "Same":
        return own == other
    if mode == "Selector":
        if namespaces.selector is None:
            return False
        return compile_selector(namespaces.selector).matches(state.namespace_labels(other))
    return False


@dataclass
class ListenerSetAttachment:
    obj: ListenerSet
    allowed: bool
    message: str


def listener_sets_of(state: ClusterState, gateway: Gateway) -> list[ListenerSetAttachment]:
    """ListenerSets whose parentRef is this Gateway, in merged (precedence) order."""
    out = []
    allowed_listeners = gateway.spec.allowed_listeners
    policy = allowed_listeners.namespaces if allowed_listeners else ListenerNamespaces()
    for ls in state.list(ListenerSet):
        ref = ls.spec.parent_ref
        if ref.group != GROUP or ref.kind != "Gateway":
            continue
        if (ref.namespace or ls.namespace, ref.name) != (gateway.namespace, gateway.name):
            continue
        allowed = namespace_selected(state, policy, gateway.namespace, ls.namespace)
        message = (
            "ListenerSet is attached"
            if allowed
            else (
                f"Gateway {gateway.namespace}/{gateway.name} allowedListeners "
                f"(from {policy.from_}) does not admit namespace {ls.namespace}"
            )
        )
        out.append(ListenerSetAttachment(ls, allowed, message))
    out.sort(
        key=lambda a: (
            creation_order(a.obj.metadata.creation_timestamp),
            a.obj.namespace,
            a.obj.name,
        )
    )
    return out


@dataclass
class MergedListener:
    """One listener while the brain decides about it (mutable only during build)."""

    index: int
    gateway: str  # "ns/name"
    owner_kind: str  # Gateway | ListenerSet
    owner_namespace: str
    owner_name: str
    generation: int
    spec: Listener
    protocol: str | None  # canonical core protocol, None when unsupported
    supported_kinds: tuple[tuple[str, str], ...] = ()
    accepted: tuple[bool, ListenerReason, str] = (True, ListenerReason.ACCEPTED, "")
    resolved: list[tuple[ListenerReason, str]] = field(default_factory=list)
    conflict: tuple[ListenerReason, str] | None = None
    overlapping: str | None = None
    certificates: tuple[Certificate, ...] = ()
    frontend: FrontendValidation | None = None
    insecure_fallback: bool = False
    attached_routes: int = 0

    @property
    def owner(self) -> str:
        return f"{self.owner_namespace}/{self.owner_name}"

    @property
    def needs_certificate(self) -> bool:
        tls = self.spec.tls
        return self.protocol in ("HTTPS", "TLS") and tls is not None and tls.mode == "Terminate"

    @property
    def is_accepted(self) -> bool:
        return self.accepted[0] and self.conflict is None

    @property
    def programmable(self) -> bool:
        if not self.is_accepted or not self.supported_kinds:
            return False
        return not (self.needs_certificate and not self.certificates)

    def tls_ir(self) -> ListenerTLS | None:
        tls = self.spec.tls
        if tls is None or self.protocol not in ("HTTPS", "TLS"):
            return None
        return ListenerTLS(
            mode=tls.mode,
            certificates=self.certificates if tls.mode == "Terminate" else (),
            frontend_validation=self.frontend,
            options=tuple(sorted(tls.options.items())),
        )


def _reject(ml: MergedListener, reason: ListenerReason, message: str) -> None:
    if ml.accepted[0]:
        ml.accepted = (False, reason, message)


def _check_certificates(ml: MergedListener, state: ClusterState, grants: Grants) -> None:
    tls = ml.spec.tls
    if tls is None or tls.mode != "Terminate":
        return
    certs: list[Certificate] = []
    for i, ref in enumerate(tls.certificate_refs):
        namespace = ref.namespace or ml.owner_namespace
        where = f"certificateRefs[{i}] {ref.kind} {namespace}/{ref.name}"
        if (ref.group, ref.kind) != ("", "Secret"):
            ml.resolved.append(
                (ListenerReason.INVALID_CERTIFICATE_REF, f"{where}: unsupported kind")
            )
            continue
        if not grants.permits(
            GROUP, ml.owner_kind, ml.owner_namespace, "", "Secret", namespace, ref.name
        ):
            ml.resolved.append(
                (
                    ListenerReason.REF_NOT_PERMITTED,
                    f"{where}: no ReferenceGrant in {namespace} allows {ml.owner_kind}s "
                    f"from {ml.owner_namespace} to use it",
                )
            )
            continue
        secret = state.get(Secret, namespace, ref.name)
        if secret is None:
            ml.resolved.append((ListenerReason.INVALID_CERTIFICATE_REF, f"{where}: not found"))
            continue
        problem = tls_secret_problem(secret)
        if problem:
            ml.resolved.append((ListenerReason.INVALID_CERTIFICATE_REF, f"{where}: {problem}"))
            continue
        certs.append(
            Certificate(
                f"{namespace}/{ref.name}",
                secret.value("tls.crt") or b"",
                secret.value("tls.key") or b"",
            )
        )
    ml.certificates = tuple(certs)
    if not tls.certificate_refs:
        _reject(
            ml,
            ListenerReason.UNSUPPORTED_VALUE,
            "tls.options without certificateRefs: netlet needs a certificate Secret",
        )


def _check_frontend(
    ml: MergedListener, gateway: Gateway, state: ClusterState, grants: Grants
) -> None:
    """Gateway spec.tls.frontend: client certificate validation for HTTPS listeners."""
    if ml.protocol != "HTTPS" or gateway.spec.tls is None or gateway.spec.tls.frontend is None:
        return
    frontend = gateway.spec.tls.frontend
    config: TLSConfig = next(
        (p.tls for p in frontend.per_port if p.port == ml.spec.port), frontend.default
    )
    validation = config.validation
    if validation is None:
        return
    bundles: list[bytes] = []
    for i, ref in enumerate(validation.ca_certificate_refs):
        namespace = ref.namespace or gateway.namespace
        where = f"caCertificateRefs[{i}] {ref.kind} {namespace}/{ref.name}"
        if ref.group != "" or ref.kind not in ("ConfigMap", "Secret"):
            ml.resolved.append(
                (ListenerReason.INVALID_CA_CERTIFICATE_KIND, f"{where}: unsupported kind")
            )
            continue
        if not grants.permits(
            GROUP, "Gateway", gateway.namespace, "", ref.kind, namespace, ref.name
        ):
            ml.resolved.append(
                (ListenerReason.REF_NOT_PERMITTED, f"{where}: no ReferenceGrant allows it")
            )
            continue
        kind: type[ConfigMap] | type[Secret] = ConfigMap if ref.kind == "ConfigMap" else Secret
        obj = state.get(kind, namespace, ref.name)
        if obj is None:
            ml.resolved.append((ListenerReason.INVALID_CA_CERTIFICATE_REF, f"{where}: not found"))
            continue
        data, problem = ca_bundle(obj)
        if data is None:
            ml.resolved.append((ListenerReason.INVALID_CA_CERTIFICATE_REF, f"{where}: {problem}"))
            continue
        bundles.append(data)
    if not bundles:
        _reject(
            ml,
            ListenerReason.NO_VALID_CA_CERTIFICATE,
            "no valid CA certificate for client certificate validation",
        )
        return
    ml.frontend = FrontendValidation(b"\n".join(bundles), validation.mode)
    ml.insecure_fallback = validation.mode == "AllowInsecureFallback"


def validate_listener(
    ml: MergedListener, gateway: Gateway, state: ClusterState, grants: Grants
) -> None:
    spec = ml.spec
    if ml.protocol is None:
        _reject(
            ml,
            ListenerReason.UNSUPPORTED_PROTOCOL,
            f"protocol {spec.protocol} is not supported "
            f"(netlet serves {', '.join(CORE_PROTOCOLS)})",
        )
        return
    if ml.protocol == "HTTPS" and spec.tls is None:
        _reject(ml, ListenerReason.UNSUPPORTED_VALUE, "tls is required for protocol HTTPS")
        return
    mode = spec.tls.mode if spec.tls is not None else None
    compatible = route_kinds_for(ml.protocol, mode)
    if spec.allowed_routes.kinds:
        kinds = []
        for entry in spec.allowed_routes.kinds:
            key = (entry.group, entry.kind)
            if key in compatible:
                if key not in kinds:
                    kinds.append(key)
            else:
                ml.resolved.append(
                    (
                        ListenerReason.INVALID_ROUTE_KINDS,
                        f"route kind {entry.group}/{entry.kind} is not supported on a "
                        f"{ml.protocol} listener",
                    )
                )
        ml.supported_kinds = tuple(kinds)
    else:
        ml.supported_kinds = compatible
    _check_certificates(ml, state, grants)
    _check_frontend(ml, gateway, state, grants)
    if ml.owner_kind == "ListenerSet" and ml.resolved and ml.accepted[0]:
        # GEP-1713 conformance: an entry whose references do not resolve is not Accepted.
        _reject(ml, ListenerReason.INVALID, ml.resolved[0][1])


def _conflict(a: MergedListener, b: MergedListener) -> ListenerReason | None:
    if a.spec.port != b.spec.port or a.protocol is None or b.protocol is None:
        return None
    group_a, group_b = PROTOCOL_GROUP[a.protocol], PROTOCOL_GROUP[b.protocol]
    if "udp" in (group_a, group_b):
        return ListenerReason.HOSTNAME_CONFLICT if group_a == group_b else None
    if group_a != group_b:
        return ListenerReason.PROTOCOL_CONFLICT
    if group_a == "tcp":
        return ListenerReason.HOSTNAME_CONFLICT
    if (a.spec.hostname or "") == (b.spec.hostname or ""):
        return ListenerReason.HOSTNAME_CONFLICT
    return None


def _describe(ml: MergedListener) -> str:
    return f"{ml.owner_kind} {ml.owner} listener {ml.spec.name}"


def detect_conflicts(listeners: list[MergedListener]) -> None:
    """Mark Conflicted listeners (merged order = precedence order)."""
    for i, later in enumerate(listeners):
        for earlier in listeners[:i]:
            reason = _conflict(earlier, later)
            if reason is None:
                continue
            same_owner = (earlier.owner_kind, earlier.owner) == (later.owner_kind, later.owner)
            what = "protocol" if reason == ListenerReason.PROTOCOL_CONFLICT else "hostname"
            if same_owner:
                if earlier.conflict is None:
                    earlier.conflict = (
                        reason,
                        f"port {later.spec.port} {what} conflicts with {_describe(later)}",
                    )
                if later.conflict is None:
                    later.conflict = (
                        reason,
                        f"port {later.spec.port} {what} conflicts with {_describe(earlier)}",
                    )
            elif earlier.conflict is None and later.conflict is None:
                later.conflict = (
                    reason,
                    f"port {later.spec.port} {what} conflicts with {_describe(earlier)}, "
                    "which takes precedence",
                )
    tls_listeners = [
        ml for ml in listeners if ml.protocol in ("HTTPS", "TLS") and ml.conflict is None
    ]
    for ml in tls_listeners:
        overlaps = [
            other
            for other in tls_listeners
            if other is not ml
            and other.spec.port == ml.spec.port
            and ml.spec.hostname
            and other.spec.hostname
            and ml.spec.hostname != other.spec.hostname
            and hostnames_intersect(ml.spec.hostname, other.spec.hostname)
        ]
        if overlaps:
            ml.overlapping = "hostname overlaps " + ", ".join(_describe(o) for o in overlaps)


def merge_listeners(
    state: ClusterState,
    grants: Grants,
    gateway: Gateway,
    sets: Iterable[ListenerSetAttachment],
) -> list[MergedListener]:
    key = f"{gateway.namespace}/{gateway.name}"
    generation = gateway.metadata.generation or 1
    out: list[MergedListener] = []
    owners: list[tuple[str, str, str, int, tuple[Listener, ...]]] = [
        ("Gateway", gateway.namespace, gateway.name, generation, gateway.spec.listeners)
    ]
    for attachment in sets:
        if attachment.allowed:
            ls = attachment.obj
            owners.append(
                (
                    "ListenerSet",
                    ls.namespace,
                    ls.name,
                    ls.metadata.generation or 1,
                    ls.spec.listeners,
                )
            )
    for kind, namespace, name, gen, listeners in owners:
        for spec in listeners:
            protocol = spec.protocol.upper()
            ml = MergedListener(
                index=len(out),
                gateway=key,
                owner_kind=kind,
                owner_namespace=namespace,
                owner_name=name,
                generation=gen,
                spec=spec,
                protocol=protocol if protocol in CORE_PROTOCOLS else None,
            )
            validate_listener(ml, gateway, state, grants)
            out.append(ml)
    detect_conflicts(out)
    return out


def listener_conditions(ml: MergedListener, gateway_accepted: bool) -> tuple[Condition, ...]:
    gen = ml.generation
    accepted_ok, accepted_reason, accepted_message = ml.accepted
    conditions: list[Condition] = []
    if ml.conflict is not None:
        accepted_ok, accepted_reason = False, ListenerReason.PORT_UNAVAILABLE
        accepted_message = ml.conflict[1]
    conditions.append(
        cond(
            ConditionType.ACCEPTED,
            accepted_ok,
            accepted_reason,
            accepted_message or "Listener is valid",
            gen,
        )
    )
    if ml.resolved:
        reason, _ = ml.resolved[0]
        message = "; ".join(m for _, m in ml.resolved)
        conditions.append(cond(ConditionType.RESOLVED_REFS, False, reason, message, gen))
    else:
        conditions.append(
            cond(
                ConditionType.RESOLVED_REFS,
                True,
                ListenerReason.RESOLVED_REFS,
                "All references resolved",
                gen,
            )
        )
    if ml.conflict is not None:
        conditions.append(cond(ConditionType.CONFLICTED, True, ml.conflict[0], ml.conflict[1], gen))
    else:
        conditions.append(
            cond(ConditionType.CONFLICTED, False, ListenerReason.NO_CONFLICTS, "No conflicts", gen)
        )
    if ml.programmable and gateway_accepted:
        conditions.append(
            cond(
                ConditionType.PROGRAMMED,
                True,
                ListenerReason.PROGRAMMED,
                "Listener is programmed",
                gen,
            )
        )
    else:
        if not gateway_accepted:
            why = "the Gateway is not Accepted"
        elif ml.conflict is not None:
            why = ml.conflict[1]
        elif not accepted_ok:
            why = accepted_message
        elif not ml.supported_kinds:
            why = "no supported route kinds"
        else:
            why = "no usable certificate"
        reason = (
            ListenerReason.PORT_UNAVAILABLE
            if ml.conflict is not None and ml.owner_kind == "ListenerSet"
            else ListenerReason.INVALID
        )
        conditions.append(cond(ConditionType.PROGRAMMED, False, reason, why, gen))
    if ml.overlapping:
        conditions.append(
            cond(
                ConditionType.OVERLAPPING_TLS_CONFIG,
                True,
                ListenerReason.OVERLAPPING_HOSTNAMES,
                ml.overlapping,
                gen,
            )
        )
    return tuple(conditions)


def _counts_for_set(ml: MergedListener) -> bool:
    """GEP-1713 conformance: a ListenerSet is ListenersNotValid only when every entry is
    Conflicted or invalid; entries refused for unresolved references still count
    (the "missing ReferenceGrant" cases keep the set Accepted)."""
    if ml.conflict is not None:
        return False
    return ml.accepted[0] or ml.accepted[1] == ListenerReason.INVALID


def listener_set_conditions(
    attachment: ListenerSetAttachment,
    listeners: list[MergedListener],
    gateway_accepted: bool,
    gateway_programmed: bool,
) -> tuple[Condition, ...]:
    gen = attachment.obj.metadata.generation or 1
    own = [
        ml
        for ml in listeners
        if ml.owner_kind == "ListenerSet"
        and (ml.owner_namespace, ml.owner_name) == (attachment.obj.namespace, attachment.obj.name)
    ]
    if not attachment.allowed:
        reason, message, ok = ListenerSetReason.NOT_ALLOWED, attachment.message, False
    elif not gateway_accepted:
        reason, message, ok = (
            ListenerSetReason.PARENT_NOT_ACCEPTED,
            "the parent Gateway is not Accepted",
            False,
        )
    elif not any(_counts_for_set(ml) for ml in own):
        reason, message, ok = (
            ListenerSetReason.LISTENERS_NOT_VALID,
            "no listener of this ListenerSet is Accepted",
            False,
        )
    else:
        reason, message, ok = ListenerSetReason.ACCEPTED, "ListenerSet is accepted", True
    accepted = cond(ConditionType.ACCEPTED, ok, reason, message, gen)
    if ok and not gateway_programmed:
        programmed = cond(
            ConditionType.PROGRAMMED,
            False,
            ListenerSetReason.PARENT_NOT_PROGRAMMED,
            "the parent Gateway is not Programmed",
            gen,
        )
    elif ok and not any(ml.programmable for ml in own):
        programmed = cond(
            ConditionType.PROGRAMMED,
            False,
            ListenerSetReason.LISTENERS_NOT_VALID,
            "no listener of this ListenerSet can be programmed",
            gen,
        )
    elif ok:
        programmed = cond(
            ConditionType.PROGRAMMED,
            True,
            ListenerSetReason.PROGRAMMED,
            "ListenerSet is programmed",
            gen,
        )
    else:
        programmed = cond(ConditionType.PROGRAMMED, False, reason, message, gen)
    return (accepted, programmed)
