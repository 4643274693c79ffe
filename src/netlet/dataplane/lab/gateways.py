"""Gateways in the node lab: each netlet Gateway's proxy in a namespace of its own.

For every Programmed Gateway of a netlet GatewayClass (the gateway brain's
programs, computed from the lab's own ClusterState), `up` makes a namespace on
the fabric:

    [fabric netns: bridge] --eth0-- netlet-<lab>-gw-<ns>.<name>  (the proxy)

- its addresses are the Gateway's: spec.addresses (what the brain programs), else
  the IPAddress values of status.addresses; a Gateway with neither, or whose
  address is already a node's, the external client's, a pod's or in a podCIDR,
  is not served (a warning says why);
- an address inside the node range gets that range's prefix, so nodes and the
  external client reach it on-link; any other address gets /32 (/128) with host
  routes both ways: in the Gateway's namespace to every node and the external
  client, in every node namespace and the external one to the Gateway;
- the Gateway's namespace routes each node's podCIDRs via that node, so the proxy
  reaches backends at their pod IPs and pods reach the Gateway through their node.
  No default route anywhere: nothing leaves the lab;
- the proxy (`gateway_proxy.serve`) runs under the lab's supervisor like a pod's
  workload: restarted when it dies, its state in `netlet status`. It serves the
  program computed here (pod IPs as the CNI plugins assigned them), handed over
  as a file in the lab's root-only directory; a changed program restarts it.

Invariant: everything is on the lab's journal before it is made (topology key
`gateway/<ns>/<name>`, with the host routes it added to node and external
namespaces), so `down` removes it with the rest, a failed `up` rolls it back, and
a Gateway gone from the manifests is removed by the next `up`.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from netlet.cluster.state import ClusterState
from netlet.dataplane.lab import kernel, names, topology
from netlet.dataplane.lab.journal import Journal, read_json, write_json
from netlet.dataplane.lab.plan import LabPlan, Route
from netlet.gateway.table import GatewayProgram
from netlet.resources.gateway_api import Gateway

if TYPE_CHECKING:
    from netlet.dataplane.lab.build import Builder

KEY_PREFIX = "gateway/"
GATEWAYS_DIR = "gateways"
WARNINGS_FILE = "gateways.json"
# The proxy's admin endpoint, on loopback inside the Gateway's namespace
# (`netlet exec gateway/NS/NAME -- curl 127.0.0.1:15000/stats`).
ADMIN = "127.0.0.1:15000"


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    gateway: str  # "ns/name"
    netns: str
    fabric_port: str
    addresses: tuple[str, ...]  # "ip/prefix" on eth0
    routes: tuple[Route, ...]  # inside the Gateway's namespace
    peer_routes: tuple[tuple[str, Route], ...]  # (node or external netns, route to us)
    listeners: tuple[str, ...]  # "80/TCP HTTP http", for status

    @property
    def key(self) -> str:
        """The journal's topology key (and the supervisor's worker key)."""
        return f"{KEY_PREFIX}{self.gateway}"

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(a.split("/")[0] for a in self.addresses)

    def spec(self) -> dict[str, Any]:
        """What the journal compares to keep the namespace or remake it."""
        return {
            "gateway": self.gateway,
            "addresses": list(self.addresses),
            "routes": [[r.dst, r.via] for r in self.routes],
            "peers": [[netns, r.dst] for netns, r in self.peer_routes],
            "port": self.fabric_port,
            "listeners": list(self.listeners),
        }


# Planning (pure) -----------------------------------------------------------------------


def _ip(text: str) -> str:
    return text.split("/", 1)[0]


def _covered(ip: str, connected: tuple[str, ...]) -> bool:
    addr = ipaddress.ip_address(ip)
    for text in connected:
        iface = ipaddress.ip_interface(text)
        if iface.version == addr.version and addr in iface.network:
            return True
    return False


def _host(ip: str) -> Route:
    return Route(f"{ip}/{32 if ipaddress.ip_address(ip).version == 4 else 128}")


def gateway_addresses(gateway: Gateway | None, program: GatewayProgram) -> tuple[str, ...]:
    """spec.addresses (the program's), else the IPAddress values of status.addresses."""
    if program.addresses:
        return tuple(program.addresses)
    if gateway is None:
        return ()
    return tuple(
        str(ipaddress.ip_address(a.value))
        for a in gateway.status.addresses
        if a.type == "IPAddress" and a.value
    )


def _listeners(program: GatewayProgram) -> tuple[str, ...]:
    return tuple(
        f"{t.info.port}/{t.info.transport.upper()} {t.info.protocol} {t.info.name}"
        for t in program.listeners
    )


def plan_gateways(
    lab: LabPlan,
    programs: Mapping[str, GatewayProgram],
    gateways: Mapping[str, Gateway],
    node_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> tuple[list[GatewayPlan], list[str]]:
    """The Gateway namespaces of a lab, and warnings for Gateways it cannot serve."""
    warnings: list[str] = []
    taken: dict[str, str] = {}
    for node in lab.nodes:
        for ip in node.ips:
            taken[ip] = f"node {node.name}"
    for ip in lab.external.ips:
        taken[ip] = "the external client"
    for pod in lab.pods:
        if not pod.host_network:
            for ip in pod.ips:
                taken[ip] = f"Pod {pod.key}"
    pod_cidrs = [(ipaddress.ip_network(c), n.name) for n in lab.nodes for c in n.pod_cidrs]
    peers = [(n.netns, n.addresses) for n in lab.nodes] + [
        (lab.external.netns, lab.external.addresses)
    ]
    out: list[GatewayPlan] = []
    for key in sorted(programs):
        program = programs[key]
        namespace, name = key.split("/", 1)
        ips = gateway_addresses(gateways.get(key), program)
        if not ips:
            warnings.append(
                f"Gateway {key}: no address (spec.addresses or status.addresses); "
                "not served in the lab"
            )
            continue
        problem = None
        for ip in ips:
            addr = ipaddress.ip_address(ip)
            if ip in taken:
                problem = f"address {ip} is already {taken[ip]}'s"
            for cidr, node_name in pod_cidrs:
                if addr.version == cidr.version and addr in cidr:
                    problem = f"address {ip} is inside node {node_name}'s podCIDR {cidr}"
        if problem is not None:
            warnings.append(f"Gateway {key}: {problem}; not served in the lab")
            continue
        for ip in ips:
            taken[ip] = f"Gateway {key}"
        addresses = tuple(f"{ip}/{_prefix(ip, node_cidrs)}" for ip in ips)
        families = {ipaddress.ip_address(ip).version for ip in ips}
        # Host routes first: the podCIDR routes go via node IPs they make reachable.
        routes: list[Route] = []
        for _, connected in peers:
            for ip in (_ip(a) for a in connected):
                if ipaddress.ip_address(ip).version in families and not _covered(ip, addresses):
                    routes.append(_host(ip))
        for node in lab.nodes:
            for pod_cidr in node.pod_cidrs:
                version = ipaddress.ip_network(pod_cidr).version
                via = next(
                    (ip for ip in node.ips if ipaddress.ip_address(ip).version == version), None
                )
                if version in families and via is not None:
                    routes.append(Route(pod_cidr, via))
        peer_routes = tuple(
            (netns, _host(ip))
            for netns, connected in peers
            for ip in ips
            if not _covered(ip, connected)
            and any(
                ipaddress.ip_interface(a).version == ipaddress.ip_address(ip).version
                for a in connected
            )
        )
        out.append(
            GatewayPlan(
                key,
                names.gateway_netns(lab.lab, namespace, name),
                names.ifname(lab.lab, "gateway", key),
                addresses,
                tuple(dict.fromkeys(routes)),
                peer_routes,
                _listeners(program),
            )
        )
    return out, warnings


def _prefix(ip: str, node_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> int:
    addr = ipaddress.ip_address(ip)
    for cidr in node_cidrs:
        if addr.version == cidr.version and addr in cidr:
            return cidr.prefixlen
    return 32 if addr.version == 4 else 128


# Making it so --------------------------------------------------------------------------


def reconcile(builder: Builder, plan: LabPlan, state: ClusterState) -> list[dict[str, Any]]:
    """Make the Gateway namespaces and program files match `state` (with the lab's pod
    IPs already in it); return the supervisor's entries for the proxies."""
    from netlet.dataplane.proxy.serve import write_program_file
    from netlet.gateway.build import build_programs

    journal = builder.journal
    programs = dict(build_programs(state))
    gateways = {f"{g.namespace}/{g.name}": g for g in state.list(Gateway)}
    wanted, warnings = plan_gateways(plan, programs, gateways, tuple(state.config.node_cidrs))
    keys = {g.key for g in wanted}
    for key in [k for k in journal.topology if k.startswith(KEY_PREFIX) and k not in keys]:
        remove_gateway(journal, key)
    directory = journal.dir / GATEWAYS_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    entries = []
    for gw in wanted:
        spec = gw.spec()
        if not builder._keep(gw.key, gw.netns, spec):  # the Builder's own step
            old = journal.topology.get(gw.key)
            if old is not None:
                _remove_peer_routes(old.spec)
            # A namespace being torn down (its proxy just stopped) keeps its veth pair
            # until the kernel gets to it: drop the pair now so the name is free.
            topology.drop_fabric_port(plan.fabric_netns, gw.fabric_port)
            builder._make_ns(
                gw.key,
                gw.netns,
                spec,
                lambda g=gw: topology.setup_external(  # type: ignore[misc]
                    g.netns,
                    plan.fabric_netns,
                    g.fabric_port,
                    plan.bridge,
                    g.addresses,
                    g.routes,
                ),
            )
            builder.undo.push(f"routes to Gateway {gw.gateway}", _peer_routes_undo(spec))
        # Again on every up: a node namespace made anew has lost them.
        _add_peer_routes(gw.peer_routes)
        program = programs[gw.gateway]
        if program.addresses != gw.ips:
            program = _with_addresses(program, gw.ips)
        path = directory / f"{gw.gateway.replace('/', '.')}.program"
        write_program_file(str(path), {gw.gateway: program})
        entries.append(
            {
                "key": gw.key,
                "kind": "gateway",
                "gateway": gw.gateway,
                "netns": str(names.netns_path(gw.netns)),
                "program": str(path),
                # A changed program changes the entry: the supervisor restarts the proxy.
                "digest": hashlib.sha256(path.read_bytes()).hexdigest(),
                "admin": ADMIN,
            }
        )
    write_json(journal.dir / WARNINGS_FILE, {"warnings": warnings})
    return entries


def _with_addresses(program: GatewayProgram, ips: tuple[str, ...]) -> GatewayProgram:
    # status.addresses: where the proxy binds (the program's addresses are spec's).
    from dataclasses import replace

    return replace(program, addresses=ips)


def _peer_routes_undo(spec: dict[str, Any]) -> Callable[[], None]:
    return lambda: _remove_peer_routes(spec)


def _add_peer_routes(routes: tuple[tuple[str, Route], ...]) -> None:
    by_netns: dict[str, list[Route]] = {}
    for netns, route in routes:
        by_netns.setdefault(netns, []).append(route)
    for netns, items in by_netns.items():
        with kernel.netlink(names.netns_path(netns)) as ipr:
            index = ipr.link_lookup(ifname=names.NODE_UPLINK)[0]
            for route in items:
                topology.add_route(ipr, index, route)


def _remove_peer_routes(spec: dict[str, Any]) -> None:
    for netns, dst in spec.get("peers", []):
        if not kernel.netns_exists(netns):
            continue
        with kernel.netlink(names.netns_path(netns)) as ipr, contextlib.suppress(NetlinkError):
            found = ipr.link_lookup(ifname=names.NODE_UPLINK)
            if found:
                ipr.route("del", dst=dst, oif=found[0], scope=topology.SCOPE_LINK)


def remove_gateway(journal: Journal, key: str) -> None:
    """Delete a Gateway's namespace, its routes in node and external namespaces and
    its program file (the supervisor stops its proxy when its entry goes)."""
    record = journal.topology[key]
    _remove_peer_routes(record.spec)
    port = record.spec.get("port")
    if port:
        topology.drop_fabric_port(names.fabric_netns(journal.lab), str(port))
    kernel.netns_delete(record.netns)
    gateway = str(record.spec.get("gateway", key[len(KEY_PREFIX) :]))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal.dir / GATEWAYS_DIR / f"{gateway.replace('/', '.')}.program")
    journal.topology.pop(key)
    journal.save_topology()


# Observing -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    gateway: str
    netns: str
    addresses: tuple[str, ...]
    listeners: tuple[str, ...]
    netns_present: bool
    proxy: str  # ready, starting, backoff, failed, missing, dead, unsupervised
    pid: int | None
    restarts: int
    last_exit: str | None
    message: str | None
    port_states: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return self.netns_present and self.proxy == "ready"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.gateway,
            "netns": self.netns,
            "addresses": list(self.addresses),
            "listeners": list(self.listeners),
            "present": self.netns_present,
            "proxy": self.proxy,
            "pid": self.pid,
            "restarts": self.restarts,
            "lastExit": self.last_exit,
            "message": self.message,
            "portStates": list(self.port_states),
        }


def gateway_statuses(
    journal: Journal, workers: Mapping[str, Any], supervised: bool
) -> tuple[tuple[GatewayStatus, ...], tuple[str, ...]]:
    """Each Gateway namespace on record with its proxy's state; and the warnings of
    the last `up` (Gateways it could not serve)."""
    journal.load()
    out = []
    for key in sorted(k for k in journal.topology if k.startswith(KEY_PREFIX)):
        record = journal.topology[key]
        w = workers.get(key)
        state = "missing" if w is None else str(w["state"])
        pid = w.get("pid") if w else None
        if w is not None and state == "ready" and (pid is None or not kernel.pid_alive(pid)):
            state = "dead"
        if not supervised and state == "ready":
            state = "unsupervised"
        out.append(
            GatewayStatus(
                key[len(KEY_PREFIX) :],
                record.netns,
                tuple(record.spec.get("addresses", ())),
                tuple(record.spec.get("listeners", ())),
                kernel.netns_exists(record.netns),
                state,
                pid,
                int(w.get("restarts", 0)) if w else 0,
                w.get("lastExit") if w else None,
                w.get("message") if w else None,
                tuple(f"{k} {v}" for k, v in (w.get("ports") or {}).items()) if w else (),
            )
        )
    data = read_json(journal.dir / WARNINGS_FILE) or {}
    return tuple(out), tuple(data.get("warnings", ()))
