"""IP addresses and CIDR arithmetic, dual stack throughout.

`AddressSet` is an immutable set of addresses of both families stored as
sorted, disjoint integer intervals: union, intersection, difference and
membership are exact, and `cidrs()` gives back the minimal CIDR cover (what
nftables interval sets and policy explanations want).
"""

from __future__ import annotations

import bisect
import ipaddress
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_BITS = {4: 32, 6: 128}


def parse_ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def parse_cidr(text: str, *, strict: bool = False) -> IPNetwork:
    """A CIDR, or a bare address as a host route (/32 or /128)."""
    return ipaddress.ip_network(text, strict=strict)


def family_of(text: str) -> int:
    return ipaddress.ip_address(text.split("/", maxsplit=1)[0]).version


Interval = tuple[int, int]  # inclusive


def _merge(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    out: list[list[int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def _intersect(a: tuple[Interval, ...], b: tuple[Interval, ...]) -> tuple[Interval, ...]:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _subtract(a: tuple[Interval, ...], b: tuple[Interval, ...]) -> tuple[Interval, ...]:
    out: list[Interval] = []
    j = 0
    for lo, hi in a:
        while j < len(b) and b[j][1] < lo:
            j += 1
        k, cur = j, lo
        while k < len(b) and b[k][0] <= hi:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class AddressSet:
    v4: tuple[Interval, ...] = ()
    v6: tuple[Interval, ...] = ()

    @classmethod
    def of(cls, *items: str | IPNetwork | IPAddress) -> AddressSet:
        v4: list[Interval] = []
        v6: list[Interval] = []
        for item in items:
            net = (
                ipaddress.ip_network(item)
                if isinstance(item, ipaddress.IPv4Address | ipaddress.IPv6Address)
                else item
                if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network)
                else parse_cidr(item)
            )
            span = (int(net.network_address), int(net.broadcast_address))
            (v4 if net.version == 4 else v6).append(span)
        return cls(_merge(v4), _merge(v6))

    @classmethod
    def everything(cls) -> AddressSet:
        return cls(((0, 2**32 - 1),), ((0, 2**128 - 1),))

    def __bool__(self) -> bool:
        return bool(self.v4 or self.v6)

    def __or__(self, other: AddressSet) -> AddressSet:
        return AddressSet(_merge(self.v4 + other.v4), _merge(self.v6 + other.v6))

    def __and__(self, other: AddressSet) -> AddressSet:
        return AddressSet(_intersect(self.v4, other.v4), _intersect(self.v6, other.v6))

    def __sub__(self, other: AddressSet) -> AddressSet:
        return AddressSet(_subtract(self.v4, other.v4), _subtract(self.v6, other.v6))

    def __contains__(self, address: object) -> bool:
        if isinstance(address, str):
            address = ipaddress.ip_address(address)
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        spans = self.v4 if address.version == 4 else self.v6
        value = int(address)
        i = bisect.bisect_right(spans, (value, 2**129)) - 1
        return i >= 0 and spans[i][0] <= value <= spans[i][1]

    def cidrs(self) -> tuple[IPNetwork, ...]:
        """The minimal list of CIDRs covering exactly this set."""
        out: list[IPNetwork] = []
        for spans, cls in ((self.v4, ipaddress.IPv4Address), (self.v6, ipaddress.IPv6Address)):
            for lo, hi in spans:
                out.extend(ipaddress.summarize_address_range(cls(lo), cls(hi)))
        return tuple(out)

    def __str__(self) -> str:
        return ", ".join(str(c) for c in self.cidrs()) or "<none>"


def nth_subnet(parent: IPNetwork, prefix: int, index: int) -> IPNetwork:
    """The index-th subnet of `parent` with the given prefix length."""
    if prefix < parent.prefixlen:
        raise ValueError(f"/{prefix} is larger than {parent}")
    count = 2 ** (prefix - parent.prefixlen)
    if index >= count:
        raise ValueError(f"{parent} has only {count} /{prefix} subnets")
    base = int(parent.network_address) + index * 2 ** (_BITS[parent.version] - prefix)
    return (
        ipaddress.ip_network((base, prefix))
        if parent.version == 6
        else ipaddress.ip_network((ipaddress.IPv4Address(base), prefix))
    )


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (Python's str hash is salted)."""
    return zlib.crc32(text.encode())


class Allocator:
    """Deterministic address allocation inside one network.

    Each key hashes to a preferred slot and probes forward to the first free one,
    so an object keeps its address when unrelated objects come and go; addresses
    given in manifests are reserved first. The network and broadcast addresses (and
    the first usable one, conventionally the gateway) are never handed out.
    """

    def __init__(self, network: IPNetwork, *, reserve_first: int = 1) -> None:
        self.network = network
        self._first = int(network.network_address) + 1 + reserve_first
        last = int(network.broadcast_address) - (1 if network.version == 4 else 0)
        self._size = max(0, last - self._first + 1)
        self._used: set[int] = set()

    def reserve(self, address: IPAddress) -> bool:
        """Mark a given address used; False when it was already taken."""
        value = int(address)
        if value in self._used:
            return False
        self._used.add(value)
        return True

    def allocate(self, key: str) -> IPAddress:
        if len(self._used) >= self._size:
            raise ValueError(f"no free address left in {self.network}")
        offset = stable_hash(key) % self._size
        for step in range(self._size):
            value = self._first + (offset + step) % self._size
            if value not in self._used:
                self._used.add(value)
                return (
                    ipaddress.ip_address(value)
                    if self.network.version == 4
                    else (ipaddress.IPv6Address(value))
                )
        raise ValueError(f"no free address left in {self.network}")  # pragma: no cover
