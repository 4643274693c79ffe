"""Certificate material referenced by Gateway API objects, checked structurally.

A listener certificateRef must name a Secret holding `tls.crt` (PEM certificate
chain) and `tls.key` (PEM private key); a CA reference (frontend validation,
BackendTLSPolicy) must name a ConfigMap (Core) or Secret (implementation-specific)
with `ca.crt`. "Malformed" (GatewayInvalidTLSConfiguration conformance) is
judged without a crypto library: every PEM block must have its BEGIN/END lines,
a base64 body, and DER that starts as an ASN.1 SEQUENCE. Whether a key belongs to
its certificate is left to the TLS stack of the data plane.
"""

from __future__ import annotations

import base64
import binascii
import re

from netlet.resources.core import ConfigMap, Secret

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)
_KEY_LABELS = (b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY")


def pem_blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(label, DER) of every well-formed PEM block; raises ValueError on a bad body."""
    out = []
    for match in _PEM_BLOCK.finditer(data):
        body = b"".join(match.group(2).split())
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"PEM block {match.group(1).decode()} is not valid base64") from None
        if not der or der[0] != 0x30:
            raise ValueError(f"PEM block {match.group(1).decode()} is not DER (ASN.1 SEQUENCE)")
        out.append((match.group(1), der))
    return out


def check_certificate_pem(data: bytes) -> str | None:
    try:
        blocks = pem_blocks(data)
    except ValueError as exc:
        return str(exc)
    if not any(label == b"CERTIFICATE" for label, _ in blocks):
        return "no PEM CERTIFICATE block"
    return None


def check_key_pem(data: bytes) -> str | None:
    try:
        blocks = pem_blocks(data)
    except ValueError as exc:
        return str(exc)
    if not any(label in _KEY_LABELS for label, _ in blocks):
        return "no PEM PRIVATE KEY block"
    return None


def tls_secret_problem(secret: Secret) -> str | None:
    """Why a Secret cannot serve as a listener certificate, or None."""
    cert = secret.value("tls.crt")
    key = secret.value("tls.key")
    if cert is None or key is None:
        return f"Secret {secret.namespace}/{secret.name} has no tls.crt and tls.key"
    problem = check_certificate_pem(cert)
    if problem:
        return f"Secret {secret.namespace}/{secret.name} tls.crt: {problem}"
    problem = check_key_pem(key)
    if problem:
        return f"Secret {secret.namespace}/{secret.name} tls.key: {problem}"
    return None


def ca_bundle(obj: ConfigMap | Secret) -> tuple[bytes | None, str | None]:
    """(PEM bundle, None) or (None, why) for a CA reference's `ca.crt`."""
    if isinstance(obj, ConfigMap):
        text = obj.data.get("ca.crt")
        if text is None and "ca.crt" in obj.binary_data:
            try:
                data: bytes | None = base64.b64decode(obj.binary_data["ca.crt"])
            except (binascii.Error, ValueError):
                data = None
        else:
            data = text.encode() if text is not None else None
    else:
        data = obj.value("ca.crt")
    where = f"{obj.KIND} {obj.namespace}/{obj.name}"
    if data is None:
        return None, f"{where} has no ca.crt"
    problem = check_certificate_pem(data)
    if problem:
        return None, f"{where} ca.crt: {problem}"
    return data, None
