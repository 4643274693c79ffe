"""FakeNft: transactions applied all or nothing, with the kernel's checks and errors.

Each case below was first run against the kernel (nft 1.0.6, Linux 6.18); the
root test tests/nft/test_kernel.py replays the same table against the real
kernel so the fake cannot drift. nft(8) "Atomic ruleset replacement": a
transaction (an `nft -f` input) is committed whole or not at all.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from netlet.dataplane.nft.fake import EBUSY, EEXIST, ENOENT, ENOENT_SET, FakeNft
from netlet.dataplane.nft.model import (
    Chain,
    ChainType,
    Element,
    Family,
    Hook,
    Map,
    NftError,
    Rule,
    Set,
    Table,
    Transaction,
)

Build = Callable[[Transaction], object]


def base(tx: Transaction) -> Transaction:
    """A small table: a set, a verdict map pointing at chain b, a jump a -> b."""
    tx.add(Table())
    tx.add(Set("s", "ipv4_addr"))
    tx.add(Map("m", "ipv4_addr : verdict"))
    tx.add(Map("d", "ipv4_addr : ipv4_addr"))
    tx.add(Chain("a"))
    tx.add(Chain("b"))
    tx.add(Rule("a", "jump b"))
    tx.add(Rule("b", "ip daddr @s accept"))
    tx.add(Element("s", ("1.1.1.1",)))
    tx.add(Element("m", ("1.1.1.1",), ("goto b",)))
    tx.add(Element("d", ("1.1.1.1",), ("2.2.2.2",)))
    return tx


# (what the transaction does after the base table, the error or None for success)
CASES: list[tuple[str, Build, str | None]] = [
    (
        "an element added twice with the same value is fine",
        lambda tx: tx.add(Element("d", ("1.1.1.1",), ("2.2.2.2",))),
        None,
    ),
    (
        "a map key given another value exists already",
        lambda tx: tx.add(Element("d", ("1.1.1.1",), ("3.3.3.3",))),
        EEXIST,
    ),
    ("a set element added again is fine", lambda tx: tx.add(Element("s", ("1.1.1.1",))), None),
    (
        "creating an existing element fails",
        lambda tx: tx.create(Element("s", ("1.1.1.1",))),
        EEXIST,
    ),
    ("deleting a missing element fails", lambda tx: tx.delete(Element("s", ("9.9.9.9",))), ENOENT),
    (
        "delete then add gives a map key a new value",
        lambda tx: tx.delete(Element("d", ("1.1.1.1",), ("2.2.2.2",))).add(
            Element("d", ("1.1.1.1",), ("3.3.3.3",))
        ),
        None,
    ),
    (
        "an element of a missing set fails",
        lambda tx: tx.add(Element("nope", ("1.1.1.1",))),
        ENOENT_SET,
    ),
    (
        "a verdict element to a missing chain fails",
        lambda tx: tx.add(Element("m", ("2.2.2.2",), ("goto nope",))),
        ENOENT,
    ),
    (
        "deleting an unreferenced chain with rules is fine",
        lambda tx: tx.add(Chain("c")).add(Rule("c", "accept")).delete(Chain("c")),
        None,
    ),
    (
        "deleting a chain a rule jumps to is busy",
        lambda tx: tx.flush(Chain("b")).delete(Chain("b")),
        EBUSY,
    ),
    (
        "deleting a chain a map element points at is busy",
        lambda tx: tx.flush(Chain("a")).flush(Chain("b")).delete(Chain("b")),
        EBUSY,
    ),
    (
        "once its references are gone a chain can go",
        lambda tx: (
            tx.flush(Chain("a")).delete(Element("m", ("1.1.1.1",), ("goto b",))).delete(Chain("b"))
        ),
        None,
    ),
    ("deleting a set a rule uses is busy", lambda tx: tx.delete(Set("s")), EBUSY),
    (
        "a set can go after the rule using it",
        lambda tx: tx.flush(Chain("b")).delete(Set("s")),
        None,
    ),
    ("redefining a set exists already", lambda tx: tx.add(Set("s", "ipv6_addr")), EEXIST),
    (
        "adding a set again with the same type is fine",
        lambda tx: tx.add(Set("s", "ipv4_addr")),
        None,
    ),
    ("creating an existing chain fails", lambda tx: tx.create(Chain("a")), EEXIST),
    ("adding an existing chain is fine", lambda tx: tx.add(Chain("a")), None),
    ("a rule in a missing chain fails", lambda tx: tx.add(Rule("nope", "accept")), ENOENT),
    ("a rule jumping to a missing chain fails", lambda tx: tx.add(Rule("a", "jump nope")), ENOENT),
    (
        "a rule using a missing set fails",
        lambda tx: tx.add(Rule("a", "ip saddr @nope accept")),
        ENOENT_SET,
    ),
    ("flushing a missing chain fails", lambda tx: tx.flush(Chain("nope")), ENOENT),
    (
        "deleting a rule by an unknown handle fails",
        lambda tx: tx.delete(Rule("a", handle=999)),
        ENOENT,
    ),
    (
        "turning a regular chain into a base chain exists already",
        lambda tx: tx.add(Chain("a", ChainType.FILTER, Hook.INPUT, 0)),
        EEXIST,
    ),
]


@pytest.mark.parametrize(("build", "error"), [pytest.param(b, e, id=i) for i, b, e in CASES])
def test_the_fake_accepts_and_refuses_what_the_kernel_does(build: Build, error: str | None) -> None:
    fake = FakeNft()
    fake.run(base(Transaction(Family.IP, "t")))
    before = fake.dump()
    tx = Transaction(Family.IP, "t")
    build(tx)
    if error is None:
        fake.run(tx)
        return
    with pytest.raises(NftError) as info:
        fake.run(tx)
    assert info.value.message == error
    # All or nothing: the good operations before the bad one did not stick either.
    assert fake.dump() == before


def test_an_error_names_the_failing_statement_and_operation() -> None:
    fake = FakeNft()
    tx = Transaction(Family.IP, "t").add(Table()).add(Chain("a")).add(Rule("b", "accept"))
    with pytest.raises(NftError) as info:
        fake.run(tx)
    assert info.value.operations == (2,)
    assert info.value.statement == "add rule ip t b accept"
    assert fake.dump() == ""


def test_anything_on_a_missing_table_fails() -> None:
    with pytest.raises(NftError, match="No such file"):
        FakeNft().run(Transaction(Family.IP, "t").add(Chain("a")))


def test_delete_table_then_add_table_in_one_transaction_replaces_it() -> None:
    fake = FakeNft()
    fake.run(base(Transaction(Family.IP, "t")))
    tx = Transaction(Family.IP, "t").add(Table()).delete(Table()).add(Table()).add(Chain("z"))
    fake.run(tx)
    assert fake.chains(Family.IP, "t") == ["z"]


def test_flush_table_empties_chains_but_keeps_set_elements() -> None:
    fake = FakeNft()
    fake.run(base(Transaction(Family.IP, "t")))
    fake.run(Transaction(Family.IP, "t").flush(Table()))
    assert fake.rules(Family.IP, "t", "a") == []
    assert [e.key for e in fake.elements(Family.IP, "t", "s")] == [("1.1.1.1",)]


def test_rules_keep_their_order_and_handles_place_inserts() -> None:
    fake = FakeNft()
    tx = Transaction(Family.IP, "t").add(Table()).add(Chain("c"))
    tx.add(Rule("c", "meta mark 1 accept")).add(Rule("c", "meta mark 3 accept"))
    fake.run(tx)
    handles = [r.handle for r in fake.table(Family.IP, "t").chains["c"].rules]  # type: ignore[union-attr]
    fake.run(Transaction(Family.IP, "t").add(Rule("c", "meta mark 2 accept", handle=handles[0])))
    fake.run(Transaction(Family.IP, "t").insert(Rule("c", "meta mark 0 accept")))
    fake.run(Transaction(Family.IP, "t").replace(Rule("c", "meta mark 9 drop", handle=handles[1])))
    assert fake.rules(Family.IP, "t", "c") == [
        "meta mark 0 accept",
        "meta mark 1 accept",
        "meta mark 2 accept",
        "meta mark 9 drop",
    ]


def test_the_dump_is_sorted_base_chains_first_and_addresses_numerically() -> None:
    fake = FakeNft()
    tx = Transaction(Family.IP, "t").add(Table(comment="x"))
    tx.add(Chain("z")).add(Chain("pre", ChainType.NAT, Hook.PREROUTING, -100)).add(Chain("a"))
    tx.add(Set("s", "ipv4_addr")).add(Rule("pre", "jump z")).add(Rule("pre", "jump a"))
    for ip in ("10.0.0.10", "10.0.0.9", "9.0.0.1"):
        tx.add(Element("s", (ip,)))
    fake.run(tx)
    dump = fake.dump()
    assert dump.splitlines() == [
        'add table ip t { comment "x" ; }',
        "add chain ip t pre { type nat hook prerouting priority -100 ; }",
        "add chain ip t a",
        "add chain ip t z",
        "add set ip t s { type ipv4_addr ; }",
        "add rule ip t pre jump z",
        "add rule ip t pre jump a",
        # addresses in numeric order, not text order
        "add element ip t s { 9.0.0.1 }",
        "add element ip t s { 10.0.0.9 }",
        "add element ip t s { 10.0.0.10 }",
    ]
