"""`netlet policy explain|matrix|diff|lint`: the policy brain on the command line.

Exit codes: explain 0 allowed / 1 denied; diff 0 no change / 1 changes;
lint 0 clean / 1 findings; 2 bad input everywhere.
"""

from __future__ import annotations

import csv
import enum
import io
import ipaddress
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from netlet.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FINDING,
    ClusterCIDROption,
    DualStackOption,
    FilesOption,
    ServiceCIDROption,
    fail,
    load,
    make_config,
    print_diagnostics,
    stdout_console,
)
from netlet.cli.output import dump_json, print_table
from netlet.cluster.state import ClusterState
from netlet.policy.classes import build_classes
from netlet.policy.compile import compile_program
from netlet.policy.diff import Change, PolicyDiff, diff_policies
from netlet.policy.dns import make_answers, parse_answers_text, parse_resolve_options
from netlet.policy.explain import decisive, verdict_data, verdict_lines
from netlet.policy.lint import lint_program
from netlet.policy.matrix import (
    Cell,
    MatrixView,
    Probe,
    class_view,
    compute_matrix,
    endpoint_view,
    parse_probe,
)
from netlet.policy.program import DnsAnswers, PodKey
from netlet.policy.verdict import Endpoint, EndpointError, PolicyEngine
from netlet.resources.core import Protocol
from netlet.resources.diagnostics import Severity
from netlet.resources.net import IPNetwork

policy_app = typer.Typer(
    name="policy",
    help="Network policy: explain one connection, the connectivity matrix, diffs, lint.",
    no_args_is_help=True,
)

# Above this many endpoints the matrix shows classes (pods no policy tells apart).
GROUP_THRESHOLD = 30
# Above this many columns a table becomes one line per (from, to) pair.
GRID_MAX_COLUMNS = 12


class ExplainFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class MatrixFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    MD = "md"
    DOT = "dot"


class Grouping(enum.StrEnum):
    AUTO = "auto"
    YES = "yes"
    NO = "no"


ResolveOption = Annotated[
    list[str] | None,
    typer.Option(
        "--resolve",
        help="DNS answer for domainNames peers: NAME=IP or NAME=IP,IP (repeatable).",
    ),
]
DnsAnswersOption = Annotated[
    Path | None,
    typer.Option(
        "--dns-answers",
        help="File of DNS answers: a YAML/JSON map of name to list of IPs, or hosts-file lines.",
    ),
]
PortsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ports",
        "-p",
        help="Ports to probe, PORT or PORT/PROTOCOL, comma-separated or repeated. "
        "Default: each destination's declared container ports.",
    ),
]
ProbeOption = Annotated[
    list[str] | None,
    typer.Option("--probe", help="External CIDR to include as an endpoint (repeatable)."),
]
NodesOption = Annotated[bool, typer.Option("--nodes", help="Include the nodes as endpoints.")]
FamilyOption = Annotated[int, typer.Option("--family", help="IP family of the matrix: 4 or 6.")]
MatrixNamespaceOption = Annotated[
    list[str] | None,
    typer.Option("--namespace", "-n", help="Only pods of these namespaces (repeatable)."),
]


def _dns(resolve: list[str] | None, answers_file: Path | None) -> DnsAnswers:
    merged: dict[str, list[str]] = {}
    try:
        if answers_file is not None:
            text = answers_file.read_text()
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError:
                data = None
            for name, ips in parse_answers_text(text, data).items():
                merged.setdefault(name, []).extend(ips)
        for name, ips in parse_resolve_options(resolve or []).items():
            merged.setdefault(name, []).extend(ips)
        return make_answers(merged)
    except OSError as exc:
        fail(f"--dns-answers: {exc}")
    except ValueError as exc:
        fail(f"DNS answers: {exc}")


def _state(
    files: list[str],
    service_cidr: list[str] | None,
    cluster_cidr: list[str] | None,
    dual_stack: bool,
) -> ClusterState:
    result = load(files, make_config(service_cidr, cluster_cidr, dual_stack))
    if result.errors:
        raise typer.Exit(EXIT_BAD_INPUT)
    return result.state


def _engine(state: ClusterState, dns: DnsAnswers) -> PolicyEngine:
    return PolicyEngine(compile_program(state, dns))


def _probes(ports: list[str] | None) -> tuple[Probe, ...] | None:
    if not ports:
        return None
    try:
        return tuple(parse_probe(p) for item in ports for p in item.split(",") if p.strip())
    except ValueError as exc:
        fail(f"--ports {exc}")


def _networks(probes: list[str] | None) -> tuple[IPNetwork, ...]:
    out = []
    for text in probes or []:
        try:
            out.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            fail(f"--probe {text!r}: expected a CIDR such as 203.0.113.0/24")
    return tuple(out)


# explain ------------------------------------------------------------------------------


def _resolve_port(engine: PolicyEngine, text: str, dst_pod: PodKey | None) -> tuple[Protocol, int]:
    number, _, proto = text.strip().partition("/")
    protocol = Protocol((proto or "TCP").upper()) if proto else None
    if number.isdigit():
        port = int(number)
        if not 1 <= port <= 65535:
            fail(f"--port {text!r}: port must be between 1 and 65535")
        return protocol or Protocol.TCP, port
    pod = engine.program.pod(dst_pod) if dst_pod is not None else None
    if pod is None:
        fail(f"--port {text!r}: a named port needs a destination pod")
    for (name, port_proto), value in sorted(pod.named_ports.items()):
        if name == number and (protocol is None or port_proto == protocol):
            return port_proto, value
    fail(f"--port {text!r}: pod {pod.key} declares no such named port")


@policy_app.command("explain")
def explain(
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    source: Annotated[
        str, typer.Option("--from", help="NS/POD, POD (namespace default), node/NAME or an IP.")
    ] = "",
    target: Annotated[
        str, typer.Option("--to", help="NS/POD, POD (namespace default), node/NAME or an IP.")
    ] = "",
    port: Annotated[
        str, typer.Option("--port", help="PORT or PORT/PROTOCOL (TCP by default), or a named port.")
    ] = "",
    via_service: Annotated[
        bool,
        typer.Option(
            "--via-service",
            help="The connection goes through a Service VIP (a pod reaching itself this "
            "way is subject to policy).",
        ),
    ] = False,
    resolve: ResolveOption = None,
    dns_answers: DnsAnswersOption = None,
    output: Annotated[
        ExplainFormat, typer.Option("--output", "-o", help="text or json.")
    ] = ExplainFormat.TEXT,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """Walk one connection through the tiers: which rule of which policy decides, on
    the egress side and on the ingress side. Exit 0 allowed, 1 denied.

    Example:

      netlet policy explain -f examples/shop --from shop/frontend --to 10.0.0.1 --port 443
    """
    if not (source and target and port):
        fail("--from, --to and --port are required")
    dns = _dns(resolve, dns_answers)
    engine = _engine(_state(files, service_cidr, cluster_cidr, dual_stack), dns)
    family = None
    for text in (source, target):
        try:
            family = ipaddress.ip_address(text.strip()).version
        except ValueError:
            continue
    try:
        src = _endpoint(engine, source, family)
        dst = _endpoint(engine, target, family or src.ip.version)
        protocol, number = _resolve_port(engine, port, dst.pod)
        verdict = engine.verdict(src, dst, protocol, number, via_service=via_service)
    except EndpointError as exc:
        fail(str(exc))
    console = stdout_console()
    if output == ExplainFormat.JSON:
        console.out(dump_json(verdict_data(verdict)), highlight=False)
    else:
        for line in verdict_lines(verdict):
            console.out(line, highlight=False)
    if not verdict.allowed:
        raise typer.Exit(EXIT_FINDING)


def _endpoint(engine: PolicyEngine, text: str, family: int | None) -> Endpoint:
    """Besides what `parse_endpoint` takes: a pod name without namespace that is unique
    in the cluster, and `NS/WORKLOAD` for the first replica of a workload (its pods are
    named WORKLOAD-...; the output names the pod chosen)."""
    try:
        return engine.parse_endpoint(text, family)
    except EndpointError:
        namespace, slash, name = text.strip().rpartition("/")
        pods = engine.program.pods
        if slash:
            replicas = sorted(
                p.key
                for p in pods
                if p.key.namespace == namespace and p.key.name.startswith(name + "-")
            )
            if replicas:
                return engine.pod_endpoint(replicas[0], family)
            raise
        matches = [p for p in pods if p.key.name == name]
        if len(matches) == 1:
            return engine.pod_endpoint(matches[0].key, family)
        if matches:
            names = ", ".join(str(p.key) for p in matches)
            raise EndpointError(f"pod name {name!r} is ambiguous ({names}): give NS/POD") from None
        raise


# matrix -------------------------------------------------------------------------------


def _cell_text(cell: Cell | None, probes: tuple[Probe, ...]) -> str:
    if cell is None:
        return ""
    relevant = len(cell.allowed) + len(cell.denied) + len(cell.mixed)
    if relevant == 1:
        return "yes" if cell.allowed else "no" if cell.denied else "some"
    if not cell.denied and not cell.mixed:
        return "all"
    if not cell.allowed and not cell.mixed:
        return "none"
    parts = [str(probes[k]) for k in cell.allowed]
    parts += [f"some:{probes[k]}" for k in cell.mixed]
    return ",".join(parts) or "none"


def _cell_data(cell: Cell, probes: tuple[Probe, ...]) -> dict[str, list[str]]:
    data = {
        "allowed": [str(probes[k]) for k in cell.allowed],
        "denied": [str(probes[k]) for k in cell.denied],
    }
    if cell.mixed:
        data["someAllowed"] = [str(probes[k]) for k in cell.mixed]
    return data


def render_matrix(view: MatrixView, fmt: MatrixFormat, grouped: bool) -> str | None:
    """The text for json/csv/md/dot; None for table (printed by the caller)."""
    probes = view.probes
    if fmt == MatrixFormat.JSON:
        return dump_json(
            {
                "probes": [str(p) for p in probes],
                "defaultPorts": view.default_ports,
                "grouped": grouped,
                "endpoints": [
                    {"name": label, "members": list(m)}
                    for label, m in zip(view.labels, view.members, strict=True)
                ],
                "cells": [
                    {"from": view.labels[i], "to": view.labels[j], **_cell_data(cell, probes)}
                    for i, row in enumerate(view.cells)
                    for j, cell in enumerate(row)
                    if cell is not None
                ],
            }
        )
    if fmt == MatrixFormat.CSV:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["from", "to", "port", "verdict"])
        for i, row in enumerate(view.cells):
            for j, cell in enumerate(row):
                if cell is None:
                    continue
                for k, verdict in sorted(
                    [(k, "allowed") for k in cell.allowed]
                    + [(k, "denied") for k in cell.denied]
                    + [(k, "some") for k in cell.mixed]
                ):
                    writer.writerow([view.labels[i], view.labels[j], str(probes[k]), verdict])
        return buffer.getvalue().rstrip("\n")
    if fmt == MatrixFormat.MD:
        head = ["from \\ to", *view.labels]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label, row in zip(view.labels, view.cells, strict=True):
            cells = [_cell_text(c, probes) for c in row]
            lines.append("| " + " | ".join([label, *cells]) + " |")
        return "\n".join(lines)
    if fmt == MatrixFormat.DOT:
        lines = ["digraph netlet_policy {", "  rankdir=LR;", "  node [shape=box];"]
        for i, label in enumerate(view.labels):
            lines.append(f'  e{i} [label="{label}"];')
        for i, row in enumerate(view.cells):
            for j, cell in enumerate(row):
                if cell is not None and (cell.allowed or cell.mixed):
                    lines.append(f'  e{i} -> e{j} [label="{_cell_text(cell, probes)}"];')
        lines.append("}")
        return "\n".join(lines)
    return None


@policy_app.command("matrix")
def matrix(
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    ports: PortsOption = None,
    probe: ProbeOption = None,
    nodes: NodesOption = False,
    namespace: MatrixNamespaceOption = None,
    family: FamilyOption = 4,
    group: Annotated[
        Grouping,
        typer.Option(
            "--group",
            help=f"Show classes of equivalent endpoints: auto (above {GROUP_THRESHOLD} "
            "endpoints), yes or no.",
        ),
    ] = Grouping.AUTO,
    output: Annotated[
        MatrixFormat, typer.Option("--output", "-o", help="table, json, csv, md or dot.")
    ] = MatrixFormat.TABLE,
    resolve: ResolveOption = None,
    dns_answers: DnsAnswersOption = None,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """Who can connect to whom: every endpoint pair on the given ports (default: each
    destination's declared container ports). Computed on classes of endpoints that no
    policy tells apart; large matrices are shown by class.

    Example:

      netlet policy matrix -f examples/shop --ports 8080/TCP,5432 -o md
    """
    if family not in (4, 6):
        fail("--family must be 4 or 6")
    chosen = _probes(ports)
    networks = _networks(probe)
    dns = _dns(resolve, dns_answers)
    engine = _engine(_state(files, service_cidr, cluster_cidr, dual_stack), dns)
    index = build_classes(
        engine.program,
        family=family,
        probes=networks,
        include_nodes=nodes,
        with_declared_ports=chosen is None,
        namespaces=frozenset(namespace) if namespace else None,
    )
    result = compute_matrix(engine, index, chosen)
    grouped = group == Grouping.YES or (
        group == Grouping.AUTO and len(index.endpoints) > GROUP_THRESHOLD
    )
    view = class_view(result) if grouped else endpoint_view(result)
    console = stdout_console()
    text = render_matrix(view, output, grouped)
    if text is not None:
        console.out(text, highlight=False)
        return
    if not view.labels:
        console.print("No endpoints (pods with an IP of this family) to show.", highlight=False)
        return
    probes_text = ", ".join(str(p) for p in result.probes) or "none"
    note = " (each destination on its declared ports)" if result.default_ports else ""
    title = f"Probes: {probes_text}{note}"
    if grouped:
        title += f"; {len(view.labels)} classes of {len(index.endpoints)} endpoints"
    if engine.program.domain_groups:
        title += "; domainNames peers use the DNS answers given (--resolve)"
    title += "; cells: yes/no for one port, else all/none or the ports allowed"
    if len(view.labels) > GRID_MAX_COLUMNS:
        rows = [
            [view.labels[i], view.labels[j], _cell_text(cell, result.probes)]
            for i, row in enumerate(view.cells)
            for j, cell in enumerate(row)
            if cell is not None
        ]
        print_table(console, ["FROM", "TO", "ALLOWED"], rows, title=title)
        return
    grid = [
        [label, *(_cell_text(c, result.probes) for c in row)]
        for label, row in zip(view.labels, view.cells, strict=True)
    ]
    print_table(console, ["FROM \\ TO", *view.labels], grid, title=title)


# diff ---------------------------------------------------------------------------------


def _short(labels: tuple[str, ...]) -> str:
    return labels[0] if len(labels) == 1 else f"{labels[0]} (+{len(labels) - 1})"


def _change_data(change: Change) -> dict[str, Any]:
    return {
        "from": list(change.sources),
        "to": list(change.destinations),
        "port": str(change.probe),
        "before": "allowed" if change.before else "denied",
        "after": "allowed" if change.after else "denied",
        "pairs": change.pairs,
        "beforeVerdict": verdict_data(change.before_verdict),
        "afterVerdict": verdict_data(change.after_verdict),
    }


def _diff_rows(result: PolicyDiff) -> list[list[str]]:
    rows = []
    for change in result.changes:
        rows.append(
            [
                _short(change.sources),
                _short(change.destinations),
                str(change.probe),
                f"{'allowed' if change.before else 'denied'} -> "
                f"{'allowed' if change.after else 'denied'}",
                decisive(change.after_verdict),
                decisive(change.before_verdict),
            ]
        )
    return rows


@policy_app.command("diff")
def diff(
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    against: Annotated[
        list[str] | None,
        typer.Option("--against", help="The new manifests (file, directory or -), repeatable."),
    ] = None,
    ports: PortsOption = None,
    probe: ProbeOption = None,
    nodes: NodesOption = False,
    namespace: MatrixNamespaceOption = None,
    family: FamilyOption = 4,
    output: Annotated[
        ExplainFormat, typer.Option("--output", "-o", help="text or json.")
    ] = ExplainFormat.TEXT,
    resolve: ResolveOption = None,
    dns_answers: DnsAnswersOption = None,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """Connections whose verdict changes from the -f manifests to the --against ones,
    with the rules responsible on each side. Exit 0 no change, 1 changes.

    Example:

      netlet policy diff -f before/ --against after/
    """
    if not against:
        fail("--against NEW is required (the manifests to compare with -f)")
    chosen = _probes(ports)
    networks = _networks(probe)
    dns = _dns(resolve, dns_answers)
    old = _engine(_state(files, service_cidr, cluster_cidr, dual_stack), dns)
    new = _engine(_state(against, service_cidr, cluster_cidr, dual_stack), dns)
    result = diff_policies(
        old,
        new,
        family=family,
        probes=chosen,
        cidr_probes=networks,
        include_nodes=nodes,
        namespaces=frozenset(namespace) if namespace else None,
    )
    console = stdout_console()
    if output == ExplainFormat.JSON:
        data = {
            "probes": [str(p) for p in result.probes],
            "changes": [_change_data(c) for c in result.changes],
            "added": list(result.added),
            "removed": list(result.removed),
        }
        console.out(dump_json(data), highlight=False)
    else:
        if result.changes:
            pairs = sum(c.pairs for c in result.changes)
            print_table(
                console,
                ["FROM", "TO", "PORT", "CHANGE", "NOW", "BEFORE"],
                _diff_rows(result),
                title=f"{pairs} connection(s) change",
            )
        else:
            console.out("No connection changes its verdict.", highlight=False)
        if result.added:
            console.out(f"Only in --against: {', '.join(result.added)}", highlight=False)
        if result.removed:
            console.out(f"Only in -f: {', '.join(result.removed)}", highlight=False)
    if result.changes:
        raise typer.Exit(EXIT_FINDING)


# lint ---------------------------------------------------------------------------------


@policy_app.command("lint")
def lint(
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """Policy findings only (also part of `netlet check`): shadowed and redundant rules,
    selectors that select nothing, unresolved named ports, same-priority overlaps.
    Exit 0 clean, 1 warnings."""
    state = _state(files, service_cidr, cluster_cidr, dual_stack)
    findings = lint_program(compile_program(state), state.origin)
    print_diagnostics(findings, stdout_console())
    warnings = sum(1 for d in findings if d.severity != Severity.INFO)
    stdout_console().out(f"{warnings} policy finding(s)", highlight=False)
    if warnings:
        raise typer.Exit(EXIT_FINDING)
