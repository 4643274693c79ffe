"""Cross-namespace references and ReferenceGrant (apis/v1 referencegrant_types.go).

"All cross-namespace references in Gateway API (with the exception of
cross-namespace Gateway-route attachment) require a ReferenceGrant": a grant in
the *target* namespace lists trusted `from` (group, kind, namespace) entries and
the `to` (group, kind, optional name) they may reference; entries are ORed.
References within one namespace never need a grant.

`Grants` indexes every ReferenceGrant once so each check is a dict lookup.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from netlet.cluster.state import ClusterState
from netlet.resources.gateway_api import ReferenceGrant


@dataclass(frozen=True, slots=True)
class Grants:
    # (to namespace, from group, from kind, from namespace) -> {(to group, to kind, name|None)}
    _allowed: dict[tuple[str, str, str, str], set[tuple[str, str, str | None]]] = field(
        default_factory=dict
    )

    @classmethod
    def from_state(cls, state: ClusterState) -> Grants:
        allowed: dict[tuple[str, str, str, str], set[tuple[str, str, str | None]]] = defaultdict(
            set
        )
        for grant in state.list(ReferenceGrant):
            for source in grant.spec.from_:
                key = (grant.namespace, source.group, source.kind, source.namespace)
                for target in grant.spec.to:
                    allowed[key].add((target.group, target.kind, target.name))
        return cls(dict(allowed))

    def permits(
        self,
        from_group: str,
        from_kind: str,
        from_namespace: str,
        to_group: str,
        to_kind: str,
        to_namespace: str,
        to_name: str,
    ) -> bool:
        """May an object (from_*) reference to_namespace/to_name of (to_group, to_kind)?"""
        if from_namespace == to_namespace:
            return True
        targets = self._allowed.get((to_namespace, from_group, from_kind, from_namespace))
        if not targets:
            return False
        return (to_group, to_kind, None) in targets or (to_group, to_kind, to_name) in targets
