"""`netlet gateway`: the Gateway API brain on the command line.

- `netlet gateway status`: every Gateway, listener, ListenerSet, route parent and
  BackendTLSPolicy with its conditions (tables), or the status objects a
  controller would write (-o yaml|json).
- `netlet gateway route`: where one request goes: the listener, route, rule and
  match; filters and the request as the backend sees it (or the redirect or
  response); the weighted backends and their endpoints; the higher-precedence
  rules that lost and why. Exit 1 when nothing matches (the gateway answers 404).

Also `gateway_findings` for `netlet check` (registered in cli/main.py).
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import typer

from netlet.cli.common import (
    EXIT_FINDING,
    AllNamespacesOption,
    ClusterCIDROption,
    DualStackOption,
    FilesOption,
    NamespaceOption,
    OutputFormat,
    OutputOption,
    ServiceCIDROption,
    exit_for,
    fail,
    load,
    make_config,
    stdout_console,
)
from netlet.cli.output import as_list, print_document, print_table
from netlet.gateway.build import GatewayWorld, build_world
from netlet.gateway.conditions import Condition, ConditionType, find
from netlet.gateway.explain import Explanation, explain_http
from netlet.gateway.findings import gateway_findings
from netlet.gateway.match import Action
from netlet.gateway.table import GatewayProgram, Request

__all__ = ["gateway_app", "gateway_findings"]

gateway_app = typer.Typer(
    help="Gateway API: status of Gateways and routes, and where a request goes.",
    no_args_is_help=True,
)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(conditions: tuple[Condition, ...], type_: ConditionType) -> str:
    found = find(conditions, type_)
    return found.status if found is not None else "-"


def _reason(conditions: tuple[Condition, ...]) -> str:
    """The first unhealthy condition's reason and message, else the Accepted reason."""
    bad = [c for c in conditions if not c.ok]
    if bad:
        return f"{bad[0].reason.value}: {bad[0].message}"
    accepted = find(conditions, ConditionType.ACCEPTED)
    return accepted.reason.value if accepted is not None else ""


def _in_scope(namespace: str, wanted: str | None, everything: bool) -> bool:
    return everything or wanted is None or namespace in (wanted, "")


def _status_objects(world: GatewayWorld, ns: str | None, everything: bool) -> list[dict[str, Any]]:
    now = _now()
    items: list[dict[str, Any]] = []
    items += [gc.to_api(now) for gc in world.classes if gc.managed]
    items += [
        g.to_api(now)
        for g in world.gateways
        if g.managed and _in_scope(g.namespace, ns, everything)
    ]
    items += [s.to_api(now) for s in world.listener_sets if _in_scope(s.namespace, ns, everything)]
    items += [r.to_api(now) for r in world.routes if _in_scope(r.namespace, ns, everything)]
    items += [p.to_api(now) for p in world.policies if _in_scope(p.namespace, ns, everything)]
    return items


@gateway_app.command("status")
def status(
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    output: OutputOption = OutputFormat.TABLE,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """Conditions of every Gateway, listener, ListenerSet and route, as netlet's
    controller would write them.

    Example:

      netlet gateway status -f examples/shop
      netlet gateway status -f examples/shop -o yaml
    """
    result = load(files, make_config(service_cidr, cluster_cidr, dual_stack))
    world = build_world(result.state)
    console = stdout_console()
    everything = all_namespaces or namespace is None
    if output in (OutputFormat.YAML, OutputFormat.JSON):
        print_document(console, as_list(_status_objects(world, namespace, everything)), output)
        exit_for(result)
        return
    sections = _status_tables(world, namespace, everything, output == OutputFormat.WIDE)
    for title, headers, rows in sections:
        print_table(console, headers, rows, title=title)
    if not any(rows for _, _, rows in sections):
        console.print("No Gateway API objects found.", highlight=False)
    exit_for(result)


Rows = list[tuple[str, ...]]


def _status_tables(
    world: GatewayWorld, ns: str | None, everything: bool, wide: bool
) -> list[tuple[str, tuple[str, ...], Rows]]:
    """(title, headers, rows) of each table `netlet gateway status` prints."""
    accepted, resolved, programmed = (
        ConditionType.ACCEPTED,
        ConditionType.RESOLVED_REFS,
        ConditionType.PROGRAMMED,
    )
    gateways: Rows = [
        (
            f"{g.namespace}/{g.name}",
            g.class_name,
            ",".join(v for _, v in g.addresses) or "-",
            _cell(g.conditions, accepted),
            _cell(g.conditions, programmed),
            _reason(g.conditions) if g.managed else "not managed by netlet (no such GatewayClass)",
        )
        for g in world.gateways
        if _in_scope(g.namespace, ns, everything)
    ]
    owners = [(f"Gateway {g.namespace}/{g.name}", g.namespace, g.listeners) for g in world.gateways]
    owners += [
        (f"ListenerSet {s.namespace}/{s.name}", s.namespace, s.listeners)
        for s in world.listener_sets
    ]
    listeners: Rows = [
        (
            owner,
            lst.name,
            f"{lst.protocol}/{lst.port}",
            lst.hostname or "*",
            _cell(lst.conditions, accepted),
            _cell(lst.conditions, resolved),
            _cell(lst.conditions, programmed),
            str(lst.attached_routes),
            _reason(lst.conditions),
        )
        for owner, owner_ns, items in owners
        if _in_scope(owner_ns, ns, everything)
        for lst in items
    ]
    sets: Rows = [
        (
            f"{s.namespace}/{s.name}",
            s.gateway or "-",
            _cell(s.conditions, accepted),
            _cell(s.conditions, programmed),
            _reason(s.conditions),
        )
        for s in world.listener_sets
        if _in_scope(s.namespace, ns, everything)
    ]
    routes: Rows = []
    for route in world.routes:
        if not _in_scope(route.namespace, ns, everything):
            continue
        name = f"{route.kind} {route.namespace}/{route.name}"
        for parent in route.parents:
            row = (
                name,
                str(parent.parent),
                _cell(parent.conditions, accepted),
                _cell(parent.conditions, resolved),
                _reason(parent.conditions),
            )
            routes.append(row + ((", ".join(parent.listeners) or "-",) if wide else ()))
        if not route.parents:
            row = (name, "-", "-", "-", "no parent managed by netlet")
            routes.append(row + (("-",) if wide else ()))
    policies: Rows = [
        (
            f"{p.namespace}/{p.name}",
            _cell(p.conditions, accepted),
            _cell(p.conditions, resolved),
            ",".join(f"{a.ancestor.namespace}/{a.ancestor.name}" for a in p.ancestors) or "-",
            _reason(p.conditions),
        )
        for p in world.policies
        if _in_scope(p.namespace, ns, everything)
    ]
    route_headers = ("ROUTE", "PARENT", "ACCEPTED", "RESOLVEDREFS", "REASON")
    return [
        (
            "Gateways",
            ("GATEWAY", "CLASS", "ADDRESSES", "ACCEPTED", "PROGRAMMED", "REASON"),
            gateways,
        ),
        (
            "Listeners",
            (
                "OWNER",
                "LISTENER",
                "PORT",
                "HOSTNAME",
                "ACCEPTED",
                "RESOLVED",
                "PROGRAMMED",
                "ROUTES",
                "REASON",
            ),
            listeners,
        ),
        ("ListenerSets", ("LISTENERSET", "GATEWAY", "ACCEPTED", "PROGRAMMED", "REASON"), sets),
        ("Routes", route_headers + (("ATTACHED TO",) if wide else ()), routes),
        (
            "BackendTLSPolicies",
            ("BACKENDTLSPOLICY", "ACCEPTED", "RESOLVEDREFS", "GATEWAYS", "REASON"),
            policies,
        ),
    ]


def _parse_headers(values: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            fail(f"-H {value!r}: expected 'Name: value'")
        out.append((name.strip(), rest.strip()))
    return tuple(out)


def _parse_request(
    text: str, headers: tuple[tuple[str, str], ...], grpc: str | None, sni: str | None
) -> Request:
    method, sep, url = text.strip().partition(" ")
    if not sep:
        method, url = ("POST" if grpc else "GET"), text.strip()
    if "://" not in url:
        fail(f"{url!r}: give a full URL such as 'GET https://host[:port]/path?query'")
    if grpc:
        service, slash, rpc = grpc.partition("/")
        if not slash or not service or not rpc:
            fail(f"--grpc {grpc!r}: expected SERVICE/METHOD, e.g. helloworld.Greeter/SayHello")
        scheme_host = url.split("://", 1)
        authority = scheme_host[1].split("/", 1)[0]
        url = f"{scheme_host[0]}://{authority}/{service}/{rpc}"
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers = (*headers, ("content-type", "application/grpc"))
    try:
        return Request.from_url(method, url, headers, sni=sni)
    except ValueError as exc:
        fail(f"{url!r}: {exc}")


def _choose_program(world: GatewayWorld, gateway: str | None, port: int) -> GatewayProgram:
    if gateway is not None:
        key = gateway if "/" in gateway else f"default/{gateway}"
        program = world.programs.get(key)
        if program is None:
            status = world.gateway(*key.split("/", 1))
            why = "does not exist" if status is None else "is not Programmed"
            fail(f"Gateway {key} {why}")
        return program
    listening = [p for p in world.programs.values() if p.port(port, "tcp") is not None]
    if len(listening) == 1:
        return listening[0]
    if not listening:
        fail(f"no Programmed Gateway listens on port {port} (use --gateway NS/NAME)")
    names = ", ".join(p.gateway for p in listening)
    fail(f"several Gateways listen on port {port} ({names}): choose one with --gateway")


def _explanation_data(exp: Explanation) -> dict[str, Any]:
    decision = exp.decision
    data: dict[str, Any] = {
        "action": decision.action.value,
        "status": decision.status or None,
        "reason": decision.reason,
        "listener": str(decision.listener) if decision.listener else None,
        "route": str(decision.entry.rule.ref.route) if decision.entry else None,
        "rule": str(decision.entry.rule.ref) if decision.entry else None,
        "match": str(decision.entry.match) if decision.entry else None,
        "grpc": decision.grpc,
    }
    if decision.entry is not None:
        data["filters"] = [f.kind for f in decision.entry.rule.filters]
    if decision.action == Action.REDIRECT:
        data["location"] = decision.location
    if decision.action == Action.FORWARD:
        req = decision.request
        data["upstreamRequest"] = {
            "method": req.method,
            "host": req.host,
            "path": req.path,
            "query": req.query,
            "headers": [f"{k}: {v}" for k, v in req.headers],
        }
        total = sum(b.weight for b in decision.backends) or 1
        data["backends"] = [
            {
                "backend": str(b.backend.key),
                "weight": b.weight,
                "share": round(100.0 * b.weight / total, 2),
                "state": b.backend.state.value,
                "status": b.backend.status_code,
                "message": b.backend.message,
                "endpoints": [str(e) for e in b.backend.endpoints],
                "tls": b.backend.tls.policy if b.backend.tls else None,
            }
            for b in decision.backends
        ]
        data["mirrors"] = [str(m.backend.key) for m in decision.mirrors]
    if decision.response_headers:
        data["responseHeaders"] = [f"{k}: {v}" for k, v in decision.response_headers]
    data["listenersConsidered"] = [
        {"listener": str(c.listener), "chosen": c.chosen, "why": c.why} for c in exp.listeners
    ]
    data["losers"] = [
        {"rule": str(loser.entry), "hostnameGroup": loser.group or "*", "why": loser.why}
        for loser in exp.losers
    ]
    return data


def _print_explanation(exp: Explanation, limit: int) -> None:
    console = stdout_console()
    decision = exp.decision
    out = console.out
    if decision.listener is not None:
        out(f"listener:  {decision.listener}", highlight=False)
    else:
        out("listener:  none", highlight=False)
    if decision.entry is not None:
        out(f"route:     {decision.entry.rule.ref.route}", highlight=False)
        out(f"rule:      {decision.entry.rule.ref}", highlight=False)
        out(f"match:     {decision.entry.match}", highlight=False)
        filters = decision.entry.rule.filters
        if filters:
            out("filters:   " + ", ".join(f.kind for f in filters), highlight=False)
    if decision.action == Action.REDIRECT:
        out(f"result:    {decision.status} redirect to {decision.location}", highlight=False)
    elif decision.action == Action.RESPOND:
        out(f"result:    {decision.status} ({decision.reason})", highlight=False)
        for k, v in decision.response_headers:
            out(f"           {k}: {v}", highlight=False)
    else:
        req = decision.request
        query = f"?{req.query}" if req.query else ""
        out(
            f"result:    forward {req.method} {req.path}{query} (Host: {req.host})", highlight=False
        )
        for k, v in req.headers:
            out(f"           {k}: {v}", highlight=False)
        total = sum(b.weight for b in decision.backends) or 1
        out("backends:", highlight=False)
        for b in decision.backends:
            share = 100.0 * b.weight / total
            state = b.backend.state.value
            code = f" -> {b.backend.status_code}" if b.backend.status_code else ""
            tls = f" tls({b.backend.tls.policy})" if b.backend.tls else ""
            out(
                f"  {b.backend.key} weight {b.weight} ({share:.1f}%) {state}{code}{tls}",
                highlight=False,
            )
            if b.backend.endpoints:
                out(
                    "    endpoints: " + ", ".join(str(e) for e in b.backend.endpoints),
                    highlight=False,
                )
            elif b.backend.message:
                out(f"    {b.backend.message}", highlight=False)
        for m in decision.mirrors:
            out(f"  mirror {m.backend.key} ({m.numerator}/{m.denominator})", highlight=False)
        if decision.timeouts is not None:
            timeouts = decision.timeouts
            out(
                f"timeouts:  request={timeouts.request} backendRequest={timeouts.backend_request}",
                highlight=False,
            )
    not_chosen = [c for c in exp.listeners if not c.chosen]
    if not_chosen:
        out("listeners not chosen:", highlight=False)
        for check in not_chosen:
            out(f"  {check.listener}: {check.why}", highlight=False)
    if exp.losers:
        out(f"higher-precedence rules that did not match ({len(exp.losers)}):", highlight=False)
        for loser in exp.losers[:limit]:
            out(f"  {loser.entry}: {loser.why}", highlight=False)
        if len(exp.losers) > limit:
            out(f"  ... and {len(exp.losers) - limit} more", highlight=False)


@gateway_app.command("route")
def route(
    request: Annotated[
        str, typer.Argument(help="'METHOD URL', e.g. 'GET https://shop.example.com/api?x=1'.")
    ],
    files: FilesOption = [],  # noqa: B006
    gateway: Annotated[
        str | None, typer.Option("--gateway", help="NS/NAME of the Gateway.")
    ] = None,
    listener: Annotated[
        str | None,
        typer.Option(
            "--listener", help="Listener name (LISTENERSET/NAME for ListenerSet entries)."
        ),
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="'Name: value'. Repeatable.")
    ] = None,
    grpc: Annotated[
        str | None, typer.Option("--grpc", help="SERVICE/METHOD: send a gRPC request.")
    ] = None,
    sni: Annotated[
        str | None, typer.Option("--sni", help="TLS SNI (default: the URL's host).")
    ] = None,
    output: OutputOption = OutputFormat.TABLE,
    limit: Annotated[int, typer.Option("--limit", help="How many losing rules to list.")] = 20,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """Where a request goes: listener, route rule, filters, backends; what lost and why.

    Exit code: 0 routed (even to an error response of a rule), 1 no route (404/421),
    2 bad input.

    Example:

      netlet gateway route -f examples/shop 'GET https://shop.example.com/api/items'
      netlet gateway route -f examples/shop 'GET http://www.shop.example.com/' -H 'x-a: 1'
    """
    result = load(files, make_config(service_cidr, cluster_cidr, dual_stack))
    exit_for(result)
    req = _parse_request(request, _parse_headers(header or []), grpc, sni)
    world = build_world(result.state)
    program = _choose_program(world, gateway, req.port)
    try:
        exp = explain_http(program, req, listener)
    except KeyError as exc:
        fail(str(exc.args[0]))
    if output in (OutputFormat.YAML, OutputFormat.JSON):
        print_document(stdout_console(), _explanation_data(exp), output)
    else:
        _print_explanation(exp, limit)
    decision = exp.decision
    if decision.action == Action.RESPOND and decision.entry is None:
        raise typer.Exit(EXIT_FINDING)
