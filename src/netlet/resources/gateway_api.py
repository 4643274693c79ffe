"""Gateway API kinds (gateway.networking.k8s.io), v1.6, every served version.

Models follow `apis/v1` of kubernetes-sigs/gateway-api (v1.6): field names,
CRD defaults (path match PathPrefix "/", backendRef group "" kind Service
weight 1, listener TLS mode Terminate, allowedRoutes from Same,
allowedListeners from None, redirect status 302, CORS maxAge 5) and the
CRDs' OpenAPI patterns and CEL rules, with upstream's messages. Where the
CRD leaves a check to the implementation, the rules of upstream's
`apis/v1/validation` package are used (one action per header name, no
header matched twice in a match).

Served versions (v1.6 experimental channel): GatewayClass, Gateway, HTTPRoute
v1 and v1beta1; GRPCRoute, ListenerSet v1; TLSRoute v1, v1alpha3, v1alpha2;
TCPRoute and UDPRoute v1 (GA in v1.6) and v1alpha2 (deprecated); ReferenceGrant
v1 and v1beta1; BackendTLSPolicy v1 and v1alpha3. Schemas that differ between
versions (TLSRoute hostnames and rule counts, L4 rule counts) are checked by
the object's apiVersion.

Validation belongs here; semantics (attachment, status, route tables) live in
`netlet.gateway`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictInt, field_validator, model_validator

from netlet.resources.base import LabelSelector, Model, Resource
from netlet.resources.validation import PortNumber

GROUP = "gateway.networking.k8s.io"

# GatewayClasses with this controllerName are netlet's; others are ignored.
NETLET_CONTROLLER_NAME = "netlet.dev/gateway-controller"

# OpenAPI patterns from the CRDs (shared_types.go, gateway_types.go, httproute_types.go).
HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
PRECISE_HOSTNAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECTION_NAME_PATTERN = PRECISE_HOSTNAME_PATTERN
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
GROUP_PATTERN = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
KIND_PATTERN = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"
CONTROLLER_NAME_PATTERN = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$"
)
PROTOCOL_PATTERN = (
    r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
    r"|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$"
)
ADDRESS_TYPE_PATTERN = (
    r"^Hostname|IPAddress|NamedAddress|[a-z0-9]([-a-z0-9]*[a-z0-9])?"
    r"(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$"
)
DURATION_PATTERN = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
PATH_CHARACTERS_PATTERN = r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$"
ANNOTATION_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
GRPC_SERVICE_PATTERN = r"^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$"
GRPC_METHOD_PATTERN = r"^[A-Za-z_][A-Za-z_0-9]*$"
ABSOLUTE_URI_PATTERN = r"^(([^:/?#]+):)(//([^/?#]*))([^?#]*)(\?([^#]*))?(#(.*))?"

_COMPILED: dict[str, re.Pattern[str]] = {}

MAX_LISTENERS = 64
MAX_PARENT_REFS = 32
MAX_HOSTNAMES = 16
MAX_RULES = 16
MAX_MATCHES = 64
MAX_TOTAL_MATCHES = 128
MAX_FILTERS = 16
MAX_BACKEND_REFS = 16
MAX_HEADER_MATCHES = 16
MAX_TLSROUTE_HOSTNAMES = 1024  # v1; v1alpha2/v1alpha3 allow 16

_PATH_FORBIDDEN = ("//", "/./", "/../", "%2f", "%2F", "#")


def _compiled(pattern: str) -> re.Pattern[str]:
    compiled = _COMPILED.get(pattern)
    if compiled is None:
        # "(?i)" in the middle of a pattern is an error in Python: hoist it.
        text = pattern.replace("^(?i)", "^") if "^(?i)" in pattern else pattern
        flags = re.IGNORECASE if "^(?i)" in pattern else 0
        compiled = _COMPILED[pattern] = re.compile(text, flags)
    return compiled


def check_pattern(value: str, pattern: str, max_len: int = 253, min_len: int = 1) -> str:
    """An OpenAPI string check as the API server words it (search semantics, like ECMA)."""
    if len(value) < min_len:
        raise ValueError(f"should be at least {min_len} chars long")
    if len(value) > max_len:
        raise ValueError(f"may not be more than {max_len} characters")
    if not _compiled(pattern).search(value):
        raise ValueError(f"should match '{pattern}'")
    return value


def _pattern(pattern: str, max_len: int = 253, min_len: int = 1) -> AfterValidator:
    return AfterValidator(lambda v: check_pattern(v, pattern, max_len, min_len))


Hostname = Annotated[str, _pattern(HOSTNAME_PATTERN)]
PreciseHostname = Annotated[str, _pattern(PRECISE_HOSTNAME_PATTERN)]
SectionName = Annotated[str, _pattern(SECTION_NAME_PATTERN)]
Namespace = Annotated[str, _pattern(NAMESPACE_PATTERN, 63)]
Group = Annotated[str, _pattern(GROUP_PATTERN, 253, 0)]
Kind = Annotated[str, _pattern(KIND_PATTERN, 63)]
HeaderName = Annotated[str, _pattern(HEADER_NAME_PATTERN, 256)]
ObjectName = Annotated[str, Field(min_length=1, max_length=253)]
Duration = Annotated[str, _pattern(DURATION_PATTERN, 64)]
AnnotationKey = Annotated[str, _pattern(ANNOTATION_KEY_PATTERN)]
Weight = Annotated[StrictInt, Field(ge=0, le=1_000_000)]


def parse_duration(value: str) -> float:
    """Gateway API Duration (GEP-2257) in seconds: '1h30m', '500ms', '0s'."""
    total = 0.0
    for number, unit in re.findall(r"([0-9]+)(ms|h|m|s)", value):
        total += int(number) * {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}[unit]
    return total


def _unique_values(values: list[Any], field: str) -> None:
    """listType=set / listType=map: the API server rejects exact duplicates."""
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ValueError(f"{field}[{i}]: Duplicate value: {value!r}")
        seen.add(value)


def _annotation_map(value: dict[str, str], field: str, max_props: int) -> dict[str, str]:
    if len(value) > max_props:
        raise ValueError(f"{field}: Too many: {len(value)}: must have at most {max_props} items")
    for key, item in value.items():
        try:
            check_pattern(key, ANNOTATION_KEY_PATTERN)
        except ValueError as exc:
            raise ValueError(f"{field}[{key}]: {exc}") from None
        if len(item) > 4096:
            raise ValueError(f"{field}[{key}]: may not be more than 4096 characters")
    return value


# References ---------------------------------------------------------------------------


class ParentReference(Model):
    """A Route's parent: a Gateway (default), a ListenerSet, or a Service (GAMMA)."""

    group: Group = GROUP
    kind: Kind = "Gateway"
    namespace: Namespace | None = None
    name: ObjectName
    section_name: SectionName | None = None
    port: PortNumber | None = None


class BackendObjectReference(Model):
    group: Group = ""
    kind: Kind = "Service"
    name: ObjectName
    namespace: Namespace | None = None
    port: PortNumber | None = None

    @model_validator(mode="after")
    def _port_for_service(self) -> BackendObjectReference:
        # CEL: (size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true
        if self.group == "" and self.kind == "Service" and self.port is None:
            raise ValueError("Must have port for Service reference")
        return self


class BackendRef(BackendObjectReference):
    weight: Weight = 1


class SecretObjectReference(Model):
    group: Group = ""
    kind: Kind = "Secret"
    name: ObjectName
    namespace: Namespace | None = None


class ObjectReference(Model):
    """A reference with a required group (frontend CA certificates)."""

    group: Group
    kind: Kind
    name: ObjectName
    namespace: Namespace | None = None


class LocalObjectReference(Model):
    group: Group = ""
    kind: Kind
    name: ObjectName


def _check_parent_refs(refs: tuple[ParentReference, ...]) -> None:
    """CommonRouteSpec CEL (experimental channel, which has `port`): parentRefs that
    select the same object must set the same optional fields, to distinct values."""

    def same_object(a: ParentReference, b: ParentReference) -> bool:
        return (a.group, a.kind, a.name, a.namespace or "") == (
            b.group,
            b.kind,
            b.name,
            b.namespace or "",
        )

    for a in refs:
        for b in refs:
            if same_object(a, b) and (
                ((a.section_name or "") == "") != ((b.section_name or "") == "")
                or ((a.port or 0) == 0) != ((b.port or 0) == 0)
            ):
                raise ValueError(
                    "parentRefs: sectionName or port must be specified when parentRefs "
                    "includes 2 or more references to the same parent"
                )
    for a in refs:
        twins = [
            b
            for b in refs
            if same_object(a, b)
            and (a.section_name or "") == (b.section_name or "")
            and (a.port or 0) == (b.port or 0)
        ]
        if len(twins) != 1:
            raise ValueError(
                "parentRefs: sectionName or port must be unique when parentRefs includes "
                "2 or more references to the same parent"
            )


# GatewayClass ------------------------------------------------------------------------


class ParametersReference(Model):
    group: Group
    kind: Kind
    name: ObjectName
    namespace: Namespace | None = None


class GatewayClassSpec(Model):
    controller_name: Annotated[str, _pattern(CONTROLLER_NAME_PATTERN)]
    parameters_ref: ParametersReference | None = None
    description: str | None = Field(default=None, max_length=64)


class GatewayClass(Resource):
    KIND = "GatewayClass"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")
    NAMESPACED = False
    SHORT_NAMES = ("gc",)

    spec: GatewayClassSpec


# Gateway -----------------------------------------------------------------------------


class RouteGroupKind(Model):
    group: Group = GROUP
    kind: Kind


class RouteNamespaces(Model):
    """Where Routes may attach from. An absent selector with from=Selector selects no
    namespace (metav1.LabelSelectorAsSelector(nil) is labels.Nothing())."""

    from_: Literal["All", "Selector", "Same"] = Field(default="Same", alias="from")
    selector: LabelSelector | None = None


class ListenerNamespaces(Model):
    """Where ListenerSets may attach from (Gateway.spec.allowedListeners)."""

    from_: Literal["All", "Selector", "Same", "None"] = Field(default="None", alias="from")
    selector: LabelSelector | None = None


class AllowedRoutes(Model):
    namespaces: RouteNamespaces = Field(default_factory=RouteNamespaces)
    kinds: tuple[RouteGroupKind, ...] = Field(default=(), max_length=8)


class ListenerTLSConfig(Model):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificate_refs: tuple[SecretObjectReference, ...] = Field(default=(), max_length=64)
    options: dict[str, str] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, str]) -> dict[str, str]:
        return _annotation_map(value, "options", 16)

    @model_validator(mode="after")
    def _cel(self) -> ListenerTLSConfig:
        if self.mode == "Terminate" and not self.certificate_refs and not self.options:
            raise ValueError("certificateRefs or options must be specified when mode is Terminate")
        return self


def _protocol_is(protocol: str, *names: str) -> bool:
    return protocol.upper() in names


class Listener(Model):
    """A Gateway listener; ListenerSet entries (ListenerEntry) have the same schema."""

    name: SectionName
    hostname: Hostname | None = None
    port: PortNumber
    protocol: Annotated[str, _pattern(PROTOCOL_PATTERN, 255)]
    tls: ListenerTLSConfig | None = None
    allowed_routes: AllowedRoutes = Field(default_factory=AllowedRoutes)

    @model_validator(mode="after")
    def _cel(self) -> Listener:
        # The CRD's list-level rules, checked per listener (protocols case-insensitively).
        if _protocol_is(self.protocol, "HTTP", "TCP", "UDP") and self.tls is not None:
            raise ValueError("tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']")
        if _protocol_is(self.protocol, "HTTPS") and self.tls and self.tls.mode != "Terminate":
            raise ValueError("tls mode must be Terminate for protocol HTTPS")
        if _protocol_is(self.protocol, "TLS") and self.tls is None:
            raise ValueError("tls mode must be set for protocol TLS")
        if _protocol_is(self.protocol, "TCP", "UDP") and self.hostname:
            raise ValueError("hostname must not be specified for protocols ['TCP', 'UDP']")
        return self


ListenerEntry = Listener


def _unique_listeners(listeners: tuple[Listener, ...], lower_protocol: bool) -> None:
    names = [lst.name for lst in listeners]
    if len(set(names)) != len(names):
        raise ValueError("listeners: Listener name must be unique within the Gateway")
    combos = [
        (lst.port, lst.protocol.lower() if lower_protocol else lst.protocol, lst.hostname)
        for lst in listeners
    ]
    if len(set(combos)) != len(combos):
        raise ValueError(
            "listeners: Combination of port, protocol and hostname must be unique for each listener"
        )


class GatewaySpecAddress(Model):
    type: Annotated[str, _pattern(ADDRESS_TYPE_PATTERN)] = "IPAddress"
    value: str = Field(default="", max_length=253)

    @model_validator(mode="after")
    def _cel(self) -> GatewaySpecAddress:
        if (
            self.type == "Hostname"
            and self.value
            and not _compiled(HOSTNAME_PATTERN).search(self.value)
        ):
            raise ValueError(
                "Hostname value must be empty or contain only valid characters "
                f"(matching {HOSTNAME_PATTERN})"
            )
        if self.type == "IPAddress" and self.value:
            # <gateway:validateIPAddress>; message of apis/v1/validation validateGatewayAddresses.
            try:
                ipaddress.ip_address(self.value)
            except ValueError:
                raise ValueError(f"Invalid value: {self.value!r}: invalid ip address") from None
        return self


class LocalParametersReference(Model):
    group: Group
    kind: Kind
    name: ObjectName


class GatewayInfrastructure(Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    parameters_ref: LocalParametersReference | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 8:
            raise ValueError(f"Too many: {len(value)}: must have at most 8 items")
        for key, item in value.items():
            _check_label_key(key, "Label")
            try:
                check_pattern(item, LABEL_VALUE_PATTERN, 63, 0)
            except ValueError as exc:
                raise ValueError(f"[{key}]: {exc}") from None
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 16:  # 8 before v1.6 (#4707)
            raise ValueError(f"Too many: {len(value)}: must have at most 16 items")
        for key in value:
            _check_label_key(key, "Annotation")
        return value


def _check_label_key(key: str, what: str) -> None:
    if not _compiled(ANNOTATION_KEY_PATTERN).search(key):
        raise ValueError(
            f"{what} keys must be in the form of an optional DNS subdomain prefix followed by "
            "a required name segment of up to 63 characters."
        )
    if len(key.split("/", maxsplit=1)[0]) >= 253:
        raise ValueError(
            f"If specified, the {what.lower()} key's prefix must be a DNS subdomain not longer "
            "than 253 characters in total."
        )


class FrontendTLSValidation(Model):
    ca_certificate_refs: tuple[ObjectReference, ...] = Field(min_length=1, max_length=16)
    mode: Literal["AllowValidOnly", "AllowInsecureFallback"] = "AllowValidOnly"


class TLSConfig(Model):
    validation: FrontendTLSValidation | None = None


class TLSPortConfig(Model):
    port: PortNumber
    tls: TLSConfig


class FrontendTLSConfig(Model):
    default: TLSConfig
    per_port: tuple[TLSPortConfig, ...] = Field(default=(), max_length=64)

    @model_validator(mode="after")
    def _cel(self) -> FrontendTLSConfig:
        ports = [p.port for p in self.per_port]
        if len(set(ports)) != len(ports):
            raise ValueError(
                "perPort: Port for TLS configuration must be unique within the Gateway"
            )
        return self


class GatewayBackendTLS(Model):
    client_certificate_ref: SecretObjectReference | None = None


class GatewayTLSConfig(Model):
    """Gateway-wide TLS (spec.tls): client certificate to backends, frontend mTLS."""

    backend: GatewayBackendTLS | None = None
    frontend: FrontendTLSConfig | None = None


class AllowedListeners(Model):
    namespaces: ListenerNamespaces = Field(default_factory=ListenerNamespaces)


class GatewaySpec(Model):
    gateway_class_name: ObjectName
    listeners: tuple[Listener, ...] = Field(min_length=1, max_length=MAX_LISTENERS)
    addresses: tuple[GatewaySpecAddress, ...] = Field(default=(), max_length=16)
    infrastructure: GatewayInfrastructure | None = None
    allowed_listeners: AllowedListeners | None = None
    tls: GatewayTLSConfig | None = None
    default_scope: str | None = None

    @model_validator(mode="after")
    def _cel(self) -> GatewaySpec:
        _unique_listeners(self.listeners, lower_protocol=False)
        for kind, message in (
            ("IPAddress", "IPAddress values must be unique"),
            ("Hostname", "Hostname values must be unique"),
        ):
            values = [a.value for a in self.addresses if a.type == kind and a.value]
            if len(set(values)) != len(values):
                raise ValueError(f"addresses: {message}")
        return self


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


# ListenerSet -------------------------------------------------------------------------


class ParentGatewayReference(Model):
    group: Group = GROUP
    kind: Kind = "Gateway"
    name: ObjectName
    namespace: Namespace | None = None


class ListenerSetSpec(Model):
    parent_ref: ParentGatewayReference
    listeners: tuple[ListenerEntry, ...] = Field(min_length=1, max_length=MAX_LISTENERS)

    @model_validator(mode="after")
    def _cel(self) -> ListenerSetSpec:
        # ListenerSet's rule compares protocols with lowerAscii(); Gateway's does not.
        _unique_listeners(self.listeners, lower_protocol=True)
        return self


class ListenerSet(Resource):
    """Listeners merged into a parent Gateway (GEP-1713, standard since v1.5)."""

    KIND = "ListenerSet"
    GROUP = GROUP
    VERSIONS = ("v1",)
    SHORT_NAMES = ("lset",)

    spec: ListenerSetSpec


# Shared route pieces ------------------------------------------------------------------


class HTTPHeader(Model):
    name: HeaderName
    value: str = Field(min_length=1, max_length=4096)


class HeaderModifier(Model):
    set: tuple[HTTPHeader, ...] = Field(default=(), max_length=16)
    add: tuple[HTTPHeader, ...] = Field(default=(), max_length=16)
    remove: tuple[HeaderName, ...] = Field(default=(), max_length=16)

    @model_validator(mode="after")
    def _unique(self) -> HeaderModifier:
        _unique_values([h.name for h in self.set], "set")  # listType=map
        _unique_values([h.name for h in self.add], "add")
        _unique_values(list(self.remove), "remove")  # listType=set
        # apis/v1/validation validateHTTPHeaderModifier: one action per header name.
        seen: set[str] = set()
        for field_name, names in (
            ("add", [h.name for h in self.add]),
            ("set", [h.name for h in self.set]),
            ("remove", list(self.remove)),
        ):
            for name in names:
                if name.lower() in seen:
                    raise ValueError(f"{field_name}: cannot specify multiple actions for header")
                seen.add(name.lower())
        return self


class Fraction(Model):
    numerator: StrictInt = Field(ge=0)
    denominator: StrictInt = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _le(self) -> Fraction:
        if self.numerator > self.denominator:
            raise ValueError("numerator must be less than or equal to denominator")
        return self


class RequestMirror(Model):
    backend_ref: BackendObjectReference
    percent: StrictInt | None = Field(default=None, ge=0, le=100)
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
        if self.type == "ReplaceFullPath" and self.replace_full_path is None:
            raise ValueError(
                "replaceFullPath must be specified when type is set to 'ReplaceFullPath'"
            )
        if self.replace_full_path is not None and self.type != "ReplaceFullPath":
            raise ValueError("type must be 'ReplaceFullPath' when replaceFullPath is set")
        if self.type == "ReplacePrefixMatch" and self.replace_prefix_match is None:
            raise ValueError(
                "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'"
            )
        if self.replace_prefix_match is not None and self.type != "ReplacePrefixMatch":
            raise ValueError("type must be 'ReplacePrefixMatch' when replacePrefixMatch is set")
        return self


class RequestRedirect(Model):
    scheme: Literal["http", "https"] | None = None
    hostname: PreciseHostname | None = None
    path: PathModifier | None = None
    port: PortNumber | None = None
    status_code: Literal[301, 302, 303, 307, 308] = 302


class URLRewrite(Model):
    hostname: PreciseHostname | None = None
    path: PathModifier | None = None


HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
HTTPMethodWithWildcard = Literal[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*"
]


class CORS(Model):
    allow_origins: tuple[str, ...] = Field(default=(), max_length=64)
    allow_credentials: bool | None = None
    allow_methods: tuple[HTTPMethodWithWildcard, ...] = Field(default=(), max_length=9)
    allow_headers: tuple[HeaderName, ...] = Field(default=(), max_length=64)
    expose_headers: tuple[HeaderName, ...] = Field(default=(), max_length=64)
    max_age: StrictInt = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _cel(self) -> CORS:
        for field_name in ("allow_origins", "allow_methods", "allow_headers", "expose_headers"):
            alias = type(self).model_fields[field_name].alias or field_name
            _unique_values(list(getattr(self, field_name)), alias)  # listType=set
        if "*" in self.allow_origins and len(self.allow_origins) > 1:
            raise ValueError(
                "allowOrigins: AllowOrigins cannot contain '*' alongside other origins"
            )
        if "*" in self.allow_methods and len(self.allow_methods) > 1:
            raise ValueError(
                "allowMethods: AllowMethods cannot contain '*' alongside other methods"
            )
        if "*" in self.allow_headers and len(self.allow_headers) > 1:
            raise ValueError(
                "allowHeaders: AllowHeaders cannot contain '*' alongside other methods"
            )
        return self


class ExternalAuth(Model):
    """Experimental HTTPExternalAuthFilter: modelled for validation only (netlet's
    data plane does not call external auth services, so routes using it are not
    accepted; see netlet.gateway)."""

    protocol: Literal["HTTP", "GRPC"]
    backend_ref: BackendObjectReference
    grpc: dict[str, Any] | None = None
    http: dict[str, Any] | None = None
    forward_body: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _cel(self) -> ExternalAuth:
        if self.protocol == "GRPC" and self.grpc is None:
            raise ValueError("grpc must be specified when protocol is set to 'GRPC'")
        if self.grpc is not None and self.protocol != "GRPC":
            raise ValueError("protocol must be 'GRPC' when grpc is set")
        if self.protocol == "HTTP" and self.http is None:
            raise ValueError("http must be specified when protocol is set to 'HTTP'")
        if self.http is not None and self.protocol != "HTTP":
            raise ValueError("protocol must be 'HTTP' when http is set")
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
    cors: CORS | None = Field(default=None, alias="cors")
    extension_ref: LocalObjectReference | None = None
    external_auth: ExternalAuth | None = None

    @model_validator(mode="after")
    def _cel(self) -> HTTPRouteFilter:
        _check_filter_union(self, self.type)
        return self


def _check_filter_union(model: Model, kind: str) -> None:
    """CEL: the field named by `type` must be set, and no other."""
    wanted = FILTER_FIELDS[kind]
    fields = type(model).model_fields
    for type_name, field_name in FILTER_FIELDS.items():
        if field_name not in fields:
            continue
        alias = fields[field_name].alias or field_name
        present = getattr(model, field_name) is not None
        if field_name != wanted and present:
            raise ValueError(f"filter.{alias} must be nil if the filter.type is not {type_name}")
        if field_name == wanted and not present:
            raise ValueError(f"filter.{alias} must be specified for {type_name} filter.type")


class HTTPBackendRef(BackendRef):
    filters: tuple[HTTPRouteFilter, ...] = Field(default=(), max_length=MAX_FILTERS)


class PathMatch(Model):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = Field(default="/", max_length=1024)

    @model_validator(mode="after")
    def _cel(self) -> PathMatch:
        if self.type in ("Exact", "PathPrefix"):
            which = "when type one of ['Exact', 'PathPrefix']"
            if not self.value.startswith("/"):
                raise ValueError(f"value must be an absolute path and start with '/' {which}")
            for bad in _PATH_FORBIDDEN:
                if bad in self.value:
                    raise ValueError(f"must not contain '{bad}' {which}")
            for suffix in ("/..", "/."):
                if self.value.endswith(suffix):
                    raise ValueError(f"must not end with '{suffix}' {which}")
            if not _compiled(PATH_CHARACTERS_PATTERN).search(self.value):
                raise ValueError(
                    f"must only contain valid characters (matching {PATH_CHARACTERS_PATTERN}) "
                    "for types ['Exact', 'PathPrefix']"
                )
        else:
            compile_regex(self.value)
        return self


def compile_regex(value: str) -> re.Pattern[str]:
    """RegularExpression matches use Python's `re` dialect (implementation-specific in
    the spec); a pattern it cannot compile is rejected like a CRD error."""
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None


class HeaderMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: str = Field(min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _regex(self) -> HeaderMatch:
        if self.type == "RegularExpression":
            compile_regex(self.value)
        return self


class QueryParamMatch(HeaderMatch):
    value: str = Field(min_length=1, max_length=1024)


class HTTPRouteMatch(Model):
    path: PathMatch = Field(default_factory=PathMatch)
    headers: tuple[HeaderMatch, ...] = Field(default=(), max_length=MAX_HEADER_MATCHES)
    query_params: tuple[QueryParamMatch, ...] = Field(default=(), max_length=MAX_HEADER_MATCHES)
    method: HTTPMethod | None = None

    @model_validator(mode="after")
    def _unique(self) -> HTTPRouteMatch:
        _unique_header_names(self.headers)
        names = [q.name for q in self.query_params]  # query names are case-sensitive
        if len(set(names)) != len(names):
            raise ValueError(
                "queryParams: cannot match the same query parameter multiple times in the same rule"
            )
        return self


def _unique_header_names(matches: tuple[HeaderMatch, ...]) -> None:
    names = [m.name.lower() for m in matches]
    if len(set(names)) != len(names):
        raise ValueError("headers: cannot match the same header multiple times in the same rule")


class HTTPRouteTimeouts(Model):
    request: Duration | None = None
    backend_request: Duration | None = None

    @model_validator(mode="after")
    def _order(self) -> HTTPRouteTimeouts:
        if self.request is not None and self.backend_request is not None:
            request = parse_duration(self.request)
            if request != 0 and parse_duration(self.backend_request) > request:
                raise ValueError("backendRequest timeout cannot be longer than request timeout")
        return self


class HTTPRouteRetry(Model):
    codes: tuple[Annotated[StrictInt, Field(ge=400, le=599)], ...] = ()
    attempts: StrictInt | None = Field(default=None, ge=1)  # >= 1 since v1.6 (#4907)
    backoff: Duration | None = None

    @model_validator(mode="after")
    def _codes(self) -> HTTPRouteRetry:
        _unique_values(list(self.codes), "codes")  # listType=set, unique since v1.6 (#4907)
        return self


class CookieConfig(Model):
    lifetime_type: Literal["Permanent", "Session"] = "Session"


class SessionPersistence(Model):
    session_name: str | None = Field(default=None, max_length=128)
    absolute_timeout: Duration | None = None
    type: Literal["Cookie", "Header"] = "Cookie"
    cookie_config: CookieConfig | None = None

    @model_validator(mode="after")
    def _cel(self) -> SessionPersistence:
        config = self.cookie_config
        if config and config.lifetime_type == "Permanent" and self.absolute_timeout is None:
            raise ValueError(
                "AbsoluteTimeout must be specified when cookie lifetimeType is Permanent"
            )
        return self


_DEFAULT_MATCH = {"path": {"type": "PathPrefix", "value": "/"}}


class HTTPRouteRule(Model):
    name: SectionName | None = None
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
            data = {**data, "matches": [_DEFAULT_MATCH]}
        return data

    @model_validator(mode="after")
    def _cel(self) -> HTTPRouteRule:
        _check_filter_list(self.filters)
        for i, ref in enumerate(self.backend_refs):
            _check_filter_list(ref.filters, f"backendRefs[{i}].filters")
        if self.backend_refs and any(f.request_redirect for f in self.filters):
            raise ValueError("RequestRedirect filter must not be used together with backendRefs")
        one_prefix = len(self.matches) == 1 and self.matches[0].path.type == "PathPrefix"
        if not one_prefix:
            for where, filters in (
                ("", self.filters),
                *(("Within backendRefs, ", r.filters) for r in self.backend_refs),
            ):
                for kind in _prefix_rewrites(filters):
                    # Upstream's messages: "Within backendRefs, when using RequestRedirect"
                    # but "Within backendRefs, When using URLRewrite".
                    first = "when" if where and kind == "RequestRedirect" else "When"
                    raise ValueError(
                        f"{where}{first} using {kind} filter with path.replacePrefixMatch, "
                        "exactly one PathPrefix match must be specified"
                    )
        return self


def _prefix_rewrites(filters: tuple[HTTPRouteFilter, ...]) -> list[str]:
    out = []
    for f in filters:
        for kind, value in (("RequestRedirect", f.request_redirect), ("URLRewrite", f.url_rewrite)):
            path = value.path if value is not None else None
            if path is not None and path.type == "ReplacePrefixMatch":
                out.append(kind)
    return out


def _check_filter_list(filters: tuple[HTTPRouteFilter, ...], where: str = "filters") -> None:
    kinds = [f.type for f in filters]
    if "RequestRedirect" in kinds and "URLRewrite" in kinds:
        raise ValueError(
            f"{where}: May specify either httpRouteFilterRequestRedirect or "
            "httpRouteFilterRequestRewrite, but not both"
        )
    for unique in (
        "CORS",
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestRedirect",
        "URLRewrite",
    ):
        if kinds.count(unique) > 1:
            raise ValueError(f"{where}: {unique} filter cannot be repeated")


def _check_total_matches(total: int) -> None:
    if total > MAX_TOTAL_MATCHES:
        raise ValueError(
            "rules: While 16 rules and 64 matches per rule are allowed, the total number of "
            f"matches across all rules in a route must be less than {MAX_TOTAL_MATCHES}"
        )


def _check_rule_names(names: list[str | None]) -> None:
    given = [n for n in names if n]
    if len(set(given)) != len(given):
        raise ValueError("rules: Rule name must be unique within the route")


class HTTPRouteSpec(Model):
    parent_refs: tuple[ParentReference, ...] = Field(default=(), max_length=MAX_PARENT_REFS)
    hostnames: tuple[Hostname, ...] = Field(default=(), max_length=MAX_HOSTNAMES)
    rules: tuple[HTTPRouteRule, ...] = Field(
        default_factory=lambda: (HTTPRouteRule(),), min_length=1, max_length=MAX_RULES
    )

    @model_validator(mode="before")
    @classmethod
    def _default_rule(cls, data: Any) -> Any:
        # CRD default: rules: [{matches: [{path: {type: PathPrefix, value: "/"}}]}]
        if isinstance(data, dict) and not data.get("rules"):
            data = {**data, "rules": [{"matches": [_DEFAULT_MATCH]}]}
        return data

    @model_validator(mode="after")
    def _cel(self) -> HTTPRouteSpec:
        _check_parent_refs(self.parent_refs)
        _check_total_matches(sum(len(rule.matches) for rule in self.rules))
        _check_rule_names([rule.name for rule in self.rules])
        return self


class HTTPRoute(Resource):
    KIND = "HTTPRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")

    spec: HTTPRouteSpec  # +required


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
            if self.service is not None and not _compiled(GRPC_SERVICE_PATTERN).search(
                self.service
            ):
                raise ValueError(
                    f"service must only contain valid characters (matching {GRPC_SERVICE_PATTERN})"
                )
            if self.method is not None and not _compiled(GRPC_METHOD_PATTERN).search(self.method):
                raise ValueError(
                    f"method must only contain valid characters (matching {GRPC_METHOD_PATTERN})"
                )
        else:
            for value in (self.service, self.method):
                if value is not None:
                    compile_regex(value)
        return self


class GRPCRouteMatch(Model):
    method: GRPCMethodMatch | None = None
    headers: tuple[HeaderMatch, ...] = Field(default=(), max_length=MAX_HEADER_MATCHES)

    @model_validator(mode="after")
    def _unique(self) -> GRPCRouteMatch:
        _unique_header_names(self.headers)
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


def _check_grpc_filters(filters: tuple[GRPCRouteFilter, ...], where: str = "filters") -> None:
    kinds = [f.type for f in filters]
    for unique in ("RequestHeaderModifier", "ResponseHeaderModifier"):
        if kinds.count(unique) > 1:
            raise ValueError(f"{where}: {unique} filter cannot be repeated")


class GRPCBackendRef(BackendRef):
    filters: tuple[GRPCRouteFilter, ...] = Field(default=(), max_length=MAX_FILTERS)

    @model_validator(mode="after")
    def _filters(self) -> GRPCBackendRef:
        _check_grpc_filters(self.filters)
        return self


class GRPCRouteRule(Model):
    name: SectionName | None = None
    matches: tuple[GRPCRouteMatch, ...] = Field(default=(), max_length=8)
    filters: tuple[GRPCRouteFilter, ...] = Field(default=(), max_length=MAX_FILTERS)
    backend_refs: tuple[GRPCBackendRef, ...] = Field(default=(), max_length=MAX_BACKEND_REFS)
    session_persistence: SessionPersistence | None = None

    @model_validator(mode="after")
    def _cel(self) -> GRPCRouteRule:
        _check_grpc_filters(self.filters)
        return self


class GRPCRouteSpec(Model):
    parent_refs: tuple[ParentReference, ...] = Field(default=(), max_length=MAX_PARENT_REFS)
    hostnames: tuple[Hostname, ...] = Field(default=(), max_length=MAX_HOSTNAMES)
    rules: tuple[GRPCRouteRule, ...] = Field(default=(), max_length=MAX_RULES)

    @model_validator(mode="after")
    def _cel(self) -> GRPCRouteSpec:
        _check_parent_refs(self.parent_refs)
        _check_total_matches(sum(len(rule.matches) for rule in self.rules))
        _check_rule_names([rule.name for rule in self.rules])
        return self


class GRPCRoute(Resource):
    KIND = "GRPCRoute"
    GROUP = GROUP
    VERSIONS = ("v1",)  # v1alpha2 is no longer served since v1.2

    spec: GRPCRouteSpec = Field(default_factory=GRPCRouteSpec)


# TLSRoute, TCPRoute, UDPRoute ----------------------------------------------------------


class L4RouteRule(Model):
    name: SectionName | None = None
    backend_refs: tuple[BackendRef, ...] = Field(min_length=1, max_length=MAX_BACKEND_REFS)


class TLSRouteSpec(Model):
    parent_refs: tuple[ParentReference, ...] = Field(default=(), max_length=MAX_PARENT_REFS)
    hostnames: tuple[str, ...] = Field(default=(), max_length=MAX_TLSROUTE_HOSTNAMES)
    rules: tuple[L4RouteRule, ...] = Field(min_length=1, max_length=MAX_RULES)

    @field_validator("hostnames")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # TLSRouteSpec.Hostnames CEL rules, in upstream's order and words.
        for host in value:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                continue
            raise ValueError("Hostnames cannot contain an IP")
        for host in value:
            rest = host[2:] if host.startswith("*.") else host
            if "*" in rest:
                raise ValueError(
                    "Wildcards on hostnames must be the first label, and the rest of hostname "
                    "must be valid based on RFC-1123"
                )
            if not _compiled(PRECISE_HOSTNAME_PATTERN).search(rest):
                raise ValueError("Hostnames must be valid based on RFC-1123")
        return value

    @model_validator(mode="after")
    def _cel(self) -> TLSRouteSpec:
        _check_parent_refs(self.parent_refs)
        _check_rule_names([rule.name for rule in self.rules])
        return self


def _version(api_version: str) -> str:
    return api_version.rpartition("/")[2]


class TLSRoute(Resource):
    KIND = "TLSRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha3", "v1alpha2")

    spec: TLSRouteSpec

    @model_validator(mode="after")
    def _by_version(self) -> TLSRoute:
        version = _version(self.api_version)
        if version in ("v1", "v1alpha3") and not self.spec.hostnames:
            raise ValueError("spec.hostnames: Required value")
        if version == "v1" and len(self.spec.rules) > 1:
            raise ValueError("spec.rules: Too many: must have at most 1 items")
        if version != "v1" and len(self.spec.hostnames) > MAX_HOSTNAMES:
            raise ValueError(f"spec.hostnames: Too many: must have at most {MAX_HOSTNAMES} items")
        return self


class L4RouteSpec(Model):
    parent_refs: tuple[ParentReference, ...] = Field(default=(), max_length=MAX_PARENT_REFS)
    rules: tuple[L4RouteRule, ...] = Field(min_length=1, max_length=MAX_RULES)

    @model_validator(mode="after")
    def _cel(self) -> L4RouteSpec:
        _check_parent_refs(self.parent_refs)
        _check_rule_names([rule.name for rule in self.rules])
        return self


class _L4Route(Resource):
    spec: L4RouteSpec

    @model_validator(mode="after")
    def _by_version(self) -> _L4Route:
        # v1 (GA in v1.6) allows exactly one rule; v1alpha2 allowed 16.
        if _version(self.api_version) == "v1" and len(self.spec.rules) > 1:
            raise ValueError("spec.rules: Too many: must have at most 1 items")
        return self


class TCPRoute(_L4Route):
    KIND = "TCPRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha2")


class UDPRoute(_L4Route):
    KIND = "UDPRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha2")


# ReferenceGrant, BackendTLSPolicy ------------------------------------------------------


class ReferenceGrantFrom(Model):
    group: Group
    kind: Kind
    namespace: Namespace


class ReferenceGrantTo(Model):
    group: Group
    kind: Kind
    name: ObjectName | None = None


class ReferenceGrantSpec(Model):
    from_: tuple[ReferenceGrantFrom, ...] = Field(alias="from", min_length=1, max_length=16)
    to: tuple[ReferenceGrantTo, ...] = Field(min_length=1, max_length=16)


class ReferenceGrant(Resource):
    KIND = "ReferenceGrant"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")
    SHORT_NAMES = ("refgrant",)

    spec: ReferenceGrantSpec  # required since v1.6 (#4845)


class PolicyTargetReference(Model):
    """LocalPolicyTargetReferenceWithSectionName."""

    group: Group
    kind: Kind
    name: ObjectName
    section_name: SectionName | None = None


class SubjectAltName(Model):
    type: Literal["Hostname", "URI"]
    hostname: str = ""
    uri: str = ""

    @model_validator(mode="after")
    def _cel(self) -> SubjectAltName:
        if self.type == "Hostname" and not self.hostname:
            raise ValueError(
                "SubjectAltName element must contain Hostname, if Type is set to Hostname"
            )
        if self.type != "Hostname" and self.hostname:
            raise ValueError(
                "SubjectAltName element must not contain Hostname, if Type is not set to Hostname"
            )
        if self.type == "URI" and not self.uri:
            raise ValueError("SubjectAltName element must contain URI, if Type is set to URI")
        if self.type != "URI" and self.uri:
            raise ValueError(
                "SubjectAltName element must not contain URI, if Type is not set to URI"
            )
        if self.hostname:
            check_pattern(self.hostname, HOSTNAME_PATTERN)
        if self.uri:
            check_pattern(self.uri, ABSOLUTE_URI_PATTERN)
        return self


class BackendTLSValidation(Model):
    ca_certificate_refs: tuple[LocalObjectReference, ...] = Field(default=(), max_length=8)
    well_known_ca_certificates: str | None = Field(default=None, alias="wellKnownCACertificates")
    hostname: PreciseHostname
    subject_alt_names: tuple[SubjectAltName, ...] = Field(default=(), max_length=5)

    @field_validator("well_known_ca_certificates")
    @classmethod
    def _well_known(cls, value: str | None) -> str | None:
        if value not in (None, "", "System"):
            raise ValueError(f'Unsupported value: "{value}": supported values: "System"')
        return value

    @model_validator(mode="after")
    def _cel(self) -> BackendTLSValidation:
        has_refs = bool(self.ca_certificate_refs)
        has_well_known = bool(self.well_known_ca_certificates)
        if has_refs and has_well_known:
            raise ValueError("must not contain both CACertificateRefs and WellKnownCACertificates")
        if not has_refs and not has_well_known:
            raise ValueError("must specify either CACertificateRefs or WellKnownCACertificates")
        return self


class BackendTLSPolicySpec(Model):
    target_refs: tuple[PolicyTargetReference, ...] = Field(min_length=1, max_length=16)
    validation: BackendTLSValidation
    options: dict[str, str] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, str]) -> dict[str, str]:
        return _annotation_map(value, "options", 16)

    @model_validator(mode="after")
    def _cel(self) -> BackendTLSPolicySpec:
        refs = self.target_refs
        for a in refs:
            for b in refs:
                same = (a.group, a.kind, a.name) == (b.group, b.kind, b.name)
                if same and bool(a.section_name) != bool(b.section_name):
                    raise ValueError(
                        "targetRefs: sectionName must be specified when targetRefs includes 2 "
                        "or more references to the same target"
                    )
            twins = [
                b
                for b in refs
                if (a.group, a.kind, a.name, a.section_name or "")
                == (b.group, b.kind, b.name, b.section_name or "")
            ]
            if len(twins) != 1:
                raise ValueError(
                    "targetRefs: sectionName must be unique when targetRefs includes 2 or more "
                    "references to the same target"
                )
        return self


class BackendTLSPolicy(Resource):
    KIND = "BackendTLSPolicy"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha3")
    SHORT_NAMES = ("btlspolicy",)

    spec: BackendTLSPolicySpec


ROUTE_KINDS: tuple[type[Resource], ...] = (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute)

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
