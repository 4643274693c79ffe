"""Gateway API problems as `netlet check` findings (warnings, so check exits 1).

Everything a status condition reports as unhealthy becomes one finding on the
object, with the field path of the offending part (spec.listeners[i],
spec.parentRefs[i]) and the condition's reason, plus the `Note`s that have no
status field (missing parents, shadowed L4 routes, Gateways without a class).
"""

from __future__ import annotations

from netlet.cluster.state import ClusterState
from netlet.gateway.build import GatewayWorld, build_world
from netlet.gateway.conditions import Condition
from netlet.gateway.status import GatewayStatus, ListenerSetStatus
from netlet.resources.base import Resource
from netlet.resources.diagnostics import Diagnostic, ObjectRef, warning
from netlet.resources.gateway_api import (
    BackendTLSPolicy,
    Gateway,
    GatewayClass,
    GRPCRoute,
    HTTPRoute,
    ListenerSet,
    TCPRoute,
    TLSRoute,
    UDPRoute,
)

KINDS: dict[str, type[Resource]] = {
    k.KIND: k
    for k in (
        Gateway,
        GatewayClass,
        ListenerSet,
        HTTPRoute,
        GRPCRoute,
        TLSRoute,
        TCPRoute,
        UDPRoute,
        BackendTLSPolicy,
    )
}


def _bad(conditions: tuple[Condition, ...]) -> list[Condition]:
    return [c for c in conditions if not c.ok]


def _finding(
    state: ClusterState, kind: str, namespace: str, name: str, path: str, message: str, code: str
) -> Diagnostic:
    ref = ObjectRef(kind, namespace, name)
    return warning(message, origin=state.origin(ref), obj=ref, path=path, code=code)


def _describe(bad: list[Condition]) -> str:
    return "; ".join(f"{c.type.value}={c.status} ({c.reason.value}): {c.message}" for c in bad)


def _listener_owner_findings(
    state: ClusterState, kind: str, owner: GatewayStatus | ListenerSetStatus, code: str
) -> list[Diagnostic]:
    """A Gateway or ListenerSet that is not ready, and each of its listeners that is not."""
    out = []
    bad = _bad(owner.conditions)
    if bad:
        out.append(_finding(state, kind, owner.namespace, owner.name, "", _describe(bad), code))
    for i, listener in enumerate(owner.listeners):
        bad = _bad(listener.conditions)
        if bad:
            message = f"listener {listener.name}: {_describe(bad)}"
            path = f"spec.listeners[{i}]"
            out.append(
                _finding(
                    state,
                    kind,
                    owner.namespace,
                    owner.name,
                    path,
                    message,
                    "gateway-listener-not-ready",
                )
            )
    return out


def world_findings(state: ClusterState, world: GatewayWorld) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for gc in world.classes:
        bad = _bad(gc.conditions)
        if gc.managed and bad:
            out.append(
                _finding(
                    state,
                    "GatewayClass",
                    "",
                    gc.name,
                    "",
                    _describe(bad),
                    "gateway-class-not-accepted",
                )
            )
    for gw in world.gateways:
        if gw.managed:
            out += _listener_owner_findings(state, "Gateway", gw, "gateway-not-ready")
    for ls in world.listener_sets:
        out += _listener_owner_findings(state, "ListenerSet", ls, "listenerset-not-ready")
    for route in world.routes:
        obj = state.get(KINDS[route.kind], route.namespace, route.name)
        refs = list(getattr(getattr(obj, "spec", None), "parent_refs", ()))
        for parent in route.parents:
            bad = _bad(parent.conditions)
            if not bad:
                continue
            index = next(
                (
                    i
                    for i, ref in enumerate(refs)
                    if (ref.kind, ref.name, ref.section_name, ref.port)
                    == (
                        parent.parent.kind,
                        parent.parent.name,
                        parent.parent.section_name,
                        parent.parent.port,
                    )
                    and (ref.namespace or route.namespace) == parent.parent.namespace
                ),
                None,
            )
            path = f"spec.parentRefs[{index}]" if index is not None else ""
            out.append(
                _finding(
                    state,
                    route.kind,
                    route.namespace,
                    route.name,
                    path,
                    f"{parent.parent}: {_describe(bad)}",
                    "gateway-route-not-accepted",
                )
            )
    for policy in world.policies:
        bad = _bad(policy.conditions)
        if bad:
            out.append(
                _finding(
                    state,
                    policy.kind,
                    policy.namespace,
                    policy.name,
                    "",
                    _describe(bad),
                    "backendtlspolicy-not-accepted",
                )
            )
    for note in world.notes:
        out.append(
            _finding(state, note.kind, note.namespace, note.name, "", note.message, note.code)
        )
    return out


def gateway_findings(state: ClusterState) -> list[Diagnostic]:
    """The FINDERS entry for `netlet check`."""
    return world_findings(state, build_world(state))
