"""Cluster-wide settings the manifests do not carry: address ranges and defaults.

The defaults are kind's (10.244.0.0/16 pods, 10.96.0.0/12 services, node
/24s), so manifests exported from a kind cluster load unchanged. IPv6 ranges
are used only when the cluster is dual-stack (see allocate.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlet.resources.net import IPNetwork, parse_cidr

DEFAULT_NODE_NAME = "node-1"
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    pod_cidrs: tuple[IPNetwork, ...] = field(
        default_factory=lambda: (parse_cidr("10.244.0.0/16"), parse_cidr("fd00:10:244::/56"))
    )
    service_cidrs: tuple[IPNetwork, ...] = field(
        default_factory=lambda: (parse_cidr("10.96.0.0/12"), parse_cidr("fd00:10:96::/112"))
    )
    # Node addresses when Node objects carry none: the lab's fabric network.
    node_cidrs: tuple[IPNetwork, ...] = field(
        default_factory=lambda: (parse_cidr("172.18.0.0/16"), parse_cidr("fc00:f853:ccd:e793::/64"))
    )
    node_mask_v4: int = 24
    node_mask_v6: int = 64
    node_port_range: tuple[int, int] = (30000, 32767)
    dual_stack: bool = False
    cluster_domain: str = CLUSTER_DOMAIN
    default_node: str = DEFAULT_NODE_NAME

    def pod_cidr(self, family: int) -> IPNetwork:
        return next(c for c in self.pod_cidrs if c.version == family)

    def service_cidr(self, family: int) -> IPNetwork:
        return next(c for c in self.service_cidrs if c.version == family)

    def node_cidr(self, family: int) -> IPNetwork:
        return next(c for c in self.node_cidrs if c.version == family)

    def node_mask(self, family: int) -> int:
        return self.node_mask_v4 if family == 4 else self.node_mask_v6
