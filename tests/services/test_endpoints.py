"""Merging slices and choosing endpoints, as kube-proxy does.

Written from: EndpointSlices (concepts/services-networking/endpoint-slices): conditions
("ready ... nil should be interpreted as true"), duplicate endpoints across slices,
address types; Virtual IPs and Service Proxies: "Traffic to terminating endpoints",
"Internal/External traffic policy"; Topology Aware Routing: "Safeguards" (hints are used
only when every endpoint has them) and Traffic Distribution (PreferSameNode).
"""

from __future__ import annotations

import ipaddress

import pytest

from netlet.resources.core import EndpointSlice, Protocol
from netlet.services.endpoints import categorize, merge_slices
from netlet.services.table import Endpoint


def _slice(name: str, endpoints: list[dict], ports: list[dict], **extra: object) -> EndpointSlice:
    data = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "s", **extra.pop("labels", {})},  # type: ignore[dict-item]
        },
        "addressType": extra.pop("address_type", "IPv4"),
        "endpoints": endpoints,
        "ports": ports,
    }
    return EndpointSlice.model_validate(data)


def _texts(endpoints: tuple[Endpoint, ...]) -> list[str]:
    return [str(ep) for ep in endpoints]


def test_unset_conditions_read_as_ready_serving_not_terminating() -> None:
    merged = merge_slices([_slice("a", [{"addresses": ["10.0.0.1"]}], [{"port": 80}])], 4, "n")
    (ep,) = merged[("", Protocol.TCP)]
    assert (ep.ready, ep.serving, ep.terminating) == (True, True, False)


MERGE_CASES = [
    (
        "a port without a name is the unnamed Service port",
        [_slice("a", [{"addresses": ["10.0.0.1"]}], [{"port": 80}])],
        ("", "TCP"),
        ["10.0.0.1:80"],
    ),
    (
        "a port without a number is ignored",
        [_slice("a", [{"addresses": ["10.0.0.1"]}], [{"name": "http"}])],
        ("http", "TCP"),
        None,
    ),
    (
        "the same endpoint in two slices counts once",
        [
            _slice("a", [{"addresses": ["10.0.0.1"]}], [{"name": "http", "port": 80}]),
            _slice(
                "b",
                [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}],
                [{"name": "http", "port": 80}],
            ),
        ],
        ("http", "TCP"),
        ["10.0.0.1:80", "10.0.0.2:80"],
    ),
    (
        "only the first address of an endpoint is used",
        [_slice("a", [{"addresses": ["10.0.0.1", "10.0.0.9"]}], [{"name": "http", "port": 80}])],
        ("http", "TCP"),
        ["10.0.0.1:80"],
    ),
    (
        "slices of another family are ignored",
        [
            _slice(
                "a",
                [{"addresses": ["fd00::1"]}],
                [{"name": "http", "port": 80}],
                address_type="IPv6",
            )
        ],
        ("http", "TCP"),
        None,
    ),
    (
        "slices labelled headless are not for kube-proxy",
        [
            _slice(
                "a",
                [{"addresses": ["10.0.0.1"]}],
                [{"name": "http", "port": 80}],
                labels={"service.kubernetes.io/headless": ""},
            )
        ],
        ("http", "TCP"),
        None,
    ),
    (
        "slices for another service proxy are not for kube-proxy",
        [
            _slice(
                "a",
                [{"addresses": ["10.0.0.1"]}],
                [{"name": "http", "port": 80}],
                labels={"service.kubernetes.io/service-proxy-name": "x"},
            )
        ],
        ("http", "TCP"),
        None,
    ),
    (
        "endpoints are ordered by address, numerically",
        [
            _slice(
                "a",
                [{"addresses": ["10.0.0.10"]}, {"addresses": ["10.0.0.9"]}],
                [{"name": "h", "port": 1}],
            )
        ],
        ("h", "TCP"),
        ["10.0.0.9:1", "10.0.0.10:1"],
    ),
    (
        "a UDP port is its own service port",
        [
            _slice(
                "a", [{"addresses": ["10.0.0.1"]}], [{"name": "dns", "port": 53, "protocol": "UDP"}]
            )
        ],
        ("dns", "UDP"),
        ["10.0.0.1:53"],
    ),
]


@pytest.mark.parametrize(
    "slices,key,expect", [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES]
)
def test_merge(slices: list[EndpointSlice], key: tuple[str, str], expect: list[str] | None) -> None:
    merged = merge_slices(slices, 4, "node-a")
    got = merged.get((key[0], Protocol(key[1])))
    assert (_texts(got) if got is not None else None) == expect


def test_a_copy_on_this_node_wins_over_a_remote_copy() -> None:
    slices = [
        _slice(
            "a", [{"addresses": ["10.0.0.1"], "nodeName": "node-b"}], [{"name": "h", "port": 1}]
        ),
        _slice(
            "b", [{"addresses": ["10.0.0.1"], "nodeName": "node-a"}], [{"name": "h", "port": 1}]
        ),
    ]
    merged = merge_slices(slices, 4, "node-a")
    (ep,) = next(iter(merged.values()))
    assert (ep.node, ep.local) == ("node-a", True)


def ep(
    last: int,
    *,
    node: str = "node-b",
    ready: bool = True,
    serving: bool | None = None,
    terminating: bool = False,
    zones: tuple[str, ...] = (),
    nodes: tuple[str, ...] = (),
) -> Endpoint:
    return Endpoint(
        ipaddress.ip_address(f"10.0.0.{last}"),
        80,
        ready,
        ready if serving is None else serving,
        terminating,
        node,
        None,
        node == "node-a",
        frozenset(zones),
        frozenset(nodes),
    )


CATEGORIZE_CASES = [
    (
        "ready endpoints are the cluster endpoints",
        [ep(1), ep(2, ready=False)],
        True,
        False,
        [1],
        [],
        True,
    ),
    (
        "serving terminating endpoints when none is ready",
        [
            ep(1, ready=False, serving=True, terminating=True),
            ep(2, ready=False, serving=False, terminating=True),
        ],
        True,
        False,
        [1],
        [],
        True,
    ),
    (
        "only serving endpoints that are also terminating are a fallback",
        [ep(1, ready=False, serving=True, terminating=False)],
        True,
        True,
        [],
        [],
        False,
    ),
    (
        "not-serving endpoints are never used",
        [ep(1, ready=False, serving=False)],
        True,
        False,
        [],
        [],
        False,
    ),
    (
        "local endpoints are this node's ready ones",
        [ep(1, node="node-a"), ep(2)],
        True,
        True,
        [1, 2],
        [1],
        True,
    ),
    (
        "local falls back to local serving terminating endpoints independently",
        [ep(1, node="node-a", ready=False, serving=True, terminating=True), ep(2)],
        True,
        True,
        [2],
        [1],
        True,
    ),
    ("no local endpoint: an empty local set", [ep(2)], False, True, [], [], True),
    (
        "zone hints for this zone narrow the cluster endpoints",
        [ep(1, zones=("zone-a",)), ep(2, zones=("zone-b",))],
        True,
        False,
        [1],
        [],
        True,
    ),
    (
        "one ready endpoint without hints disables zone hints",
        [ep(1, zones=("zone-a",)), ep(2)],
        True,
        False,
        [1, 2],
        [],
        True,
    ),
    (
        "not-ready endpoints without hints do not disable them",
        [ep(1, zones=("zone-a",)), ep(2, zones=("zone-b",)), ep(3, ready=False)],
        True,
        False,
        [1],
        [],
        True,
    ),
    (
        "node hints win over zone hints",
        [ep(1, zones=("zone-a",), nodes=("node-a",)), ep(2, zones=("zone-a",), nodes=("node-c",))],
        True,
        False,
        [1],
        [],
        True,
    ),
    (
        "node hints for other nodes fall back to zone hints",
        [ep(1, zones=("zone-a",), nodes=("node-b",)), ep(2, zones=("zone-b",), nodes=("node-c",))],
        True,
        False,
        [1],
        [],
        True,
    ),
]


@pytest.mark.parametrize(
    "endpoints,uses_cluster,uses_local,cluster,local,has_any",
    [c[1:] for c in CATEGORIZE_CASES],
    ids=[c[0] for c in CATEGORIZE_CASES],
)
def test_categorize(
    endpoints: list[Endpoint],
    uses_cluster: bool,
    uses_local: bool,
    cluster: list[int],
    local: list[int],
    has_any: bool,
) -> None:
    got = categorize(
        endpoints, uses_cluster=uses_cluster, uses_local=uses_local, node="node-a", zone="zone-a"
    )
    assert [int(e.ip) & 0xFF for e in got.cluster] == cluster
    assert [int(e.ip) & 0xFF for e in got.local] == local
    assert got.has_any == has_any
