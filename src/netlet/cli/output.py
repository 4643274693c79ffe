"""Rendering: rich tables on a terminal, kubectl-style plain columns when piped,
YAML and JSON documents for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def print_table(
    console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str = ""
) -> None:
    if not rows:
        return
    if console.is_terminal:
        table = Table(box=box.SIMPLE_HEAD, title=title or None, title_justify="left")
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
        return
    if title:
        console.print(escape(title), markup=True, highlight=False)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    for line in lines:
        text = "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip()
        console.out(text, highlight=False)


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def print_document(console: Console, data: Any, output: str) -> None:
    """`data` as one YAML document (`output` "yaml") or JSON document (otherwise)."""
    text = dump_yaml(data) if output == "yaml" else dump_json(data)
    console.out(text.rstrip("\n"), highlight=False)


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": items}
