"""`netlet svc`: the services brain on the command line.

- `netlet svc trace`: what the service proxy does with one connection (outcomes
  with probabilities, masquerade, the rules that matched).
- `netlet svc table`: one node's service table (frontends -> endpoints).
- `netlet svc slices`: the EndpointSlices each Service is proxied from (written
  by the EndpointSlice controller when the manifests have none).

Also the ENDPOINTS column of `netlet get svc -o wide` and the services findings
of `netlet check` (both registered in cli/main.py).
"""

from __future__ import annotations

import ipaddress
import weakref
from typing import Annotated, Any

import typer

from netlet.cli.common import (
    EXIT_FINDING,
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
from netlet.resources.core import Node, Protocol, Service
from netlet.resources.diagnostics import Diagnostic
from netlet.services.builder import ProxyConfig, UnknownNodeError, build_table
from netlet.services.endpoints import merge_slices
from netlet.services.endpointslices import SliceSource, service_name
from netlet.services.findings import find_service_problems
from netlet.services.flow import FlowResult, SourceError, Trace, resolve_source, trace
from netlet.services.table import ServiceTable, format_address

svc_app = typer.Typer(
    help="Services and kube-proxy: trace a connection, show a node's service table, "
    "show EndpointSlices.",
    no_args_is_help=True,
)

NodeOption = Annotated[
    str | None, typer.Option("--node", help="Node whose service proxy is shown or used.")
]
NodePortAddressesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--nodeport-addresses",
        help="kube-proxy --nodeport-addresses: 'primary' (default) or CIDRs. Repeatable.",
    ),
]
MasqueradeAllOption = Annotated[
    bool, typer.Option("--masquerade-all", help="kube-proxy --masquerade-all.")
]


def _proxy_config(nodeport_addresses: list[str] | None, masquerade_all: bool) -> ProxyConfig:
    addresses = tuple(nodeport_addresses or ("primary",))
    for item in addresses:
        if item != "primary":
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                fail(f"--nodeport-addresses: {item!r} is neither 'primary' nor a CIDR")
    return ProxyConfig(nodeport_addresses=addresses, masquerade_all=masquerade_all)


def parse_destination(
    text: str,
) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, Protocol]:
    """'10.96.0.10:53/UDP', '[fd00::1]:80', '192.0.2.1:443/tcp'."""
    rest, _, proto_text = text.partition("/")
    try:
        protocol = Protocol(proto_text.upper()) if proto_text else Protocol.TCP
    except ValueError:
        raise ValueError(f"unknown protocol {proto_text!r} (TCP, UDP or SCTP)") from None
    if rest.startswith("["):
        host, _, port_text = rest[1:].partition("]:")
    else:
        host, _, port_text = rest.rpartition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: expected IP:PORT[/PROTO] (IPv6 as [IP]:PORT)") from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: the port must be 1-65535")
    return address, int(port_text), protocol


def _tables(state: ClusterState, config: ProxyConfig) -> Any:
    cache: dict[str, ServiceTable] = {}

    def table_for(node: str) -> ServiceTable:
        if node not in cache:
            cache[node] = build_table(state, node, config)
        return cache[node]

    return table_for


@svc_app.command("trace")
def trace_command(
    source: Annotated[str, typer.Option("--from", help="NS/POD, a node name, or an IP address.")],
    destination: Annotated[
        str, typer.Option("--to", help="IP:PORT[/PROTO], e.g. 10.96.0.10:53/UDP.")
    ],
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    node: NodeOption = None,
    output: OutputOption = OutputFormat.TABLE,
    nodeport_addresses: NodePortAddressesOption = None,
    masquerade_all: MasqueradeAllOption = False,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """Trace one new connection through the service proxy.

    Shows where it can end up (each endpoint with its probability, or REJECT, DROP,
    no match), whether it is masqueraded, and the rules that decided.

    Exit code: 0 when the connection reaches an endpoint, 1 when it is rejected,
    dropped or not a service connection, 2 on bad input.

    Examples:

      netlet svc trace -f examples/shop --from node-a --to 10.106.83.49:80

      netlet svc trace -f examples/shop --from 203.0.113.7 --to 192.0.2.10:80 --node node-b
    """
    config = _proxy_config(nodeport_addresses, masquerade_all)
    try:
        dst, port, protocol = parse_destination(destination)
    except ValueError as exc:
        fail(f"--to: {exc}")
    result = load(files, make_config(service_cidr, cluster_cidr, dual_stack))
    state = result.state
    exit_for(result)
    if node is not None and state.node(node) is None:
        fail(f"--node: no node named {node!r}")
    try:
        src = resolve_source(state, source, dst.version)
    except SourceError as exc:
        fail(f"--from: {exc}")
    done = trace(state, src, protocol, dst, port, _tables(state, config), node=node)
    console = stdout_console()
    if output in (OutputFormat.JSON, OutputFormat.YAML):
        data = trace_data(done)
        print_document(console, data, output)
    else:
        _print_trace(done)
    if done.result.endpoints:
        return
    raise typer.Exit(EXIT_FINDING)


def _flow_data(flow: FlowResult) -> dict[str, Any]:
    return {
        "node": flow.node,
        "service": str(flow.entry) if flow.entry else None,
        "frontend": str(flow.frontend) if flow.frontend else None,
        "result": flow.kind.value,
        "masquerade": flow.masquerade,
        "sessionAffinityTimeoutSeconds": flow.affinity_timeout,
        "outcomes": [
            {
                "kind": o.kind.value,
                "endpoint": str(o.endpoint) if o.endpoint else None,
                "probability": float(o.probability),
                "masquerade": o.masquerade,
                "target": o.endpoint.target if o.endpoint else None,
                "node": o.endpoint.node if o.endpoint else None,
            }
            for o in flow.outcomes
        ],
        "steps": [{"chain": s.chain, "text": s.text} for s in flow.steps],
    }


def trace_data(done: Trace) -> dict[str, Any]:
    first = done.hops[0]
    return {
        "source": {
            "kind": done.source.kind.value,
            "name": done.source.name,
            "ip": str(done.source.ip),
        },
        "destination": format_address(first.destination, first.port),
        "protocol": first.protocol.value,
        "notes": list(done.notes),
        "hops": [_flow_data(h) for h in done.hops],
    }


def _print_trace(done: Trace) -> None:
    console = stdout_console()
    first = done.hops[0]
    console.out(
        f"{first.protocol.value} {done.source} -> {format_address(first.destination, first.port)}",
        highlight=False,
    )
    for note in done.notes:
        console.out(f"  note: {note}", highlight=False)
    for hop in done.hops:
        console.out(f"on node {hop.node}:", highlight=False)
        for i, step in enumerate(hop.steps, 1):
            console.out(f"  {i}. {step}", highlight=False)
    final = done.result
    rows = []
    for o in final.outcomes:
        ep = o.endpoint
        where = "-"
        if ep is not None:
            where = (ep.node or "<no node>") + (" (local)" if ep.local else "")
        rows.append(
            [
                str(o),
                f"{float(o.probability) * 100:.1f}%",
                "yes" if o.masquerade else "no",
                (ep.target or "-") if ep else "-",
                where,
            ]
        )
    console.out("")
    print_table(console, ["OUTCOME", "SHARE", "MASQUERADE", "TARGET", "NODE"], rows)
    masq = {o.masquerade for o in final.outcomes}
    text = "yes" if masq == {True} else "no" if masq == {False} else "only for the hairpin"
    if final.endpoints:
        console.out(
            f"result: {len(final.endpoints)} possible endpoint(s); masquerade: {text}",
            highlight=False,
        )
    else:
        console.out(f"result: {final.kind.value}", highlight=False)


@svc_app.command("table")
def table_command(
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    node: NodeOption = None,
    output: OutputOption = OutputFormat.TABLE,
    nodeport_addresses: NodePortAddressesOption = None,
    masquerade_all: MasqueradeAllOption = False,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """Show a node's service table (every node without --node).

    Each captured address with the chain it goes to and its endpoints, or its
    no-endpoint verdict.

    Example:

      netlet svc table -f examples/shop --node node-a
    """
    config = _proxy_config(nodeport_addresses, masquerade_all)
    result = load(files, make_config(service_cidr, cluster_cidr, dual_stack))
    state = result.state
    nodes = [node] if node else [n.name for n in state.list(Node)]
    tables = []
    for name in nodes:
        try:
            tables.append(build_table(state, name, config))
        except UnknownNodeError as exc:
            fail(f"--node: {exc}")
    console = stdout_console()
    if output in (OutputFormat.JSON, OutputFormat.YAML):
        data = [table_data(t) for t in tables]
        print_document(console, data, output)
        exit_for(result)
        return
    for i, table in enumerate(tables):
        if i:
            console.out("")
        nodeports = ", ".join(str(ip) for ip in table.nodeport_addresses) or "none"
        console.out(
            f"node {table.node} (zone {table.zone or '<none>'}; NodePorts on {nodeports})",
            highlight=False,
        )
        rows = []
        for _, entry in sorted(table.entries.items()):
            for fe in entry.frontends:
                endpoints = (
                    entry.internal_endpoints
                    if fe.target == "internal"
                    else entry.external_endpoints
                )
                if fe.dispatch and endpoints:
                    to = ",".join(str(ep) for ep in endpoints)
                elif fe.no_endpoints:
                    to = fe.no_endpoints.value.upper()
                else:
                    to = "-"
                policy = entry.internal_policy if fe.target == "internal" else entry.external_policy
                rows.append([str(entry.name), str(fe), policy.value, to])
        print_table(console, ["SERVICE PORT", "FRONTEND", "POLICY", "ENDPOINTS / VERDICT"], rows)
    exit_for(result)


def table_data(table: ServiceTable) -> dict[str, Any]:
    def endpoint(ep: Any) -> dict[str, Any]:
        return {
            "address": str(ep),
            "conditions": ep.conditions,
            "node": ep.node,
            "zone": ep.zone,
            "local": ep.local,
            "target": ep.target,
        }

    return {
        "node": table.node,
        "zone": table.zone,
        "nodeIPs": [str(ip) for ip in table.node_ips],
        "nodePortAddresses": [str(ip) for ip in table.nodeport_addresses],
        "podCIDRs": [str(c) for c in table.pod_cidrs],
        "serviceCIDRs": [str(c) for c in table.service_cidrs],
        "masqueradeAll": table.masquerade_all,
        "servicePorts": [
            {
                "name": str(entry.name),
                "clusterIP": str(entry.cluster_ip),
                "internalTrafficPolicy": entry.internal_policy.value,
                "externalTrafficPolicy": entry.external_policy.value,
                "sessionAffinityTimeoutSeconds": entry.affinity_timeout,
                "frontends": [
                    {
                        "frontend": str(fe),
                        "target": fe.target.value,
                        "dispatch": fe.dispatch,
                        "noEndpoints": fe.no_endpoints.value if fe.no_endpoints else None,
                    }
                    for fe in entry.frontends
                ],
                "firewall": [str(n) for n in entry.firewall.allowed] if entry.firewall else None,
                "clusterEndpoints": [endpoint(ep) for ep in entry.cluster_endpoints],
                "localEndpoints": [endpoint(ep) for ep in entry.local_endpoints],
                "clusterSelection": entry.cluster_selection,
                "localSelection": entry.local_selection,
            }
            for _, entry in sorted(table.entries.items())
        ],
    }


@svc_app.command("slices")
def slices_command(
    files: FilesOption = [],  # noqa: B006 - typer reads the default
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    output: OutputOption = OutputFormat.TABLE,
    service_cidr: ServiceCIDROption = None,
    cluster_cidr: ClusterCIDROption = None,
    dual_stack: DualStackOption = False,
) -> None:
    """Show the EndpointSlices each Service is proxied from.

    The manifests' own, or the ones the EndpointSlice controller would write from
    the pods (-o yaml for every field).

    Example:

      netlet svc slices -f examples/shop -n shop -o yaml
    """
    result = load(files, make_config(service_cidr, cluster_cidr, dual_stack))
    state = result.state
    source = SliceSource(state)
    ns = None if all_namespaces else (namespace or "default")
    rows = []
    dumped = []
    for svc in state.list(Service):
        if ns is not None and svc.namespace != ns:
            continue
        found = source.slices_for(svc)
        for es in found.slices:
            dumped.append(es.to_api())
            addresses = [a for ep in es.endpoints for a in ep.addresses]
            more = f" + {len(addresses) - 3} more" if len(addresses) > 3 else ""
            row = [
                es.name,
                svc.name,
                es.address_type,
                ",".join(f"{p.port}/{p.protocol.value}" for p in es.ports) or "<unset>",
                (",".join(addresses[:3]) + more) or "<unset>",
                "controller" if found.generated else "manifest",
            ]
            if ns is None:
                row.insert(0, svc.namespace)
            rows.append(row)
    console = stdout_console()
    if output in (OutputFormat.JSON, OutputFormat.YAML):
        data = as_list(dumped)
        print_document(console, data, output)
    else:
        headers = ["NAME", "SERVICE", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "SOURCE"]
        if ns is None:
            headers.insert(0, "NAMESPACE")
        if rows:
            print_table(console, headers, rows)
        else:
            console.out("No EndpointSlices.", highlight=False)
    exit_for(result)


# `netlet get svc -o wide` ENDPOINTS column ----------------------------------------

_READY_ENDPOINTS: weakref.WeakKeyDictionary[ClusterState, tuple[int, dict[Any, str]]] = (
    weakref.WeakKeyDictionary()
)


def endpoints_cell(svc: Service, state: ClusterState) -> str:
    """Ready endpoints (ip:port) of the Service, kubectl-style: three, then "+ N more"."""
    cached = _READY_ENDPOINTS.get(state)
    if cached is None or cached[0] != state.revision:
        cached = (state.revision, _ready_endpoints(state))
        _READY_ENDPOINTS[state] = cached
    return cached[1].get(service_name(svc), "<none>")


def _ready_endpoints(state: ClusterState) -> dict[Any, str]:
    source = SliceSource(state)
    out = {}
    for svc in state.list(Service):
        slices = source.slices_for(svc).slices
        texts: list[str] = []
        for family in (4, 6):
            for endpoints in merge_slices(slices, family, "", proxied_only=False).values():
                texts.extend(str(ep) for ep in endpoints if ep.ready)
        texts = list(dict.fromkeys(texts))
        more = f" + {len(texts) - 3} more..." if len(texts) > 3 else ""
        out[service_name(svc)] = (",".join(texts[:3]) + more) if texts else "<none>"
    return out


def service_findings(state: ClusterState) -> list[Diagnostic]:
    return find_service_problems(state)
