"""networking.k8s.io/v1 kinds: NetworkPolicy, Ingress, IngressClass.

NetworkPolicy defaulting (policyTypes inference) and validation follow
pkg/apis/networking/validation; Ingress follows the same package.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, model_validator

from netlet.resources.base import LabelSelector, Model, Resource
from netlet.resources.core import Protocol
from netlet.resources.validation import (
    DNSSubdomain,
    PortName,
    PortNumber,
    check_port_name,
    check_wildcard_or_subdomain,
)


@lru_cache(maxsize=16384)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    # Policies repeat the same few CIDRs thousands of times; parse each once.
    return ipaddress.ip_network(text, strict=False)


class IPBlock(Model):
    cidr: str
    except_: tuple[str, ...] = Field(default=(), alias="except")

    @model_validator(mode="after")
    def _validate(self) -> IPBlock:
        try:
            network = _network(self.cidr)
        except ValueError:
            raise ValueError(f"cidr: must be a valid CIDR (got {self.cidr!r})") from None
        for i, text in enumerate(self.except_):
            try:
                hole = _network(text)
            except ValueError:
                raise ValueError(f"except[{i}]: must be a valid CIDR (got {text!r})") from None
            if hole.version != network.version or not (
                hole.subnet_of(network) and hole.prefixlen > network.prefixlen  # type: ignore[arg-type]
            ):
                raise ValueError(f"except[{i}]: must be a strict subset of `cidr` {self.cidr}")
        return self

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return _network(self.cidr)

    @property
    def holes(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(_network(t) for t in self.except_)


class NetworkPolicyPeer(Model):
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    @model_validator(mode="after")
    def _validate(self) -> NetworkPolicyPeer:
        selectors = self.pod_selector is not None or self.namespace_selector is not None
        if self.ip_block is not None and selectors:
            raise ValueError("may not specify both ipBlock and another peer")
        if self.ip_block is None and not selectors:
            raise ValueError("must specify a peer")
        return self


class NetworkPolicyPort(Model):
    protocol: Protocol = Protocol.TCP
    port: int | str | None = None
    end_port: int | None = None

    @model_validator(mode="after")
    def _validate(self) -> NetworkPolicyPort:
        if isinstance(self.port, int):
            if not 1 <= self.port <= 65535:
                raise ValueError(f"port: must be between 1 and 65535, inclusive (got {self.port})")
        elif isinstance(self.port, str):
            problem = check_port_name(self.port)
            if problem:
                raise ValueError(f"port: {problem}")
        if self.end_port is not None:
            if not isinstance(self.port, int):
                raise ValueError("endPort: may not be specified when port is not a number")
            if self.end_port < self.port:
                raise ValueError("endPort: must be greater than or equal to `port`")
            if self.end_port > 65535:
                raise ValueError("endPort: must be between 1 and 65535, inclusive")
        return self


class NetworkPolicyIngressRule(Model):
    from_: tuple[NetworkPolicyPeer, ...] = Field(default=(), alias="from")
    ports: tuple[NetworkPolicyPort, ...] = ()


class NetworkPolicyEgressRule(Model):
    to: tuple[NetworkPolicyPeer, ...] = ()
    ports: tuple[NetworkPolicyPort, ...] = ()


class NetworkPolicySpec(Model):
    pod_selector: LabelSelector
    policy_types: tuple[Literal["Ingress", "Egress"], ...] = ()
    ingress: tuple[NetworkPolicyIngressRule, ...] = ()
    egress: tuple[NetworkPolicyEgressRule, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _infer_policy_types(cls, data: Any) -> Any:
        # Defaulting: without policyTypes, Ingress always applies and Egress applies
        # when the policy has egress rules (NetworkPolicySpec.policyTypes doc).
        if isinstance(data, dict) and not data.get("policyTypes"):
            types = ["Ingress"]
            if data.get("egress"):
                types.append("Egress")
            data = {**data, "policyTypes": types}
        return data

    @model_validator(mode="after")
    def _unique_types(self) -> NetworkPolicySpec:
        if len(set(self.policy_types)) != len(self.policy_types):
            raise ValueError("policyTypes: may not repeat a type")
        return self


class NetworkPolicy(Resource):
    KIND = "NetworkPolicy"
    GROUP = "networking.k8s.io"
    SHORT_NAMES = ("netpol",)

    spec: NetworkPolicySpec

    @property
    def affects_ingress(self) -> bool:
        return "Ingress" in self.spec.policy_types

    @property
    def affects_egress(self) -> bool:
        return "Egress" in self.spec.policy_types


class ServiceBackendPort(Model):
    name: PortName | None = None
    number: PortNumber | None = None

    @model_validator(mode="after")
    def _one(self) -> ServiceBackendPort:
        if (self.name is None) == (self.number is None):
            raise ValueError("exactly one of name or number must be specified")
        return self


class IngressServiceBackend(Model):
    name: str
    port: ServiceBackendPort


class TypedLocalObjectReference(Model):
    api_group: str | None = None
    kind: str
    name: str


class IngressBackend(Model):
    service: IngressServiceBackend | None = None
    resource: TypedLocalObjectReference | None = None

    @model_validator(mode="after")
    def _one(self) -> IngressBackend:
        if (self.service is None) == (self.resource is None):
            raise ValueError("exactly one of service or resource must be specified")
        return self


class HTTPIngressPath(Model):
    path: str | None = None
    path_type: Literal["Exact", "Prefix", "ImplementationSpecific"]
    backend: IngressBackend

    @model_validator(mode="after")
    def _path(self) -> HTTPIngressPath:
        if self.path_type in ("Exact", "Prefix"):
            if not self.path or not self.path.startswith("/"):
                raise ValueError("path: must be an absolute path (start with '/')")
            for bad in ("//", "/./", "/../", "%2f", "%2F"):
                if bad in self.path:
                    raise ValueError(f"path: must not contain {bad!r}")
        elif self.path and not self.path.startswith("/"):
            raise ValueError("path: must be an absolute path (start with '/')")
        return self


class HTTPIngressRuleValue(Model):
    paths: tuple[HTTPIngressPath, ...] = Field(min_length=1)


class IngressRule(Model):
    host: str | None = None
    http: HTTPIngressRuleValue | None = None

    @model_validator(mode="after")
    def _host(self) -> IngressRule:
        if self.host:
            try:
                ipaddress.ip_address(self.host)
            except ValueError:
                pass
            else:
                raise ValueError("host: must be a DNS name, not an IP address")
            problem = check_wildcard_or_subdomain(self.host)
            if problem:
                raise ValueError(f"host: {problem}")
        return self


class IngressTLS(Model):
    hosts: tuple[str, ...] = ()
    secret_name: str | None = None


class IngressSpec(Model):
    ingress_class_name: str | None = None
    default_backend: IngressBackend | None = None
    rules: tuple[IngressRule, ...] = ()
    tls: tuple[IngressTLS, ...] = ()

    @model_validator(mode="after")
    def _something(self) -> IngressSpec:
        if self.default_backend is None and not self.rules:
            raise ValueError("either `defaultBackend` or `rules` must be specified")
        return self


class Ingress(Resource):
    KIND = "Ingress"
    GROUP = "networking.k8s.io"
    SHORT_NAMES = ("ing",)

    spec: IngressSpec


class IngressClassSpec(Model):
    controller: str = ""
    parameters: dict[str, Any] | None = None


class IngressClass(Resource):
    KIND = "IngressClass"
    GROUP = "networking.k8s.io"
    NAMESPACED = False

    spec: IngressClassSpec = Field(default_factory=IngressClassSpec)

    @property
    def is_default(self) -> bool:
        value = self.metadata.annotations.get("ingressclass.kubernetes.io/is-default-class")
        return value == "true"


NETWORKING_KINDS: tuple[type[Resource], ...] = (NetworkPolicy, Ingress, IngressClass)

__all__ = ["NETWORKING_KINDS", "DNSSubdomain", "Ingress", "IngressClass", "NetworkPolicy"]
