"""`netlet render nftables`, `netlet apply`, and nftables in `netlet up` / `netlet down`.

- `render nftables -f DIR [--node N] [--table services|policy]`: the ruleset each
  node would get, canonical and sorted (valid `nft -f` input); no root needed.
- `apply -f DIR [--lab L]`: bring the lab to the manifests (as `up` does) and
  resync every node's tables: one atomic `nft -f` per table.
- `up` and `down` are the lab's commands (netlet.cli.lab) with nftables added:
  `up` programs every node after the lab is built, and with `--watch` keeps
  watching the manifests, re-running `up` and sending partial syncs when they
  change; `down` removes the tables before the lab goes.

Exit codes: 0 ok, 1 a table failed to sync (nothing of it changed) or a lab
failure, 2 bad input.
"""

from __future__ import annotations

import enum
import inspect
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from netlet.cli import lab as lab_cli
from netlet.cli.common import (
    EXIT_FINDING,
    ClusterCIDROption,
    DualStackOption,
    FilesOption,
    ServiceCIDROption,
    exit_for,
    fail,
    load,
    make_config,
    print_diagnostics,
    stderr_console,
    stdout_console,
)
from netlet.dataplane.lab.names import DEFAULT_LAB
from netlet.resources.core import Node

if TYPE_CHECKING:
    from netlet.cluster.build import LoadResult
    from netlet.dataplane.nft.node import TableSync

render_app = typer.Typer(
    help="Print what netlet would program, without root.", no_args_is_help=True
)


class TableChoice(enum.StrEnum):
    ALL = "all"
    SERVICES = "services"
    POLICY = "policy"


@render_app.command("nftables")
def render_nftables(
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    node: Annotated[
        str | None, typer.Option("--node", help="Only this node (default: every node).")
    ] = None,
    table: Annotated[
        TableChoice, typer.Option("--table", help="all, services or policy.")
    ] = TableChoice.ALL,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """The nftables ruleset of each node: services (kube-proxy nftables mode) and policy."""
    from netlet.dataplane.nft.node import render_node, ruleset_text
    from netlet.dataplane.nft.policy import TABLE as POLICY_TABLE
    from netlet.dataplane.nft.services import TABLE as SERVICES_TABLE
    from netlet.policy.compile import compile_program

    result = load(files, make_config(service_cidr, cluster_cidr, dual_stack))
    exit_for(result)
    state = result.state
    names = [n.name for n in state.list(Node)]
    if node is not None:
        if node not in names:
            fail(f"no node named {node!r} (nodes: {', '.join(names) or 'none'})")
        names = [node]
    wanted = {
        TableChoice.ALL: (SERVICES_TABLE, POLICY_TABLE),
        TableChoice.SERVICES: (SERVICES_TABLE,),
        TableChoice.POLICY: (POLICY_TABLE,),
    }[table]
    program = compile_program(state)
    out = stdout_console()
    for i, name in enumerate(names):
        tables = render_node(
            state, name, dual_stack=dual_stack or result.dual_stack, program=program
        )
        text = ruleset_text([t for t in tables if t.name in wanted])
        if i:
            out.out("", highlight=False)
        out.out(f"# node {name}", highlight=False)
        out.out(text.rstrip("\n"), highlight=False)


# The lab ---------------------------------------------------------------------------


def _report(reports: Sequence[TableSync]) -> bool:
    """Print one line per table; True when every table synced."""
    out, err = stdout_console(), stderr_console()
    ok = True
    for report in reports:
        if report.error is not None:
            ok = False
            err.print(f"[bold red]error[/]: {escape(str(report))}")
        else:
            out.out(f"nftables {report}", highlight=False)
    return ok


def _lab_state(files: list[str], config_args: dict[str, Any]) -> LoadResult:
    result = load(
        files,
        make_config(
            config_args.get("service_cidr"),
            config_args.get("cluster_cidr"),
            bool(config_args.get("dual_stack")),
        ),
    )
    exit_for(result)
    return result


def _program(lab: str, result: LoadResult) -> Any:
    """Tables for every node of the lab `lab`, synced once; returns the LabTables."""
    from netlet.dataplane.lab.errors import LabError
    from netlet.dataplane.lab.lab import Lab
    from netlet.dataplane.nft.lab import LabTables, adopt_lab_ips

    try:
        running = Lab.open(lab)
    except LabError as exc:
        stderr_console().print(f"[bold red]error[/]: {escape(str(exc))}")
        raise typer.Exit(EXIT_FINDING) from None
    adopt_lab_ips(result.state, running.plan)
    tables = LabTables(result.state, running.plan, result.dual_stack)
    if not _report(tables.sync()):
        tables.close()
        raise typer.Exit(EXIT_FINDING)
    return tables


def _mtimes(files: Sequence[str]) -> dict[str, float]:
    stamps: dict[str, float] = {}
    for item in files:
        if item == "-":
            continue
        path = Path(item)
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for p in paths:
            try:
                stamps[str(p)] = p.stat().st_mtime
            except FileNotFoundError:
                continue
    return stamps


def _watch(
    files: list[str],
    lab: str,
    rerun_up: Callable[[], None],
    tables: Any,
    config_args: dict[str, Any],
    interval: float,
) -> None:
    """Poll the manifests; on a change re-run `up` and send partial syncs."""
    from netlet.cluster.build import load_cluster
    from netlet.dataplane.lab.lab import Lab
    from netlet.dataplane.nft.lab import adopt_lab_ips

    err = stderr_console()
    seen = _mtimes(files)
    err.print(f"watching {', '.join(files)} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(interval)
            now = _mtimes(files)
            if now == seen:
                # Idle: finish the deletions partial syncs deferred off the critical path.
                _report(tables.programmer.collect())
                continue
            seen = now
            config = make_config(
                config_args.get("service_cidr"),
                config_args.get("cluster_cidr"),
                bool(config_args.get("dual_stack")),
            )
            fresh = load_cluster(files, None, config)
            print_diagnostics(fresh.diagnostics)
            if fresh.errors:
                err.print("[yellow]manifests have errors: keeping the lab as it is[/]")
                continue
            try:
                rerun_up()
            except typer.Exit as exc:
                if exc.exit_code:
                    err.print("[yellow]up failed: keeping the tables as they are[/]")
                    continue
            plan = Lab.open(lab).plan
            adopt_lab_ips(fresh.state, plan)
            if {n.name for n in plan.nodes} != set(tables.programmer.nodes):
                tables.close()
                tables = type(tables)(tables.state, plan, tables.dual_stack)
            tables.plan = plan
            # Feed the difference to the state the table builders follow: partial syncs.
            tables.state.replace_all(
                (obj, fresh.state.origin(obj)) for obj in fresh.state.all_objects()
            )
            _report(tables.sync())
    except KeyboardInterrupt:
        err.print("stopped watching")
    finally:
        tables.close()


def _resolved(func: Callable[..., Any]) -> tuple[inspect.Signature, dict[str, Any]]:
    """`func`'s signature with its (string) annotations evaluated."""
    hints = typing.get_type_hints(func, include_extras=True)
    sig = inspect.signature(func)
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
    ]
    return sig.replace(parameters=params), hints


WatchOption = Annotated[
    bool,
    typer.Option(
        "--watch", help="Keep watching the manifests: re-run up and resync nftables on change."
    ),
]
IntervalOption = Annotated[
    float, typer.Option("--watch-interval", help="Seconds between checks of the manifests.")
]
NoNftOption = Annotated[
    bool, typer.Option("--no-nftables", help="Build the lab without programming nftables.")
]


def _make_up() -> Callable[..., None]:
    """The lab's `up` with nftables: same options (whatever the lab offers) plus ours."""
    base = lab_cli.up
    sig, hints = _resolved(base)
    extra = {
        "watch": (WatchOption, False),
        "watch_interval": (IntervalOption, 1.0),
        "no_nftables": (NoNftOption, False),
    }
    params = list(sig.parameters.values()) + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
        for name, (ann, default) in extra.items()
    ]

    def up(**kwargs: Any) -> None:
        ours = {name: kwargs.pop(name) for name in extra}
        base(**kwargs)
        if ours["no_nftables"]:
            return
        files = list(kwargs.get("files") or [])
        lab = str(kwargs.get("lab", "lab"))
        result = _lab_state(files, kwargs)
        tables = _program(lab, result)
        if not ours["watch"]:
            tables.close()
            return
        _watch(files, lab, lambda: base(**kwargs), tables, kwargs, float(ours["watch_interval"]))

    up.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    up.__annotations__ = {**hints, **{name: ann for name, (ann, _) in extra.items()}}
    up.__doc__ = (
        base.__doc__ or ""
    ).strip() + " Then programs nftables (services and policy) in every node namespace."
    return up


def _make_down() -> Callable[..., None]:
    base = lab_cli.down
    sig, hints = _resolved(base)

    def down(**kwargs: Any) -> None:
        from netlet.dataplane.lab.errors import LabError
        from netlet.dataplane.lab.lab import Lab
        from netlet.dataplane.nft.lab import remove_lab_tables

        lab = str(kwargs.get("lab", "lab"))
        try:
            plan = Lab.open(lab).plan
        except LabError:
            plan = None  # nothing up (or already half gone): the lab's down reports it
        if plan is not None:
            for problem in remove_lab_tables(plan):
                stderr_console().print(f"[yellow]warning[/]: {escape(problem)}")
        base(**kwargs)

    down.__signature__ = sig  # type: ignore[attr-defined]
    down.__annotations__ = hints
    down.__doc__ = (base.__doc__ or "").strip() + " Removes netlet's nftables tables first."
    return down


up = _make_up()
down = _make_down()


def apply(
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    lab: lab_cli.LabOption = DEFAULT_LAB,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """Bring a running lab to the manifests and resync every node's nftables (one
    atomic `nft -f` per table)."""
    lab_cli.up(
        files=files,
        lab=lab,
        service_cidr=service_cidr,
        cluster_cidr=cluster_cidr,
        dual_stack=dual_stack,
    )
    config_args = {
        "service_cidr": service_cidr,
        "cluster_cidr": cluster_cidr,
        "dual_stack": dual_stack,
    }
    result = _lab_state(files, config_args)
    _program(lab, result).close()
