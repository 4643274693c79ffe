"""One `up`: reconcile what the journal says exists with the plan, undoably.

`Builder.run()` makes the lab match the plan: the skeleton (fabric, nodes,
external) first, then pods (namespace, CNI ADD; several at once), then the
Gateways (`gateways`: a step the caller passes, see gateways.py), then the
workloads and Gateway proxies (the supervisor's file, SIGHUP or a new
supervisor, wait for ready).
What exists and still matches the plan is kept (an `up` with nothing to do is a
few stat calls); what differs, was half-made by a crash or is gone is redone.
Each creation pushes its removal on `Undo`, which `Lab.up` runs in reverse when
a later step fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netlet.dataplane.lab import cni, kernel, names, topology
from netlet.dataplane.lab.errors import LabError
from netlet.dataplane.lab.journal import CREATING, READY, Journal, NsRecord, read_json, write_json
from netlet.dataplane.lab.plan import LabPlan, PodPlan, plan_from_json
from netlet.dataplane.lab.supervisor import PID_FILE, STATUS_FILE, WORKLOADS_FILE

if TYPE_CHECKING:
    from netlet.dataplane.lab.lab import LabOptions

Progress = Callable[[str, int, int], None]
# A step after the pods: makes what it needs, returns more supervisor entries.
ExtraStep = Callable[["Builder", LabPlan], list[dict[str, Any]]]


class Undo:
    """What one `up` created, to remove in reverse order if a later step fails."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, action: Callable[[], None]) -> None:
        self.steps.append((what, action))

    def run(self) -> list[str]:
        problems = []
        for what, action in reversed(self.steps):
            try:
                action()
            except Exception as exc:
                problems.append(f"rolling back {what}: {exc}")
        self.steps.clear()
        return problems


def supervisor_pid(journal: Journal) -> int | None:
    try:
        return int((journal.dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def stop_supervisor(journal: Journal) -> list[int]:
    pid = supervisor_pid(journal)
    if pid is None or not kernel.pid_alive(pid) or not is_our_supervisor(pid, journal):
        return []
    kernel.kill_and_wait([pid], timeout=5.0)
    return [pid]


def is_our_supervisor(pid: int, journal: Journal) -> bool:
    """The pid file may be stale after a reboot-less crash: check the command line."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(journal.dir).encode() in cmdline and any(b"supervisor" in part for part in cmdline)


def check_plugins(plan: LabPlan, options: LabOptions) -> None:
    conflists = [
        cni.loopback_conflist(),
        cni.pod_conflist(options.cni, "x", cni.host_local_ipam("", (), (), ()), options.mtu),
    ]
    missing = cni.missing_plugins(conflists, options.cni_path)
    if missing:
        raise LabError(
            f"CNI plugin binaries missing: {', '.join(missing)} (searched CNI_PATH "
            f"{':'.join(options.cni_path)}); install Debian's containernetworking-plugins"
        )
    if not shutil.which("ip"):
        raise LabError("`ip` (iproute2) is missing; install iproute2")


class Builder:
    """One `up`: reconcile the journal with the plan, remembering how to undo."""

    def __init__(
        self,
        plan: LabPlan,
        options: LabOptions,
        journal: Journal,
        progress: Progress,
        gateways: ExtraStep | None = None,
    ) -> None:
        self.gateways = gateways
        self.plan = plan
        self.options = options
        self.journal = journal
        self.progress = progress
        self.undo = Undo()
        self.previous_workloads: dict[str, Any] | None = None
        self.started_supervisor = False

    def run(self) -> LabPlan:
        journal = self.journal
        journal.dir.mkdir(parents=True, exist_ok=True)
        journal.cni_dir.mkdir(parents=True, exist_ok=True)
        journal.load()
        self.previous_workloads = read_json(journal.dir / WORKLOADS_FILE)
        old_plan = (
            plan_from_json(journal.plan_file.read_text()) if journal.plan_file.exists() else None
        )
        self.progress("network", 0, 1)
        rebuilt_nodes = self._topology(old_plan)
        plan = self._pods(rebuilt_nodes)
        extra = self.gateways(self, plan) if self.gateways is not None else []
        self.progress("workloads", 0, len(plan.pods) + len(extra))
        self._workloads(plan, extra)
        write_json(journal.plan_file, json.loads(plan.to_json()))
        return plan

    # Namespaces of the skeleton -------------------------------------------------------------

    def _make_ns(
        self, key: str, netns: str, spec: dict[str, Any], setup: Callable[[], None]
    ) -> None:
        """Record, create and configure one skeleton namespace (undone on failure)."""
        journal = self.journal
        old = journal.topology.get(key)
        if old is not None:
            kernel.netns_delete(old.netns)
        record = NsRecord(netns, CREATING, spec=spec)
        journal.topology[key] = record
        journal.save_topology()

        def remove() -> None:
            kernel.netns_delete(netns)
            journal.topology.pop(key, None)
            journal.save_topology()

        if kernel.netns_exists(netns):
            kernel.netns_delete(netns)  # a half-made namespace of a crashed run (on record)
        record.inode = kernel.netns_create(netns)
        self.undo.push(f"namespace {netns}", remove)
        journal.save_topology()
        setup()
        record.state = READY
        journal.save_topology()

    def _keep(self, key: str, netns: str, spec: dict[str, Any]) -> bool:
        record = self.journal.topology.get(key)
        return (
            record is not None
            and record.state == READY
            and record.netns == netns
            and record.spec == spec
            and kernel.netns_exists(netns)
        )

    def _topology(self, old_plan: LabPlan | None) -> set[str]:
        """Fabric, nodes, external; returns the names of nodes (re)built now."""
        plan, journal = self.plan, self.journal
        fabric_spec = {"bridge": plan.bridge}
        rebuild_all = not self._keep("fabric", plan.fabric_netns, fabric_spec)
        if rebuild_all:
            # Everything hangs on the fabric: start the skeleton afresh.
            for key in [k for k in journal.topology if k != "fabric"]:
                kernel.netns_delete(journal.topology.pop(key).netns)
            self._make_ns(
                "fabric",
                plan.fabric_netns,
                fabric_spec,
                lambda: topology.setup_fabric(plan.fabric_netns, plan.bridge),
            )
        wanted = {f"node/{n.name}" for n in plan.nodes}
        for key in [k for k in journal.topology if k.startswith("node/") and k not in wanted]:
            self._remove_node(key)
        rebuilt: set[str] = set()
        for node in plan.nodes:
            key = f"node/{node.name}"
            spec = {
                "addresses": list(node.addresses),
                "pod_cidrs": list(node.pod_cidrs),
                "port": node.fabric_port,
            }
            if self._keep(key, node.netns, spec):
                old_routes = (
                    old_plan.node(node.name).routes
                    if old_plan and node.name in {n.name for n in old_plan.nodes}
                    else ()
                )
                if set(old_routes) != set(node.routes):
                    topology.sync_routes(node.netns, node.routes, old_routes)
                continue
            self._remove_pods_of(node.name)
            self._make_ns(
                key,
                node.netns,
                spec,
                lambda n=node: topology.setup_node(  # type: ignore[misc]
                    n.netns, plan.fabric_netns, n.fabric_port, plan.bridge, n.addresses, n.routes
                ),
            )
            rebuilt.add(node.name)
        ext = plan.external
        ext_spec = {
            "addresses": list(ext.addresses),
            "routes": [[r.dst, r.via] for r in ext.routes],
        }
        if not self._keep("external", ext.netns, ext_spec):
            self._make_ns(
                "external",
                ext.netns,
                ext_spec,
                lambda: topology.setup_external(
                    ext.netns,
                    plan.fabric_netns,
                    ext.fabric_port,
                    plan.bridge,
                    ext.addresses,
                    ext.routes,
                ),
            )
        return rebuilt

    def _remove_node(self, key: str) -> None:
        record = self.journal.topology[key]
        self._remove_pods_of(key.split("/", 1)[1])
        kernel.netns_delete(record.netns)
        self.journal.topology.pop(key)
        self.journal.save_topology()

    def _remove_pods_of(self, node: str) -> None:
        for key, record in self.journal.pods().items():
            if record.spec.get("node") == node:
                teardown_pod(self.journal, key, record, self.options)

    # Pods --------------------------------------------------------------------------------

    def _pod_spec(self, pod: PodPlan) -> dict[str, Any]:
        node = self.plan.node(pod.node)
        ipam = cni.host_local_ipam(
            str(self.journal.cni_dir), node.pod_cidrs, node.gateways(), pod.ips
        )
        return {
            "node": pod.node,
            "node_netns": node.netns,
            "ips": list(pod.ips),
            "networks": [
                {"ifname": names.LOOPBACK_IFNAME, "conflist": cni.loopback_conflist()},
                {
                    "ifname": names.POD_IFNAME,
                    "conflist": cni.pod_conflist(
                        self.options.cni, names.network_name(self.plan.lab), ipam, self.options.mtu
                    ),
                },
            ],
            "container_id": pod.container_id,
            "args": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};"
            f"K8S_POD_INFRA_CONTAINER_ID={pod.container_id}",
        }

    def _pods(self, rebuilt_nodes: set[str]) -> LabPlan:
        journal = self.journal
        existing = journal.pods()
        wanted = {p.key: p for p in self.plan.pods if not p.host_network}
        for key, record in existing.items():
            if key not in wanted:
                teardown_pod(journal, key, record, self.options)
        todo: list[tuple[PodPlan, dict[str, Any]]] = []
        ips: dict[str, tuple[str, ...]] = {}
        for key, pod in wanted.items():
            spec = self._pod_spec(pod)
            old = existing.get(key)
            if (
                old is not None
                and old.state == READY
                and old.spec == spec
                and pod.node not in rebuilt_nodes
                and kernel.netns_exists(old.netns)
            ):
                ips[key] = tuple(result_ips(old))
                continue
            if old is not None:
                teardown_pod(journal, key, old, self.options)
            todo.append((pod, spec))
        total, done = len(todo), 0
        self.progress("pods", 0, total)
        with ThreadPoolExecutor(max_workers=max(1, self.options.parallelism)) as pool:
            futures = [pool.submit(self._add_pod, pod, spec) for pod, spec in todo]
            errors: list[BaseException] = []
            for (pod, _), future in zip(todo, futures, strict=True):
                try:
                    ips[pod.key] = future.result()
                except BaseException as exc:
                    errors.append(exc)
                done += 1
                self.progress("pods", done, total)
        if errors:
            raise errors[0]
        new_pods = tuple(p if p.host_network else _with_ips(p, ips[p.key]) for p in self.plan.pods)
        return LabPlan(
            self.plan.lab,
            self.plan.fabric_netns,
            self.plan.bridge,
            self.plan.nodes,
            self.plan.external,
            new_pods,
            self.plan.services,
            self.plan.service_cidrs,
            self.plan.warnings,
        )

    def _add_pod(self, pod: PodPlan, spec: dict[str, Any]) -> tuple[str, ...]:
        journal = self.journal
        record = NsRecord(pod.netns, CREATING, spec=spec)
        journal.save_pod(pod.key, record)

        def remove() -> None:
            teardown_pod(journal, pod.key, record, self.options)

        self.undo.push(f"Pod {pod.key}", remove)
        if kernel.netns_exists(pod.netns):
            kernel.netns_delete(pod.netns)
        record.inode = kernel.netns_create(pod.netns)
        journal.save_pod(pod.key, record)
        kernel.write_sysctl(names.netns_path(pod.netns), {"net.ipv6.conf.default.accept_dad": "0"})
        for network in spec["networks"]:
            entry = {"ifname": network["ifname"], "conflist": network["conflist"], "result": None}
            record.networks.append(entry)
            journal.save_pod(pod.key, record)
            entry["result"] = cni.add(
                network["conflist"], _invocation(pod.key, record, network["ifname"], self.options)
            )
            journal.save_pod(pod.key, record)
        record.state = READY
        journal.save_pod(pod.key, record)
        got = tuple(result_ips(record))
        if pod.ips and set(got) != set(pod.ips):
            raise LabError(f"Pod {pod.key}: CNI assigned {got}, the cluster state says {pod.ips}")
        return got

    # Workloads ---------------------------------------------------------------------------

    def _workloads(self, plan: LabPlan, extra: list[dict[str, Any]] | None = None) -> None:
        journal = self.journal
        generation = int((self.previous_workloads or {}).get("generation", 0)) + 1
        pods = [
            {
                "key": p.key,
                "namespace": p.namespace,
                "name": p.name,
                "node": p.node,
                "netns": str(names.netns_path(p.netns)),
                "ports": [
                    {"port": x.port, "protocol": x.protocol, "name": x.name, "http": x.http}
                    for x in p.ports
                ],
            }
            for p in plan.pods
        ]
        pods.extend(extra or [])
        write_json(journal.dir / WORKLOADS_FILE, {"generation": generation, "pods": pods})
        pid = supervisor_pid(journal)
        if pid is not None and kernel.pid_alive(pid) and is_our_supervisor(pid, journal):
            os.kill(pid, signal.SIGHUP)
        else:
            self._start_supervisor()
        self._wait_ready(generation, {str(p["key"]) for p in pods})

    def _start_supervisor(self) -> None:
        journal = self.journal
        (journal.dir / PID_FILE).unlink(missing_ok=True)
        with open(journal.dir / "supervisor.log", "ab") as log:
            launcher = subprocess.Popen(
                [sys.executable, "-m", "netlet.dataplane.lab.supervisor", str(journal.dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
            launcher.wait(timeout=30)
        self.started_supervisor = True

        def stop() -> None:
            stop_supervisor(journal)

        self.undo.push("the workload supervisor", stop)
        deadline = time.monotonic() + 10
        while supervisor_pid(journal) is None:
            if time.monotonic() > deadline:
                raise LabError(
                    f"the workload supervisor did not start; see {journal.dir / 'supervisor.log'}"
                )
            time.sleep(0.01)

    def _wait_ready(self, generation: int, keys: set[str]) -> None:
        deadline = time.monotonic() + self.options.ready_timeout
        status_file = self.journal.dir / STATUS_FILE
        while True:
            data = read_json(status_file) or {}
            workers = data.get("workers", {})
            if data.get("generation") == generation:
                failed = {k: w for k, w in workers.items() if k in keys and w["state"] == "failed"}
                if failed:
                    lines = [
                        f"{'Gateway ' + k[8:] if k.startswith('gateway/') else 'Pod ' + k}: "
                        f"{w['message']}"
                        for k, w in sorted(failed.items())
                    ]
                    raise LabError("workloads failed to start:\n  " + "\n  ".join(lines))
                ready = sum(1 for k in keys if workers.get(k, {}).get("state") == "ready")
                self.progress("workloads", ready, len(keys))
                if ready == len(keys):
                    return
            pid = supervisor_pid(self.journal)
            if pid is None or not kernel.pid_alive(pid):
                raise LabError(
                    f"the workload supervisor died; see {self.journal.dir / 'supervisor.log'}"
                )
            if time.monotonic() > deadline:
                waiting = sorted(k for k in keys if workers.get(k, {}).get("state") != "ready")
                limit = self.options.ready_timeout
                raise LabError(
                    f"workloads not ready after {limit:.0f} s: {', '.join(waiting[:10])}"
                )
            time.sleep(0.02)

    def restore_workloads(self) -> None:
        """After a rollback: the supervisor serves what it served before this `up`."""
        journal = self.journal
        if self.started_supervisor or not journal.dir.exists():
            return
        pid = supervisor_pid(journal)
        if self.previous_workloads is not None:
            previous = dict(self.previous_workloads)
            previous["generation"] = int(previous.get("generation", 0)) + 2
            write_json(journal.dir / WORKLOADS_FILE, previous)
            if pid is not None and kernel.pid_alive(pid):
                os.kill(pid, signal.SIGHUP)


def _with_ips(pod: PodPlan, ips: tuple[str, ...]) -> PodPlan:
    return PodPlan(
        pod.namespace,
        pod.name,
        pod.node,
        pod.netns,
        pod.host_network,
        ips,
        pod.ports,
        pod.container_id,
    )


def result_ips(record: NsRecord) -> list[str]:
    for network in record.networks:
        if network.get("ifname") == names.POD_IFNAME and network.get("result"):
            return cni.pod_ips_from_result(network["result"])
    return []


def _invocation(key: str, record: NsRecord, ifname: str, options: LabOptions) -> cni.Invocation:
    spec = record.spec
    return cni.Invocation(
        container_id=spec["container_id"],
        netns=str(names.netns_path(record.netns)),
        ifname=ifname,
        args=spec["args"],
        plugin_netns=str(names.netns_path(spec["node_netns"])),
        cni_path=options.cni_path,
        who=f"Pod {key}",
    )


def teardown_pod(journal: Journal, key: str, record: NsRecord, options: LabOptions) -> list[str]:
    """CNI DEL every attachment (reverse order, stored result), then delete the namespace."""
    problems: list[str] = []
    node_ns = record.spec.get("node_netns")
    if node_ns and kernel.netns_exists(node_ns) and kernel.netns_exists(record.netns):
        for network in reversed(record.networks):
            try:
                cni.delete(
                    network["conflist"],
                    _invocation(key, record, network["ifname"], options),
                    network.get("result"),
                )
            except LabError as exc:
                problems.append(str(exc))
    kernel.netns_delete(record.netns)
    _release_leases(journal.cni_dir, record.spec.get("container_id"))
    journal.drop_pod(key)
    return problems


def _release_leases(data_dir: Path, container_id: str | None) -> None:
    """Free host-local leases a DEL could not free (its node namespace was gone).
    host-local keeps one file per leased IP whose first line is the container id."""
    if not container_id or not data_dir.is_dir():
        return
    for path in data_dir.glob("*/*"):
        if path.name == "lock" or path.name.startswith("last_reserved_ip"):
            continue
        try:
            owner = path.read_text().splitlines()[0].strip()
        except (OSError, IndexError):
            continue
        if owner == container_id:
            path.unlink(missing_ok=True)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
