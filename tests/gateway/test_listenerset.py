"""ListenerSet: listeners merged into a parent Gateway, with their own status.

Spec: listenerset_types.go (ListenerSetSpec.Listeners precedence "parent Gateway,
ListenerSet ordered by creation time (oldest first), ... alphabetically";
ListenerSetConditionReason NotAllowed, ParentNotAccepted, ListenersNotValid;
ListenerEntryConditionReason), gateway_types.go AllowedListeners (default None),
GatewayStatus.AttachedListenerSets, and GEP-1713 ("Route Attachment", "Gateway
Parents and sectionName", "ReferenceGrant Semantics", "Listener and ListenerSet
Conflicts", and its Conformance Details scenarios, followed case by case).
"""

from __future__ import annotations

import pytest

from netlet.gateway.conditions import ConditionType
from netlet.gateway.match import match_http
from netlet.gateway.status import ListenerSetStatus
from netlet.gateway.table import Request
from tests.gateway.manifests import dedent, gateway, http_route, world


def listener_set(
    listeners: str,
    name: str = "ls",
    namespace: str = "infra",
    created: str | None = None,
) -> str:
    stamp = f", creationTimestamp: '{created}'" if created else ""
    body = "\n".join("  " + line for line in dedent(listeners).splitlines())
    return (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: ListenerSet\n"
        f"metadata: {{name: {name}, namespace: {namespace}{stamp}}}\n"
        f"spec:\n  parentRef: {{name: gw, namespace: infra}}\n  listeners:\n{body}"
    )


def parent(allowed: str | None) -> str:
    extra = f"allowedListeners: {{namespaces: {allowed}}}" if allowed else ""
    return gateway(
        "- {name: gw-80, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}",
        extra=extra,
    )


def _cond(status: ListenerSetStatus, type_: ConditionType) -> tuple[str, str]:
    found = status.condition(type_)
    assert found is not None
    return found.status, found.reason.value


@pytest.mark.parametrize(
    ("allowed", "namespace", "expected", "attached"),
    [
        pytest.param(
            None,
            "infra",
            ("False", "NotAllowed"),
            0,
            id="a Gateway without allowedListeners admits no ListenerSet",
        ),
        pytest.param(
            "{from: None}",
            "infra",
            ("False", "NotAllowed"),
            0,
            id="from None admits no ListenerSet",
        ),
        pytest.param(
            "{from: Same}",
            "infra",
            ("True", "Accepted"),
            1,
            id="from Same admits a ListenerSet of the Gateway namespace",
        ),
        pytest.param(
            "{from: Same}",
            "app",
            ("False", "NotAllowed"),
            0,
            id="from Same refuses another namespace",
        ),
        pytest.param(
            "{from: Selector, selector: {matchLabels: {team: app}}}",
            "app",
            ("True", "Accepted"),
            1,
            id="from Selector admits a selected namespace",
        ),
        pytest.param(
            "{from: Selector, selector: {matchLabels: {team: app}}}",
            "other",
            ("False", "NotAllowed"),
            0,
            id="from Selector refuses other namespaces",
        ),
        pytest.param(
            "{from: All}", "other", ("True", "Accepted"), 1, id="from All admits any namespace"
        ),
    ],
)
def test_allowed_listeners(
    allowed: str | None, namespace: str, expected: tuple[str, str], attached: int
) -> None:
    w = world(
        parent(allowed),
        listener_set("- {name: ls-81, port: 81, protocol: HTTP}", namespace=namespace),
    )
    status = w.listener_set(namespace, "ls")
    assert status is not None
    assert _cond(status, ConditionType.ACCEPTED) == expected
    assert _cond(status, ConditionType.PROGRAMMED)[0] == expected[0]
    gw = w.gateway("infra", "gw")
    assert gw is not None and gw.attached_listener_sets == attached


@pytest.mark.parametrize(
    ("listeners", "set_accepted", "attached", "conflict"),
    [
        pytest.param(
            "- {name: ls-80, port: 80, protocol: TCP}",
            ("False", "ListenersNotValid"),
            0,
            "ProtocolConflict",
            id="a lone listener with a protocol conflict fails the whole set",
        ),
        pytest.param(
            "- {name: ls-80, port: 80, protocol: TCP}\n- {name: ok, port: 82, protocol: HTTP}",
            ("True", "Accepted"),
            1,
            "ProtocolConflict",
            id="a protocol conflict beside a valid listener keeps the set",
        ),
        pytest.param(
            "- {name: ls-80, port: 80, protocol: HTTP}",
            ("False", "ListenersNotValid"),
            0,
            "HostnameConflict",
            id="a lone listener with a hostname conflict fails the whole set",
        ),
    ],
)
def test_conflict_with_the_parent_gateway(
    listeners: str, set_accepted: tuple[str, str], attached: int, conflict: str
) -> None:
    w = world(parent("{from: Same}"), listener_set(listeners))
    status = w.listener_set("infra", "ls")
    assert status is not None
    assert _cond(status, ConditionType.ACCEPTED) == set_accepted
    entry = status.listener("ls-80")
    assert entry is not None
    assert [
        (c.type.value, c.status, c.reason.value)
        for c in entry.conditions
        if c.type != ConditionType.RESOLVED_REFS
    ] == [
        ("Accepted", "False", "PortUnavailable"),
        ("Conflicted", "True", conflict),
        ("Programmed", "False", "PortUnavailable"),
    ]
    gw = w.gateway("infra", "gw")
    assert gw is not None and gw.attached_listener_sets == attached
    gw_listener = gw.listener("gw-80")
    assert (
        gw_listener is not None
        and gw_listener.condition(ConditionType.CONFLICTED).status == "False"
    )  # type: ignore[union-attr]


def test_between_two_listener_sets_the_older_wins() -> None:
    w = world(
        parent("{from: All}"),
        listener_set(
            "- {name: x, port: 90, protocol: HTTP}",
            name="newer",
            namespace="app",
            created="2025-08-11T15:44:05Z",
        ),
        listener_set(
            "- {name: x, port: 90, protocol: HTTP}",
            name="older",
            namespace="other",
            created="2025-08-11T13:44:05Z",
        ),
    )
    older = w.listener_set("other", "older")
    newer = w.listener_set("app", "newer")
    assert older is not None and newer is not None
    assert _cond(older, ConditionType.ACCEPTED) == ("True", "Accepted")
    assert _cond(newer, ConditionType.ACCEPTED) == ("False", "ListenersNotValid")
    entry = newer.listener("x")
    assert (
        entry is not None
        and entry.condition(ConditionType.CONFLICTED).reason.value == "HostnameConflict"
    )  # type: ignore[union-attr]


def test_listener_names_may_repeat_across_the_gateway_and_its_sets() -> None:
    w = world(parent("{from: Same}"), listener_set("- {name: gw-80, port: 8080, protocol: HTTP}"))
    status = w.listener_set("infra", "ls")
    assert status is not None and _cond(status, ConditionType.ACCEPTED) == ("True", "Accepted")


@pytest.mark.parametrize(
    ("route_namespace", "parents", "expected"),
    [
        pytest.param(
            "infra",
            "[{kind: ListenerSet, name: ls, namespace: infra}]",
            ("True", "Accepted"),
            id="a route attaches to a ListenerSet parent",
        ),
        pytest.param(
            "app",
            "[{kind: ListenerSet, name: ls, namespace: infra}]",
            ("False", "NotAllowedByListeners"),
            id="allowedRoutes Same means the ListenerSet namespace",
        ),
        pytest.param(
            "infra",
            "[{kind: ListenerSet, name: ls, namespace: infra, sectionName: nope}]",
            ("False", "NoMatchingParent"),
            id="a sectionName not in the ListenerSet is NoMatchingParent",
        ),
        pytest.param(
            "infra",
            "[{name: gw, namespace: infra, sectionName: ls-90}]",
            ("False", "NoMatchingParent"),
            id="a Gateway parent does not see ListenerSet listeners",
        ),
    ],
)
def test_route_attachment_through_listener_sets(
    route_namespace: str, parents: str, expected: tuple[str, str]
) -> None:
    w = world(
        parent("{from: Same}"),
        listener_set("- {name: ls-90, port: 90, protocol: HTTP}"),
        http_route(namespace=route_namespace, parents=parents),
    )
    condition = w.routes[0].parents[0].condition(ConditionType.ACCEPTED)
    assert condition is not None and (condition.status, condition.reason.value) == expected


def test_a_route_on_a_listener_set_is_served_on_the_gateway() -> None:
    w = world(
        parent("{from: Same}"),
        listener_set("- {name: ls-90, port: 90, protocol: HTTP}"),
        http_route(namespace="infra", parents="[{kind: ListenerSet, name: ls, namespace: infra}]"),
    )
    decision = match_http(
        w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com:90/")
    )
    assert decision.listener is not None and (
        decision.listener.owner_kind,
        decision.listener.owner,
    ) == ("ListenerSet", "infra/ls")
    status = w.listener_set("infra", "ls")
    assert status is not None and status.listeners[0].attached_routes == 1


SECRET_LS = "- {name: s, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert, namespace: other}]}}"


@pytest.mark.parametrize(
    ("grant_kind", "expected"),
    [
        pytest.param(
            "ListenerSet",
            ("True", "ResolvedRefs"),
            id="a grant for ListenerSets lets the set use the Secret",
        ),
        pytest.param(
            "Gateway",
            ("False", "RefNotPermitted"),
            id="a grant for the parent Gateway is not inherited",
        ),
    ],
)
def test_reference_grants_are_per_object(grant_kind: str, expected: tuple[str, str]) -> None:
    grant = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: other}\n"
        f"spec:\n  from: [{{group: gateway.networking.k8s.io, kind: {grant_kind}, namespace: infra}}]\n"
        "  to: [{group: '', kind: Secret}]"
    )
    w = world(parent("{from: Same}"), listener_set(SECRET_LS), grant)
    status = w.listener_set("infra", "ls")
    assert status is not None
    entry = status.listener("s")
    assert entry is not None
    resolved = entry.condition(ConditionType.RESOLVED_REFS)
    assert resolved is not None and (resolved.status, resolved.reason.value) == expected
    accepted = entry.condition(ConditionType.ACCEPTED)
    assert accepted is not None and accepted.status == expected[0]
    assert _cond(status, ConditionType.ACCEPTED) == ("True", "Accepted")


def test_a_listener_set_of_a_gateway_that_is_not_accepted() -> None:
    bad_parent = gateway(
        "- {name: l, port: 80, protocol: HTTP}",
        extra="allowedListeners: {namespaces: {from: Same}}\naddresses: [{type: Hostname, value: a.example.com}]",
    )
    w = world(bad_parent, listener_set("- {name: x, port: 81, protocol: HTTP}"))
    status = w.listener_set("infra", "ls")
    assert status is not None and _cond(status, ConditionType.ACCEPTED) == (
        "False",
        "ParentNotAccepted",
    )


def test_a_listener_set_of_a_gateway_that_is_not_programmed() -> None:
    # ListenerSetConditionProgrammed: False with ParentNotProgrammed.
    unprogrammed = gateway(
        "- {name: l, port: 80, protocol: HTTP}",
        extra="allowedListeners: {namespaces: {from: Same}}\naddresses: [{type: IPAddress}]",
    )
    w = world(unprogrammed, listener_set("- {name: x, port: 81, protocol: HTTP}"))
    status = w.listener_set("infra", "ls")
    assert status is not None
    assert _cond(status, ConditionType.ACCEPTED) == ("True", "Accepted")
    assert _cond(status, ConditionType.PROGRAMMED) == ("False", "ParentNotProgrammed")
