"""The decision memo's path key (`netlet.gateway.match.PathClasses`): two request
targets with the same key get the same decision from `match_http`, and targets the
tables tell apart never share a key.

Spec: Gateway API apis/v1 httproute_types.go, HTTPPathMatch ("Exact", "PathPrefix":
element-wise prefix split by '/', "RegularExpression") and HTTPQueryParamMatch; GRPCRoute
GRPCMethodMatch (service and method come from the path). RFC 9112 3.2 (request-target:
path and query).
"""

from __future__ import annotations

import itertools

import pytest

from netlet.cluster.build import load_text
from netlet.gateway.build import build_programs
from netlet.gateway.match import PathClasses, match_http, path_classes
from netlet.gateway.table import GatewayProgram, Request
from tests.proxy.harness import gateway, manifests, service

PORT = 8080


def _route(rules: str, kind: str = "HTTPRoute") -> str:
    version = "v1"
    return (
        f"apiVersion: gateway.networking.k8s.io/{version}\nkind: {kind}\n"
        "metadata: {name: r, namespace: default}\n"
        "spec:\n  parentRefs: [{name: gw}]\n  rules:\n" + rules
    )


def _program(*routes: str) -> GatewayProgram:
    text = manifests(
        gateway(f"- {{name: http, port: {PORT}, protocol: HTTP}}"),
        service("svc", [9]),
        *routes,
    )
    result = load_text(text)
    assert result.ok, [str(d) for d in result.errors]
    return build_programs(result.state)["default/gw"]


MIXED = _route("""\
  - matches: [{path: {type: Exact, value: /item}}]
    backendRefs: [{name: svc, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /item}}]
    backendRefs: [{name: svc, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /item/special/deep}}]
    backendRefs: [{name: svc, port: 80}]
  - matches: [{path: {type: Exact, value: /other/a}}]
    backendRefs: [{name: svc, port: 80}]
  - matches: [{path: {type: Exact, value: /x/y/z}}]
    backendRefs: [{name: svc, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /q}, queryParams: [{name: v, value: "1"}]}]
    backendRefs: [{name: svc, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /}, method: POST}]
    backendRefs: [{name: svc, port: 80}]
""")

CATCH_ALL = _route("""\
  - backendRefs: [{name: svc, port: 80}]
""")

REGEX = _route("""\
  - matches: [{path: {type: RegularExpression, value: "/admin/[0-9]+"}}]
    backendRefs: [{name: svc, port: 80}]
  - backendRefs: [{name: svc, port: 80}]
""")

GRPC = _route(
    """\
  - matches: [{method: {service: pkg.Svc, method: Get}}]
    backendRefs: [{name: svc, port: 80}]
""",
    kind="GRPCRoute",
)

TARGETS = [
    "/",
    "/item",
    "/item/",
    "/item/1",
    "/item/2",
    "/item/1/2",
    "/items",
    "/item/special",
    "/item/special/deep",
    "/item/special/deep/x",
    "/item/special/deeper",
    "/item/special/deep/x/y",
    "/item/special/deep/z/y",
    "/other/a",
    "/other/a/b",
    "/other/a/b/c/d",
    "/other/a/b/c/e",
    "/other",
    "/x/y/z",
    "/x/y/z/w",
    "/x/y/z/v",
    "/q",
    "/q?v=1",
    "/q?v=2",
    "/q/x?v=1",
    "/item?v=1",
    "/admin/1",
    "/admin/x",
    "/pkg.Svc/Get",
    "/pkg.Svc/Put",
    "*",
]


def _decision_of(program: GatewayProgram, method: str, target: str) -> tuple[object, ...]:
    path, _, query = target.partition("?")
    decision = match_http(program, Request(method, path, "shop.test", PORT, query=query))
    entry = decision.entry
    return (
        decision.outcome.action,
        decision.outcome.status,
        decision.outcome.reason,
        entry.rule.ref.text if entry is not None else None,
        getattr(entry, "match_index", None),
    )


@pytest.mark.parametrize(
    "routes",
    [
        pytest.param((MIXED,), id="Exact, nested PathPrefix, method and query matches"),
        pytest.param((CATCH_ALL,), id="one rule without matches"),
        pytest.param((REGEX,), id="a RegularExpression path beside a catch-all"),
        pytest.param((CATCH_ALL, GRPC.replace("name: r,", "name: g,")), id="HTTP and gRPC"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_targets_with_one_key_get_one_decision(routes, method):
    program = _program(*routes)
    classes = path_classes(program, PORT)
    by_key: dict[object, list[str]] = {}
    for target in TARGETS:
        by_key.setdefault(classes.key(target), []).append(target)
    for targets in by_key.values():
        decisions = {_decision_of(program, method, target) for target in targets}
        assert len(decisions) == 1, (targets, decisions)


@pytest.mark.parametrize(
    ("routes", "first", "second", "shared"),
    [
        pytest.param(
            (CATCH_ALL,), "/item/1", "/other/2/3", True, id="a catch-all makes every path one class"
        ),
        pytest.param(
            (MIXED,),
            "/other/a/b/c/d",
            "/other/a/b/c/e",
            True,
            id="paths deeper than the deepest prefix share their first segments' class",
        ),
        pytest.param(
            (MIXED,),
            "/item/special/deep/x",
            "/item/special/deeper",
            False,
            id="a deeper prefix keeps its paths apart",
        ),
        pytest.param(
            (MIXED,),
            "/other/a",
            "/other/a/b/c/d",
            False,
            id="an Exact path is not the class of the longer paths cut to it",
        ),
        pytest.param(
            (MIXED,),
            "/x/y/z",
            "/x/y/z/w",
            False,
            id="a path cut to an Exact path's length is not that Exact path's class",
        ),
        pytest.param((MIXED,), "/q?v=1", "/q?v=2", False, id="a query match keeps queries apart"),
        pytest.param(
            (CATCH_ALL,), "/item?v=1", "/item?v=2", True, id="queries no match tests are ignored"
        ),
        pytest.param(
            (REGEX,), "/x/1", "/x/2", False, id="a regular expression makes every path its own"
        ),
        pytest.param(
            (CATCH_ALL, GRPC.replace("name: r,", "name: g,")),
            "/pkg.Svc/Get",
            "/pkg.Svc/Put",
            False,
            id="gRPC methods are paths: every path is its own",
        ),
    ],
)
def test_which_targets_share_a_key(routes, first, second, shared):
    classes = path_classes(_program(*routes), PORT)
    assert (classes.key(first) == classes.key(second)) is shared


def test_a_port_without_http_listeners_keeps_every_path_apart():
    assert PathClasses().key("/a") != PathClasses().key("/b")
    assert path_classes(_program(CATCH_ALL), 9999).whole


def test_keys_are_hashable_and_pairwise_consistent_over_many_targets():
    program = _program(MIXED)
    classes = path_classes(program, PORT)
    for a, b in itertools.combinations(TARGETS, 2):
        if classes.key(a) == classes.key(b):
            assert hash(classes.key(a)) == hash(classes.key(b))
            assert _decision_of(program, "GET", a) == _decision_of(program, "GET", b)
