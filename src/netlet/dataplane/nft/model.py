"""An nftables transaction as a value: objects, verbs, and the exact `nft -f` text.

Owns the vocabulary every other module of the backend speaks: `Table`, `Chain`,
`Rule`, `Set`, `Map`, `Element`, the verbs (add, create, flush, delete, insert,
replace) and `Transaction`, an ordered list of (verb, object) bound to one table.

Invariants:
- an operation is validated when it is added (names, base-chain fields, which
  verb fits which object, comments nft can quote), so a transaction that exists
  is well formed and `str(tx)` is exactly what `nft -f` is given;
- rendering is deterministic: consecutive element operations on the same set are
  grouped into one statement (nft parses one big `{ ... }` twice as fast as one
  line per element) and `Transaction.render()` says which operations each line
  holds, so an nft error on line N names the operation that failed.

Like knftables (the library kube-proxy uses), rules are nft syntax strings: the
backend writes them, the kernel parses them; the model only checks their shape.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

# nft identifiers: a letter, '_' or '.' first, then letters, digits and / \ - _ .
# (kube-proxy relies on '/' in chain names). NFT_NAME_MAXLEN is 256 with the NUL.
NAME_RE = re.compile(r"^[A-Za-z_.][A-Za-z0-9/\\_.-]*$")
NAME_LENGTH_MAX = 255
# nft stores comments as user data; it refuses longer ones (NFTNL_UDATA_COMMENT_MAXLEN).
COMMENT_LENGTH_MAX = 128
# Elements grouped into one `add element ... { }` statement at most.
ELEMENTS_PER_STATEMENT = 1000


class ValidationError(ValueError):
    """An object or operation nft would refuse to parse, found while building."""


@dataclass
class NftError(Exception):
    """A transaction nft refused. Nothing of it was applied (nft commits all or nothing).

    `statement` is the refused statement and `operations` the indexes of the
    operations it holds, when nft said which line failed.
    """

    message: str
    statement: str | None = None
    operations: tuple[int, ...] = ()
    where: str = ""  # the network namespace (or "fake")

    def __str__(self) -> str:
        head = f"nft in {self.where}: " if self.where else "nft: "
        tail = f"\n  in: {self.statement}" if self.statement else ""
        return head + self.message + tail


class Family(enum.StrEnum):
    IP = "ip"
    IP6 = "ip6"
    INET = "inet"

    @classmethod
    def of(cls, version: int) -> Family:
        return cls.IP if version == 4 else cls.IP6

    @property
    def version(self) -> int | None:
        return {Family.IP: 4, Family.IP6: 6}.get(self)

    @property
    def addr_match(self) -> str:
        """The address expression prefix: `ip` or `ip6` (as in `ip daddr`)."""
        if self is Family.INET:
            raise ValidationError("an inet table has no single address expression")
        return self.value

    @property
    def addr_type(self) -> str:
        if self is Family.INET:
            raise ValidationError("an inet table has no single address type")
        return "ipv4_addr" if self is Family.IP else "ipv6_addr"


class Verb(enum.StrEnum):
    ADD = "add"
    CREATE = "create"
    FLUSH = "flush"
    DELETE = "delete"
    INSERT = "insert"
    REPLACE = "replace"


class ChainType(enum.StrEnum):
    FILTER = "filter"
    NAT = "nat"
    ROUTE = "route"


class Hook(enum.StrEnum):
    PREROUTING = "prerouting"
    INPUT = "input"
    FORWARD = "forward"
    OUTPUT = "output"
    POSTROUTING = "postrouting"


# Which hooks each chain type may attach to in ip/ip6/inet tables (nft(8), CHAINS).
CHAIN_TYPE_HOOKS: dict[ChainType, frozenset[Hook]] = {
    ChainType.FILTER: frozenset(Hook),
    ChainType.NAT: frozenset({Hook.PREROUTING, Hook.INPUT, Hook.OUTPUT, Hook.POSTROUTING}),
    ChainType.ROUTE: frozenset({Hook.OUTPUT}),
}

# Standard priorities (nft(8), "STANDARD PRIORITY NAMES"), as numbers: nft 1.0.6
# accepts the names only at some hooks, numbers everywhere.
PRIORITY_RAW = -300
PRIORITY_MANGLE = -150
PRIORITY_DSTNAT = -100
PRIORITY_FILTER = 0
PRIORITY_SECURITY = 50
PRIORITY_SRCNAT = 100

SET_FLAGS = frozenset({"constant", "interval", "timeout", "dynamic"})


@functools.lru_cache(maxsize=65536)
def check_name(what: str, name: str) -> str:
    """`name` when nft accepts it (cached: the same set names recur per element)."""
    if not name:
        raise ValidationError(f"{what} name is empty")
    if len(name) > NAME_LENGTH_MAX:
        raise ValidationError(f"{what} name {name[:40]!r}... is longer than {NAME_LENGTH_MAX}")
    if not NAME_RE.match(name):
        raise ValidationError(
            f"{what} name {name!r} must start with a letter, '_' or '.' and hold only "
            "letters, digits and / \\ _ . -"
        )
    return name


def check_comment(comment: str | None) -> str | None:
    if comment is None:
        return None
    if len(comment) > COMMENT_LENGTH_MAX:
        raise ValidationError(f"comment {comment[:40]!r}... is longer than {COMMENT_LENGTH_MAX}")
    if '"' in comment or "\n" in comment:
        raise ValidationError(f"comment {comment!r} holds a double quote or a newline")
    return comment


# What a key or value part may not hold: statement separators and set syntax.
_NOT_ONE_VALUE = re.compile(r"[\n;#,{}]")


def _check_text(what: str, text: str) -> str:
    if not text.strip():
        raise ValidationError(f"{what} is empty")
    if "\n" in text or ";" in text or "#" in text:
        # One statement per line; ';' and '#' would split or cut it.
        raise ValidationError(f"{what} {text!r} holds a newline, ';' or '#'")
    return text


def quote(comment: str) -> str:
    return f'"{comment}"'


@dataclass(frozen=True, slots=True)
class Table:
    comment: str | None = None

    def __post_init__(self) -> None:
        check_comment(self.comment)


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain; a base chain when `type`, `hook` and `priority` are all given."""

    name: str
    type: ChainType | None = None
    hook: Hook | None = None
    priority: int | None = None
    policy: str | None = None  # "accept" / "drop", base chains only
    comment: str | None = None

    def __post_init__(self) -> None:
        check_name("chain", self.name)
        check_comment(self.comment)
        base = (self.type, self.hook, self.priority)
        if any(x is not None for x in base) and any(x is None for x in base):
            raise ValidationError(
                f"chain {self.name}: a base chain needs type, hook and priority together"
            )
        if self.type is not None and self.hook not in CHAIN_TYPE_HOOKS[self.type]:
            raise ValidationError(
                f"chain {self.name}: a {self.type} chain cannot attach to the {self.hook} hook"
            )
        if self.policy is not None:
            if self.type is None:
                raise ValidationError(f"chain {self.name}: only a base chain has a policy")
            if self.policy not in ("accept", "drop"):
                raise ValidationError(f"chain {self.name}: policy must be accept or drop")

    @property
    def is_base(self) -> bool:
        return self.type is not None

    @property
    def definition(self) -> tuple[object, ...]:
        return (self.type, self.hook, self.priority, self.policy, self.comment)

    def body(self) -> str:
        parts = []
        if self.type is not None:
            parts.append(f"type {self.type} hook {self.hook} priority {self.priority} ;")
            if self.policy:
                parts.append(f"policy {self.policy} ;")
        if self.comment:
            parts.append(f"comment {quote(self.comment)} ;")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule: `rule` is nft syntax (statements), without the chain or a comment."""

    chain: str
    rule: str = ""
    comment: str | None = None
    index: int | None = None  # add/insert: position by index
    handle: int | None = None  # add/insert: relative to a rule; replace/delete: which rule

    def __post_init__(self) -> None:
        check_name("chain", self.chain)
        check_comment(self.comment)
        if self.index is not None and self.handle is not None:
            raise ValidationError(f"rule in {self.chain}: give index or handle, not both")

    def text(self) -> str:
        return self.rule + (f" comment {quote(self.comment)}" if self.comment else "")


@dataclass(frozen=True, slots=True)
class Set:
    """A named set: `type` (e.g. "ipv4_addr . inet_proto") or `typeof` (expressions)."""

    name: str
    type: str | None = None
    typeof: str | None = None
    flags: tuple[str, ...] = ()
    timeout: int | None = None  # seconds, elements' default lifetime
    comment: str | None = None

    def __post_init__(self) -> None:
        _check_set_like(self, "set")

    @property
    def is_map(self) -> bool:
        return False

    @property
    def key_arity(self) -> int:
        return _key_arity(self.type if self.type is not None else self.typeof)

    @property
    def definition(self) -> tuple[object, ...]:
        return (self.is_map, self.type, self.typeof, self.flags, self.timeout, self.comment)

    def body(self) -> str:
        return _set_body(self)


@dataclass(frozen=True, slots=True)
class Map:
    """A named map: `type` / `typeof` hold "key : value" (value `verdict` for a vmap)."""

    name: str
    type: str | None = None
    typeof: str | None = None
    flags: tuple[str, ...] = ()
    timeout: int | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        _check_set_like(self, "map")
        spec = self.type if self.type is not None else self.typeof
        if spec is not None and spec.count(":") != 1:
            raise ValidationError(f"map {self.name}: its type needs exactly one 'key : value'")

    @property
    def is_map(self) -> bool:
        return True

    @property
    def key_arity(self) -> int:
        spec = self.type if self.type is not None else self.typeof
        return _key_arity(spec.split(":")[0] if spec else None)

    @property
    def value_arity(self) -> int:
        spec = self.type if self.type is not None else self.typeof
        return _key_arity(spec.split(":")[1] if spec else None)

    @property
    def is_verdict_map(self) -> bool:
        return self.type is not None and self.type.split(":")[1].strip() == "verdict"

    @property
    def definition(self) -> tuple[object, ...]:
        return (self.is_map, self.type, self.typeof, self.flags, self.timeout, self.comment)

    def body(self) -> str:
        return _set_body(self)


SetLike = Set | Map


@functools.lru_cache(maxsize=1024)
def _key_arity(spec: str | None) -> int:
    return 0 if spec is None else len(spec.split(" . "))


def _check_set_like(obj: SetLike, what: str) -> None:
    check_name(what, obj.name)
    check_comment(obj.comment)
    # A reference to an existing set (flush/delete) carries only the name.
    if obj.type is not None and obj.typeof is not None:
        raise ValidationError(f"{what} {obj.name}: give type or typeof, not both")
    for spec in (obj.type, obj.typeof):
        if spec is not None:
            _check_text(f"{what} {obj.name} type", spec)
    unknown = set(obj.flags) - SET_FLAGS
    if unknown:
        raise ValidationError(f"{what} {obj.name}: unknown flags {sorted(unknown)}")
    if obj.timeout is not None:
        if obj.timeout <= 0:
            raise ValidationError(f"{what} {obj.name}: timeout must be positive seconds")
        if "timeout" not in obj.flags:
            raise ValidationError(f"{what} {obj.name}: a timeout needs the timeout flag")


def _set_body(obj: SetLike) -> str:
    parts = []
    if obj.type is not None:
        parts.append(f"type {obj.type} ;")
    if obj.typeof is not None:
        parts.append(f"typeof {obj.typeof} ;")
    if obj.flags:
        parts.append(f"flags {','.join(obj.flags)} ;")
    if obj.timeout is not None:
        parts.append(f"timeout {obj.timeout}s ;")
    if obj.comment:
        parts.append(f"comment {quote(obj.comment)} ;")
    return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Element:
    """An element of set (value None) or map `set`: key and value parts are nft text."""

    set: str
    key: tuple[str, ...]
    value: tuple[str, ...] | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        check_name("set", self.set)
        check_comment(self.comment)
        if not self.key:
            raise ValidationError(f"element of {self.set}: empty key")
        for part in self.key + (self.value or ()):
            if not part or _NOT_ONE_VALUE.search(part) or part.isspace():
                _check_text(f"element of {self.set}", part)
                raise ValidationError(f"element of {self.set}: {part!r} is not one value")

    def text(self) -> str:
        out = " . ".join(self.key)
        if self.comment:
            out += f" comment {quote(self.comment)}"
        if self.value is not None:
            out += " : " + " . ".join(self.value)
        return out

    def key_text(self) -> str:
        return " . ".join(self.key)


NftObject = Table | Chain | Rule | Set | Map | Element

# Which verbs each kind of object takes (nft(8) and knftables' Transaction).
VERBS: dict[type, frozenset[Verb]] = {
    Table: frozenset({Verb.ADD, Verb.CREATE, Verb.FLUSH, Verb.DELETE}),
    Chain: frozenset({Verb.ADD, Verb.CREATE, Verb.FLUSH, Verb.DELETE}),
    Rule: frozenset({Verb.ADD, Verb.INSERT, Verb.REPLACE, Verb.DELETE}),
    Set: frozenset({Verb.ADD, Verb.CREATE, Verb.FLUSH, Verb.DELETE}),
    Map: frozenset({Verb.ADD, Verb.CREATE, Verb.FLUSH, Verb.DELETE}),
    Element: frozenset({Verb.ADD, Verb.CREATE, Verb.DELETE}),
}


_ELEMENT_VERBS = VERBS[Element]


@dataclass(frozen=True, slots=True)
class Operation:
    verb: Verb
    obj: NftObject

    def __post_init__(self) -> None:
        kind = type(self.obj)
        if kind is Element and self.verb in _ELEMENT_VERBS:
            return  # the hot path of big transactions: nothing more to check
        if self.verb not in VERBS[kind]:
            raise ValidationError(f"cannot {self.verb} a {kind.__name__.lower()}")
        obj = self.obj
        if isinstance(obj, Rule):
            if self.verb in (Verb.ADD, Verb.INSERT, Verb.REPLACE):
                _check_text(f"rule in {obj.chain}", obj.rule)
            if self.verb in (Verb.REPLACE, Verb.DELETE) and obj.handle is None:
                raise ValidationError(f"{self.verb} rule in {obj.chain}: needs a handle")
            if self.verb is Verb.REPLACE and obj.index is not None:
                raise ValidationError(f"replace rule in {obj.chain}: by handle, not index")
        creating = self.verb in (Verb.ADD, Verb.CREATE)
        if isinstance(obj, (Set, Map)) and creating and obj.type is None and obj.typeof is None:
            raise ValidationError(f"{self.verb} {_kind(obj)} {obj.name}: needs a type")
        if isinstance(obj, Chain) and self.verb in (Verb.FLUSH, Verb.DELETE) and obj.body():
            raise ValidationError(f"{self.verb} chain {obj.name}: takes only the name")

    def statement(self, family: Family, table: str) -> str:
        """This operation alone as one nft statement."""
        return _statement(self.verb, self.obj, family, table, self.obj_text())

    def obj_text(self) -> str:
        return self.obj.text() if isinstance(self.obj, Element) else ""


def _kind(obj: NftObject) -> str:
    return type(obj).__name__.lower()


def _statement(verb: Verb, obj: NftObject, family: Family, table: str, elements: str) -> str:
    where = f"{family} {table}"
    if isinstance(obj, Table):
        body = f" {{ comment {quote(obj.comment)} ; }}" if obj.comment else ""
        return f"{verb} table {where}" + (body if verb in (Verb.ADD, Verb.CREATE) else "")
    if isinstance(obj, Chain):
        body = obj.body()
        return f"{verb} chain {where} {obj.name}" + (f" {{ {body} }}" if body else "")
    if isinstance(obj, Rule):
        pos = ""
        if obj.index is not None:
            pos = f" index {obj.index}"
        elif obj.handle is not None:
            pos = f" handle {obj.handle}"
        if verb is Verb.DELETE:
            return f"delete rule {where} {obj.chain}{pos}"
        return f"{verb} rule {where} {obj.chain}{pos} {obj.text()}"
    if isinstance(obj, (Set, Map)):
        kind = "map" if obj.is_map else "set"
        head = f"{verb} {kind} {where} {obj.name}"
        if verb in (Verb.ADD, Verb.CREATE):
            return f"{head} {{ {obj.body()} }}"
        return head
    return f"{verb} element {where} {obj.set} {{ {elements} }}"


@dataclass(frozen=True, slots=True)
class Line:
    """One rendered statement and the indexes of the operations it holds."""

    text: str
    operations: tuple[int, ...]


@dataclass
class Transaction:
    """An ordered list of operations on one table, applied by one `nft -f`."""

    family: Family
    table: str
    operations: list[Operation] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_name("table", self.table)

    # Building --------------------------------------------------------------------

    def _op(self, verb: Verb, obj: NftObject) -> Transaction:
        self.operations.append(Operation(verb, obj))
        return self

    def add(self, obj: NftObject) -> Transaction:
        return self._op(Verb.ADD, obj)

    def create(self, obj: NftObject) -> Transaction:
        return self._op(Verb.CREATE, obj)

    def flush(self, obj: NftObject) -> Transaction:
        return self._op(Verb.FLUSH, obj)

    def delete(self, obj: NftObject) -> Transaction:
        return self._op(Verb.DELETE, obj)

    def insert(self, obj: Rule) -> Transaction:
        return self._op(Verb.INSERT, obj)

    def replace(self, obj: Rule) -> Transaction:
        return self._op(Verb.REPLACE, obj)

    def extend(self, other: Transaction) -> Transaction:
        if (other.family, other.table) != (self.family, self.table):
            raise ValidationError(
                f"cannot merge a transaction on {other.family} {other.table} into "
                f"{self.family} {self.table}"
            )
        self.operations.extend(other.operations)
        return self

    # Reading ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.operations)

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.operations)

    def __bool__(self) -> bool:
        return bool(self.operations)

    def count(self, verb: Verb | None = None, kind: type | None = None) -> int:
        return sum(
            1
            for op in self.operations
            if (verb is None or op.verb is verb) and (kind is None or isinstance(op.obj, kind))
        )

    def render(self) -> list[Line]:
        """The statements, grouping runs of element operations on one set."""
        lines: list[Line] = []
        ops = self.operations
        n = len(ops)
        i = 0
        while i < n:
            op = ops[i]
            obj = op.obj
            if type(obj) is Element:
                verb, set_name = op.verb, obj.set
                j = i + 1
                limit = min(n, i + ELEMENTS_PER_STATEMENT)
                while j < limit:
                    nxt = ops[j]
                    other = nxt.obj
                    if nxt.verb is not verb or type(other) is not Element or other.set != set_name:
                        break
                    j += 1
                texts = ", ".join([ops[k].obj.text() for k in range(i, j)])  # type: ignore[union-attr]
                lines.append(
                    Line(_statement(verb, obj, self.family, self.table, texts), tuple(range(i, j)))
                )
                i = j
                continue
            lines.append(Line(op.statement(self.family, self.table), (i,)))
            i += 1
        return lines

    def __str__(self) -> str:
        lines = self.render()
        return "".join(line.text + "\n" for line in lines)


def elements_of(tx: Transaction, verb: Verb | None = None) -> list[Element]:
    return [
        op.obj
        for op in tx.operations
        if isinstance(op.obj, Element) and (verb is None or op.verb is verb)
    ]


def join_statements(parts: Sequence[str]) -> str:
    """Statements joined with single spaces, empty parts dropped (rules built from parts)."""
    return " ".join(p for p in parts if p)
