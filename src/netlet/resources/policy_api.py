"""network-policy-api kinds (policy.networking.k8s.io).

- ClusterNetworkPolicy v1alpha2 (network-policy-api v0.2.0): tiers Admin and Baseline.
- AdminNetworkPolicy and BaselineAdminNetworkPolicy v1alpha1, still widely deployed.

Validation mirrors the CRDs' OpenAPI schema and CEL rules (MinProperties /
MaxProperties "exactly one field", list limits, enums, port ranges).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from netlet.resources.base import LabelSelector, Model, Resource
from netlet.resources.validation import PortName, PortNumber

MAX_RULES_CNP = 25
MAX_PEERS = 25
MAX_RULES_ANP = 100
MAX_PRIORITY = 1000
BANP_NAME = "default"

_DOMAIN_NAME = re.compile(
    r"(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?"
)


def _exactly_one(model: Model) -> None:
    """CRD MinProperties=1 / MaxProperties=1. The error's location is the object itself."""
    set_fields = [name for name in type(model).model_fields if getattr(model, name) is not None]
    if len(set_fields) != 1:
        raise ValueError(
            f"exactly one field must be set (got {len(set_fields)}: "
            f"{', '.join(set_fields) or 'none'})"
        )


def _at_most_one(model: Model) -> None:
    """CRD MaxProperties=1 on a peer. No field at all is accepted: it is what a peer
    written for a newer CRD looks like once its unknown field is dropped, and the
    engine must then fail closed (the peer types' doc comments)."""
    set_fields = [name for name in type(model).model_fields if getattr(model, name) is not None]
    if len(set_fields) > 1:
        raise ValueError(
            f"must have at most 1 properties (got {len(set_fields)}: {', '.join(set_fields)})"
        )


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"Invalid CIDR format provided (got {value!r})") from None
    return value


def _domain(value: str) -> str:
    if not _DOMAIN_NAME.fullmatch(value):
        raise ValueError(
            f"must be a domain name, optionally with a leading '*.' wildcard (got {value!r})"
        )
    return value


class NamespacedPod(Model):
    namespace_selector: LabelSelector = Field(default_factory=LabelSelector)
    pod_selector: LabelSelector


class Subject(Model):
    namespaces: LabelSelector | None = None
    pods: NamespacedPod | None = None

    @model_validator(mode="after")
    def _one(self) -> Subject:
        _exactly_one(self)
        return self


# ClusterNetworkPolicy v1alpha2 ------------------------------------------------------


class PortRange(Model):
    start: PortNumber
    end: PortNumber

    @model_validator(mode="after")
    def _ordered(self) -> PortRange:
        if not self.start < self.end:
            raise ValueError("Start port must be less than End port")
        return self


class Port(Model):
    number: PortNumber | None = None
    range: PortRange | None = None

    @model_validator(mode="after")
    def _one(self) -> Port:
        _exactly_one(self)
        return self


class ProtocolPort(Model):
    destination_port: Port | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ProtocolPort:
        if self.destination_port is None:
            raise ValueError("destinationPort: Required value (at least one property)")
        return self


class CNPProtocol(Model):
    tcp: ProtocolPort | None = None
    udp: ProtocolPort | None = None
    sctp: ProtocolPort | None = None
    destination_named_port: PortName | None = None

    @model_validator(mode="after")
    def _one(self) -> CNPProtocol:
        _exactly_one(self)
        return self


class IngressPeer(Model):
    """An ingress peer of ClusterNetworkPolicy and of AdminNetworkPolicy/BANP (same shape)."""

    namespaces: LabelSelector | None = None
    pods: NamespacedPod | None = None

    # No validator requiring one field: a peer with no known field means the CRD is
    # newer than us, and the engine must fail closed (spec: "If an implementation sees
    # no fields are set ... it should fail closed").

    @model_validator(mode="after")
    def _one(self) -> IngressPeer:
        _at_most_one(self)
        return self

    @property
    def is_empty(self) -> bool:
        return self.namespaces is None and self.pods is None


class EgressPeer(Model):
    """An egress peer of ClusterNetworkPolicy and of AdminNetworkPolicy/BANP (same shape)."""

    namespaces: LabelSelector | None = None
    pods: NamespacedPod | None = None
    nodes: LabelSelector | None = None
    networks: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=25)
    domain_names: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=25)

    @field_validator("networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            for item in value:
                _cidr(item)
            if len(set(value)) != len(value):
                raise ValueError("duplicate CIDR (listType=set)")
        return value

    @field_validator("domain_names")
    @classmethod
    def _domains(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            for item in value:
                _domain(item)
        return value

    @model_validator(mode="after")
    def _one(self) -> EgressPeer:
        _at_most_one(self)
        return self

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in type(self).model_fields)


# The v1alpha1 and v1alpha2 peers are the same schema; the names stay for readers of either.
CNPIngressPeer = IngressPeer
ANPIngressPeer = IngressPeer
CNPEgressPeer = EgressPeer
ANPEgressPeer = EgressPeer


CNPAction = Literal["Accept", "Deny", "Pass"]


class CNPIngressRule(Model):
    name: str = Field(default="", max_length=100)
    action: CNPAction
    from_: tuple[CNPIngressPeer, ...] = Field(alias="from", min_length=1, max_length=MAX_PEERS)
    protocols: tuple[CNPProtocol, ...] | None = Field(default=None, min_length=1, max_length=25)


class CNPEgressRule(Model):
    name: str = Field(default="", max_length=100)
    action: CNPAction
    to: tuple[CNPEgressPeer, ...] = Field(min_length=1, max_length=MAX_PEERS)
    protocols: tuple[CNPProtocol, ...] | None = Field(default=None, min_length=1, max_length=25)

    @model_validator(mode="after")
    def _cel(self) -> CNPEgressRule:
        special = any(
            p.networks is not None or p.nodes is not None or p.domain_names is not None
            for p in self.to
        )
        named = any(p.destination_named_port for p in self.protocols or ())
        if special and named:
            raise ValueError(
                "networks/nodes/domainNames peer cannot be set with namedPorts since there "
                "are no namedPorts for networks/nodes/domainNames"
            )
        if self.action != "Accept" and any(p.domain_names is not None for p in self.to):
            raise ValueError("domainNames peer is only supported for Accept rules")
        return self


class ClusterNetworkPolicySpec(Model):
    tier: Literal["Admin", "Baseline"]
    priority: int = Field(ge=0, le=MAX_PRIORITY)
    subject: Subject
    ingress: tuple[CNPIngressRule, ...] = Field(default=(), max_length=MAX_RULES_CNP)
    egress: tuple[CNPEgressRule, ...] = Field(default=(), max_length=MAX_RULES_CNP)


class ClusterNetworkPolicy(Resource):
    KIND = "ClusterNetworkPolicy"
    GROUP = "policy.networking.k8s.io"
    VERSIONS = ("v1alpha2",)
    NAMESPACED = False
    SHORT_NAMES = ("cnp",)

    spec: ClusterNetworkPolicySpec


# AdminNetworkPolicy / BaselineAdminNetworkPolicy v1alpha1 ----------------------------


class ANPPortNumber(Model):
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    port: PortNumber


class ANPPortRange(Model):
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    start: PortNumber
    end: PortNumber

    @model_validator(mode="after")
    def _ordered(self) -> ANPPortRange:
        if not self.start < self.end:
            raise ValueError("Start port must be less than End port")
        return self


class ANPPort(Model):
    port_number: ANPPortNumber | None = None
    named_port: PortName | None = None
    port_range: ANPPortRange | None = None

    @model_validator(mode="after")
    def _one(self) -> ANPPort:
        _exactly_one(self)
        return self


def _named_port_with_special_peer(
    to: tuple[ANPEgressPeer, ...], ports: tuple[ANPPort, ...] | None, *, domains: bool
) -> None:
    """The egress rules' CEL rule; the AdminNetworkPolicy CRD counts domainNames peers
    too (they have no named ports either), the BaselineAdminNetworkPolicy CRD has none."""
    kinds = "networks/nodes/domainNames" if domains else "networks/nodes"
    special = any(
        p.networks is not None or p.nodes is not None or (domains and p.domain_names is not None)
        for p in to
    )
    if special and any(p.named_port for p in ports or ()):
        raise ValueError(
            f"{kinds} peer cannot be set with namedPorts since there are no namedPorts for {kinds}"
        )


class ANPIngressRule(Model):
    name: str = Field(default="", max_length=100)
    action: Literal["Allow", "Deny", "Pass"]
    from_: tuple[ANPIngressPeer, ...] = Field(alias="from", min_length=1, max_length=100)
    ports: tuple[ANPPort, ...] | None = Field(default=None, min_length=1, max_length=100)


class ANPEgressRule(Model):
    name: str = Field(default="", max_length=100)
    action: Literal["Allow", "Deny", "Pass"]
    to: tuple[ANPEgressPeer, ...] = Field(min_length=1, max_length=100)
    ports: tuple[ANPPort, ...] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _cel(self) -> ANPEgressRule:
        _named_port_with_special_peer(self.to, self.ports, domains=True)
        if self.action != "Allow" and any(p.domain_names is not None for p in self.to):
            raise ValueError("domainNames peer is only supported for Allow rules")
        return self


class AdminNetworkPolicySpec(Model):
    priority: int = Field(ge=0, le=MAX_PRIORITY)
    subject: Subject
    ingress: tuple[ANPIngressRule, ...] = Field(default=(), max_length=MAX_RULES_ANP)
    egress: tuple[ANPEgressRule, ...] = Field(default=(), max_length=MAX_RULES_ANP)


class AdminNetworkPolicy(Resource):
    KIND = "AdminNetworkPolicy"
    GROUP = "policy.networking.k8s.io"
    VERSIONS = ("v1alpha1",)
    NAMESPACED = False
    SHORT_NAMES = ("anp",)

    spec: AdminNetworkPolicySpec


class BANPIngressRule(Model):
    name: str = Field(default="", max_length=100)
    action: Literal["Allow", "Deny"]
    from_: tuple[ANPIngressPeer, ...] = Field(alias="from", min_length=1, max_length=100)
    ports: tuple[ANPPort, ...] | None = Field(default=None, min_length=1, max_length=100)


class BANPEgressRule(Model):
    name: str = Field(default="", max_length=100)
    action: Literal["Allow", "Deny"]
    to: tuple[ANPEgressPeer, ...] = Field(min_length=1, max_length=100)
    ports: tuple[ANPPort, ...] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _cel(self) -> BANPEgressRule:
        _named_port_with_special_peer(self.to, self.ports, domains=False)
        if any(p.domain_names is not None for p in self.to):
            raise ValueError("domainNames peer is not supported in BaselineAdminNetworkPolicy")
        return self


class BaselineAdminNetworkPolicySpec(Model):
    subject: Subject
    ingress: tuple[BANPIngressRule, ...] = Field(default=(), max_length=MAX_RULES_ANP)
    egress: tuple[BANPEgressRule, ...] = Field(default=(), max_length=MAX_RULES_ANP)


class BaselineAdminNetworkPolicy(Resource):
    KIND = "BaselineAdminNetworkPolicy"
    GROUP = "policy.networking.k8s.io"
    VERSIONS = ("v1alpha1",)
    NAMESPACED = False
    SHORT_NAMES = ("banp",)

    spec: BaselineAdminNetworkPolicySpec

    @model_validator(mode="after")
    def _singleton(self) -> BaselineAdminNetworkPolicy:
        # CRD CEL: self.metadata.name == 'default'
        if self.metadata.name != BANP_NAME:
            raise ValueError(
                "metadata.name: Only one baseline admin network policy with "
                'metadata.name="default" can be created in the cluster'
            )
        return self


POLICY_API_KINDS: tuple[type[Resource], ...] = (
    ClusterNetworkPolicy,
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
)
