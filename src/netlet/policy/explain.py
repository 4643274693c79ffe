"""Verdicts and decisions as text and as plain data (for JSON).

Pure formatting of the values verdict.py returns; the CLI adds colour. A walk
reads like ``[Admin] deny-all-egress rule 2 Pass -> [NetworkPolicy]
shop/allow-web rule 0 Accept``.
"""

from __future__ import annotations

from typing import Any

from netlet.policy.program import Direction, PolicyRef
from netlet.policy.verdict import Decision, Endpoint, EndpointKind, Reason, Verdict


def _refs(refs: tuple[PolicyRef, ...]) -> str:
    return ", ".join(r.qualified for r in refs)


def describe_decision(decision: Decision, subject: Endpoint) -> str:
    """One line: the path through the tiers and the outcome."""
    steps = [str(step) for step in decision.path]
    if decision.reason == Reason.NOT_SUBJECT:
        what = {
            EndpointKind.NODE: "a node (host-network pods count as their node)",
            EndpointKind.EXTERNAL: "an address outside the cluster's pods and nodes",
            EndpointKind.POD: "not selected by any policy",
        }[subject.kind]
        return f"not subject to policy: {what} -> allowed"
    if decision.reason == Reason.SELF:
        return "a pod connecting to its own IP is not subject to policy -> allowed"
    if decision.reason == Reason.OWN_NODE:
        return "from the pod's own node: always allowed"
    if decision.reason == Reason.ISOLATED:
        return " -> ".join([*steps, "[NetworkPolicy] isolated, no rule matches -> denied"])
    if decision.reason == Reason.DEFAULT:
        return " -> ".join([*steps, "no tier decided -> allowed (default)"])
    return " -> ".join(steps)


def verdict_lines(verdict: Verdict) -> list[str]:
    """The human walk: header, then each direction with what was considered."""
    outcome = "ALLOWED" if verdict.allowed else "DENIED"
    via = " via a Service" if verdict.via_service else ""
    lines = [
        f"{verdict.src} ({verdict.src.ip}) -> {verdict.dst} ({verdict.dst.ip}) "
        f"{verdict.port}/{verdict.protocol.value}{via}: {outcome}"
    ]
    for decision, where in ((verdict.egress, verdict.src), (verdict.ingress, verdict.dst)):
        side = "egress at" if decision.direction == Direction.EGRESS else "ingress at"
        mark = "allowed" if decision.allowed else "DENIED"
        lines.append(f"  {side} {where}: {mark}")
        lines.append(f"    {describe_decision(decision, where)}")
        if decision.not_matched:
            lines.append(f"    considered, no rule matched: {_refs(decision.not_matched)}")
    if verdict.depends_on_dns:
        lines.append(
            "  depends on DNS answers for: "
            + ", ".join(verdict.depends_on_dns)
            + " (give them with --resolve NAME=IP or --dns-answers FILE)"
        )
    return lines


def _ref_data(ref: PolicyRef | None) -> dict[str, str] | None:
    if ref is None:
        return None
    data = {"kind": ref.kind, "name": ref.name}
    if ref.namespace:
        data["namespace"] = ref.namespace
    return data


def endpoint_data(endpoint: Endpoint) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": endpoint.kind.value, "ip": str(endpoint.ip)}
    if endpoint.pod is not None:
        data["pod"] = str(endpoint.pod)
    if endpoint.node is not None:
        data["node"] = endpoint.node
    return data


def decision_data(decision: Decision) -> dict[str, Any]:
    return {
        "direction": decision.direction.value,
        "allowed": decision.allowed,
        "reason": decision.reason.value,
        "tier": decision.tier.value if decision.tier else None,
        "policy": _ref_data(decision.policy),
        "rule": decision.rule,
        "ruleName": decision.rule_name or None,
        "action": decision.action.value if decision.action else None,
        "path": [
            {
                "tier": s.tier.value,
                "policy": _ref_data(s.policy),
                "rule": s.rule,
                "ruleName": s.rule_name or None,
                "action": s.action.value,
                "field": s.field,
            }
            for s in decision.path
        ],
        "notMatched": [_ref_data(r) for r in decision.not_matched],
        "dependsOnDNS": list(decision.dns),
    }


def verdict_data(verdict: Verdict) -> dict[str, Any]:
    return {
        "from": endpoint_data(verdict.src),
        "to": endpoint_data(verdict.dst),
        "protocol": verdict.protocol.value,
        "port": verdict.port,
        "viaService": verdict.via_service,
        "allowed": verdict.allowed,
        "egress": decision_data(verdict.egress),
        "ingress": decision_data(verdict.ingress),
        "dependsOnDNS": list(verdict.depends_on_dns),
    }


def decisive(verdict: Verdict) -> str:
    """The short reason of the verdict: the side that denied, else both deciders."""
    parts = []
    for decision, where in ((verdict.egress, verdict.src), (verdict.ingress, verdict.dst)):
        if verdict.allowed or not decision.allowed:
            if decision.reason in (Reason.NOT_SUBJECT, Reason.SELF) and verdict.allowed:
                continue
            side = "egress" if decision.direction == Direction.EGRESS else "ingress"
            parts.append(f"{side}: {describe_decision(decision, where)}")
    return "; ".join(parts) or "not subject to policy"
