"""Workload expansion, address assignment and the ClusterState store.

Controllers' naming and labels: Deployment pods carry `pod-template-hash`,
StatefulSet pods are `<name>-<ordinal>` with `statefulset.kubernetes.io/pod-name`
and `apps.kubernetes.io/pod-index`, DaemonSets run one pod per eligible node,
Jobs run `parallelism` pods labelled `job-name` / `batch.kubernetes.io/job-name`.
"""

from __future__ import annotations

import ipaddress

import pytest

from netlet.cluster.build import load_text
from netlet.cluster.state import EventType
from netlet.resources.core import Namespace, Node, Pod, Service

TEMPLATE = """  template:
    metadata: {labels: {app: x}}
    spec:
      containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]
"""


def _pods(text: str) -> list[Pod]:
    result = load_text(text)
    assert result.ok, [str(d) for d in result.diagnostics]
    return result.state.list(Pod)


def test_deployment_expands_to_replicas_with_template_labels_and_hash() -> None:
    pods = _pods(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n"
        "spec:\n  replicas: 3\n  selector: {matchLabels: {app: x}}\n" + TEMPLATE
    )
    assert len(pods) == 3
    hashes = {p.labels["pod-template-hash"] for p in pods}
    assert len(hashes) == 1
    (pth,) = hashes
    for pod in pods:
        assert pod.namespace == "shop"
        assert pod.name.startswith(f"web-{pth}-") and len(pod.name) == len(f"web-{pth}-") + 5
        assert pod.labels["app"] == "x"
        owner = pod.metadata.owner_references[0]
        assert (owner.kind, owner.name) == ("ReplicaSet", f"web-{pth}")
        assert pod.spec.containers[0].ports[0].name == "http"
    assert len({p.name for p in pods}) == 3


def test_statefulset_pods_are_ordinal_named_with_identity_labels() -> None:
    pods = _pods(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\n"
        "spec:\n  serviceName: db-headless\n  replicas: 2\n  ordinals: {start: 5}\n"
        "  selector: {matchLabels: {app: x}}\n" + TEMPLATE
    )
    assert [p.name for p in pods] == ["db-5", "db-6"]
    assert pods[0].labels["statefulset.kubernetes.io/pod-name"] == "db-5"
    assert pods[1].labels["apps.kubernetes.io/pod-index"] == "6"
    assert (pods[0].spec.hostname, pods[0].spec.subdomain) == ("db-5", "db-headless")


def test_daemonset_runs_one_pod_per_matching_schedulable_node() -> None:
    nodes = "".join(
        f"apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {labels}}}\n"
        f"spec: {{unschedulable: {unsched}}}\n---\n"
        for name, labels, unsched in [
            ("n1", "{disk: ssd}", "false"),
            ("n2", "{disk: ssd}", "true"),
            ("n3", "{disk: hdd}", "false"),
            ("n4", "{disk: ssd}", "false"),
        ]
    )
    pods = _pods(
        nodes + "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\n"
        "spec:\n  selector: {matchLabels: {app: x}}\n  template:\n"
        "    metadata: {labels: {app: x}}\n    spec:\n      nodeSelector: {disk: ssd}\n"
        "      containers: [{name: c}]\n"
    )
    assert sorted(p.spec.node_name or "" for p in pods) == ["n1", "n4"]


@pytest.mark.parametrize(
    ("spec", "count"),
    [("parallelism: 3", 3), ("parallelism: 3\n  completions: 2", 2), ("suspend: true", 0), ("", 1)],
    ids=["parallelism", "capped by completions", "suspended", "default one"],
)
def test_job_runs_parallelism_pods(spec: str, count: int) -> None:
    pods = _pods(
        f"apiVersion: batch/v1\nkind: Job\nmetadata: {{name: migrate}}\nspec:\n  {spec}\n"
        + TEMPLATE
    )
    assert len(pods) == count
    for pod in pods:
        assert pod.labels["job-name"] == "migrate"
        assert pod.labels["batch.kubernetes.io/job-name"] == "migrate"


def test_cronjob_contributes_one_run_unless_suspended() -> None:
    cron = (
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: report}}\nspec:\n"
        "  schedule: '*/5 * * * *'\n  suspend: {suspend}\n  jobTemplate:\n    spec:\n"
        "      template:\n        metadata: {{labels: {{app: r}}}}\n"
        "        spec: {{containers: [{{name: c}}]}}\n"
    )
    (pod,) = _pods(cron.format(suspend="false"))
    assert pod.name.startswith("report-") and pod.labels["app"] == "r"
    assert _pods(cron.format(suspend="true")) == []


def test_replicas_spread_over_nodes_and_every_pod_gets_an_ip_in_its_node_cidr() -> None:
    text = (
        "apiVersion: v1\nkind: Node\nmetadata: {name: a}\n---\n"
        "apiVersion: v1\nkind: Node\nmetadata: {name: b}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec:\n  replicas: 4\n  selector: {matchLabels: {app: x}}\n" + TEMPLATE
    )
    result = load_text(text)
    nodes = {n.name: n for n in result.state.list(Node)}
    assert [n.internal_ips for n in nodes.values()] == [("172.18.0.2",), ("172.18.0.3",)]
    assert [n.spec.pod_cidrs for n in nodes.values()] == [("10.244.0.0/24",), ("10.244.1.0/24",)]
    pods = result.state.list(Pod)
    assert sorted(p.spec.node_name or "" for p in pods) == ["a", "a", "b", "b"]
    for pod in pods:
        node = nodes[pod.spec.node_name or ""]
        assert ipaddress.ip_address(pod.ips[0]) in ipaddress.ip_network(node.spec.pod_cidrs[0])
        assert pod.status.host_ip == node.internal_ips[0]
        assert pod.ready and pod.status.phase == "Running"
    assert len({p.ips for p in pods}) == 4


def test_given_ips_are_kept_and_never_handed_out_again() -> None:
    taken = "10.244.0.10"
    pods = [
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\n"
        f"spec: {{nodeName: n, containers: [{{name: c}}]}}\n"
        for i in range(40)
    ]
    pods.append(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: fixed}\n"
        "spec: {nodeName: n, containers: [{name: c}]}\n"
        f"status: {{podIP: {taken}}}\n"
    )
    text = "apiVersion: v1\nkind: Node\nmetadata: {name: n}\nspec: {podCIDR: 10.244.0.0/26}\n"
    result = load_text("---\n".join([text, *pods]))
    assert result.ok
    by_ip = [(p.name, p.ips) for p in result.state.list(Pod)]
    assert ("fixed", (taken,)) in by_ip
    assert sum(1 for _, ips in by_ip if ips == (taken,)) == 1
    assert len({ips for _, ips in by_ip}) == 41


def test_host_network_pods_use_the_node_ips() -> None:
    result = load_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: h}\n"
        "spec: {hostNetwork: true, containers: [{name: c}]}\n"
    )
    (pod,) = result.state.list(Pod)
    (node,) = result.state.list(Node)
    assert pod.ips == node.internal_ips == ("172.18.0.2",)
    assert result.state.pod_by_ip("172.18.0.2") is None  # not a pod-network address


def test_loading_twice_gives_identical_state() -> None:
    text = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec:\n  replicas: 5\n  selector: {matchLabels: {app: x}}\n"
        + TEMPLATE
        + "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
        "spec: {type: NodePort, selector: {app: x}, ports: [{port: 80}]}\n"
    )
    first, second = load_text(text), load_text(text)
    assert list(first.state.all_objects()) == list(second.state.all_objects())


def test_adding_an_unrelated_pod_does_not_move_existing_addresses() -> None:
    base = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec:\n  replicas: 5\n  selector: {matchLabels: {app: x}}\n"
        + TEMPLATE
        + "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
        "spec: {selector: {app: x}, ports: [{port: 80}]}\n"
    )
    extra = (
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: aaa}\nspec: {containers: [{name: c}]}\n"
    )
    before = {p.name: p.ips for p in load_text(base).state.list(Pod)}
    after_state = load_text(base + extra).state
    after = {p.name: p.ips for p in after_state.list(Pod)}
    assert {k: after[k] for k in before} == before
    svc_before = load_text(base).state.get(Service, "default", "web")
    svc_after = after_state.get(Service, "default", "web")
    assert svc_before is not None and svc_after is not None
    assert svc_before.spec.cluster_ips == svc_after.spec.cluster_ips


def test_dual_stack_is_detected_from_ipv6_addresses_and_used_for_allocation() -> None:
    result = load_text(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n"
        "spec: {podCIDRs: [10.244.7.0/24, 'fd00:10:244:7::/64']}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
        "spec: {ipFamilyPolicy: PreferDualStack, ports: [{port: 80}]}\n"
    )
    assert result.dual_stack
    (pod,) = result.state.list(Pod)
    assert [ipaddress.ip_address(ip).version for ip in pod.ips] == [4, 6]
    svc = result.state.get(Service, "default", "s")
    assert svc is not None
    assert [ipaddress.ip_address(ip).version for ip in svc.spec.cluster_ips] == [4, 6]
    assert svc.spec.ip_families == ("IPv4", "IPv6")


def test_referenced_namespaces_and_nodes_are_created() -> None:
    result = load_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ghost}\n"
        "spec: {nodeName: worker-9, containers: [{name: c}]}\n"
    )
    assert result.state.get(Namespace, "", "ghost") is not None
    node = result.state.get(Node, "", "worker-9")
    assert node is not None and node.internal_ips


def test_state_emits_events_and_replace_all_diffs() -> None:
    result = load_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n"
    )
    state = result.state
    events = []
    unsubscribe = state.subscribe(events.append)
    objects = [(obj, state.origin(obj)) for obj in state.all_objects()]
    a = state.get(Namespace, "", "a")
    assert a is not None
    relabelled = a.model_copy(
        update={"metadata": a.metadata.model_copy(update={"labels": {**a.labels, "x": "1"}})}
    )
    new = [
        (relabelled if o.name == "a" and o.KIND == "Namespace" else o, origin)
        for o, origin in objects
        if not (o.KIND == "Namespace" and o.name == "b")
    ]
    changes = state.replace_all(new)
    assert [(e.type, str(e.ref)) for e in changes] == [
        (EventType.MODIFIED, "Namespace a"),
        (EventType.DELETED, "Namespace b"),
    ]
    assert events == changes
    assert state.replace_all(new) == []  # nothing changed, nothing emitted
    unsubscribe()
    state.delete(Namespace, "", "a")
    assert len(events) == 2
