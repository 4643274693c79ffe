"""Why a request went where it went: the decision plus what lost to it.

`explain_http` calls `match_http` (the proxy's own matching) and then walks the
same tables the slow way, in precedence order, to list the listeners that were
not chosen and every higher-precedence rule that did not match, with the first
condition that failed. The explanation never decides anything itself: if the
slow walk and the decision disagreed that would be a bug, and the tests check
that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from netlet.gateway.hostnames import host_matches, normalize_host
from netlet.gateway.match import HTTPDecision, match_http, match_listener, select_listener
from netlet.gateway.table import (
    GatewayProgram,
    GRPCEntry,
    HTTPEntry,
    ListenerInfo,
    ListenerTable,
    Request,
)


@dataclass(frozen=True, slots=True)
class ListenerCheck:
    listener: ListenerInfo
    chosen: bool
    why: str


@dataclass(frozen=True, slots=True)
class Loser:
    """A rule match that ranks above the winner (or every rule, on a 404) and did
    not match, with the first condition that failed."""

    entry: HTTPEntry | GRPCEntry
    group: str  # the hostname group it was tried in ("" = routes without hostnames)
    why: str


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: HTTPDecision
    listeners: tuple[ListenerCheck, ...]
    losers: tuple[Loser, ...]


def _listener_checks(
    program: GatewayProgram, request: Request, chosen: ListenerInfo | None
) -> tuple[ListenerCheck, ...]:
    table = program.port(request.port, "tcp")
    if table is None:
        return ()
    host = normalize_host(request.host)
    out = []
    for listener in table.listeners:
        info = listener.info
        if info is chosen:
            out.append(ListenerCheck(info, True, "most specific listener matching the request"))
            continue
        wanted = "HTTPS" if request.scheme == "https" else "HTTP"
        if info.protocol != wanted:
            why = f"protocol {info.protocol}, request is {wanted}"
        elif info.hostname and not host_matches(info.hostname, host):
            why = f"hostname {info.hostname} does not match {host}"
        else:
            why = "a more specific listener was chosen" if chosen else "not selected"
        out.append(ListenerCheck(info, False, why))
    return tuple(out)


def _in_group(hostnames: tuple[str, ...], group: str) -> bool:
    return (not hostnames) if group == "" else group in hostnames


def _losers(listener: ListenerTable, request: Request, decision: HTTPDecision) -> list[Loser]:
    host = normalize_host(request.host)
    winner = decision.entry
    out: list[Loser] = []
    seen: set[int] = set()
    if request.is_grpc and listener.grpc is not None:
        service_method = request.grpc_service_method or ("", "")
        for group, grpc_entries in listener.grpc.groups(host):
            for grpc_entry in grpc_entries:
                if grpc_entry is winner:
                    return out
                if grpc_entry.rank in seen:
                    continue
                why = grpc_entry.match.mismatch(service_method[0], service_method[1], request)
                if why is not None:
                    seen.add(grpc_entry.rank)
                    out.append(Loser(grpc_entry, group, why))
        if isinstance(winner, GRPCEntry):
            return out
    if listener.http is None:
        return out
    http_seen: set[int] = set()
    for group, _ in listener.http.groups(host):
        for entry in listener.http.entries:
            if not _in_group(entry.hostnames, group):
                continue
            if entry is winner:
                return out
            if entry.rank in http_seen:
                continue
            why = entry.match.mismatch(request)
            if why is not None:
                http_seen.add(entry.rank)
                out.append(Loser(entry, group, why))
    return out


def explain_http(
    program: GatewayProgram, request: Request, listener: str | None = None
) -> Explanation:
    """Explain `request` on `program`; `listener` ("name" or "owner/name") bypasses
    listener selection, as if the request had landed on that listener."""
    checks: tuple[ListenerCheck, ...]
    if listener is not None:
        table = find_listener(program, listener)
        if table is None:
            raise KeyError(f"no programmed listener {listener} on Gateway {program.gateway}")
        decision = match_listener(table, request)
        checks = (ListenerCheck(table.info, True, "chosen with --listener"),)
    else:
        decision = match_http(program, request)
        table, _, _ = select_listener(program, request)
        checks = _listener_checks(program, request, table.info if table else None)
    losers = _losers(table, request, decision) if table is not None else []
    return Explanation(decision, checks, tuple(losers))


def find_listener(program: GatewayProgram, name: str) -> ListenerTable | None:
    """A listener by name, or by "<ListenerSet name>/<name>" for ListenerSet entries."""
    owner, _, listener = name.rpartition("/")
    for table in program.listeners:
        info = table.info
        if info.name != listener:
            continue
        if not owner and info.owner_kind == "Gateway":
            return table
        if owner and owner in (info.owner, info.owner.rpartition("/")[2]):
            return table
    if not owner:
        return next((t for t in program.listeners if t.info.name == listener), None)
    return None
