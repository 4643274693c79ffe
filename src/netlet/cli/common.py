"""Shared CLI plumbing: the -f/-n/-A/-o options, loading, diagnostics, exit codes.

Exit codes follow kubectl habits: 0 ok, 1 a finding or failed check, 2 bad input.
"""

from __future__ import annotations

import enum
import os
import sys
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from netlet.cluster.build import LoadResult, load_cluster
from netlet.cluster.config import ClusterConfig
from netlet.resources.diagnostics import Diagnostic, Severity
from netlet.resources.net import parse_cidr

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_BAD_INPUT = 2


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    WIDE = "wide"
    YAML = "yaml"
    JSON = "json"


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


FilesOption = Annotated[
    list[str],
    typer.Option(
        "--filename",
        "-f",
        help="Manifest file, directory (recursive) or - for stdin. Repeatable.",
    ),
]
NamespaceOption = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Only this namespace.")
]
AllNamespacesOption = Annotated[
    bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")
]
OutputOption = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="table, wide, yaml or json.")
]
ServiceCIDROption = Annotated[
    list[str] | None,
    typer.Option("--service-cidr", help="Service CIDR (one per family). Default 10.96.0.0/12."),
]
ClusterCIDROption = Annotated[
    list[str] | None,
    typer.Option("--cluster-cidr", help="Pod CIDR (one per family). Default 10.244.0.0/16."),
]
DualStackOption = Annotated[
    bool, typer.Option("--dual-stack", help="Treat the cluster as dual-stack (IPv4 and IPv6).")
]


def make_config(
    service_cidrs: list[str] | None = None,
    cluster_cidrs: list[str] | None = None,
    dual_stack: bool = False,
) -> ClusterConfig:
    base = ClusterConfig()
    try:
        services = _merge_cidrs(base.service_cidrs, service_cidrs)
        pods = _merge_cidrs(base.pod_cidrs, cluster_cidrs)
    except ValueError as exc:
        fail(f"bad CIDR option: {exc}")
    return ClusterConfig(pod_cidrs=pods, service_cidrs=services, dual_stack=dual_stack)


def _merge_cidrs(defaults: tuple, given: list[str] | None) -> tuple:  # type: ignore[type-arg]
    if not given:
        return defaults
    parsed = [parse_cidr(text, strict=True) for text in given]
    families = {c.version for c in parsed}
    return tuple(parsed) + tuple(c for c in defaults if c.version not in families)


def load(
    files: list[str],
    config: ClusterConfig | None = None,
    *,
    require_files: bool = True,
) -> LoadResult:
    """Load the manifests, printing diagnostics to stderr. Does not exit."""
    if require_files and not files:
        fail("no input: give manifests with -f FILE|DIR|- (repeatable)")
    result = load_cluster(files, sys.stdin, config)
    print_diagnostics(result.diagnostics)
    return result


def print_diagnostics(diagnostics: list[Diagnostic], console: Console | None = None) -> None:
    console = console or stderr_console()
    for diag in diagnostics:
        style = {
            Severity.ERROR: "bold red",
            Severity.WARNING: "yellow",
            Severity.INFO: "dim",
        }[diag.severity]
        console.print(f"[{style}]{diag.severity.value}[/]: {_escape(str(diag))}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    stderr_console().print(f"[bold red]error[/]: {_escape(message)}")
    raise typer.Exit(code)


def exit_for(result: LoadResult) -> None:
    """Exit 2 when the input had errors (after the command printed what it could)."""
    if result.errors:
        raise typer.Exit(EXIT_BAD_INPUT)


def color_enabled() -> bool:
    return "NO_COLOR" not in os.environ
