"""`netlet up / status / exec / probe / down`: the node lab from the command line.

Every command takes `--lab NAME` (default `lab`, or $NETLET_LAB) so several labs
can live on one machine. Exit codes: 0 ok; 1 a lab failure (not root, a CNI
plugin failed, a workload unhealthy, something left after down); 2 bad input
(manifests or options). `exec` exits with the command's own code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from netlet.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FINDING,
    ClusterCIDROption,
    DualStackOption,
    FilesOption,
    OutputFormat,
    OutputOption,
    ServiceCIDROption,
    exit_for,
    fail,
    load,
    make_config,
    stderr_console,
    stdout_console,
)
from netlet.cli.output import print_document, print_table
from netlet.dataplane.lab.errors import LabError
from netlet.dataplane.lab.names import (
    DEFAULT_LAB,
    DEFAULT_PROBE_PARALLELISM,
    DEFAULT_PROBE_TIMEOUT,
    LabNameError,
)

if TYPE_CHECKING:
    # The lab itself (pyroute2, asyncio) is imported by the commands that use it,
    # so `netlet get` and `netlet check` do not pay for it.
    from netlet.dataplane.lab.lab import Lab, LabStatus
    from netlet.dataplane.lab.probe import ProbeMatrix

LabOption = Annotated[
    str,
    typer.Option(
        "--lab", "-L", envvar="NETLET_LAB", help="Lab name (lowercase letters and digits)."
    ),
]

SYMBOLS = {"connected": "+", "refused": "R", "timeout": ".", "error": "E"}


def _lab_failure(exc: LabError | LabNameError) -> typer.Exit:
    code = EXIT_BAD_INPUT if isinstance(exc, LabNameError) else EXIT_FINDING
    stderr_console().print(f"[bold red]error[/]: {_escape(str(exc))}")
    return typer.Exit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _open(name: str) -> Lab:
    from netlet.dataplane.lab.lab import Lab, list_labs

    try:
        return Lab.open(name)
    except (LabError, LabNameError) as exc:
        others = [n for n in list_labs() if n != name]
        if others:
            exc = LabError(f"{exc} (labs on this machine: {', '.join(others)})")
        raise _lab_failure(exc) from None


def up(
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    lab: LabOption = DEFAULT_LAB,
    cni: Annotated[str, typer.Option("--cni", help="Pod network plugin: ptp or bridge.")] = "ptp",
    cni_path: Annotated[
        list[str] | None,
        typer.Option("--cni-path", help="Directories with CNI plugins (repeatable)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the workloads.")
    ] = 60.0,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """Build the lab for the manifests: nodes, pods (via CNI), workloads. Idempotent."""
    from netlet.dataplane.lab.lab import Lab, LabOptions
    from netlet.dataplane.lab.plan import make_plan

    if cni not in ("ptp", "bridge"):
        fail(f"--cni must be ptp or bridge (got {cni!r})")
    result = load(files, make_config(service_cidr, cluster_cidr, dual_stack))
    exit_for(result)
    options = LabOptions(
        cni=cni,
        cni_path=tuple(cni_path) if cni_path else LabOptions().cni_path,
        ready_timeout=timeout,
    )
    err = stderr_console()
    try:
        plan = make_plan(result.state, lab)
    except (LabError, LabNameError) as exc:
        raise _lab_failure(exc) from None
    for warning in plan.warnings:
        err.print(f"[yellow]warning[/]: {_escape(warning)}")
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=max(total, 1))
            bar.update(tasks[step], completed=done, total=max(total, 1))

        try:
            running = Lab.up(result.state, lab, options=options, progress=progress)
        except (LabError, LabNameError) as exc:
            raise _lab_failure(exc) from None
    status = running.status()
    for warning in status.gateway_warnings:
        err.print(f"[yellow]warning[/]: {_escape(warning)}")
    gateways = "".join(
        f", Gateway {g.gateway} at {', '.join(a.split('/')[0] for a in g.addresses)}"
        for g in status.gateways
    )
    stdout_console().print(
        f"lab {lab} is up: {len(status.nodes)} node(s), {len(status.pods)} pod(s), "
        f"external client {', '.join(status.external)}{gateways}"
    )


def status(
    lab: LabOption = DEFAULT_LAB,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Nodes, pods, IPs and workload health of a lab. Exit 1 when anything is unhealthy."""
    running = _open(lab)
    try:
        current = running.status()
    except LabError as exc:
        raise _lab_failure(exc) from None
    out = stdout_console()
    if output in (OutputFormat.JSON, OutputFormat.YAML):
        print_document(out, current.as_dict(), output)
    else:
        _print_status(current, wide=output == OutputFormat.WIDE)
    if not current.healthy:
        raise typer.Exit(EXIT_FINDING)


def _print_status(current: LabStatus, *, wide: bool) -> None:
    out = stdout_console()
    sup = f"pid {current.supervisor_pid}" if current.supervisor_alive else "NOT RUNNING"
    out.print(f"lab {current.lab}: supervisor {sup}; external {', '.join(current.external)}")
    print_table(
        out,
        ("NODE", "ADDRESSES", "POD CIDRS", "PODS", "NETNS"),
        [
            (
                n.name,
                ",".join(n.addresses),
                ",".join(n.pod_cidrs),
                str(n.pods),
                n.netns if n.netns_present else f"{n.netns} (MISSING)",
            )
            for n in current.nodes
        ],
    )
    headers = ["POD", "NODE", "IPS", "PORTS", "WORKLOAD", "RESTARTS", "LAST EXIT"]
    if wide:
        headers += ["PID", "NETNS", "MESSAGE"]
    rows = []
    for p in current.pods:
        row = [
            p.key + (" (hostNetwork)" if p.host_network else ""),
            p.node,
            ",".join(p.ips) or "<none>",
            ",".join(p.ports) or "<none>",
            p.workload if p.netns_present else "netns missing",
            str(p.restarts),
            p.last_exit or "",
        ]
        if wide:
            notes = [p.message or ""] + [x for x in p.port_states if "unsupported" in x]
            row += [str(p.pid or ""), p.netns, "; ".join(n for n in notes if n)]
        rows.append(row)
    print_table(out, headers, rows)
    if current.gateways:
        print_table(
            out,
            ("GATEWAY", "ADDRESSES", "LISTENERS", "PROXY", "RESTARTS", "LAST EXIT", "NETNS"),
            [
                (
                    g.gateway,
                    ",".join(g.addresses),
                    ",".join(x.split(" ", 1)[0] for x in g.listeners),
                    g.proxy if g.netns_present else "netns missing",
                    str(g.restarts),
                    g.last_exit or "",
                    g.netns,
                )
                for g in current.gateways
            ],
        )
    for warning in current.gateway_warnings:
        out.print(f"warning: {warning}", markup=False, highlight=False)


def exec_(
    target: Annotated[
        str, typer.Argument(help="NAMESPACE/POD, node/NAME, gateway/NS/NAME or external.")
    ],
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    lab: LabOption = DEFAULT_LAB,
) -> None:
    """Run a command inside a pod's network namespace: netlet exec NS/POD -- CMD..."""
    running = _open(lab)
    try:
        done = running.exec(target, command, timeout=None, capture=False)
    except LabError as exc:
        raise _lab_failure(exc) from None
    raise typer.Exit(done.returncode)


def probe(
    lab: LabOption = DEFAULT_LAB,
    to: Annotated[str, typer.Option("--to", help="Targets: pods, services or all.")] = "all",
    ports: Annotated[
        list[str] | None,
        typer.Option("--ports", help="Only these ports: 80,53/udp,http (repeatable)."),
    ] = None,
    sources: Annotated[
        list[str] | None,
        typer.Option("--from", help="Only from these sources: NS/POD or external (repeatable)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds per connection phase.")
    ] = DEFAULT_PROBE_TIMEOUT,
    parallelism: Annotated[
        int, typer.Option("--parallelism", help="Probes in flight at once.")
    ] = DEFAULT_PROBE_PARALLELISM,
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Connect from every pod and the external client to every target; print what happened."""
    from netlet.dataplane.lab.plan import make_plan

    if to not in ("pods", "services", "all"):
        fail(f"--to must be pods, services or all (got {to!r})")
    running = _open(lab)
    plan = None
    if files:
        result = load(files)
        exit_for(result)
        try:
            plan = make_plan(result.state, lab)
        except LabError as exc:
            raise _lab_failure(exc) from None
    try:
        matrix = running.probe(
            to=to,
            ports=ports,
            sources=sources,
            timeout=timeout,
            parallelism=max(1, parallelism),
            plan=plan,
        )
    except LabError as exc:
        raise _lab_failure(exc) from None
    out = stdout_console()
    if output in (OutputFormat.JSON, OutputFormat.YAML):
        print_document(out, matrix.as_dict(), output)
    else:
        print_matrix(matrix, wide=output == OutputFormat.WIDE)


def print_matrix(matrix: ProbeMatrix, *, wide: bool = False) -> None:
    """Targets as numbered columns, one row of symbols per source, then the legend."""
    out = stdout_console()
    index = {t: i for i, t in enumerate(matrix.targets)}
    cells: dict[str, list[str]] = {s.name: [" "] * len(matrix.targets) for s in matrix.sources}
    for r in matrix.results:
        cells[r.source][index[r.target]] = SYMBOLS[r.outcome.value]
    width = max((len(s.name) for s in matrix.sources), default=6)
    groups = " ".join(f"{i:<10}"[:10] for i in range(0, len(matrix.targets), 10))
    out.out(f"{'SOURCE':<{width}}  {groups.rstrip()}", highlight=False)
    for source in matrix.sources:
        row = cells[source.name]
        text = " ".join("".join(row[i : i + 10]) for i in range(0, len(row), 10))
        out.out(f"{source.name:<{width}}  {text}", highlight=False)
    out.out("", highlight=False)
    headers = ["#", "KIND", "NAME", "TARGET", "HTTP"]
    print_table(
        out,
        headers,
        [
            (str(i), t.kind, t.name, t.endpoint, "http" if t.http else "")
            for i, t in enumerate(matrix.targets)
        ],
    )
    if wide:
        print_table(
            out,
            ("SOURCE", "TARGET", "OUTCOME", "REASON", "REPLY", "CLIENT SEEN"),
            [
                (
                    r.source,
                    r.target.label,
                    r.outcome.value,
                    r.reason,
                    r.reply or "",
                    _client(r.echo),
                )
                for r in matrix.results
            ],
        )
    summary = ", ".join(f"{v} {k}" for k, v in matrix.summary().items())
    out.out(
        f"\n{len(matrix.results)} probes in {matrix.elapsed:.2f} s: {summary}  "
        "(+ connected, R refused/reject, . timeout/drop, E error)",
        highlight=False,
    )
    for note in matrix.notes:
        out.out(f"note: {note}", highlight=False)


def _client(echo: dict[str, object] | None) -> str:
    if not echo or not isinstance(echo.get("client"), dict):
        return ""
    client = echo["client"]
    assert isinstance(client, dict)
    return f"{client.get('ip')}:{client.get('port')}"


def down(lab: LabOption = DEFAULT_LAB) -> None:
    """Remove everything the lab created and verify nothing is left."""
    from netlet.dataplane.lab.lab import down as lab_down

    try:
        report = lab_down(lab)
    except (LabError, LabNameError) as exc:
        raise _lab_failure(exc) from None
    err = stderr_console()
    for warning in report.warnings:
        err.print(f"[yellow]warning[/]: {_escape(warning)}")
    if not report.namespaces and not report.processes:
        stdout_console().print(f"lab {lab}: nothing to remove")
        return
    stdout_console().print(
        f"lab {lab} is down: removed {len(report.namespaces)} namespace(s), "
        f"stopped {len(report.processes)} process(es); nothing left"
    )
