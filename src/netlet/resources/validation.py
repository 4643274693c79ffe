"""Validation rules of the Kubernetes API server (apimachinery's validation package).

Each check returns None when valid or the message the API server would give,
so the same rules serve pydantic field validators and hand-written checks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, StrictInt

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63
IANA_SVC_NAME_MAX = 15

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_IANA_SVC_NAME = re.compile(r"[-a-z0-9]+")
_HAS_LETTER = re.compile(r"[a-z]")
_WILDCARD_DNS1123_SUBDOMAIN = re.compile(
    r"\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)


def check_dns1123_label(value: str) -> str | None:
    if len(value) > DNS1123_LABEL_MAX:
        return f"must be no more than {DNS1123_LABEL_MAX} characters"
    if not _DNS1123_LABEL.fullmatch(value):
        return (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
            "or '-', and must start and end with an alphanumeric character"
        )
    return None


def check_dns1123_subdomain(value: str) -> str | None:
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        return f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    return None


def check_dns1035_label(value: str) -> str | None:
    if len(value) > DNS1123_LABEL_MAX:
        return f"must be no more than {DNS1123_LABEL_MAX} characters"
    if not _DNS1035_LABEL.fullmatch(value):
        return (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
            "start with an alphabetic character, and end with an alphanumeric character"
        )
    return None


def check_wildcard_or_subdomain(value: str) -> str | None:
    """Hostnames as Ingress and Gateway API take them: a subdomain or '*.' + subdomain."""
    if value.startswith("*."):
        if len(value) > DNS1123_SUBDOMAIN_MAX or not _WILDCARD_DNS1123_SUBDOMAIN.fullmatch(value):
            return (
                "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid "
                "DNS subdomain"
            )
        return None
    return check_dns1123_subdomain(value)


def check_qualified_name(value: str) -> str | None:
    """Label and annotation keys: optional DNS-subdomain prefix, '/', name of <= 63."""
    prefix, slash, name = value.rpartition("/")
    if slash:
        if not prefix:
            return "prefix part must be non-empty"
        problem = check_dns1123_subdomain(prefix)
        if problem:
            return f"prefix part {problem}"
    if not name:
        return "name part must be non-empty"
    if len(name) > LABEL_VALUE_MAX:
        return f"name part must be no more than {LABEL_VALUE_MAX} characters"
    if not _QUALIFIED_NAME_PART.fullmatch(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


def check_label_value(value: str) -> str | None:
    if len(value) > LABEL_VALUE_MAX:
        return f"must be no more than {LABEL_VALUE_MAX} characters"
    if value and not _QUALIFIED_NAME_PART.fullmatch(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )
    return None


def check_port_name(value: str) -> str | None:
    """IANA_SVC_NAME, as containerPort names and string targetPorts must be."""
    if len(value) > IANA_SVC_NAME_MAX:
        return f"must be no more than {IANA_SVC_NAME_MAX} characters"
    if not _IANA_SVC_NAME.fullmatch(value):
        return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
    if "--" in value:
        return "must not contain consecutive hyphens"
    if not _HAS_LETTER.search(value):
        return "must contain at least one letter (a-z)"
    if value.startswith("-") or value.endswith("-"):
        return "must not begin or end with a hyphen"
    return None


def check_port_number(value: int) -> str | None:
    if not 1 <= value <= 65535:
        return f"must be between 1 and 65535, inclusive (got {value})"
    return None


def check_ip(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"must be a valid IP address (got {value!r})"
    return None


def check_cidr(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            return f"must be a valid CIDR with no host bits set (got {value!r})"
        return f"must be a valid CIDR (got {value!r})"
    return None


def _validator(check: Callable[[Any], str | None]) -> Callable[[Any], Any]:
    def run(value: Any) -> Any:
        problem = check(value)
        if problem:
            raise ValueError(problem)
        return value

    return run


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, val in value.items():
        problem = check_qualified_name(key)
        if problem:
            raise ValueError(f"key {key!r}: {problem}")
        problem = check_label_value(val)
        if problem:
            raise ValueError(f"value {val!r} of {key!r}: {problem}")
    return value


DNSLabel = Annotated[str, AfterValidator(_validator(check_dns1123_label))]
DNSSubdomain = Annotated[str, AfterValidator(_validator(check_dns1123_subdomain))]
DNS1035Label = Annotated[str, AfterValidator(_validator(check_dns1035_label))]
Hostname = Annotated[str, AfterValidator(_validator(check_wildcard_or_subdomain))]
PortName = Annotated[str, AfterValidator(_validator(check_port_name))]
PortNumber = Annotated[StrictInt, AfterValidator(_validator(check_port_number))]
IPString = Annotated[str, AfterValidator(_validator(check_ip))]
CIDRString = Annotated[str, AfterValidator(_validator(check_cidr))]
QualifiedName = Annotated[str, AfterValidator(_validator(check_qualified_name))]
Labels = Annotated[dict[str, str], AfterValidator(_labels)]


def check_unique(values: list[Any], what: str) -> str | None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            return f"duplicate {what} {value!r}"
        seen.add(value)
    return None
