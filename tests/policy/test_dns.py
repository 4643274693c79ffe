"""DNS answers for domainNames peers (netlet never resolves names itself).

Pattern semantics from network-policy-api DomainName (apis/v1alpha2 and
v1alpha1 types): exact names match only themselves; `*.` matches one or more
whole labels in front; case-insensitive; a trailing dot is allowed.
"""

from __future__ import annotations

import ipaddress

import pytest
import yaml

from netlet.policy.dns import (
    make_answers,
    parse_answers_text,
    parse_resolve_options,
    pattern_matches,
    resolve_patterns,
)


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("kubernetes.io", "kubernetes.io", True),
        ("kubernetes.io", "www.kubernetes.io", False),
        ("kubernetes.io", "my-kubernetes.io", False),
        ("blog.kubernetes.io", "kubernetes.io", False),
        ("*.kubernetes.io", "www.kubernetes.io", True),
        ("*.kubernetes.io", "latest.blog.kubernetes.io", True),
        ("*.kubernetes.io", "kubernetes.io", False),
        ("*.kubernetes.io", "wikipedia.org", False),
        ("*.kubernetes.io", "notkubernetes.io", False),
        ("Kubernetes.IO.", "kubernetes.io", True),
    ],
    ids=[
        "an exact name matches itself",
        "an exact name does not match a subdomain",
        "an exact name does not match a longer label",
        "a subdomain pattern does not match its parent",
        "a wildcard matches one label",
        "a wildcard matches several labels",
        "a wildcard does not match the bare domain",
        "a wildcard does not match another domain",
        "a wildcard matches whole labels only",
        "case and a trailing dot do not matter",
    ],
)
def test_domain_name_patterns(pattern: str, name: str, matches: bool) -> None:
    assert pattern_matches(pattern, name) is matches


def test_answers_are_normalized_merged_and_sorted() -> None:
    answers = make_answers(
        {"API.example.com.": ["203.0.113.9", "2001:db8::1"], "api.example.com": ["203.0.113.5"]}
    )
    assert answers.as_dict() == {
        "api.example.com": (
            ipaddress.ip_address("203.0.113.5"),
            ipaddress.ip_address("203.0.113.9"),
            ipaddress.ip_address("2001:db8::1"),
        )
    }


@pytest.mark.parametrize(
    ("answers", "words"),
    [
        ({"a.example.com": ["not-an-ip"]}, "is not an IP address"),
        ({"*.example.com": ["203.0.113.5"]}, "plain domain name"),
    ],
    ids=["an answer that is not an address", "an answer for a wildcard"],
)
def test_bad_answers_are_refused(answers: dict[str, list[str]], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        make_answers(answers)


def test_resolve_options_and_answer_files() -> None:
    assert parse_resolve_options(["a.com=1.1.1.1,1.0.0.1", "a.com=9.9.9.9"]) == {
        "a.com": ["1.1.1.1", "1.0.0.1", "9.9.9.9"]
    }
    with pytest.raises(ValueError, match="NAME=IP"):
        parse_resolve_options(["a.com"])
    text = "a.com: [1.1.1.1]\nb.com: 2.2.2.2\n"
    assert parse_answers_text(text, yaml.safe_load(text)) == {
        "a.com": ["1.1.1.1"],
        "b.com": ["2.2.2.2"],
    }
    hosts = "# hosts\n1.1.1.1 a.com www.a.com\n\n2.2.2.2 b.com # comment\n"
    assert parse_answers_text(hosts, None) == {
        "a.com": ["1.1.1.1"],
        "www.a.com": ["1.1.1.1"],
        "b.com": ["2.2.2.2"],
    }
    with pytest.raises(ValueError, match="line 1"):
        parse_answers_text("1.1.1.1\n", None)


def test_patterns_resolve_to_the_names_they_cover() -> None:
    answers = make_answers({"www.a.com": ["1.1.1.1"], "a.com": ["2.2.2.2"], "b.com": ["3.3.3.3"]})
    names, ips = resolve_patterns(answers, ["*.a.com", "b.com"])
    assert names == ("b.com", "www.a.com")
    assert sorted(str(ip) for ip in ips) == ["1.1.1.1", "3.3.3.3"]
