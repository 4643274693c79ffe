"""The node lab: bring a cluster state up as namespaces, observe it, take it down.

    with Lab.up(state, name="t1") as lab:      # returns when every workload is ready
        lab.exec("default/web-0", ["ip", "addr"])
        matrix = lab.probe(to="all")           # observed reachability, as data
    # leaving the block is lab.down(): everything removed and verified gone

`up` is a reconcile (build.py): it compares the plan (plan.py) with the
journal (journal.py) and creates what is missing, recreates what changed or was left
half-made by a crash, and removes what is no longer wanted. Everything one `up`
creates is rolled back if a later step of it fails (a CNI plugin error, a
missing plugin, a port clash when the workloads bind), so a failed `up` leaves
the lab as it was. Pod IPs the CNI plugins assigned are written back into the
ClusterState given to `up`.

Each netlet Gateway gets a namespace of its own on the fabric at its address,
with its proxy under the supervisor (gateways.py): `status` shows it, `exec`
reaches it as `gateway/NS/NAME`, `down` removes it with the rest.

`down` stops the supervisor and anything else running in the lab's namespaces,
runs CNI DEL for every pod with its stored result, deletes the namespaces, then
verifies that no namespace, process, link or file of the lab remains.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]

from netlet.cluster.state import ClusterState
from netlet.dataplane.lab import gateways as lab_gateways
from netlet.dataplane.lab import kernel, names
from netlet.dataplane.lab.build import (
    Builder,
    check_plugins,
    remove_tree,
    stop_supervisor,
    supervisor_pid,
    teardown_pod,
)
from netlet.dataplane.lab.cni import DEFAULT_CNI_PATH
from netlet.dataplane.lab.errors import LabError
from netlet.dataplane.lab.journal import Journal, read_json
from netlet.dataplane.lab.plan import LabPlan, make_plan, plan_from_json
from netlet.dataplane.lab.probe import (
    DEFAULT_PARALLELISM,
    DEFAULT_TIMEOUT,
    PortFilter,
    ProbeMatrix,
    Target,
    run_probes,
    select_sources,
    select_targets,
)
from netlet.dataplane.lab.supervisor import STATUS_FILE
from netlet.resources.core import Pod, PodIP

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class LabOptions:
    cni: str = "ptp"  # or "bridge"
    cni_path: tuple[str, ...] = DEFAULT_CNI_PATH
    run_dir: Path = names.DEFAULT_RUN_DIR
    mtu: int = 1500
    parallelism: int = 8  # pods wired at once
    ready_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class PodStatus:
    key: str
    node: str
    netns: str
    host_network: bool
    ips: tuple[str, ...]
    ports: tuple[str, ...]
    netns_present: bool
    workload: str  # ready, starting, backoff, failed, missing
    pid: int | None
    restarts: int
    last_exit: str | None
    message: str | None
    port_states: tuple[str, ...] = ()  # "80/TCP serving http", "9/SCTP unsupported: ..."

    @property
    def healthy(self) -> bool:
        return self.netns_present and self.workload == "ready"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    name: str
    netns: str
    addresses: tuple[str, ...]
    pod_cidrs: tuple[str, ...]
    netns_present: bool
    pods: int


@dataclass(frozen=True, slots=True)
class LabStatus:
    lab: str
    nodes: tuple[NodeStatus, ...]
    pods: tuple[PodStatus, ...]
    external: tuple[str, ...]
    supervisor_pid: int | None
    supervisor_alive: bool
    gateways: tuple[lab_gateways.GatewayStatus, ...] = ()
    gateway_warnings: tuple[str, ...] = ()  # Gateways the last `up` could not serve

    @property
    def healthy(self) -> bool:
        return (
            self.supervisor_alive
            and all(n.netns_present for n in self.nodes)
            and all(p.healthy for p in self.pods)
            and all(g.healthy for g in self.gateways)
        )

    def gateway(self, name: str) -> lab_gateways.GatewayStatus:
        for gateway in self.gateways:
            if gateway.gateway == name:
                return gateway
        raise KeyError(name)

    def pod(self, key: str) -> PodStatus:
        for pod in self.pods:
            if pod.key == key:
                return pod
        raise KeyError(key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "healthy": self.healthy,
            "supervisor": {"pid": self.supervisor_pid, "alive": self.supervisor_alive},
            "external": list(self.external),
            "nodes": [
                {
                    "name": n.name,
                    "netns": n.netns,
                    "addresses": list(n.addresses),
                    "podCIDRs": list(n.pod_cidrs),
                    "present": n.netns_present,
                    "pods": n.pods,
                }
                for n in self.nodes
            ],
            "pods": [
                {
                    "name": p.key,
                    "node": p.node,
                    "netns": p.netns,
                    "hostNetwork": p.host_network,
                    "ips": list(p.ips),
                    "ports": list(p.ports),
                    "present": p.netns_present,
                    "workload": p.workload,
                    "pid": p.pid,
                    "restarts": p.restarts,
                    "lastExit": p.last_exit,
                    "message": p.message,
                    "portStates": list(p.port_states),
                }
                for p in self.pods
            ],
            "gateways": [g.as_dict() for g in self.gateways],
            "gatewayWarnings": list(self.gateway_warnings),
        }


@dataclass
class DownReport:
    lab: str
    namespaces: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def require_root() -> None:
    if not kernel.is_root():
        raise LabError(
            "the node lab needs root (network namespaces, CNI plugins): run netlet as root, "
            "e.g. with sudo; every other netlet command works without it"
        )


def list_labs(run_dir: Path = names.DEFAULT_RUN_DIR) -> list[str]:
    try:
        return sorted(
            p.name for p in run_dir.iterdir() if p.is_dir() and names.LAB_NAME_RE.match(p.name)
        )
    except FileNotFoundError:
        return []


class Lab:
    """A running lab. Make one with `Lab.up(state)` or attach with `Lab.open(name)`."""

    def __init__(
        self, name: str, plan: LabPlan, options: LabOptions, state: ClusterState | None = None
    ) -> None:
        self.name = name
        self.plan = plan
        self.options = options
        self.state = state
        self.journal = Journal(name, options.run_dir)

    # Context manager: tests use `with Lab.up(...) as lab:` so failures still clean up.

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    # Opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, name: str = names.DEFAULT_LAB, options: LabOptions | None = None) -> Lab:
        options = options or LabOptions()
        names.check_lab_name(name)
        journal = Journal(name, options.run_dir)
        if not journal.plan_file.exists():
            raise LabError(f"no lab named {name!r} is up (no {journal.plan_file}); run `netlet up`")
        return cls(name, plan_from_json(journal.plan_file.read_text()), options)

    @classmethod
    def up(
        cls,
        state: ClusterState,
        name: str = names.DEFAULT_LAB,
        *,
        options: LabOptions | None = None,
        progress: Progress | None = None,
    ) -> Lab:
        """Make the lab match `state`; return when every workload is ready."""
        options = options or LabOptions()
        require_root()
        names.check_lab_name(name)
        plan = make_plan(state, name)
        check_plugins(plan, options)
        journal = Journal(name, options.run_dir)
        fresh = not journal.plan_file.exists() and not (journal.dir / "topology.json").exists()
        with journal.locked():
            builder = Builder(
                plan, options, journal, progress or (lambda *_: None), _gateway_step(state)
            )
            try:
                final = builder.run()
            except BaseException as exc:
                problems = builder.undo.run()
                builder.restore_workloads()
                if fresh:
                    remove_tree(journal.dir)
                if isinstance(exc, LabError) and problems:
                    raise LabError(f"{exc}\n(rollback: {'; '.join(problems)})") from exc
                raise
        _write_back(state, final)
        return cls(name, final, options, state)

    # Observing ----------------------------------------------------------------------------

    def netns(self, who: str) -> str:
        """The namespace of `ns/pod`, `node/NAME`, `gateway/NS/NAME` or `external`."""
        if who == "external":
            return self.plan.external.netns
        if who.startswith(lab_gateways.KEY_PREFIX):
            self.journal.load()
            record = self.journal.topology.get(who)
            if record is None:
                raise LabError(f"lab {self.name} has no {who.replace('/', ' ', 1)}")
            return record.netns
        if who.startswith("node/"):
            try:
                return self.plan.node(who[5:]).netns
            except KeyError:
                raise LabError(f"lab {self.name} has no node {who[5:]!r}") from None
        if "/" not in who:
            who = f"default/{who}"
        try:
            return self.plan.pod(who).netns
        except KeyError:
            raise LabError(f"lab {self.name} has no pod {who!r}") from None

    def exec(
        self,
        who: str,
        argv: Sequence[str],
        *,
        timeout: float | None = 30.0,
        input: str | None = None,
        capture: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside a pod's (or node's, or the external) namespace."""
        require_root()
        netns = self.netns(who)
        if not kernel.netns_exists(netns):
            raise LabError(f"{who}: namespace {netns} is gone; run `netlet up` again")
        if not argv:
            raise LabError("exec needs a command")
        return subprocess.run(
            ["ip", "netns", "exec", netns, *argv],
            input=input,
            capture_output=capture,
            text=True,
            timeout=timeout,
            check=False,
        )

    def status(self) -> LabStatus:
        data = read_json(self.journal.dir / STATUS_FILE) or {}
        workers = data.get("workers", {})
        sup_pid = supervisor_pid(self.journal)
        sup_alive = sup_pid is not None and kernel.pid_alive(sup_pid)
        pods = []
        for pod in self.plan.pods:
            w = workers.get(pod.key)
            state = "missing" if w is None else str(w["state"])
            pid = w.get("pid") if w else None
            if w is not None and state == "ready" and (pid is None or not kernel.pid_alive(pid)):
                state = "dead"
            if not sup_alive:
                state = "unsupervised" if state == "ready" else state
            pods.append(
                PodStatus(
                    pod.key,
                    pod.node,
                    pod.netns,
                    pod.host_network,
                    pod.ips,
                    tuple(p.label for p in pod.ports),
                    kernel.netns_exists(pod.netns),
                    state,
                    pid,
                    int(w.get("restarts", 0)) if w else 0,
                    w.get("lastExit") if w else None,
                    w.get("message") if w else None,
                    tuple(f"{k} {v}" for k, v in (w.get("ports") or {}).items()) if w else (),
                )
            )
        counts: dict[str, int] = {}
        for pod in self.plan.pods:
            counts[pod.node] = counts.get(pod.node, 0) + 1
        nodes = tuple(
            NodeStatus(
                n.name,
                n.netns,
                n.addresses,
                n.pod_cidrs,
                kernel.netns_exists(n.netns),
                counts.get(n.name, 0),
            )
            for n in self.plan.nodes
        )
        gateways, warnings = lab_gateways.gateway_statuses(self.journal, workers, sup_alive)
        return LabStatus(
            self.name,
            nodes,
            tuple(pods),
            self.plan.external.addresses,
            sup_pid,
            sup_alive,
            gateways,
            warnings,
        )

    def wait_healthy(self, timeout: float = 10.0) -> LabStatus:
        """Wait until every workload is ready again (after a kill, say)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status.healthy or time.monotonic() > deadline:
                return status
            time.sleep(0.05)

    def probe(
        self,
        *,
        to: str = "all",
        ports: str | Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        parallelism: int = DEFAULT_PARALLELISM,
        plan: LabPlan | None = None,
        targets: Sequence[Target] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ProbeMatrix:
        """Connect from every source (pods and `external`) to every target; see probe.py.
        `plan` may carry other targets (e.g. Services loaded from newer manifests);
        `targets` replaces the chosen targets altogether."""
        require_root()
        if targets is None:
            targets = select_targets(plan or self.plan, to, PortFilter.parse(ports))
        chosen = select_sources(self.plan, sources)
        if sources is not None:
            unknown = sorted(set(sources) - {s.name for s in chosen})
            if unknown:
                raise LabError(f"lab {self.name} has no source {', '.join(unknown)}")
        return run_probes(
            chosen, targets, timeout=timeout, parallelism=parallelism, progress=progress
        )

    # Tearing down -------------------------------------------------------------------------

    def down(self) -> DownReport:
        return down(self.name, self.options)


def down(name: str = names.DEFAULT_LAB, options: LabOptions | None = None) -> DownReport:
    """Remove everything the lab made and verify it is gone. Works after a crash."""
    options = options or LabOptions()
    require_root()
    names.check_lab_name(name)
    journal = Journal(name, options.run_dir)
    report = DownReport(name)
    if not journal.exists():
        _verify(journal, {}, report)
        if report.leftovers:
            raise LabError(_leftover_message(report))
        return report
    with journal.locked():
        journal.load()
        recorded = journal.recorded_netns()
        inodes = {n: i for n, i in recorded.items() if i is not None}
        for netns in recorded:
            if kernel.netns_exists(netns):
                inodes[netns] = kernel.netns_inode(netns)
        report.processes.extend(stop_supervisor(journal))
        left = kernel.kill_and_wait(kernel.pids_in_netns(inodes.values()), timeout=2.0)
        if left:
            report.warnings.append(f"processes still running in the lab: {left}")
        pods = journal.pods()
        with ThreadPoolExecutor(max_workers=options.parallelism) as pool:
            for key, problems in zip(
                pods,
                pool.map(
                    lambda item: teardown_pod(journal, item[0], item[1], options), pods.items()
                ),
                strict=True,
            ):
                report.warnings.extend(f"Pod {key}: {p}" for p in problems)
                report.namespaces.append(pods[key].netns)
        for key in sorted(journal.topology, key=_topology_order):
            record = journal.topology[key]
            kernel.netns_delete(record.netns)
            report.namespaces.append(record.netns)
        journal.topology.clear()
        _verify(journal, inodes, report)
    remove_tree(journal.dir)
    if journal.dir.exists():
        report.leftovers.append(f"directory {journal.dir}")
    if report.leftovers:
        raise LabError(_leftover_message(report))
    return report


def _leftover_message(report: DownReport) -> str:
    return f"lab {report.lab}: left behind after down: " + "; ".join(report.leftovers)


def _topology_order(key: str) -> int:
    # Nodes and the external client before the fabric they hang on.
    return 1 if key == "fabric" else 0


def _verify(journal: Journal, inodes: dict[str, int], report: DownReport) -> None:
    for netns in sorted(inodes):
        if kernel.netns_exists(netns):
            report.leftovers.append(f"namespace {netns}")
    # Processes can keep an unmounted namespace alive: none may be left in ours.
    deadline = time.monotonic() + 2.0
    while True:
        procs = kernel.pids_in_netns(inodes.values())
        if not procs or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if procs:
        report.leftovers.append(f"processes {sorted(procs)}")
    # The lab never makes links in the machine's namespace; check that none carries its names.
    with IPRoute() as ipr:
        prefix = names.ifname_prefix(journal.lab)
        ours = [
            str(link.get("ifname"))
            for link in ipr.get_links()
            if str(link.get("ifname")).startswith(prefix)
        ]
    if ours:
        report.leftovers.append(f"links in the machine's namespace: {ours}")
    strays = [n for n in kernel.list_netns(names.netns_prefix(journal.lab)) if n not in inodes]
    if strays:
        report.warnings.append(
            f"namespaces named like this lab's but not on its record (left alone): {strays}"
        )


def _gateway_step(state: ClusterState) -> Callable[[Builder, LabPlan], list[dict[str, Any]]]:
    """The Builder's Gateway step, on `state` with the pod IPs the CNI plugins gave."""

    def step(builder: Builder, plan: LabPlan) -> list[dict[str, Any]]:
        _write_back(state, plan)
        return lab_gateways.reconcile(builder, plan, state)

    return step


def _write_back(state: ClusterState, plan: LabPlan) -> None:
    """Pod IPs as the CNI plugins assigned them, into the state the brains read."""
    for pod_plan in plan.pods:
        if pod_plan.host_network:
            continue
        pod = state.get(Pod, pod_plan.namespace, pod_plan.name)
        if pod is None or pod.ips == pod_plan.ips:
            continue
        status = pod.status.model_copy(
            update={
                "pod_ip": pod_plan.ips[0] if pod_plan.ips else None,
                "pod_ips": tuple(PodIP(ip=ip) for ip in pod_plan.ips),
            }
        )
        state.apply(pod.model_copy(update={"status": status}), state.origin(pod))
