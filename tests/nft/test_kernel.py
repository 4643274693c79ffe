"""The real kernel (root): transactions are atomic, the fake agrees, syncs land.

Each test works in a network namespace of its own (fixture `netns`), never in
the machine's. nft(8) "Atomic ruleset replacement": an `nft -f` input is one
transaction.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from netlet.dataplane.nft.fake import FakeNft
from netlet.dataplane.nft.model import Chain, Element, Family, NftError, Rule, Table, Transaction
from netlet.dataplane.nft.node import ClusterProgrammer, fake_runners
from netlet.dataplane.nft.runner import NftRunner, summarize
from tests.nft.test_fake import CASES, base
from tests.nft.test_golden import CHANGES, small_cluster

pytestmark = pytest.mark.root

GOLDEN = Path(__file__).parent / "golden"


def structure(runner: NftRunner, family: Family, name: str) -> dict[str, object] | None:
    data = runner.list_table(family, name)
    return None if data is None else summarize(data)


def fake_structure(fake: FakeNft, family: Family, name: str) -> dict[str, object] | None:
    table = fake.table(family, name)
    if table is None:
        return None
    return {
        "chains": {n: len(c.rules) for n, c in table.chains.items()},
        "sets": {n: len(table.elements[n]) for n in table.sets},
    }


@pytest.mark.parametrize(
    "name", sorted(p.name for p in GOLDEN.glob("*.nft") if not p.name.startswith("partial-"))
)
def test_every_golden_ruleset_loads_into_the_kernel_as_it_is(netns: str, name: str) -> None:
    text = (GOLDEN / name).read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    NftRunner(netns).run_text(body + "\n")
    listed = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "list", "tables"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "table ip netlet" in listed


@pytest.mark.parametrize(("build", "error"), [pytest.param(b, e, id=i) for i, b, e in CASES])
def test_the_kernel_accepts_and_refuses_what_the_fake_does(
    netns: str, build, error: str | None
) -> None:  # type: ignore[no-untyped-def]
    runner = NftRunner(netns)
    runner.run(base(Transaction(Family.IP, "t")))
    before = structure(runner, Family.IP, "t")
    tx = Transaction(Family.IP, "t")
    build(tx)
    if error is None:
        runner.run(tx)
        fake = FakeNft()
        fake.run(base(Transaction(Family.IP, "t")))
        fake.run(tx)
        assert structure(runner, Family.IP, "t") == fake_structure(fake, Family.IP, "t")
        return
    with pytest.raises(NftError) as info:
        runner.run(tx)
    assert info.value.message == error
    assert info.value.where == netns
    # Nothing of the refused transaction is in the kernel.
    assert structure(runner, Family.IP, "t") == before


def test_a_refused_transaction_names_its_statement_and_leaves_the_kernel_unchanged(
    netns: str,
) -> None:
    runner = NftRunner(netns)
    tx = Transaction(Family.IP, "t").add(Table()).add(Chain("a"))
    for i in range(5):
        tx.add(Element("s", (f"10.0.0.{i}",)))  # no set s: refused
    with pytest.raises(NftError) as info:
        runner.run(tx)
    assert info.value.message == "No such file or directory"
    assert info.value.statement is not None and info.value.statement.startswith(
        "add element ip t s {"
    )
    assert info.value.operations == (2, 3, 4, 5, 6)
    assert runner.list_table(Family.IP, "t") is None  # not even the table was created


def test_a_missing_namespace_is_a_clear_error() -> None:
    with pytest.raises(NftError, match="network namespace netlet-nope-0 does not exist"):
        NftRunner("netlet-nope-0").run(Transaction(Family.IP, "t").add(Table()))


@pytest.mark.parametrize("change", list(CHANGES))
def test_full_then_partial_syncs_leave_the_kernel_as_the_fake(netns: str, change: str) -> None:
    state = small_cluster()
    kernel = ClusterProgrammer(state, {"node-a": netns}, NftRunner)
    factory, fakes = fake_runners()
    fake = ClusterProgrammer(state, {"node-a": "fake"}, factory)
    try:
        for programmer in (kernel, fake):
            assert all(r.error is None for r in programmer.sync())
        CHANGES[change](state)
        for programmer in (kernel, fake):
            reports = programmer.sync()
            assert all(r.error is None and r.result and not r.result.full for r in reports), reports
        runner = NftRunner(netns)
        for name in ("netlet", "netlet-policy"):
            assert structure(runner, Family.IP, name) == fake_structure(
                fakes["fake"], Family.IP, name
            )
        # The collection of what the partial sync deferred lands the same way.
        for programmer in (kernel, fake):
            assert all(r.error is None for r in programmer.collect(force=True))
        for name in ("netlet", "netlet-policy"):
            assert structure(runner, Family.IP, name) == fake_structure(
                fakes["fake"], Family.IP, name
            )
        # `netlet down` removes the tables.
        kernel.remove()
        assert runner.list_table(Family.IP, "netlet") is None
        assert runner.list_table(Family.IP, "netlet-policy") is None
    finally:
        kernel.close()
        fake.close()


def test_a_failed_partial_sync_is_reported_and_the_next_sync_is_full(netns: str) -> None:
    state = small_cluster()
    programmer = ClusterProgrammer(state, {"node-a": netns}, NftRunner)
    try:
        programmer.sync()
        # Someone removes our table behind our back: the partial sync cannot apply.
        NftRunner(netns).delete_table(Family.IP, "netlet")
        CHANGES["endpoint-added"](state)
        reports = {r.table: r for r in programmer.sync()}
        assert reports["netlet"].error is not None
        assert "FAILED, nothing changed" in str(reports["netlet"])
        assert reports["netlet-policy"].error is None
        again = {r.table: r for r in programmer.sync()}
        result = again["netlet"].result
        assert result is not None and result.full and result.reason == "the previous sync failed"
        assert NftRunner(netns).list_table(Family.IP, "netlet") is not None
    finally:
        programmer.close()


def test_rules_the_fake_keeps_in_order_are_in_that_order_in_the_kernel(netns: str) -> None:
    runner = NftRunner(netns)
    tx = Transaction(Family.IP, "t").add(Table()).add(Chain("c"))
    for mark in (3, 1, 2):
        tx.add(Rule("c", f"meta mark {mark} accept"))
    runner.run(tx)
    text = runner.list_text(Family.IP, "t") or ""
    marks = [line.split()[2] for line in text.splitlines() if "meta mark" in line]
    assert marks == ["0x00000003", "0x00000001", "0x00000002"]


def test_a_dual_stack_node_loads_both_families_with_affinity_and_local_policy(netns: str) -> None:
    # IPv6 spells addresses and DNAT targets its own way ([addr]:port, ip6 daddr):
    # the kernel must take what the renderer writes for both families.
    from netlet.dataplane.nft.node import render_node
    from netlet.dataplane.nft.sync import full_sync
    from tests.services.conventions import load, node, pod, service
    from tests.services.test_flows import V6_NODE

    state = load(
        node("node-a", "172.18.0.2", "zone-a", ("InternalIP", V6_NODE)),
        pod("web-1", ["10.244.0.11", "fd00:10:244::11"], "node-a", {"app": "web"}),
        pod("web-2", ["10.244.0.12", "fd00:10:244::12"], "node-a", {"app": "web"}),
        service(
            "sticky",
            ["10.96.7.1", "fd00:10:96::71"],
            {"app": "web"},
            type="LoadBalancer",
            ipFamilyPolicy="RequireDualStack",
            ipFamilies=["IPv4", "IPv6"],
            externalTrafficPolicy="Local",
            sessionAffinity="ClientIP",
            loadBalancerSourceRanges=["fd00:1::/64", "10.1.0.0/16"],
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30700}],
            ingress=[{"ip": "192.0.2.70"}, {"ip": "fd00:2::70"}],
        ),
    )
    runner = NftRunner(netns)
    tables = render_node(state, "node-a", dual_stack=True)
    assert sorted((t.family.value, t.name) for t in tables) == [
        ("ip", "netlet"),
        ("ip", "netlet-policy"),
        ("ip6", "netlet"),
        ("ip6", "netlet-policy"),
    ]
    for desired in tables:
        runner.run(full_sync(desired))
    text = runner.list_text(Family.IP6, "netlet") or ""
    assert "dnat to [fd00:10:244::11]:8080" in text  # nft lists it without "ip6"
    assert "affinity-" in text and "timeout 3h" in text
