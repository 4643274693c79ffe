"""Programming a running node lab: each node namespace gets its nftables tables.

Owns the link between a lab (netlet.dataplane.lab: a plan of node namespaces,
pods with the IPs their CNI plugin gave them) and `ClusterProgrammer`:

- `adopt_lab_ips(state, plan)`: the pods' real IPs into the state the brains
  read (the lab does the same after `up`; a separate process reading the plan
  file needs it again);
- `LabTables`: keeps every node of one lab programmed; notices a node namespace
  that `up` rebuilt (its inode changed: the kernel dropped its tables) and gives
  that node a full sync;
- `remove_lab_tables(plan)`: delete netlet's tables from every node namespace
  (`netlet down` does this before the namespaces go).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from netlet.cluster.state import ClusterState
from netlet.dataplane.lab.plan import LabPlan
from netlet.dataplane.nft.model import Family, NftError, Table, Transaction
from netlet.dataplane.nft.node import TABLES, ClusterProgrammer, TableSync
from netlet.dataplane.nft.runner import NETNS_DIR, NftRunner
from netlet.resources.core import Pod, PodIP


def adopt_lab_ips(state: ClusterState, plan: LabPlan) -> int:
    """Pod IPs as the lab's CNI plugins assigned them; returns how many pods changed."""
    changed = 0
    for pod_plan in plan.pods:
        if pod_plan.host_network or not pod_plan.ips:
            continue
        pod = state.get(Pod, pod_plan.namespace, pod_plan.name)
        if pod is None or pod.ips == pod_plan.ips:
            continue
        status = pod.status.model_copy(
            update={
                "pod_ip": pod_plan.ips[0],
                "pod_ips": tuple(PodIP(ip=ip) for ip in pod_plan.ips),
            }
        )
        state.apply(pod.model_copy(update={"status": status}), state.origin(pod))
        changed += 1
    return changed


def _inode(netns: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / netns).st_ino
    except FileNotFoundError:
        return None


@dataclass
class LabTables:
    """The nftables of every node of one lab, kept in sync with a ClusterState."""

    state: ClusterState
    plan: LabPlan
    dual_stack: bool = False
    programmer: ClusterProgrammer = field(init=False)
    _inodes: dict[str, int | None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.programmer = ClusterProgrammer(
            self.state,
            {n.name: n.netns for n in self.plan.nodes},
            NftRunner,
            dual_stack=self.dual_stack,
        )

    def sync(self) -> list[TableSync]:
        for node in self.plan.nodes:
            inode = _inode(node.netns)
            if node.name in self._inodes and self._inodes[node.name] != inode:
                for syncer in self.programmer.nodes[node.name].syncers.values():
                    syncer.reset(f"namespace {node.netns} was recreated")
            self._inodes[node.name] = inode
        return self.programmer.sync()

    def close(self) -> None:
        self.programmer.close()


def remove_lab_tables(plan: LabPlan) -> list[str]:
    """Delete netlet's tables from every node namespace that still exists."""
    problems = []
    for node in plan.nodes:
        if _inode(node.netns) is None:
            continue
        runner = NftRunner(node.netns)
        for family in (Family.IP, Family.IP6):
            for name in TABLES:
                tx = Transaction(family, name)
                tx.add(Table()).delete(Table())
                try:
                    runner.run(tx)
                except NftError as exc:
                    problems.append(f"node {node.name}: {exc}")
    return problems
