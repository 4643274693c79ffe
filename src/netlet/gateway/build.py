"""The gateway controller as a pure function: ClusterState -> GatewayWorld.

`build_world(state)` decides, for every Gateway API object netlet manages (its
GatewayClass controllerName is NETLET_CONTROLLER_NAME), the status a conformant
controller would write, and the precomputed tables a data plane serves
(`GatewayProgram` per Programmed Gateway, `MeshProgram` for GAMMA routes).

Order of work: GatewayClasses; BackendTLSPolicies (backends need them); per
managed Gateway its ListenerSets and merged, validated listeners; every route's
parentRefs (attachment), compiled rules and per-parent conditions; attachedRoutes;
Gateway and ListenerSet conditions; tables; BackendTLSPolicy ancestors.

Objects of other controllers are skipped; Gateways whose class does not exist
keep the CRD default status (Pending). Things worth telling a user that have no
status field (parents that do not exist, TCP routes shadowed on one listener)
are `Note`s, turned into `netlet check` findings by `netlet.gateway.findings`.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netlet.cluster.state import ClusterState
from netlet.gateway.attach import Attachment, attach_to_listeners, attach_to_service, parent_key
from netlet.gateway.backends import BackendResolver
from netlet.gateway.certs import tls_secret_problem
from netlet.gateway.compile import (
    Attached,
    build_grpc_table,
    build_http_table,
    build_tls_table,
    pick_l4_rule,
)
from netlet.gateway.conditions import (
    Condition,
    ConditionType,
    GatewayClassReason,
    GatewayReason,
    RouteReason,
    cond,
)
from netlet.gateway.hostnames import listener_specificity
from netlet.gateway.listeners import (
    ListenerSetAttachment,
    MergedListener,
    listener_conditions,
    listener_set_conditions,
    listener_sets_of,
    merge_listeners,
)
from netlet.gateway.policy import PolicyIndex, build_policy_index
from netlet.gateway.refs import Grants
from netlet.gateway.routes import AnyRoute, CompiledRoute, compile_route
from netlet.gateway.status import (
    GatewayClassStatus,
    GatewayStatus,
    ListenerSetStatus,
    ListenerStatus,
    ParentKey,
    PolicyAncestorStatus,
    PolicyStatus,
    RouteParentStatus,
    RouteStatus,
)
from netlet.gateway.table import (
    Certificate,
    GatewayProgram,
    ListenerInfo,
    ListenerTable,
    MeshPort,
    MeshProgram,
    MeshRoutes,
    PortTable,
)
from netlet.resources.base import Resource
from netlet.resources.core import Secret, Service
from netlet.resources.gateway_api import (
    GROUP,
    NETLET_CONTROLLER_NAME,
    Gateway,
    GatewayClass,
    GRPCRoute,
    HTTPRoute,
    ListenerSet,
    TCPRoute,
    TLSRoute,
    UDPRoute,
)

ROUTE_TYPES: tuple[type[Resource], ...] = (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute)


@dataclass(frozen=True, slots=True)
class Note:
    """Something a user should know that no status field carries."""

    kind: str
    namespace: str
    name: str
    message: str
    code: str
    severity: str = "warning"


@dataclass(frozen=True, slots=True)
class GatewayWorld:
    classes: tuple[GatewayClassStatus, ...] = ()
    gateways: tuple[GatewayStatus, ...] = ()
    listener_sets: tuple[ListenerSetStatus, ...] = ()
    routes: tuple[RouteStatus, ...] = ()
    policies: tuple[PolicyStatus, ...] = ()
    programs: Mapping[str, GatewayProgram] = field(default_factory=dict, compare=False)
    mesh: MeshProgram = field(default_factory=MeshProgram)
    notes: tuple[Note, ...] = ()

    def gateway(self, namespace: str, name: str) -> GatewayStatus | None:
        return next((g for g in self.gateways if (g.namespace, g.name) == (namespace, name)), None)

    def route(self, kind: str, namespace: str, name: str) -> RouteStatus | None:
        return next(
            (r for r in self.routes if (r.kind, r.namespace, r.name) == (kind, namespace, name)),
            None,
        )

    def listener_set(self, namespace: str, name: str) -> ListenerSetStatus | None:
        return next(
            (s for s in self.listener_sets if (s.namespace, s.name) == (namespace, name)), None
        )

    def gateway_class(self, name: str) -> GatewayClassStatus | None:
        return next((c for c in self.classes if c.name == name), None)

    def policy(self, namespace: str, name: str) -> PolicyStatus | None:
        return next((p for p in self.policies if (p.namespace, p.name) == (namespace, name)), None)


@dataclass
class _GatewayContext:
    gateway: Gateway
    key: str
    sets: list[ListenerSetAttachment]
    listeners: list[MergedListener]
    accepted: tuple[bool, GatewayReason, str] = (True, GatewayReason.ACCEPTED, "")
    class_accepted: bool = True
    addresses: tuple[tuple[str, str], ...] = ()
    address_problem: tuple[GatewayReason, str] | None = None
    client_certificate: Certificate | None = None
    client_problem: tuple[GatewayReason, str] | None = None
    attached: dict[int, list[Attached]] = field(default_factory=lambda: defaultdict(list))
    attached_routes: dict[int, set[tuple[str, str, str]]] = field(
        default_factory=lambda: defaultdict(set)
    )
    backend_services: set[tuple[str, str]] = field(default_factory=set)

    @property
    def is_accepted(self) -> bool:
        return self.accepted[0]


def _generation(obj: Resource) -> int:
    return obj.metadata.generation or 1


def _class_status(gc: GatewayClass) -> GatewayClassStatus:
    gen = _generation(gc)
    managed = gc.spec.controller_name == NETLET_CONTROLLER_NAME
    if not managed:
        return GatewayClassStatus(gc.name, gen, gc.spec.controller_name, False, ())
    if gc.spec.parameters_ref is not None:
        ref = gc.spec.parameters_ref
        accepted = cond(
            ConditionType.ACCEPTED,
            False,
            GatewayClassReason.INVALID_PARAMETERS,
            f"parametersRef {ref.group}/{ref.kind} {ref.name}: netlet supports no parameters",
            gen,
        )
    else:
        accepted = cond(
            ConditionType.ACCEPTED,
            True,
            GatewayClassReason.ACCEPTED,
            "GatewayClass is accepted by netlet",
            gen,
        )
    supported = cond(
        ConditionType.SUPPORTED_VERSION,
        True,
        GatewayClassReason.SUPPORTED_VERSION,
        "netlet implements Gateway API v1.6",
        gen,
    )
    return GatewayClassStatus(gc.name, gen, gc.spec.controller_name, True, (accepted, supported))


def _pending(gen: int) -> tuple[Condition, ...]:
    """The CRD default status: no controller has reconciled the object."""
    return (
        cond(ConditionType.ACCEPTED, None, GatewayReason.PENDING, "Waiting for controller", gen),
        cond(ConditionType.PROGRAMMED, None, GatewayReason.PENDING, "Waiting for controller", gen),
    )


class _Builder:
    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.grants = Grants.from_state(state)
        self.policies: PolicyIndex = build_policy_index(state)
        self.resolver = BackendResolver(state, self.grants, self.policies)
        self.notes: list[Note] = []
        self.classes: dict[str, GatewayClassStatus] = {}
        self.contexts: dict[str, _GatewayContext] = {}
        self.unmanaged_gateways: list[GatewayStatus] = []
        self.compiled: dict[tuple[str, str, str, bool], CompiledRoute] = {}
        self.route_statuses: list[RouteStatus] = []
        self.mesh_items: dict[tuple[str, str, int, str, str], list[Attached]] = defaultdict(list)
        self.mesh_port_names: dict[tuple[str, str, int], str | None] = {}
        self.mesh_seen: set[tuple[tuple[str, str, int, str, str], tuple[str, str, str]]] = set()

    # Gateways ------------------------------------------------------------------------

    def gateways(self) -> None:
        for gc in self.state.list(GatewayClass):
            self.classes[gc.name] = _class_status(gc)
        for gateway in self.state.list(Gateway):
            class_status = self.classes.get(gateway.spec.gateway_class_name)
            if class_status is None:
                self.unmanaged_gateways.append(
                    GatewayStatus(
                        gateway.namespace,
                        gateway.name,
                        _generation(gateway),
                        gateway.spec.gateway_class_name,
                        False,
                        (),
                        _pending(_generation(gateway)),
                        (),
                    )
                )
                self.notes.append(
                    Note(
                        "Gateway",
                        gateway.namespace,
                        gateway.name,
                        f"GatewayClass {gateway.spec.gateway_class_name} does not exist; "
                        "no controller will program this Gateway",
                        "gateway-class-missing",
                    )
                )
                continue
            if not class_status.managed:
                continue
            self.contexts[f"{gateway.namespace}/{gateway.name}"] = self._gateway_context(
                gateway, class_status
            )

    def _gateway_context(
        self, gateway: Gateway, class_status: GatewayClassStatus
    ) -> _GatewayContext:
        sets = listener_sets_of(self.state, gateway)
        listeners = merge_listeners(self.state, self.grants, gateway, sets)
        ctx = _GatewayContext(gateway, f"{gateway.namespace}/{gateway.name}", sets, listeners)
        class_accepted = class_status.conditions[0].status == "True"
        ctx.class_accepted = class_accepted
        addresses = []
        for address in gateway.spec.addresses:
            if address.type != "IPAddress":
                ctx.accepted = (
                    False,
                    GatewayReason.UNSUPPORTED_ADDRESS,
                    f"address type {address.type} is not supported (only IPAddress)",
                )
            elif not address.value:
                ctx.address_problem = (
                    GatewayReason.ADDRESS_NOT_ASSIGNED,
                    "netlet does not assign addresses: give an IPAddress value",
                )
            else:
                addresses.append(("IPAddress", str(ipaddress.ip_address(address.value))))
        ctx.addresses = tuple(addresses)
        infrastructure = gateway.spec.infrastructure
        if not class_accepted:
            ctx.accepted = (
                False,
                GatewayReason.INVALID,
                f"GatewayClass {gateway.spec.gateway_class_name} is not Accepted",
            )
        elif infrastructure is not None and infrastructure.parameters_ref is not None:
            ref = infrastructure.parameters_ref
            ctx.accepted = (
                False,
                GatewayReason.INVALID_PARAMETERS,
                f"infrastructure.parametersRef {ref.group}/{ref.kind} {ref.name}: netlet supports "
                "no parameters",
            )
        elif ctx.accepted[0] and not any(
            ml.is_accepted for ml in listeners if ml.owner_kind == "Gateway"
        ):
            ctx.accepted = (False, GatewayReason.LISTENERS_NOT_VALID, "no listener is Accepted")
        elif ctx.accepted[0] and not all(
            ml.is_accepted for ml in listeners if ml.owner_kind == "Gateway"
        ):
            bad = [
                ml.spec.name
                for ml in listeners
                if ml.owner_kind == "Gateway" and not ml.is_accepted
            ]
            ctx.accepted = (
                True,
                GatewayReason.LISTENERS_NOT_VALID,
                f"listeners not valid: {', '.join(bad)}",
            )
        self._client_certificate(ctx)
        return ctx

    def _client_certificate(self, ctx: _GatewayContext) -> None:
        tls = ctx.gateway.spec.tls
        if tls is None or tls.backend is None or tls.backend.client_certificate_ref is None:
            return
        ref = tls.backend.client_certificate_ref
        namespace = ref.namespace or ctx.gateway.namespace
        where = f"spec.tls.backend.clientCertificateRef {ref.kind} {namespace}/{ref.name}"
        if (ref.group, ref.kind) != ("", "Secret"):
            ctx.client_problem = (
                GatewayReason.INVALID_CLIENT_CERTIFICATE_REF,
                f"{where}: unsupported kind",
            )
            return
        if not self.grants.permits(
            GROUP, "Gateway", ctx.gateway.namespace, "", "Secret", namespace, ref.name
        ):
            ctx.client_problem = (
                GatewayReason.REF_NOT_PERMITTED,
                f"{where}: no ReferenceGrant allows it",
            )
            return
        secret = self.state.get(Secret, namespace, ref.name)
        problem = "not found" if secret is None else tls_secret_problem(secret)
        if secret is None or problem:
            ctx.client_problem = (
                GatewayReason.INVALID_CLIENT_CERTIFICATE_REF,
                f"{where}: {problem}",
            )
            return
        ctx.client_certificate = Certificate(
            f"{namespace}/{ref.name}",
            secret.value("tls.crt") or b"",
            secret.value("tls.key") or b"",
        )

    # Routes --------------------------------------------------------------------------

    def compiled_route(self, route: AnyRoute, mesh: bool) -> CompiledRoute:
        key = (route.KIND, route.namespace, route.name, mesh)
        found = self.compiled.get(key)
        if found is None:
            found = self.compiled[key] = compile_route(route, self.resolver, mesh)
        return found

    def routes(self) -> None:
        mesh_claims: dict[tuple[str, str, int, str, str], set[str]] = defaultdict(set)
        pending: list[tuple[AnyRoute, list[tuple[Attachment, CompiledRoute]]]] = []
        for kind in ROUTE_TYPES:
            for route in self.state.list(kind):
                typed: AnyRoute = route  # type: ignore[assignment]
                results = []
                for ref in typed.spec.parent_refs:
                    attachment = self._attach(typed, ref)
                    if attachment is None:
                        continue
                    compiled = self.compiled_route(typed, attachment.kind == "mesh")
                    results.append((attachment, compiled))
                    if attachment.accepted and attachment.kind == "mesh":
                        for port, _ in attachment.mesh_ports:
                            mesh_claims[self._mesh_group(attachment, typed, port)].add(typed.KIND)
                if not typed.spec.parent_refs:
                    self.notes.append(
                        Note(
                            typed.KIND,
                            typed.namespace,
                            typed.name,
                            "route has no parentRefs",
                            "route-no-parent",
                        )
                    )
                pending.append((typed, results))
        for route, results in pending:
            self._finish_route(route, results, mesh_claims)

    def _mesh_group(
        self, attachment: Attachment, route: Resource, port: int
    ) -> tuple[str, str, int, str, str]:
        key = attachment.key
        consumer = route.namespace if attachment.role == "consumer" else ""
        return (key.namespace, key.name, port, attachment.role, consumer)

    def _attach(self, route: AnyRoute, ref: Any) -> Attachment | None:
        key = parent_key(route, ref)
        if key.group == "" and key.kind == "Service":
            attachment = attach_to_service(self.state, route, key)
            if attachment is None:
                self._missing(route, key)
            return attachment
        if key.group != GROUP:
            return None
        if key.kind == "Gateway":
            ctx = self.contexts.get(f"{key.namespace}/{key.name}")
            if ctx is None:
                if self.state.get(Gateway, key.namespace, key.name) is None:
                    self._missing(route, key)
                return None
            own = [ml for ml in ctx.listeners if ml.owner_kind == "Gateway"]
            return attach_to_listeners(self.state, route, key, ctx.key, own, f"Gateway {ctx.key}")
        if key.kind == "ListenerSet":
            ls = self.state.get(ListenerSet, key.namespace, key.name)
            if ls is None:
                self._missing(route, key)
                return None
            gw_ref = ls.spec.parent_ref
            ctx = self.contexts.get(f"{gw_ref.namespace or ls.namespace}/{gw_ref.name}")
            if ctx is None:
                return None
            attached = next((a for a in ctx.sets if a.obj is ls), None)
            if attached is None or not attached.allowed:
                return Attachment(
                    key,
                    "gateway",
                    False,
                    RouteReason.NO_MATCHING_PARENT,
                    f"ListenerSet {key.namespace}/{key.name} is not attached to Gateway {ctx.key}",
                    ctx.key,
                )
            own = [
                ml
                for ml in ctx.listeners
                if ml.owner_kind == "ListenerSet" and ml.owner == f"{ls.namespace}/{ls.name}"
            ]
            return attach_to_listeners(
                self.state, route, key, ctx.key, own, f"ListenerSet {key.namespace}/{key.name}"
            )
        return None

    def _missing(self, route: Resource, key: ParentKey) -> None:
        self.notes.append(
            Note(
                route.KIND,
                route.namespace,
                route.name,
                f"parentRef {key.kind} {key.namespace}/{key.name} does not exist",
                "route-parent-missing",
            )
        )

    def _finish_route(
        self,
        route: AnyRoute,
        results: list[tuple[Attachment, CompiledRoute]],
        mesh_claims: dict[tuple[str, str, int, str, str], set[str]],
    ) -> None:
        gen = _generation(route)
        parents = []
        for attachment, compiled in results:
            accepted = attachment.accepted
            reason, message = attachment.reason, attachment.message
            partially: Condition | None = None
            if accepted and attachment.kind == "mesh" and route.KIND == "HTTPRoute":
                ports = [p for p, _ in attachment.mesh_ports]
                if all(
                    "GRPCRoute" in mesh_claims[self._mesh_group(attachment, route, p)]
                    for p in ports
                ):
                    accepted, reason = False, RouteReason.CONFLICTED
                    message = (
                        "GRPCRoutes already route this Service port "
                        "(GEP-1294 route type precedence)"
                    )
            if accepted and compiled.dropped:
                dropped = "; ".join(why for _, why in compiled.dropped)
                if len(compiled.dropped) >= compiled.rule_count:
                    accepted, reason = False, RouteReason.UNSUPPORTED_VALUE
                    message = f"no rule can be implemented: {dropped}"
                else:
                    indexes = ", ".join(str(i) for i, _ in compiled.dropped)
                    partially = cond(
                        ConditionType.PARTIALLY_INVALID,
                        True,
                        RouteReason.UNSUPPORTED_VALUE,
                        f"Dropped Rule(s) {indexes}: {dropped}",
                        gen,
                    )
            conditions = [cond(ConditionType.ACCEPTED, accepted, reason, message, gen)]
            if compiled.ref_problems:
                first = compiled.ref_problems[0][0]
                text = "; ".join(m for _, m in compiled.ref_problems)
                conditions.append(cond(ConditionType.RESOLVED_REFS, False, first, text, gen))
            else:
                conditions.append(
                    cond(
                        ConditionType.RESOLVED_REFS,
                        True,
                        RouteReason.RESOLVED_REFS,
                        "All references resolved",
                        gen,
                    )
                )
            if partially is not None:
                conditions.append(partially)
            names = tuple(
                f"{ml.owner_kind} {ml.owner}/{ml.spec.name}" for ml, _ in attachment.listeners
            ) + tuple(f"port {p}" for p, _ in attachment.mesh_ports)
            parents.append(
                RouteParentStatus(attachment.key, NETLET_CONTROLLER_NAME, tuple(conditions), names)
            )
            if accepted:
                self._record(route, attachment, compiled)
        self.route_statuses.append(
            RouteStatus(route.KIND, route.namespace, route.name, gen, tuple(parents))
        )

    def _record(self, route: AnyRoute, attachment: Attachment, compiled: CompiledRoute) -> None:
        route_key = (route.KIND, route.namespace, route.name)
        if attachment.kind == "mesh":
            key = attachment.key
            for port, port_name in attachment.mesh_ports:
                group = self._mesh_group(attachment, route, port)
                if (group, route_key) not in self.mesh_seen:
                    self.mesh_seen.add((group, route_key))
                    self.mesh_items[group].append((compiled, ()))
                self.mesh_port_names[(key.namespace, key.name, port)] = port_name
            return
        assert attachment.gateway is not None
        ctx = self.contexts[attachment.gateway]
        for ml, hostnames in attachment.listeners:
            if route_key in ctx.attached_routes[ml.index]:
                continue
            ctx.attached_routes[ml.index].add(route_key)
            ctx.attached[ml.index].append((compiled, hostnames))
        for backend in _backend_services(compiled):
            ctx.backend_services.add(backend)

    # Statuses and programs -----------------------------------------------------------

    def gateway_status(self, ctx: _GatewayContext) -> GatewayStatus:
        gateway = ctx.gateway
        gen = _generation(gateway)
        accepted_ok, accepted_reason, accepted_message = ctx.accepted
        conditions = [
            cond(
                ConditionType.ACCEPTED,
                accepted_ok,
                accepted_reason,
                accepted_message or "Gateway is accepted",
                gen,
            )
        ]
        programmed = self.programmed(ctx)
        if programmed:
            conditions.append(
                cond(
                    ConditionType.PROGRAMMED,
                    True,
                    GatewayReason.PROGRAMMED,
                    "Gateway is programmed",
                    gen,
                )
            )
        elif ctx.address_problem is not None and accepted_ok:
            conditions.append(
                cond(
                    ConditionType.PROGRAMMED,
                    False,
                    ctx.address_problem[0],
                    ctx.address_problem[1],
                    gen,
                )
            )
        else:
            why = accepted_message if not accepted_ok else "no listener can be programmed"
            conditions.append(
                cond(ConditionType.PROGRAMMED, False, GatewayReason.INVALID, why, gen)
            )
        unresolved = [
            ml.spec.name for ml in ctx.listeners if ml.owner_kind == "Gateway" and ml.resolved
        ]
        if ctx.client_problem is not None:
            conditions.append(
                cond(
                    ConditionType.RESOLVED_REFS,
                    False,
                    ctx.client_problem[0],
                    ctx.client_problem[1],
                    gen,
                )
            )
        elif unresolved:
            conditions.append(
                cond(
                    ConditionType.RESOLVED_REFS,
                    False,
                    GatewayReason.LISTENERS_NOT_RESOLVED,
                    f"listeners with unresolved references: {', '.join(unresolved)}",
                    gen,
                )
            )
        else:
            conditions.append(
                cond(
                    ConditionType.RESOLVED_REFS,
                    True,
                    GatewayReason.RESOLVED_REFS,
                    "All references resolved",
                    gen,
                )
            )
        if any(ml.insecure_fallback for ml in ctx.listeners):
            conditions.append(
                cond(
                    ConditionType.INSECURE_FRONTEND_VALIDATION_MODE,
                    True,
                    GatewayReason.CONFIGURATION_CHANGED,
                    "frontend TLS validation allows insecure fallback (AllowInsecureFallback)",
                    gen,
                )
            )
        listeners = tuple(
            self._listener_status(ctx, ml) for ml in ctx.listeners if ml.owner_kind == "Gateway"
        )
        attached_sets = sum(
            1
            for a in ctx.sets
            if a.allowed
            and listener_set_conditions(a, ctx.listeners, ctx.is_accepted, programmed)[0].status
            == "True"
        )
        return GatewayStatus(
            gateway.namespace,
            gateway.name,
            gen,
            gateway.spec.gateway_class_name,
            True,
            ctx.addresses,
            tuple(conditions),
            listeners,
            attached_sets,
        )

    def _listener_status(self, ctx: _GatewayContext, ml: MergedListener) -> ListenerStatus:
        return ListenerStatus(
            ml.spec.name,
            ml.supported_kinds,
            len(ctx.attached_routes.get(ml.index, ())),
            listener_conditions(ml, ctx.is_accepted),
            ml.spec.port,
            ml.spec.protocol,
            ml.spec.hostname,
        )

    def programmed(self, ctx: _GatewayContext) -> bool:
        return (
            ctx.is_accepted
            and ctx.address_problem is None
            and any(ml.programmable for ml in ctx.listeners)
        )

    def listener_set_statuses(self) -> list[ListenerSetStatus]:
        out = []
        for ctx in self.contexts.values():
            programmed = self.programmed(ctx)
            for attachment in ctx.sets:
                ls = attachment.obj
                conditions = listener_set_conditions(
                    attachment, ctx.listeners, ctx.is_accepted, programmed
                )
                listeners: tuple[ListenerStatus, ...] = ()
                if attachment.allowed:
                    listeners = tuple(
                        self._listener_status(ctx, ml)
                        for ml in ctx.listeners
                        if ml.owner_kind == "ListenerSet"
                        and ml.owner == f"{ls.namespace}/{ls.name}"
                    )
                out.append(
                    ListenerSetStatus(
                        ls.namespace, ls.name, _generation(ls), ctx.key, True, conditions, listeners
                    )
                )
        for ls in self.state.list(ListenerSet):
            ref = ls.spec.parent_ref
            gw_key = f"{ref.namespace or ls.namespace}/{ref.name}"
            if gw_key in self.contexts or ref.kind != "Gateway":
                continue
            if self.state.get(Gateway, ref.namespace or ls.namespace, ref.name) is None:
                self.notes.append(
                    Note(
                        "ListenerSet",
                        ls.namespace,
                        ls.name,
                        f"parent Gateway {gw_key} does not exist",
                        "listenerset-parent-missing",
                    )
                )
        return out

    def program(self, ctx: _GatewayContext) -> GatewayProgram | None:
        if not self.programmed(ctx):
            return None
        tables: list[ListenerTable] = []
        for ml in ctx.listeners:
            if not ml.programmable:
                continue
            if ml.owner_kind == "ListenerSet":
                attachment = next(
                    a for a in ctx.sets if f"{a.obj.namespace}/{a.obj.name}" == ml.owner
                )
                if (
                    listener_set_conditions(attachment, ctx.listeners, True, True)[0].status
                    != "True"
                ):
                    continue
            tables.append(self._listener_table(ctx, ml))
        ports: dict[tuple[str, int], list[ListenerTable]] = defaultdict(list)
        for table in tables:
            ports[(table.info.transport, table.info.port)].append(table)
        port_tables = {
            key: PortTable(
                key[0],  # type: ignore[arg-type]
                key[1],
                tuple(sorted(items, key=lambda t: listener_specificity(t.info.hostname))),
            )
            for key, items in ports.items()
        }
        return GatewayProgram(
            gateway=ctx.key,
            addresses=tuple(value for _, value in ctx.addresses),
            listeners=tuple(tables),
            client_certificate=ctx.client_certificate,
            ports=port_tables,
        )

    def _listener_table(self, ctx: _GatewayContext, ml: MergedListener) -> ListenerTable:
        assert ml.protocol is not None
        info = ListenerInfo(
            ctx.key,
            "Gateway" if ml.owner_kind == "Gateway" else "ListenerSet",
            ml.owner,
            ml.spec.name,
            ml.spec.port,
            ml.protocol,  # type: ignore[arg-type]
            ml.spec.hostname,
            ml.tls_ir(),
        )
        items = ctx.attached.get(ml.index, [])
        by_kind: dict[str, list[Attached]] = defaultdict(list)
        for compiled, hostnames in items:
            by_kind[compiled.ref.kind].append((compiled, hostnames))
        if ml.protocol in ("HTTP", "HTTPS"):
            return ListenerTable(
                info,
                http=build_http_table(by_kind["HTTPRoute"]),
                grpc=build_grpc_table(by_kind["GRPCRoute"]),
            )
        if ml.protocol == "TLS":
            l4, shadowed = pick_l4_rule(by_kind["TCPRoute"])
            self._shadowed(ml, shadowed)
            return ListenerTable(info, tls=build_tls_table(by_kind["TLSRoute"]), l4=l4)
        kind = "TCPRoute" if ml.protocol == "TCP" else "UDPRoute"
        l4, shadowed = pick_l4_rule(by_kind[kind])
        self._shadowed(ml, shadowed)
        return ListenerTable(info, l4=l4)

    def _shadowed(self, ml: MergedListener, routes: list[CompiledRoute]) -> None:
        for compiled in routes:
            self.notes.append(
                Note(
                    compiled.ref.kind,
                    compiled.ref.namespace,
                    compiled.ref.name,
                    f"attached to {ml.owner_kind} {ml.owner} listener {ml.spec.name}, which "
                    "forwards to one route only (the oldest); this route gets no traffic",
                    "route-shadowed",
                )
            )

    def mesh(self) -> MeshProgram:
        grouped: dict[tuple[str, str, int], dict[tuple[str, str], list[Attached]]] = defaultdict(
            dict
        )
        for (ns, name, port, role, consumer), items in self.mesh_items.items():
            grouped[(ns, name, port)][(role, consumer)] = items
        ports: dict[tuple[str, str, int], MeshPort] = {}
        for (ns, name, port), roles in grouped.items():
            service = self.state.get(Service, ns, name)
            cluster_ips = tuple(
                ipaddress.ip_address(ip)
                for ip in (service.spec.cluster_ips if service is not None else ())
                if ip and ip != "None"
            )
            producer = None
            consumers: dict[str, MeshRoutes] = {}
            for (role, consumer), items in roles.items():
                routes = MeshRoutes(
                    build_http_table([i for i in items if i[0].ref.kind == "HTTPRoute"], True),
                    build_grpc_table([i for i in items if i[0].ref.kind == "GRPCRoute"], True),
                )
                if role == "producer":
                    producer = routes
                else:
                    consumers[consumer] = routes
            ports[(ns, name, port)] = MeshPort(
                f"{ns}/{name}",
                port,
                self.mesh_port_names.get((ns, name, port)),
                cluster_ips,
                producer,
                consumers,
            )
        return MeshProgram(ports)

    def policy_statuses(self) -> list[PolicyStatus]:
        out = []
        for verdict in self.policies.verdicts:
            policy = verdict.policy
            targets = {(policy.namespace, t.name) for t in policy.spec.target_refs}
            ancestors = []
            for ctx in self.contexts.values():
                if targets & ctx.backend_services:
                    ancestors.append(
                        PolicyAncestorStatus(
                            ParentKey(GROUP, "Gateway", ctx.gateway.namespace, ctx.gateway.name),
                            NETLET_CONTROLLER_NAME,
                            verdict.conditions,
                        )
                    )
            out.append(
                PolicyStatus(
                    policy.KIND,
                    policy.namespace,
                    policy.name,
                    _generation(policy),
                    tuple(ancestors[:16]),  # PolicyStatus.Ancestors MaxItems=16
                    verdict.conditions,
                )
            )
        return out


def _backend_services(compiled: CompiledRoute) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    rules = [rule for rule, _ in compiled.http] + [rule for rule, _ in compiled.grpc]
    backends = [wb for rule in rules for wb in rule.backends] + [
        wb for rule in compiled.l4 for wb in rule.backends
    ]
    for wb in backends:
        key = wb.backend.key
        if (key.group, key.kind) == ("", "Service"):
            out.add((key.namespace, key.name))
    return out


def build_world(state: ClusterState) -> GatewayWorld:
    """Everything netlet's gateway controller decides about `state`."""
    builder = _Builder(state)
    builder.gateways()
    builder.routes()
    gateways = [builder.gateway_status(ctx) for ctx in builder.contexts.values()]
    listener_sets = builder.listener_set_statuses()
    programs = {}
    for key, ctx in builder.contexts.items():
        program = builder.program(ctx)
        if program is not None:
            programs[key] = program
    mesh = builder.mesh()
    policies = builder.policy_statuses()
    all_gateways = sorted(
        gateways + builder.unmanaged_gateways, key=lambda g: (g.namespace, g.name)
    )
    return GatewayWorld(
        classes=tuple(builder.classes[name] for name in sorted(builder.classes)),
        gateways=tuple(all_gateways),
        listener_sets=tuple(sorted(listener_sets, key=lambda s: (s.namespace, s.name))),
        routes=tuple(builder.route_statuses),
        policies=tuple(policies),
        programs=programs,
        mesh=mesh,
        notes=tuple(builder.notes),
    )


def build_programs(state: ClusterState) -> Mapping[str, GatewayProgram]:
    """The data plane's view: one GatewayProgram per Programmed Gateway ("ns/name")."""
    return build_world(state).programs
