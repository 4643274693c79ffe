"""ClusterState: the indexed store of every object, emitting change events.

Objects are immutable; the store maps (kind, namespace, name) to the current
object and keeps secondary indexes (by namespace, pods by node, pods by IP).
Every change produces an `Event`, so brains and backends can be incremental:
`replace_all()` diffs a whole new set of objects against the store and emits
only what changed (a reload of the manifests).
"""

from __future__ import annotations

import builtins
import enum
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from netlet.cluster.config import ClusterConfig
from netlet.resources.base import Resource
from netlet.resources.core import NAMESPACE_NAME_LABEL, Namespace, Node, Pod
from netlet.resources.diagnostics import ObjectRef, Origin

T = TypeVar("T", bound=Resource)


class EventType(enum.StrEnum):
    ADDED = "Added"
    MODIFIED = "Modified"
    DELETED = "Deleted"


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    ref: ObjectRef
    old: Resource | None
    new: Resource | None


def ref_of(obj: Resource) -> ObjectRef:
    return ObjectRef(obj.KIND, obj.namespace, obj.name)


Listener = Callable[[Event], None]


class ClusterState:
    """The store. Reads are cheap; writes keep the indexes and notify listeners."""

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig()
        self.revision = 0
        self._objects: dict[str, dict[tuple[str, str], Resource]] = defaultdict(dict)
        self._origins: dict[ObjectRef, Origin] = {}
        self._names: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._pods_by_node: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._pods_by_ip: dict[str, Pod] = {}
        self._listeners: list[Listener] = []

    # Reading ------------------------------------------------------------------------

    def get(self, kind: type[T], namespace: str, name: str) -> T | None:
        obj = self._objects.get(kind.KIND, {}).get((namespace, name))
        return obj if isinstance(obj, kind) else None

    def list(self, kind: type[T], namespace: str | None = None) -> builtins.list[T]:
        """Objects of a kind, sorted by namespace then name (deterministic output)."""
        bucket = self._objects.get(kind.KIND, {})
        if namespace is None:
            keys = sorted(bucket)
        else:
            keys = [(namespace, n) for n in sorted(self._names.get((kind.KIND, namespace), ()))]
        return [obj for key in keys if isinstance(obj := bucket[key], kind)]

    def namespaces_in_use(self, kind: type[Resource]) -> builtins.list[str]:
        return sorted({ns for (k, ns), names in self._names.items() if k == kind.KIND and names})

    def count(self, kind: type[Resource]) -> int:
        return len(self._objects.get(kind.KIND, {}))

    def kinds(self) -> builtins.list[str]:
        return sorted(k for k, v in self._objects.items() if v)

    def all_objects(self) -> Iterator[Resource]:
        for kind in sorted(self._objects):
            bucket = self._objects[kind]
            for key in sorted(bucket):
                yield bucket[key]

    def origin(self, obj: Resource | ObjectRef) -> Origin | None:
        ref = obj if isinstance(obj, ObjectRef) else ref_of(obj)
        return self._origins.get(ref)

    def pods_on_node(self, node: str) -> builtins.list[Pod]:
        bucket = self._objects.get(Pod.KIND, {})
        return [
            p
            for key in sorted(self._pods_by_node.get(node, ()))
            if isinstance(p := bucket[key], Pod)
        ]

    def pod_by_ip(self, ip: str) -> Pod | None:
        return self._pods_by_ip.get(ip)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        ns = self.get(Namespace, "", namespace)
        if ns is None:
            return {NAMESPACE_NAME_LABEL: namespace}
        return ns.labels

    def node(self, name: str) -> Node | None:
        return self.get(Node, "", name)

    # Writing ------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` on every change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def apply(self, obj: Resource, origin: Origin | None = None) -> Event | None:
        """Add or replace an object. No event when nothing changed."""
        key = (obj.namespace, obj.name)
        bucket = self._objects[obj.KIND]
        old = bucket.get(key)
        ref = ref_of(obj)
        if origin is not None:
            self._origins[ref] = origin
        if old is not None and old == obj:
            return None
        if old is not None:
            self._unindex(old)
        bucket[key] = obj
        self._index(obj)
        event = Event(EventType.ADDED if old is None else EventType.MODIFIED, ref, old, obj)
        self._emit(event)
        return event

    def delete(self, kind: type[Resource] | str, namespace: str, name: str) -> Event | None:
        kind_name = kind if isinstance(kind, str) else kind.KIND
        old = self._objects.get(kind_name, {}).pop((namespace, name), None)
        if old is None:
            return None
        self._unindex(old)
        ref = ref_of(old)
        self._origins.pop(ref, None)
        event = Event(EventType.DELETED, ref, old, None)
        self._emit(event)
        return event

    def replace_all(
        self, objects: Iterable[tuple[Resource, Origin | None]]
    ) -> builtins.list[Event]:
        """Make the store hold exactly `objects`; return the events (deletes last)."""
        wanted: dict[ObjectRef, tuple[Resource, Origin | None]] = {
            ref_of(obj): (obj, origin) for obj, origin in objects
        }
        events = []
        for ref in sorted(wanted, key=lambda r: (r.kind, r.namespace, r.name)):
            obj, origin = wanted[ref]
            event = self.apply(obj, origin)
            if event is not None:
                events.append(event)
        stale = [
            ref_of(obj)
            for bucket in self._objects.values()
            for obj in bucket.values()
            if ref_of(obj) not in wanted
        ]
        for ref in sorted(stale, key=lambda r: (r.kind, r.namespace, r.name)):
            event = self.delete(ref.kind, ref.namespace, ref.name)
            if event is not None:
                events.append(event)
        return events

    def _index(self, obj: Resource) -> None:
        self._names[(obj.KIND, obj.namespace)].add(obj.name)
        if isinstance(obj, Pod):
            if obj.spec.node_name:
                self._pods_by_node[obj.spec.node_name].add((obj.namespace, obj.name))
            if not obj.spec.host_network:
                for ip in obj.ips:
                    self._pods_by_ip[ip] = obj

    def _unindex(self, obj: Resource) -> None:
        self._names[(obj.KIND, obj.namespace)].discard(obj.name)
        if isinstance(obj, Pod):
            if obj.spec.node_name:
                self._pods_by_node[obj.spec.node_name].discard((obj.namespace, obj.name))
            for ip in obj.ips:
                if self._pods_by_ip.get(ip) is obj:
                    del self._pods_by_ip[ip]

    def _emit(self, event: Event) -> None:
        self.revision += 1
        for listener in list(self._listeners):
            listener(event)
