"""The `netlet` command: get/check/version, output forms and exit codes
(0 ok, 1 findings, 2 bad input), as kubectl users expect."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from netlet import __version__
from netlet.cli.main import app

EXAMPLE = str(Path(__file__).parents[2] / "examples" / "shop")
runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and __version__ in result.stdout


def test_check_on_the_example_is_clean() -> None:
    result = runner.invoke(app, ["check", "-f", EXAMPLE])
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.stdout


def test_check_exits_2_on_invalid_input_and_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "svc.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 0}]}\n"
    )
    result = runner.invoke(app, ["check", "-f", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:4 (doc 0): Service default/web: spec.ports[0].port" in result.stderr


def test_check_exits_1_on_warnings(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    result = runner.invoke(app, ["check", "-f", str(path)])
    assert result.exit_code == 1
    assert "unknown kind Widget" in result.stderr


def test_get_pods_prints_plain_columns_when_piped() -> None:
    result = runner.invoke(app, ["get", "pods", "-n", "data", "-f", EXAMPLE])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "IP", "NODE"]
    assert [line.split()[0] for line in lines[1:]] == ["postgres-0", "postgres-1"]
    assert "\x1b[" not in result.stdout  # no colour codes when not a terminal


def test_get_all_namespaces_adds_the_namespace_column() -> None:
    result = runner.invoke(app, ["get", "svc", "-A", "-f", EXAMPLE])
    assert result.exit_code == 0
    header = result.stdout.splitlines()[0].split()
    assert header[:2] == ["NAMESPACE", "NAME"]


def test_get_one_object_as_yaml_and_json() -> None:
    out = runner.invoke(app, ["get", "svc", "frontend", "-n", "shop", "-o", "yaml", "-f", EXAMPLE])
    assert out.exit_code == 0
    obj = yaml.safe_load(out.stdout)
    assert obj["kind"] == "Service" and obj["spec"]["ports"][0]["targetPort"] == "http"
    out = runner.invoke(app, ["get", "netpol", "-n", "shop", "-o", "json", "-f", EXAMPLE])
    data = json.loads(out.stdout)
    assert data["kind"] == "List"
    assert sorted(i["metadata"]["name"] for i in data["items"]) == [
        "allow-dns",
        "api",
        "checkout",
        "default-deny",
        "frontend",
    ]


def test_get_with_a_label_selector_and_several_kinds() -> None:
    result = runner.invoke(app, ["get", "po,svc", "-n", "shop", "-l", "app=api", "-f", EXAMPLE])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("api")]
    assert len(names) == 3  # three api pods; the api Service has no labels


def test_get_reads_stdin() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: from-stdin}\n"
    result = runner.invoke(app, ["get", "ns", "-f", "-"], input=text)
    assert result.exit_code == 0 and "from-stdin" in result.stdout


def test_get_unknown_kind_and_missing_input_are_bad_input() -> None:
    assert runner.invoke(app, ["get", "widgets", "-f", EXAMPLE]).exit_code == 2
    result = runner.invoke(app, ["get", "pods"])
    assert result.exit_code == 2 and "-f" in result.stderr


def test_get_a_missing_name_exits_1() -> None:
    result = runner.invoke(app, ["get", "svc", "nope", "-n", "shop", "-f", EXAMPLE])
    assert result.exit_code == 1 and "No Service named 'nope'" in result.stdout


def test_help_shows_examples() -> None:
    result = runner.invoke(app, ["get", "--help"])
    assert result.exit_code == 0 and "netlet get pods -A -f examples/shop" in result.stdout
