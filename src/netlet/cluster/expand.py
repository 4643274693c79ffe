"""Workload controllers -> the pods they would create.

Real users' manifests hold Deployments, not Pods; policies and Services select
the pods. Names, labels and owner references follow the controllers:

- Deployment: ReplicaSet `<name>-<pod-template-hash>`, pods `<rs>-<5 chars>`,
  label `pod-template-hash`.
- ReplicaSet: pods `<name>-<5 chars>`.
- StatefulSet: pods `<name>-<ordinal>` (from `spec.ordinals.start`), labels
  `statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index`;
  hostname = pod name, subdomain = serviceName (for DNS).
- DaemonSet: one pod per node whose labels match the template's nodeSelector
  (taints are not modelled: every node runs the pod unless unschedulable).
- Job: `parallelism` pods (capped by `completions`), labels `job-name` and
  `batch.kubernetes.io/job-name`; none when suspended.
- CronJob: the pods of one run of its Job, named `<cronjob>-<8 digits>`;
  none when suspended.

Random suffixes are derived from stable hashes, so the same input always gives
the same pods.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from netlet.resources.base import LabelSelector, ObjectMeta, OwnerReference, Resource
from netlet.resources.core import Node, Pod, PodSpec
from netlet.resources.net import stable_hash
from netlet.resources.selectors import matches
from netlet.resources.workloads import (
    CronJob,
    DaemonSet,
    Deployment,
    Job,
    JobSpec,
    PodTemplateSpec,
    ReplicaSet,
    StatefulSet,
)

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.SafeEncodeString


def safe_suffix(seed: str, length: int = 5) -> str:
    value = stable_hash(seed) * 2654435761 + stable_hash(seed[::-1])
    out = ""
    for _ in range(length):
        value, digit = divmod(value, len(_SAFE_ALPHABET))
        out += _SAFE_ALPHABET[digit]
    return out


def template_hash(template: PodTemplateSpec) -> str:
    """pod-template-hash: stable for the same template (the controller uses FNV of it)."""
    text = json.dumps(template.to_api(), sort_keys=True)
    return safe_suffix(text, 10)


def _owner(obj: Resource) -> OwnerReference:
    return OwnerReference(
        api_version=obj.api_versions()[0], kind=obj.KIND, name=obj.name, controller=True
    )


def _pod(
    template: PodTemplateSpec,
    namespace: str,
    name: str,
    owner: OwnerReference,
    extra_labels: dict[str, str],
    *,
    node_name: str | None = None,
    hostname: str | None = None,
    subdomain: str | None = None,
) -> Pod:
    spec_update: dict[str, object] = {}
    if node_name is not None:
        spec_update["node_name"] = node_name
    if hostname is not None:
        spec_update["hostname"] = hostname
    if subdomain is not None:
        spec_update["subdomain"] = subdomain
    spec: PodSpec = template.spec.model_copy(update=spec_update) if spec_update else template.spec
    metadata = ObjectMeta(
        name=name,
        namespace=namespace,
        labels={**template.metadata.labels, **extra_labels},
        annotations=dict(template.metadata.annotations),
        owner_references=(owner,),
    )
    return Pod(api_version="v1", kind="Pod", metadata=metadata, spec=spec)


def expand_deployment(obj: Deployment) -> list[Pod]:
    pth = template_hash(obj.spec.template)
    rs_name = f"{obj.name}-{pth}"
    owner = OwnerReference(api_version="apps/v1", kind="ReplicaSet", name=rs_name, controller=True)
    return [
        _pod(
            obj.spec.template,
            obj.namespace,
            f"{rs_name}-{safe_suffix(f'{obj.namespace}/{rs_name}/{i}')}",
            owner,
            {"pod-template-hash": pth},
        )
        for i in range(obj.spec.replicas)
    ]


def expand_replicaset(obj: ReplicaSet) -> list[Pod]:
    return [
        _pod(
            obj.spec.template,
            obj.namespace,
            f"{obj.name}-{safe_suffix(f'{obj.namespace}/{obj.name}/{i}')}",
            _owner(obj),
            {},
        )
        for i in range(obj.spec.replicas)
    ]


def expand_statefulset(obj: StatefulSet) -> list[Pod]:
    revision = f"{obj.name}-{template_hash(obj.spec.template)}"
    pods = []
    for ordinal in range(obj.spec.first_ordinal, obj.spec.first_ordinal + obj.spec.replicas):
        name = f"{obj.name}-{ordinal}"
        labels = {
            "statefulset.kubernetes.io/pod-name": name,
            "apps.kubernetes.io/pod-index": str(ordinal),
            "controller-revision-hash": revision,
        }
        pods.append(
            _pod(
                obj.spec.template,
                obj.namespace,
                name,
                _owner(obj),
                labels,
                hostname=name,
                subdomain=obj.spec.service_name or None,
            )
        )
    return pods


def expand_daemonset(obj: DaemonSet, nodes: Sequence[Node]) -> list[Pod]:
    revision = template_hash(obj.spec.template)
    pods = []
    for node in nodes:
        if node.spec.unschedulable:
            continue
        if not matches_node_selector(obj.spec.template.spec, node):
            continue
        name = f"{obj.name}-{safe_suffix(f'{obj.namespace}/{obj.name}/{node.name}')}"
        labels = {"controller-revision-hash": revision, "pod-template-generation": "1"}
        pods.append(
            _pod(obj.spec.template, obj.namespace, name, _owner(obj), labels, node_name=node.name)
        )
    return pods


def matches_node_selector(spec: PodSpec, node: Node) -> bool:
    if not spec.node_selector:
        return True
    return matches(LabelSelector(match_labels=spec.node_selector), node.labels)


def _job_pods(spec: JobSpec, namespace: str, job_name: str, owner: OwnerReference) -> list[Pod]:
    uid = safe_suffix(f"{namespace}/{job_name}/uid", 10)
    labels = {
        "batch.kubernetes.io/job-name": job_name,
        "job-name": job_name,
        "batch.kubernetes.io/controller-uid": uid,
        "controller-uid": uid,
    }
    return [
        _pod(
            spec.template,
            namespace,
            f"{job_name}-{safe_suffix(f'{namespace}/{job_name}/{i}')}",
            owner,
            labels,
        )
        for i in range(spec.running_pods)
    ]


def expand_job(obj: Job) -> list[Pod]:
    return _job_pods(obj.spec, obj.namespace, obj.name, _owner(obj))


def expand_cronjob(obj: CronJob) -> list[Pod]:
    if obj.spec.suspend:
        return []
    run = 10_000_000 + stable_hash(f"{obj.namespace}/{obj.name}") % 90_000_000
    job_name = f"{obj.name}-{run}"
    owner = OwnerReference(api_version="batch/v1", kind="Job", name=job_name, controller=True)
    return _job_pods(obj.spec.job_template.spec, obj.namespace, job_name, owner)


def expand(obj: Resource, nodes: Sequence[Node]) -> list[Pod]:
    """The pods a workload object creates ([] for anything else)."""
    if isinstance(obj, Deployment):
        return expand_deployment(obj)
    if isinstance(obj, ReplicaSet):
        return expand_replicaset(obj)
    if isinstance(obj, StatefulSet):
        return expand_statefulset(obj)
    if isinstance(obj, DaemonSet):
        return expand_daemonset(obj, nodes)
    if isinstance(obj, Job):
        return expand_job(obj)
    if isinstance(obj, CronJob):
        return expand_cronjob(obj)
    return []
