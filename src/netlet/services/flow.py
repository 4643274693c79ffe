"""What a node's service proxy does with one new connection, and why.

`evaluate(table, source, protocol, destination, port)` walks the service table
in the order kube-proxy's nftables rules see a packet arriving at a node
(pkg/proxy/nftables: filter-prerouting firewall-check, nat-prerouting
services, then filter-input/-forward endpoint and cluster-IP checks) and
returns every possible outcome with its probability: an endpoint (numgen
random: equal shares), REJECT, DROP, or no match (not a service address: the
packet is routed as usual), whether it is masqueraded, and the steps that led
there, named after the chains a backend lays out. It is the executable
statement of the layout documented in netlet.services.table, so the analyzer
and the kernel backend can be checked against each other flow by flow.

Packets from a node's own processes take the output path in the kernel; as in
upstream's packet-flow tests they are evaluated on the prerouting path, where
the same rules apply ("fib saddr type local" matches the node's addresses).

`trace()` adds where the packet is evaluated: at the source pod's node, at the
source node, or (for sources outside the cluster) at the node owning the
destination address or the node given; a packet that no rule captured and that
is addressed to another node is evaluated again there.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from netlet.cluster.state import ClusterState
from netlet.resources.core import Node, Pod, Protocol
from netlet.services.table import (
    Endpoint,
    Frontend,
    FrontendKind,
    IPAddress,
    Policy,
    ServicePortEntry,
    ServicePortName,
    ServiceTable,
    Target,
    Verdict,
    format_address,
)


class OutcomeKind(enum.StrEnum):
    ENDPOINT = "endpoint"
    REJECT = "REJECT"
    DROP = "DROP"
    NO_MATCH = "no match"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    probability: Fraction
    endpoint: Endpoint | None = None
    masquerade: bool = False

    def __str__(self) -> str:
        if self.endpoint is not None:
            return str(self.endpoint)
        return self.kind.value


@dataclass(frozen=True, slots=True)
class Step:
    """One rule that matched. `chain` names the nftables chain/map it lives in."""

    chain: str
    text: str

    def __str__(self) -> str:
        return f"[{self.chain}] {self.text}"


@dataclass(frozen=True, slots=True)
class FlowResult:
    node: str
    source: IPAddress
    protocol: Protocol
    destination: IPAddress
    port: int
    outcomes: tuple[Outcome, ...]
    steps: tuple[Step, ...]
    entry: ServicePortName | None = None
    frontend: Frontend | None = None
    affinity_timeout: int | None = None

    @property
    def kind(self) -> OutcomeKind:
        """ENDPOINT when the connection reaches an endpoint, else the verdict."""
        return self.outcomes[0].kind

    @property
    def endpoints(self) -> tuple[str, ...]:
        """ "ip:port" of every endpoint the connection may reach, in table order."""
        return tuple(str(o.endpoint) for o in self.outcomes if o.endpoint is not None)

    @property
    def masquerade(self) -> bool:
        """True when any outcome is masqueraded (a hairpin masquerades only the
        connection that lands on the client itself; see each Outcome)."""
        return any(o.masquerade for o in self.outcomes)

    @property
    def summary(self) -> str:
        if self.kind == OutcomeKind.ENDPOINT:
            return ", ".join(self.endpoints)
        return self.kind.value


@dataclass
class _Walk:
    """Mutable scratch state of one evaluation (never escapes `evaluate`)."""

    table: ServiceTable
    source: IPAddress
    destination: IPAddress
    protocol: Protocol
    port: int
    steps: list[Step] = field(default_factory=list)
    masquerade: bool = False

    def note(self, chain: str, text: str) -> None:
        self.steps.append(Step(chain, text))


def evaluate(
    table: ServiceTable,
    source: IPAddress,
    protocol: Protocol,
    destination: IPAddress,
    port: int,
) -> FlowResult:
    """The possible outcomes of a new connection arriving at `table.node`."""
    walk = _Walk(table, source, destination, protocol, port)
    outcomes, entry, frontend = _run(walk)
    return FlowResult(
        node=table.node,
        source=source,
        protocol=protocol,
        destination=destination,
        port=port,
        outcomes=outcomes,
        steps=tuple(walk.steps),
        entry=entry.name if entry is not None else None,
        frontend=frontend,
        affinity_timeout=entry.affinity_timeout if entry is not None else None,
    )


_Result = tuple[tuple[Outcome, ...], ServicePortEntry | None, Frontend | None]


def _verdict(kind: Verdict) -> tuple[Outcome, ...]:
    return (Outcome(OutcomeKind(kind.value.upper()), Fraction(1)),)


def _run(walk: _Walk) -> _Result:
    table = walk.table
    dst, proto, port = walk.destination, walk.protocol, walk.port
    if walk.source.version != dst.version:
        walk.note("services", "source and destination are of different IP families")
        return (Outcome(OutcomeKind.NO_MATCH, Fraction(1)),), None, None
    name = table.service_ips.get((dst, proto, port))
    entry = table.entries[name] if name is not None else None
    frontend = _frontend(entry, dst) if entry is not None else None
    # filter-prerouting: firewall-check runs before any DNAT.
    if entry is not None and frontend is not None and entry.firewall is not None:
        fw = entry.firewall
        if dst in fw.addresses:
            ranges = ", ".join(str(n) for n in fw.allowed)
            if not fw.allows(walk.source):
                walk.note(
                    "firewall-check",
                    f"{frontend} has loadBalancerSourceRanges; {walk.source} is not in "
                    f"{ranges}: drop",
                )
                return _verdict(Verdict.DROP), entry, frontend
            walk.note("firewall-check", f"{walk.source} is allowed by {ranges}")
    # nat-prerouting: services chain, service-ips first, then service-nodeports.
    if entry is not None and frontend is not None:
        walk.note("services", f"{frontend} belongs to {entry.name}")
        if frontend.dispatch:
            outcomes = _dispatch(walk, entry, frontend)
            if outcomes:
                return outcomes, entry, frontend
    elif table.accepts_node_port(dst):
        np_name = table.node_ports.get((dst.version, proto, port))
        if np_name is not None:
            entry = table.entries[np_name]
            frontend = next(f for f in entry.frontends if f.kind == FrontendKind.NODE_PORT)
            walk.note("services", f"NodePort {port}/{proto.value} on {dst} belongs to {entry.name}")
            if frontend.dispatch:
                outcomes = _dispatch(walk, entry, frontend)
                if outcomes:
                    return outcomes, entry, frontend
    # No DNAT: the filter chains see the original destination.
    return _filter(walk, entry, frontend), entry, frontend


def _frontend(entry: ServicePortEntry, dst: IPAddress) -> Frontend | None:
    return next((f for f in entry.frontends if f.address == dst), None)


def _dispatch(walk: _Walk, entry: ServicePortEntry, frontend: Frontend) -> tuple[Outcome, ...]:
    if frontend.target == Target.INTERNAL:
        return _policy_chain(walk, entry, entry.internal_policy)
    return _external_chain(walk, entry)


def _external_chain(walk: _Walk, entry: ServicePortEntry) -> tuple[Outcome, ...]:
    table, src = walk.table, walk.source
    chain = f"external {entry.name}"
    if entry.external_policy == Policy.CLUSTER:
        walk.masquerade = True
        walk.note(chain, "externalTrafficPolicy Cluster: mark for masquerade")
        return _policy_chain(walk, entry, Policy.CLUSTER)
    if table.in_pod_cidr(src):
        walk.note(
            chain,
            f"externalTrafficPolicy Local, but {src} is a pod address: short-circuit to the "
            "cluster endpoints, not masqueraded",
        )
        return _policy_chain(walk, entry, Policy.CLUSTER)
    if table.is_local_address(src):
        walk.masquerade = True
        walk.note(
            chain,
            f"externalTrafficPolicy Local, but {src} is this node's address: mark for "
            "masquerade and short-circuit to the cluster endpoints",
        )
        return _policy_chain(walk, entry, Policy.CLUSTER)
    if entry.local_endpoints:
        walk.note(chain, "externalTrafficPolicy Local: only this node's endpoints, source kept")
        return _policy_chain(walk, entry, Policy.LOCAL)
    walk.note(chain, f"externalTrafficPolicy Local and {entry.local_selection}: no DNAT")
    return ()


def _policy_chain(walk: _Walk, entry: ServicePortEntry, policy: Policy) -> tuple[Outcome, ...]:
    table, src = walk.table, walk.source
    if policy == Policy.CLUSTER:
        chain, endpoints, why = "service", entry.cluster_endpoints, entry.cluster_selection
    else:
        chain, endpoints, why = "local", entry.local_endpoints, entry.local_selection
    chain = f"{chain} {entry.name}"
    if policy == entry.internal_policy and walk.destination == entry.cluster_ip:
        # The masquerade rule of the internal chain matches its own ClusterIP only.
        if table.masquerade_all:
            walk.masquerade = True
            walk.note(chain, "--masquerade-all: mark for masquerade")
        elif not table.in_pod_cidr(src):
            walk.masquerade = True
            cidrs = ", ".join(str(c) for c in table.pod_cidrs if c.version == src.version)
            walk.note(
                chain,
                f"{src} is not in the pod CIDR {cidrs}: off-cluster traffic to a ClusterIP is "
                "masqueraded",
            )
    if not endpoints:
        walk.note(chain, f"{why}: no DNAT")
        return ()
    if entry.affinity_timeout is not None:
        walk.note(
            chain,
            f"sessionAffinity ClientIP: a client seen in the last {entry.affinity_timeout}s "
            "returns to its endpoint; a new client is balanced",
        )
    walk.note(chain, f"{why}: numgen random mod {len(endpoints)}")
    share = Fraction(1, len(endpoints))
    outcomes = []
    for ep in endpoints:
        hairpin = src == ep.ip
        outcomes.append(Outcome(OutcomeKind.ENDPOINT, share, ep, walk.masquerade or hairpin))
    hairpins = [ep for ep in endpoints if src == ep.ip]
    for ep in hairpins:
        walk.note(f"endpoint {ep}", "hairpin (source is this endpoint): mark for masquerade")
    walk.note("endpoint", f"dnat to {'/'.join(str(ep) for ep in endpoints)}")
    return tuple(outcomes)


def _filter(
    walk: _Walk, entry: ServicePortEntry | None, frontend: Frontend | None
) -> tuple[Outcome, ...]:
    table, dst = walk.table, walk.destination
    local = table.is_local_address(dst)
    hook = "filter-input" if local else "filter-forward"

    def service_check() -> Verdict | None:
        if frontend is not None and frontend.address is not None and frontend.no_endpoints:
            assert entry is not None
            walk.note(
                f"{hook}: service-endpoints-check",
                f"{frontend} of {entry.name} is in no-endpoint-services: "
                f"{frontend.no_endpoints.value} ({_why_no_endpoints(entry, frontend)})",
            )
            return frontend.no_endpoints
        return None

    def nodeport_check() -> Verdict | None:
        if not table.accepts_node_port(dst):
            return None
        np_name = table.node_ports.get((dst.version, walk.protocol, walk.port))
        if np_name is None:
            return None
        np_entry = table.entries[np_name]
        np = next(f for f in np_entry.frontends if f.kind == FrontendKind.NODE_PORT)
        if np.no_endpoints is None:
            return None
        walk.note(
            f"{hook}: nodeport-endpoints-check",
            f"NodePort {walk.port}/{walk.protocol.value} of {np_entry.name} is in "
            f"no-endpoint-nodeports: {np.no_endpoints.value} ({_why_no_endpoints(np_entry, np)})",
        )
        return np.no_endpoints

    def cluster_ips_check() -> Verdict | None:
        owner = table.cluster_ips.get(dst)
        if owner is not None:
            walk.note(
                f"{hook}: cluster-ips-check",
                f"{dst} is the ClusterIP of {owner} but {walk.port}/{walk.protocol.value} is not "
                "one of its ports: reject",
            )
            return Verdict.REJECT
        if table.in_service_cidr(dst):
            walk.note(
                f"{hook}: cluster-ips-check",
                f"{dst} is in the service CIDR but no Service has it: drop",
            )
            return Verdict.DROP
        return None

    # filter-input: nodeport-endpoints-check, service-endpoints-check;
    # filter-forward: service-endpoints-check, cluster-ips-check.
    checks = [nodeport_check, service_check] if local else [service_check, cluster_ips_check]
    for check in checks:
        verdict = check()
        if verdict is not None:
            return _verdict(verdict)
    walk.note("services", _no_match_reason(walk, entry))
    return (Outcome(OutcomeKind.NO_MATCH, Fraction(1)),)


def _why_no_endpoints(entry: ServicePortEntry, frontend: Frontend) -> str:
    if not entry.has_endpoints:
        return "the service has no ready or serving-terminating endpoint"
    if frontend.target == Target.INTERNAL:
        return f"internalTrafficPolicy Local and {entry.local_selection}"
    return f"externalTrafficPolicy Local and {entry.local_selection}"


def _no_match_reason(walk: _Walk, entry: ServicePortEntry | None) -> str:
    table, dst = walk.table, walk.destination
    if entry is not None:
        return f"{entry.name} has no rule for this connection: routed as usual"
    for candidate in table.entries.values():
        if dst in candidate.proxy_mode_ips:
            return (
                f"{dst} is a load balancer IP of {candidate.service} with ipMode Proxy: "
                "kube-proxy leaves it to the load balancer; routed as usual"
            )
    if dst.is_loopback:
        return "NodePorts are not served on loopback addresses in nftables mode: no match"
    if table.is_local_address(dst) and not table.accepts_node_port(dst):
        return (
            f"{dst} is not a nodeport address of {table.node} (nodeport addresses: "
            f"{', '.join(str(ip) for ip in table.nodeport_addresses) or 'none'}): no match"
        )
    return f"{format_address(dst, walk.port)} is not a service address: routed as usual"


# Sources and multi-node traces ----------------------------------------------------


class SourceKind(enum.StrEnum):
    POD = "pod"
    NODE = "node"
    EXTERNAL = "external"


@dataclass(frozen=True, slots=True)
class Source:
    """Who opens the connection: its address and the node whose proxy sees it first."""

    kind: SourceKind
    ip: IPAddress
    name: str  # "shop/web-0", "node-a", or the address
    node: str | None

    def __str__(self) -> str:
        if self.kind == SourceKind.EXTERNAL:
            return f"{self.ip} (outside the cluster)"
        where = f" on {self.node}" if self.kind == SourceKind.POD and self.node else ""
        return f"{self.kind.value} {self.name}{where} ({self.ip})"


class SourceError(ValueError):
    pass


def _pick(ips: tuple[str, ...], family: int | None, what: str) -> IPAddress:
    addresses = [ipaddress.ip_address(ip) for ip in ips]
    if family is not None:
        addresses = [a for a in addresses if a.version == family]
    if not addresses:
        fam = f"IPv{family} " if family else ""
        raise SourceError(f"{what} has no {fam}address")
    return addresses[0]


def resolve_source(state: ClusterState, text: str, family: int | None = None) -> Source:
    """NS/POD, a node name, or an IP (a pod's, a node's, or an outside address)."""
    node = state.node(text)
    if node is not None:
        return Source(SourceKind.NODE, _pick(node.internal_ips, family, f"node {text}"), text, text)
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    if ip is not None:
        pod = state.pod_by_ip(str(ip))
        if pod is not None:
            return Source(SourceKind.POD, ip, f"{pod.namespace}/{pod.name}", pod.spec.node_name)
        for candidate in state.list(Node):
            if str(ip) in {a.address for a in candidate.status.addresses}:
                return Source(SourceKind.NODE, ip, candidate.name, candidate.name)
        return Source(SourceKind.EXTERNAL, ip, str(ip), None)
    namespace, _, name = text.rpartition("/")
    pod = state.get(Pod, namespace or "default", name)
    if pod is None:
        raise SourceError(
            f"{text!r} is not a node, an IP address or a pod (NS/POD) in the manifests"
        )
    if pod.spec.host_network:
        node_name = pod.spec.node_name or ""
        return Source(
            SourceKind.NODE, _pick(pod.ips, family, f"pod {text}"), node_name, node_name or None
        )
    return Source(
        SourceKind.POD,
        _pick(pod.ips, family, f"pod {text}"),
        f"{pod.namespace}/{pod.name}",
        pod.spec.node_name,
    )


def node_owning(state: ClusterState, address: IPAddress) -> str | None:
    text = str(address)
    for node in state.list(Node):
        if any(a.address == text for a in node.status.addresses):
            return node.name
    return None


@dataclass(frozen=True, slots=True)
class Trace:
    source: Source
    hops: tuple[FlowResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def result(self) -> FlowResult:
        return self.hops[-1]


def trace(
    state: ClusterState,
    source: Source,
    protocol: Protocol,
    destination: IPAddress,
    port: int,
    table_for: Callable[[str], ServiceTable],
    *,
    node: str | None = None,
) -> Trace:
    """Evaluate the connection at the node whose proxy sees it first, and at the node it
    is routed to when that first node leaves it alone and it is addressed to a node."""
    notes: list[str] = []
    owner = node_owning(state, destination)
    first = node or source.node or owner
    if first is None:
        nodes = [n.name for n in state.list(Node)]
        first = nodes[0]
        notes.append(
            f"{source.ip} is outside the cluster: assuming its packets arrive at node {first} "
            "(choose another with --node)"
        )
    hops = [evaluate(table_for(first), source.ip, protocol, destination, port)]
    if hops[0].kind == OutcomeKind.NO_MATCH and owner is not None and owner != first:
        notes.append(f"not captured on {first}: routed to node {owner}, which owns {destination}")
        hops.append(evaluate(table_for(owner), source.ip, protocol, destination, port))
    return Trace(source, tuple(hops), tuple(notes))
