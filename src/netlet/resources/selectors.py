"""Label selectors (metav1.LabelSelector) as hashable values.

An empty selector `{}` selects everything; an absent selector is the caller's
business (NetworkPolicy peers treat "absent" and "empty" differently), so
functions here only take selectors that are present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from netlet.resources.base import LabelSelector


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist

    def __str__(self) -> str:
        values = ",".join(sorted(self.values))
        if self.operator == "In":
            return f"{self.key} in ({values})"
        if self.operator == "NotIn":
            return f"{self.key} notin ({values})"
        if self.operator == "Exists":
            return self.key
        return f"!{self.key}"


@dataclass(frozen=True, slots=True)
class Selector:
    """A compiled selector: matchLabels become `In` requirements; order-independent."""

    requirements: frozenset[Requirement]

    @property
    def selects_all(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)

    def __str__(self) -> str:
        if not self.requirements:
            return "<all>"
        parts = []
        for req in sorted(self.requirements, key=lambda r: (r.key, r.operator, sorted(r.values))):
            if req.operator == "In" and len(req.values) == 1:
                parts.append(f"{req.key}={next(iter(req.values))}")
            else:
                parts.append(str(req))
        return ",".join(parts)


EVERYTHING = Selector(frozenset())


def compile_selector(selector: LabelSelector) -> Selector:
    key = (
        tuple(sorted(selector.match_labels.items())),
        tuple((e.key, e.operator, e.values) for e in selector.match_expressions),
    )
    return _compile(key)


@lru_cache(maxsize=65536)
def _compile(
    key: tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, tuple[str, ...]], ...]],
) -> Selector:
    labels, expressions = key
    reqs = {Requirement(k, "In", frozenset((v,))) for k, v in labels}
    for name, operator, values in expressions:
        reqs.add(Requirement(name, operator, frozenset(values)))
    return Selector(frozenset(reqs))


def matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """True when `labels` satisfy every matchLabels entry and every matchExpression."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for expr in selector.match_expressions:
        present = expr.key in labels
        if expr.operator == "In":
            if not present or labels[expr.key] not in expr.values:
                return False
        elif expr.operator == "NotIn":
            if present and labels[expr.key] in expr.values:
                return False
        elif expr.operator == "Exists":
            if not present:
                return False
        elif present:  # DoesNotExist
            return False
    return True


def selector_from_labels(labels: Mapping[str, str]) -> Selector:
    """A Service's spec.selector (a plain map) as a Selector."""
    return Selector(frozenset(Requirement(k, "In", frozenset((v,))) for k, v in labels.items()))


def parse_selector(text: str) -> Selector:
    """kubectl's -l syntax: `a=b,c!=d,e in (f,g),h notin (i),j,!k`."""
    reqs: set[Requirement] = set()
    for part in _split_top_level(text):
        part = part.strip()
        if not part:
            continue
        lowered = part.replace("  ", " ")
        if " notin " in lowered or " in " in lowered:
            op = "NotIn" if " notin " in lowered else "In"
            key, _, rest = lowered.partition(" notin " if op == "NotIn" else " in ")
            rest = rest.strip()
            if not (rest.startswith("(") and rest.endswith(")")):
                raise ValueError(f"invalid selector {part!r}: expected '(' values ')'")
            values = frozenset(v.strip() for v in rest[1:-1].split(",") if v.strip())
            reqs.add(Requirement(key.strip(), op, values))
        elif "!=" in part:
            key, _, value = part.partition("!=")
            reqs.add(Requirement(key.strip(), "NotIn", frozenset((value.strip(),))))
        elif "=" in part:
            key, _, value = part.partition("==" if "==" in part else "=")
            reqs.add(Requirement(key.strip(), "In", frozenset((value.strip(),))))
        elif part.startswith("!"):
            reqs.add(Requirement(part[1:].strip(), "DoesNotExist"))
        else:
            reqs.add(Requirement(part, "Exists"))
    return Selector(frozenset(reqs))


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts
