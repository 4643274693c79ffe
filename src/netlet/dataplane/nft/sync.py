"""Full and partial syncs of one table: compute -> diff -> render -> apply.

Owns the sync state machine of kube-proxy's nftables mode, as small functions:

- `full_sync(desired)`: one transaction that replaces the table whole
  (`add table; delete table; add table ...`: atomic, and nothing stale can
  survive it). Used first, after a failed sync, and when `settings` changed.
- `diff(mirror, index, desired)`: what changed between what the kernel holds
  (the mirror: the last desired table that applied, and its `Index` of chain,
  set and element owners) and the new desired table. Only fragments that are
  not the same object as in the mirror are looked at. Pure; never reads the
  kernel.
- `partial_sync(change, ...)`: the transaction sending only those changes. A
  retired chain is flushed at once and deleted by a later sync (upstream's
  stale chains: older kernels notice that a deleted map element no longer
  points at a chain only a moment later).
- `Syncer`: holds `needs_full_sync`, the mirror, its index, the stale chains and
  the deletions left `Pending` (netlet.dataplane.nft.deferred), and applies
  each transaction with one runner call. A partial sync whose deletions can
  all be deferred only adds (a deletion costs the kernel 10-15 ms whatever it
  deletes); one that must delete also takes everything pending. `collect()`
  removes what waited once it is due.

Invariant: after `Syncer.sync` or `Syncer.collect` returns, the kernel holds
exactly the desired table plus flushed stale chains awaiting deletion and the
`Pending` deletions (each harmless, as the renderer declared); when either
raises, the kernel is unchanged (one `nft -f` is one atomic transaction) and
the next sync is full.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from netlet.dataplane.nft.deferred import NOTHING, Pending, defer, settle
from netlet.dataplane.nft.desired import EMPTY, ChainSpec, DesiredTable, Fragment, Key, SetSpec
from netlet.dataplane.nft.fake import chain_refs, set_refs
from netlet.dataplane.nft.gcpause import paused_gc
from netlet.dataplane.nft.model import Chain, Element, NftError, Table, Transaction

# Seconds a flushed chain waits before it is deleted (kube-proxy waits one second).
STALE_CHAIN_GRACE = 1.0


class Runner(Protocol):
    def run(self, tx: Transaction) -> None: ...


def full_sync(desired: DesiredTable) -> Transaction:
    """Replace the table with `desired` in one transaction."""
    with paused_gc():
        return _full_sync(desired)


def _full_sync(desired: DesiredTable) -> Transaction:
    tx = Transaction(desired.family, desired.name)
    tx.add(Table())
    tx.delete(Table())
    tx.add(Table(comment=desired.comment))
    chains = desired.chains()
    for spec in chains.values():
        tx.add(spec.chain)
    for sspec in desired.sets().values():
        tx.add(sspec.definition)
    for elems in desired.elements().values():
        for elem in elems.values():
            tx.add(elem)
    for spec in chains.values():
        for rule in spec.rules:
            tx.add(rule)
    return tx


# The fragments claiming one element key: one id (the usual case, cheap to hold for
# 100,000 keys) or a sorted tuple of ids.
Claim = str | tuple[str, ...]


@dataclass
class Index:
    """Who owns what in the mirror: chain and set -> fragment, element key -> claims."""

    chains: dict[str, str] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)
    claims: dict[str, dict[Key, Claim]] = field(default_factory=dict)  # set -> key -> ids

    def claim(self, set_name: str, key: Key) -> tuple[str, ...]:
        found = self.claims.get(set_name, {}).get(key)
        if found is None:
            return ()
        return (found,) if isinstance(found, str) else found


def build_index(desired: DesiredTable) -> Index:
    index = Index()
    for fid, frag in desired.fragments.items():
        for name in frag.chains:
            index.chains[name] = fid
        for name in frag.sets:
            index.sets[name] = fid
        for set_name, elems in frag.elements.items():
            bucket = index.claims.setdefault(set_name, {})
            shared = bucket.keys() & elems.keys()
            if not shared:
                bucket.update(dict.fromkeys(elems, fid))  # the common case, at C speed
                continue
            for key in elems:
                current = bucket.get(key)
                if current is None:
                    bucket[key] = fid
                else:
                    ids = (current,) if isinstance(current, str) else current
                    bucket[key] = tuple(sorted({*ids, fid}))
    return index


def _winner(
    ids: tuple[str, ...], set_name: str, key: Key, fragments: Mapping[str, Fragment]
) -> Element | None:
    """The element the kernel holds for a key: the claim of the lowest (priority, id)."""
    if not ids:
        return None
    fid = min(ids, key=lambda f: (fragments[f].priority, f))
    return fragments[fid].elements[set_name][key]


@dataclass(frozen=True, slots=True)
class TableDiff:
    """What a partial sync sends. Names are sorted, so rendering is deterministic."""

    new_chains: tuple[str, ...] = ()
    changed_chains: tuple[str, ...] = ()  # rules differ (or a set they use is redefined)
    removed_chains: tuple[str, ...] = ()
    new_sets: tuple[str, ...] = ()
    redefined_sets: tuple[str, ...] = ()
    removed_sets: tuple[str, ...] = ()
    element_deletes: tuple[Element, ...] = ()
    element_adds: tuple[Element, ...] = ()
    needs_full_sync: str | None = None  # why a partial sync cannot express the change
    claims: Mapping[tuple[str, Key], tuple[str, ...]] = field(default_factory=dict)  # updates

    @property
    def empty(self) -> bool:
        return not (
            self.new_chains
            or self.changed_chains
            or self.removed_chains
            or self.new_sets
            or self.redefined_sets
            or self.removed_sets
            or self.element_deletes
            or self.element_adds
        )


def changed_fragments(mirror: DesiredTable, desired: DesiredTable) -> list[str]:
    """Fragment ids whose fragment is not the very object the mirror holds."""
    old, new = mirror.fragments, desired.fragments
    if desired.parent == id(mirror):
        candidates = desired.changed
        return sorted(fid for fid in candidates if old.get(fid) is not new.get(fid))
    out = [fid for fid, frag in new.items() if old.get(fid) is not frag]
    out.extend(fid for fid in old if fid not in new)
    return sorted(out)


def diff(mirror: DesiredTable, index: Index, desired: DesiredTable) -> TableDiff:
    if (mirror.family, mirror.name) != (desired.family, desired.name):
        raise ValueError("diff of two different tables")
    if mirror.settings != desired.settings:
        return TableDiff(needs_full_sync="the node-wide settings changed")
    if mirror.comment != desired.comment:
        return TableDiff(needs_full_sync="the table comment changed")
    fids = changed_fragments(mirror, desired)
    old_chains: dict[str, ChainSpec] = {}
    new_chains: dict[str, ChainSpec] = {}
    old_sets: dict[str, SetSpec] = {}
    new_sets: dict[str, SetSpec] = {}
    for fid in fids:
        old = mirror.fragments.get(fid, EMPTY)
        new = desired.fragments.get(fid, EMPTY)
        old_chains.update(old.chains)
        new_chains.update(new.chains)
        old_sets.update(old.sets)
        new_sets.update(new.sets)
    # A chain or set moving between two changed fragments is a change, not a removal.
    for name, spec in new_chains.items():
        old_spec = old_chains.get(name)
        base = spec.chain.is_base or (old_spec is not None and old_spec.chain.is_base)
        if base and old_spec is not None and old_spec.chain != spec.chain:
            return TableDiff(needs_full_sync=f"base chain {name} changed its hook or priority")
        owner = index.chains.get(name)
        if old_spec is None and owner is not None and owner not in fids:
            return TableDiff(needs_full_sync=f"chain {name} is defined twice")

    added_sets = sorted(set(new_sets) - set(old_sets))
    removed_sets = sorted(set(old_sets) - set(new_sets))
    redefined = sorted(n for n in set(new_sets) & set(old_sets) if new_sets[n] != old_sets[n])
    # A set can only be deleted once no rule uses it: flush (and rewrite) its users.
    # Renderers keep a set's users in the set's own fragment (or the skeleton's sets
    # in the skeleton), so only changed fragments are searched; were that broken,
    # the kernel would refuse the delete and the next sync would be a full one.
    touched = set(redefined) | set(removed_sets)
    users: set[str] = set()
    if touched:
        for name, spec in old_chains.items():
            if any(s in touched for r in spec.rules for s in set_refs(r.text())):
                users.add(name)
    chain_new = sorted(set(new_chains) - set(old_chains))
    chain_removed = sorted(set(old_chains) - set(new_chains))
    chain_changed = sorted(
        n for n in set(new_chains) & set(old_chains) if new_chains[n] != old_chains[n] or n in users
    )

    deletes, adds, claims = _diff_claims(mirror, index, desired, fids, set(redefined))
    return TableDiff(
        new_chains=tuple(chain_new),
        changed_chains=tuple(chain_changed),
        removed_chains=tuple(chain_removed),
        new_sets=tuple(added_sets),
        redefined_sets=tuple(redefined),
        removed_sets=tuple(removed_sets),
        element_deletes=tuple(deletes),
        element_adds=tuple(adds),
        claims=claims,
    )


def _diff_claims(
    mirror: DesiredTable,
    index: Index,
    desired: DesiredTable,
    fids: list[str],
    redefined: set[str],
) -> tuple[list[Element], list[Element], dict[tuple[str, Key], tuple[str, ...]]]:
    """Element deletes/adds from the claims the changed fragments drop and make."""
    updated: dict[tuple[str, Key], tuple[str, ...]] = {}
    for fid in fids:
        old = mirror.fragments.get(fid, EMPTY)
        new = desired.fragments.get(fid, EMPTY)
        if old.elements is new.elements:
            continue
        for set_name, elems in old.elements.items():
            for key in elems:
                ck = (set_name, key)
                ids = updated.get(ck, index.claim(set_name, key))
                updated[ck] = tuple(i for i in ids if i != fid)
        for set_name, elems in new.elements.items():
            for key in elems:
                ck = (set_name, key)
                ids = updated.get(ck, index.claim(set_name, key))
                updated[ck] = tuple(sorted({*ids, fid}))
    deletes: list[Element] = []
    adds: list[Element] = []
    for ck in sorted(updated):
        set_name, key = ck
        before = _winner(index.claim(set_name, key), set_name, key, mirror.fragments)
        after = _winner(updated[ck], set_name, key, desired.fragments)
        if set_name in redefined:
            # The set is deleted and re-added whole: every element is added again.
            if after is not None:
                adds.append(after)
            continue
        if before is not None and (after is None or after.value != before.value):
            deletes.append(before)
        if after is not None and (before is None or after.value != before.value):
            adds.append(after)
    for set_name in sorted(redefined):
        # Elements of a redefined set that no changed fragment touched are re-added too.
        for key, claim in index.claims.get(set_name, {}).items():
            if (set_name, key) not in updated:
                ids = (claim,) if isinstance(claim, str) else claim
                winner = _winner(ids, set_name, key, desired.fragments)
                if winner is not None:
                    adds.append(winner)
    return deletes, adds, updated


def partial_sync(
    change: TableDiff,
    mirror: DesiredTable,
    desired: DesiredTable,
    stale_to_delete: tuple[str, ...] = (),
) -> Transaction:
    """The transaction for `change`, in an order the kernel accepts.

    1 new chains (so elements and rules may point at them), 2 flush rewritten and
    retired chains (their rules stop using sets and chains), 3 delete elements
    (removed, or re-valued: a map key takes a new value by delete + add),
    4 delete removed/redefined sets, 5 add new/redefined sets, 6 add elements,
    7 add the rules of new and rewritten chains, 8 delete chains retired by an
    earlier sync.
    """
    tx = Transaction(desired.family, desired.name)
    new_chains = _specs(desired, change.new_chains + change.changed_chains)
    old_sets = _set_specs(mirror, change.removed_sets + change.redefined_sets)
    new_sets = _set_specs(desired, change.new_sets + change.redefined_sets)
    for name in change.new_chains:
        tx.add(new_chains[name].chain)
    for name in change.changed_chains + change.removed_chains:
        tx.flush(Chain(name))
    for elem in change.element_deletes:
        tx.delete(elem)
    for name in change.removed_sets + change.redefined_sets:
        tx.delete(old_sets[name].definition)
    for name in change.new_sets + change.redefined_sets:
        tx.add(new_sets[name].definition)
    for elem in change.element_adds:
        tx.add(elem)
    old_chains = _specs(mirror, change.changed_chains)
    for name in change.new_chains + change.changed_chains:
        spec = new_chains[name]
        if name in old_chains and spec.chain != old_chains[name].chain:
            tx.add(spec.chain)  # a regular chain's comment changed
        for rule in spec.rules:
            tx.add(rule)
    for name in stale_to_delete:
        tx.delete(Chain(name))
    return tx


def _specs(table: DesiredTable, names: tuple[str, ...]) -> dict[str, ChainSpec]:
    wanted = set(names)
    out: dict[str, ChainSpec] = {}
    if not wanted:
        return out
    for frag in table.fragments.values():
        for name in wanted & frag.chains.keys():
            out[name] = frag.chains[name]
    return out


def _set_specs(table: DesiredTable, names: tuple[str, ...]) -> dict[str, SetSpec]:
    wanted = set(names)
    out: dict[str, SetSpec] = {}
    if not wanted:
        return out
    for frag in table.fragments.values():
        for name in wanted & frag.sets.keys():
            out[name] = frag.sets[name]
    return out


@dataclass
class SyncResult:
    full: bool
    operations: int
    reason: str = ""
    deleted_stale: tuple[str, ...] = ()
    deferred: int = 0  # deletions waiting for a collection after this sync


@dataclass
class Plan:
    tx: Transaction
    result: SyncResult
    stale: dict[str, float]
    change: TableDiff | None  # None for a full sync or a collection
    pending: Pending = NOTHING  # what waits for a collection once `tx` applied


@dataclass
class Syncer:
    """The sync state of one table in one namespace."""

    runner: Runner
    clock: Callable[[], float] = time.monotonic
    needs_full_sync: bool = True
    mirror: DesiredTable | None = None
    index: Index = field(default_factory=Index)
    stale_chains: dict[str, float] = field(default_factory=dict)
    pending: Pending = NOTHING
    full_reason: str = "first sync"

    def plan(self, desired: DesiredTable) -> Plan:
        """The transaction the next sync would apply, without applying it."""
        now = self.clock()
        if self.needs_full_sync or self.mirror is None:
            tx = full_sync(desired)
            return Plan(tx, SyncResult(True, len(tx), self.full_reason), {}, None)
        change = diff(self.mirror, self.index, desired)
        if change.needs_full_sync:
            tx = full_sync(desired)
            return Plan(tx, SyncResult(True, len(tx), change.needs_full_sync), {}, None)
        stale = dict(self.stale_chains)
        # A stale chain coming back is "new" to the diff: it exists (flushed), so its
        # `add chain` is a no-op and its rules go into an empty chain.
        for name in change.new_chains:
            stale.pop(name, None)
        fast = defer(change, self.pending, desired.deferrals, now)
        if fast is not None:
            # Nothing in it deletes: chains due for deletion wait for the collection too.
            sent, pending = fast
            tx = partial_sync(sent, self.mirror, desired)
            result = SyncResult(False, len(tx), "partial", deferred=len(pending))
            return Plan(tx, result, stale, change, pending)
        # This transaction deletes anyway, so it takes every deletion that was waiting.
        due = tuple(sorted(n for n, t in stale.items() if now - t >= STALE_CHAIN_GRACE))
        for name in due:
            del stale[name]
        for name in change.removed_chains:
            stale[name] = now
        tx = partial_sync(settle(change, self.pending), self.mirror, desired, due)
        return Plan(tx, SyncResult(False, len(tx), "partial", due), stale, change)

    def plan_collection(self, force: bool = False) -> Plan | None:
        """The collection: stale chains past their grace and the pending deletions once
        the oldest is due (any time with `force`); None when nothing is due."""
        if self.needs_full_sync or self.mirror is None:
            return None
        now = self.clock()
        due = tuple(sorted(n for n, t in self.stale_chains.items() if now - t >= STALE_CHAIN_GRACE))
        settling = bool(self.pending) and (force or bool(due) or self.pending.due(now))
        if not due and not settling:
            return None
        change = settle(TableDiff(), self.pending) if settling else TableDiff()
        tx = partial_sync(change, self.mirror, self.mirror, due)
        stale = {n: t for n, t in self.stale_chains.items() if n not in due}
        result = SyncResult(False, len(tx), "collection", due)
        return Plan(tx, result, stale, None, NOTHING if settling else self.pending)

    def sync(self, desired: DesiredTable) -> SyncResult:
        plan = self.plan(desired)
        try:
            if plan.tx:  # nothing changed: no nft run at all
                self.runner.run(plan.tx)
        except NftError:
            self.needs_full_sync = True
            self.full_reason = "the previous sync failed"
            raise
        self.commit(desired, plan)
        return plan.result

    def collect(self, force: bool = False) -> SyncResult | None:
        """Apply the collection when something is due; None when nothing was."""
        plan = self.plan_collection(force)
        if plan is None:
            return None
        try:
            self.runner.run(plan.tx)
        except NftError:
            self.needs_full_sync = True
            self.full_reason = "the previous sync failed"
            raise
        self.stale_chains = plan.stale
        self.pending = plan.pending
        return plan.result

    def commit(self, desired: DesiredTable, plan: Plan) -> None:
        """Record that `plan` applied: the kernel now holds `desired`."""
        if plan.change is None:
            self.index = build_index(desired)
        else:
            _update_index(self.index, self.mirror, desired, plan.change)
        self.mirror = desired
        self.needs_full_sync = False
        self.stale_chains = plan.stale
        self.pending = plan.pending

    def reset(self, reason: str) -> None:
        """Forget the mirror: the next sync is a full one (e.g. the table was removed)."""
        self.needs_full_sync = True
        self.full_reason = reason
        self.mirror = None
        self.index = Index()
        self.stale_chains = {}
        self.pending = NOTHING


def _update_index(
    index: Index, mirror: DesiredTable | None, desired: DesiredTable, change: TableDiff
) -> None:
    assert mirror is not None
    fids = changed_fragments(mirror, desired)
    for fid in fids:
        old = mirror.fragments.get(fid, EMPTY)
        for name in old.chains:
            if index.chains.get(name) == fid:
                del index.chains[name]
        for name in old.sets:
            if index.sets.get(name) == fid:
                del index.sets[name]
    for fid in fids:
        new = desired.fragments.get(fid, EMPTY)
        for name in new.chains:
            index.chains[name] = fid
        for name in new.sets:
            index.sets[name] = fid
    for (set_name, key), ids in change.claims.items():
        bucket = index.claims.setdefault(set_name, {})
        if not ids:
            bucket.pop(key, None)
        else:
            bucket[key] = ids[0] if len(ids) == 1 else ids
    for set_name in change.removed_sets:
        index.claims.pop(set_name, None)


def references_ok(desired: DesiredTable) -> list[str]:
    """Rules and elements naming a chain or set the table does not hold (a renderer bug
    the kernel would refuse with "No such file or directory")."""
    chains = desired.chains()
    sets = desired.sets()
    problems = []
    for spec in chains.values():
        for rule in spec.rules:
            for name in chain_refs(rule.text()):
                if name not in chains:
                    problems.append(f"{rule.chain}: {rule.text()}: no chain {name}")
            for name in set_refs(rule.text()):
                if name not in sets:
                    problems.append(f"{rule.chain}: {rule.text()}: no set {name}")
    for elem in desired.all_elements():
        for name in chain_refs(" ".join(elem.value or ())):
            if name not in chains:
                problems.append(f"{elem.set}: {elem.text()}: no chain {name}")
        if elem.set not in sets:
            problems.append(f"{elem.text()}: no set {elem.set}")
    return problems
