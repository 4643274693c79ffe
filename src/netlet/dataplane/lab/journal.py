"""The lab's memory on disk: what exists, written *before* it is created.

Layout under `<run_dir>/<lab>/` (tmpfs /run: gone on reboot, like namespaces):

    lock              flock(2) held by up/down
    topology.json     fabric, external and node namespaces: name, inode, state, spec
    pods/<key>.json   one pod: namespace name, inode, CNI attachments (config, result)
    plan.json         the plan of the last completed `up` (status/probe/exec read it)
    workloads.json    what the supervisor serves; status.json what it reports
    cni/              host-local's leases (dataDir)

Invariant: an entry is written with state `creating` before the kernel object is
made and becomes `ready` once it is complete, so after a crash every object the
lab may have made is on record; `down` and the next `up` remove or redo
`creating` entries. Writes are atomic (write a temporary file, rename).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlet.dataplane.lab import names
from netlet.dataplane.lab.errors import LabError

CREATING = "creating"
READY = "ready"


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise LabError(f"lab state file {path} is corrupt: {exc}") from None


@dataclass
class NsRecord:
    """A namespace the lab made: fabric, external, a node or a pod."""

    netns: str
    state: str = CREATING
    inode: int | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    # Pods only: the CNI attachments in ADD order.
    networks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "netns": self.netns,
            "state": self.state,
            "inode": self.inode,
            "spec": self.spec,
            "networks": self.networks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NsRecord:
        return cls(
            data["netns"],
            data.get("state", CREATING),
            data.get("inode"),
            data.get("spec", {}),
            data.get("networks", []),
        )


class Journal:
    def __init__(self, lab: str, run_dir: Path) -> None:
        self.lab = lab
        self.dir = names.lab_dir(lab, run_dir)
        self.topology: dict[str, NsRecord] = {}  # "fabric", "external", "node/<name>"

    # Paths ----------------------------------------------------------------------------

    @property
    def pods_dir(self) -> Path:
        return self.dir / "pods"

    @property
    def cni_dir(self) -> Path:
        return self.dir / "cni"

    @property
    def plan_file(self) -> Path:
        return self.dir / "plan.json"

    def exists(self) -> bool:
        return self.dir.is_dir()

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LabError(
                    f"lab {self.lab} is busy: another netlet up/down holds {self.dir / 'lock'}"
                ) from None
            yield
        finally:
            os.close(fd)

    # Topology -------------------------------------------------------------------------

    def load(self) -> None:
        data = read_json(self.dir / "topology.json") or {}
        self.topology = {k: NsRecord.from_dict(v) for k, v in data.items()}

    def save_topology(self) -> None:
        write_json(self.dir / "topology.json", {k: v.as_dict() for k, v in self.topology.items()})

    # Pods -----------------------------------------------------------------------------

    def pod_path(self, key: str) -> Path:
        return self.pods_dir / names.pod_file_name(key)

    def save_pod(self, key: str, record: NsRecord) -> None:
        write_json(self.pod_path(key), {"key": key, **record.as_dict()})

    def drop_pod(self, key: str) -> None:
        self.pod_path(key).unlink(missing_ok=True)

    def pods(self) -> dict[str, NsRecord]:
        out: dict[str, NsRecord] = {}
        if not self.pods_dir.is_dir():
            return out
        for path in sorted(self.pods_dir.glob("*.json")):
            data = read_json(path)
            if isinstance(data, dict) and "key" in data:
                out[data["key"]] = NsRecord.from_dict(data)
        return out

    def recorded_netns(self) -> dict[str, int | None]:
        """Every namespace on record (name -> inode when known)."""
        out = {r.netns: r.inode for r in self.topology.values()}
        out.update({r.netns: r.inode for r in self.pods().values()})
        return out
