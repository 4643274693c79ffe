"""Names of the kernel objects the backend creates, as upstream kube-proxy spells them.

Owns the naming scheme: base chains are `${type}-${hook}`; per-service objects
are `${prefix}-${HASH}-${namespace}/${name}/${protocol}/${port}` (endpoint
chains and affinity sets add `__${ip}/${port}`), where HASH is the first 8
characters of the base32 SHA-256 of the rest, so names stay unique if
truncated and visually distinct. Namespace, Service and port names hold only
[a-z0-9-], protocols are tcp/udp/sctp, and '/' separates the parts: '/' is one
of the two characters nft allows in names that Kubernetes names never hold.

Length, worst case: "endpoint-" (9) + hash (8) + "-" + namespace (63) + "/" +
name (63) + "/" + "sctp" + "/" + port name (15, an IANA_SVC_NAME) + "__" +
IPv6 address (39) + "/" + port (5) = 213 < 255 (nft's limit), so nothing is
ever truncated; `hashed` still truncates defensively.
"""

from __future__ import annotations

import base64
import hashlib

from netlet.dataplane.nft.model import NAME_LENGTH_MAX

SERVICE_PREFIX = "service-"  # Cluster traffic policy chain
LOCAL_PREFIX = "local-"  # Local traffic policy chain
EXTERNAL_PREFIX = "external-"  # external destinations chain
ENDPOINT_PREFIX = "endpoint-"  # per-endpoint chain (session affinity only)
AFFINITY_PREFIX = "affinity-"  # per-endpoint affinity set

POLICY_PREFIX = "pol-"  # network policy chains (see policy.py)


def name_hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def hashed(prefix: str, text: str, digest: str | None = None) -> str:
    """`prefix` + HASH + "-" + `text` (pass `digest` = name_hash(text) to reuse it)."""
    name = f"{prefix}{digest or name_hash(text)}-{text}"
    if len(name) > NAME_LENGTH_MAX:
        name = name[: NAME_LENGTH_MAX - 3] + "..."
    return name


def service_port_base(namespace: str, name: str, protocol: str, port: str) -> str:
    return f"{namespace}/{name}/{protocol.lower()}/{port}"


def endpoint_base(service_base: str, ip: str, port: int) -> str:
    # IPv6 colons are not allowed in names: '.' instead, as upstream does.
    return f"{service_base}__{ip.replace(':', '.')}/{port}"


def is_dynamic_chain(name: str) -> bool:
    """Per-object chains hold a '/' (never one of the fixed chains)."""
    return "/" in name
