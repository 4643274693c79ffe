"""TLS for the proxy: server contexts that pick a certificate by SNI, a
ClientHello reader that finds the SNI without decrypting anything (passthrough),
and the client side towards backends with a BackendTLSPolicy (`OriginTLS`).

Certificate choice follows the listener hostnames the certificates belong to:
an exact name wins over a wildcard (`*.example.com` matches one more label), and
a client without SNI, or with a name no certificate covers, gets the first
listener's certificate. The chosen name is remembered on the SSL object so the
HTTP layer can compare it with the Host header (421 on a mismatch).

`OriginTLS` follows BackendTLSPolicy's `validation` (apis/v1
backendtlspolicy_types.go): the backend's chain must verify against the
caCertificateRefs bundle (or the system store with wellKnownCACertificates
System); `hostname` is the SNI and the name the certificate must match, unless
`subjectAltNames` are given: then one of the certificate's SANs must match one
of them (Hostname: a DNS SAN, wildcards as in RFC 6125; URI: exact) and the
hostname is not used for authentication. The Gateway's client certificate
(spec.tls.backend.clientCertificateRef) is presented when there is one.

`parse_client_hello` is a pure function over the first bytes of a connection
(RFC 8446 4.1.2 and RFC 6066 3): it never reads past what it was given and
says when it needs more.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

ALPN_HTTP = ("h2", "http/1.1")

# A ClientHello larger than this is not worth waiting for (post-quantum key shares
# make them a few KiB; 64 KiB is the TLS handshake message limit we accept).
MAX_CLIENT_HELLO = 64 * 1024


@dataclass(frozen=True, slots=True)
class Certificate:
    """One certificate chain with its key (PEM), and the names it is served for."""

    cert_pem: bytes
    key_pem: bytes
    hostnames: tuple[str, ...] = ()


def _context(cert: Certificate, alpn: Sequence[str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, cert)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert: Certificate) -> None:
    # load_cert_chain only reads files: write the PEMs to a private directory briefly.
    with tempfile.TemporaryDirectory(prefix="netlet-tls-") as tmp:
        os.chmod(tmp, 0o700)
        cert_path = os.path.join(tmp, "tls.crt")
        key_path = os.path.join(tmp, "tls.key")
        with open(cert_path, "wb") as fh:
            fh.write(cert.cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert.key_pem)
        ctx.load_cert_chain(cert_path, key_path)


def hostname_matches(pattern: str, name: str) -> bool:
    pattern = pattern.lower()
    name = name.lower().rstrip(".")
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return name.endswith(suffix) and len(name) > len(suffix)
    return pattern == name


def server_context(certs: Sequence[Certificate], alpn: Sequence[str] = ALPN_HTTP) -> ssl.SSLContext:
    """A context serving `certs[0]` by default and the others by SNI."""
    if not certs:
        raise ValueError("no certificate")
    contexts = [(cert, _context(cert, alpn)) for cert in certs]
    default = contexts[0][1]
    exact: dict[str, ssl.SSLContext] = {}
    wildcard: list[tuple[str, ssl.SSLContext]] = []
    for cert, ctx in contexts:
        for host in cert.hostnames:
            if host.startswith("*."):
                wildcard.append((host, ctx))
            else:
                exact.setdefault(host.lower(), ctx)
    # Longer wildcard suffixes are more specific.
    wildcard.sort(key=lambda item: -len(item[0]))

    def choose(sslobj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext) -> None:
        if name is None:
            return
        with contextlib.suppress(AttributeError):
            sslobj.netlet_sni = name  # type: ignore[union-attr]
        ctx = exact.get(name.lower())
        if ctx is None:
            for pattern, candidate in wildcard:
                if hostname_matches(pattern, name):
                    ctx = candidate
                    break
        if ctx is not None and ctx is not default:
            sslobj.context = ctx

    default.sni_callback = choose
    return default


class OriginTLS:
    """TLS from the proxy to a backend, as one BackendTLSPolicy asks (see the module
    doc). Compared by identity: connections are pooled per OriginTLS."""

    __slots__ = ("_ca_pem", "_client", "_contexts", "_system", "policy", "sans", "server_hostname")

    def __init__(
        self,
        policy: str,
        hostname: str,
        ca_pem: bytes = b"",
        system: bool = False,
        subject_alt_names: Sequence[tuple[str, str]] = (),
        client_certificate: Certificate | None = None,
    ) -> None:
        self.policy = policy
        self.server_hostname = hostname
        self.sans = tuple(subject_alt_names)
        self._ca_pem = ca_pem
        self._system = system
        self._client = client_certificate
        self._contexts: dict[str, ssl.SSLContext] = {}

    def context(self, alpn: str) -> ssl.SSLContext:
        """The client context for one ALPN protocol ("http/1.1" or "h2"), made once."""
        ctx = self._contexts.get(alpn)
        if ctx is None:
            ctx = self._contexts[alpn] = self._make(alpn)
        return ctx

    def _make(self, alpn: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, hostname checked
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self._system:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if self._ca_pem:
            ctx.load_verify_locations(cadata=self._ca_pem.decode("ascii", "replace"))
        if self.sans:
            # subjectAltNames given: the hostname MUST NOT be used for authentication;
            # the chain is still verified, the names by `check` after the handshake.
            ctx.check_hostname = False
        if self._client is not None:
            _load_chain(ctx, self._client)
        ctx.set_alpn_protocols([alpn])
        return ctx

    def check(self, peercert: object) -> str | None:
        """None when the verified certificate carries one of the wanted SANs (or when
        none are wanted: OpenSSL checked the hostname); else why not."""
        if not self.sans:
            return None
        names: list[tuple[str, str]] = []
        if isinstance(peercert, dict):
            names = [(str(k), str(v)) for k, v in peercert.get("subjectAltName", ())]
        for kind, wanted in self.sans:
            for typ, value in names:
                if kind == "Hostname" and typ == "DNS":
                    if value.lower() == wanted.lower() or hostname_matches(value, wanted):
                        return None
                elif kind == "URI" and typ == "URI" and value == wanted:
                    return None
        shown = ", ".join(f"{t}:{v}" for t, v in names) or "none"
        wanted_text = ", ".join(f"{k} {v}" for k, v in self.sans)
        return (
            f"certificate subjectAltNames ({shown}) match none of BackendTLSPolicy "
            f"{self.policy} subjectAltNames ({wanted_text})"
        )

    def __repr__(self) -> str:
        return f"OriginTLS({self.policy!r}, sni={self.server_hostname!r})"


def server_name(ssl_object: object) -> str | None:
    """The SNI a client sent, as recorded by `server_context`'s callback."""
    name = getattr(ssl_object, "netlet_sni", None)
    return name if isinstance(name, str) else None


class NeedMore(Exception):
    """The bytes so far are a valid start of a ClientHello; read more."""


class NotTLS(Exception):
    """The bytes are not a TLS ClientHello."""


def parse_client_hello(data: bytes) -> str | None:
    """The SNI host name in a ClientHello, or None when it has no SNI.

    Raises NeedMore when `data` is a truncated ClientHello and NotTLS when it is
    not one at all (or is larger than MAX_CLIENT_HELLO)."""
    handshake = bytearray()
    offset = 0
    needed: int | None = None
    while needed is None or len(handshake) < needed:
        if len(data) < offset + 5:
            raise NeedMore
        content_type = data[offset]
        if content_type != 22:  # handshake
            raise NotTLS("not a TLS handshake record")
        if data[offset + 1] != 3:
            raise NotTLS("not a TLS record version")
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        if length == 0 or length > 16384 + 2048:
            raise NotTLS("bad TLS record length")
        if len(data) < offset + 5 + length:
            raise NeedMore
        handshake += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if needed is None and len(handshake) >= 4:
            if handshake[0] != 1:  # client_hello
                raise NotTLS("first handshake message is not a ClientHello")
            needed = 4 + int.from_bytes(handshake[1:4], "big")
            if needed > MAX_CLIENT_HELLO:
                raise NotTLS("ClientHello too large")
    return _sni(bytes(handshake[4:needed]))


def _sni(body: bytes) -> str | None:
    try:
        pos = 2 + 32  # legacy_version, random
        pos += 1 + body[pos]  # legacy_session_id
        pos += 2 + int.from_bytes(body[pos : pos + 2], "big")  # cipher_suites
        pos += 1 + body[pos]  # legacy_compression_methods
        if pos >= len(body):
            return None  # no extensions
        end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= end:
            ext_type = int.from_bytes(body[pos : pos + 2], "big")
            ext_len = int.from_bytes(body[pos + 2 : pos + 4], "big")
            pos += 4
            if ext_type == 0:  # server_name
                names = body[pos : pos + ext_len]
                npos = 2
                while npos + 3 <= len(names):
                    name_type = names[npos]
                    name_len = int.from_bytes(names[npos + 1 : npos + 3], "big")
                    name = names[npos + 3 : npos + 3 + name_len]
                    if name_type == 0:
                        return name.decode("ascii").lower()
                    npos += 3 + name_len
                return None
            pos += ext_len
    except (IndexError, UnicodeDecodeError):
        raise NotTLS("malformed ClientHello") from None
    return None
