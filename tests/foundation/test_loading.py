"""Reading manifests in every input form, and the diagnostics for malformed input.

Behaviour follows kubectl's: multi-document YAML, JSON, `kind: List`,
directories walked recursively for .yaml/.yml/.json, `-` for stdin; duplicate
mapping keys are an error (kubectl: "mapping key already defined").
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from netlet.cluster.build import load_cluster, load_text
from netlet.resources.core import Namespace, Pod, Service
from netlet.resources.diagnostics import Severity
from netlet.resources.loading import parse_text, read_sources

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
spec:
  containers:
  - name: c
"""


def _svc(name: str, port: int = 80) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"selector": {"app": name}, "ports": [{"port": port}]},
    }


def test_multi_document_yaml_loads_every_document_and_skips_empty_ones() -> None:
    text = "---\n" + POD.format(name="a", ns="x") + "---\n\n---\n" + POD.format(name="b", ns="y")
    result = load_text(text + "---\n")
    assert result.ok, result.diagnostics
    assert [(p.namespace, p.name) for p in result.state.list(Pod)] == [("x", "a"), ("y", "b")]


def test_json_object_json_array_and_list_kind_all_load(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text(json.dumps(_svc("a")))
    (tmp_path / "many.json").write_text(json.dumps([_svc("b"), _svc("c")]))
    (tmp_path / "list.yaml").write_text(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": [_svc("d"), _svc("e")]})
    )
    result = load_cluster([str(tmp_path)])
    assert result.ok, result.diagnostics
    assert [s.name for s in result.state.list(Service)] == ["a", "b", "c", "d", "e"]


def test_directories_are_walked_recursively_for_manifest_suffixes_only(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "a.yaml").write_text(POD.format(name="a", ns="n"))
    (tmp_path / "sub" / "b.yml").write_text(POD.format(name="b", ns="n"))
    (tmp_path / "sub" / "deeper" / "c.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    )
    (tmp_path / "sub" / "notes.txt").write_text("kind: not a manifest")
    (tmp_path / ".hidden.yaml").write_text(POD.format(name="hidden", ns="n"))
    result = load_cluster([str(tmp_path)])
    assert result.ok, result.diagnostics
    assert [p.name for p in result.state.list(Pod)] == ["a", "b"]
    assert result.state.get(Namespace, "", "other") is not None


def test_stdin_and_repeated_inputs_combine(tmp_path: Path) -> None:
    file = tmp_path / "a.yaml"
    file.write_text(POD.format(name="from-file", ns="n"))
    stdin = io.StringIO(POD.format(name="from-stdin", ns="n"))
    result = load_cluster([str(file), "-"], stdin=stdin)
    assert result.ok
    assert [p.name for p in result.state.list(Pod)] == ["from-file", "from-stdin"]


def test_document_index_and_start_line_are_recorded() -> None:
    text = POD.format(name="a", ns="n") + "---\n" + POD.format(name="b", ns="n")
    docs, diags = parse_text("pods.yaml", text)
    assert not diags
    assert [(d.origin.doc, d.origin.line) for d in docs] == [
        (0, 1),
        (1, 9),
    ]  # the second starts at its `---` line


def test_missing_file_is_an_error_naming_it() -> None:
    _, diags = read_sources(["/nonexistent/manifests.yaml"])
    assert len(diags) == 1
    assert "/nonexistent/manifests.yaml" in str(diags[0])
    assert "no such file" in str(diags[0])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a: [1, 2\n", "invalid YAML"),
        ("kind: Pod\nkind: Service\n", "keys must be unique"),
        ("a: b: c\n", "invalid YAML"),
    ],
    ids=["unclosed flow sequence", "duplicate mapping key", "mapping values not allowed"],
)
def test_malformed_yaml_is_a_syntax_error_with_file_and_line(text: str, needle: str) -> None:
    result = load_text(text, name="broken.yaml")
    assert not result.ok
    (diag,) = result.errors
    assert needle in diag.message
    assert diag.origin is not None and diag.origin.file == "broken.yaml"
    assert diag.origin.line is not None


def test_malformed_json_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"apiVersion": "v1",,}')
    result = load_cluster([str(path)])
    (diag,) = result.errors
    assert "invalid JSON" in diag.message and str(path) in str(diag)


def test_a_syntax_error_in_one_file_does_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a: [\n")
    (tmp_path / "b.yaml").write_text(POD.format(name="ok", ns="n"))
    result = load_cluster([str(tmp_path)])
    assert len(result.errors) == 1
    assert [p.name for p in result.state.list(Pod)] == ["ok"]


def test_unknown_kinds_warn_once_per_kind_and_are_ignored() -> None:
    text = "\n---\n".join(
        f"apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: w{i}}}" for i in range(3)
    )
    result = load_text(text + "\n---\napiVersion: v1\nkind: LimitRange\nmetadata: {name: c}\n")
    assert result.ok
    warnings = [d for d in result.diagnostics if d.code == "unknown-kind"]
    assert len(warnings) == 2
    assert "Widget" in warnings[1].message and "(3 objects)" in warnings[1].message
    assert all(d.severity == Severity.WARNING for d in warnings)


def test_a_document_that_is_not_an_object_is_an_error() -> None:
    result = load_text("- just\n- a list\n", name="list.yaml")
    (diag,) = result.errors
    assert "expected an object" in diag.message
