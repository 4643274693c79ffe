"""Build the lab's skeleton with netlink: the fabric, the nodes, the external client.

Each function configures one namespace that the caller has just created (see
lab.py for the journal and rollback). Links are created *inside* lab namespaces
with the peer placed directly in the fabric namespace, so no link ever exists
in the machine's own namespace, not even for a moment.

- fabric: one bridge joining every node's uplink and the external client's;
- node: `eth0` with the node's InternalIPs, routes to the other nodes' podCIDRs
  and the service CIDRs, forwarding on (in this namespace only), IPv6 DAD off
  (addresses usable at once);
- external: `eth0` with the external address and routes to LoadBalancer IPs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from pathlib import Path

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from netlet.dataplane.lab.kernel import netlink, write_sysctl
from netlet.dataplane.lab.names import NODE_UPLINK, netns_path
from netlet.dataplane.lab.plan import Route

SCOPE_LINK = 253

BASE_SYSCTLS = {
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
}
NODE_SYSCTLS = {
    **BASE_SYSCTLS,
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    # REJECT answers with ICMP, which the kernel rate-limits per destination; a prober
    # sending many connections at once would see some REJECTs as timeouts (DROP).
    "net.ipv4.icmp_ratelimit": "0",
    "net.ipv6.icmp.ratelimit": "0",
}


def _index(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise LookupError(f"no link {name}")
    return int(found[0])


def _up(ipr: IPRoute, name: str) -> None:
    ipr.link("set", index=_index(ipr, name), state="up")


def setup_fabric(netns: str, bridge: str) -> None:
    write_sysctl(netns_path(netns), BASE_SYSCTLS)
    with netlink(netns_path(netns)) as ipr:
        _up(ipr, "lo")
        ipr.link("add", ifname=bridge, kind="bridge", br_stp_state=0, br_forward_delay=0)
        _up(ipr, bridge)


def drop_fabric_port(fabric_netns: str, port: str) -> None:
    """Delete a veth pair from the fabric's end (both ends go at once). Needed before
    re-creating a namespace's uplink: when a namespace is deleted the kernel removes
    its veth peer asynchronously, so the old fabric port may still hold the name."""
    if not os.path.exists(netns_path(fabric_netns)):
        return
    with netlink(netns_path(fabric_netns)) as ipr:
        found = ipr.link_lookup(ifname=port)
        if found:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=found[0])


def _uplink(netns: str, fabric_netns: str, fabric_port: str, bridge: str) -> None:
    """eth0 in `netns`, its peer `fabric_port` enslaved to the fabric bridge."""
    drop_fabric_port(fabric_netns, fabric_port)
    fabric_fd = os.open(netns_path(fabric_netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        with netlink(netns_path(netns)) as ipr:
            ipr.link(
                "add",
                ifname=NODE_UPLINK,
                kind="veth",
                peer={"ifname": fabric_port, "net_ns_fd": fabric_fd},
            )
    finally:
        os.close(fabric_fd)
    with netlink(netns_path(fabric_netns)) as ipr:
        ipr.link("set", index=_index(ipr, fabric_port), master=_index(ipr, bridge), state="up")


def _addresses_and_routes(
    netns: str, addresses: tuple[str, ...], routes: tuple[Route, ...]
) -> None:
    with netlink(netns_path(netns)) as ipr:
        _up(ipr, "lo")
        index = _index(ipr, NODE_UPLINK)
        for text in addresses:
            iface = ipaddress.ip_interface(text)
            ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        ipr.link("set", index=index, state="up")
        for route in routes:
            add_route(ipr, index, route)


def add_route(ipr: IPRoute, index: int, route: Route) -> None:
    net = ipaddress.ip_network(route.dst)
    kwargs: dict[str, object] = {"dst": str(net), "oif": index}
    if route.via is None:
        kwargs["scope"] = SCOPE_LINK
    else:
        kwargs["gateway"] = route.via
    try:
        ipr.route("add", **kwargs)
    except NetlinkError as exc:
        if exc.code != 17:  # EEXIST: a re-run
            raise


def _setup_host(
    sysctls: dict[str, str],
    netns: str,
    fabric_netns: str,
    fabric_port: str,
    bridge: str,
    addresses: tuple[str, ...],
    routes: tuple[Route, ...],
) -> None:
    write_sysctl(netns_path(netns), sysctls)
    _uplink(netns, fabric_netns, fabric_port, bridge)
    _addresses_and_routes(netns, addresses, routes)


def setup_node(
    netns: str,
    fabric_netns: str,
    fabric_port: str,
    bridge: str,
    addresses: tuple[str, ...],
    routes: tuple[Route, ...],
) -> None:
    """A node namespace on the fabric: it forwards (pods route through it)."""
    _setup_host(NODE_SYSCTLS, netns, fabric_netns, fabric_port, bridge, addresses, routes)


def setup_external(
    netns: str,
    fabric_netns: str,
    fabric_port: str,
    bridge: str,
    addresses: tuple[str, ...],
    routes: tuple[Route, ...],
) -> None:
    """The external client's namespace on the fabric: a plain host, no forwarding."""
    _setup_host(BASE_SYSCTLS, netns, fabric_netns, fabric_port, bridge, addresses, routes)


def sync_routes(netns: str, routes: tuple[Route, ...], old: tuple[Route, ...]) -> None:
    """Make a node's routes the planned ones after nodes or services changed."""
    with netlink(netns_path(netns)) as ipr:
        index = _index(ipr, NODE_UPLINK)
        for route in set(old) - set(routes):
            kwargs: dict[str, object] = {"dst": route.dst, "oif": index}
            if route.via:
                kwargs["gateway"] = route.via
            else:
                kwargs["scope"] = SCOPE_LINK  # on-link routes only match a delete by scope
            with contextlib.suppress(NetlinkError):
                ipr.route("del", **kwargs)
        for route in routes:
            add_route(ipr, index, route)


def link_names(netns: str | Path) -> list[str]:
    with netlink(netns) as ipr:
        return [str(link.get("ifname")) for link in ipr.get_links()]
