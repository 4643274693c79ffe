"""Multi-network kinds (k8s.cni.cncf.io): NetworkAttachmentDefinition, MultiNetworkPolicy.

The NPWG "Kubernetes Network Custom Resource Definition De-facto Standard":
a NetworkAttachmentDefinition carries a CNI config as a JSON string; pods ask
for extra networks with the `k8s.v1.cni.cncf.io/networks` annotation, and a
MultiNetworkPolicy (NetworkPolicy's shape) applies to the networks named in
its `k8s.v1.cni.cncf.io/policy-for` annotation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from netlet.resources.base import Model, Resource
from netlet.resources.networking import NetworkPolicySpec

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
POLICY_FOR_ANNOTATION = "k8s.v1.cni.cncf.io/policy-for"


class NetworkAttachmentDefinitionSpec(Model):
    config: str = ""

    @field_validator("config")
    @classmethod
    def _cni_config(cls, value: str) -> str:
        if not value:
            return value  # an empty config names a CNI config file on the node
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"must be a JSON CNI configuration: {exc.msg} at char {exc.pos}"
            ) from None
        if not isinstance(parsed, dict):
            raise ValueError("must be a JSON object")
        if "type" not in parsed and "plugins" not in parsed:
            raise ValueError("CNI configuration must have a 'type' or a 'plugins' list")
        if "plugins" in parsed and (
            not isinstance(parsed["plugins"], list) or not parsed["plugins"]
        ):
            raise ValueError("'plugins' must be a non-empty list")
        return value

    @property
    def cni(self) -> dict[str, Any]:
        return json.loads(self.config) if self.config else {}


class NetworkAttachmentDefinition(Resource):
    KIND = "NetworkAttachmentDefinition"
    GROUP = "k8s.cni.cncf.io"
    SHORT_NAMES = ("net-attach-def",)

    spec: NetworkAttachmentDefinitionSpec = Field(default_factory=NetworkAttachmentDefinitionSpec)


class MultiNetworkPolicy(Resource):
    KIND = "MultiNetworkPolicy"
    GROUP = "k8s.cni.cncf.io"
    VERSIONS = ("v1beta1", "v1beta2")
    SHORT_NAMES = ("multi-policy",)

    spec: NetworkPolicySpec

    @property
    def policy_for(self) -> tuple[str, ...]:
        """Networks (namespace/name, namespace defaulted) the policy applies to."""
        raw = self.metadata.annotations.get(POLICY_FOR_ANNOTATION, "")
        out = []
        for item in raw.split(","):
            item = item.strip()
            if item:
                out.append(item if "/" in item else f"{self.namespace}/{item}")
        return tuple(out)


@dataclass(frozen=True, slots=True)
class NetworkSelection:
    """One entry of a pod's networks annotation."""

    namespace: str
    name: str
    interface: str | None = None
    ips: tuple[str, ...] = ()
    mac: str | None = None


def parse_network_selections(value: str, pod_namespace: str) -> tuple[NetworkSelection, ...]:
    """Parse `net1, other-ns/net2@eth2` or the JSON list form of the networks annotation."""
    value = value.strip()
    if not value:
        return ()
    if value.startswith("["):
        try:
            items = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON network selection: {exc.msg}") from None
        out = []
        for item in items:
            if not isinstance(item, dict) or "name" not in item:
                raise ValueError("each network selection must be an object with a 'name'")
            out.append(
                NetworkSelection(
                    namespace=item.get("namespace", pod_namespace),
                    name=item["name"],
                    interface=item.get("interface"),
                    ips=tuple(item.get("ips", ())),
                    mac=item.get("mac"),
                )
            )
        return tuple(out)
    out = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        ref, _, interface = part.partition("@")
        namespace, _, name = ref.rpartition("/")
        out.append(NetworkSelection(namespace or pod_namespace, name, interface or None))
    return tuple(out)


MULTINET_KINDS: tuple[type[Resource], ...] = (NetworkAttachmentDefinition, MultiNetworkPolicy)
