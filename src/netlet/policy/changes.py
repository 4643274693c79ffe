"""What changed between two policy programs, in the terms a kernel backend syncs.

Rules name groups by selector, so most cluster changes (pods created, deleted,
relabelled, rescheduled) leave every tier identical and only move addresses
between groups: a partial sync adds and removes set elements. `rules_changed`
says when the tiers themselves differ (a policy was added, removed or edited)
and the rules must be rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass

from netlet.policy.program import PolicyProgram
from netlet.resources.net import AddressSet


@dataclass(frozen=True, slots=True)
class SetChange:
    """Elements to add to and remove from one named set."""

    name: str
    added: AddressSet
    removed: AddressSet


@dataclass(frozen=True, slots=True)
class ProgramChanges:
    rules_changed: bool
    created: tuple[str, ...]  # sets that exist only in the new program
    deleted: tuple[str, ...]  # sets that exist only in the old program
    updated: tuple[SetChange, ...]  # sets in both whose elements differ

    @property
    def empty(self) -> bool:
        return not (self.rules_changed or self.created or self.deleted or self.updated)


def _sets(program: PolicyProgram) -> dict[str, AddressSet]:
    sets = {g.id: g.addresses for g in program.pod_groups}
    sets.update((g.id, g.addresses) for g in program.node_groups)
    sets.update((g.id, g.addresses) for g in program.domain_groups)
    return sets


def diff_programs(old: PolicyProgram, new: PolicyProgram) -> ProgramChanges:
    before, after = _sets(old), _sets(new)
    updated = tuple(
        SetChange(name, after[name] - before[name], before[name] - after[name])
        for name in sorted(before.keys() & after.keys())
        if after[name] != before[name]
    )
    return ProgramChanges(
        rules_changed=old.tiers != new.tiers,
        created=tuple(sorted(after.keys() - before.keys())),
        deleted=tuple(sorted(before.keys() - after.keys())),
        updated=updated,
    )
