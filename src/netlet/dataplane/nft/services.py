"""The services renderer: one node's service table -> the `netlet` table per family.

Owns the layout of kube-proxy's nftables mode as netlet writes it (documented
with the reasons in docs/nftables.md). It follows upstream object for object
(`services` with the `service-ips` / `service-nodeports` verdict maps,
`no-endpoint-*` maps, `firewall-check`, `cluster-ips-check`, `reject-chain`,
`mark-for-masquerade` / `masquerading`, per-service-port `service-`, `local-`
and `external-` chains) except where upstream does not scale on this kernel:

- The endpoint choice is not a chain per endpoint plus an anonymous
  `numgen ... vmap { }` per service (every anonymous set costs time
  proportional to the sets already in the table, and every rule that looks up
  a named *map* makes the kernel re-check all of its elements). Instead each
  policy chain owns a range of *slots* [base, base+N) and does
  `ct mark set numgen random mod N offset base goto endpoint-dnat`; the one
  shared chain `endpoint-dnat` maps the slot to the endpoint with the shared
  map `service-endpoints` (slot : address . port). N rules never bind the map,
  only one does, and changing one endpoint changes one slot.
- Hairpin (a pod reaching itself through a Service) is masqueraded by a
  lookup of `saddr . daddr` in the shared `hairpin` set (endpoint . itself)
  in `masquerading`, instead of a rule per endpoint chain.
- loadBalancerSourceRanges are elements of two shared sets (`firewall-ips`,
  and the interval set `firewall-allow` of destination . source range) looked
  up by one rule, instead of a chain with an anonymous set per service.
- Session affinity keeps upstream's per-endpoint chains and affinity sets (with
  their timeouts), only for Services that ask for it; their slot maps to the
  endpoint chain through the shared verdict map `service-endpoint-chains`.
- `endpoint-dnat` first looks the slot up in `service-endpoint-moves`: a partial
  sync moves an endpoint by adding its new address under a spare slot and
  `slot : spare` there, so it deletes nothing (a deletion costs the kernel
  10-15 ms: netlet.dataplane.nft.deferred); the collection writes the slot back.
  For the same reason a `hairpin` pair that goes may linger until then: a pair
  of an address that is no endpoint any more matches no DNATed connection.

The renderer is incremental: each Service is one `Fragment` rebuilt only when
the services brain reports it changed, and slots are kept per chain across
renders (an endpoint keeps its slot; a removed one is replaced by the last), so
a one-endpoint change is a few element additions.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from netlet.dataplane.nft.deferred import SPARE_BASE
from netlet.dataplane.nft.desired import Deferral, DesiredTable, Fragment, FragmentBuilder
from netlet.dataplane.nft.gcpause import paused_gc
from netlet.dataplane.nft.model import (
    PRIORITY_DSTNAT,
    PRIORITY_SRCNAT,
    Chain,
    ChainType,
    Family,
    Hook,
    Map,
    Set,
    ValidationError,
)
from netlet.dataplane.nft.names import (
    AFFINITY_PREFIX,
    ENDPOINT_PREFIX,
    EXTERNAL_PREFIX,
    LOCAL_PREFIX,
    SERVICE_PREFIX,
    endpoint_base,
    hashed,
    name_hash,
    service_port_base,
)
from netlet.services.changes import TableDiff as ServiceTableDiff
from netlet.services.table import (
    Endpoint,
    Frontend,
    IPNetwork,
    Policy,
    ServiceName,
    ServicePortEntry,
    ServiceTable,
    Target,
    Verdict,
)

TABLE = "netlet"
TABLE_COMMENT = "netlet services (kube-proxy nftables mode)"
MASQUERADE_MARK = "0x00004000"  # kube-proxy's default --masquerade-bit 14
SKELETON = "skeleton"
SERVICE_FRAGMENT = "svc/"  # + namespace/name

# Base chains: (name, type, hook, priority). Filtering sees pre-DNAT addresses.
BASE_CHAINS: tuple[tuple[str, ChainType, Hook, int], ...] = (
    ("filter-prerouting", ChainType.FILTER, Hook.PREROUTING, PRIORITY_DSTNAT - 10),
    ("filter-input", ChainType.FILTER, Hook.INPUT, PRIORITY_DSTNAT - 10),
    ("filter-forward", ChainType.FILTER, Hook.FORWARD, PRIORITY_DSTNAT - 10),
    ("filter-output", ChainType.FILTER, Hook.OUTPUT, PRIORITY_DSTNAT - 10),
    ("filter-output-post-dnat", ChainType.FILTER, Hook.OUTPUT, PRIORITY_DSTNAT + 10),
    ("nat-prerouting", ChainType.NAT, Hook.PREROUTING, PRIORITY_DSTNAT),
    ("nat-output", ChainType.NAT, Hook.OUTPUT, PRIORITY_DSTNAT),
    ("nat-postrouting", ChainType.NAT, Hook.POSTROUTING, PRIORITY_SRCNAT),
)

# Regular chains jumped to from base chains: (chain, from, match). `reject` is only
# valid in input/forward/output, hence the endpoint checks there and not in prerouting.
JUMPS: tuple[tuple[str, str, str], ...] = (
    ("firewall-check", "filter-prerouting", "ct state new"),
    ("nodeport-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-forward", "ct state new"),
    ("cluster-ips-check", "filter-forward", "ct state new"),
    ("service-endpoints-check", "filter-output", "ct state new"),
    ("firewall-check", "filter-output", "ct state new"),
    ("cluster-ips-check", "filter-output-post-dnat", "ct state new"),
    ("services", "nat-prerouting", ""),
    ("services", "nat-output", ""),
    ("masquerading", "nat-postrouting", ""),
)

REJECT_CHAIN = "reject-chain"
MARK_MASQ_CHAIN = "mark-for-masquerade"
ENDPOINT_DNAT_CHAIN = "endpoint-dnat"
ENDPOINT_JUMP_CHAIN = "endpoint-jump"

SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
NODEPORT_IPS = "nodeport-ips"
CLUSTER_IPS = "cluster-ips"
FIREWALL_IPS = "firewall-ips"
FIREWALL_ALLOW = "firewall-allow"
HAIRPIN = "hairpin"
POD_CIDRS = "pod-cidrs"
SERVICE_ENDPOINTS = "service-endpoints"
SERVICE_ENDPOINT_CHAINS = "service-endpoint-chains"
SERVICE_ENDPOINT_MOVES = "service-endpoint-moves"

# Removals a partial sync may leave for the collection (netlet.dataplane.nft.deferred).
DEFERRALS: Mapping[str, Deferral] = {
    SERVICE_ENDPOINTS: Deferral(moves=SERVICE_ENDPOINT_MOVES),
    HAIRPIN: Deferral(linger=True),
}

VERDICTS: Mapping[Verdict, str] = {Verdict.REJECT: f"goto {REJECT_CHAIN}", Verdict.DROP: "drop"}


@functools.cache
def skeleton_sets(family: Family) -> tuple[Set | Map, ...]:
    addr = family.addr_type
    tuple3 = f"{addr} . inet_proto . inet_service"
    return (
        Map(
            SERVICE_IPS,
            f"{tuple3} : verdict",
            comment="ClusterIP, ExternalIP and LoadBalancer IP traffic",
        ),
        Map(SERVICE_NODEPORTS, "inet_proto . inet_service : verdict", comment="NodePort traffic"),
        Map(
            NO_ENDPOINT_SERVICES,
            f"{tuple3} : verdict",
            comment="vmap to drop or reject packets to services with no endpoints",
        ),
        Map(
            NO_ENDPOINT_NODEPORTS,
            "inet_proto . inet_service : verdict",
            comment="vmap to drop or reject packets to service nodeports with no endpoints",
        ),
        Set(NODEPORT_IPS, addr, comment="IPs that accept NodePort traffic"),
        Set(CLUSTER_IPS, addr, comment="Active ClusterIPs"),
        Set(
            FIREWALL_IPS,
            tuple3,
            comment="destinations that are subject to LoadBalancerSourceRanges",
        ),
        Set(
            FIREWALL_ALLOW,
            f"{tuple3} . {addr}",
            flags=("interval",),
            comment="destination . source range allowed by LoadBalancerSourceRanges",
        ),
        Set(HAIRPIN, f"{addr} . {addr}", comment="endpoint . itself: hairpin masquerade"),
        Set(POD_CIDRS, addr, flags=("interval",), comment="pod CIDRs: the local traffic detector"),
        Map(
            SERVICE_ENDPOINTS,
            f"mark : {addr} . inet_service",
            comment="endpoint slot : endpoint address . port",
        ),
        Map(
            SERVICE_ENDPOINT_CHAINS,
            "mark : verdict",
            comment="endpoint slot : endpoint chain (session affinity)",
        ),
        Map(
            SERVICE_ENDPOINT_MOVES,
            "mark : mark",
            comment="endpoint slot : spare slot of its moved endpoint, until the next collection",
        ),
    )


def _cidr_match(family: Family, cidrs: Sequence[IPNetwork], negate: bool) -> str:
    """`ip saddr [!=] CIDR`, or the `pod-cidrs` set when a family has several."""
    op = "!= " if negate else ""
    if len(cidrs) == 1:
        return f"{family.addr_match} saddr {op}{cidrs[0]}"
    return f"{family.addr_match} saddr {op}@{POD_CIDRS}"


def skeleton(family: Family, table: ServiceTable) -> Fragment:
    """The fixed chains, sets and maps, and the node-wide elements."""
    b = FragmentBuilder(family)
    version = family.version
    for name, ctype, hook, prio in BASE_CHAINS:
        b.chain(Chain(name, ctype, hook, prio))
    for definition in skeleton_sets(family):
        b.set(definition)
    for target, source, match in JUMPS:
        b.chain(target)
        b.rule(source, f"{match} jump {target}".strip())
    addr = b.addr
    tuple3 = f"{addr} daddr . meta l4proto . th dport"
    b.chain("services")
    b.rule("services", f"{tuple3} vmap @{SERVICE_IPS}")
    b.rule(
        "services",
        f"{addr} daddr @{NODEPORT_IPS} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}",
    )
    b.rule("service-endpoints-check", f"{tuple3} vmap @{NO_ENDPOINT_SERVICES}")
    b.rule(
        "nodeport-endpoints-check",
        f"{addr} daddr @{NODEPORT_IPS} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}",
    )
    b.rule(
        "firewall-check",
        f"{tuple3} @{FIREWALL_IPS} {tuple3} . {addr} saddr != @{FIREWALL_ALLOW} drop",
    )
    b.rule(
        "cluster-ips-check",
        f"{addr} daddr @{CLUSTER_IPS} reject",
        comment="Reject traffic to invalid ports of ClusterIPs",
    )
    for cidr in (c for c in table.service_cidrs if c.version == version):
        b.rule(
            "cluster-ips-check",
            f"{addr} daddr {cidr} drop",
            comment="Drop traffic to unallocated ClusterIPs",
        )
    b.chain(REJECT_CHAIN)
    b.rule(REJECT_CHAIN, "reject")
    b.chain(MARK_MASQ_CHAIN)
    b.rule(MARK_MASQ_CHAIN, f"meta mark set meta mark | {MASQUERADE_MARK}")
    b.rule(
        "masquerading",
        f"{addr} saddr . {addr} daddr @{HAIRPIN} jump {MARK_MASQ_CHAIN}",
        comment="hairpin: an endpoint reaching itself",
    )
    b.rule("masquerading", f"meta mark & {MASQUERADE_MARK} == 0 return")
    b.rule("masquerading", f"meta mark set meta mark ^ {MASQUERADE_MARK}")
    b.rule("masquerading", "masquerade fully-random")
    b.chain(ENDPOINT_DNAT_CHAIN)
    # A miss leaves the slot as it is (a lookup that finds nothing ends the rule).
    b.rule(ENDPOINT_DNAT_CHAIN, f"ct mark set ct mark map @{SERVICE_ENDPOINT_MOVES}")
    b.rule(
        ENDPOINT_DNAT_CHAIN,
        f"meta l4proto {{ tcp, udp, sctp }} dnat {addr} to ct mark map @{SERVICE_ENDPOINTS}",
    )
    b.chain(ENDPOINT_JUMP_CHAIN)
    b.rule(ENDPOINT_JUMP_CHAIN, f"ct mark vmap @{SERVICE_ENDPOINT_CHAINS}")
    for ip in table.nodeport_addresses:
        if ip.version == version:
            b.element(NODEPORT_IPS, (str(ip),))
    for cidr in table.pod_cidrs:
        if cidr.version == version:
            b.element(POD_CIDRS, (str(cidr),))
    return b.build()


# Slots ----------------------------------------------------------------------------


def _capacity(n: int) -> int:
    """Slot ranges come in powers of two: a few more endpoints fit without moving."""
    cap = 1
    while cap < n:
        cap *= 2
    return cap


@dataclass(frozen=True, slots=True)
class SlotRange:
    base: int
    capacity: int
    members: tuple[str, ...]  # endpoint keys ("ip:port") in slot order


@dataclass
class SlotBook:
    """Slot ranges of the policy chains of one table, kept across renders.

    Slot 0 is never used (a connection whose ct mark was never set maps to
    nothing). Freed ranges are reused by size, lowest base first, so a render
    from scratch is deterministic.
    """

    ranges: dict[str, SlotRange] = field(default_factory=dict)
    free: dict[int, list[int]] = field(default_factory=dict)
    next_base: int = 1

    def _alloc(self, capacity: int) -> int:
        bases = self.free.get(capacity)
        if bases:
            return bases.pop(0)
        base = self.next_base
        if base + capacity > SPARE_BASE:
            raise ValidationError(f"endpoint slots would reach the spare slots ({SPARE_BASE})")
        self.next_base += capacity
        return base

    def release(self, chain: str) -> None:
        old = self.ranges.pop(chain, None)
        if old is not None:
            bucket = self.free.setdefault(old.capacity, [])
            bucket.append(old.base)
            bucket.sort()

    def assign(self, chain: str, wanted: Sequence[str]) -> SlotRange:
        """Dense slots [base, base+len(wanted)) for `wanted`, moving as few as possible."""
        old = self.ranges.get(chain)
        if old is None or len(wanted) > old.capacity:
            self.release(chain)
            capacity = _capacity(len(wanted))
            new = SlotRange(self._alloc(capacity), capacity, tuple(wanted))
            self.ranges[chain] = new
            return new
        wanted_set = set(wanted)
        present = set(old.members)
        newcomers = [m for m in wanted if m not in present]
        slots: list[str | None] = [m if m in wanted_set else None for m in old.members]
        for i, member in enumerate(slots):
            if member is None and newcomers:
                slots[i] = newcomers.pop(0)
        slots.extend(newcomers)
        while None in slots:
            last = slots.pop()
            if last is not None:
                slots[slots.index(None)] = last
        members = tuple(m for m in slots if m is not None)
        new = SlotRange(old.base, old.capacity, members)
        self.ranges[chain] = new
        return new


# One Service ----------------------------------------------------------------------


def endpoint_key(ep: Endpoint, ip: str | None = None) -> str:
    """ "ip:port" ("[ip]:port" for IPv6): how slots remember their endpoint."""
    text = ip if ip is not None else str(ep.ip)
    return f"[{text}]:{ep.port}" if ep.ip.version == 6 else f"{text}:{ep.port}"


@dataclass(frozen=True, slots=True)
class PortNames:
    """The chain and set names of one service port."""

    base: str
    cluster: str
    local: str
    external: str

    @classmethod
    def of(cls, entry: ServicePortEntry) -> PortNames:
        n = entry.name
        base = service_port_base(n.namespace, n.name, n.protocol.value, n.port)
        digest = name_hash(base)  # the three chains of a port share upstream's HASH
        return cls(
            base,
            hashed(SERVICE_PREFIX, base, digest),
            hashed(LOCAL_PREFIX, base, digest),
            hashed(EXTERNAL_PREFIX, base, digest),
        )

    def endpoint_chain(self, ep: Endpoint) -> str:
        return hashed(ENDPOINT_PREFIX, endpoint_base(self.base, str(ep.ip), ep.port))

    def affinity_set(self, ep: Endpoint) -> str:
        return hashed(AFFINITY_PREFIX, endpoint_base(self.base, str(ep.ip), ep.port))


def _dnat_target(ep: Endpoint) -> str:
    return f"[{ep.ip}]:{ep.port}" if ep.ip.version == 6 else f"{ep.ip}:{ep.port}"


class _PortRenderer:
    """Writes one service port entry into a fragment builder."""

    def __init__(
        self, b: FragmentBuilder, entry: ServicePortEntry, table: ServiceTable, slots: SlotBook
    ) -> None:
        self.b = b
        self.entry = entry
        self.table = table
        self.slots = slots
        self.names = PortNames.of(entry)
        self.proto = entry.protocol.value.lower()
        self.family = b.family
        self.pod_cidrs = tuple(c for c in table.pod_cidrs if c.version == self.family.version)

    def render(self) -> None:
        entry = self.entry
        has_cluster = bool(entry.cluster_endpoints)
        has_local = bool(entry.local_endpoints)
        if has_cluster:
            self.policy_chain(self.names.cluster, entry.cluster_endpoints, Policy.CLUSTER)
        if has_local:
            self.policy_chain(self.names.local, entry.local_endpoints, Policy.LOCAL)
        if entry.uses_external_chain:
            self.external_chain(has_cluster, has_local)
        for fe in entry.frontends:
            self.frontend(fe)
        self.b.element(CLUSTER_IPS, (str(entry.cluster_ip),))
        if entry.firewall is not None:
            self.firewall()

    def internal_chain(self) -> str | None:
        entry = self.entry
        if entry.internal_policy == Policy.LOCAL:
            return self.names.local if entry.local_endpoints else None
        return self.names.cluster if entry.cluster_endpoints else None

    def frontend(self, fe: Frontend) -> None:
        b, entry = self.b, self.entry
        comment = str(entry.name)
        if fe.address is None:
            key: tuple[str, ...] = (self.proto, str(fe.port))
            dispatch_map, no_ep_map = SERVICE_NODEPORTS, NO_ENDPOINT_NODEPORTS
        else:
            key = (str(fe.address), self.proto, str(fe.port))
            dispatch_map, no_ep_map = SERVICE_IPS, NO_ENDPOINT_SERVICES
        if fe.dispatch:
            target = self.internal_chain() if fe.target == Target.INTERNAL else self.names.external
            if target is not None and b.has_chain(target):
                b.element(dispatch_map, key, (f"goto {target}",))
        if fe.no_endpoints is not None:
            b.element(no_ep_map, key, (VERDICTS[fe.no_endpoints],), comment=comment)

    def masquerade_rule(self) -> str:
        entry = self.entry
        addr = self.b.addr
        head = f"{addr} daddr {entry.cluster_ip} {self.proto} dport {entry.port}"
        if self.table.masquerade_all or not self.pod_cidrs:
            return f"{head} jump {MARK_MASQ_CHAIN}"
        return f"{head} {_cidr_match(self.family, self.pod_cidrs, True)} jump {MARK_MASQ_CHAIN}"

    def policy_chain(self, chain: str, endpoints: Sequence[Endpoint], policy: Policy) -> None:
        b, entry = self.b, self.entry
        b.chain(chain)
        if policy == entry.internal_policy:
            # Off-cluster traffic to the ClusterIP is masqueraded (it may bounce off-node).
            b.rule(chain, self.masquerade_rule())
        # Address text computed once per endpoint: ipaddress's str() is the hot spot here.
        texts = {endpoint_key(ep, ip): (ep, ip) for ep in endpoints for ip in (str(ep.ip),)}
        slot = self.slots.assign(chain, list(texts))
        affinity = entry.affinity_timeout is not None
        if affinity:
            for ep in endpoints:
                self.endpoint_chain(ep)
                b.rule(
                    chain,
                    f"{b.addr} saddr @{self.names.affinity_set(ep)} "
                    f"goto {self.names.endpoint_chain(ep)}",
                )
        n = len(slot.members)
        target = ENDPOINT_JUMP_CHAIN if affinity else ENDPOINT_DNAT_CHAIN
        b.rule(chain, f"ct mark set numgen random mod {n} offset {slot.base} goto {target}")
        for i, key in enumerate(slot.members):
            ep, ip = texts[key]
            if affinity:
                b.element(
                    SERVICE_ENDPOINT_CHAINS,
                    (str(slot.base + i),),
                    (f"goto {self.names.endpoint_chain(ep)}",),
                )
            else:
                b.element(SERVICE_ENDPOINTS, (str(slot.base + i),), (ip, str(ep.port)))
            # Upstream marks hairpin traffic in every endpoint chain, local or not.
            b.element(HAIRPIN, (ip, ip))

    def endpoint_chain(self, ep: Endpoint) -> None:
        b = self.b
        chain = self.names.endpoint_chain(ep)
        if b.has_chain(chain):
            return  # shared by the cluster and local chains of this port
        timeout = self.entry.affinity_timeout
        assert timeout is not None
        affinity = self.names.affinity_set(ep)
        # "dynamic": the packet path adds elements (and the kernel sets the flag itself).
        b.set(Set(affinity, b.addr_type, flags=("dynamic", "timeout"), timeout=timeout), True)
        b.chain(chain)
        b.rule(chain, f"update @{affinity} {{ {b.addr} saddr }}")
        b.rule(chain, f"meta l4proto {self.proto} dnat {b.addr} to {_dnat_target(ep)}")

    def external_chain(self, has_cluster: bool, has_local: bool) -> None:
        b, entry = self.b, self.entry
        chain = self.names.external
        cluster = self.names.cluster
        b.chain(chain)
        if entry.external_policy == Policy.CLUSTER:
            # Cluster endpoints may be on other nodes: masquerade so replies come back.
            b.rule(chain, f"jump {MARK_MASQ_CHAIN}")
            if has_cluster:
                b.rule(chain, f"goto {cluster}")
            return
        to_cluster = f"goto {cluster}" if has_cluster else "return"
        if self.pod_cidrs:
            b.rule(
                chain,
                f"{_cidr_match(self.family, self.pod_cidrs, False)} {to_cluster}",
                comment="short-circuit pod traffic",
            )
        b.rule(
            chain,
            f"fib saddr type local jump {MARK_MASQ_CHAIN}",
            comment="masquerade local traffic",
        )
        b.rule(chain, f"fib saddr type local {to_cluster}", comment="short-circuit local traffic")
        if has_local:
            b.rule(chain, f"goto {self.names.local}")

    def firewall(self) -> None:
        fw = self.entry.firewall
        assert fw is not None
        port = str(self.entry.port)
        for address in fw.addresses:
            self.b.element(FIREWALL_IPS, (str(address), self.proto, port))
            for net in fw.allowed:
                self.b.element(FIREWALL_ALLOW, (str(address), self.proto, port, str(net)))


def service_fragment(
    family: Family,
    entries: Iterable[ServicePortEntry],
    table: ServiceTable,
    slots: SlotBook,
    known: Iterable[Set | Map],
) -> Fragment:
    """One Service's ports of one family (slots assigned in `slots`)."""
    entries = list(entries)
    priority = (entries[0].name.namespace, entries[0].name.name) if entries else ()
    b = FragmentBuilder(family, priority).knows(known)
    for entry in entries:
        _PortRenderer(b, entry, table, slots).render()
    return b.build()


def fragment_id(service: ServiceName) -> str:
    return f"{SERVICE_FRAGMENT}{service.namespace}/{service.name}"


def families_of(table: ServiceTable, dual_stack: bool) -> tuple[Family, ...]:
    """IPv4 always; IPv6 when the cluster is dual-stack or a service port is IPv6."""
    v6 = dual_stack or any(c.version == 6 for c in table.service_cidrs)
    v6 = v6 or any(name.family == 6 for name in table.entries)
    return (Family.IP, Family.IP6) if v6 else (Family.IP,)


@dataclass
class _FamilyState:
    family: Family
    slots: SlotBook = field(default_factory=SlotBook)
    fragments: dict[str, Fragment] = field(default_factory=dict)
    chains_of: dict[str, tuple[str, ...]] = field(default_factory=dict)  # fid -> policy chains
    settings: tuple[object, ...] = ()
    table: DesiredTable | None = None


class ServicesRenderer:
    """Keeps the `netlet` tables of one node current from the services brain's tables.

    `full(table)` renders everything (keeping slots of Services it saw before);
    `update(diff)` re-renders only the Services the brain says changed. Both return
    the desired table per family.
    """

    def __init__(self, dual_stack: bool = False) -> None:
        self.dual_stack = dual_stack
        self._families: dict[Family, _FamilyState] = {}

    def tables(self) -> dict[Family, DesiredTable]:
        return {f: s.table for f, s in self._families.items() if s.table is not None}

    def full(self, table: ServiceTable) -> dict[Family, DesiredTable]:
        with paused_gc():
            return self._full(table)

    def _full(self, table: ServiceTable) -> dict[Family, DesiredTable]:
        families = families_of(table, self.dual_stack)
        for family in list(self._families):
            if family not in families:
                del self._families[family]
        for family in families:
            state = self._families.setdefault(family, _FamilyState(family))
            state.settings = table.settings
            fragments = {SKELETON: skeleton(family, table)}
            seen = set()
            for service in sorted(table.services.keys()):
                fid = fragment_id(service)
                seen.add(fid)
                entries = _entries(table, service, family)
                if entries:
                    fragments[fid] = self._render(state, fid, entries, table)
            for fid in set(state.chains_of) - seen:
                self._release(state, fid)
            state.fragments = fragments
            state.table = DesiredTable(
                family, TABLE, TABLE_COMMENT, fragments, table.settings, DEFERRALS
            )
        return self.tables()

    def update(self, change: ServiceTableDiff) -> dict[Family, DesiredTable]:
        table = change.table
        if change.full_sync or any(
            Family.of(e.name.family) not in self._families
            for svc in change.services
            for e in svc.new
        ):
            return self.full(table)
        with paused_gc():
            for family, state in self._families.items():
                fragments = dict(state.fragments)
                changed = set()
                for svc in change.services:
                    fid = fragment_id(svc.service)
                    changed.add(fid)
                    entries = _entries(table, svc.service, family)
                    if entries:
                        fragments[fid] = self._render(state, fid, entries, table)
                    else:
                        fragments.pop(fid, None)
                        self._release(state, fid)
                state.fragments = fragments
                assert state.table is not None
                state.table = state.table.derive(fragments, frozenset(changed))
        return self.tables()

    def _render(
        self, state: _FamilyState, fid: str, entries: list[ServicePortEntry], table: ServiceTable
    ) -> Fragment:
        frag = service_fragment(
            state.family, entries, table, state.slots, skeleton_sets(state.family)
        )
        chains = tuple(
            name for name in frag.chains if name.startswith((SERVICE_PREFIX, LOCAL_PREFIX))
        )
        for old in set(state.chains_of.get(fid, ())) - set(chains):
            state.slots.release(old)
        state.chains_of[fid] = chains
        return frag

    def _release(self, state: _FamilyState, fid: str) -> None:
        for chain in state.chains_of.pop(fid, ()):
            state.slots.release(chain)


def _entries(table: ServiceTable, service: ServiceName, family: Family) -> list[ServicePortEntry]:
    return [
        table.entries[key]
        for key in table.services.get(service, ())
        if key.family == family.version
    ]


def address_family(text: str) -> Family:
    return Family.of(ipaddress.ip_address(text).version)
