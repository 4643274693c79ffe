"""Status conditions of the Gateway API, spelled exactly as upstream.

Condition types and reasons come from the v1.6 API types (apis/v1:
gatewayclass_types.go, gateway_types.go, listenerset_types.go, shared_types.go,
policy_types.go, backendtlspolicy_types.go). Each reason is a StrEnum member whose
comment says when netlet sets it. `Condition` is the value the brain computes;
`netlet.gateway.status` renders it in the Kubernetes form (metav1.Condition).

Invariant: reasons are only ever taken from these enums, so a misspelt reason
is a type error, not a silent status bug.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

Status = Literal["True", "False", "Unknown"]


class ConditionType(enum.StrEnum):
    ACCEPTED = "Accepted"
    PROGRAMMED = "Programmed"
    RESOLVED_REFS = "ResolvedRefs"
    CONFLICTED = "Conflicted"
    SUPPORTED_VERSION = "SupportedVersion"
    PARTIALLY_INVALID = "PartiallyInvalid"
    INSECURE_FRONTEND_VALIDATION_MODE = "InsecureFrontendValidationMode"
    OVERLAPPING_TLS_CONFIG = "OverlappingTLSConfig"


class GatewayClassReason(enum.StrEnum):
    # Accepted=True: the class names netlet's controller and has nothing netlet rejects.
    ACCEPTED = "Accepted"
    # Accepted=False: parametersRef is set; netlet supports no parameter kinds.
    INVALID_PARAMETERS = "InvalidParameters"
    # Accepted=Unknown: the CRD default before a controller reconciles.
    PENDING = "Pending"
    # SupportedVersion=True: netlet implements v1.6 of the API.
    SUPPORTED_VERSION = "SupportedVersion"


class GatewayReason(enum.StrEnum):
    # Accepted=True: every listener is valid.
    ACCEPTED = "Accepted"
    # Accepted True (some listeners valid) or False (none): a listener is not Accepted.
    LISTENERS_NOT_VALID = "ListenersNotValid"
    # Accepted/Programmed=False: the Gateway's class is not Accepted.
    INVALID = "Invalid"
    # Accepted=False: spec.infrastructure.parametersRef is set (no parameter kinds).
    INVALID_PARAMETERS = "InvalidParameters"
    # Accepted=False: an address type other than IPAddress is requested.
    UNSUPPORTED_ADDRESS = "UnsupportedAddress"
    # Accepted/Programmed=Unknown: the CRD default (class missing or not reconciled).
    PENDING = "Pending"
    # Programmed=True: at least one listener is programmed.
    PROGRAMMED = "Programmed"
    # Programmed=False: an IPAddress entry without a value (netlet does not pick one).
    ADDRESS_NOT_ASSIGNED = "AddressNotAssigned"
    # ResolvedRefs=True: spec.tls references resolve and every listener resolved its refs.
    RESOLVED_REFS = "ResolvedRefs"
    # ResolvedRefs=False: spec.tls.backend.clientCertificateRef crosses namespaces
    # without a ReferenceGrant.
    REF_NOT_PERMITTED = "RefNotPermitted"
    # ResolvedRefs=False: the client certificate is missing, not a Secret or malformed.
    INVALID_CLIENT_CERTIFICATE_REF = "InvalidClientCertificateRef"
    # ResolvedRefs=False: some listener has ResolvedRefs=False.
    LISTENERS_NOT_RESOLVED = "ListenersNotResolved"
    # InsecureFrontendValidationMode=True: a frontend validation uses AllowInsecureFallback.
    CONFIGURATION_CHANGED = "ConfigurationChanged"


class ListenerReason(enum.StrEnum):
    # Accepted=True.
    ACCEPTED = "Accepted"
    # Accepted=False: the listener loses a conflict (port already used incompatibly).
    PORT_UNAVAILABLE = "PortUnavailable"
    # Accepted=False: a protocol netlet does not serve (anything but HTTP, HTTPS,
    # TLS, TCP, UDP).
    UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
    # Accepted=False: every frontend CA certificate reference is invalid.
    NO_VALID_CA_CERTIFICATE = "NoValidCACertificate"
    # Accepted=False: a value netlet does not support (HTTPS without tls, TLS options
    # without certificates).
    UNSUPPORTED_VALUE = "UnsupportedValue"
    # Accepted=False (ListenerSet entries): entries with unresolved references.
    INVALID = "Invalid"
    # Programmed=True.
    PROGRAMMED = "Programmed"
    # Conflicted=True: same port, protocol group and hostname as another listener.
    HOSTNAME_CONFLICT = "HostnameConflict"
    # Conflicted=True: same port, incompatible protocols (HTTP vs HTTPS/TLS vs TCP).
    PROTOCOL_CONFLICT = "ProtocolConflict"
    # Conflicted=True (ListenerSet entries): upstream's spelling for "port and hostname
    # both collide"; netlet reports HostnameConflict instead, as GEP-1713's
    # conformance cases do, so this member documents the name only.
    LISTENER_CONFLICT = "ListenerConflict"
    # OverlappingTLSConfig=True: another TLS listener on the port has an overlapping
    # hostname (foo.example.com and *.example.com); set only when true.
    OVERLAPPING_HOSTNAMES = "OverlappingHostnames"
    # Conflicted=False.
    NO_CONFLICTS = "NoConflicts"
    # ResolvedRefs=True.
    RESOLVED_REFS = "ResolvedRefs"
    # ResolvedRefs=False: a certificateRef is missing, not a Secret, or not a valid
    # PEM certificate and key.
    INVALID_CERTIFICATE_REF = "InvalidCertificateRef"
    # ResolvedRefs=False: allowedRoutes.kinds names a kind the protocol cannot carry.
    INVALID_ROUTE_KINDS = "InvalidRouteKinds"
    # ResolvedRefs=False: a certificate or CA reference crosses namespaces without a
    # ReferenceGrant.
    REF_NOT_PERMITTED = "RefNotPermitted"
    # ResolvedRefs=False: a frontend CA reference is missing or has no ca.crt.
    INVALID_CA_CERTIFICATE_REF = "InvalidCACertificateRef"
    # ResolvedRefs=False: a frontend CA reference is neither a ConfigMap nor a Secret.
    INVALID_CA_CERTIFICATE_KIND = "InvalidCACertificateKind"


class ListenerSetReason(enum.StrEnum):
    # Accepted=True.
    ACCEPTED = "Accepted"
    # Accepted/Programmed=False: the parent Gateway's allowedListeners does not select it.
    NOT_ALLOWED = "NotAllowed"
    # Accepted/Programmed=False: the parent Gateway is not Accepted.
    PARENT_NOT_ACCEPTED = "ParentNotAccepted"
    # Accepted/Programmed=False: none of its listeners is Accepted.
    LISTENERS_NOT_VALID = "ListenersNotValid"
    # Programmed=True.
    PROGRAMMED = "Programmed"
    # Programmed=False: the parent Gateway is not Programmed.
    PARENT_NOT_PROGRAMMED = "ParentNotProgrammed"


class RouteReason(enum.StrEnum):
    # Accepted=True.
    ACCEPTED = "Accepted"
    # Accepted=False: no selected listener's allowedRoutes admits the route's
    # namespace and kind.
    NOT_ALLOWED_BY_LISTENERS = "NotAllowedByListeners"
    # Accepted=False: no allowed listener's hostname intersects the route's hostnames.
    NO_MATCHING_LISTENER_HOSTNAME = "NoMatchingListenerHostname"
    # Accepted=False: sectionName/port select no listener (or Service port).
    NO_MATCHING_PARENT = "NoMatchingParent"
    # Accepted=False: every rule uses something netlet does not support (ExtensionRef,
    # ExternalAuth, sessionPersistence), or a TLSRoute on a non-TLS listener;
    # PartiallyInvalid=True when only some rules do.
    UNSUPPORTED_VALUE = "UnsupportedValue"
    # Accepted=Unknown: not reconciled yet.
    PENDING = "Pending"
    # Accepted=False: a mesh Service port already carries routes of a more specific
    # kind (GEP-1294: GRPCRoute > HTTPRoute > TLSRoute > TCPRoute).
    CONFLICTED = "Conflicted"
    # ResolvedRefs=True.
    RESOLVED_REFS = "ResolvedRefs"
    # ResolvedRefs=False: a backendRef crosses namespaces without a ReferenceGrant.
    REF_NOT_PERMITTED = "RefNotPermitted"
    # ResolvedRefs=False: a backendRef names a kind other than a core Service.
    INVALID_KIND = "InvalidKind"
    # ResolvedRefs=False: the Service or its port does not exist.
    BACKEND_NOT_FOUND = "BackendNotFound"
    # ResolvedRefs=False: the Service port's appProtocol cannot carry the route's traffic.
    UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"


class PolicyReason(enum.StrEnum):
    # Accepted=True.
    ACCEPTED = "Accepted"
    # Accepted=False: an older policy (or the first by name) targets the same Service port.
    CONFLICTED = "Conflicted"
    # Accepted=False: upstream's reason for an unknown wellKnownCACertificates value;
    # the CRD enum (only "System") already rejects those at load time.
    INVALID = "Invalid"
    # Accepted=False: the target Service (or its sectionName port) does not exist.
    TARGET_NOT_FOUND = "TargetNotFound"
    # Accepted=False: every caCertificateRef is invalid.
    NO_VALID_CA_CERTIFICATE = "NoValidCACertificate"
    # ResolvedRefs=True.
    RESOLVED_REFS = "ResolvedRefs"
    # ResolvedRefs=False: a caCertificateRef is missing or has no ca.crt.
    INVALID_CA_CERTIFICATE_REF = "InvalidCACertificateRef"
    # ResolvedRefs=False: a caCertificateRef is neither a ConfigMap nor a Secret.
    INVALID_KIND = "InvalidKind"


Reason = (
    GatewayClassReason
    | GatewayReason
    | ListenerReason
    | ListenerSetReason
    | RouteReason
    | PolicyReason
)


@dataclass(frozen=True, slots=True)
class Condition:
    """One metav1.Condition; observedGeneration is the object's metadata.generation."""

    type: ConditionType
    status: Status
    reason: Reason
    message: str = ""
    observed_generation: int = 1

    @property
    def ok(self) -> bool:
        """True when the condition is in its healthy state (Conflicted and
        PartiallyInvalid are negative-polarity)."""
        negative = self.type in (
            ConditionType.CONFLICTED,
            ConditionType.PARTIALLY_INVALID,
            ConditionType.OVERLAPPING_TLS_CONFIG,
            ConditionType.INSECURE_FRONTEND_VALIDATION_MODE,
        )
        return self.status == ("False" if negative else "True")


def cond(
    type_: ConditionType,
    ok: bool | None,
    reason: Reason,
    message: str = "",
    generation: int = 1,
) -> Condition:
    """A condition with status True (ok), False (not ok) or Unknown (None)."""
    status: Status = "Unknown" if ok is None else ("True" if ok else "False")
    return Condition(type_, status, reason, message, generation)


def find(conditions: tuple[Condition, ...], type_: ConditionType) -> Condition | None:
    for condition in conditions:
        if condition.type == type_:
            return condition
    return None
