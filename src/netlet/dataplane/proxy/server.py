"""Listening sockets for the Gateways' programmed listeners, and reloads.

`plan_binds` turns programs into the sockets to open: one per Gateway address
and (transport, port). Without `--bind-override` a socket binds the Gateway's
address (spec.addresses / status), which exists inside the Gateway's network
namespace in the node lab; with it every socket binds that one address
(loopback), and privileged ports move by `port_offset` (80 -> 8080 with the
default 8000 when not root) - the mapping is printed and served on /config.

Kinds of socket, by the listeners sharing a port:

- http: HTTP/1.1, and HTTP/2 with prior knowledge (h2c);
- https: TLS terminated with the certificate of the listener the SNI selects,
  ALPN h2 or http/1.1;
- tls: a port with TLS listeners (passthrough or terminate + TCPRoute), maybe
  beside HTTPS ones. The ClientHello is peeked at (MSG_PEEK: left unread in the
  socket), the SNI chooses the listener, then the socket goes to HTTPS
  termination or to a raw TCP pipe towards the TLSRoute's backend;
- tcp, udp: TCPRoute / UDPRoute forwarding.

`ProxyServer.apply(snapshot)` makes the open sockets match a new snapshot:
sockets that stay are untouched (their connections live on), new ones open,
gone ones close after their connections drain. The swap of routing state is
`Holder.swap`, one assignment, done only once every new socket is bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from netlet.dataplane.proxy.engine import Engine
from netlet.dataplane.proxy.http1 import H1Server
from netlet.dataplane.proxy.l4 import L4Site, TcpEntry, UdpListener
from netlet.dataplane.proxy.limits import Limits
from netlet.dataplane.proxy.observe import AccessLog, Stats
from netlet.dataplane.proxy.routing import GatewayRouter, Holder, L4GatewayRouter, Snapshot
from netlet.dataplane.proxy.routing import sni_selector as make_sni_selector
from netlet.dataplane.proxy.site import Site
from netlet.dataplane.proxy.tls import MAX_CLIENT_HELLO, NeedMore, NotTLS, parse_client_hello
from netlet.dataplane.proxy.upstream import UpstreamPool
from netlet.gateway.match import match_tls
from netlet.gateway.table import GatewayProgram, PortTable

log = logging.getLogger(__name__)

Kind = Literal["http", "https", "tls", "tcp", "udp"]

# Ports below this need privileges to bind (net.ipv4.ip_unprivileged_port_start).
PRIVILEGED_BELOW = 1024
DEFAULT_PORT_OFFSET = 8000


@dataclass(frozen=True, slots=True)
class Bind:
    gateway: str
    transport: Literal["tcp", "udp"]
    port: int  # the listener port (what routing sees)
    address: str  # where the socket binds
    bind_port: int  # the port it binds (differs with a port offset)
    kind: Kind

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.address, self.bind_port, self.transport)

    def __str__(self) -> str:
        return (
            f"{self.gateway} {self.kind} {self.port}/{self.transport} -> "
            f"{_hostport(self.address, self.bind_port)}"
        )


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def port_kind(table: PortTable) -> Kind | str:
    """The socket kind for a port, or a problem (str starting with 'cannot')."""
    if table.transport == "udp":
        return "udp"
    protocols = {listener.info.protocol for listener in table.listeners}
    if "TLS" in protocols and protocols <= {"TLS", "HTTPS"}:
        return "tls"
    if protocols == {"HTTP"}:
        return "http"
    if protocols == {"HTTPS"}:
        return "https"
    if protocols == {"TCP"}:
        return "tcp"
    return f"cannot serve protocols {sorted(protocols)} on one port"


def default_port_offset() -> int:
    return 0 if os.geteuid() == 0 else DEFAULT_PORT_OFFSET


def plan_binds(
    programs: dict[str, GatewayProgram] | Any,
    bind_override: str | None = None,
    port_offset: int = 0,
) -> tuple[list[Bind], list[str]]:
    """The sockets to open for `programs`, and the problems (what cannot be served)."""
    binds: list[Bind] = []
    problems: list[str] = []
    taken: dict[tuple[str, int, str], str] = {}
    for gateway in sorted(programs):
        program = programs[gateway]
        addresses = [bind_override] if bind_override else list(program.addresses)
        if not addresses:
            problems.append(
                f"Gateway {gateway}: no address to bind (spec.addresses or status); "
                "use --bind-override 127.0.0.1"
            )
            continue
        for (transport, port), table in sorted(program.ports.items()):
            kind = port_kind(table)
            if kind not in ("http", "https", "tls", "tcp", "udp"):
                problems.append(f"Gateway {gateway} port {port}: {kind}")
                continue
            bind_port = port + port_offset if port < PRIVILEGED_BELOW and port_offset else port
            for address in addresses:
                bind = Bind(gateway, transport, port, address, bind_port, kind)  # type: ignore[arg-type]
                other = taken.get(bind.key)
                if other is not None:
                    problems.append(
                        f"Gateway {gateway} port {port}/{transport}: "
                        f"{_hostport(address, bind_port)} is already used by Gateway {other}"
                    )
                    continue
                taken[bind.key] = gateway
                binds.append(bind)
    return binds, problems


@dataclass
class _Running:
    bind: Bind
    closer: Any  # asyncio.Server, DatagramTransport or TlsPort
    sites: list[Site | L4Site] = field(default_factory=list)


class TlsPort:
    """A TLS port served by peeking at each ClientHello (see module doc)."""

    def __init__(self, server: ProxyServer, bind: Bind, sock: socket.socket) -> None:
        self.server = server
        self.bind = bind
        self.sock = sock
        name = f"{bind.gateway}:{bind.port}"
        limits, stats, access_log = server.limits, server.stats, server.access_log
        self.https_site = Site(
            name,
            bind.port,
            server.engine(bind.gateway),
            limits,
            stats,
            access_log,
            scheme="https",
            h2c=False,
            log_fields={"gateway": bind.gateway},
            batch=server.pool.batch,
        )
        self.l4_site = L4Site(
            name,
            bind.port,
            L4GatewayRouter(server.holder, bind.gateway, bind.port, "TLS"),
            limits,
            stats,
            access_log,
            log_fields={"gateway": bind.gateway},
        )
        self.task: asyncio.Task[None] | None = None
        self.pending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._accept())

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        for task in self.pending:
            task.cancel()
        self.sock.close()

    async def wait_closed(self) -> None:
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self.sock)
            except OSError as exc:
                log.warning("accept on %s failed: %s", self.bind, exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            task = loop.create_task(self._serve(conn))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        limits = self.server.limits
        try:
            sni = await _peek_sni(conn, limits.header_timeout)
        except (NotTLS, TimeoutError, OSError) as exc:
            self.server.stats.bump("tls_bad_client_hello")
            log.debug("%s: %s", self.bind, exc)
            conn.close()
            return
        program = self.server.holder.current.programs.get(self.bind.gateway)
        decision = match_tls(program, self.bind.port, sni) if program is not None else None
        info = decision.listener if decision is not None else None
        try:
            if info is not None and info.protocol == "HTTPS":
                ctx, _ = make_sni_selector(self.server.holder, self.bind.gateway, self.bind.port)
                if ctx is None:
                    conn.close()
                    return
                await loop.connect_accepted_socket(
                    lambda: H1Server(self.https_site),
                    conn,
                    ssl=ctx,
                    ssl_handshake_timeout=limits.header_timeout,
                )
            elif info is not None and info.tls is not None and info.tls.mode == "Terminate":
                ctx, _ = make_sni_selector(self.server.holder, self.bind.gateway, self.bind.port)
                if ctx is None:
                    conn.close()
                    return
                await loop.connect_accepted_socket(
                    lambda: TcpEntry(self.l4_site, sni, "TLS"),
                    conn,
                    ssl=ctx,
                    ssl_handshake_timeout=limits.header_timeout,
                )
            else:
                await loop.connect_accepted_socket(lambda: TcpEntry(self.l4_site, sni, "TLS"), conn)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self.server.stats.bump("tls_handshake_error")
            log.debug("%s: %s", self.bind, exc)
            conn.close()


async def _peek_sni(conn: socket.socket, timeout: float) -> str | None:
    """The SNI of the ClientHello waiting in `conn`, read with MSG_PEEK only."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    seen = -1
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete ClientHello in time")
        readable = loop.create_future()
        loop.add_reader(conn.fileno(), readable.set_result, None)
        try:
            async with asyncio.timeout(remaining):
                await readable
        finally:
            loop.remove_reader(conn.fileno())
        data = conn.recv(MAX_CLIENT_HELLO + 5 * 8, socket.MSG_PEEK)
        if not data:
            raise OSError("client closed before its ClientHello")
        try:
            return parse_client_hello(data)
        except NeedMore:
            if len(data) == seen:
                # Level-triggered readiness: wait a little for the rest to arrive.
                await asyncio.sleep(0.005)
            seen = len(data)


class ProxyServer:
    """Every socket of every served Gateway, in this process."""

    def __init__(
        self,
        holder: Holder,
        *,
        limits: Limits | None = None,
        stats: Stats | None = None,
        access_log: AccessLog | None = None,
        bind_override: str | None = None,
        port_offset: int = 0,
        reuse_port: bool = False,
    ) -> None:
        self.holder = holder
        self.limits = limits or Limits()
        self.stats = stats or Stats()
        self.access_log = access_log
        self.bind_override = bind_override
        self.port_offset = port_offset
        self.reuse_port = reuse_port
        self.pool = UpstreamPool(self.limits, self.stats)
        self.running: dict[tuple[str, int, str], _Running] = {}
        self._engines: dict[str, Engine] = {}
        self.binds: list[Bind] = []
        self.problems: list[str] = []

    def engine(self, gateway: str) -> Engine:
        engine = self._engines.get(gateway)
        if engine is None:
            router = GatewayRouter(self.holder, gateway)
            engine = self._engines[gateway] = Engine(router, self.pool, self.limits, self.stats)
        return engine

    async def apply(self, snapshot: Snapshot) -> list[str]:
        """Open/close sockets for `snapshot` and publish it. Returns the problems; a
        socket that cannot bind is a problem, the rest is still served."""
        binds, problems = plan_binds(snapshot.programs, self.bind_override, self.port_offset)
        wanted = {bind.key: bind for bind in binds}
        stale = [key for key, run in self.running.items() if wanted.get(key) != run.bind]
        opened: list[_Running] = []
        # Publish first so new sockets route with the new tables from their first byte.
        old = self.holder.swap(snapshot)
        for key in stale:
            await self._close(self.running.pop(key))
        for key, bind in wanted.items():
            if key in self.running:
                continue
            try:
                run = await self._open(bind)
            except OSError as exc:
                problems.append(f"{bind}: cannot bind: {exc.strerror or exc}")
                continue
            except ValueError as exc:
                problems.append(f"{bind}: {exc}")
                continue
            self.running[key] = run
            opened.append(run)
        self.binds = [run.bind for run in self.running.values()]
        self.problems = problems
        del old
        return problems

    async def _open(self, bind: Bind) -> _Running:
        loop = asyncio.get_running_loop()
        name = f"{bind.gateway}:{bind.port}"
        fields = {"gateway": bind.gateway}
        limits, stats, access_log = self.limits, self.stats, self.access_log
        reuse = self.reuse_port or None
        if bind.kind in ("http", "https"):
            ctx = None
            if bind.kind == "https":
                ctx, _ = make_sni_selector(self.holder, bind.gateway, bind.port)
                if ctx is None:
                    raise ValueError("no usable certificate for the HTTPS listeners")
            site = Site(
                name,
                bind.port,
                self.engine(bind.gateway),
                limits,
                stats,
                access_log,
                scheme=bind.kind,
                h2c=bind.kind == "http",
                log_fields=fields,
                batch=self.pool.batch,
            )
            server = await loop.create_server(
                lambda: H1Server(site),
                bind.address,
                bind.bind_port,
                ssl=ctx,
                ssl_handshake_timeout=limits.header_timeout if ctx is not None else None,
                reuse_port=reuse,
                backlog=1024,
            )
            return _Running(bind, server, [site])
        if bind.kind == "tcp":
            l4 = L4Site(
                name,
                bind.port,
                L4GatewayRouter(self.holder, bind.gateway, bind.port, "TCP"),
                limits,
                stats,
                access_log,
                log_fields=fields,
            )
            server = await loop.create_server(
                lambda: TcpEntry(l4), bind.address, bind.bind_port, reuse_port=reuse, backlog=1024
            )
            return _Running(bind, server, [l4])
        if bind.kind == "udp":
            l4 = L4Site(
                name,
                bind.port,
                L4GatewayRouter(self.holder, bind.gateway, bind.port, "UDP"),
                limits,
                stats,
                access_log,
                log_fields=fields,
            )
            transport, _ = await loop.create_datagram_endpoint(
                lambda: UdpListener(l4),
                local_addr=(bind.address, bind.bind_port),
                reuse_port=reuse,
            )
            return _Running(bind, transport, [l4])
        family = socket.AF_INET6 if ":" in bind.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((bind.address, bind.bind_port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        port = TlsPort(self, bind, sock)
        port.start()
        return _Running(bind, port, [port.https_site, port.l4_site])

    async def _close(self, run: _Running, timeout: float | None = None) -> None:
        """Stop accepting, let the connections finish (up to the drain timeout), close."""
        closer = run.closer
        closer.close()
        if isinstance(closer, TlsPort):
            await closer.wait_closed()
        drain = self.limits.drain_timeout if timeout is None else timeout
        await asyncio.gather(*(site.drain(drain) for site in run.sites if isinstance(site, Site)))

    async def close(self, timeout: float | None = None) -> None:
        runs = list(self.running.values())
        self.running.clear()
        await asyncio.gather(*(self._close(run, timeout) for run in runs))
        for engine in self._engines.values():
            await engine.close()
        self.pool.close()
        if self.access_log is not None:
            self.access_log.flush()

    def config(self) -> dict[str, Any]:
        snapshot = self.holder.current
        return {
            "generation": snapshot.generation,
            "gateways": sorted(snapshot.programs),
            "listeners": [
                {
                    "gateway": bind.gateway,
                    "kind": bind.kind,
                    "port": bind.port,
                    "transport": bind.transport,
                    "bound": _hostport(bind.address, bind.bind_port),
                }
                for bind in self.binds
            ],
            "problems": list(self.problems),
        }
