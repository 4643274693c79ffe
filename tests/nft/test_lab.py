"""Real packets (root): the lab's probes see exactly what the analyzers predict.

Each world is brought up once as a node lab (netlet.dataplane.lab: node and pod
namespaces wired by CNI, the echo workload) and every node namespace is
programmed by `LabTables` (full sync, then partial syncs as scenarios change
the manifests). The lab's probe matrix is compared, probe by probe, with the
prediction of the services and policy brains (tests/nft/oracle.py): connected
(and by which pod), refused (REJECT) or timeout (DROP).

Services scenarios follow tests/services/test_flows.py (each names its doc);
policy scenarios are the policy engine's own (tests/policy/scenarios/*.yaml).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from netlet.cluster.build import load_text
from netlet.cluster.state import ClusterState
from netlet.dataplane.lab.lab import Lab, down
from netlet.dataplane.lab.probe import Outcome, ProbeMatrix, ProbeResult, Target
from netlet.dataplane.nft.lab import LabTables, adopt_lab_ips
from tests.nft.lab_world import EXTERNAL_CLIENT, services_world
from tests.nft.oracle import Oracle, Prediction
from tests.policy.harness import Scenario, load_scenarios, world

pytestmark = pytest.mark.root

TIMEOUT = 0.5


@dataclass
class Running:
    lab: Lab
    state: ClusterState
    tables: LabTables


def _up(text: str) -> Iterator[Running]:
    name = "n" + secrets.token_hex(4)
    result = load_text(text)
    assert result.ok, [str(d) for d in result.errors]
    try:
        lab = Lab.up(result.state, name)  # node namespaces do not rate-limit ICMP (REJECT)
        tables = LabTables(result.state, lab.plan)
        try:
            reports = tables.sync()
            assert all(r.error is None for r in reports), [str(r) for r in reports]
            yield Running(lab, result.state, tables)
        finally:
            tables.close()
    finally:
        down(name)


def compare(
    matrix: ProbeMatrix, oracle: Oracle, results: list[ProbeResult]
) -> tuple[int, list[str]]:
    sources = {s.name: s for s in matrix.sources}
    checked, problems = 0, []
    for r in results:
        predicted = oracle.predict(sources[r.source], r.target)
        if predicted is None:
            continue
        checked += 1
        if not _agrees(predicted, r):
            problems.append(
                f"{r.source} -> {r.target.label}: predicted {predicted}, saw {r.outcome.value} ({r.reason}) reply {r.reply}"
            )
    return checked, problems


def _agrees(predicted: Prediction, r: ProbeResult) -> bool:
    if predicted.outcome != r.outcome.value:
        return False
    return r.outcome != Outcome.CONNECTED or r.reply in predicted.replies


# Services ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def services_lab() -> Iterator[Running]:
    yield from _up(services_world())


EXTRA_TARGETS = [
    Target("clusterIP", "default/web", "10.96.0.10", 81, "TCP", service_port=81),
    Target("clusterIP", "unallocated", "10.96.200.200", 80, "TCP", service_port=80),
]


@pytest.fixture(scope="module")
def services_matrix(services_lab: Running) -> ProbeMatrix:
    from netlet.dataplane.lab.probe import select_targets

    targets = select_targets(services_lab.lab.plan, "services") + EXTRA_TARGETS
    return services_lab.lab.probe(targets=targets, timeout=TIMEOUT)


Pick = Callable[[str, Target], bool]


def svc(name: str, kind: str | None = None, port: int | None = None) -> Pick:
    def pick(source: str, target: Target) -> bool:
        return (
            target.name == f"default/{name}"
            and (kind is None or target.kind == kind)
            and (port is None or target.port == port)
        )

    return pick


def external(pick: Pick) -> Pick:
    return lambda source, target: source == "external" and pick(source, target)


def pods(pick: Pick) -> Pick:
    return lambda source, target: source != "external" and pick(source, target)


# (id, doc, which probes, the outcomes the scenario must show among them)
SERVICE_SCENARIOS: list[tuple[str, str, Pick, set[str]]] = [
    (
        "pods reach a ClusterIP's ready endpoints on either node",
        "concepts/services-networking/service: Defining a Service",
        pods(svc("web", "clusterIP", 80)),
        {"connected"},
    ),
    (
        "the second port of a multi-port Service reaches its own targetPort",
        "service: Multi-port Services",
        pods(svc("web", "clusterIP", 9100)),
        {"connected"},
    ),
    (
        "a UDP port reaches the endpoints' UDP port",
        "service: Protocols (UDP)",
        pods(svc("web", "clusterIP", 53)),
        {"connected"},
    ),
    (
        "a port whose targetPort nothing serves is refused by the pod",
        "service: Defining a Service (targetPort)",
        pods(svc("web", "clusterIP", 7000)),
        {"refused"},
    ),
    (
        "an undefined port of a ClusterIP is rejected",
        "kube-proxy nftables README: cluster-ips-check",
        pods(svc("web", "clusterIP", 81)),
        {"refused"},
    ),
    (
        "an unallocated address of the service CIDR is dropped",
        "kube-proxy nftables README: cluster-ips-check",
        pods(lambda s, t: t.name == "unallocated"),
        {"timeout"},
    ),
    (
        "a Service without endpoints rejects pods and outside clients",
        "reference/networking/virtual-ips: no endpoints",
        svc("empty"),
        {"refused"},
    ),
    (
        "a Service whose only pod is not ready rejects",
        "service: EndpointSlices (ready condition)",
        pods(svc("sleepy")),
        {"refused"},
    ),
    (
        "serving-terminating endpoints take traffic when none is ready",
        "virtual-ips: Terminating endpoints (KEP-1669)",
        pods(svc("drain")),
        {"connected"},
    ),
    (
        "an outside client reaches a NodePort on every node",
        "service: Type NodePort",
        external(svc("np", "nodePort")),
        {"connected"},
    ),
    (
        "pods reach a NodePort on their own and the other node",
        "service: Type NodePort",
        pods(svc("np", "nodePort")),
        {"connected"},
    ),
    (
        "loadBalancerSourceRanges let the outside client in",
        "service: LoadBalancer source ranges",
        external(svc("lb-open", "loadBalancer")),
        {"connected"},
    ),
    (
        "loadBalancerSourceRanges keep everyone else out, pods included",
        "service: LoadBalancer source ranges",
        svc("lb-closed", "loadBalancer"),
        {"timeout"},
    ),
    (
        "externalTrafficPolicy Local: only nodes with a local endpoint take outside traffic",
        "service: Traffic policies (external)",
        external(svc("etl", "nodePort")),
        {"connected", "timeout"},
    ),
    (
        "externalTrafficPolicy Local: the load balancer IP lands on the endpoint's node",
        "service: Traffic policies (external)",
        external(svc("etl", "loadBalancer")),
        {"connected"},
    ),
    (
        "externalTrafficPolicy Local: pods are short-circuited, but a reply must pass the DNAT node",
        "virtual-ips: traffic policies, short-circuit",
        pods(svc("etl")),
        {"connected", "timeout"},
    ),
    (
        "externalIPs take traffic from outside and from pods",
        "service: External IPs",
        svc("ext", "externalIP"),
        {"connected"},
    ),
    (
        "internalTrafficPolicy Local: no local endpoint drops, a local one answers",
        "services-networking/service-traffic-policy",
        pods(svc("itl", "clusterIP")),
        {"connected", "timeout"},
    ),
    (
        "ClientIP affinity Services answer like any other",
        "virtual-ips: Session affinity",
        pods(svc("sticky", "clusterIP")),
        {"connected"},
    ),
]


@pytest.mark.parametrize(
    ("pick", "shows"), [pytest.param(p, s, id=i) for i, _, p, s in SERVICE_SCENARIOS]
)
def test_service_probes_match_the_services_brain(
    services_lab: Running, services_matrix: ProbeMatrix, pick: Pick, shows: set[str]
) -> None:
    oracle = Oracle(services_lab.state, services_lab.lab.plan)
    chosen = [r for r in services_matrix.results if pick(r.source, r.target)]
    checked, problems = compare(services_matrix, oracle, chosen)
    assert checked > 0, "no probe of this scenario had a prediction"
    assert problems == [], "\n".join(problems)
    assert {r.outcome.value for r in chosen} == shows


def test_there_are_at_least_fifteen_service_scenarios() -> None:
    assert len(SERVICE_SCENARIOS) >= 15


def test_session_affinity_sticks_to_one_endpoint(services_lab: Running) -> None:
    # Virtual IPs and Service Proxies, "Session affinity": a client keeps its endpoint.
    lab = services_lab.lab
    sticky = Target(
        "clusterIP", "default/sticky", "10.96.6.1", 80, "TCP", http=True, service_port=80
    )
    plain = Target("clusterIP", "default/web", "10.96.0.10", 80, "TCP", http=True, service_port=80)
    for client in ("default/client-a", "default/client-b"):
        seen = {
            lab.probe(targets=[sticky], sources=[client], timeout=TIMEOUT).results[0].reply
            for _ in range(12)
        }
        assert len(seen) == 1 and seen <= {"web-1", "web-2"}, seen
    # Without affinity the same client is spread over both endpoints (2^-19 to fail).
    spread = {
        lab.probe(targets=[plain], sources=["default/client-a"], timeout=TIMEOUT).results[0].reply
        for _ in range(20)
    }
    assert spread == {"web-1", "web-2"}


def test_external_traffic_policy_local_preserves_the_client_address(services_lab: Running) -> None:
    # Service "Traffic policies": Local keeps the client source IP; Cluster masquerades.
    lab = services_lab.lab
    node_b = lab.plan.node("node-b")
    local = Target("nodePort", "default/etl", node_b.ips[0], 30300, "TCP", http=True, node="node-b")
    cluster = Target(
        "nodePort", "default/np", node_b.ips[0], 30100, "TCP", http=True, node="node-b"
    )
    got = lab.probe(targets=[local, cluster], sources=["external"], timeout=TIMEOUT)
    by_port = {r.target.port: r for r in got.results}
    assert by_port[30300].outcome == Outcome.CONNECTED and by_port[30300].echo is not None
    assert by_port[30300].echo["client"]["ip"] == EXTERNAL_CLIENT
    assert by_port[30100].outcome == Outcome.CONNECTED and by_port[30100].echo is not None
    assert by_port[30100].echo["client"]["ip"] != EXTERNAL_CLIENT  # masqueraded


def test_a_pod_reaching_itself_through_its_service_is_masqueraded(services_lab: Running) -> None:
    # kube-proxy's endpoint chains: "Handle traffic that loops back to the originator with SNAT".
    lab = services_lab.lab
    web = Target("clusterIP", "default/web", "10.96.0.10", 80, "TCP", http=True, service_port=80)
    for _ in range(40):
        r = lab.probe(targets=[web], sources=["default/web-1"], timeout=TIMEOUT).results[0]
        if r.reply == "web-1":
            assert r.echo is not None and r.echo["client"]["ip"] != "10.244.0.11"
            return
    pytest.fail("web-1 never landed on itself in 40 tries (2^-40)")


def test_a_partial_sync_moves_traffic_when_an_endpoint_goes(services_lab: Running) -> None:
    """Removing web-2 from the manifests: one partial sync, and traffic only reaches web-1."""
    running = services_lab
    fresh = load_text(services_world())
    assert fresh.ok
    adopt_lab_ips(fresh.state, running.lab.plan)
    objects = [(o, fresh.state.origin(o)) for o in fresh.state.all_objects()]
    from netlet.resources.core import Pod

    web2 = fresh.state.get(Pod, "default", "web-2")
    assert web2 is not None
    relabeled = web2.model_copy(
        update={"metadata": web2.metadata.model_copy(update={"labels": {"app": "retired"}})}
    )
    objects = [(relabeled if o is web2 else o, origin) for o, origin in objects]
    running.state.replace_all(objects)
    try:
        reports = running.tables.sync()
        assert all(r.error is None and r.result is not None and not r.result.full for r in reports)
        web = Target(
            "clusterIP", "default/web", "10.96.0.10", 80, "TCP", http=True, service_port=80
        )
        replies = {
            running.lab.probe(targets=[web], sources=["default/client-b"], timeout=TIMEOUT)
            .results[0]
            .reply
            for _ in range(10)
        }
        assert replies == {"web-1"}
    finally:
        # Put the module's world back for the other tests (another partial sync).
        restored = load_text(services_world())
        adopt_lab_ips(restored.state, running.lab.plan)
        running.state.replace_all(
            (o, restored.state.origin(o)) for o in restored.state.all_objects()
        )
        assert all(r.error is None for r in running.tables.sync())


def test_a_replaced_endpoint_gets_traffic_before_and_after_the_collection(
    services_lab: Running,
) -> None:
    """only-b leaves Service etl and client-b joins it in one change: the slot keeps its
    place, so the partial sync only adds (the new endpoint under a spare slot, the slot
    redirected there; docs/nftables.md "Deletions wait for the kernel"). Real packets
    must reach client-b through the redirect, and through the slot once collected."""
    running = services_lab
    from netlet.dataplane.nft.model import Family
    from netlet.resources.core import Pod

    def relabel(swap: bool) -> None:
        fresh = load_text(services_world())
        assert fresh.ok
        adopt_lab_ips(fresh.state, running.lab.plan)
        apps = {"only-b": "retired", "client-b": "only-b"} if swap else {}
        objects = []
        for obj, origin in ((o, fresh.state.origin(o)) for o in fresh.state.all_objects()):
            if isinstance(obj, Pod) and obj.metadata.name in apps:
                labels = {"app": apps[obj.metadata.name]}
                obj = obj.model_copy(
                    update={"metadata": obj.metadata.model_copy(update={"labels": labels})}
                )
            objects.append((obj, origin))
        running.state.replace_all(objects)

    etl = Target("clusterIP", "default/etl", "10.96.3.1", 80, "TCP", http=True, service_port=80)

    def replies() -> set[str | None]:
        probe = running.lab.probe
        return {
            probe(targets=[etl], sources=["default/client-a"], timeout=TIMEOUT).results[0].reply
            for _ in range(5)
        }

    relabel(True)
    try:
        reports = running.tables.sync()
        assert all(r.error is None and r.result is not None and not r.result.full for r in reports)
        node_a = running.tables.programmer.nodes["node-a"].syncers[(Family.IP, "netlet")]
        assert node_a.pending.moves, "the replaced endpoint should wait under a spare slot"
        assert replies() == {"client-b"}
        assert all(r.error is None for r in running.tables.programmer.collect(force=True))
        assert not node_a.pending
        assert replies() == {"client-b"}
    finally:
        relabel(False)
        assert all(r.error is None for r in running.tables.sync())


# Policy --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def policy_lab() -> Iterator[Running]:
    yield from _up(world(""))


def _chosen_policy_scenarios() -> list[Scenario]:
    """The first three scenarios of each of the policy engine's scenario files."""
    out: list[Scenario] = []
    counts: dict[str, int] = {}
    for scenario in load_scenarios():
        if scenario.resolve:
            continue  # domainNames: answers for outside names the lab cannot reach
        if counts.get(scenario.file, 0) < 3:
            counts[scenario.file] = counts.get(scenario.file, 0) + 1
            out.append(scenario)
    return out


POLICY_SCENARIOS = _chosen_policy_scenarios()


@pytest.mark.parametrize("scenario", POLICY_SCENARIOS, ids=[s.test_id for s in POLICY_SCENARIOS])
def test_pod_probes_match_the_policy_engine(policy_lab: Running, scenario: Scenario) -> None:
    running = policy_lab
    fresh = load_text(world(scenario.manifests), name="scenario.yaml")
    assert fresh.ok, [str(d) for d in fresh.errors]
    adopt_lab_ips(fresh.state, running.lab.plan)
    running.state.replace_all((o, fresh.state.origin(o)) for o in fresh.state.all_objects())
    reports = running.tables.sync()
    assert all(r.error is None for r in reports), [str(r) for r in reports]
    matrix = running.lab.probe(to="pods", timeout=TIMEOUT)
    oracle = Oracle(running.state, running.lab.plan)
    checked, problems = compare(matrix, oracle, list(matrix.results))
    assert checked >= 40
    assert problems == [], "\n".join(problems)


def test_there_are_at_least_fifteen_policy_scenarios_in_the_lab() -> None:
    assert len(POLICY_SCENARIOS) >= 15
