"""The incremental table builder and the change API (input to partial syncs).

The invariant: after any sequence of ClusterState changes, the incrementally kept table
equals a table built from scratch, and each sync reports exactly the Services whose
entries changed. (Virtual IPs and Service Proxies: kube-proxy "only making updates where
Services or EndpointSlices have actually changed"; a node label change is a full sync.)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlet.cluster.state import ClusterState
from netlet.resources.core import EndpointSlice, Node, Pod, Service
from netlet.services.builder import ServiceTableBuilder, build_table, diff_states
from netlet.services.changes import ChangeKind, diff_tables
from netlet.services.table import ServiceName
from tests.services.conventions import (
    NODE_A,
    NODE_B,
    Doc,
    endpoint_slice,
    load,
    node,
    pod,
    service,
)


def _base() -> ClusterState:
    return load(
        node("node-a", NODE_A, "zone-a"),
        node("node-b", NODE_B, "zone-b"),
        pod("web-1", "10.244.0.11", "node-a", {"app": "web"}),
        pod("web-2", "10.244.1.12", "node-b", {"app": "web"}),
        pod("api-1", "10.244.0.21", "node-a", {"app": "api"}),
        service("web", "10.96.0.10", {"app": "web"}),
        service("api", "10.96.0.20", {"app": "api"}, externalIPs=["192.0.2.5"]),
        service("manual", "10.96.0.30", None, ports=[{"name": "h", "port": 80}]),
        endpoint_slice(
            "manual-1", "manual", [{"addresses": ["10.1.0.1"]}], [{"name": "h", "port": 80}]
        ),
    )


def _obj(state: ClusterState, kind: type, name: str) -> object:
    found = state.get(kind, "" if kind is Node else "default", name)
    assert found is not None
    return found


def _model(kind: type, doc: Doc) -> object:
    return kind.model_validate(doc)


Step = Callable[[ClusterState], None]


def change_slice(state: ClusterState) -> None:
    es = _obj(state, EndpointSlice, "manual-1")
    doc = endpoint_slice(
        "manual-1",
        "manual",
        [{"addresses": ["10.1.0.1"]}, {"addresses": ["10.1.0.2"]}],
        [{"name": "h", "port": 80}],
    )
    state.apply(es.model_validate(doc))


def add_selector_service(state: ClusterState) -> None:
    state.apply(_model(Service, service("web2", "10.96.0.11", {"app": "web"})))


def pod_not_ready(state: ClusterState) -> None:
    state.apply(_model(Pod, pod("web-2", "10.244.1.12", "node-b", {"app": "web"}, ready=False)))


def pod_relabelled(state: ClusterState) -> None:
    state.apply(_model(Pod, pod("web-2", "10.244.1.12", "node-b", {"app": "api"})))


def delete_service(state: ClusterState) -> None:
    state.delete(Service, "default", "api")


def manifest_slice_for_selector_service(state: ClusterState) -> None:
    doc = endpoint_slice(
        "web-given", "web", [{"addresses": ["10.2.0.1"]}], [{"name": "http", "port": 8080}]
    )
    state.apply(_model(EndpointSlice, doc))


def conflicting_external_ip(state: ClusterState) -> None:
    state.apply(
        _model(Service, service("aaa", "10.96.0.40", {"app": "web"}, externalIPs=["192.0.2.5"]))
    )


def unrelated_pod(state: ClusterState) -> None:
    state.apply(_model(Pod, pod("other", "10.244.0.99", "node-a", {"app": "nobody"})))


def node_relabelled(state: ClusterState) -> None:
    state.apply(_model(Node, node("node-a", NODE_A, "zone-z")))


SCRIPTS: list[tuple[str, Step, set[str], bool]] = [
    (
        "an EndpointSlice change recomputes only its Service",
        change_slice,
        {"default/manual"},
        False,
    ),
    (
        "a new selector Service picks up existing pods",
        add_selector_service,
        {"default/web2"},
        False,
    ),
    ("a pod that turns not-ready leaves its Service", pod_not_ready, {"default/web"}, False),
    (
        "a relabelled pod moves between Services",
        pod_relabelled,
        {"default/web", "default/api"},
        False,
    ),
    ("a deleted Service disappears", delete_service, {"default/api"}, False),
    (
        "a manifest slice replaces the controller's slices",
        manifest_slice_for_selector_service,
        {"default/web"},
        False,
    ),
    (
        "a second claim on an externalIP is recorded",
        conflicting_external_ip,
        {"default/aaa"},
        False,
    ),
    ("a pod no Service selects changes nothing", unrelated_pod, set(), False),
    ("a node label change is a full sync", node_relabelled, set(), True),
]


@pytest.mark.parametrize("step,changed,full", [s[1:] for s in SCRIPTS], ids=[s[0] for s in SCRIPTS])
def test_incremental_sync_matches_a_full_build(step: Step, changed: set[str], full: bool) -> None:
    state = _base()
    builder = ServiceTableBuilder(state, "node-a", follow=True)
    before = builder.table
    step(state)
    diff = builder.sync()
    builder.close()
    assert builder.table == build_table(state, "node-a")
    assert diff.full_sync == full
    if not full:
        assert {str(c.service) for c in diff.services} == changed
    # The change API agrees with diffing the two tables.
    assert {str(c.service) for c in diff_tables(before, builder.table).services} == {
        str(c.service) for c in diff.services
    }


def test_unchanged_services_keep_their_entry_objects() -> None:
    state = _base()
    builder = ServiceTableBuilder(state, "node-a", follow=True)
    before = builder.table
    change_slice(state)
    builder.sync()
    after = builder.table
    web = ServiceName("default", "web")
    assert all(before.entries[k] is after.entries[k] for k in after.services[web])


def test_endpoint_delta_names_the_endpoint_to_add() -> None:
    state = _base()
    builder = ServiceTableBuilder(state, "node-a", follow=True)
    change_slice(state)
    diff = builder.sync()
    (change,) = diff.services
    assert change.kind == ChangeKind.MODIFIED
    (port,) = change.modified_ports
    added, removed = change.endpoint_delta(port)
    assert ([str(e) for e in added], removed) == (["10.1.0.2:80"], ())


def test_a_released_external_ip_goes_back_to_the_other_claimant() -> None:
    state = _base()
    conflicting_external_ip(state)
    builder = ServiceTableBuilder(state, "node-a", follow=True)
    key = next(k for k in builder.table.service_ips if str(k[0]) == "192.0.2.5")
    assert builder.table.service_ips[key].name == "aaa"  # smallest name wins
    state.delete(Service, "default", "aaa")
    builder.sync()
    assert builder.table.service_ips[key].name == "api"
    assert builder.table == build_table(state, "node-a")


def test_no_pending_change_syncs_to_an_empty_diff() -> None:
    builder = ServiceTableBuilder(_base(), "node-a")
    diff = builder.sync()
    assert not diff and not builder.pending


def test_diff_from_nothing_adds_every_service_as_a_full_sync() -> None:
    table = build_table(_base(), "node-a")
    diff = diff_tables(None, table)
    assert diff.full_sync
    assert {c.kind for c in diff.services} == {ChangeKind.ADDED}
    assert {str(c.service) for c in diff.services} == {
        "default/web",
        "default/api",
        "default/manual",
    }


def test_diff_states_reports_a_removed_service() -> None:
    old = _base()
    new = _base()
    delete_service(new)
    diff = diff_states(old, new, "node-a")
    (change,) = diff.services
    assert (str(change.service), change.kind, diff.full_sync) == (
        "default/api",
        ChangeKind.REMOVED,
        False,
    )


# Property: any sequence of pod/service/slice changes keeps incremental == full.

LABELS = st.sampled_from(["a", "b", "c"])
OPS = st.lists(
    st.tuples(
        st.sampled_from(["pod", "unpod", "svc", "unsvc", "slice", "unslice"]),
        st.integers(0, 3),
        LABELS,
        st.booleans(),
    ),
    max_size=12,
)


def _apply(state: ClusterState, op: tuple[str, int, str, bool]) -> None:
    kind, i, label, flag = op
    if kind == "pod":
        node_name = "node-a" if flag else "node-b"
        ip = f"10.244.{0 if flag else 1}.{10 + i}"
        state.apply(_model(Pod, pod(f"p{i}", ip, node_name, {"app": label}, ready=i % 2 == 0)))
    elif kind == "unpod":
        state.delete(Pod, "default", f"p{i}")
    elif kind == "svc":
        extra = {"internalTrafficPolicy": "Local"} if flag else {}
        state.apply(_model(Service, service(f"s{i}", f"10.96.1.{i + 1}", {"app": label}, **extra)))
    elif kind == "unsvc":
        state.delete(Service, "default", f"s{i}")
    elif kind == "slice":
        doc = endpoint_slice(
            f"s{i}-x",
            f"s{i}",
            [{"addresses": [f"10.3.0.{i + 1}"], "nodeName": "node-a"}],
            [{"name": "http", "port": 80}],
        )
        state.apply(_model(EndpointSlice, doc))
    else:
        state.delete(EndpointSlice, "default", f"s{i}-x")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_any_change_sequence_keeps_the_incremental_table_exact(
    ops: list[tuple[str, int, str, bool]],
) -> None:
    state = load(node("node-a", NODE_A, "zone-a"), node("node-b", NODE_B, "zone-b"))
    builder = ServiceTableBuilder(state, "node-a", follow=True)
    for op in ops:
        _apply(state, op)
        if op[1] % 2:
            builder.sync()
    builder.sync()
    builder.close()
    assert builder.table == build_table(state, "node-a")
