"""Label selectors (Labels and Selectors concept page) and CIDR arithmetic.

https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors:
matchLabels and matchExpressions are ANDed; an empty selector matches every
object; NotIn and DoesNotExist match objects without the key.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netlet.resources.base import LabelSelector
from netlet.resources.net import AddressSet, Allocator, nth_subnet
from netlet.resources.selectors import compile_selector, matches, parse_selector

LABELS = {"app": "web", "tier": "front", "env": "prod"}

SELECTOR_CASES = [
    ("empty selector matches everything", {}, True),
    ("matchLabels subset matches", {"matchLabels": {"app": "web"}}, True),
    ("matchLabels with a different value", {"matchLabels": {"app": "db"}}, False),
    ("matchLabels on a missing key", {"matchLabels": {"zone": "a"}}, False),
    (
        "In with the value",
        {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
        True,
    ),
    (
        "In without the key",
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
        False,
    ),
    (
        "NotIn without the key matches",
        {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]},
        True,
    ),
    (
        "NotIn with the value",
        {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
        False,
    ),
    ("Exists", {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
    (
        "DoesNotExist on a present key",
        {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]},
        False,
    ),
    (
        "labels and expressions are ANDed",
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}],
        },
        False,
    ),
]


@pytest.mark.parametrize(
    ("selector", "expected"), [c[1:] for c in SELECTOR_CASES], ids=[c[0] for c in SELECTOR_CASES]
)
def test_label_selector_semantics(selector: dict[str, object], expected: bool) -> None:
    parsed = LabelSelector.model_validate(selector)
    assert matches(parsed, LABELS) is expected
    assert compile_selector(parsed).matches(LABELS) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app=web", True),
        ("app==web,env=prod", True),
        ("app!=web", False),
        ("env in (prod, dev)", True),
        ("env notin (prod)", False),
        ("tier", True),
        ("!tier", False),
        ("!zone,app=web", True),
    ],
)
def test_kubectl_selector_syntax(text: str, expected: bool) -> None:
    assert parse_selector(text).matches(LABELS) is expected


keys = st.sampled_from(["a", "b", "c"])
values = st.sampled_from(["1", "2", "3"])
label_maps = st.dictionaries(keys, values, max_size=3)
expressions = st.builds(
    lambda key, op, vals: {
        "key": key,
        "operator": op,
        "values": vals if op in ("In", "NotIn") else [],
    },
    keys,
    st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
    st.lists(values, min_size=1, max_size=2, unique=True),
)


@given(label_maps, label_maps, st.lists(expressions, max_size=3))
def test_compiled_selector_agrees_with_direct_matching(
    labels: dict[str, str], match_labels: dict[str, str], exprs: list[dict[str, object]]
) -> None:
    selector = LabelSelector.model_validate(
        {"matchLabels": match_labels, "matchExpressions": exprs}
    )
    assert compile_selector(selector).matches(labels) == matches(selector, labels)


networks = st.builds(
    lambda addr, prefix: ipaddress.ip_network((addr, prefix), strict=False),
    st.integers(0, 2**16 - 1).map(lambda v: (10 << 24) + (v << 8)),
    st.integers(16, 32),
)


@given(st.lists(networks, max_size=4), st.lists(networks, max_size=4), st.integers(0, 2**16 - 1))
def test_address_set_algebra_matches_membership(
    a: list[ipaddress.IPv4Network], b: list[ipaddress.IPv4Network], probe_low: int
) -> None:
    set_a, set_b = AddressSet.of(*a), AddressSet.of(*b)
    probe = ipaddress.IPv4Address((10 << 24) + (probe_low << 8) + (probe_low % 256))
    in_a = any(probe in n for n in a)
    in_b = any(probe in n for n in b)
    assert (probe in set_a) == in_a
    assert (probe in (set_a | set_b)) == (in_a or in_b)
    assert (probe in (set_a & set_b)) == (in_a and in_b)
    assert (probe in (set_a - set_b)) == (in_a and not in_b)
    # The CIDR cover is exact.
    assert AddressSet.of(*(set_a - set_b).cidrs()) == set_a - set_b


def test_address_sets_keep_families_apart() -> None:
    both = AddressSet.of("10.0.0.0/8", "fd00::/8")
    assert "10.1.2.3" in both and "fd00::1" in both and "::1" not in both
    assert [str(c) for c in (both - AddressSet.of("10.0.0.0/9")).cidrs()] == [
        "10.128.0.0/9",
        "fd00::/8",
    ]


def test_nth_subnet_and_exhaustion() -> None:
    parent = ipaddress.ip_network("10.244.0.0/16")
    assert str(nth_subnet(parent, 24, 3)) == "10.244.3.0/24"
    assert str(nth_subnet(ipaddress.ip_network("fd00:10:244::/56"), 64, 1)) == "fd00:10:244:1::/64"
    with pytest.raises(ValueError, match="only 256"):
        nth_subnet(parent, 24, 256)


def test_allocator_is_deterministic_avoids_reserved_and_reports_exhaustion() -> None:
    net = ipaddress.ip_network("10.0.0.0/29")  # usable .2-.6 (.1 is the gateway)
    first = Allocator(net)
    second = Allocator(net)
    assert first.allocate("pod-a") == second.allocate("pod-a")
    alloc = Allocator(net)
    alloc.reserve(ipaddress.ip_address("10.0.0.2"))
    got = {alloc.allocate(f"k{i}") for i in range(4)}
    assert got == {ipaddress.ip_address(f"10.0.0.{i}") for i in range(3, 7)}
    with pytest.raises(ValueError, match="no free address"):
        alloc.allocate("one-too-many")
