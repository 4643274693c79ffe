"""Diagnostics: where an object came from, and what is wrong with it.

Every problem netlet reports names who is at fault and where: the file (and
document index, and line when known), the object (kind namespace/name) and the
field path, like::

    svc.yaml:14 (doc 2): Service default/web: spec.ports[1].port: must be 1-65535

Diagnostics are values; loading collects them instead of raising, so one bad
object never stops the others from loading.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a document came from: file path ("-" for stdin), 0-based document index,
    1-based line of the document start when known."""

    file: str
    doc: int = 0
    line: int | None = None
    item: int | None = None  # index in a `kind: List`'s items

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        inside = f"doc {self.doc}" if self.item is None else f"doc {self.doc}, items[{self.item}]"
        return f"{where} ({inside})"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Kind, namespace and name of an object, for messages and store keys."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind} {self.name}")
        )


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding. `code` is a stable identifier tests and users can filter on."""

    severity: Severity
    message: str
    origin: Origin | None = None
    obj: ObjectRef | None = None
    field_path: str = ""
    code: str = "invalid"
    related: tuple[Origin, ...] = field(default=())

    def __str__(self) -> str:
        parts = []
        if self.origin is not None:
            parts.append(str(self.origin))
        if self.obj is not None:
            parts.append(str(self.obj))
        if self.field_path:
            parts.append(self.field_path)
        parts.append(self.message)
        text = ": ".join(parts)
        for other in self.related:
            text += f" (see also {other})"
        return text

    def at_line(self, line: int | None) -> Diagnostic:
        if line is None or self.origin is None:
            return self
        return replace(self, origin=replace(self.origin, line=line))


def error(
    message: str,
    *,
    origin: Origin | None = None,
    obj: ObjectRef | None = None,
    path: str = "",
    code: str = "invalid",
) -> Diagnostic:
    return Diagnostic(Severity.ERROR, message, origin, obj, path, code)


def warning(
    message: str,
    *,
    origin: Origin | None = None,
    obj: ObjectRef | None = None,
    path: str = "",
    code: str = "warning",
) -> Diagnostic:
    return Diagnostic(Severity.WARNING, message, origin, obj, path, code)


class InputError(Exception):
    """Raised by entry points that must refuse bad input as a whole (exit code 2)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


def format_path(loc: tuple[int | str, ...]) -> str:
    """('spec', 'ports', 1, 'port') -> 'spec.ports[1].port'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out
