"""The proxy's limits and timeouts: one frozen value shared by every protocol.

Defaults are conservative and close to common proxies (Envoy, nginx): heads of
at most 16 KiB (431 past it, 414 for a URL past 8 KiB), 100 headers, 100
concurrent HTTP/2 streams, a slow client must send its head within 10 s and
keep its body moving (30 s between chunks); idle keep-alive connections close
after 60 s. Every buffer is bounded, so memory stays bounded under load.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 16 * 1024
    max_url_bytes: int = 8 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    body_timeout: float = 30.0
    send_timeout: float = 30.0
    max_streams: int = 100
    max_pipeline: int = 16
    connect_timeout: float = 5.0
    # Default per-try time to a backend's response head when the route sets none.
    upstream_timeout: float = 60.0
    upstream_idle_timeout: float = 30.0
    max_idle_per_backend: int = 64
    # A request body kept for replay (retries, mirrors) is at most this big.
    max_replay_body: int = 1024 * 1024
    max_mirrors_in_flight: int = 128
    tcp_idle_timeout: float = 300.0
    udp_session_timeout: float = 30.0
    max_udp_sessions: int = 4096
    # How long a reload or shutdown lets requests on the old table finish.
    drain_timeout: float = 10.0
    body_high_water: int = 256 * 1024
