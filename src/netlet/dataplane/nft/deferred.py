"""Deferred deletions: partial syncs that only add, and the collection that tidies up.

Owns how a partial sync keeps deletions off its critical path, and what the
later *collection* transaction removes.

Why (measured in docs/nftables.md, "Deletions wait for the kernel"): on this
kernel an `nft -f` holding any deletion takes 10-15 ms more than one that only
adds, whatever it deletes. The kernel frees deleted objects after an RCU grace
period, in a work item, and closing nft's netlink socket waits for that work
(net/netfilter/nf_tables_api.c: nft_rcv_nl_event calls
nf_tables_trans_destroy_flush_work). A moved endpoint is a map key taking a new
value, which nft writes as a delete plus an add.

So, where the renderer declares it harmless (`desired.Deferral`):

- a key of a map with `moves` that takes a new value keeps its old element; the
  new value goes to a *spare* key (`SPARE_BASE` up) and the `moves` map gets
  `key : spare`. The rules look `moves` up first (a miss leaves the key as it
  is), so new connections get the new value at once;
- an element of a `linger` set that goes stays in the kernel for a while.

`defer` rewrites a partial sync's `TableDiff` into one without deletions, or
says it cannot (a chain or set goes, a deletion nobody declared deferrable, a
key already moved, too much pending). `settle` folds everything pending into a
change that deletes anyway, or into an empty one: the collection. After either,
the kernel holds exactly the desired table again.

Invariants: the kernel holds the mirror (the last desired table that applied)
plus `Pending`: for each moved key its stale element, spare element and
redirect; each lingering element. A key with a pending move is not moved again
before it is settled, and the mirror never claims a lingering element (a sync
that claims it again takes it over). `Pending` holds at most `MAX_PENDING`
moves and `MAX_PENDING` lingering elements.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netlet.dataplane.nft.desired import Deferral, Key
from netlet.dataplane.nft.model import Element

if TYPE_CHECKING:
    from netlet.dataplane.nft.sync import TableDiff

# Spare keys of `moves` maps: [SPARE_BASE, SPARE_BASE + MAX_PENDING). Renderers keep
# their own keys below SPARE_BASE (services.SlotBook checks it).
SPARE_BASE = 1 << 30
# Bound of what waits for a collection; a sync that would exceed it settles instead.
MAX_PENDING = 256
# Seconds a deferred deletion waits before a collection removes it (kube-proxy waits
# one second before deleting a stale chain).
COLLECT_AFTER = 1.0

ElementKey = tuple[str, Key]


@dataclass(frozen=True, slots=True)
class Move:
    """A map key whose new value waits under a spare key."""

    stale: Element  # what the kernel still holds at the key
    current: Element  # the desired element at the key: what the collection writes
    spare: Element  # the new value under the spare key
    redirect: Element  # key : spare, in the moves map
    since: float


@dataclass(frozen=True, slots=True)
class Pending:
    """What the kernel holds beyond the mirror."""

    moves: Mapping[ElementKey, Move] = field(default_factory=dict)
    linger: Mapping[ElementKey, tuple[Element, float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.moves) + len(self.linger)

    def oldest(self) -> float | None:
        times = [m.since for m in self.moves.values()] + [t for _, t in self.linger.values()]
        return min(times) if times else None

    def due(self, now: float) -> bool:
        oldest = self.oldest()
        return oldest is not None and now - oldest >= COLLECT_AFTER

    def free_spares(self) -> list[int]:
        used = {int(m.spare.key[0]) for m in self.moves.values()}
        return [SPARE_BASE + i for i in range(MAX_PENDING) if SPARE_BASE + i not in used]


NOTHING = Pending()


def blocks(change: TableDiff) -> bool:
    """True when the change deletes something no deferral can express: chains, sets."""
    return bool(
        change.changed_chains
        or change.removed_chains
        or change.removed_sets
        or change.redefined_sets
    )


def defer(
    change: TableDiff, pending: Pending, deferrals: Mapping[str, Deferral], now: float
) -> tuple[TableDiff, Pending] | None:
    """`change` written without deletions, and what is pending after it; None when
    it cannot be (then the caller settles instead)."""
    if blocks(change):
        return None
    adds = {(e.set, e.key): e for e in change.element_adds}
    moves = dict(pending.moves)
    linger = dict(pending.linger)
    spares: list[int] | None = None
    moved: list[Move] = []
    for old in change.element_deletes:
        ek = (old.set, old.key)
        rule = deferrals.get(old.set)
        if rule is None:
            return None
        if rule.moves is not None:
            new = adds.get(ek)
            if new is None or ek in moves or len(old.key) != 1 or not old.key[0].isdigit():
                return None  # a key that goes, or one already moved: settle
            if spares is None:
                spares = pending.free_spares()
            if not spares:
                return None
            spare = Element(old.set, (str(spares.pop(0)),), new.value, new.comment)
            move = Move(old, new, spare, Element(rule.moves, old.key, spare.key), now)
            moves[ek] = move
            moved.append(move)
        elif rule.linger and old.value is None and len(linger) < MAX_PENDING:
            linger[ek] = (old, now)
        else:
            return None
    moved_keys = {(m.current.set, m.current.key) for m in moved}
    kept = []
    for new in change.element_adds:
        ek = (new.set, new.key)
        if ek in moved_keys:
            continue  # written under its spare key
        if ek in pending.linger:
            del linger[ek]  # claimed again: the kernel still holds it
            continue
        kept.append(new)
    kept.extend(m.spare for m in moved)
    kept.extend(m.redirect for m in moved)
    fast = dataclasses.replace(change, element_deletes=(), element_adds=tuple(kept))
    return fast, Pending(moves, linger)


def settle(change: TableDiff, pending: Pending) -> TableDiff:
    """`change` plus the removal of everything pending (an empty change: the collection)."""
    if not pending:
        return change
    gone = set(change.removed_sets) | set(change.redefined_sets)  # elements go with the set
    deletes = {(e.set, e.key): e for e in change.element_deletes}
    adds = {(e.set, e.key): e for e in change.element_adds}
    stale: list[Element] = []
    spares: list[Element] = []
    rewrites: list[Element] = []
    for ek, move in pending.moves.items():
        if ek in deletes:
            deletes[ek] = move.stale  # the change rewrites or removes the key itself
        elif move.stale.set not in gone:
            stale.append(move.stale)
            rewrites.append(move.current)
        spares.extend(e for e in (move.spare, move.redirect) if e.set not in gone)
    for ek, (elem, _) in pending.linger.items():
        if ek in adds:
            del adds[ek]  # claimed again: it stays
        elif elem.set not in gone:
            stale.append(elem)
    # Grouped by set (a stable sort): one statement per set.
    return dataclasses.replace(
        change,
        element_deletes=tuple(sorted((*stale, *spares, *deletes.values()), key=_by_set)),
        element_adds=tuple(sorted((*adds.values(), *rewrites), key=_by_set)),
    )


def _by_set(elem: Element) -> str:
    return elem.set
