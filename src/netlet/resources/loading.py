"""Reading manifests: files, directories (recursive), stdin; YAML (multi-document) or
JSON; `kind: List`. Then decoding each document into a typed, defaulted, validated
object, collecting diagnostics instead of stopping at the first problem.

Parsing uses yaml-rs (a Rust YAML 1.2 parser, several times faster than libyaml)
when installed, then PyYAML's libyaml loader, then pure-Python PyYAML. Line
numbers are found only for documents that fail, by composing that document again
with PyYAML (which keeps node positions), so the fast path pays nothing for them.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import yaml
from pydantic import ValidationError

from netlet.resources.base import NAME_RULES, Resource
from netlet.resources.diagnostics import (
    Diagnostic,
    ObjectRef,
    Origin,
    Severity,
    error,
    format_path,
    warning,
)
from netlet.resources.net import stable_hash
from netlet.resources.registry import BY_GROUP_KIND, split_api_version
from netlet.resources.validation import check_dns1123_label

try:  # fast path
    import yaml_rs

    _YAML_RS: Any = yaml_rs
except ImportError:  # pragma: no cover - depends on the environment
    _YAML_RS = None

_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_DOC_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Document:
    """One parsed document, with the text it came from for locating errors."""

    origin: Origin
    data: Any
    text: str = ""
    path_prefix: tuple[int | str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decoded:
    obj: Resource
    origin: Origin


def iter_manifest_files(path: str) -> Iterator[str]:
    """A file as given; a directory walked recursively in sorted order, keeping only
    .yaml/.yml/.json files and skipping hidden entries."""
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.endswith(MANIFEST_SUFFIXES) and not name.startswith("."):
                    yield os.path.join(root, name)
    else:
        yield path


def read_sources(
    paths: Sequence[str], stdin: IO[str] | None = None
) -> tuple[list[Document], list[Diagnostic]]:
    """Parse every input into documents. Unreadable files and syntax errors become
    diagnostics; the other inputs still load."""
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    for path in paths:
        if path == "-":
            text = (stdin or sys.stdin).read()
            documents.extend(_parse_text("-", text, diagnostics))
            continue
        if not os.path.exists(path):
            diagnostics.append(error("no such file or directory", origin=Origin(path), code="io"))
            continue
        for file in iter_manifest_files(path):
            try:
                with open(file, encoding="utf-8") as handle:
                    text = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                diagnostics.append(error(f"cannot read: {exc}", origin=Origin(file), code="io"))
                continue
            documents.extend(_parse_text(file, text, diagnostics))
    return documents, diagnostics


def parse_text(name: str, text: str) -> tuple[list[Document], list[Diagnostic]]:
    diagnostics: list[Diagnostic] = []
    return _parse_text(name, text, diagnostics), diagnostics


def _parse_text(name: str, text: str, diagnostics: list[Diagnostic]) -> list[Document]:
    stripped = text.lstrip()
    if name.endswith(".json") or stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if name.endswith(".json"):
                diagnostics.append(
                    error(
                        f"invalid JSON: {exc.msg}",
                        origin=Origin(name, 0, exc.lineno),
                        code="syntax",
                    )
                )
                return []
        else:
            items = data if isinstance(data, list) else [data]
            return _unwrap_lists(
                [Document(Origin(name, i, 1), item, text) for i, item in enumerate(items)]
            )
    docs = _parse_yaml(name, text, diagnostics)
    return _unwrap_lists(docs)


def _doc_segments(text: str) -> list[tuple[int, str]]:
    """(1-based start line, text) of each YAML document, split on `---` lines."""
    starts = [m.start() for m in _DOC_SEPARATOR.finditer(text)]
    if not starts or text[: starts[0]].strip():
        starts = [0, *starts]
    segments = []
    line, counted_to = 1, 0
    for i, start in enumerate(starts):
        line += text.count("\n", counted_to, start)  # incremental: linear in the text
        counted_to = start
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        segments.append((line, text[start:end]))
    return segments


def _parse_yaml(name: str, text: str, diagnostics: list[Diagnostic]) -> list[Document]:
    values: list[Any] | None = None
    if _YAML_RS is not None:
        try:
            parsed = _YAML_RS.loads(text)
        except Exception as exc:  # yaml_rs raises its own error type
            if "duplicate" in str(exc):
                line = _duplicate_key_line(text)
                diagnostics.append(
                    error(
                        f"invalid YAML: {str(exc).splitlines()[-1]} (keys must be unique)",
                        origin=Origin(name, 0, line),
                        code="syntax",
                    )
                )
                return []
        else:
            values = parsed if _is_multi(text, parsed) else [parsed]
    if values is None:
        try:
            values = list(yaml.load_all(text, Loader=_YAML_LOADER))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            diagnostics.append(
                error(f"invalid YAML: {problem}", origin=Origin(name, 0, line), code="syntax")
            )
            return []
    segments = _doc_segments(text)
    # Empty documents (a trailing `---`, comments only) are skipped, as kubectl does.
    aligned = len(segments) == len(values)
    docs = []
    for i, value in enumerate(values):
        if value is None:
            continue
        line, segment = segments[i] if aligned else (None, "")
        docs.append(Document(Origin(name, i, line), value, segment))
    return docs


def _is_multi(text: str, parsed: Any) -> bool:
    """yaml_rs returns a list for multi-document input and the value itself otherwise."""
    if not isinstance(parsed, list):
        return False
    return len(_doc_segments(text)) > 1 or text.lstrip().startswith("---")


def _duplicate_key_line(text: str) -> int | None:
    class _Checker(_YAML_LOADER):  # type: ignore[misc]
        pass

    try:
        for node in yaml.compose_all(text, Loader=_Checker):
            line = _find_duplicate(node)
            if line is not None:
                return line
    except yaml.YAMLError:
        return None
    return None


def _find_duplicate(node: Any) -> int | None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                return int(key.start_mark.line) + 1
            seen.add(key.value)
            found = _find_duplicate(value)
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _find_duplicate(item)
            if found is not None:
                return found
    return None


def _unwrap_lists(docs: Iterable[Document]) -> list[Document]:
    """`kind: List` (and `*List` kinds kubectl prints) become their items."""
    out = []
    for doc in docs:
        data = doc.data
        if (
            isinstance(data, dict)
            and str(data.get("kind", "")).endswith("List")
            and isinstance(data.get("items"), list)
        ):
            for j, item in enumerate(data["items"]):
                origin = Origin(doc.origin.file, doc.origin.doc, doc.origin.line, j)
                out.append(Document(origin, item, doc.text, ("items", j)))
        else:
            out.append(doc)
    return out


# Decoding -------------------------------------------------------------------------------

_PATH_IN_MESSAGE = re.compile(
    r"^((?:metadata|spec|status|[a-z][A-Za-z0-9]*)(?:\[(?:\d+|\*|[^\]]+)\])*"
    r"(?:\.[a-zA-Z_][A-Za-z0-9_]*(?:\[(?:\d+|\*|[^\]]+)\])*)*): (.+)$",
    re.DOTALL,
)
_UNION_PARTS = {"int", "str", "bool", "float", "dict", "list", "tuple", "none"}


def decode(doc: Document) -> tuple[Decoded | None, list[Diagnostic]]:
    """Turn one document into a typed object, or into diagnostics saying why not.

    Unknown kinds give a warning (code `unknown-kind`) and no object."""
    data = doc.data
    origin = doc.origin
    if not isinstance(data, dict):
        return None, [error(f"expected an object, got {type(data).__name__}", origin=origin)]
    api_version, kind = data.get("apiVersion"), data.get("kind")
    raw_metadata = data.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    raw_name = metadata.get("name")
    name: str = raw_name if isinstance(raw_name, str) else ""
    if not isinstance(kind, str) or not kind:
        return None, [error("Required value", origin=origin, path="kind", code="invalid")]
    if not isinstance(api_version, str) or not api_version:
        ref = ObjectRef(kind, "", name)
        return None, [error("Required value", origin=origin, obj=ref, path="apiVersion")]
    group, version = split_api_version(api_version)
    model = BY_GROUP_KIND.get((group, kind))
    if model is None:
        return None, [
            warning(
                f"unknown kind {kind} ({api_version}); ignored",
                origin=origin,
                obj=ObjectRef(kind, "", name),
                code="unknown-kind",
            )
        ]
    namespace = metadata.get("namespace") or ""
    if model.NAMESPACED and not namespace:
        namespace = "default"
    if not model.NAMESPACED:
        namespace = ""  # the API server ignores namespace on cluster-scoped kinds
    ref = ObjectRef(kind, namespace if isinstance(namespace, str) else "", name)
    if version not in model.VERSIONS:
        served = ", ".join(model.api_versions())
        return None, [
            error(
                f"no kind {kind} is served in {api_version} (served: {served})",
                origin=origin,
                obj=ref,
                path="apiVersion",
                code="unknown-version",
            )
        ]
    problems: list[Diagnostic] = []
    if not name and isinstance(metadata.get("generateName"), str):
        # The API server appends 5 random characters; ours are derived from the origin.
        name = metadata["generateName"] + _suffix(f"{origin.file}#{origin.doc}#{origin.item}")
        ref = ObjectRef(kind, ref.namespace, name)
    if not name:
        problems.append(error("Required value", origin=origin, obj=ref, path="metadata.name"))
    elif not isinstance(metadata.get("name", name), str):
        problems.append(error("must be a string", origin=origin, obj=ref, path="metadata.name"))
    else:
        problem = NAME_RULES[model.NAME_RULE](name)
        if problem:
            problems.append(
                error(
                    f"Invalid value {name!r}: {problem}",
                    origin=origin,
                    obj=ref,
                    path="metadata.name",
                )
            )
    if model.NAMESPACED:
        if not isinstance(namespace, str):
            problems.append(
                error("must be a string", origin=origin, obj=ref, path="metadata.namespace")
            )
        else:
            problem = check_dns1123_label(namespace)
            if problem:
                problems.append(
                    error(
                        f"Invalid value {namespace!r}: {problem}",
                        origin=origin,
                        obj=ref,
                        path="metadata.namespace",
                    )
                )
    if problems:
        return None, _with_lines(doc, problems)
    data = {**data, "metadata": {**metadata, "name": name, "namespace": namespace}}
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        return None, _with_lines(doc, _validation_diagnostics(exc, origin, ref))
    return Decoded(obj, origin), []


def _suffix(seed: str) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    value = stable_hash(seed)
    out = ""
    for _ in range(5):
        value, digit = divmod(value, len(alphabet))
        out += alphabet[digit]
    return out


def _validation_diagnostics(
    exc: ValidationError, origin: Origin, ref: ObjectRef
) -> list[Diagnostic]:
    by_path: dict[str, list[str]] = {}
    errors = exc.errors(include_url=False)
    item_paths = {format_path(tuple(e["loc"])) for e in errors}
    for err in errors:
        path_text = format_path(tuple(err["loc"]))
        if err["type"] == "too_short" and any(p.startswith(path_text + "[") for p in item_paths):
            continue  # pydantic re-checks the length without the invalid items: noise
        loc = tuple(
            part
            for part in err["loc"]
            if not (isinstance(part, str) and (part in _UNION_PARTS or "[" in part or "(" in part))
        )
        path = format_path(loc)
        message = str(err["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        elif message.startswith("Assertion failed, "):
            message = message[len("Assertion failed, ") :]
        inner = _PATH_IN_MESSAGE.match(message)
        if inner:
            sub, message = inner.group(1), inner.group(2)
            path = f"{path}.{sub}" if path and not sub.startswith("[") else path + sub
        if err["type"] == "missing":
            message = "Required value"
        elif err["type"] not in ("value_error", "assertion_error"):
            given = err.get("input")
            if not isinstance(given, dict | list) and given is not None:
                message = f"{message} (got {given!r})"
        messages = by_path.setdefault(path, [])
        if message not in messages:
            messages.append(message)
    return [
        Diagnostic(Severity.ERROR, " or ".join(msgs), origin, ref, path)
        for path, msgs in by_path.items()
    ]


def _with_lines(doc: Document, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Add the line of each offending field, composing the document again with PyYAML."""
    if not doc.text or doc.origin.file.endswith(".json"):
        return diagnostics
    try:
        root = yaml.compose(doc.text, Loader=_YAML_LOADER)
    except yaml.YAMLError:
        return diagnostics
    base = doc.origin.line or 1
    out = []
    for diag in diagnostics:
        line = _line_of(root, (*doc.path_prefix, *_split_path(diag.field_path)))
        out.append(diag.at_line(base + line if line is not None else doc.origin.line))
    return out


def _split_path(path: str) -> list[int | str]:
    parts: list[int | str] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return parts


def _line_of(node: Any, path: Sequence[int | str]) -> int | None:
    """0-based line (relative to the document text) of the deepest node found on `path`."""
    if node is None:
        return None
    line = int(node.start_mark.line)
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if key.value == part:
                    child = value
                    line = int(key.start_mark.line)
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = int(child.start_mark.line)
        if child is None:
            break
        node = child
    return line
