"""Compiled routes -> the ordered, indexed tables of `netlet.gateway.table`.

The precedence keys below are the spec's rules as data (see `table` for the
prose and the API doc sections they come from). Sorting by them gives every
(rule, match) pair a rank; the hostname and path indexes only narrow which ranks
a request has to look at, so the index never changes the answer, only its cost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from netlet.gateway.hostnames import is_wildcard
from netlet.gateway.routes import CompiledRoute
from netlet.gateway.table import (
    GRPCEntry,
    GRPCMatch,
    GRPCTable,
    HTTPEntry,
    HTTPMatch,
    HTTPTable,
    L4Rule,
    PathIndex,
    TLSEntry,
    TLSTable,
)

# HTTPRouteRule.Matches precedence, most specific first. RegularExpression ranks
# between Exact and PathPrefix (implementation-specific in the spec).
PATH_TYPE_ORDER = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}

Attached = tuple[CompiledRoute, tuple[str, ...]]  # a route and its hostnames on the listener


def http_match_key(match: HTTPMatch) -> tuple[int, int, int, int, int]:
    """Exact path; longest prefix (longest regex); method; headers; query params."""
    if match.path_type == "PathPrefix":
        length = len(match.prefix)
    elif match.path_type == "RegularExpression":
        length = len(match.path)
    else:
        length = 0
    return (
        PATH_TYPE_ORDER[match.path_type],
        -length,
        0 if match.method else 1,
        -len(match.headers),
        -len(match.query),
    )


def grpc_match_key(match: GRPCMatch | None) -> tuple[int, int, int]:
    """Characters in the service, then in the method, then header matches."""
    if match is None:
        return (0, 0, 0)
    return (-len(match.service or ""), -len(match.method or ""), -len(match.headers))


def build_http_table(items: Iterable[Attached], ignore_hostnames: bool = False) -> HTTPTable | None:
    raw = []
    for compiled, hostnames in items:
        for rule, matches in compiled.http:
            for index, match in enumerate(matches):
                key = (
                    *http_match_key(match),
                    *compiled.order_key,
                    rule.ref.index,
                    index,
                )
                raw.append((key, rule, match, index, () if ignore_hostnames else hostnames))
    if not raw:
        return None
    raw.sort(key=lambda item: item[0])
    entries = tuple(
        HTTPEntry(rank, rule, match, index, hostnames, key)
        for rank, (key, rule, match, index, hostnames) in enumerate(raw)
    )
    exact: dict[str, _PathIndexBuilder] = defaultdict(_PathIndexBuilder)
    wildcard: dict[str, _PathIndexBuilder] = defaultdict(_PathIndexBuilder)
    any_host = _PathIndexBuilder()
    for entry in entries:
        if not entry.hostnames:
            any_host.add(entry)
        for host in dict.fromkeys(entry.hostnames):
            (wildcard if is_wildcard(host) else exact)[host].add(entry)
    return HTTPTable(
        entries,
        {host: b.build() for host, b in exact.items()},
        {host: b.build() for host, b in wildcard.items()},
        any_host.build(),
    )


class _PathIndexBuilder:
    def __init__(self) -> None:
        self.exact: dict[str, list[HTTPEntry]] = defaultdict(list)
        self.prefix: dict[str, list[HTTPEntry]] = defaultdict(list)
        self.regex: list[HTTPEntry] = []

    def add(self, entry: HTTPEntry) -> None:
        match = entry.match
        if match.path_type == "Exact":
            self.exact[match.path].append(entry)
        elif match.path_type == "PathPrefix":
            self.prefix[match.prefix].append(entry)
        else:
            self.regex.append(entry)

    def build(self) -> PathIndex:
        return PathIndex(
            {k: tuple(v) for k, v in self.exact.items()},
            {k: tuple(v) for k, v in self.prefix.items()},
            tuple(self.regex),
        )


def build_grpc_table(items: Iterable[Attached], ignore_hostnames: bool = False) -> GRPCTable | None:
    raw = []
    for compiled, hostnames in items:
        for rule, matches in compiled.grpc:
            cases: list[tuple[int | None, GRPCMatch]] = (
                [(None, GRPCMatch())] if matches is None else list(enumerate(matches))
            )
            for index, match in cases:
                key = (
                    *grpc_match_key(match if index is not None else None),
                    *compiled.order_key,
                    rule.ref.index,
                    index or 0,
                )
                raw.append((key, rule, match, index, () if ignore_hostnames else hostnames))
    if not raw:
        return None
    raw.sort(key=lambda item: item[0])
    entries = tuple(
        GRPCEntry(rank, rule, match, index, hostnames, key)
        for rank, (key, rule, match, index, hostnames) in enumerate(raw)
    )
    exact: dict[str, list[GRPCEntry]] = defaultdict(list)
    wildcard: dict[str, list[GRPCEntry]] = defaultdict(list)
    any_host: list[GRPCEntry] = []
    for entry in entries:
        if not entry.hostnames:
            any_host.append(entry)
        for host in dict.fromkeys(entry.hostnames):
            (wildcard if is_wildcard(host) else exact)[host].append(entry)
    return GRPCTable(
        entries,
        {k: tuple(v) for k, v in exact.items()},
        {k: tuple(v) for k, v in wildcard.items()},
        tuple(any_host),
    )


def build_tls_table(items: Iterable[Attached]) -> TLSTable | None:
    """SNI -> the TLSRoute rule; on a shared hostname the older route wins."""
    raw = []
    for compiled, hostnames in items:
        if not compiled.l4:
            continue
        rule = compiled.l4[0]  # TLSRoute rules have no match criteria: the first serves
        for host in hostnames or ("",):
            raw.append(((host, *compiled.order_key), host, rule))
    if not raw:
        return None
    raw.sort(key=lambda item: item[0])
    entries = tuple(TLSEntry(host, rule, key) for key, host, rule in raw)
    by_host: dict[str, TLSEntry] = {}
    for entry in entries:
        by_host.setdefault(entry.hostname, entry)
    return TLSTable(entries, by_host)


def pick_l4_rule(items: Iterable[Attached]) -> tuple[L4Rule | None, list[CompiledRoute]]:
    """TCP/UDP listeners forward to one route: the oldest (then by name); the rest are
    reported as shadowed."""
    routes = sorted((c for c, _ in items if c.l4), key=lambda c: c.order_key)
    if not routes:
        return None, []
    return routes[0].l4[0], routes[1:]
