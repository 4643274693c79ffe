"""`netlet check`: load and validate, then run every brain's findings.

Brains contribute findings by adding a function to `FINDERS`: it takes the
loaded ClusterState and returns diagnostics (shadowed policy rules, routes
that are not Accepted, ...). Exit 2 on bad input, 1 on any warning or finding,
0 when clean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from netlet.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FINDING,
    ClusterCIDROption,
    DualStackOption,
    FilesOption,
    ServiceCIDROption,
    load,
    make_config,
    print_diagnostics,
    stdout_console,
)
from netlet.cluster.state import ClusterState
from netlet.resources.diagnostics import Diagnostic, Severity

Finder = Callable[[ClusterState], list[Diagnostic]]

# (name, finder) pairs; each brain appends its own in cli/main.py.
FINDERS: list[tuple[str, Finder]] = []


def run_finders(state: ClusterState) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for _, finder in FINDERS:
        found.extend(finder(state))
    return found


def check(
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the summary line.")] = False,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """Load and validate manifests, then report every problem netlet can find.

    Exit code: 0 clean, 1 warnings or findings, 2 invalid input.

    Example:

      netlet check -f examples/shop
    """
    result = load(files, make_config(service_cidr, cluster_cidr, dual_stack))
    findings = run_finders(result.state) if result.state is not None else []
    if not quiet:
        print_diagnostics(findings)
    diagnostics = result.diagnostics + findings
    errors = sum(1 for d in diagnostics if d.severity == Severity.ERROR)
    warnings = sum(1 for d in diagnostics if d.severity == Severity.WARNING)
    objects = sum(1 for _ in result.state.all_objects())
    console = stdout_console()
    console.print(
        f"{objects} objects loaded; {errors} error(s), {warnings} warning(s)", highlight=False
    )
    if result.errors:
        raise typer.Exit(EXIT_BAD_INPUT)
    if errors or warnings:
        raise typer.Exit(EXIT_FINDING)
