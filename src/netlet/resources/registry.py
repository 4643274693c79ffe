"""The kinds netlet understands, by API group and kind, with their served versions."""

from __future__ import annotations

from netlet.resources.base import Resource
from netlet.resources.core import CORE_KINDS
from netlet.resources.gateway_api import GATEWAY_KINDS
from netlet.resources.multinet import MULTINET_KINDS
from netlet.resources.networking import NETWORKING_KINDS
from netlet.resources.policy_api import POLICY_API_KINDS
from netlet.resources.workloads import WORKLOAD_KINDS

ALL_KINDS: tuple[type[Resource], ...] = (
    CORE_KINDS
    + NETWORKING_KINDS
    + POLICY_API_KINDS
    + GATEWAY_KINDS
    + MULTINET_KINDS
    + WORKLOAD_KINDS
)

BY_GROUP_KIND: dict[tuple[str, str], type[Resource]] = {(k.GROUP, k.KIND): k for k in ALL_KINDS}
BY_KIND: dict[str, type[Resource]] = {k.KIND: k for k in ALL_KINDS}


def split_api_version(api_version: str) -> tuple[str, str]:
    """'apps/v1' -> ('apps', 'v1'); 'v1' -> ('', 'v1')."""
    group, _, version = api_version.rpartition("/")
    return group, version


def lookup_kind(name: str) -> type[Resource] | None:
    """Resolve what a user typed after `netlet get`: kind, plural, short name, any case,
    optionally qualified with a group (`httproutes.gateway.networking.k8s.io`)."""
    wanted = name.lower()
    for kind in ALL_KINDS:
        names = {kind.KIND.lower(), kind.plural(), *kind.SHORT_NAMES}
        qualified = {f"{n}.{kind.GROUP}" for n in names} if kind.GROUP else set()
        if wanted in names or wanted in qualified:
            return kind
    return None
