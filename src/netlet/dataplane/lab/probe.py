"""Real reachability: connect from every source to every target, record what happened.

The observed matrix is data meant to be compared with the analyzers' verdicts:
each `ProbeResult` names the source (a pod `ns/name`, or `external`), the
`Target` (kind, object, address, port, protocol) and an `Outcome`:

| outcome     | what the client saw                                        | verdict  |
| ----------- | ---------------------------------------------------------- | -------- |
| connected   | TCP/SCTP handshake completed, or a UDP answer came back     | allow    |
| refused     | RST or ICMP unreachable (ECONNREFUSED, EHOSTUNREACH,        | reject   |
|             | ENETUNREACH, EHOSTDOWN): something actively said no         |          |
| timeout     | nothing within the timeout, or EPERM (a local filter        | drop     |
|             | dropped the packet before it left)                          |          |
| error       | the probe itself could not run (e.g. no SCTP in the kernel) | error    |

`reply` is who answered (the workload's pod name; for HTTP the echo's `pod`)
and `echo` the HTTP JSON echo (method, path, headers, the client address the
server saw...), so tests can check which backend served and whether the
source address was translated.

Sockets are created inside the source's namespace by entering it on this
thread just for the socket(2) call; the exchange then runs on one asyncio loop
with bounded parallelism and per-phase timeouts.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import h11

from netlet.dataplane.lab import names, syscalls
from netlet.dataplane.lab.plan import LabPlan

DEFAULT_TIMEOUT = names.DEFAULT_PROBE_TIMEOUT
DEFAULT_PARALLELISM = names.DEFAULT_PROBE_PARALLELISM
READ_LIMIT = 64 * 1024
PROBE_PATH = "/netlet-probe"


class Outcome(enum.StrEnum):
    CONNECTED = "connected"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    ERROR = "error"


VERDICTS = {
    Outcome.CONNECTED: "allow",
    Outcome.REFUSED: "reject",
    Outcome.TIMEOUT: "drop",
    Outcome.ERROR: "error",
}
REJECT_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}
)
DROP_ERRNOS = frozenset({errno.EPERM, errno.EACCES})


class TargetKind(enum.StrEnum):
    POD = "pod"
    CLUSTER_IP = "clusterIP"
    NODE_PORT = "nodePort"
    LOAD_BALANCER = "loadBalancer"
    EXTERNAL_IP = "externalIP"


SERVICE_KINDS = frozenset(
    {TargetKind.CLUSTER_IP, TargetKind.NODE_PORT, TargetKind.LOAD_BALANCER, TargetKind.EXTERNAL_IP}
)


@dataclass(frozen=True, slots=True, order=True)
class Target:
    kind: str  # a TargetKind value
    name: str  # "ns/pod" or "ns/service"
    address: str
    port: int
    protocol: str
    port_name: str | None = None
    http: bool = False
    node: str | None = None  # nodePort targets: whose node IP
    service_port: int | None = None  # service targets: the Service's port

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}/{self.protocol}"

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name} {self.endpoint}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "protocol": self.protocol,
            "portName": self.port_name,
            "http": self.http,
            "node": self.node,
            "servicePort": self.service_port,
        }


@dataclass(frozen=True, slots=True)
class Source:
    name: str  # "ns/pod" or "external"
    kind: str  # "pod", "hostNetwork" or "external"
    netns: str
    addresses: tuple[str, ...]
    node: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "netns": self.netns,
            "addresses": list(self.addresses),
            "node": self.node,
        }


EXTERNAL = "external"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    source: str
    target: Target
    outcome: Outcome
    reason: str = ""
    reply: str | None = None
    status: int | None = None  # HTTP status when the answer was HTTP
    echo: dict[str, Any] | None = field(default=None, compare=False)
    elapsed_ms: float = field(default=0.0, compare=False)

    @property
    def verdict(self) -> str:
        return VERDICTS[self.outcome]

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target.as_dict(),
            "outcome": self.outcome.value,
            "verdict": self.verdict,
            "reason": self.reason,
            "reply": self.reply,
            "status": self.status,
            "echo": self.echo,
            "elapsedMs": round(self.elapsed_ms, 2),
        }


@dataclass(frozen=True, slots=True)
class ProbeMatrix:
    sources: tuple[Source, ...]
    targets: tuple[Target, ...]
    results: tuple[ProbeResult, ...]
    timeout: float
    elapsed: float
    notes: tuple[str, ...] = ()

    def get(self, source: str, target: Target) -> ProbeResult:
        for result in self.results:
            if result.source == source and result.target == target:
                return result
        raise KeyError((source, target))

    def outcomes(self) -> dict[tuple[str, Target], Outcome]:
        return {(r.source, r.target): r.outcome for r in self.results}

    def verdicts(self) -> dict[tuple[str, Target], str]:
        return {(r.source, r.target): r.verdict for r in self.results}

    def connected(self) -> frozenset[tuple[str, Target]]:
        return frozenset(
            (r.source, r.target) for r in self.results if r.outcome == Outcome.CONNECTED
        )

    def summary(self) -> dict[str, int]:
        counts = Counter(r.outcome.value for r in self.results)
        return {o.value: counts.get(o.value, 0) for o in Outcome}

    def as_dict(self) -> dict[str, Any]:
        return {
            "timeoutSeconds": self.timeout,
            "elapsedSeconds": round(self.elapsed, 3),
            "summary": self.summary(),
            "notes": list(self.notes),
            "sources": [s.as_dict() for s in self.sources],
            "targets": [t.as_dict() for t in self.targets],
            "results": [r.as_dict() for r in self.results],
        }


# Choosing sources and targets ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortFilter:
    """`--ports 80,53/udp,http`: a number or name, optionally with a protocol."""

    items: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, text: str | Sequence[str] | None) -> PortFilter | None:
        if not text:
            return None
        parts = (
            text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
        )
        items = []
        for part in parts:
            part = part.strip()
            if not part:
                continue
            port, _, proto = part.partition("/")
            items.append((port, proto.upper() or None))
        return cls(tuple(items))

    def matches(self, target: Target) -> bool:
        for port, proto in self.items:
            if proto and proto != target.protocol:
                continue
            if port in (str(target.port), target.port_name, str(target.service_port)):
                return True
        return False


def pod_targets(plan: LabPlan) -> list[Target]:
    out = []
    for pod in plan.pods:
        for ip in pod.ips:
            for port in pod.ports:
                out.append(
                    Target(
                        TargetKind.POD.value,
                        pod.key,
                        ip,
                        port.port,
                        port.protocol,
                        port.name,
                        port.http,
                    )
                )
    return out


def service_targets(plan: LabPlan) -> list[Target]:
    out = []
    for svc in plan.services:
        for port in svc.ports:
            virtual = [(TargetKind.CLUSTER_IP, ip) for ip in svc.cluster_ips]
            virtual += [(TargetKind.LOAD_BALANCER, ip) for ip in svc.load_balancer_ips]
            virtual += [(TargetKind.EXTERNAL_IP, ip) for ip in svc.external_ips]
            for kind, ip in virtual:
                out.append(
                    Target(
                        kind.value,
                        svc.key,
                        ip,
                        port.port,
                        port.protocol,
                        port_name=port.name,
                        http=port.http,
                        service_port=port.port,
                    )
                )
            if port.node_port and svc.type in ("NodePort", "LoadBalancer"):
                for node in plan.nodes:
                    for ip in node.ips:
                        out.append(
                            Target(
                                TargetKind.NODE_PORT.value,
                                svc.key,
                                ip,
                                port.node_port,
                                port.protocol,
                                port_name=port.name,
                                http=port.http,
                                node=node.name,
                                service_port=port.port,
                            )
                        )
    return out


def select_targets(plan: LabPlan, to: str = "all", ports: PortFilter | None = None) -> list[Target]:
    if to not in ("all", "pods", "services"):
        raise ValueError(f"--to must be pods, services or all (got {to!r})")
    targets: list[Target] = []
    if to in ("all", "pods"):
        targets.extend(pod_targets(plan))
    if to in ("all", "services"):
        targets.extend(service_targets(plan))
    if ports is not None:
        targets = [t for t in targets if ports.matches(t)]
    return targets


def select_sources(plan: LabPlan, names_wanted: Iterable[str] | None = None) -> list[Source]:
    out = [
        Source(
            pod.key,
            "hostNetwork" if pod.host_network else "pod",
            pod.netns,
            pod.ips,
            pod.node,
        )
        for pod in plan.pods
    ]
    out.append(Source(EXTERNAL, "external", plan.external.netns, plan.external.ips))
    if names_wanted is not None:
        wanted = set(names_wanted)
        out = [s for s in out if s.name in wanted]
    return out


def sctp_supported() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError:
        return False
    return True


# Probing --------------------------------------------------------------------------------


class _SocketMaker:
    """socket(2) inside a source's namespace: enter, create, come back."""

    def __init__(self, netns_names: Iterable[str]) -> None:
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.fds: dict[str, int] = {}
        try:
            for name in set(netns_names):
                self.fds[name] = os.open(names.netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            self.close()
            raise

    def make(self, netns: str, family: int, kind: int, proto: int) -> socket.socket:
        syscalls.setns(self.fds[netns])
        try:
            sock = socket.socket(family, kind, proto)
        finally:
            syscalls.setns(self.home)
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
        os.close(self.home)


def _http_request(target: Target, source: str) -> bytes:
    conn = h11.Connection(h11.CLIENT)
    host = f"[{target.address}]" if ":" in target.address else target.address
    data = conn.send(
        h11.Request(
            method="GET",
            target=f"{PROBE_PATH}?from={source}",
            headers=[
                ("Host", f"{host}:{target.port}"),
                ("User-Agent", "netlet-probe"),
                ("Connection", "close"),
            ],
        )
    )
    return (data or b"") + (conn.send(h11.EndOfMessage()) or b"")


def parse_reply(data: bytes) -> tuple[str | None, int | None, dict[str, Any] | None]:
    """(who answered, HTTP status, JSON echo) from what a workload sent."""
    if not data:
        return None, None, None
    if not data.startswith(b"HTTP/"):
        return data.decode(errors="replace").split("\n", 1)[0].strip() or None, None, None
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    status: int | None = None
    body = b""
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif event is h11.NEED_DATA or isinstance(
                event, h11.EndOfMessage | h11.ConnectionClosed
            ):
                break
    except h11.RemoteProtocolError:
        return None, status, None
    try:
        echo = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip() or None, status, None
    if isinstance(echo, dict):
        return str(echo.get("pod")) if echo.get("pod") else None, status, echo
    return None, status, None


def _classify(exc: OSError) -> tuple[Outcome, str]:
    name = errno.errorcode.get(exc.errno or 0, str(exc))
    if exc.errno in REJECT_ERRNOS:
        return Outcome.REFUSED, name
    if exc.errno in DROP_ERRNOS:
        return Outcome.TIMEOUT, name
    return Outcome.ERROR, name


async def _stream_probe(
    sock: socket.socket, source: Source, target: Target, timeout: float
) -> tuple[Outcome, str, bytes]:
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (target.address, target.port)), timeout)
    except TimeoutError:
        return Outcome.TIMEOUT, "timeout", b""
    except OSError as exc:
        outcome, reason = _classify(exc)
        return outcome, reason, b""
    data = b""
    try:
        await asyncio.wait_for(loop.sock_sendall(sock, _http_request(target, source.name)), timeout)
        sock.shutdown(socket.SHUT_WR)
        while len(data) < READ_LIMIT:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, READ_LIMIT), timeout)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        return Outcome.CONNECTED, "no answer", data
    except OSError as exc:
        return Outcome.CONNECTED, errno.errorcode.get(exc.errno or 0, str(exc)), data
    return Outcome.CONNECTED, "", data


async def _udp_probe(
    sock: socket.socket, target: Target, timeout: float
) -> tuple[Outcome, str, bytes]:
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, (target.address, target.port))
        sock.send(b"hostname")
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, READ_LIMIT), timeout / 2)
        except TimeoutError:
            sock.send(b"hostname")  # one resend: a lone datagram may be lost
            data = await asyncio.wait_for(loop.sock_recv(sock, READ_LIMIT), timeout / 2)
    except TimeoutError:
        return Outcome.TIMEOUT, "timeout", b""
    except OSError as exc:
        outcome, reason = _classify(exc)
        return outcome, reason, b""
    return Outcome.CONNECTED, "", data


async def _probe_one(
    maker: _SocketMaker, source: Source, target: Target, timeout: float, sem: asyncio.Semaphore
) -> ProbeResult:
    async with sem:
        family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
        kind = socket.SOCK_DGRAM if target.protocol == "UDP" else socket.SOCK_STREAM
        proto = socket.IPPROTO_SCTP if target.protocol == "SCTP" else 0
        start = time.monotonic()
        try:
            sock = maker.make(source.netns, family, kind, proto)
        except OSError as exc:
            return ProbeResult(
                source.name, target, Outcome.ERROR, errno.errorcode.get(exc.errno or 0, str(exc))
            )
        try:
            if kind == socket.SOCK_DGRAM:
                outcome, reason, data = await _udp_probe(sock, target, timeout)
            else:
                outcome, reason, data = await _stream_probe(sock, source, target, timeout)
        finally:
            sock.close()
        reply, status, echo = parse_reply(data)
        return ProbeResult(
            source.name,
            target,
            outcome,
            reason,
            reply,
            status,
            echo,
            (time.monotonic() - start) * 1000,
        )


def _interleaved(
    sources: Sequence[Source], targets: Sequence[Target]
) -> list[tuple[Source, Target]]:
    """Every pair, ordered so that concurrent probes spread over many targets."""
    pairs = []
    n = len(targets)
    for shift in range(n):
        for i, source in enumerate(sources):
            pairs.append((source, targets[(i + shift) % n]))
    return pairs


async def _run_all(
    sources: Sequence[Source],
    targets: Sequence[Target],
    timeout: float,
    parallelism: int,
    progress: Callable[[int, int], None] | None,
) -> list[ProbeResult]:
    sem = asyncio.Semaphore(parallelism)
    maker = _SocketMaker(s.netns for s in sources)
    try:
        pairs = _interleaved(sources, targets)
        tasks = [asyncio.ensure_future(_probe_one(maker, s, t, timeout, sem)) for s, t in pairs]
        for done, future in enumerate(asyncio.as_completed(tasks), start=1):
            await future
            if progress is not None and (done % 50 == 0 or done == len(tasks)):
                progress(done, len(tasks))
        return [t.result() for t in tasks]
    finally:
        maker.close()


def run_probes(
    sources: Sequence[Source],
    targets: Sequence[Target],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    parallelism: int = DEFAULT_PARALLELISM,
    progress: Callable[[int, int], None] | None = None,
) -> ProbeMatrix:
    """Probe every (source, target) pair; results in source-then-target order."""
    notes: list[str] = []
    if any(t.protocol == "SCTP" for t in targets) and not sctp_supported():
        notes.append("SCTP targets skipped: this kernel has no SCTP")
        targets = [t for t in targets if t.protocol != "SCTP"]
    start = time.monotonic()
    results = (
        asyncio.run(_run_all(sources, targets, timeout, parallelism, progress))
        if sources and targets
        else []
    )
    order = {(s.name, t): (i, j) for i, s in enumerate(sources) for j, t in enumerate(targets)}
    results.sort(key=lambda r: order[(r.source, r.target)])
    return ProbeMatrix(
        tuple(sources),
        tuple(targets),
        tuple(results),
        timeout,
        time.monotonic() - start,
        tuple(notes),
    )
