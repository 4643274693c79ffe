"""Hostname matching for listeners, routes and requests (Gateway API `Hostname`).

Rules (apis/v1 Listener.Hostname and HTTPRouteSpec.Hostnames):

- A hostname is precise (`foo.example.com`) or a wildcard (`*.example.com`); a
  wildcard is a suffix match over one or more labels: `*.example.com` matches
  `a.example.com` and `a.b.example.com`, never `example.com`.
- Listener and route hostnames must intersect for a route to attach; route
  hostnames that do not intersect the listener's are ignored on that listener.
- Listeners distinct only by hostname are tried most specific first: precise,
  then wildcards with more labels, then no hostname.

Everything here is a pure function over lower-cased strings.
"""

from __future__ import annotations

import functools


# Cached: every routed request asks, with few distinct hosts (a pure function).
@functools.lru_cache(maxsize=1024)
def normalize_host(host: str) -> str:
    """The Host header or SNI as matched: no port, no trailing dot, lower case."""
    value = host.strip()
    if value.startswith("["):  # [v6]:port
        end = value.find("]")
        value = value[1:end] if end > 0 else value
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".").lower()


def split_host_port(authority: str) -> tuple[str, int | None]:
    """'example.com:8080' -> ('example.com', 8080); '[::1]:80' -> ('::1', 80)."""
    if authority.startswith("["):
        end = authority.find("]")
        host = authority[1:end]
        rest = authority[end + 1 :]
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
        return host, port
    if authority.count(":") == 1:
        host, _, port_text = authority.partition(":")
        return host, int(port_text) if port_text.isdigit() else None
    return authority, None


def is_wildcard(hostname: str) -> bool:
    return hostname.startswith("*.")


def host_matches(pattern: str, host: str) -> bool:
    """Does a listener/route hostname match a concrete request host?"""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return pattern == host


def hostnames_intersect(a: str, b: str) -> bool:
    """Could some request host match both hostnames?"""
    if is_wildcard(a) and is_wildcard(b):
        return a.endswith(b[1:]) or b.endswith(a[1:])
    if is_wildcard(a):
        return host_matches(a, b)
    if is_wildcard(b):
        return host_matches(b, a)
    return a == b


def route_hostnames_on_listener(
    listener_hostname: str | None, route_hostnames: tuple[str, ...]
) -> tuple[str, ...] | None:
    """The route hostnames that apply on a listener: () means every host the listener
    accepts, None means no intersection (the route cannot attach there)."""
    if not route_hostnames:
        return ()
    if not listener_hostname:
        return route_hostnames
    kept = tuple(h for h in route_hostnames if hostnames_intersect(listener_hostname, h))
    return kept or None


def wildcard_candidates(host: str) -> list[str]:
    """Wildcards that match `host`, most specific first:
    'a.b.example.com' -> ['*.b.example.com', '*.example.com', '*.com']."""
    out = []
    dot = host.find(".")
    while dot != -1 and dot < len(host) - 1:
        out.append("*" + host[dot:])
        dot = host.find(".", dot + 1)
    return out


def listener_specificity(hostname: str | None) -> tuple[int, int, int]:
    """Sort key: precise hostnames, then wildcards with more labels, then none."""
    if not hostname:
        return (2, 0, 0)
    if is_wildcard(hostname):
        return (1, -hostname.count("."), -len(hostname))
    return (0, 0, -len(hostname))


def route_host_precedence(route_hostnames: tuple[str, ...], host: str) -> tuple[int, int]:
    """HTTPRoute precedence across routes (HTTPRouteSpec.Hostnames): the number of
    characters in the longest matching precise hostname, then in the longest matching
    hostname. Bigger wins; a route without hostnames scores (0, 0)."""
    precise = 0
    any_match = 0
    for name in route_hostnames:
        if host_matches(name, host):
            if not is_wildcard(name):
                precise = max(precise, len(name))
            any_match = max(any_match, len(name))
    return precise, any_match
