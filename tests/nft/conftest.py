"""Fixtures for the nftables backend tests.

Golden files live in tests/nft/golden/. Regenerate them after an intended layout
change with `pytest tests/nft --update-golden` (or NETLET_UPDATE_GOLDEN=1) and
review the diff: it is the change to what the kernel gets.

Kernel tests (marked root) work in network namespaces named `netlet-t<hex>`
that the `netns` fixture creates and always deletes.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/nft/golden/* from the current output instead of comparing",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    try:
        flag = bool(request.config.getoption("--update-golden"))
    except ValueError:
        flag = False
    return flag or os.environ.get("NETLET_UPDATE_GOLDEN") == "1"


@pytest.fixture
def golden(update_golden: bool):  # type: ignore[no-untyped-def]
    """`golden(name, text)`: compare `text` with tests/nft/golden/<name> (or rewrite it)."""

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if update_golden:
            path.write_text(text)
            return
        assert path.exists(), f"missing golden file {path}: run pytest tests/nft --update-golden"
        expected = path.read_text()
        assert text == expected, f"{name} differs from the golden file (see the diff above)"

    return check


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace for kernel tests; deleted whatever happens."""
    name = "netlet-t" + secrets.token_hex(4)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
