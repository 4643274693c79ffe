"""`netlet get KIND [NAME]`: list loaded objects like kubectl get.

Columns per kind are data (`COLUMNS`); `-o wide` adds the wide columns, and
brains may register more wide columns in `WIDE_EXTRAS` (the services brain adds
ENDPOINTS to services).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from netlet.cli.common import (
    AllNamespacesOption,
    ClusterCIDROption,
    DualStackOption,
    FilesOption,
    NamespaceOption,
    OutputFormat,
    OutputOption,
    ServiceCIDROption,
    exit_for,
    fail,
    load,
    make_config,
    stdout_console,
)
from netlet.cli.output import as_list, print_document, print_table
from netlet.cluster.state import ClusterState
from netlet.resources.base import Resource
from netlet.resources.core import EndpointSlice, Pod, Service
from netlet.resources.gateway_api import Gateway, GRPCRoute, HTTPRoute
from netlet.resources.networking import NetworkPolicy
from netlet.resources.registry import ALL_KINDS, lookup_kind
from netlet.resources.selectors import compile_selector, parse_selector
from netlet.resources.workloads import DaemonSet, Deployment, ReplicaSet, StatefulSet

Cell = Callable[[Any, ClusterState], str]


@dataclass(frozen=True)
class Columns:
    headers: tuple[str, ...]
    cells: tuple[Cell, ...]
    wide_headers: tuple[str, ...] = ()
    wide_cells: tuple[Cell, ...] = ()


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def _svc_ports(svc: Service, _: ClusterState) -> str:
    parts = []
    for p in svc.spec.ports:
        text = f"{p.port}:{p.node_port}" if p.node_port else str(p.port)
        parts.append(f"{text}/{p.protocol.value}")
    return ",".join(parts) or "<none>"


def _svc_external(svc: Service, _: ClusterState) -> str:
    if svc.spec.type == "ExternalName":
        return svc.spec.external_name or "<none>"
    ips = [i.ip or i.hostname or "" for i in svc.status.load_balancer.ingress]
    ips += list(svc.spec.external_ips)
    if not ips and svc.spec.type == "LoadBalancer":
        return "<pending>"
    return ",".join(ips) or "<none>"


def _pod_status(pod: Pod, _: ClusterState) -> str:
    if pod.metadata.deletion_timestamp:
        return "Terminating"
    return pod.status.phase or "Pending"


def _pod_ready(pod: Pod, _: ClusterState) -> str:
    return "True" if pod.ready else "False"


def _netpol_types(np: NetworkPolicy, _: ClusterState) -> str:
    return ",".join(np.spec.policy_types)


def _gateway_listeners(gw: Gateway, _: ClusterState) -> str:
    return ",".join(f"{lst.name}:{lst.protocol}/{lst.port}" for lst in gw.spec.listeners)


def _route_parents(route: HTTPRoute | GRPCRoute, _: ClusterState) -> str:
    return (
        ",".join(
            f"{ref.kind}/{ref.namespace or route.namespace}/{ref.name}"
            + (f":{ref.section_name}" if ref.section_name else "")
            for ref in route.spec.parent_refs
        )
        or "<none>"
    )


def _slice_endpoints(es: EndpointSlice, _: ClusterState) -> str:
    addresses = [a for ep in es.endpoints for a in ep.addresses]
    more = f" + {len(addresses) - 3} more" if len(addresses) > 3 else ""
    return (",".join(addresses[:3]) + more) or "<unset>"


def _replicas(obj: Deployment | ReplicaSet | StatefulSet, _: ClusterState) -> str:
    return str(obj.spec.replicas)


def _ds_nodes(obj: DaemonSet, state: ClusterState) -> str:
    owned = [
        p
        for p in state.list(Pod, obj.namespace)
        if any(o.kind == "DaemonSet" and o.name == obj.name for o in p.metadata.owner_references)
    ]
    return str(len(owned))


COLUMNS: dict[str, Columns] = {
    "Pod": Columns(
        ("READY", "STATUS", "IP", "NODE"),
        (
            _pod_ready,
            _pod_status,
            lambda p, s: p.status.pod_ip or "<none>",
            lambda p, s: p.spec.node_name or "<none>",
        ),
        ("IPS", "LABELS"),
        (lambda p, s: ",".join(p.ips) or "<none>", lambda p, s: _labels(p.labels)),
    ),
    "Service": Columns(
        ("TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"),
        (
            lambda s, _: s.spec.type,
            lambda s, _: s.spec.cluster_ip or "<none>",
            _svc_external,
            _svc_ports,
        ),
        ("SELECTOR",),
        (lambda s, _: _labels(s.spec.selector or {}) if s.spec.selector is not None else "<none>",),
    ),
    "Node": Columns(
        ("INTERNAL-IP", "POD-CIDRS"),
        (lambda n, _: ",".join(n.internal_ips), lambda n, _: ",".join(n.spec.pod_cidrs)),
        ("ZONE", "LABELS"),
        (lambda n, _: n.zone or "<none>", lambda n, _: _labels(n.labels)),
    ),
    "Namespace": Columns(("LABELS",), (lambda ns, _: _labels(ns.labels),)),
    "NetworkPolicy": Columns(
        ("POD-SELECTOR", "POLICY-TYPES"),
        (lambda np, _: str(compile_selector(np.spec.pod_selector)), _netpol_types),
    ),
    "ClusterNetworkPolicy": Columns(
        ("TIER", "PRIORITY"),
        (lambda c, _: c.spec.tier, lambda c, _: str(c.spec.priority)),
    ),
    "AdminNetworkPolicy": Columns(("PRIORITY",), (lambda c, _: str(c.spec.priority),)),
    "EndpointSlice": Columns(
        ("ADDRESSTYPE", "PORTS", "ENDPOINTS"),
        (
            lambda e, _: e.address_type,
            lambda e, _: ",".join(str(p.port) for p in e.ports) or "<unset>",
            _slice_endpoints,
        ),
    ),
    "GatewayClass": Columns(("CONTROLLER",), (lambda g, _: g.spec.controller_name,)),
    "Gateway": Columns(
        ("CLASS", "LISTENERS"), (lambda g, _: g.spec.gateway_class_name, _gateway_listeners)
    ),
    "HTTPRoute": Columns(
        ("HOSTNAMES", "PARENTS"),
        (lambda r, _: ",".join(r.spec.hostnames) or "*", _route_parents),
    ),
    "GRPCRoute": Columns(
        ("HOSTNAMES", "PARENTS"),
        (lambda r, _: ",".join(r.spec.hostnames) or "*", _route_parents),
    ),
    "Ingress": Columns(
        ("CLASS", "HOSTS"),
        (
            lambda i, _: i.spec.ingress_class_name or "<none>",
            lambda i, _: ",".join(r.host or "*" for r in i.spec.rules) or "*",
        ),
    ),
    "Deployment": Columns(("REPLICAS",), (_replicas,)),
    "ReplicaSet": Columns(("REPLICAS",), (_replicas,)),
    "StatefulSet": Columns(("REPLICAS",), (_replicas,)),
    "DaemonSet": Columns(("PODS",), (_ds_nodes,)),
}

# Extra wide columns contributed by brains: kind -> [(header, cell)].
WIDE_EXTRAS: dict[str, list[tuple[str, Cell]]] = {}


def table_rows(
    kind: type[Resource],
    objects: list[Resource],
    state: ClusterState,
    *,
    wide: bool,
    show_namespace: bool,
) -> tuple[list[str], list[list[str]]]:
    columns = COLUMNS.get(kind.KIND, Columns((), ()))
    headers = ["NAME", *columns.headers]
    cells = list(columns.cells)
    if wide:
        headers += list(columns.wide_headers)
        cells += list(columns.wide_cells)
        for header, cell in WIDE_EXTRAS.get(kind.KIND, []):
            headers.append(header)
            cells.append(cell)
    if show_namespace and kind.NAMESPACED:
        headers.insert(0, "NAMESPACE")
    rows = []
    for obj in objects:
        row = [obj.name, *(cell(obj, state) for cell in cells)]
        if show_namespace and kind.NAMESPACED:
            row.insert(0, obj.namespace)
        rows.append(row)
    return headers, rows


def get(
    kind: Annotated[
        str,
        typer.Argument(
            help="Kind, plural or short name (pods, svc, netpol, httproutes...), or 'all'."
        ),
    ],
    name: Annotated[str | None, typer.Argument(help="Only the object with this name.")] = None,
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    output: OutputOption = OutputFormat.TABLE,
    selector: Annotated[
        str | None, typer.Option("--selector", "-l", help="Label selector, e.g. app=web,tier!=db")
    ] = None,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """List objects as the cluster would hold them (defaults applied, workloads expanded
    into pods, addresses assigned).

    Examples:

      netlet get pods -A -f examples/shop

      netlet get svc web -n shop -o yaml -f examples/shop
    """
    kinds: list[type[Resource]] = []
    for wanted in kind.split(","):
        if wanted.lower() == "all":
            kinds.extend(k for k in ALL_KINDS if k not in kinds)
            continue
        found = lookup_kind(wanted)
        if found is None:
            fail(f"unknown kind {wanted!r}; try pods, svc, netpol, gateways, httproutes or all")
        if found not in kinds:
            kinds.append(found)
    result = load(files, make_config(service_cidr, cluster_cidr, dual_stack))
    state = result.state
    label_selector = None
    if selector:
        try:
            label_selector = parse_selector(selector)
        except ValueError as exc:
            fail(str(exc))
    ns_filter = None if all_namespaces else (namespace or "default")
    console = stdout_console()
    dumped: list[dict[str, Any]] = []
    printed_any = False
    for kind_cls in kinds:
        objects: list[Resource] = [
            obj
            for obj in state.list(kind_cls)
            if (not kind_cls.NAMESPACED or ns_filter is None or obj.namespace == ns_filter)
            and (name is None or obj.name == name)
            and (label_selector is None or label_selector.matches(obj.labels))
        ]
        if not objects:
            continue
        if output in (OutputFormat.YAML, OutputFormat.JSON):
            dumped.extend(obj.to_api() for obj in objects)
            continue
        headers, rows = table_rows(
            kind_cls,
            objects,
            state,
            wide=output == OutputFormat.WIDE,
            show_namespace=all_namespaces,
        )
        if printed_any:
            console.out("")
        title = f"{kind_cls.plural()}" if len(kinds) > 1 else ""
        print_table(console, headers, rows, title=title)
        printed_any = True
    if output in (OutputFormat.YAML, OutputFormat.JSON):
        data: Any = dumped[0] if name is not None and len(dumped) == 1 else as_list(dumped)
        print_document(console, data, output)
    elif not printed_any and not result.errors:
        where = "any namespace" if ns_filter is None else f"namespace {ns_filter}"
        if name is not None:
            console.print(f"No {kinds[0].KIND} named {name!r} in {where}.", highlight=False)
            exit_for(result)
            raise typer.Exit(1)
        console.print(f"No resources found in {where}.", highlight=False)
    exit_for(result)
