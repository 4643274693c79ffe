"""Names of everything a lab creates on the machine, and where its state lives.

Invariant: every kernel object a lab creates is named from the lab's name, so
two labs (or another engineer's test namespaces) never collide and a lab can
tell its own objects from anyone else's:

- network namespaces are `netlet-<lab>-<role>`; a lab name is lowercase letters
  and digits only, so `netlet-<lab>-` is never a prefix of another lab's names;
- interface names the lab chooses fit IFNAMSIZ (15 bytes) by hashing:
  `nl` + 4 hex of the lab + 8 hex of the object = 14 bytes;
- files live under `<run_dir>/<lab>/` (default /run/netlet/<lab>/).

Pure functions: nothing here touches the kernel.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

DEFAULT_LAB = "lab"
DEFAULT_RUN_DIR = Path("/run/netlet")
NETNS_DIR = Path("/run/netns")
NETNS_PREFIX = "netlet-"

LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
IFNAMSIZ = 15
# Longest netns name we use verbatim; longer names keep a readable head and a hash.
MAX_NETNS_NAME = 100

# Probe defaults (here so the CLI can show them without importing the prober).
DEFAULT_PROBE_TIMEOUT = 1.0
DEFAULT_PROBE_PARALLELISM = 256

# The interface names inside namespaces the lab owns whole.
NODE_UPLINK = "eth0"  # a node's (and the external client's) leg on the fabric
POD_IFNAME = "eth0"  # what CNI_IFNAME is for the pod network, as kubelet uses
LOOPBACK_IFNAME = "lo"


class LabNameError(ValueError):
    pass


def check_lab_name(name: str) -> str:
    if not LAB_NAME_RE.match(name):
        raise LabNameError(
            f"lab name {name!r} must be 1-12 lowercase letters or digits starting with a letter "
            "(no '-', so one lab's names are never a prefix of another's)"
        )
    return name


def short_hash(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def _bounded(name: str) -> str:
    if len(name) <= MAX_NETNS_NAME:
        return name
    return f"{name[: MAX_NETNS_NAME - 9]}-{short_hash(name)}"


def netns_prefix(lab: str) -> str:
    return f"{NETNS_PREFIX}{lab}-"


def fabric_netns(lab: str) -> str:
    return f"{netns_prefix(lab)}fabric"


def external_netns(lab: str) -> str:
    return f"{netns_prefix(lab)}external"


def node_netns(lab: str, node: str) -> str:
    return _bounded(f"{netns_prefix(lab)}node-{node}")


def pod_netns(lab: str, namespace: str, name: str) -> str:
    # A namespace is a DNS label (no dots), so "<namespace>.<name>" is unambiguous.
    return _bounded(f"{netns_prefix(lab)}pod-{namespace}.{name}")


def gateway_netns(lab: str, namespace: str, name: str) -> str:
    """The namespace of a Gateway's proxy (see gateways.py)."""
    return _bounded(f"{netns_prefix(lab)}gw-{namespace}.{name}")


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def ifname(lab: str, *key: str) -> str:
    """An interface name of this lab for the object `key`, within IFNAMSIZ."""
    name = f"nl{short_hash(lab, length=4)}{short_hash(lab, *key)}"
    assert len(name) <= IFNAMSIZ
    return name


def ifname_prefix(lab: str) -> str:
    return f"nl{short_hash(lab, length=4)}"


def container_id(lab: str, namespace: str, name: str) -> str:
    """CNI_CONTAINERID: 64 hex digits like a runtime's sandbox id, stable per pod."""
    return short_hash("netlet", lab, namespace, name, length=64)


def network_name(lab: str) -> str:
    """The CNI network name (host-local keeps its leases per network name)."""
    return f"netlet-{lab}"


def pod_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def lab_dir(lab: str, run_dir: Path = DEFAULT_RUN_DIR) -> Path:
    return run_dir / lab


def pod_file_name(key: str) -> str:
    """A file name for a pod's journal entry: readable head plus a hash."""
    safe = re.sub(r"[^a-z0-9.-]", "_", key)[:60]
    return f"{safe}-{short_hash(key)}.json"
