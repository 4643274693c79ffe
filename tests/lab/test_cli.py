"""`netlet up / status / exec / probe / down` end to end (root), and their error exits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netlet.cli.main import app
from netlet.dataplane.lab import kernel, names
from tests.lab.manifests import TWO_BY_THREE


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(TWO_BY_THREE)
    return path


@pytest.mark.root
def test_the_commands_bring_a_lab_up_observe_it_and_take_it_down(
    manifest: Path, lab_name: str
) -> None:
    runner = CliRunner()
    lab = ["--lab", lab_name]
    up = runner.invoke(app, ["up", "-f", str(manifest), *lab])
    assert up.exit_code == 0, up.output
    assert f"lab {lab_name} is up: 2 node(s), 6 pod(s)" in up.output
    again = runner.invoke(app, ["up", "-f", str(manifest), *lab])
    assert again.exit_code == 0, again.output

    status = runner.invoke(app, ["status", *lab, "-o", "json"])
    assert status.exit_code == 0, status.output
    data = json.loads(status.output)
    assert data["healthy"] and len(data["pods"]) == 6
    assert {p["workload"] for p in data["pods"]} == {"ready"}

    table = runner.invoke(app, ["status", *lab])
    assert "data/db" in table.output and "node-a" in table.output

    assert runner.invoke(app, ["exec", *lab, "data/db", "--", "sh", "-c", "exit 5"]).exit_code == 5
    assert runner.invoke(app, ["exec", *lab, "data/nope", "--", "true"]).exit_code == 1

    probe = runner.invoke(
        app, ["probe", *lab, "--to", "pods", "--ports", "raw", "--timeout", "0.5", "-o", "json"]
    )
    assert probe.exit_code == 0, probe.output
    matrix = json.loads(probe.output)
    from_pods = [r for r in matrix["results"] if r["source"] != "external"]
    assert len(from_pods) == 36 and {r["outcome"] for r in from_pods} == {"connected"}

    shown = runner.invoke(
        app, ["probe", *lab, "--to", "pods", "--ports", "dns", "--timeout", "0.5"]
    )
    assert shown.exit_code == 0
    assert "++++++" in shown.output and "36 connected" in shown.output

    gone = runner.invoke(app, ["down", *lab])
    assert gone.exit_code == 0, gone.output
    assert "nothing left" in gone.output
    assert kernel.list_netns(names.netns_prefix(lab_name)) == []
    assert runner.invoke(app, ["status", *lab]).exit_code == 1


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["status", "--lab", "Bad-Name"], 2, "lab name 'Bad-Name' must be"),
        (["probe", "--lab", "tnone0", "--to", "nodes"], 2, "--to must be pods, services or all"),
        (["up", "--lab", "tnone0"], 2, "no input"),
    ],
    ids=[
        "a bad lab name is bad input",
        "a bad --to is bad input",
        "up without manifests is bad input",
    ],
)
def test_bad_options_exit_2_with_a_clear_message(argv: list[str], code: int, message: str) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == code
    assert message in " ".join(result.output.split())


def test_up_as_a_normal_user_exits_1_and_says_root_is_needed(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(app, ["up", "-f", str(manifest), "--lab", "tnoroot"])
    assert result.exit_code == 1
    assert "needs root" in " ".join(result.output.split())
