"""The transaction model: what `str(tx)` gives nft, and what is refused while building.

Statement syntax follows nft(8) (sections TABLES, CHAINS, RULES, SETS, MAPS,
ELEMENTS; https://www.netfilter.org/projects/nftables/manpage.html); the verbs
each object takes follow knftables' Transaction (github.com/kubernetes-sigs/
knftables, README "Transactions").
"""

from __future__ import annotations

import pytest

from netlet.dataplane.nft.model import (
    ELEMENTS_PER_STATEMENT,
    Chain,
    ChainType,
    Element,
    Family,
    Hook,
    Map,
    NftObject,
    Operation,
    Rule,
    Set,
    Table,
    Transaction,
    ValidationError,
    Verb,
)

# nft(8): one statement per operation, in the family/table of the transaction.
STATEMENTS = [
    pytest.param(Verb.ADD, Table(), "add table ip t", id="add table"),
    pytest.param(
        Verb.ADD,
        Table(comment="rules"),
        'add table ip t { comment "rules" ; }',
        id="add table with a comment",
    ),
    pytest.param(
        Verb.DELETE, Table(comment="x"), "delete table ip t", id="delete table ignores the comment"
    ),
    pytest.param(Verb.ADD, Chain("services"), "add chain ip t services", id="add regular chain"),
    pytest.param(
        Verb.ADD,
        Chain("nat-prerouting", ChainType.NAT, Hook.PREROUTING, -100),
        "add chain ip t nat-prerouting { type nat hook prerouting priority -100 ; }",
        id="add base chain with a numeric priority",
    ),
    pytest.param(
        Verb.CREATE,
        Chain("f", ChainType.FILTER, Hook.FORWARD, 0, policy="drop", comment="c"),
        'create chain ip t f { type filter hook forward priority 0 ; policy drop ; comment "c" ; }',
        id="create base chain with policy and comment",
    ),
    pytest.param(Verb.FLUSH, Chain("services"), "flush chain ip t services", id="flush chain"),
    pytest.param(
        Verb.DELETE, Chain("x/y"), "delete chain ip t x/y", id="delete chain with a slash"
    ),
    pytest.param(
        Verb.ADD,
        Rule("c", "tcp dport 80 accept"),
        "add rule ip t c tcp dport 80 accept",
        id="add rule",
    ),
    pytest.param(
        Verb.ADD,
        Rule("c", "accept", comment="why"),
        'add rule ip t c accept comment "why"',
        id="add rule with a comment",
    ),
    pytest.param(
        Verb.ADD,
        Rule("c", "drop", index=2),
        "add rule ip t c index 2 drop",
        id="add rule after index",
    ),
    pytest.param(
        Verb.INSERT, Rule("c", "drop"), "insert rule ip t c drop", id="insert rule at the top"
    ),
    pytest.param(
        Verb.INSERT,
        Rule("c", "drop", handle=7),
        "insert rule ip t c handle 7 drop",
        id="insert rule before handle",
    ),
    pytest.param(
        Verb.REPLACE,
        Rule("c", "accept", handle=7),
        "replace rule ip t c handle 7 accept",
        id="replace rule by handle",
    ),
    pytest.param(
        Verb.DELETE, Rule("c", handle=7), "delete rule ip t c handle 7", id="delete rule by handle"
    ),
    pytest.param(
        Verb.ADD,
        Set("s", "ipv4_addr . inet_service", flags=("interval",), comment="x"),
        'add set ip t s { type ipv4_addr . inet_service ; flags interval ; comment "x" ; }',
        id="add interval set",
    ),
    pytest.param(
        Verb.ADD,
        Set("a", "ipv4_addr", flags=("dynamic", "timeout"), timeout=10800),
        "add set ip t a { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }",
        id="add set with a timeout",
    ),
    pytest.param(
        Verb.ADD,
        Map("m", typeof="ct mark : ip daddr"),
        "add map ip t m { typeof ct mark : ip daddr ; }",
        id="add map by typeof",
    ),
    pytest.param(Verb.FLUSH, Map("m"), "flush map ip t m", id="flush map"),
    pytest.param(Verb.DELETE, Set("s"), "delete set ip t s", id="delete set"),
    pytest.param(
        Verb.ADD,
        Element("m", ("10.96.0.1", "tcp", "80"), ("goto service-x",)),
        "add element ip t m { 10.96.0.1 . tcp . 80 : goto service-x }",
        id="add map element with a concatenated key",
    ),
    pytest.param(
        Verb.ADD,
        Element("m", ("1.2.3.4",), ("drop",), comment="ns/svc"),
        'add element ip t m { 1.2.3.4 comment "ns/svc" : drop }',
        id="element comment goes between key and value",
    ),
    pytest.param(
        Verb.DELETE,
        Element("s", ("1.2.3.4",)),
        "delete element ip t s { 1.2.3.4 }",
        id="delete element",
    ),
]


@pytest.mark.parametrize(("verb", "obj", "text"), STATEMENTS)
def test_each_operation_renders_as_one_nft_statement(verb: Verb, obj: NftObject, text: str) -> None:
    tx = Transaction(Family.IP, "t")
    tx.operations.append(Operation(verb, obj))
    assert str(tx) == text + "\n"


def test_the_ip6_family_is_written_in_every_statement() -> None:
    tx = Transaction(Family.IP6, "netlet").add(Table()).add(Chain("c")).add(Rule("c", "accept"))
    assert str(tx) == "add table ip6 netlet\nadd chain ip6 netlet c\nadd rule ip6 netlet c accept\n"


BAD_OBJECTS = [
    pytest.param(lambda: Chain(""), "chain name is empty", id="empty chain name"),
    pytest.param(
        lambda: Chain("1abc"), "must start with a letter", id="chain name starting with a digit"
    ),
    pytest.param(lambda: Chain("a b"), "must start with a letter", id="chain name with a space"),
    pytest.param(lambda: Chain("x" * 256), "longer than 255", id="chain name over nft's limit"),
    pytest.param(
        lambda: Chain("c", ChainType.NAT, Hook.FORWARD, 0),
        "cannot attach to the forward hook",
        id="nat chain on forward",
    ),
    pytest.param(
        lambda: Chain("c", ChainType.FILTER, None, 0),
        "type, hook and priority together",
        id="base chain without a hook",
    ),
    pytest.param(
        lambda: Chain("c", policy="drop"),
        "only a base chain has a policy",
        id="policy on a regular chain",
    ),
    pytest.param(
        lambda: Chain("c", ChainType.FILTER, Hook.INPUT, 0, policy="reject"),
        "policy must be accept or drop",
        id="policy reject",
    ),
    pytest.param(
        lambda: Table(comment='say "hi"'), "double quote", id="comment with a double quote"
    ),
    pytest.param(
        lambda: Rule("c", "x", comment="y" * 129), "longer than 128", id="comment over nft's limit"
    ),
    pytest.param(
        lambda: Rule("c", "x", index=1, handle=2),
        "index or handle, not both",
        id="rule with index and handle",
    ),
    pytest.param(
        lambda: Set("s", "ipv4_addr", typeof="ip daddr"),
        "type or typeof, not both",
        id="set with type and typeof",
    ),
    pytest.param(
        lambda: Set("s", "ipv4_addr", flags=("bogus",)), "unknown flags", id="unknown set flag"
    ),
    pytest.param(
        lambda: Set("s", "ipv4_addr", timeout=5),
        "needs the timeout flag",
        id="timeout without the flag",
    ),
    pytest.param(lambda: Map("m", "ipv4_addr"), "key : value", id="map type without a value"),
    pytest.param(lambda: Element("s", ()), "empty key", id="element without a key"),
    pytest.param(
        lambda: Element("s", ("1.1.1.1, 2.2.2.2",)),
        "is not one value",
        id="two values smuggled into one part",
    ),
    pytest.param(
        lambda: Element("s", ("1.1.1.1 }",)), "is not one value", id="a brace in an element"
    ),
]


@pytest.mark.parametrize(("make", "message"), BAD_OBJECTS)
def test_objects_nft_would_refuse_are_refused_while_building(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=message):
        make()


BAD_OPERATIONS = [
    pytest.param(Verb.FLUSH, Rule("c", "accept"), "cannot flush a rule", id="flush a rule"),
    pytest.param(Verb.INSERT, Chain("c"), "cannot insert a chain", id="insert a chain"),
    pytest.param(Verb.FLUSH, Element("s", ("1",)), "cannot flush a element", id="flush an element"),
    pytest.param(
        Verb.REPLACE, Rule("c", "accept"), "needs a handle", id="replace without a handle"
    ),
    pytest.param(
        Verb.DELETE, Rule("c", "accept"), "needs a handle", id="delete rule without a handle"
    ),
    pytest.param(Verb.ADD, Rule("c", ""), "is empty", id="add an empty rule"),
    pytest.param(
        Verb.ADD, Rule("c", "accept; drop"), "holds a newline", id="two statements in one rule"
    ),
    pytest.param(Verb.ADD, Set("s"), "needs a type", id="add a set without a type"),
    pytest.param(
        Verb.FLUSH,
        Chain("c", ChainType.FILTER, Hook.INPUT, 0),
        "takes only the name",
        id="flush a chain given with its hook",
    ),
]


@pytest.mark.parametrize(("verb", "obj", "message"), BAD_OPERATIONS)
def test_a_verb_that_does_not_fit_the_object_is_refused(
    verb: Verb, obj: NftObject, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Operation(verb, obj)


def test_runs_of_elements_on_one_set_share_one_statement_and_lines_name_their_operations() -> None:
    tx = Transaction(Family.IP, "t")
    tx.add(Element("s", ("1.1.1.1",)))
    tx.add(Element("s", ("2.2.2.2",)))
    tx.delete(Element("s", ("3.3.3.3",)))  # another verb: a new statement
    tx.add(Element("m", ("4",), ("5.5.5.5", "80")))  # another set: a new statement
    tx.add(Rule("c", "accept"))
    lines = tx.render()
    assert [line.text for line in lines] == [
        "add element ip t s { 1.1.1.1, 2.2.2.2 }",
        "delete element ip t s { 3.3.3.3 }",
        "add element ip t m { 4 : 5.5.5.5 . 80 }",
        "add rule ip t c accept",
    ]
    assert [line.operations for line in lines] == [(0, 1), (2,), (3,), (4,)]


def test_a_long_run_of_elements_is_split_into_bounded_statements() -> None:
    tx = Transaction(Family.IP, "t")
    for i in range(ELEMENTS_PER_STATEMENT + 5):
        tx.add(Element("s", (str(i),)))
    lines = tx.render()
    assert [len(line.operations) for line in lines] == [ELEMENTS_PER_STATEMENT, 5]
    assert str(tx).count("\n") == 2


def test_counting_operations_by_verb_and_kind() -> None:
    tx = Transaction(Family.IP, "t")
    tx.add(Chain("c")).flush(Chain("c")).add(Rule("c", "accept"))
    tx.delete(Element("s", ("1",))).add(Element("s", ("1",)))
    assert (
        len(tx),
        tx.count(Verb.ADD),
        tx.count(kind=Element),
        tx.count(Verb.DELETE, Element),
    ) == (5, 3, 2, 1)


def test_transactions_merge_only_on_the_same_table() -> None:
    a = Transaction(Family.IP, "t").add(Chain("a"))
    a.extend(Transaction(Family.IP, "t").add(Chain("b")))
    assert len(a) == 2
    with pytest.raises(ValidationError, match="cannot merge"):
        a.extend(Transaction(Family.IP6, "t"))
