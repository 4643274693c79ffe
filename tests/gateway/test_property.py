"""Property tests: the ordered HTTPRoute table is a total order consistent with the
spec's precedence rules, independent of the order routes are given in, and the
indexed lookup answers exactly what a brute-force scan of that order answers.

Spec: httproute_types.go HTTPRouteRule.Matches (the precedence list, restated
below as `spec_compare` independently of netlet's own sort key) and
gateway_types.go Listener.AllowedRoutes (oldest route, then {namespace}/{name}).
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlet.cluster.state import ClusterState
from netlet.gateway.backends import BackendResolver
from netlet.gateway.compile import build_http_table
from netlet.gateway.listeners import creation_order
from netlet.gateway.match import find_http_entry
from netlet.gateway.policy import PolicyIndex
from netlet.gateway.refs import Grants
from netlet.gateway.routes import compile_route
from netlet.gateway.table import HTTPEntry, HTTPTable, Request
from netlet.resources.gateway_api import HTTPRoute

SEGMENTS = ["a", "b", "ab"]
TIMES = ["2020-01-01T00:00:00Z", "2021-06-01T00:00:00Z", None]


@st.composite
def paths(draw: st.DrawFn) -> str:
    return "/" + "/".join(draw(st.lists(st.sampled_from(SEGMENTS), max_size=3)))


@st.composite
def matches(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Exact", "PathPrefix", "PathPrefix", "RegularExpression"]))
    path = draw(paths())
    value = f"{path}.*" if kind == "RegularExpression" else path
    match: dict[str, Any] = {"path": {"type": kind, "value": value}}
    if draw(st.booleans()):
        match["method"] = draw(st.sampled_from(["GET", "POST"]))
    headers = draw(st.lists(st.sampled_from(["h1", "h2", "h3"]), unique=True, max_size=2))
    if headers:
        match["headers"] = [{"name": h, "value": "1"} for h in headers]
    query = draw(st.lists(st.sampled_from(["q1", "q2"]), unique=True, max_size=2))
    if query:
        match["queryParams"] = [{"name": q, "value": "1"} for q in query]
    return match


@st.composite
def routes(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(
        st.lists(
            st.sampled_from(["r1", "r2", "r3", "r4", "r5"]), unique=True, min_size=1, max_size=4
        )
    )
    out = []
    for name in names:
        namespace = draw(st.sampled_from(["app", "other"]))
        stamp = draw(st.sampled_from(TIMES))
        rules = [
            {"matches": draw(st.lists(matches(), min_size=1, max_size=2))}
            for _ in range(draw(st.integers(1, 3)))
        ]
        metadata = {"name": name, "namespace": namespace}
        if stamp:
            metadata["creationTimestamp"] = stamp
        out.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": metadata,
                "spec": {"rules": rules},
            }
        )
    return out


def table_of(objects: list[dict[str, Any]]) -> HTTPTable:
    state = ClusterState()
    resolver = BackendResolver(state, Grants(), PolicyIndex())
    compiled = [compile_route(HTTPRoute.model_validate(o), resolver) for o in objects]
    table = build_http_table([(c, ()) for c in compiled])
    assert table is not None
    return table


def spec_compare(a: HTTPEntry, b: HTTPEntry) -> int:
    """-1 when a must come before b by the spec's rules, 1 when after, 0 on a full tie.
    Written from the API doc list, not from netlet's sort key."""
    ma, mb = a.match, b.match
    rank = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}
    criteria = [
        (rank[ma.path_type], rank[mb.path_type]),  # Exact path match first
        (
            -len(ma.prefix) if ma.path_type == "PathPrefix" else 0,
            -len(mb.prefix) if mb.path_type == "PathPrefix" else 0,
        ),  # the longest prefix
        (
            -len(ma.path) if ma.path_type == "RegularExpression" else 0,
            -len(mb.path) if mb.path_type == "RegularExpression" else 0,
        ),  # (implementation-specific: longer expressions first)
        (ma.method is None, mb.method is None),  # a method match
        (-len(ma.headers), -len(mb.headers)),  # more header matches
        (-len(ma.query), -len(mb.query)),  # more query matches
    ]
    ra, rb = a.rule.ref, b.rule.ref
    routes_a = (a.key[5], ra.route.namespace, ra.route.name)
    routes_b = (b.key[5], rb.route.namespace, rb.route.name)
    criteria.append((routes_a, routes_b))  # oldest, then namespace/name
    criteria.append((ra.index, rb.index))  # the first rule of the route
    criteria.append((a.match_index, b.match_index))
    for left, right in criteria:
        if left != right:
            return -1 if left < right else 1  # type: ignore[operator]
    return 0


def identity(entry: HTTPEntry) -> tuple[str, str, int, int]:
    ref = entry.rule.ref
    return (ref.route.namespace, ref.route.name, ref.index, entry.match_index)


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(routes())
def test_the_table_is_a_total_order_consistent_with_the_spec(objects: list[dict[str, Any]]) -> None:
    entries = table_of(objects).entries
    assert [e.rank for e in entries] == list(range(len(entries)))
    for earlier, later in itertools.pairwise(entries):
        assert spec_compare(earlier, later) == -1, (str(earlier), str(later))
    # The route part of the key really is the creation timestamp of the route.
    for entry in entries:
        obj = next(
            o
            for o in objects
            if o["metadata"]["name"] == entry.rule.ref.route.name
            and o["metadata"]["namespace"] == entry.rule.ref.route.namespace
        )
        assert entry.key[5] == creation_order(obj["metadata"].get("creationTimestamp"))


@SETTINGS
@given(routes(), st.randoms(use_true_random=False))
def test_the_order_does_not_depend_on_input_order(
    objects: list[dict[str, Any]], rnd: random.Random
) -> None:
    shuffled = list(objects)
    rnd.shuffle(shuffled)
    assert [identity(e) for e in table_of(objects).entries] == [
        identity(e) for e in table_of(shuffled).entries
    ]


@st.composite
def requests(draw: st.DrawFn) -> Request:
    path = draw(paths())
    if draw(st.booleans()):
        path += "/"
    headers = tuple(
        (h, "1") for h in draw(st.lists(st.sampled_from(["h1", "h2", "h3"]), unique=True))
    )
    query = "&".join(f"{q}=1" for q in draw(st.lists(st.sampled_from(["q1", "q2"]), unique=True)))
    method = draw(st.sampled_from(["GET", "POST"]))
    return Request(
        method=method, path=path, host="example.com", port=80, query=query, headers=headers
    )


@SETTINGS
@given(routes(), st.lists(requests(), min_size=1, max_size=5))
def test_indexed_lookup_equals_a_scan_of_the_order(
    objects: list[dict[str, Any]], reqs: list[Request]
) -> None:
    table = table_of(objects)
    for request in reqs:
        expected = next((e for e in table.entries if e.match.mismatch(request) is None), None)
        assert find_http_entry(table, request) is expected
