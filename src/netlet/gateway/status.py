"""The status a conformant controller would write, as values and in Kubernetes form.

Values (`GatewayStatus`, `RouteStatus`, ...) are what `netlet.gateway.build`
computes; `to_api()` renders one object as the API server would serve it after
the controller's status update: `apiVersion`, `kind`, `metadata` (name,
namespace, generation) and `status` with metav1.Conditions (type, status,
reason, message, observedGeneration, lastTransitionTime).

The brain never reads the clock: the caller passes `now` (RFC 3339) for
lastTransitionTime; the default is the Unix epoch the CRDs use in their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netlet.gateway.conditions import Condition, ConditionType, find
from netlet.resources.gateway_api import GROUP

EPOCH = "1970-01-01T00:00:00Z"
API_VERSION = f"{GROUP}/v1"


@dataclass(frozen=True, slots=True)
class ParentKey:
    """A parentRef (or ancestorRef) with its defaults filled in."""

    group: str
    kind: str
    namespace: str
    name: str
    section_name: str | None = None
    port: int | None = None

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "group": self.group,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }
        if self.section_name is not None:
            out["sectionName"] = self.section_name
        if self.port is not None:
            out["port"] = self.port
        return out

    def __str__(self) -> str:
        section = f"/{self.section_name}" if self.section_name else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.kind} {self.namespace}/{self.name}{section}{port}"


def _conditions(conditions: tuple[Condition, ...], now: str) -> list[dict[str, Any]]:
    return [
        {
            "type": c.type.value,
            "status": c.status,
            "reason": c.reason.value,
            "message": c.message,
            "observedGeneration": c.observed_generation,
            "lastTransitionTime": now,
        }
        for c in conditions
    ]


def _meta(name: str, namespace: str, generation: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["generation"] = generation
    return meta


@dataclass(frozen=True, slots=True)
class GatewayClassStatus:
    name: str
    generation: int
    controller_name: str
    managed: bool
    conditions: tuple[Condition, ...]

    def condition(self, type_: ConditionType) -> Condition | None:
        return find(self.conditions, type_)

    def to_api(self, now: str = EPOCH) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": "GatewayClass",
            "metadata": _meta(self.name, "", self.generation),
            "status": {"conditions": _conditions(self.conditions, now)},
        }


@dataclass(frozen=True, slots=True)
class ListenerStatus:
    name: str
    supported_kinds: tuple[tuple[str, str], ...]
    attached_routes: int
    conditions: tuple[Condition, ...]
    port: int = 0
    protocol: str = ""
    hostname: str | None = None

    def condition(self, type_: ConditionType) -> Condition | None:
        return find(self.conditions, type_)

    def to_api(self, now: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "supportedKinds": [{"group": g, "kind": k} for g, k in self.supported_kinds],
            "attachedRoutes": self.attached_routes,
            "conditions": _conditions(self.conditions, now),
        }


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    namespace: str
    name: str
    generation: int
    class_name: str
    managed: bool
    addresses: tuple[tuple[str, str], ...]
    conditions: tuple[Condition, ...]
    listeners: tuple[ListenerStatus, ...]
    attached_listener_sets: int | None = None

    def condition(self, type_: ConditionType) -> Condition | None:
        return find(self.conditions, type_)

    def listener(self, name: str) -> ListenerStatus | None:
        return next((lst for lst in self.listeners if lst.name == name), None)

    def to_api(self, now: str = EPOCH) -> dict[str, Any]:
        status: dict[str, Any] = {}
        if self.addresses:
            status["addresses"] = [{"type": t, "value": v} for t, v in self.addresses]
        status["conditions"] = _conditions(self.conditions, now)
        if self.listeners:
            status["listeners"] = [lst.to_api(now) for lst in self.listeners]
        if self.attached_listener_sets is not None:
            status["attachedListenerSets"] = self.attached_listener_sets
        return {
            "apiVersion": API_VERSION,
            "kind": "Gateway",
            "metadata": _meta(self.name, self.namespace, self.generation),
            "status": status,
        }


@dataclass(frozen=True, slots=True)
class ListenerSetStatus:
    namespace: str
    name: str
    generation: int
    gateway: str | None  # "ns/name" of the parent
    managed: bool
    conditions: tuple[Condition, ...]
    listeners: tuple[ListenerStatus, ...]

    def condition(self, type_: ConditionType) -> Condition | None:
        return find(self.conditions, type_)

    def listener(self, name: str) -> ListenerStatus | None:
        return next((lst for lst in self.listeners if lst.name == name), None)

    def to_api(self, now: str = EPOCH) -> dict[str, Any]:
        status: dict[str, Any] = {"conditions": _conditions(self.conditions, now)}
        if self.listeners:
            status["listeners"] = [lst.to_api(now) for lst in self.listeners]
        return {
            "apiVersion": API_VERSION,
            "kind": "ListenerSet",
            "metadata": _meta(self.name, self.namespace, self.generation),
            "status": status,
        }


@dataclass(frozen=True, slots=True)
class RouteParentStatus:
    parent: ParentKey
    controller_name: str
    conditions: tuple[Condition, ...]
    listeners: tuple[str, ...] = ()  # where it attached (for display; not API)

    def condition(self, type_: ConditionType) -> Condition | None:
        return find(self.conditions, type_)

    @property
    def accepted(self) -> bool:
        accepted = self.condition(ConditionType.ACCEPTED)
        return accepted is not None and accepted.status == "True"

    def to_api(self, now: str) -> dict[str, Any]:
        return {
            "parentRef": self.parent.to_api(),
            "controllerName": self.controller_name,
            "conditions": _conditions(self.conditions, now),
        }


@dataclass(frozen=True, slots=True)
class RouteStatus:
    kind: str
    namespace: str
    name: str
    generation: int
    parents: tuple[RouteParentStatus, ...]
    api_version: str = API_VERSION

    def parent(self, name: str, kind: str = "Gateway") -> RouteParentStatus | None:
        return next(
            (p for p in self.parents if p.parent.name == name and p.parent.kind == kind), None
        )

    def to_api(self, now: str = EPOCH) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": _meta(self.name, self.namespace, self.generation),
            "status": {"parents": [p.to_api(now) for p in self.parents]},
        }


@dataclass(frozen=True, slots=True)
class PolicyAncestorStatus:
    ancestor: ParentKey
    controller_name: str
    conditions: tuple[Condition, ...]

    def condition(self, type_: ConditionType) -> Condition | None:
        return find(self.conditions, type_)

    def to_api(self, now: str) -> dict[str, Any]:
        return {
            "ancestorRef": self.ancestor.to_api(),
            "controllerName": self.controller_name,
            "conditions": _conditions(self.conditions, now),
        }


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    kind: str
    namespace: str
    name: str
    generation: int
    ancestors: tuple[PolicyAncestorStatus, ...]
    conditions: tuple[Condition, ...] = ()  # the policy's own verdict, for display

    def condition(self, type_: ConditionType) -> Condition | None:
        return find(self.conditions, type_)

    def to_api(self, now: str = EPOCH) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "metadata": _meta(self.name, self.namespace, self.generation),
            "status": {"ancestors": [a.to_api(now) for a in self.ancestors]},
        }
