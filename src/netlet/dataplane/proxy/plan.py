"""Data-plane state attached to the gateway brain's backends: endpoints as socket
addresses, the round-robin cursor, and how to talk to them (HTTP/1.1 or h2c,
TLS from a BackendTLSPolicy).

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

from netlet.dataplane.proxy import tls as tlsmod
from netlet.gateway.table import Backend, BackendState, BackendTLS, Certificate

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
        "refusal",
        "refused",
        "status",
        "tls",
    )

    def __init__(
        self,
        backend: Backend,
        grpc: bool = False,
        allow: Callable[[str], bool] | None = None,
        origin: Callable[[BackendTLS], tlsmod.OriginTLS] | None = None,
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
        # BackendTLSPolicy: TLS to every endpoint. A policy without a usable CA
        # (NoValidCACertificate) must fail its connections with a 5xx: answered here,
        # never sent in clear text.
        self.tls: tlsmod.OriginTLS | None = None
        self.refusal = ""
        policy = backend.tls
        if policy is not None and self.status is None:
            if not policy.valid:
                self.status = 503
                self.refusal = (
                    f"{self.name}: BackendTLSPolicy {policy.policy} has no valid CA "
                    "certificate (NoValidCACertificate)"
                )
            else:
                self.tls = (origin or origin_tls)(policy)
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


def origin_tls(policy: BackendTLS, client: Certificate | None = None) -> tlsmod.OriginTLS:
    """The data plane's TLS settings for a (valid) BackendTLSPolicy."""
    return tlsmod.OriginTLS(
        policy.policy,
        policy.hostname,
        ca_pem=policy.ca_bundle,
        system=policy.well_known == "System",
        subject_alt_names=policy.subject_alt_names,
        client_certificate=(
            tlsmod.Certificate(client.cert_pem, client.key_pem) if client is not None else None
        ),
    )


class Upstreams:
    """`Upstream` per brain `Backend` object (and per gRPC-ness), made on first use,
    for one Gateway (whose client certificate goes to backends with a BackendTLSPolicy).

    `allow` filters endpoint addresses: the loopback mode of `gateway serve` only
    lets traffic go to loopback backends (anything else would leave the machine
    through its real network); refused endpoints count as missing (503)."""

    __slots__ = ("_by_id", "_origins", "allow", "client_certificate")

    def __init__(
        self,
        allow: Callable[[str], bool] | None = None,
        client_certificate: Certificate | None = None,
    ) -> None:
        self._by_id: dict[tuple[int, bool], Upstream] = {}
        # One OriginTLS per policy object: backends sharing a policy share a pool.
        self._origins: dict[int, tuple[BackendTLS, tlsmod.OriginTLS]] = {}
        self.allow = allow
        self.client_certificate = client_certificate

    def get(self, backend: Backend, grpc: bool = False) -> Upstream:
        key = (id(backend), grpc)
        upstream = self._by_id.get(key)
        if upstream is None or upstream.backend is not backend:
            upstream = self._by_id[key] = Upstream(backend, grpc, self.allow, self._origin)
        return upstream

    def _origin(self, policy: BackendTLS) -> tlsmod.OriginTLS:
        known = self._origins.get(id(policy))
        if known is None or known[0] is not policy:
            known = self._origins[id(policy)] = (
                policy,
                origin_tls(policy, self.client_certificate),
            )
        return known[1]


def loopback_only(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback
