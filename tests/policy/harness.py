"""Scenario tables for the policy engine: a fixed world (world.yaml) plus each
scenario's policies, and checks of verdicts and explanations.

A scenario file (scenarios/*.yaml) is a list of::

    - id: a sentence that says what the scenario shows
      doc: the upstream doc section it comes from (URL + heading)
      resolve: {api.example.com: [203.0.113.5]}     # optional DNS answers
      manifests: |                                  # added to world.yaml
        apiVersion: networking.k8s.io/v1
        ...
      checks:
      - {from: prod/web, to: prod/api, port: 8080, allowed: true,
         egress: default, ingress: "[NetworkPolicy] prod/allow rule 0 Accept"}

Decisions are written as ``[Tier] policy rule N Action`` for the deciding rule
(rule names left out), or as the reason: ``default``, ``isolated``,
``not-subject``, ``self``, ``own-node``. Optional per check: ``via_service``,
``egress_path`` / ``ingress_path`` (every matching rule in order, Pass steps
first), ``egress_not_matched`` / ``ingress_not_matched`` (qualified refs such
as ``netpol/prod/x`` or ``cnp/name``), ``dns`` (patterns the verdict depends on).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from netlet.cluster.build import load_text
from netlet.policy.compile import compile_program
from netlet.policy.dns import make_answers
from netlet.policy.program import DnsAnswers
from netlet.policy.verdict import Decision, PolicyEngine, Reason, Step, Verdict

HERE = Path(__file__).parent
WORLD = (HERE / "world.yaml").read_text()
SCENARIOS = HERE / "scenarios"


@dataclass(frozen=True)
class Check:
    src: str
    dst: str
    port: int
    protocol: str
    allowed: bool
    egress: str | None = None
    ingress: str | None = None
    via_service: bool = False
    egress_path: tuple[str, ...] | None = None
    ingress_path: tuple[str, ...] | None = None
    egress_not_matched: tuple[str, ...] | None = None
    ingress_not_matched: tuple[str, ...] | None = None
    dns: tuple[str, ...] | None = None

    def __str__(self) -> str:
        via = " via a Service" if self.via_service else ""
        return f"{self.src} -> {self.dst} {self.port}/{self.protocol}{via}"


@dataclass(frozen=True)
class Scenario:
    file: str
    id: str
    doc: str
    manifests: str
    checks: tuple[Check, ...]
    resolve: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    @property
    def test_id(self) -> str:
        return f"{self.file}: {self.id}"


def _tuple(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(v) for v in value)


def _check(raw: dict[str, Any]) -> Check:
    port_text = str(raw["port"])
    number, _, proto = port_text.partition("/")
    return Check(
        src=str(raw["from"]),
        dst=str(raw["to"]),
        port=int(number),
        protocol=(proto or "TCP").upper(),
        allowed=bool(raw["allowed"]),
        egress=raw.get("egress"),
        ingress=raw.get("ingress"),
        via_service=bool(raw.get("via_service", False)),
        egress_path=_tuple(raw.get("egress_path")),
        ingress_path=_tuple(raw.get("ingress_path")),
        egress_not_matched=_tuple(raw.get("egress_not_matched")),
        ingress_not_matched=_tuple(raw.get("ingress_not_matched")),
        dns=_tuple(raw.get("dns")),
    )


def load_scenarios() -> list[Scenario]:
    out = []
    for path in sorted(SCENARIOS.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text()):
            resolve = raw.get("resolve") or {}
            out.append(
                Scenario(
                    file=path.stem,
                    id=raw["id"],
                    doc=raw["doc"],
                    manifests=raw.get("manifests") or "",
                    checks=tuple(_check(c) for c in raw["checks"]),
                    resolve=tuple((k, tuple(v)) for k, v in sorted(resolve.items())),
                )
            )
    return out


def world(manifests: str) -> str:
    return WORLD + ("\n---\n" + manifests if manifests.strip() else "")


@cache
def engine_for(
    manifests: str, resolve: tuple[tuple[str, tuple[str, ...]], ...] = ()
) -> PolicyEngine:
    result = load_text(world(manifests), name="scenario.yaml")
    assert result.ok, [str(d) for d in result.errors]
    dns = make_answers(dict(resolve)) if resolve else DnsAnswers()
    return PolicyEngine(compile_program(result.state, dns))


def run(engine: PolicyEngine, check: Check) -> Verdict:
    family = None
    for text in (check.src, check.dst):
        try:
            family = ipaddress.ip_address(text).version
        except ValueError:
            continue
    src = engine.parse_endpoint(check.src, family)
    dst = engine.parse_endpoint(check.dst, family or src.ip.version)
    return engine.verdict(src, dst, check.protocol, check.port, via_service=check.via_service)


def step_text(step: Step) -> str:
    return f"[{step.tier}] {step.policy} rule {step.rule} {step.action}"


def decision_text(decision: Decision) -> str:
    if decision.reason == Reason.RULE:
        return f"[{decision.tier}] {decision.policy} rule {decision.rule} {decision.action}"
    return decision.reason.value


def assert_check(verdict: Verdict, check: Check) -> None:
    where = f"{check}: {verdict}"
    assert verdict.allowed == check.allowed, f"allowed != {check.allowed}: {where}"
    for side, decision in (("egress", verdict.egress), ("ingress", verdict.ingress)):
        want = getattr(check, side)
        if want is not None:
            assert decision_text(decision) == want, f"{side}: {where}"
        path = getattr(check, f"{side}_path")
        if path is not None:
            assert tuple(step_text(s) for s in decision.path) == path, f"{side} path: {where}"
        not_matched = getattr(check, f"{side}_not_matched")
        if not_matched is not None:
            got = tuple(r.qualified for r in decision.not_matched)
            assert got == not_matched, f"{side} not matched: {where}"
    if check.dns is not None:
        assert verdict.depends_on_dns == check.dns, f"dns: {where}"
