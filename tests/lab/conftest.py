"""Fixtures for the node lab tests.

Kernel tests get a lab name of their own (`t` + random hex) so they never touch
another engineer's namespaces, and the `lab_name` fixture removes that lab in a
`finally` even when the test failed half-way (a failed test must not leave
namespaces, processes or files behind).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from netlet.cluster.state import ClusterState
from tests.lab.manifests import TWO_BY_THREE, load_state


@pytest.fixture
def two_by_three() -> ClusterState:
    return load_state(TWO_BY_THREE)


@pytest.fixture
def lab_name() -> Iterator[str]:
    """A fresh lab name; whatever the test did, that lab is gone afterwards."""
    name = "t" + secrets.token_hex(4)
    try:
        yield name
    finally:
        from netlet.dataplane.lab.lab import down

        down(name)


@pytest.fixture
def fake_cni(tmp_path: Path) -> Path:
    """A CNI_PATH with the real plugins linked in, where a test can replace one."""
    directory = tmp_path / "cni"
    directory.mkdir()
    real = Path("/usr/lib/cni")
    if real.is_dir():
        for plugin in real.iterdir():
            (directory / plugin.name).symlink_to(plugin)
    return directory
