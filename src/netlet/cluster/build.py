"""From manifests to a ClusterState: read, decode, check duplicates, expand workloads,
complete (namespaces, nodes, addresses), index.

`load_cluster` never raises on bad input: it returns what loaded and the
diagnostics; callers decide (the CLI exits 2 when there is an error).
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

from netlet.cluster.allocate import Placed, complete
from netlet.cluster.config import ClusterConfig
from netlet.cluster.expand import expand
from netlet.cluster.state import ClusterState
from netlet.resources.base import ObjectMeta
from netlet.resources.core import Node, Pod
from netlet.resources.diagnostics import Diagnostic, ObjectRef, Severity, warning
from netlet.resources.loading import Document, decode, parse_text, read_sources
from netlet.resources.workloads import WORKLOAD_KINDS


@dataclass
class LoadResult:
    state: ClusterState
    diagnostics: list[Diagnostic] = field(default_factory=list)
    dual_stack: bool = False

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == Severity.WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors


@contextmanager
def _gc_paused(freeze: bool = False) -> Iterator[None]:
    """Loading allocates hundreds of thousands of small objects, none of them garbage;
    the cyclic collector would rescan them all again and again (half the load time at
    10,000 objects). Pause it; for the long-lived CLI load, also freeze the survivors
    out of later collections (they are still freed by reference counting)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        if freeze:
            gc.freeze()


def load_cluster(
    paths: Sequence[str],
    stdin: IO[str] | None = None,
    config: ClusterConfig | None = None,
) -> LoadResult:
    with _gc_paused(freeze=True):
        documents, diagnostics = read_sources(paths, stdin)
        return build_from_documents(documents, diagnostics, config)


def load_text(
    text: str, name: str = "input.yaml", config: ClusterConfig | None = None
) -> LoadResult:
    """Load manifests given as a string (tests, stdin-like callers)."""
    with _gc_paused():
        documents, diagnostics = parse_text(name, text)
        return build_from_documents(documents, diagnostics, config)


def build_objects(
    documents: Sequence[Document],
    diagnostics: list[Diagnostic],
    config: ClusterConfig,
) -> tuple[list[Placed], bool]:
    """Everything but indexing: the completed objects and whether the cluster is dual-stack."""
    placed: list[Placed] = []
    unknown: Counter[str] = Counter()
    first_unknown: dict[str, Diagnostic] = {}
    for doc in documents:
        decoded, problems = decode(doc)
        for problem in problems:
            if problem.code == "unknown-kind" and problem.obj is not None:
                unknown[problem.obj.kind] += 1
                first_unknown.setdefault(problem.obj.kind, problem)
            else:
                diagnostics.append(problem)
        if decoded is not None:
            placed.append(Placed(decoded.obj, decoded.origin))
    for kind, count in sorted(unknown.items()):
        first = first_unknown[kind]
        more = f" ({count} objects)" if count > 1 else ""
        diagnostics.append(
            warning(f"{first.message}{more}", origin=first.origin, code="unknown-kind")
        )

    placed = _drop_duplicates(placed, diagnostics)
    placed.extend(_implicit_nodes(placed, config))
    nodes = [p.obj for p in placed if isinstance(p.obj, Node)]
    expanded: list[Placed] = []
    for item in placed:
        if isinstance(item.obj, WORKLOAD_KINDS):
            expanded.extend(Placed(pod, item.origin) for pod in expand(item.obj, nodes))
        expanded.append(item)
    expanded = _drop_duplicates(expanded, diagnostics)
    completion = complete(expanded, config)
    diagnostics.extend(completion.diagnostics)
    return completion.objects, completion.dual_stack


def build_from_documents(
    documents: Sequence[Document],
    diagnostics: list[Diagnostic] | None = None,
    config: ClusterConfig | None = None,
) -> LoadResult:
    config = config or ClusterConfig()
    diagnostics = list(diagnostics or [])
    objects, dual_stack = build_objects(documents, diagnostics, config)
    state = ClusterState(config)
    for item in objects:
        state.apply(item.obj, item.origin)
    return LoadResult(state, diagnostics, dual_stack)


def _implicit_nodes(placed: list[Placed], config: ClusterConfig) -> list[Placed]:
    """Nodes that pods (or pod templates) name but no manifest declares; with no node
    anywhere, the one default node. Needed before expansion: DaemonSets run per node."""
    declared = {p.obj.name for p in placed if isinstance(p.obj, Node)}
    wanted: set[str] = set()
    for item in placed:
        obj = item.obj
        if isinstance(obj, Pod) and obj.spec.node_name:
            wanted.add(obj.spec.node_name)
        template = getattr(getattr(obj, "spec", None), "template", None)
        if isinstance(obj, WORKLOAD_KINDS) and template is not None and template.spec.node_name:
            wanted.add(template.spec.node_name)
    missing = sorted(wanted - declared)
    if not declared and not missing:
        missing = [config.default_node]
    return [
        Placed(Node(api_version="v1", kind="Node", metadata=ObjectMeta(name=name)), None)
        for name in missing
    ]


def _drop_duplicates(placed: list[Placed], diagnostics: list[Diagnostic]) -> list[Placed]:
    """Same kind/namespace/name twice is an error naming both places; the first wins."""
    seen: dict[tuple[str, str, str], Placed] = {}
    out = []
    for item in placed:
        key = (item.obj.KIND, item.obj.namespace, item.obj.name)
        if key in seen:
            first = seen[key]
            ref = ObjectRef(*key)
            diagnostics.append(
                Diagnostic(
                    Severity.ERROR,
                    "duplicate object: the same kind, namespace and name is defined more than once",
                    item.origin,
                    ref,
                    code="duplicate",
                    related=(first.origin,) if first.origin else (),
                )
            )
            continue
        seen[key] = item
        out.append(item)
    return out
