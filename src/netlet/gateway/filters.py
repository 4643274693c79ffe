"""What HTTPRoute filters do to a request and its response, as pure functions.

Semantics from apis/v1 httproute_types.go:

- HTTPHeaderFilter: `set` overwrites a header, `add` appends a value (another
  field line, equivalent to comma-joining), `remove` drops every value; names
  compare case-insensitively.
- HTTPPathModifier ReplacePrefixMatch replaces the matched PathPrefix element-wise
  (the table in the API doc: '/foo/bar' with prefix '/foo' and '/xyz' -> '/xyz/bar',
  '' -> '/bar', '/foo/' with '/' -> '/'); ReplaceFullPath replaces the whole path.
  The query string is kept.
- HTTPRequestRedirectFilter: the Location uses the filter's scheme, hostname,
  path and port, else the request's; without a port, a set scheme implies its
  well-known port (http 80, https 443) and no scheme means the listener port;
  ports 80 (http) and 443 (https) are not written.
- HTTPURLRewriteFilter: replaces the Host and/or the path before forwarding.
- HTTPCORSFilter (GEP-1767): answers preflights itself and adds
  Access-Control-* headers to allowed cross-origin responses.

Filters run in the order they are listed (HTTPRouteRule.Filters: "implementations
SHOULD implement filters in the order they are specified").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from netlet.gateway.hostnames import split_host_port
from netlet.gateway.table import (
    Cors,
    Filter,
    FilterEffects,
    HeaderOps,
    Headers,
    Mirror,
    PathModifier,
    Redirect,
    Request,
    Rewrite,
    filter_effects,
)

WELL_KNOWN_PORTS = {"http": 80, "https": 443}


def apply_header_ops(headers: Headers, ops: HeaderOps) -> Headers:
    """Apply one header modifier: set, then add, then remove (each name has one action)."""
    out = list(headers)
    for name, value in ops.set:
        lower = name.lower()
        out = [(k, v) for k, v in out if k.lower() != lower]
        out.append((name, value))
    for name, value in ops.add:
        out.append((name, value))
    if ops.remove:
        drop = {name.lower() for name in ops.remove}
        out = [(k, v) for k, v in out if k.lower() not in drop]
    return tuple(out)


def replace_prefix(path: str, prefix: str, replacement: str) -> str:
    """ReplacePrefixMatch: `prefix` is the matched PathPrefix without a trailing '/'."""
    base = "" if prefix == "/" else prefix
    rest = path[len(base) :]
    result = replacement.rstrip("/") + rest
    if not result.startswith("/"):
        result = "/" + result
    return result


def modified_path(path: str, modifier: PathModifier, matched_prefix: str | None) -> str:
    if modifier.type == "ReplaceFullPath":
        return modifier.value or "/"
    # CRD validation guarantees a single PathPrefix match for ReplacePrefixMatch.
    return replace_prefix(path, matched_prefix or "/", modifier.value)


def redirect_location(
    request: Request,
    redirect: Redirect,
    matched_prefix: str | None,
    listener_port: int,
) -> str:
    scheme = redirect.scheme or request.scheme
    host = redirect.hostname or split_host_port(request.host)[0]
    if redirect.port is not None:
        port = redirect.port
    elif redirect.scheme is not None:
        port = WELL_KNOWN_PORTS.get(redirect.scheme, listener_port)
    else:
        port = listener_port
    path = request.path
    if redirect.path is not None:
        path = modified_path(path, redirect.path, matched_prefix)
    authority = f"[{host}]" if ":" in host else host
    if WELL_KNOWN_PORTS.get(scheme) != port:
        authority += f":{port}"
    query = f"?{request.query}" if request.query else ""
    return f"{scheme}://{authority}{path}{query}"


@dataclass(frozen=True, slots=True)
class FilterOutcome:
    """The effect of a list of filters on one request."""

    request: Request  # as the backend will see it
    redirect: Redirect | None = None
    location: str | None = None
    mirrors: tuple[Mirror, ...] = ()
    response_ops: tuple[HeaderOps, ...] = ()
    cors: Cors | None = None


def apply_request_filters(
    request: Request,
    filters: tuple[Filter, ...],
    matched_prefix: str | None,
    listener_port: int,
    effects: FilterEffects | None = None,
) -> FilterOutcome:
    """Run filters in order. A redirect ends processing: the client gets the Location.
    `effects` is `filter_effects(filters)` when the caller has it already."""
    if effects is None:
        effects = filter_effects(filters)
    for item in filters:
        if isinstance(item, HeaderOps):
            if item.kind == "RequestHeaderModifier":
                request = replace(request, headers=apply_header_ops(request.headers, item))
        elif isinstance(item, Redirect):
            location = redirect_location(request, item, matched_prefix, listener_port)
            return FilterOutcome(
                request, item, location, effects.mirrors, effects.response_ops, effects.cors
            )
        elif isinstance(item, Rewrite):
            if item.path is not None:
                request = replace(
                    request, path=modified_path(request.path, item.path, matched_prefix)
                )
            if item.hostname is not None:
                request = replace(request, host=item.hostname)
    return FilterOutcome(request, None, None, effects.mirrors, effects.response_ops, effects.cors)


def apply_response_ops(headers: Headers, ops: tuple[HeaderOps, ...]) -> Headers:
    for item in ops:
        headers = apply_header_ops(headers, item)
    return headers


# CORS ----------------------------------------------------------------------------------


def _origin_parts(origin: str) -> tuple[str, str, int] | None:
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme not in WELL_KNOWN_PORTS:
        return None
    host, port = split_host_port(rest.rstrip("/"))
    return scheme, host.lower(), port or WELL_KNOWN_PORTS[scheme]


def origin_allowed(cors: Cors, origin: str) -> bool:
    """HTTPCORSFilter.AllowOrigins: '*' allows all; a '*' in the host is a greedy
    match to the left; missing ports default to 80 (http) and 443 (https)."""
    if "*" in cors.allow_origins:
        return True
    wanted = _origin_parts(origin)
    if wanted is None:
        return False
    for allowed in cors.allow_origins:
        parts = _origin_parts(allowed)
        if parts is None or parts[0] != wanted[0] or parts[2] != wanted[2]:
            continue
        pattern = parts[1]
        if pattern == wanted[1]:
            return True
        if pattern.startswith("*") and wanted[1].endswith(pattern[1:]):
            return True
    return False


def is_preflight(request: Request) -> bool:
    return (
        request.method == "OPTIONS"
        and request.header("origin") is not None
        and request.header("access-control-request-method") is not None
    )


def cors_preflight_headers(cors: Cors, request: Request) -> Headers:
    """Headers of the gateway's own answer to a preflight (empty when not allowed)."""
    origin = request.header("origin") or ""
    if not origin_allowed(cors, origin):
        return ()
    headers: list[tuple[str, str]] = [("Access-Control-Allow-Origin", origin)]
    if cors.allow_credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    requested_method = request.header("access-control-request-method")
    if cors.allow_methods:
        if "*" in cors.allow_methods:
            value = requested_method if cors.allow_credentials else "*"
        else:
            value = ",".join(cors.allow_methods)
        if value:
            headers.append(("Access-Control-Allow-Methods", value))
    requested_headers = request.header("access-control-request-headers")
    if cors.allow_headers:
        if "*" in cors.allow_headers:
            value = requested_headers if cors.allow_credentials else "*"
        else:
            value = ",".join(cors.allow_headers)
        if value:
            headers.append(("Access-Control-Allow-Headers", value))
    headers.append(("Access-Control-Max-Age", str(cors.max_age)))
    return tuple(headers)


def cors_response_headers(cors: Cors, request: Request) -> Headers:
    """Headers added to the backend's response for an allowed cross-origin request."""
    origin = request.header("origin")
    if origin is None or not origin_allowed(cors, origin):
        return ()
    headers: list[tuple[str, str]] = [("Access-Control-Allow-Origin", origin)]
    if cors.allow_credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    expose = [h for h in cors.expose_headers if not (h == "*" and cors.allow_credentials)]
    if expose:
        headers.append(("Access-Control-Expose-Headers", ",".join(expose)))
    return tuple(headers)
