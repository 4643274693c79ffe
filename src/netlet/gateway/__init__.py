"""The Gateway API brain: attachment, status, route tables and request matching.

Entry points:

- `build_world(state)` (`netlet.gateway.build`): statuses of every managed object,
  a `GatewayProgram` per Programmed Gateway and the GAMMA `MeshProgram`.
- `netlet.gateway.table`: the immutable route tables (the proxy's contract).
- `netlet.gateway.match`: `match_http`, `match_tls`, `match_tcp`, `match_udp`,
  `match_mesh`, `pick_backend` — the one implementation of request matching.
- `netlet.gateway.explain`: why a request went where it went.
- `netlet.gateway.findings`: problems for `netlet check`.

Pure: no I/O, no clock, no randomness (callers pass random numbers and times).
"""

from netlet.gateway.build import GatewayWorld, build_programs, build_world
from netlet.gateway.match import (
    HTTPDecision,
    L4Decision,
    match_http,
    match_tcp,
    match_tls,
    match_udp,
)
from netlet.gateway.table import GatewayProgram, Request

__all__ = [
    "GatewayProgram",
    "GatewayWorld",
    "HTTPDecision",
    "L4Decision",
    "Request",
    "build_programs",
    "build_world",
    "match_http",
    "match_tcp",
    "match_tls",
    "match_udp",
]
