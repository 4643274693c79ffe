"""DNS answers for `domainNames` peers, given by the user (netlet never queries DNS).

A `domainNames` peer matches a destination address when a name it covers
resolved to that address. netlet cannot know what a resolver would answer, so
the user supplies the answers (``--resolve name=ip,ip`` or an answers file);
without them such a peer matches nothing, and verdicts that reach it say that
they depend on DNS.

Pattern semantics (network-policy-api DomainName): ``kubernetes.io`` matches
only that name; ``*.kubernetes.io`` matches one or more whole labels in front
of it (``www.kubernetes.io``, ``a.b.kubernetes.io``) but not ``kubernetes.io``.
Comparison is case-insensitive and ignores a trailing dot.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from netlet.policy.program import DnsAnswers
from netlet.resources.net import IPAddress


def normalize_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def pattern_matches(pattern: str, name: str) -> bool:
    pattern, name = normalize_name(pattern), normalize_name(name)
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".kubernetes.io"
        return name.endswith(suffix) and len(name) > len(suffix)
    return pattern == name


def make_answers(answers: Mapping[str, Iterable[str | IPAddress]]) -> DnsAnswers:
    """Validated, normalized answers; raises ValueError naming the bad entry."""
    merged: dict[str, set[IPAddress]] = {}
    for name, addresses in answers.items():
        key = normalize_name(str(name))
        if not key or "*" in key:
            raise ValueError(f"{name!r}: an answer must be for a plain domain name")
        bucket = merged.setdefault(key, set())
        for address in addresses:
            try:
                bucket.add(ipaddress.ip_address(str(address).strip()))
            except ValueError:
                raise ValueError(f"{name}: {address!r} is not an IP address") from None
    return DnsAnswers(
        tuple(
            (name, tuple(sorted(ips, key=lambda ip: (ip.version, int(ip)))))
            for name, ips in sorted(merged.items())
        )
    )


def parse_resolve_options(options: Iterable[str]) -> dict[str, list[str]]:
    """`name=ip[,ip...]` items (the CLI's --resolve), merged."""
    out: dict[str, list[str]] = {}
    for option in options:
        name, sep, rest = option.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise ValueError(f"--resolve {option!r}: expected NAME=IP[,IP...]")
        out.setdefault(name.strip(), []).extend(p for p in rest.split(",") if p.strip())
    return out


def parse_answers_text(text: str, data: Any = None) -> dict[str, list[str]]:
    """An answers file: a YAML/JSON mapping `name: [ip, ...]` (already parsed into
    `data` by the caller), or hosts-file lines `IP name [name...]` with # comments."""
    if isinstance(data, Mapping):
        out: dict[str, list[str]] = {}
        for name, value in data.items():
            values = value if isinstance(value, list | tuple) else [value]
            out.setdefault(str(name), []).extend(str(v) for v in values)
        return out
    out = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) < 2:
            raise ValueError(f"line {number}: expected 'IP name [name...]'")
        for name in fields[1:]:
            out.setdefault(name, []).append(fields[0])
    return out


def resolve_patterns(
    answers: DnsAnswers, patterns: Iterable[str]
) -> tuple[tuple[str, ...], tuple[IPAddress, ...]]:
    """The answered names some pattern covers, and their addresses."""
    pats = tuple(patterns)
    names: list[str] = []
    ips: list[IPAddress] = []
    for name, addresses in answers.answers:
        if any(pattern_matches(p, name) for p in pats):
            names.append(name)
            ips.extend(addresses)
    return tuple(names), tuple(ips)
