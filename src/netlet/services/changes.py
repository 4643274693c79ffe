"""What changed between two service tables of one node: the input to partial syncs.

A backend that programmed `old` needs, to reach `new`: a full resync when a
node-wide setting moved (node IPs, nodeport addresses, CIDRs, masquerade-all),
otherwise only the `ServiceChange`s, each holding the old and new entries of one
Service (empty on one side when the Service came or went). Entries that did not
change are the same objects in both tables, so diffing is cheap; the
incremental builder (netlet.services.builder) produces the same `TableDiff`
without looking at unchanged Services at all.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from netlet.services.table import (
    Endpoint,
    ServiceName,
    ServicePortEntry,
    ServicePortName,
    ServiceTable,
)


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    MODIFIED = "modified"


@dataclass(frozen=True, slots=True)
class ServiceChange:
    service: ServiceName
    old: tuple[ServicePortEntry, ...]
    new: tuple[ServicePortEntry, ...]

    @property
    def kind(self) -> ChangeKind:
        if not self.old:
            return ChangeKind.ADDED
        if not self.new:
            return ChangeKind.REMOVED
        return ChangeKind.MODIFIED

    @property
    def added_ports(self) -> tuple[ServicePortName, ...]:
        before = {e.name for e in self.old}
        return tuple(e.name for e in self.new if e.name not in before)

    @property
    def removed_ports(self) -> tuple[ServicePortName, ...]:
        after = {e.name for e in self.new}
        return tuple(e.name for e in self.old if e.name not in after)

    @property
    def modified_ports(self) -> tuple[ServicePortName, ...]:
        before = {e.name: e for e in self.old}
        return tuple(e.name for e in self.new if e.name in before and before[e.name] != e)

    def endpoint_delta(
        self, port: ServicePortName
    ) -> tuple[tuple[Endpoint, ...], tuple[Endpoint, ...]]:
        """(added, removed) reachable endpoints of one port: the endpoint chains and
        affinity sets a backend creates and deletes."""
        old = next((e for e in self.old if e.name == port), None)
        new = next((e for e in self.new if e.name == port), None)
        before = {(ep.ip, ep.port): ep for ep in (old.reachable_endpoints if old else ())}
        after = {(ep.ip, ep.port): ep for ep in (new.reachable_endpoints if new else ())}
        added = tuple(ep for key, ep in after.items() if key not in before)
        removed = tuple(ep for key, ep in before.items() if key not in after)
        return added, removed


@dataclass(frozen=True, slots=True)
class TableDiff:
    node: str
    full_sync: bool  # no previous table, or a node-wide setting changed
    services: tuple[ServiceChange, ...]
    table: ServiceTable  # the new table

    def __bool__(self) -> bool:
        return self.full_sync or bool(self.services)

    def service(self, name: ServiceName) -> ServiceChange | None:
        return next((c for c in self.services if c.service == name), None)


def service_change(
    name: ServiceName, old: tuple[ServicePortEntry, ...], new: tuple[ServicePortEntry, ...]
) -> ServiceChange | None:
    if old == new:
        return None
    return ServiceChange(name, old, new)


def diff_tables(old: ServiceTable | None, new: ServiceTable) -> TableDiff:
    """Per-Service changes from `old` to `new` (every Service is added when `old` is None)."""
    if old is None:
        changes = [
            ServiceChange(name, (), new.entries_of(name)) for name in sorted(new.services.keys())
        ]
        return TableDiff(new.node, True, tuple(changes), new)
    names: Iterable[ServiceName] = set(old.services.keys()) | set(new.services.keys())
    changes = []
    for name in sorted(names):
        old_keys = old.services.get(name, ())
        new_keys = new.services.get(name, ())
        if old_keys == new_keys and all(old.entries[k] is new.entries[k] for k in new_keys):
            continue
        change = service_change(name, old.entries_of(name), new.entries_of(name))
        if change is not None:
            changes.append(change)
    full = old.settings != new.settings
    return TableDiff(new.node, full, tuple(changes), new)
