"""Workload controllers (apps/v1, batch/v1): the part of them networking cares about,
which is the pods they create. Expansion into pods lives in cluster/expand.py."""

from __future__ import annotations

from pydantic import Field, model_validator

from netlet.resources.base import LabelSelector, Model, ObjectMeta, Resource
from netlet.resources.core import PodSpec
from netlet.resources.selectors import matches


class PodTemplateSpec(Model):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec


def _selector_matches_template(selector: LabelSelector | None, template: PodTemplateSpec) -> None:
    if selector is None:
        raise ValueError("selector: Required value")
    if not selector.match_labels and not selector.match_expressions:
        raise ValueError("selector: Invalid value: empty selector is invalid for deployment")
    if not matches(selector, template.metadata.labels):
        raise ValueError(
            "template.metadata.labels: Invalid value: `selector` does not match template `labels`"
        )


class DeploymentSpec(Model):
    replicas: int = Field(default=1, ge=0)
    selector: LabelSelector | None = None
    template: PodTemplateSpec

    @model_validator(mode="after")
    def _selector(self) -> DeploymentSpec:
        _selector_matches_template(self.selector, self.template)
        return self


class Deployment(Resource):
    KIND = "Deployment"
    GROUP = "apps"
    SHORT_NAMES = ("deploy",)

    spec: DeploymentSpec


class ReplicaSet(Resource):
    KIND = "ReplicaSet"
    GROUP = "apps"
    SHORT_NAMES = ("rs",)

    spec: DeploymentSpec


class StatefulSetSpec(DeploymentSpec):
    service_name: str | None = None
    ordinals: dict[str, int] | None = None

    @property
    def first_ordinal(self) -> int:
        return (self.ordinals or {}).get("start", 0)


class StatefulSet(Resource):
    KIND = "StatefulSet"
    GROUP = "apps"
    SHORT_NAMES = ("sts",)

    spec: StatefulSetSpec


class DaemonSetSpec(Model):
    selector: LabelSelector | None = None
    template: PodTemplateSpec

    @model_validator(mode="after")
    def _selector(self) -> DaemonSetSpec:
        _selector_matches_template(self.selector, self.template)
        return self


class DaemonSet(Resource):
    KIND = "DaemonSet"
    GROUP = "apps"
    SHORT_NAMES = ("ds",)

    spec: DaemonSetSpec


class JobSpec(Model):
    parallelism: int = Field(default=1, ge=0)
    completions: int | None = Field(default=None, ge=0)
    selector: LabelSelector | None = None
    manual_selector: bool | None = None
    suspend: bool = False
    template: PodTemplateSpec

    @property
    def running_pods(self) -> int:
        """Pods a Job runs at once: parallelism, capped by completions."""
        if self.suspend:
            return 0
        if self.completions is not None:
            return min(self.parallelism, self.completions)
        return self.parallelism


class Job(Resource):
    KIND = "Job"
    GROUP = "batch"

    spec: JobSpec


class JobTemplateSpec(Model):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: JobSpec


class CronJobSpec(Model):
    schedule: str = Field(min_length=1)
    suspend: bool = False
    job_template: JobTemplateSpec


class CronJob(Resource):
    KIND = "CronJob"
    GROUP = "batch"
    SHORT_NAMES = ("cj",)

    spec: CronJobSpec


WORKLOAD_KINDS: tuple[type[Resource], ...] = (
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
)
