"""Base types for Kubernetes objects: field naming, metadata, and the kind registry.

Models are frozen pydantic models whose Python names are snake_case and whose
wire names are the API's camelCase (with the API's acronyms: clusterIP,
podCIDRs, externalIPs). Fields netlet does not use are ignored on input, as a
client built against an older API version would.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from netlet.resources.validation import (
    Labels,
    check_dns1035_label,
    check_dns1123_label,
    check_dns1123_subdomain,
)

# Words the Kubernetes API spells in capitals inside camelCase names.
_ACRONYMS = {"ip": "IP", "ips": "IPs", "cidr": "CIDR", "cidrs": "CIDRs", "uid": "UID"}


def to_kube_camel(name: str) -> str:
    """'cluster_ips' -> 'clusterIPs', 'pod_cidr' -> 'podCIDR', 'end_port' -> 'endPort'."""
    first, *rest = name.rstrip("_").split("_")
    return first + "".join(_ACRONYMS.get(word, word[:1].upper() + word[1:]) for word in rest)


class Model(BaseModel):
    """Base of every API struct."""

    model_config = ConfigDict(
        alias_generator=to_kube_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        str_strip_whitespace=False,
    )

    def to_api(self) -> dict[str, Any]:
        """The object as the API would serve it: camelCase, without unset optionals or
        empty lists and maps (as the API server's JSON omits them)."""
        data = _prune(self.model_dump(by_alias=True, exclude_none=True, mode="json"))
        return data if isinstance(data, dict) else {}


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


class OwnerReference(Model):
    api_version: str
    kind: str
    name: str
    uid: str = ""
    controller: bool | None = None


class ObjectMeta(Model):
    name: str = ""
    generate_name: str | None = None
    namespace: str = ""
    labels: Labels = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    owner_references: tuple[OwnerReference, ...] = ()

    @field_validator("creation_timestamp", "deletion_timestamp", mode="before")
    @classmethod
    def _timestamp_text(cls, value: Any) -> Any:
        # YAML parsers turn unquoted RFC 3339 times into datetime objects.
        return value.isoformat() if hasattr(value, "isoformat") else value


# How metadata.name of each kind is validated by the API server.
NAME_RULES = {
    "subdomain": check_dns1123_subdomain,
    "label": check_dns1123_label,
    "dns1035": check_dns1035_label,
}


class Resource(Model):
    """A top-level API object. Subclasses set the class variables below."""

    KIND: ClassVar[str] = ""
    GROUP: ClassVar[str] = ""  # "" is the core group
    VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    NAMESPACED: ClassVar[bool] = True
    NAME_RULE: ClassVar[str] = "subdomain"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def labels(self) -> dict[str, str]:
        return self.metadata.labels

    @classmethod
    def plural(cls) -> str:
        kind = cls.KIND.lower()
        if kind.endswith("y") and kind[-2:-1] not in ("a", "e", "i", "o", "u"):
            return kind[:-1] + "ies"
        if kind.endswith(("s", "x")):
            return kind + "es"
        return kind + "s"

    @classmethod
    def api_versions(cls) -> tuple[str, ...]:
        return tuple(f"{cls.GROUP}/{v}" if cls.GROUP else v for v in cls.VERSIONS)


class LabelSelectorRequirement(Model):
    key: str
    operator: str
    values: tuple[str, ...] = ()

    @field_validator("operator")
    @classmethod
    def _operator(cls, value: str) -> str:
        if value not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"must be one of In, NotIn, Exists, DoesNotExist (got {value!r})")
        return value

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"values: must be specified when operator is {self.operator}")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"values: may not be specified when operator is {self.operator}")
        return self


class LabelSelector(Model):
    """metav1.LabelSelector. An empty selector matches everything; see selectors.py."""

    match_labels: Labels = Field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()


class Condition(Model):
    type: str
    status: str = "True"
    reason: str = ""
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str | None = None

    @field_validator("last_transition_time", mode="before")
    @classmethod
    def _timestamp_text(cls, value: Any) -> Any:
        return value.isoformat() if hasattr(value, "isoformat") else value
