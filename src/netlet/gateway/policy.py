"""BackendTLSPolicy: which Service ports the Gateway reaches over TLS, and the
policy's status per ancestor Gateway (apis/v1 backendtlspolicy_types.go,
policy_types.go).

- targetRefs name core Services (Extended support); sectionName names a Service
  port by name. A target that does not exist makes the policy Accepted=False
  TargetNotFound.
- When several policies select the same target and sectionName, the oldest
  (then the first by name) wins; the others are Accepted=False Conflicted. A
  policy for a named port beats one for the whole Service on that port.
- caCertificateRefs are local ConfigMaps (Core) or Secrets (implementation-
  specific) with `ca.crt`; another kind is ResolvedRefs=False InvalidKind, a
  missing or malformed one InvalidCACertificateRef; with none valid the policy is
  Accepted=False NoValidCACertificate and connections using it must fail (5xx).
- Status is written per ancestor: every managed Gateway with an Accepted route
  that uses a targeted Service as a backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlet.cluster.state import ClusterState
from netlet.gateway.certs import ca_bundle
from netlet.gateway.conditions import Condition, ConditionType, PolicyReason, cond
from netlet.gateway.listeners import creation_order
from netlet.gateway.table import BackendTLS
from netlet.resources.core import ConfigMap, Secret, Service
from netlet.resources.gateway_api import BackendTLSPolicy

TargetKey = tuple[str, str, str | None]  # (namespace, service, port name or None)


@dataclass
class PolicyVerdict:
    policy: BackendTLSPolicy
    conditions: tuple[Condition, ...]
    targets: tuple[TargetKey, ...]  # targets it won
    tls: BackendTLS | None


@dataclass
class PolicyIndex:
    verdicts: list[PolicyVerdict] = field(default_factory=list)
    by_target: dict[TargetKey, BackendTLS] = field(default_factory=dict)

    def lookup(self, namespace: str, service: str, port_name: str | None) -> BackendTLS | None:
        if port_name:
            found = self.by_target.get((namespace, service, port_name))
            if found is not None:
                return found
        return self.by_target.get((namespace, service, None))


def _validate(
    policy: BackendTLSPolicy, state: ClusterState
) -> tuple[BackendTLS, list[tuple[PolicyReason, str]]]:
    validation = policy.spec.validation
    problems: list[tuple[PolicyReason, str]] = []
    bundles: list[bytes] = []
    for i, ref in enumerate(validation.ca_certificate_refs):
        where = f"caCertificateRefs[{i}] {ref.kind} {policy.namespace}/{ref.name}"
        if ref.group != "" or ref.kind not in ("ConfigMap", "Secret"):
            problems.append((PolicyReason.INVALID_KIND, f"{where}: unsupported kind"))
            continue
        kind: type[ConfigMap] | type[Secret] = ConfigMap if ref.kind == "ConfigMap" else Secret
        obj = state.get(kind, policy.namespace, ref.name)
        if obj is None:
            problems.append((PolicyReason.INVALID_CA_CERTIFICATE_REF, f"{where}: not found"))
            continue
        data, problem = ca_bundle(obj)
        if data is None:
            problems.append((PolicyReason.INVALID_CA_CERTIFICATE_REF, f"{where}: {problem}"))
            continue
        bundles.append(data)
    well_known = validation.well_known_ca_certificates or None
    valid = bool(bundles) or well_known == "System"
    tls = BackendTLS(
        policy=f"{policy.namespace}/{policy.name}",
        hostname=validation.hostname,
        ca_bundle=b"\n".join(bundles),
        well_known=well_known,
        subject_alt_names=tuple(
            (san.type, san.hostname if san.type == "Hostname" else san.uri)
            for san in validation.subject_alt_names
        ),
        valid=valid,
    )
    return tls, problems


def build_policy_index(state: ClusterState) -> PolicyIndex:
    index = PolicyIndex()
    policies = sorted(
        state.list(BackendTLSPolicy),
        key=lambda p: (creation_order(p.metadata.creation_timestamp), p.name, p.namespace),
    )
    claimed: dict[TargetKey, str] = {}
    for policy in policies:
        gen = policy.metadata.generation or 1
        tls, problems = _validate(policy, state)
        missing: list[str] = []
        conflicted: list[str] = []
        won: list[TargetKey] = []
        for target in policy.spec.target_refs:
            where = f"{target.kind} {policy.namespace}/{target.name}"
            if (target.group, target.kind) != ("", "Service"):
                missing.append(f"{where}: only core Services are supported")
                continue
            service = state.get(Service, policy.namespace, target.name)
            if service is None:
                missing.append(f"{where} not found")
                continue
            if target.section_name and not any(
                p.name == target.section_name for p in service.spec.ports
            ):
                missing.append(f"{where} has no port named {target.section_name}")
                continue
            key: TargetKey = (policy.namespace, target.name, target.section_name)
            if key in claimed:
                conflicted.append(f"{where}: {claimed[key]} takes precedence")
                continue
            claimed[key] = f"BackendTLSPolicy {policy.namespace}/{policy.name}"
            won.append(key)
        conditions: list[Condition] = []
        if not tls.valid:
            reason, message = PolicyReason.NO_VALID_CA_CERTIFICATE, "no valid CA certificate"
            conditions.append(cond(ConditionType.ACCEPTED, False, reason, message, gen))
        elif not won and missing:
            conditions.append(
                cond(
                    ConditionType.ACCEPTED,
                    False,
                    PolicyReason.TARGET_NOT_FOUND,
                    "; ".join(missing),
                    gen,
                )
            )
        elif not won and conflicted:
            conditions.append(
                cond(
                    ConditionType.ACCEPTED,
                    False,
                    PolicyReason.CONFLICTED,
                    "; ".join(conflicted),
                    gen,
                )
            )
        else:
            conditions.append(
                cond(ConditionType.ACCEPTED, True, PolicyReason.ACCEPTED, "Policy is accepted", gen)
            )
        if problems:
            conditions.append(
                cond(
                    ConditionType.RESOLVED_REFS,
                    False,
                    problems[0][0],
                    "; ".join(m for _, m in problems),
                    gen,
                )
            )
        else:
            conditions.append(
                cond(
                    ConditionType.RESOLVED_REFS,
                    True,
                    PolicyReason.RESOLVED_REFS,
                    "All references resolved",
                    gen,
                )
            )
        for key in won:
            index.by_target[key] = tls
        index.verdicts.append(PolicyVerdict(policy, tuple(conditions), tuple(won), tls))
    return index
