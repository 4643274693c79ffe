"""The node lab: real pods in network namespaces wired by real CNI plugins.

Public API (imported lazily, so the workload supervisor, which is started as
`python -m netlet.dataplane.lab.supervisor`, does not pay for pyroute2 and
pydantic):

    from netlet.dataplane.lab import Lab, LabError, LabOptions, Outcome
    with Lab.up(state, name="t1") as lab:
        matrix = lab.probe()

Modules: names (what things are called), plan (what the lab should be, pure),
kernel/syscalls (namespaces, sysctls, processes), topology (fabric, nodes,
external client), cni (the CNI runtime), journal (state under /run/netlet),
workload + supervisor (the test servers), probe (observed reachability),
lab (up/status/exec/probe/down).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netlet.dataplane.lab.errors import LabError
    from netlet.dataplane.lab.lab import DownReport, Lab, LabOptions, LabStatus, down, list_labs
    from netlet.dataplane.lab.probe import Outcome, ProbeMatrix, ProbeResult, Source, Target

_EXPORTS = {
    "LabError": "netlet.dataplane.lab.errors",
    "Lab": "netlet.dataplane.lab.lab",
    "LabOptions": "netlet.dataplane.lab.lab",
    "LabStatus": "netlet.dataplane.lab.lab",
    "DownReport": "netlet.dataplane.lab.lab",
    "down": "netlet.dataplane.lab.lab",
    "list_labs": "netlet.dataplane.lab.lab",
    "Outcome": "netlet.dataplane.lab.probe",
    "ProbeMatrix": "netlet.dataplane.lab.probe",
    "ProbeResult": "netlet.dataplane.lab.probe",
    "Source": "netlet.dataplane.lab.probe",
    "Target": "netlet.dataplane.lab.probe",
}

__all__ = [
    "DownReport",
    "Lab",
    "LabError",
    "LabOptions",
    "LabStatus",
    "Outcome",
    "ProbeMatrix",
    "ProbeResult",
    "Source",
    "Target",
    "down",
    "list_labs",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
