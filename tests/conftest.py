"""Shared fixtures. Kernel tests are marked `root`: they skip loudly when not root."""

from __future__ import annotations

import os
import sys

import pytest

IS_ROOT = sys.platform.startswith("linux") and os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(
        reason="NOT ROOT: kernel test skipped (needs root and network namespaces); "
        "CI runs it as root"
    )
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    skipped = [
        r for r in terminalreporter.stats.get("skipped", []) if "NOT ROOT" in str(r.longrepr)
    ]
    if skipped:
        terminalreporter.write_sep(
            "!", f"{len(skipped)} KERNEL TESTS SKIPPED: not running as root", red=True, bold=True
        )
