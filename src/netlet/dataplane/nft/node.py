"""Everything nftables one node gets, and keeping every node of a lab programmed.

Owns the glue between the brains and the kernel for a set of node namespaces:

- `render_node(state, node)`: the desired tables of one node (services `netlet`
  and policy `netlet-policy`, per family) - what `netlet render nftables` prints.
- `NodeTables`: one node's renderers and per-table `Syncer`s.
- `ClusterProgrammer`: follows a `ClusterState` (its change events feed the
  services brain's incremental table builders), and on `sync()` sends each node
  only what changed: a full sync first, then partial syncs; after them, the
  collection of deletions that were deferred long enough (`collect()`).

Invariant: each table is written by exactly one `Syncer`, and every sync is one
`nft -f` per table. A failed sync leaves that table as it was and marks it for
a full sync; the error is reported, the other tables still sync.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from netlet.cluster.state import ClusterState
from netlet.dataplane.nft.desired import DesiredTable
from netlet.dataplane.nft.fake import FakeNft
from netlet.dataplane.nft.model import Family, NftError, Table, Transaction
from netlet.dataplane.nft.policy import TABLE as POLICY_TABLE
from netlet.dataplane.nft.policy import PolicyRenderer
from netlet.dataplane.nft.services import TABLE as SERVICES_TABLE
from netlet.dataplane.nft.services import ServicesRenderer, families_of
from netlet.dataplane.nft.sync import Runner, Syncer, SyncResult, full_sync
from netlet.policy.compile import compile_program
from netlet.policy.program import PolicyProgram
from netlet.services.builder import ProxyConfig, ServiceTableBuilder, build_table
from netlet.services.changes import TableDiff as ServiceTableDiff
from netlet.services.table import ServiceTable

TABLES = (SERVICES_TABLE, POLICY_TABLE)


def render_node(
    state: ClusterState,
    node: str,
    *,
    dual_stack: bool = False,
    program: PolicyProgram | None = None,
    proxy: ProxyConfig | None = None,
) -> list[DesiredTable]:
    """The desired tables of `node`: services then policy, IPv4 then IPv6."""
    table = build_table(state, node, proxy)
    families = families_of(table, dual_stack or state.config.dual_stack)
    services = ServicesRenderer(dual_stack or state.config.dual_stack).full(table)
    policy = PolicyRenderer(node, families).render(program or compile_program(state))
    return [services[f] for f in families] + [policy[f] for f in families]


def ruleset_text(tables: list[DesiredTable]) -> str:
    """The canonical sorted ruleset of `tables` (golden-file format, valid `nft -f`)."""
    fake = FakeNft()
    for desired in tables:
        fake.run(full_sync(desired))
    return fake.dump()


@dataclass
class TableSync:
    node: str
    table: str
    family: Family
    result: SyncResult | None = None
    error: NftError | None = None

    def __str__(self) -> str:
        where = f"{self.node}: {self.family} {self.table}"
        if self.error is not None:
            return f"{where}: FAILED, nothing changed: {self.error}"
        assert self.result is not None
        if self.result.full:
            kind = f"full sync ({self.result.reason})"
        elif self.result.reason == "collection":
            kind = "collection of deferred deletions"
        else:
            kind = "partial sync"
        tail = f", {self.result.deferred} deletions deferred" if self.result.deferred else ""
        return f"{where}: {kind}, {self.result.operations} operations{tail}"


@dataclass
class NodeTables:
    """One node: its renderers and a syncer per (family, table)."""

    node: str
    runner: Runner
    dual_stack: bool = False
    services: ServicesRenderer = field(init=False)
    policy: PolicyRenderer | None = field(init=False, default=None)
    syncers: dict[tuple[Family, str], Syncer] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.services = ServicesRenderer(self.dual_stack)

    def desired(
        self, services: ServiceTable | ServiceTableDiff, program: PolicyProgram
    ) -> list[DesiredTable]:
        if isinstance(services, ServiceTable):
            svc_tables = self.services.full(services)
        else:
            svc_tables = self.services.update(services)
        families = tuple(svc_tables)
        if self.policy is None or self.policy.families != families:
            self.policy = PolicyRenderer(self.node, families)
        pol_tables = self.policy.render(program)
        return [svc_tables[f] for f in families] + [pol_tables[f] for f in families]

    def apply(self, tables: list[DesiredTable]) -> list[TableSync]:
        out = []
        wanted = {(t.family, t.name) for t in tables}
        for key in list(self.syncers):
            if key not in wanted:
                # A family no longer in use (the cluster stopped being dual-stack).
                self._delete_table(*key)
                del self.syncers[key]
        for desired in tables:
            key = (desired.family, desired.name)
            syncer = self.syncers.get(key)
            if syncer is None:
                syncer = self.syncers[key] = Syncer(self.runner)
            report = TableSync(self.node, desired.name, desired.family)
            try:
                report.result = syncer.sync(desired)
            except NftError as exc:
                report.error = exc
            out.append(report)
        return out

    def collect(self, force: bool = False) -> list[TableSync]:
        """Run each table's collection that is due (every pending one with `force`)."""
        out = []
        for (family, name), syncer in self.syncers.items():
            report = TableSync(self.node, name, family)
            try:
                report.result = syncer.collect(force)
            except NftError as exc:
                report.error = exc
            if report.result is not None or report.error is not None:
                out.append(report)
        return out

    def _delete_table(self, family: Family, name: str) -> None:
        tx = Transaction(family, name)
        tx.add(Table()).delete(Table())
        self.runner.run(tx)

    def remove(self) -> None:
        """Delete this node's tables (`netlet down`)."""
        families = {f for f, _ in self.syncers} | {Family.IP}
        for family in sorted(families):
            for name in TABLES:
                self._delete_table(family, name)
        for syncer in self.syncers.values():
            syncer.reset("the table was removed")


RunnerFactory = Callable[[str], Runner]


def fake_runners() -> tuple[RunnerFactory, dict[str, FakeNft]]:
    """A factory of in-memory kernels, one per namespace, and the dict that holds them."""
    kernels: dict[str, FakeNft] = {}

    def make(netns: str) -> Runner:
        return kernels.setdefault(netns, FakeNft())

    return make, kernels


class ClusterProgrammer:
    """Keeps the nftables of every node current with a ClusterState.

    `nodes` maps node names to network namespaces. The state's change events go
    to one incremental services table builder per node; `sync()` turns what they
    accumulated into partial syncs (the first sync of each table is full).
    """

    def __init__(
        self,
        state: ClusterState,
        nodes: Mapping[str, str],
        runner_factory: RunnerFactory,
        *,
        dual_stack: bool = False,
        proxy: ProxyConfig | None = None,
    ) -> None:
        self.state = state
        self.namespaces = dict(nodes)
        self.dual_stack = dual_stack or state.config.dual_stack
        self.proxy = proxy
        self.nodes = {
            name: NodeTables(name, runner_factory(netns), self.dual_stack)
            for name, netns in self.namespaces.items()
        }
        self._builders = {
            name: ServiceTableBuilder(state, name, proxy, follow=True) for name in self.namespaces
        }
        self._synced = False

    def close(self) -> None:
        for builder in self._builders.values():
            builder.close()

    def sync(self) -> list[TableSync]:
        program = compile_program(self.state)
        reports: list[TableSync] = []
        for name, tables in self.nodes.items():
            builder = self._builders[name]
            diff = builder.sync()
            services: ServiceTable | ServiceTableDiff = diff if self._synced else builder.table
            reports.extend(tables.apply(tables.desired(services, program)))
        self._synced = True
        # After every node got its changes: what was deferred long enough goes now.
        reports.extend(self.collect())
        return reports

    def collect(self, force: bool = False) -> list[TableSync]:
        """The due collections of every node (all pending deletions with `force`)."""
        return [report for tables in self.nodes.values() for report in tables.collect(force)]

    def remove(self) -> list[str]:
        """Delete every node's tables; returns the problems (a namespace already gone)."""
        problems = []
        for name, tables in self.nodes.items():
            try:
                tables.remove()
            except NftError as exc:
                problems.append(f"{name}: {exc}")
        return problems
