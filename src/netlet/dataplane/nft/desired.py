"""The desired content of one nftables table, as a value the renderers compute.

Owns `DesiredTable` and its unit of change, the `Fragment`: the chains, set and
map definitions and elements that one thing contributes (the table's fixed
skeleton, one Service, one policy, one selector class). A renderer keeps the
fragments of what did not change as the *same objects*, so a partial sync
finds what changed by identity and costs time proportional to the change, not
to the table (the 10,000-service target: partial sync within 1.5x of one
`nft -f`).

Invariants: fragments are never mutated once built; a chain or a set belongs
to one fragment; an element key may be claimed by several fragments (the same
pod is an endpoint of many Services): the kernel holds one element per key,
the claim of the fragment with the lowest (priority, id), and it stays until
the last claim goes. A `dynamic` set is filled by the packet path (affinity
memory): syncs define it, never write or flush its elements. `settings`
fingerprints what needs a full sync when it changes (the node's addresses).
`deferrals` says which removals a partial sync may leave for a later
collection (netlet.dataplane.nft.deferred): the renderer vouches that the
rules make them harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from netlet.dataplane.nft.model import (
    Chain,
    Element,
    Family,
    Map,
    Rule,
    Set,
    SetLike,
    ValidationError,
)

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChainSpec:
    chain: Chain
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True, slots=True)
class SetSpec:
    definition: SetLike
    dynamic: bool = False


@dataclass(frozen=True, slots=True)
class Fragment:
    chains: Mapping[str, ChainSpec] = field(default_factory=dict)
    sets: Mapping[str, SetSpec] = field(default_factory=dict)
    elements: Mapping[str, Mapping[Key, Element]] = field(default_factory=dict)
    # Order among fragments claiming the same element key: lowest wins.
    priority: tuple[str, ...] = ()

    def element_count(self) -> int:
        return sum(len(e) for e in self.elements.values())


EMPTY = Fragment()


@dataclass(frozen=True, slots=True)
class Deferral:
    """How a partial sync may leave the removal of one set's elements for later.

    `moves` (maps keyed by one number): a key taking a new value may instead keep
    its old element while a spare key holds the new value and the map `moves`
    holds `key : spare`; the rules look `moves` up before this map. `linger`
    (sets): an element that goes may stay until the collection, because the
    rules make its presence change no packet's fate.
    """

    moves: str | None = None
    linger: bool = False


def claim_order(fragments: Mapping[str, Fragment], fid: str) -> tuple[tuple[str, ...], str]:
    return (fragments[fid].priority, fid)


@dataclass(frozen=True, slots=True)
class DesiredTable:
    family: Family
    name: str
    comment: str | None
    fragments: Mapping[str, Fragment]
    settings: tuple[object, ...] = ()
    deferrals: Mapping[str, Deferral] = field(default_factory=dict, compare=False)
    # A table derived from another by replacing some fragments says so: `parent` is
    # id() of that table and `changed` the fragment ids that may differ. While the
    # parent is alive (the syncer's mirror) ids are unique, so a diff against it
    # looks only at `changed` instead of scanning every fragment.
    parent: int | None = field(default=None, compare=False)
    changed: frozenset[str] = field(default=frozenset(), compare=False)

    def chains(self) -> dict[str, ChainSpec]:
        out: dict[str, ChainSpec] = {}
        for fid, frag in self.fragments.items():
            for name, spec in frag.chains.items():
                if name in out:
                    raise ValidationError(f"chain {name} is defined twice (again by {fid})")
                out[name] = spec
        return out

    def sets(self) -> dict[str, SetSpec]:
        out: dict[str, SetSpec] = {}
        for fid, frag in self.fragments.items():
            for name, spec in frag.sets.items():
                if name in out:
                    raise ValidationError(f"set {name} is defined twice (again by {fid})")
                out[name] = spec
        return out

    def elements(self) -> dict[str, dict[Key, Element]]:
        """The elements the kernel holds: per key, the lowest (priority, id) claim."""
        best: dict[str, dict[Key, tuple[tuple[tuple[str, ...], str], Element]]] = {}
        for fid, frag in self.fragments.items():
            order = (frag.priority, fid)
            for set_name, elems in frag.elements.items():
                bucket = best.setdefault(set_name, {})
                for key, elem in elems.items():
                    current = bucket.get(key)
                    if current is None or order < current[0]:
                        bucket[key] = (order, elem)
        out = {name: {k: v[1] for k, v in bucket.items()} for name, bucket in best.items()}
        for name in self.sets():
            out.setdefault(name, {})
        return out

    def all_elements(self) -> Iterator[Element]:
        for elems in self.elements().values():
            yield from elems.values()

    def stats(self) -> dict[str, int]:
        chains = self.chains()
        return {
            "chains": len(chains),
            "rules": sum(len(c.rules) for c in chains.values()),
            "sets": len(self.sets()),
            "elements": sum(len(e) for e in self.elements().values()),
        }

    def with_fragments(self, fragments: Mapping[str, Fragment]) -> DesiredTable:
        return DesiredTable(
            self.family, self.name, self.comment, fragments, self.settings, self.deferrals
        )

    def derive(self, fragments: Mapping[str, Fragment], changed: frozenset[str]) -> DesiredTable:
        """This table with some fragments replaced (or removed): `changed` names them."""
        return DesiredTable(
            self.family,
            self.name,
            self.comment,
            fragments,
            self.settings,
            self.deferrals,
            id(self),
            changed,
        )


class FragmentBuilder:
    """Collects one fragment's chains, rules, sets and elements."""

    def __init__(self, family: Family, priority: tuple[str, ...] = ()) -> None:
        self.family = family
        self.priority = priority
        self._chains: dict[str, Chain] = {}
        self._rules: dict[str, list[Rule]] = {}
        self._sets: dict[str, SetSpec] = {}
        self._elements: dict[str, dict[Key, Element]] = {}
        # Sets declared by other fragments (the skeleton) that elements may go to.
        self._known: dict[str, SetLike] = {}

    @property
    def addr(self) -> str:
        """`ip` or `ip6`: the address match of this table's family."""
        return self.family.addr_match

    @property
    def addr_type(self) -> str:
        return self.family.addr_type

    def knows(self, definitions: Iterable[SetLike]) -> FragmentBuilder:
        for definition in definitions:
            self._known[definition.name] = definition
        return self

    def chain(self, chain: Chain | str) -> str:
        """Declare a chain (idempotent for the same definition); returns its name."""
        if isinstance(chain, str):
            chain = Chain(chain)
        current = self._chains.get(chain.name)
        if current is not None and current != chain:
            raise ValidationError(f"chain {chain.name} declared twice with different fields")
        if current is None:
            self._chains[chain.name] = chain
            self._rules[chain.name] = []
        return chain.name

    def has_chain(self, name: str) -> bool:
        return name in self._chains

    def rule(self, chain: str, text: str, comment: str | None = None) -> None:
        if chain not in self._chains:
            raise ValidationError(f"rule for undeclared chain {chain}: {text}")
        self._rules[chain].append(Rule(chain, text, comment))

    def set(self, definition: Set | Map, dynamic: bool = False) -> str:
        spec = SetSpec(definition, dynamic)
        current = self._sets.get(definition.name)
        if current is not None and current != spec:
            raise ValidationError(f"set {definition.name} declared twice with different fields")
        self._sets[definition.name] = spec
        return definition.name

    def element(
        self,
        set_name: str,
        key: Key,
        value: tuple[str, ...] | None = None,
        comment: str | None = None,
    ) -> None:
        elems = self._elements.get(set_name)
        if elems is not None:
            current = elems.get(key)
            if current is not None:
                if current.value != value:
                    raise ValidationError(
                        f"element {' . '.join(key)} of {set_name} given two values: "
                        f"{current.value} and {value}"
                    )
                return  # the same key again (an endpoint of several ports)
        spec = self._sets.get(set_name)
        definition = spec.definition if spec is not None else self._known.get(set_name)
        if definition is None:
            raise ValidationError(f"element for undeclared set {set_name}: {key}")
        if spec is not None and spec.dynamic:
            raise ValidationError(f"set {set_name} is filled by the packet path, not by syncs")
        if len(key) != definition.key_arity:
            raise ValidationError(
                f"element {' . '.join(key)} of {set_name}: {len(key)} key parts, "
                f"the set has {definition.key_arity}"
            )
        if definition.is_map != (value is not None):
            raise ValidationError(f"element {' . '.join(key)} of {set_name}: value mismatch")
        if elems is None:
            elems = self._elements[set_name] = {}
        elems[key] = Element(set_name, key, value, comment)

    def build(self) -> Fragment:
        chains = {
            name: ChainSpec(chain, tuple(self._rules[name])) for name, chain in self._chains.items()
        }
        return Fragment(chains, dict(self._sets), self._elements, self.priority)
