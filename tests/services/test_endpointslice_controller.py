"""The EndpointSlice controller's output for sample pods and Services, field by field.

Written from: EndpointSlices (concepts/services-networking/endpoint-slices): address
types, conditions (ready, serving, terminating), topology (nodeName, zone), management
(endpointslice.kubernetes.io/managed-by), ownership (kubernetes.io/service-name), one
slice per set of ports, at most 100 endpoints per slice by default; Service:
"Services without selectors", named targetPorts, publishNotReadyAddresses; DNS for
Services and Pods: hostname and subdomain; Traffic Distribution: hints for PreferClose /
PreferSameZone / PreferSameNode; Sidecar containers: ports of restartable init containers.
"""

from __future__ import annotations

import pytest

from netlet.resources.core import EndpointSlice, Service
from netlet.services.endpointslices import SliceSource, generate_slices
from tests.services.conventions import NODE_A, NODE_B, Doc, load, node, pod, service

PORTS = [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9100}]


def _sample() -> list[Doc]:
    return [
        node("node-a", NODE_A, "zone-a"),
        node("node-b", NODE_B, "zone-b"),
        pod("web-1", "10.244.0.11", "node-a", {"app": "web"}, ports=PORTS),
        pod("web-2", "10.244.1.12", "node-b", {"app": "web"}, ports=PORTS, terminating=True),
        pod("web-3", "10.244.1.13", "node-b", {"app": "web"}, ready=False),
        pod("web-4", "10.244.0.14", "node-a", {"app": "web"}, ports=PORTS, phase="Failed"),
        pod("web-5", "10.244.0.15", "node-a", {"app": "web"}, ports=PORTS, ns="other"),
        pod(
            "web-6",
            "10.244.0.16",
            "node-a",
            {"app": "web"},
            ports=PORTS,
            hostname="w6",
            subdomain="web",
        ),
        pod(
            "web-7",
            "10.244.1.17",
            "node-b",
            {"app": "web"},
            sidecar_ports=[{"name": "metrics", "containerPort": 9200}],
        ),
        pod("api-1", "10.244.0.21", "node-a", {"app": "api"}, ports=PORTS),
        service(
            "web",
            "10.96.0.10",
            {"app": "web"},
            labels={"team": "shop", "kubernetes.io/service-name": "spoofed"},
            trafficDistribution="PreferSameNode",
            ports=[
                {"name": "http", "port": 80, "targetPort": "http", "appProtocol": "http"},
                {"name": "metrics", "port": 9100, "targetPort": "metrics"},
            ],
        ),
    ]


def _slices(docs: list[Doc], name: str = "web") -> tuple[EndpointSlice, ...]:
    state = load(*docs)
    svc = state.get(Service, "default", name)
    assert svc is not None
    found = SliceSource(state).slices_for(svc)
    assert found.generated
    return found.slices


def _by_ports(slices: tuple[EndpointSlice, ...]) -> dict[tuple[str, ...], EndpointSlice]:
    return {tuple(f"{p.name}:{p.port}/{p.protocol.value}" for p in es.ports): es for es in slices}


def test_pods_with_different_resolved_ports_get_different_slices() -> None:
    slices = _by_ports(_slices(_sample()))
    assert set(slices) == {
        ("http:8080/TCP", "metrics:9100/TCP"),
        ("http:8080/TCP",),
        ("http:8080/TCP", "metrics:9200/TCP"),
    }
    full = slices[("http:8080/TCP", "metrics:9100/TCP")]
    # web-4 is Failed (terminal), web-5 is in another namespace, api-1 is not selected.
    assert [ep.target_ref.name for ep in full.endpoints] == ["web-1", "web-2", "web-6"]
    assert [ep.target_ref.name for ep in slices[("http:8080/TCP",)].endpoints] == ["web-3"]
    sidecar = slices[("http:8080/TCP", "metrics:9200/TCP")]
    assert [ep.target_ref.name for ep in sidecar.endpoints] == ["web-7"]


def test_slice_metadata_as_the_controller_writes_it() -> None:
    for es in _slices(_sample()):
        assert es.address_type == "IPv4"
        assert es.namespace == "default"
        assert es.name.startswith("web-") and len(es.name) == len("web-") + 5
        assert es.labels == {
            "team": "shop",
            "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        }
        (owner,) = es.metadata.owner_references
        assert (owner.api_version, owner.kind, owner.name, owner.controller) == (
            "v1",
            "Service",
            "web",
            True,
        )


def test_endpoint_ports_carry_name_protocol_and_app_protocol() -> None:
    full = _by_ports(_slices(_sample()))[("http:8080/TCP", "metrics:9100/TCP")]
    http, metrics = full.ports
    assert (http.name, http.port, http.protocol.value, http.app_protocol) == (
        "http",
        8080,
        "TCP",
        "http",
    )
    assert (metrics.name, metrics.port, metrics.app_protocol) == ("metrics", 9100, None)


ENDPOINT_FIELDS = [
    # (pod, addresses, ready, serving, terminating, node, zone, hostname, zone hints, node hints)
    (
        "web-1",
        ("10.244.0.11",),
        True,
        True,
        False,
        "node-a",
        "zone-a",
        None,
        ("zone-a",),
        ("node-a",),
    ),
    ("web-2", ("10.244.1.12",), False, True, True, "node-b", "zone-b", None, None, None),
    ("web-3", ("10.244.1.13",), False, False, False, "node-b", "zone-b", None, None, None),
    (
        "web-6",
        ("10.244.0.16",),
        True,
        True,
        False,
        "node-a",
        "zone-a",
        "w6",
        ("zone-a",),
        ("node-a",),
    ),
]


@pytest.mark.parametrize(
    "pod_name,addresses,ready,serving,terminating,node_name,zone,hostname,zones,nodes",
    ENDPOINT_FIELDS,
    ids=[
        "a ready pod is ready and serving, with zone and node hints",
        "a terminating pod is serving but not ready, and gets no hints",
        "a not-ready pod is neither ready nor serving",
        "a pod whose subdomain is the Service gets its hostname",
    ],
)
def test_endpoint_fields(
    pod_name: str,
    addresses: tuple[str, ...],
    ready: bool,
    serving: bool,
    terminating: bool,
    node_name: str,
    zone: str,
    hostname: str | None,
    zones: tuple[str, ...] | None,
    nodes: tuple[str, ...] | None,
) -> None:
    endpoints = {ep.target_ref.name: ep for es in _slices(_sample()) for ep in es.endpoints}
    ep = endpoints[pod_name]
    assert ep.addresses == addresses
    assert (ep.conditions.ready, ep.conditions.serving, ep.conditions.terminating) == (
        ready,
        serving,
        terminating,
    )
    assert (ep.node_name, ep.zone, ep.hostname) == (node_name, zone, hostname)
    assert (ep.target_ref.kind, ep.target_ref.namespace) == ("Pod", "default")
    if zones is None:
        assert ep.hints is None
    else:
        assert tuple(z.name for z in ep.hints.for_zones) == zones
        assert tuple(n.name for n in ep.hints.for_nodes) == nodes


HINT_CASES = [
    ("PreferClose", {}, ("zone-a",), ()),
    ("PreferSameZone", {}, ("zone-a",), ()),
    ("PreferSameNode", {}, ("zone-a",), ("node-a",)),
    (None, {}, None, None),
    ("PreferClose", {"service.kubernetes.io/topology-mode": "Auto"}, None, None),
]


@pytest.mark.parametrize(
    "distribution,annotations,zones,nodes",
    HINT_CASES,
    ids=[
        "PreferClose hints the endpoint's zone",
        "PreferSameZone hints the endpoint's zone",
        "PreferSameNode hints zone and node",
        "no trafficDistribution, no hints",
        "the topology-mode annotation wins over trafficDistribution",
    ],
)
def test_hints_follow_traffic_distribution(
    distribution: str | None,
    annotations: dict[str, str],
    zones: tuple[str, ...] | None,
    nodes: tuple[str, ...] | None,
) -> None:
    extra = {"trafficDistribution": distribution} if distribution else {}
    (es,) = _slices(
        [
            node("node-a", NODE_A, "zone-a"),
            pod("w", "10.244.0.11", "node-a", {"app": "w"}),
            service("w", "10.96.0.11", {"app": "w"}, annotations=annotations, **extra),
        ],
        "w",
    )
    (ep,) = es.endpoints
    if zones is None:
        assert ep.hints is None
    else:
        assert tuple(z.name for z in ep.hints.for_zones) == zones
        assert tuple(n.name for n in ep.hints.for_nodes) == nodes


def test_publish_not_ready_addresses_marks_not_ready_pods_ready() -> None:
    (es,) = _slices(
        [
            pod("w", "10.244.0.11", "node-a", {"app": "w"}, ready=False),
            service("w", "10.96.0.11", {"app": "w"}, publishNotReadyAddresses=True),
        ],
        "w",
    )
    (ep,) = es.endpoints
    assert (ep.conditions.ready, ep.conditions.serving) == (True, False)


def test_no_selected_pod_gives_one_placeholder_slice() -> None:
    (es,) = _slices([service("w", "10.96.0.11", {"app": "nobody"})], "w")
    assert (es.endpoints, es.ports, es.address_type) == ((), (), "IPv4")


def test_dual_stack_service_gets_one_slice_per_family() -> None:
    slices = _slices(
        [
            pod("w", ["10.244.0.11", "fd00:10:244::11"], "node-a", {"app": "w"}),
            service(
                "w",
                ["10.96.0.11", "fd00:10:96::11"],
                {"app": "w"},
                ipFamilyPolicy="PreferDualStack",
                ipFamilies=["IPv4", "IPv6"],
            ),
        ],
        "w",
    )
    assert [(es.address_type, es.endpoints[0].addresses) for es in slices] == [
        ("IPv4", ("10.244.0.11",)),
        ("IPv6", ("fd00:10:244::11",)),
    ]


def test_headless_service_slices_carry_the_headless_label() -> None:
    (es,) = _slices(
        [pod("w", "10.244.0.11", "node-a", {"app": "w"}), service("w", "None", {"app": "w"})],
        "w",
    )
    assert es.labels["service.kubernetes.io/headless"] == ""


def test_more_than_one_hundred_endpoints_fill_several_slices() -> None:
    pods = [pod(f"w-{i}", f"10.244.0.{i + 2}", "node-a", {"app": "w"}) for i in range(150)]
    slices = _slices([*pods, service("w", "10.96.0.11", {"app": "w"})], "w")
    assert sorted(len(es.endpoints) for es in slices) == [50, 100]
    assert len({es.name for es in slices}) == 2


def test_a_named_port_of_another_protocol_does_not_resolve() -> None:
    (es,) = _slices(
        [
            pod("w", "10.244.0.11", "node-a", {"app": "w"}),
            service(
                "w",
                "10.96.0.11",
                {"app": "w"},
                ports=[{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "http"}],
            ),
        ],
        "w",
    )
    assert es.ports == ()
    assert [ep.addresses for ep in es.endpoints] == [("10.244.0.11",)]


@pytest.mark.parametrize(
    "doc",
    [
        service("w", "10.96.0.11", None),
        service("w", None, {"app": "w"}, type="ExternalName", externalName="x.example.com"),
    ],
    ids=["a Service without selector gets no slices", "an ExternalName Service gets no slices"],
)
def test_services_the_controller_leaves_alone(doc: Doc) -> None:
    state = load(pod("w", "10.244.0.11", "node-a", {"app": "w"}), doc)
    svc = state.get(Service, "default", "w")
    found = SliceSource(state).slices_for(svc)
    assert (found.slices, found.generated) == ((), False)


def test_manifest_slices_replace_the_controller() -> None:
    state = load(
        pod("w", "10.244.0.11", "node-a", {"app": "w"}),
        service("w", "10.96.0.11", {"app": "w"}),
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "w-given", "labels": {"kubernetes.io/service-name": "w"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.9.9.9"]}],
            "ports": [{"name": "http", "port": 9999}],
        },
    )
    svc = state.get(Service, "default", "w")
    found = SliceSource(state).slices_for(svc)
    assert not found.generated
    assert [es.name for es in found.slices] == ["w-given"]


def test_names_are_stable_across_loads() -> None:
    first = [es.name for es in _slices(_sample())]
    second = [es.name for es in _slices(_sample())]
    assert first == second


def test_generate_slices_is_pure_in_its_inputs() -> None:
    state = load(*_sample())
    svc = state.get(Service, "default", "web")
    source = SliceSource(state)
    pods = source.selected_pods(svc)
    assert generate_slices(svc, pods, source.nodes) == generate_slices(svc, pods, source.nodes)
