"""Gateway API kinds (gateway.networking.k8s.io), v1.6, every served version.

Models follow apis/v1 of the Gateway API; defaults are the CRD defaults
(path match PathPrefix "/", backendRef kind Service and weight 1, listener TLS
mode Terminate, allowedRoutes from Same) and validation follows the CRDs'
OpenAPI schema and CEL rules, with their messages.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from netlet.resources.base import LabelSelector, Model, Resource
from netlet.resources.validation import PortNumber, check_wildcard_or_subdomain

GROUP = "gateway.networking.k8s.io"

# GatewayClasses with this controllerName are netlet's; others are ignored.
NETLET_CONTROLLER_NAME = "netlet.dev/gateway-controller"

# Patterns and limits from the CRDs.
_SECTION_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_DURATION = re.compile(r"([0-9]{1,5}(h|m|s|ms)){1,4}")
_CONTROLLER_NAME = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"
)
_GROUP = re.compile(r"(|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)")
_KIND = re.compile(r"[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?")
_PROTOCOL = re.compile(
    r"(HTTP|HTTPS|TLS|TCP|UDP)|([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9]+)"
)
_GRPC_SERVICE = re.compile(r"(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*")
_GRPC_METHOD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_PATH_FORBIDDEN = ("//", "/./", "/../", "%2f", "%2F", "#")

MAX_LISTENERS = 64
MAX_PARENT_REFS = 32
MAX_HOSTNAMES = 16
MAX_RULES = 16
MAX_MATCHES = 64
MAX_TOTAL_MATCHES = 128
MAX_FILTERS = 16
MAX_BACKEND_REFS = 16
MAX_HEADER_MATCHES = 16


def _check(pattern: re.Pattern[str], value: str, what: str, max_len: int = 253) -> str:
    if len(value) > max_len:
        raise ValueError(f"{what} may not be more than {max_len} characters")
    if not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} should match '{pattern.pattern}'")
    return value


def parse_duration(value: str) -> float:
    """Gateway API Duration (GEP-2257) in seconds: '1h30m', '500ms', '0s'."""
    total = 0.0
    for number, unit in re.findall(r"([0-9]+)(ms|h|m|s)", value):
        total += int(number) * {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}[unit]
    return total


def _duration(value: str | None) -> str | None:
    if value is not None and not _DURATION.fullmatch(value):
        raise ValueError(f"{value!r} should match '^([0-9]{{1,5}}(h|m|s|ms)){{1,4}}$'")
    return value


def _hostname(value: str) -> str:
    problem = check_wildcard_or_subdomain(value)
    if problem:
        raise ValueError(problem)
    return value


# References ---------------------------------------------------------------------------


class ParentReference(Model):
    group: str = GROUP
    kind: str = "Gateway"
    namespace: str | None = None
    name: str
    section_name: str | None = None
    port: PortNumber | None = None

    @field_validator("section_name")
    @classmethod
    def _section(cls, value: str | None) -> str | None:
        return value if value is None else _check(_SECTION_NAME, value, "sectionName")


class BackendObjectReference(Model):
    group: str = ""
    kind: str = "Service"
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    port: PortNumber | None = None

    @model_validator(mode="after")
    def _port_for_service(self) -> BackendObjectReference:
        if self.group in ("", "core") and self.kind == "Service" and self.port is None:
            raise ValueError("Must have port for Service reference")
        return self


class SecretObjectReference(Model):
    group: str = ""
    kind: str = "Secret"
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None


class LocalObjectReference(Model):
    group: str
    kind: str
    name: str


# GatewayClass ------------------------------------------------------------------------


class ParametersReference(Model):
    group: str
    kind: str
    name: str
    namespace: str | None = None


class GatewayClassSpec(Model):
    controller_name: str
    parameters_ref: ParametersReference | None = None
    description: str | None = Field(default=None, max_length=64)

    @field_validator("controller_name")
    @classmethod
    def _controller(cls, value: str) -> str:
        return _check(_CONTROLLER_NAME, value, "controllerName")


class GatewayClass(Resource):
    KIND = "GatewayClass"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")
    NAMESPACED = False
    SHORT_NAMES = ("gc",)

    spec: GatewayClassSpec


# Gateway -----------------------------------------------------------------------------


class RouteGroupKind(Model):
    group: str = GROUP
    kind: str

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        return _check(_KIND, value, "kind", 63)


class RouteNamespaces(Model):
    from_: Literal["All", "Same", "Selector", "None"] = Field(default="Same", alias="from")
    selector: LabelSelector | None = None

    @model_validator(mode="after")
    def _selector(self) -> RouteNamespaces:
        if self.from_ == "Selector" and self.selector is None:
            raise ValueError("selector: Required value when from is Selector")
        return self


class AllowedRoutes(Model):
    namespaces: RouteNamespaces = Field(default_factory=RouteNamespaces)
    kinds: tuple[RouteGroupKind, ...] = Field(default=(), max_length=8)


class GatewayTLSConfig(Model):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificate_refs: tuple[SecretObjectReference, ...] = Field(default=(), max_length=64)
    options: dict[str, str] = Field(default_factory=dict)


class Listener(Model):
    name: str
    hostname: str | None = None
    port: PortNumber
    protocol: str
    tls: GatewayTLSConfig | None = None
    allowed_routes: AllowedRoutes = Field(default_factory=AllowedRoutes)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check(_SECTION_NAME, value, "name")

    @field_validator("hostname")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return value if value is None else _hostname(value)

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        return _check(_PROTOCOL, value, "protocol", 255)

    @model_validator(mode="after")
    def _cel(self) -> Listener:
        if self.protocol in ("HTTP", "TCP", "UDP") and self.tls is not None:
            raise ValueError("tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']")
        if self.protocol in ("HTTPS", "TLS") and self.tls is None:
            raise ValueError("tls mode must be set for protocol HTTPS/TLS")
        if self.protocol == "HTTPS" and self.tls is not None and self.tls.mode != "Terminate":
            raise ValueError("tls mode must be Terminate for protocol HTTPS")
        if self.protocol in ("TCP", "UDP") and self.hostname:
            raise ValueError("hostname must not be specified for protocols ['TCP', 'UDP']")
        if (
            self.tls is not None
            and self.tls.mode == "Terminate"
            and not self.tls.certificate_refs
            and not self.tls.options
        ):
            raise ValueError("certificateRefs or options must be specified when mode is Terminate")
        return self


def _unique_listeners(listeners: tuple[Listener, ...]) -> None:
    names = [lst.name for lst in listeners]
    if len(set(names)) != len(names):
        raise ValueError("listeners: Listener name must be unique within the Gateway")
    combos = [(lst.port, lst.protocol, lst.hostname or "") for lst in listeners]
    if len(set(combos)) != len(combos):
        raise ValueError(
            "listeners: Combination of port, protocol and hostname must be unique for each listener"
        )


class GatewayAddress(Model):
    type: str = "IPAddress"
    value: str = Field(min_length=1, max_length=253)


class AllowedListeners(Model):
    namespaces: RouteNamespaces = Field(default_factory=lambda: RouteNamespaces(from_="None"))


class GatewaySpec(Model):
    gateway_class_name: str = Field(min_length=1, max_length=253)
    listeners: tuple[Listener, ...] = Field(min_length=1, max_length=MAX_LISTENERS)
    addresses: tuple[GatewayAddress, ...] = Field(default=(), max_length=16)
    allowed_listeners: AllowedListeners | None = None
    infrastructure: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _cel(self) -> GatewaySpec:
        _unique_listeners(self.listeners)
        return self


class ListenerStatusModel(Model):
    name: str
    attached_routes: int = 0


class GatewayStatusAddress(Model):
    type: str = "IPAddress"
    value: str


class GatewayStatus(Model):
    addresses: tuple[GatewayStatusAddress, ...] = ()


class Gateway(Resource):
    KIND = "Gateway"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")
    SHORT_NAMES = ("gtw",)

    spec: GatewaySpec
    status: GatewayStatus = Field(default_factory=GatewayStatus)


class ListenerSetParentRef(Model):
    group: str = GROUP
    kind: str = "Gateway"
    name: str
    namespace: str | None = None


class ListenerSetSpec(Model):
    parent_ref: ListenerSetParentRef
    listeners: tuple[Listener, ...] = Field(min_length=1, max_length=MAX_LISTENERS)

    @model_validator(mode="after")
    def _cel(self) -> ListenerSetSpec:
        _unique_listeners(self.listeners)
        return self


class ListenerSet(Resource):
    KIND = "ListenerSet"
    GROUP = GROUP
    VERSIONS = ("v1",)
    SHORT_NAMES = ("lset",)

    spec: ListenerSetSpec


# Shared route pieces ------------------------------------------------------------------


class HTTPHeader(Model):
    name: str
    value: str = Field(max_length=4096)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check(_HEADER_NAME, value, "name", 256)


class HeaderModifier(Model):
    set: tuple[HTTPHeader, ...] = Field(default=(), max_length=16)
    add: tuple[HTTPHeader, ...] = Field(default=(), max_length=16)
    remove: tuple[str, ...] = Field(default=(), max_length=16)

    @model_validator(mode="after")
    def _unique(self) -> HeaderModifier:
        for field_name in ("set", "add"):
            names = [h.name.lower() for h in getattr(self, field_name)]
            if len(set(names)) != len(names):
                raise ValueError(f"{field_name}: header names must be unique (case-insensitive)")
        if len({n.lower() for n in self.remove}) != len(self.remove):
            raise ValueError("remove: header names must be unique (case-insensitive)")
        return self


class Fraction(Model):
    numerator: int = Field(ge=0)
    denominator: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _le(self) -> Fraction:
        if self.numerator > self.denominator:
            raise ValueError("numerator must be less than or equal to denominator")
        return self


class RequestMirror(Model):
    backend_ref: BackendObjectReference
    percent: int | None = Field(default=None, ge=0, le=100)
    fraction: Fraction | None = None

    @model_validator(mode="after")
    def _one(self) -> RequestMirror:
        if self.percent is not None and self.fraction is not None:
            raise ValueError(
                "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter"
            )
        return self


class PathModifier(Model):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: str | None = Field(default=None, max_length=1024)
    replace_prefix_match: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _cel(self) -> PathModifier:
        if self.type == "ReplaceFullPath":
            if self.replace_full_path is None:
                raise ValueError(
                    "replaceFullPath must be specified when type is set to 'ReplaceFullPath'"
                )
            if self.replace_prefix_match is not None:
                raise ValueError("type must be 'ReplacePrefixMatch' when replacePrefixMatch is set")
        else:
            if self.replace_prefix_match is None:
                raise ValueError(
                    "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'"
                )
            if self.replace_full_path is not None:
                raise ValueError("type must be 'ReplaceFullPath' when replaceFullPath is set")
        for value in (self.replace_full_path, self.replace_prefix_match):
            if value is not None and value and not value.startswith("/"):
                raise ValueError(f"path {value!r} must be an absolute path (start with '/')")
        return self


class RequestRedirect(Model):
    scheme: Literal["http", "https"] | None = None
    hostname: str | None = None
    path: PathModifier | None = None
    port: PortNumber | None = None
    status_code: Literal[301, 302, 303, 307, 308] = 302

    @field_validator("hostname")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("*"):
            raise ValueError("hostname may not be a wildcard")
        return value if value is None else _hostname(value)


class URLRewrite(Model):
    hostname: str | None = None
    path: PathModifier | None = None

    @field_validator("hostname")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("*"):
            raise ValueError("hostname may not be a wildcard")
        return value if value is None else _hostname(value)


class CORS(Model):
    allow_origins: tuple[str, ...] = Field(default=(), max_length=64)
    allow_credentials: bool | None = None
    allow_methods: tuple[str, ...] = Field(default=(), max_length=9)
    allow_headers: tuple[str, ...] = Field(default=(), max_length=64)
    expose_headers: tuple[str, ...] = Field(default=(), max_length=64)
    max_age: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _cel(self) -> CORS:
        if "*" in self.allow_methods and len(self.allow_methods) > 1:
            raise ValueError("AllowMethods cannot contain '*' alongside other methods")
        if "*" in self.allow_headers and len(self.allow_headers) > 1:
            raise ValueError("AllowHeaders cannot contain '*' alongside other methods")
        if "*" in self.allow_origins and len(self.allow_origins) > 1:
            raise ValueError("AllowOrigins cannot contain '*' alongside other origins")
        return self


FILTER_FIELDS = {
    "RequestHeaderModifier": "request_header_modifier",
    "ResponseHeaderModifier": "response_header_modifier",
    "RequestMirror": "request_mirror",
    "RequestRedirect": "request_redirect",
    "URLRewrite": "url_rewrite",
    "CORS": "cors",
    "ExtensionRef": "extension_ref",
    "ExternalAuth": "external_auth",
}


class HTTPRouteFilter(Model):
    type: Literal[
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestMirror",
        "RequestRedirect",
        "URLRewrite",
        "CORS",
        "ExtensionRef",
        "ExternalAuth",
    ]
    request_header_modifier: HeaderModifier | None = None
    response_header_modifier: HeaderModifier | None = None
    request_mirror: RequestMirror | None = None
    request_redirect: RequestRedirect | None = None
    url_rewrite: URLRewrite | None = Field(default=None, alias="urlRewrite")
    cors: CORS | None = None
    extension_ref: LocalObjectReference | None = None
    external_auth: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _cel(self) -> HTTPRouteFilter:
        _check_filter_union(self, self.type)
        return self


def _check_filter_union(model: Model, kind: str) -> None:
    """CEL: the field named by `type` must be set, and no other."""
    wanted = FILTER_FIELDS[kind]
    for type_name, field_name in FILTER_FIELDS.items():
        if field_name not in type(model).model_fields:
            continue
        alias = type(model).model_fields[field_name].alias or field_name
        present = getattr(model, field_name) is not None
        if field_name == wanted and not present:
            raise ValueError(f"filter.{alias} must be specified for {type_name} filter.type")
        if field_name != wanted and present:
            raise ValueError(f"filter.{alias} must be nil if the filter.type is not {type_name}")


class HTTPBackendRef(BackendObjectReference):
    weight: int = Field(default=1, ge=0, le=1000000)
    filters: tuple[HTTPRouteFilter, ...] = Field(default=(), max_length=MAX_FILTERS)


class PathMatch(Model):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = Field(default="/", max_length=1024)

    @model_validator(mode="after")
    def _cel(self) -> PathMatch:
        if self.type in ("Exact", "PathPrefix"):
            if not self.value.startswith("/"):
                raise ValueError(
                    "value must be an absolute path and start with '/' when type one of "
                    "['Exact', 'PathPrefix']"
                )
            for bad in _PATH_FORBIDDEN:
                if bad in self.value:
                    raise ValueError(
                        f"must not contain {bad!r} when type one of ['Exact', 'PathPrefix']"
                    )
            if self.value.endswith(("/..", "/.")):
                raise ValueError(
                    "must not end with '/..' or '/.' when type one of ['Exact', 'PathPrefix']"
                )
        else:
            _compile_regex(self.value)
        return self


def _compile_regex(value: str) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None


class HeaderMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: str
    value: str = Field(max_length=4096)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check(_HEADER_NAME, value, "name", 256)

    @model_validator(mode="after")
    def _regex(self) -> HeaderMatch:
        if self.type == "RegularExpression":
            _compile_regex(self.value)
        return self


def _unique_names(matches: tuple[HeaderMatch, ...], what: str) -> None:
    names = [m.name.lower() for m in matches]
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: name must be unique (case-insensitive)")


HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


class HTTPRouteMatch(Model):
    path: PathMatch = Field(default_factory=PathMatch)
    headers: tuple[HeaderMatch, ...] = Field(default=(), max_length=MAX_HEADER_MATCHES)
    query_params: tuple[HeaderMatch, ...] = Field(default=(), max_length=MAX_HEADER_MATCHES)
    method: HTTPMethod | None = None

    @model_validator(mode="after")
    def _unique(self) -> HTTPRouteMatch:
        _unique_names(self.headers, "headers")
        names = [q.name for q in self.query_params]  # query names are case-sensitive
        if len(set(names)) != len(names):
            raise ValueError("queryParams: name must be unique")
        return self


class HTTPRouteTimeouts(Model):
    request: str | None = None
    backend_request: str | None = None

    @field_validator("request", "backend_request")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        return _duration(value)

    @model_validator(mode="after")
    def _order(self) -> HTTPRouteTimeouts:
        if self.request and self.backend_request:
            request = parse_duration(self.request)
            if request and parse_duration(self.backend_request) > request:
                raise ValueError("backendRequest timeout cannot be longer than request timeout")
        return self


class HTTPRouteRetry(Model):
    codes: tuple[int, ...] = ()
    attempts: int | None = Field(default=None, ge=0)
    backoff: str | None = None

    @field_validator("codes")
    @classmethod
    def _codes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for code in value:
            if not 400 <= code <= 599:
                raise ValueError(f"retry code {code} must be between 400 and 599")
        return value

    @field_validator("backoff")
    @classmethod
    def _backoff(cls, value: str | None) -> str | None:
        return _duration(value)


class SessionPersistence(Model):
    session_name: str | None = None
    absolute_timeout: str | None = None
    idle_timeout: str | None = None
    type: Literal["Cookie", "Header"] = "Cookie"


class HTTPRouteRule(Model):
    name: str | None = None
    matches: tuple[HTTPRouteMatch, ...] = Field(
        default_factory=lambda: (HTTPRouteMatch(),), max_length=MAX_MATCHES
    )
    filters: tuple[HTTPRouteFilter, ...] = Field(default=(), max_length=MAX_FILTERS)
    backend_refs: tuple[HTTPBackendRef, ...] = Field(default=(), max_length=MAX_BACKEND_REFS)
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    session_persistence: SessionPersistence | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_matches(cls, data: Any) -> Any:
        # CRD default: matches: [{path: {type: PathPrefix, value: "/"}}]
        if isinstance(data, dict) and not data.get("matches"):
            data = {**data, "matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
        return data

    @model_validator(mode="after")
    def _cel(self) -> HTTPRouteRule:
        _check_rule_filters(self.filters, self.matches)
        for i, ref in enumerate(self.backend_refs):
            _check_rule_filters(ref.filters, self.matches, f"backendRefs[{i}].")
        if self.name is not None:
            _check(_SECTION_NAME, self.name, "name")
        return self


def _check_rule_filters(
    filters: tuple[HTTPRouteFilter, ...], matches: tuple[HTTPRouteMatch, ...], where: str = ""
) -> None:
    kinds = [f.type for f in filters]
    if "RequestRedirect" in kinds and "URLRewrite" in kinds:
        raise ValueError(
            f"{where}filters: May specify either httpRouteFilterRequestRedirect or "
            "httpRouteFilterRequestRewrite, but not both"
        )
    for unique in (
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestRedirect",
        "URLRewrite",
        "CORS",
    ):
        if kinds.count(unique) > 1:
            raise ValueError(f"{where}filters: {unique} filter cannot be repeated")
    for f in filters:
        path = None
        if f.request_redirect is not None:
            path = f.request_redirect.path
        if f.url_rewrite is not None:
            path = f.url_rewrite.path
        prefix_rewrite = path is not None and path.type == "ReplacePrefixMatch"
        if prefix_rewrite and (len(matches) != 1 or matches[0].path.type != "PathPrefix"):
            raise ValueError(
                f"{where}filters: When using {f.type} filter with path.replacePrefixMatch, "
                "exactly one PathPrefix match must be specified"
            )


def _check_hostnames(value: tuple[str, ...]) -> tuple[str, ...]:
    for host in value:
        _hostname(host)
    return value


class HTTPRouteSpec(Model):
    parent_refs: tuple[ParentReference, ...] = Field(default=(), max_length=MAX_PARENT_REFS)
    hostnames: tuple[str, ...] = Field(default=(), max_length=MAX_HOSTNAMES)
    rules: tuple[HTTPRouteRule, ...] = Field(
        default_factory=lambda: (HTTPRouteRule(),), max_length=MAX_RULES
    )

    @field_validator("hostnames")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_hostnames(value)

    @model_validator(mode="before")
    @classmethod
    def _default_rule(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("rules"):
            data = {**data, "rules": [{}]}
        return data

    @model_validator(mode="after")
    def _cel(self) -> HTTPRouteSpec:
        total = sum(len(rule.matches) for rule in self.rules)
        if total > MAX_TOTAL_MATCHES:
            raise ValueError(
                f"rules: While 16 rules and 64 matches per rule are allowed, the total number "
                f"of matches across all rules in a route must be less than {MAX_TOTAL_MATCHES + 1}"
            )
        names = [rule.name for rule in self.rules if rule.name]
        if len(set(names)) != len(names):
            raise ValueError("rules: Rule name must be unique within the route")
        return self


class HTTPRoute(Resource):
    KIND = "HTTPRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")

    spec: HTTPRouteSpec = Field(default_factory=HTTPRouteSpec)


# GRPCRoute ----------------------------------------------------------------------------


class GRPCMethodMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    service: str | None = Field(default=None, max_length=1024)
    method: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _cel(self) -> GRPCMethodMatch:
        if self.service is None and self.method is None:
            raise ValueError("One or both of 'service' or 'method' must be specified")
        if self.type == "Exact":
            if self.service is not None and not _GRPC_SERVICE.fullmatch(self.service):
                raise ValueError(
                    f"service must only contain valid characters (matching {_GRPC_SERVICE.pattern})"
                )
            if self.method is not None and not _GRPC_METHOD.fullmatch(self.method):
                raise ValueError(
                    f"method must only contain valid characters (matching {_GRPC_METHOD.pattern})"
                )
        else:
            for value in (self.service, self.method):
                if value is not None:
                    _compile_regex(value)
        return self


class GRPCRouteMatch(Model):
    method: GRPCMethodMatch | None = None
    headers: tuple[HeaderMatch, ...] = Field(default=(), max_length=MAX_HEADER_MATCHES)

    @model_validator(mode="after")
    def _unique(self) -> GRPCRouteMatch:
        _unique_names(self.headers, "headers")
        return self


class GRPCRouteFilter(Model):
    type: Literal[
        "RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "ExtensionRef"
    ]
    request_header_modifier: HeaderModifier | None = None
    response_header_modifier: HeaderModifier | None = None
    request_mirror: RequestMirror | None = None
    extension_ref: LocalObjectReference | None = None

    @model_validator(mode="after")
    def _cel(self) -> GRPCRouteFilter:
        _check_filter_union(self, self.type)
        return self


class GRPCBackendRef(BackendObjectReference):
    weight: int = Field(default=1, ge=0, le=1000000)
    filters: tuple[GRPCRouteFilter, ...] = Field(default=(), max_length=MAX_FILTERS)


class GRPCRouteRule(Model):
    name: str | None = None
    matches: tuple[GRPCRouteMatch, ...] = Field(default=(), max_length=8)
    filters: tuple[GRPCRouteFilter, ...] = Field(default=(), max_length=MAX_FILTERS)
    backend_refs: tuple[GRPCBackendRef, ...] = Field(default=(), max_length=MAX_BACKEND_REFS)
    session_persistence: SessionPersistence | None = None

    @model_validator(mode="after")
    def _cel(self) -> GRPCRouteRule:
        kinds = [f.type for f in self.filters]
        for unique in ("RequestHeaderModifier", "ResponseHeaderModifier"):
            if kinds.count(unique) > 1:
                raise ValueError(f"filters: {unique} filter cannot be repeated")
        return self


class GRPCRouteSpec(Model):
    parent_refs: tuple[ParentReference, ...] = Field(default=(), max_length=MAX_PARENT_REFS)
    hostnames: tuple[str, ...] = Field(default=(), max_length=MAX_HOSTNAMES)
    rules: tuple[GRPCRouteRule, ...] = Field(default=(), max_length=MAX_RULES)

    @field_validator("hostnames")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_hostnames(value)

    @model_validator(mode="after")
    def _cel(self) -> GRPCRouteSpec:
        total = sum(len(rule.matches) for rule in self.rules)
        if total > MAX_TOTAL_MATCHES:
            raise ValueError(
                "rules: While 16 rules and 64 matches per rule are allowed, the total number of "
                f"matches across all rules in a route must be less than {MAX_TOTAL_MATCHES + 1}"
            )
        return self


class GRPCRoute(Resource):
    KIND = "GRPCRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha2")

    spec: GRPCRouteSpec = Field(default_factory=GRPCRouteSpec)


# TLSRoute, TCPRoute, UDPRoute ----------------------------------------------------------


class L4BackendRef(BackendObjectReference):
    weight: int = Field(default=1, ge=0, le=1000000)


class L4RouteRule(Model):
    name: str | None = None
    backend_refs: tuple[L4BackendRef, ...] = Field(min_length=1, max_length=MAX_BACKEND_REFS)


class TLSRouteSpec(Model):
    parent_refs: tuple[ParentReference, ...] = Field(default=(), max_length=MAX_PARENT_REFS)
    hostnames: tuple[str, ...] = Field(default=(), max_length=MAX_HOSTNAMES)
    rules: tuple[L4RouteRule, ...] = Field(min_length=1, max_length=MAX_RULES)

    @field_validator("hostnames")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_hostnames(value)


class TLSRoute(Resource):
    KIND = "TLSRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha3", "v1alpha2")

    spec: TLSRouteSpec


class L4RouteSpec(Model):
    parent_refs: tuple[ParentReference, ...] = Field(default=(), max_length=MAX_PARENT_REFS)
    rules: tuple[L4RouteRule, ...] = Field(min_length=1, max_length=MAX_RULES)


class TCPRoute(Resource):
    KIND = "TCPRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha2")

    spec: L4RouteSpec


class UDPRoute(Resource):
    KIND = "UDPRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha2")

    spec: L4RouteSpec


# ReferenceGrant, BackendTLSPolicy ------------------------------------------------------


class ReferenceGrantFrom(Model):
    group: str
    kind: str
    namespace: str


class ReferenceGrantTo(Model):
    group: str
    kind: str
    name: str | None = None


class ReferenceGrantSpec(Model):
    from_: tuple[ReferenceGrantFrom, ...] = Field(alias="from", min_length=1, max_length=16)
    to: tuple[ReferenceGrantTo, ...] = Field(min_length=1, max_length=16)


class ReferenceGrant(Resource):
    KIND = "ReferenceGrant"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")
    SHORT_NAMES = ("refgrant",)

    spec: ReferenceGrantSpec


class PolicyTargetReference(Model):
    group: str = ""
    kind: str = "Service"
    name: str
    section_name: str | None = None


class SubjectAltName(Model):
    type: Literal["Hostname", "URI"]
    hostname: str | None = None
    uri: str | None = None

    @model_validator(mode="after")
    def _cel(self) -> SubjectAltName:
        if self.type == "Hostname" and not self.hostname:
            raise ValueError(
                "SubjectAltName element must contain Hostname, if Type is set to Hostname"
            )
        if self.type == "URI" and not self.uri:
            raise ValueError("SubjectAltName element must contain URI, if Type is set to URI")
        return self


class BackendTLSValidation(Model):
    ca_certificate_refs: tuple[LocalObjectReference, ...] = Field(default=(), max_length=8)
    well_known_ca_certificates: Literal["System"] | None = Field(
        default=None, alias="wellKnownCACertificates"
    )
    hostname: str
    subject_alt_names: tuple[SubjectAltName, ...] = Field(default=(), max_length=5)

    @model_validator(mode="after")
    def _cel(self) -> BackendTLSValidation:
        if bool(self.ca_certificate_refs) == (self.well_known_ca_certificates is not None):
            raise ValueError(
                "must specify either CACertificateRefs or WellKnownCACertificates, not both"
            )
        _hostname(self.hostname)
        return self


class BackendTLSPolicySpec(Model):
    target_refs: tuple[PolicyTargetReference, ...] = Field(min_length=1, max_length=16)
    validation: BackendTLSValidation
    options: dict[str, str] = Field(default_factory=dict)


class BackendTLSPolicy(Resource):
    KIND = "BackendTLSPolicy"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha3")
    SHORT_NAMES = ("btlspolicy",)

    spec: BackendTLSPolicySpec


GATEWAY_KINDS: tuple[type[Resource], ...] = (
    GatewayClass,
    Gateway,
    ListenerSet,
    HTTPRoute,
    GRPCRoute,
    TLSRoute,
    TCPRoute,
    UDPRoute,
    ReferenceGrant,
    BackendTLSPolicy,
)
