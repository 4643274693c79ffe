"""`FakeNft`: an in-memory nftables that applies transactions like the kernel does.

Owns the emulation used by unit tests and by `netlet render`: a transaction is
applied to a copy of the ruleset and the copy replaces the ruleset only when
every operation succeeded (nft commits a transaction whole or not at all). The
checks are the kernel's, with its error strings: a missing table, chain, set,
element or rule handle is "No such file or directory"; creating something that
exists, redefining a set or giving a map key a second value is "File exists";
deleting a chain or set something still refers to is "Device or resource busy";
a set name nft cannot resolve is its own "No such file or directory".
The root tests in tests/nft/test_fake_parity.py hold the fake to the kernel.

`dump()` is the canonical, sorted form of a ruleset used by the golden files: a
valid `nft -f` input (objects, then rules in chain order, then elements sorted
by key) so a golden file can be loaded into a kernel as it is.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from netlet.dataplane.nft.model import (
    Chain,
    Element,
    Family,
    Map,
    NftError,
    Operation,
    Rule,
    Set,
    SetLike,
    Table,
    Transaction,
    Verb,
)

ENOENT = "Could not process rule: No such file or directory"
# nft resolves set names in its own cache before the kernel sees anything.
ENOENT_SET = "No such file or directory"
EEXIST = "Could not process rule: File exists"
EBUSY = "Could not process rule: Device or resource busy"

_CHAIN_REF = re.compile(r"\b(?:jump|goto)\s+([A-Za-z_.][A-Za-z0-9/\\_.-]*)")
_SET_REF = re.compile(r"@([A-Za-z_.][A-Za-z0-9/\\_.-]*)")


def chain_refs(text: str) -> list[str]:
    return _CHAIN_REF.findall(text)


def set_refs(text: str) -> list[str]:
    return _SET_REF.findall(text)


@dataclass(frozen=True, slots=True)
class FakeRule:
    handle: int
    text: str  # rule text with its comment, as written


@dataclass
class FakeChain:
    chain: Chain
    rules: list[FakeRule] = field(default_factory=list)


@dataclass
class FakeTable:
    family: Family
    name: str
    comment: str | None = None
    chains: dict[str, FakeChain] = field(default_factory=dict)
    sets: dict[str, SetLike] = field(default_factory=dict)
    elements: dict[str, dict[tuple[str, ...], Element]] = field(default_factory=dict)
    next_handle: int = 1

    def clone(self) -> FakeTable:
        """A copy to work on: objects are immutable, so only the containers are copied."""
        return FakeTable(
            self.family,
            self.name,
            self.comment,
            {name: FakeChain(c.chain, list(c.rules)) for name, c in self.chains.items()},
            dict(self.sets),
            {name: dict(elems) for name, elems in self.elements.items()},
            self.next_handle,
        )

    def chain_references(self, name: str) -> int:
        """How many rules and map elements jump or go to chain `name`."""
        count = 0
        for chain in self.chains.values():
            for rule in chain.rules:
                count += chain_refs(rule.text).count(name)
        for elems in self.elements.values():
            for elem in elems.values():
                if elem.value is not None:
                    count += chain_refs(" ".join(elem.value)).count(name)
        return count

    def set_references(self, name: str) -> int:
        return sum(
            set_refs(rule.text).count(name)
            for chain in self.chains.values()
            for rule in chain.rules
        )


class FakeNft:
    """Tables held in memory; `run` is all-or-nothing like `nft -f`."""

    def __init__(self) -> None:
        self.tables: dict[tuple[Family, str], FakeTable] = {}
        self.transactions = 0  # successful runs, for tests counting syncs
        self.log: list[Transaction] = []  # the successful transactions, in order

    # Applying ---------------------------------------------------------------------

    def run(self, tx: Transaction) -> None:
        work = {key: table.clone() for key, table in self.tables.items()}
        for index, op in enumerate(tx.operations):
            try:
                _apply(work, tx.family, tx.table, op)
            except NftError as exc:
                exc.operations = (index,)
                exc.statement = op.statement(tx.family, tx.table)
                exc.where = "fake"
                raise
        self.tables = work
        self.transactions += 1
        self.log.append(tx)

    # Reading ----------------------------------------------------------------------

    def table(self, family: Family, name: str) -> FakeTable | None:
        return self.tables.get((family, name))

    def chains(self, family: Family, name: str) -> list[str]:
        table = self.table(family, name)
        return sorted(table.chains) if table else []

    def rules(self, family: Family, name: str, chain: str) -> list[str]:
        table = self.table(family, name)
        if table is None or chain not in table.chains:
            return []
        return [r.text for r in table.chains[chain].rules]

    def elements(self, family: Family, name: str, set_name: str) -> list[Element]:
        table = self.table(family, name)
        if table is None:
            return []
        return sorted(table.elements.get(set_name, {}).values(), key=element_sort_key)

    def dump(self, family: Family | None = None, name: str | None = None) -> str:
        """Canonical sorted text of the tables (all, or one), valid `nft -f` input."""
        out: list[str] = []
        for fam, tname in sorted(self.tables):
            if (family is not None and fam != family) or (name is not None and tname != name):
                continue
            out.extend(dump_table(self.tables[(fam, tname)]))
        return "".join(line + "\n" for line in out)


def dump_table(table: FakeTable) -> list[str]:
    tx = Transaction(table.family, table.name)
    tx.add(Table(comment=table.comment))
    # Base chains first (in hook order), then regular chains, each sorted by name.
    chains = sorted(table.chains.values(), key=lambda c: (not c.chain.is_base, c.chain.name))
    for chain in chains:
        tx.add(chain.chain)
    for set_name in sorted(table.sets):
        tx.add(table.sets[set_name])
    for chain in chains:
        for rule in chain.rules:
            tx.add(Rule(chain.chain.name, rule.text))
    for set_name in sorted(table.elements):
        for elem in sorted(table.elements[set_name].values(), key=element_sort_key):
            tx.add(elem)
    # One line per element: golden diffs then show exactly which element changed.
    return [line for op in tx.operations for line in [op.statement(tx.family, tx.table)]]


def element_sort_key(elem: Element) -> tuple[tuple[int, int, str], ...]:
    """Numbers and addresses in numeric order, the rest as text."""
    return tuple(_part_key(part) for part in elem.key)


def _part_key(part: str) -> tuple[int, int, str]:
    if part.isdigit():
        return (0, int(part), "")
    head = part.partition("/")[0].partition("-")[0]
    try:
        address = ipaddress.ip_address(head)
    except ValueError:
        return (2, 0, part)
    return (1, int(address) + (address.version << 128), part)


def _table(work: dict[tuple[Family, str], FakeTable], family: Family, name: str) -> FakeTable:
    table = work.get((family, name))
    if table is None:
        raise NftError(ENOENT)
    return table


def _apply(
    work: dict[tuple[Family, str], FakeTable], family: Family, name: str, op: Operation
) -> None:
    obj = op.obj
    if isinstance(obj, Table):
        _apply_table(work, family, name, op.verb, obj)
        return
    table = _table(work, family, name)
    if isinstance(obj, Chain):
        _apply_chain(table, op.verb, obj)
    elif isinstance(obj, Rule):
        _apply_rule(table, op.verb, obj)
    elif isinstance(obj, (Set, Map)):
        _apply_set(table, op.verb, obj)
    else:
        _apply_element(table, op.verb, obj)


def _apply_table(
    work: dict[tuple[Family, str], FakeTable], family: Family, name: str, verb: Verb, obj: Table
) -> None:
    key = (family, name)
    exists = key in work
    if verb in (Verb.ADD, Verb.CREATE):
        if exists:
            if verb is Verb.CREATE:
                raise NftError(EEXIST)
            if obj.comment is not None:
                work[key].comment = obj.comment
            return
        work[key] = FakeTable(family, name, obj.comment)
    elif verb is Verb.DELETE:
        if not exists:
            raise NftError(ENOENT)
        del work[key]
    else:  # flush: every chain's rules; sets keep their elements (as the kernel does)
        table = _table(work, family, name)
        for chain in table.chains.values():
            chain.rules.clear()


def _apply_chain(table: FakeTable, verb: Verb, obj: Chain) -> None:
    current = table.chains.get(obj.name)
    if verb in (Verb.ADD, Verb.CREATE):
        if current is None:
            table.chains[obj.name] = FakeChain(obj)
            return
        if verb is Verb.CREATE:
            raise NftError(EEXIST)
        if obj.is_base != current.chain.is_base or (
            obj.is_base and obj.definition[:3] != current.chain.definition[:3]
        ):
            raise NftError(EEXIST)
        if obj.comment is not None or obj.policy is not None:
            current.chain = obj
        return
    if current is None:
        raise NftError(ENOENT)
    if verb is Verb.FLUSH:
        current.rules.clear()
        return
    refs = table.chain_references(obj.name) - sum(
        chain_refs(r.text).count(obj.name) for r in current.rules
    )
    if refs:
        raise NftError(EBUSY)
    del table.chains[obj.name]


def _check_rule_refs(table: FakeTable, text: str) -> None:
    for chain in chain_refs(text):
        if chain not in table.chains:
            raise NftError(ENOENT)
    for set_name in set_refs(text):
        if set_name not in table.sets:
            raise NftError(ENOENT_SET)


def _apply_rule(table: FakeTable, verb: Verb, obj: Rule) -> None:
    chain = table.chains.get(obj.chain)
    if chain is None:
        raise NftError(ENOENT)
    rules = chain.rules
    position = len(rules) if verb is Verb.ADD else 0
    if obj.handle is not None:
        found = [i for i, r in enumerate(rules) if r.handle == obj.handle]
        if not found:
            raise NftError(ENOENT)
        where = found[0]
        if verb is Verb.DELETE:
            del rules[where]
            return
        if verb is Verb.REPLACE:
            _check_rule_refs(table, obj.text())
            rules[where] = FakeRule(obj.handle, obj.text())
            return
        position = where + 1 if verb is Verb.ADD else where
    elif obj.index is not None:
        if obj.index >= len(rules):
            raise NftError(ENOENT)
        position = obj.index + 1 if verb is Verb.ADD else obj.index
    _check_rule_refs(table, obj.text())
    rules.insert(position, FakeRule(table.next_handle, obj.text()))
    table.next_handle += 1


def _apply_set(table: FakeTable, verb: Verb, obj: SetLike) -> None:
    current = table.sets.get(obj.name)
    if verb in (Verb.ADD, Verb.CREATE):
        if current is None:
            table.sets[obj.name] = obj
            table.elements[obj.name] = {}
            table.next_handle += 1
            return
        if verb is Verb.CREATE or current.definition[:5] != obj.definition[:5]:
            raise NftError(EEXIST)
        return
    if current is None or current.is_map != obj.is_map:
        raise NftError(ENOENT)
    if verb is Verb.FLUSH:
        table.elements[obj.name] = {}
        return
    if table.set_references(obj.name):
        raise NftError(EBUSY)
    del table.sets[obj.name]
    del table.elements[obj.name]


def _apply_element(table: FakeTable, verb: Verb, obj: Element) -> None:
    set_def = table.sets.get(obj.set)
    if set_def is None:
        raise NftError(ENOENT_SET)
    if len(obj.key) != set_def.key_arity:
        raise NftError(
            f"Error: {obj.set}: key has {len(obj.key)} parts, expected {set_def.key_arity}"
        )
    elems = table.elements[obj.set]
    current = elems.get(obj.key)
    if verb is Verb.DELETE:
        if current is None:
            raise NftError(ENOENT)
        del elems[obj.key]
        return
    if isinstance(set_def, Map):
        if obj.value is None or len(obj.value) != set_def.value_arity:
            raise NftError(f"Error: {obj.set} is a map: every element needs a value")
        for chain in chain_refs(" ".join(obj.value)):
            if chain not in table.chains:
                raise NftError(ENOENT)
    elif obj.value is not None:
        raise NftError(f"Error: {obj.set} is a set: its elements take no value")
    if current is not None:
        if verb is Verb.CREATE or current.value != obj.value:
            raise NftError(EEXIST)
        return
    elems[obj.key] = obj
