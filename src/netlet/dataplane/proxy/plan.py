"""Data-plane state attached to the gateway brain's backends: endpoints as socket
addresses, the round-robin cursor, and how to talk to them.

The brain's `Backend` values are immutable and shared by every rule that uses
them; the proxy needs a little mutable state per backend (which endpoint is
next). `Upstreams` keeps it beside the snapshot, keyed by the identity of the
brain's object, so a lookup costs one dict access and a reload (new snapshot,
new objects) starts afresh.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable

from netlet.gateway.table import Backend, BackendState

Endpoint = tuple[str, int]

# Backend appProtocol values meaning cleartext HTTP/2 (KEP-3726 standard names).
H2C_APP_PROTOCOLS = frozenset({"kubernetes.io/h2c", "h2c"})


class Upstream:
    """One brain `Backend` as the data plane uses it."""

    __slots__ = (
        "_next",
        "backend",
        "endpoints",
        "h2c",
        "labels",
        "name",
        "refused",
        "status",
        "unsupported",
    )

    def __init__(
        self, backend: Backend, grpc: bool = False, allow: Callable[[str], bool] | None = None
    ) -> None:
        self.backend = backend
        self.name = str(backend.key)
        endpoints = [(str(e.address), e.port) for e in backend.endpoints]
        self.refused = 0
        if allow is not None:
            kept = [e for e in endpoints if allow(e[0])]
            self.refused = len(endpoints) - len(kept)
            endpoints = kept
        self.endpoints: tuple[Endpoint, ...] = tuple(endpoints)
        self.labels = tuple(f"{host}:{port}" for host, port in endpoints)
        app = backend.app_protocol or ""
        # GRPCRoute backends speak HTTP/2; HTTPRoute backends when appProtocol says so.
        self.h2c = grpc or app in H2C_APP_PROTOCOLS
        if backend.state is BackendState.VALID and not self.endpoints:
            self.status: int | None = 503
        else:
            self.status = backend.status_code
        # BackendTLSPolicy asks for TLS to the backend, which this proxy does not
        # originate yet: refuse rather than send the request in clear text.
        self.unsupported = ""
        if backend.tls is not None and self.status is None:
            self.status = 503
            self.unsupported = (
                f"{self.name}: BackendTLSPolicy {backend.tls.policy} "
                "(TLS to backends) is not supported by the proxy"
            )
        self._next = random.randrange(len(self.endpoints)) if self.endpoints else 0

    def endpoint(self) -> Endpoint:
        return self.endpoints[self.pick()]

    def pick(self) -> int:
        """The index of the next endpoint (round robin)."""
        i = self._next
        self._next = (i + 1) % len(self.endpoints)
        return i

    def __repr__(self) -> str:
        return f"Upstream({self.name!r}, {list(self.endpoints)!r})"


class Upstreams:
    """`Upstream` per brain `Backend` object (and per gRPC-ness), made on first use.

    `allow` filters endpoint addresses: the loopback mode of `gateway serve` only
    lets traffic go to loopback backends (anything else would leave the machine
    through its real network); refused endpoints count as missing (503)."""

    __slots__ = ("_by_id", "allow")

    def __init__(self, allow: Callable[[str], bool] | None = None) -> None:
        self._by_id: dict[tuple[int, bool], Upstream] = {}
        self.allow = allow

    def get(self, backend: Backend, grpc: bool = False) -> Upstream:
        key = (id(backend), grpc)
        upstream = self._by_id.get(key)
        if upstream is None or upstream.backend is not backend:
            upstream = self._by_id[key] = Upstream(backend, grpc, self.allow)
        return upstream


def loopback_only(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback
