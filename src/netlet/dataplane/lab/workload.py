"""The built-in test workload: one process per pod serving every declared port.

Like upstream's agnhost (`serve-hostname`, `netexec`), it answers with the pod's
name so a client can see which backend served it:

- TCP (and SCTP when the kernel has it): on accept, write `<pod name>\\n`, close
  the write side, read until the client closes (so no RST eats the answer);
- UDP: answer every datagram with the pod name; `clientip` answers the client's
  `ip:port` and `echo TEXT` answers TEXT (agnhost netexec's UDP commands);
  replies leave from the address the datagram came to (IP_PKTINFO), so a client
  of a node with many addresses accepts them;
- HTTP (ports named http*, or marked appProtocol http by a Service): every
  request gets a JSON echo: method, path, query, host, headers, client and
  server address, pod, namespace, node.

`serve(spec, ready_fd)` runs inside the pod's namespace (the supervisor enters it
first). It binds every port, reports `R <json>` or `E <message>` on `ready_fd`,
then serves forever. Only the standard library and h11: it must start fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import socket
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

IP_PKTINFO = 8  # linux/in.h; Python's socket module does not export it
READ_LIMIT = 64 * 1024
IDLE_TIMEOUT = 10.0


class PortError(Exception):
    """A port could not be bound; the message names the port."""


def _bind_sockets(port: int, proto: int, kind: int) -> list[socket.socket]:
    """One IPv4 and (when the namespace has IPv6) one IPv6-only socket bound to `port`."""
    out: list[socket.socket] = []
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno in (
                errno.EAFNOSUPPORT,
                errno.EPROTONOSUPPORT,
            ):
                continue
            raise
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            elif family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            sock.setblocking(False)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if family == socket.AF_INET6 and exc.errno == errno.EADDRNOTAVAIL:
                    sock.close()  # IPv6 disabled in this namespace
                    continue
                raise
            if kind == socket.SOCK_STREAM:
                sock.listen(512)
        except BaseException:
            sock.close()
            for other in out:
                other.close()
            raise
        out.append(sock)
    return out


class Identity:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.pod = str(spec["name"])
        self.namespace = str(spec["namespace"])
        self.node = str(spec["node"])


def _addr(sockaddr: Any) -> dict[str, Any]:
    if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
        return {"ip": str(sockaddr[0]), "port": int(sockaddr[1])}
    return {"ip": str(sockaddr), "port": 0}


# TCP / SCTP --------------------------------------------------------------------------


def plain_handler(ident: Identity) -> Callable[..., Any]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(ident.pod.encode() + b"\n")
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            # Drain what the client sends until it closes, so our close sends FIN, not RST.
            total = 0
            while total < READ_LIMIT:
                chunk = await asyncio.wait_for(reader.read(4096), IDLE_TIMEOUT)
                if not chunk:
                    break
                total += len(chunk)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return handle


def echo_body(
    ident: Identity, request: h11.Request, client: Any, server: Any, body_length: int
) -> bytes:
    target = request.target.decode("latin-1")
    parts = urlsplit(target)
    headers: dict[str, str] = {}
    for name, value in request.headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    echo = {
        "pod": ident.pod,
        "namespace": ident.namespace,
        "node": ident.node,
        "method": request.method.decode("latin-1"),
        "path": parts.path,
        "query": parse_qs(parts.query, keep_blank_values=True),
        "host": headers.get("host", ""),
        "headers": headers,
        "client": _addr(client),
        "server": _addr(server),
        "httpVersion": request.http_version.decode("latin-1"),
        "bodyLength": body_length,
    }
    return json.dumps(echo, sort_keys=True).encode() + b"\n"


def http_handler(ident: Identity) -> Callable[..., Any]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        client = writer.get_extra_info("peername")
        server = writer.get_extra_info("sockname")
        request: h11.Request | None = None
        body_length = 0
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await asyncio.wait_for(reader.read(READ_LIMIT), IDLE_TIMEOUT)
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    request, body_length = event, 0
                elif isinstance(event, h11.Data):
                    body_length += len(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    assert request is not None
                    body = echo_body(ident, request, client, server, body_length)
                    await _respond(writer, conn, 200, body, "application/json")
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        break
                    conn.start_next_cycle()
                else:  # ConnectionClosed or PAUSED
                    break
        except h11.RemoteProtocolError:
            # Not HTTP (or broken): answer what a plain port would, inside a 400.
            with contextlib.suppress(Exception):
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await _respond(writer, conn, 400, ident.pod.encode() + b"\n", "text/plain")
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return handle


async def _respond(
    writer: asyncio.StreamWriter, conn: h11.Connection, status: int, body: bytes, ctype: str
) -> None:
    headers = [
        ("content-type", ctype),
        ("content-length", str(len(body))),
        ("server", "netlet-workload"),
    ]
    writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
    writer.write(conn.send(h11.Data(data=body)) or b"")
    writer.write(conn.send(h11.EndOfMessage()) or b"")
    await writer.drain()


# UDP -----------------------------------------------------------------------------------


def udp_answer(ident: Identity, data: bytes, client: Any) -> bytes:
    text = data.strip()
    if text == b"clientip":
        peer = _addr(client)
        return f"{peer['ip']}:{peer['port']}".encode()
    if text.startswith(b"echo "):
        return text[5:]
    return ident.pod.encode()


def _serve_udp(loop: asyncio.AbstractEventLoop, sock: socket.socket, ident: Identity) -> None:
    space = socket.CMSG_SPACE(64)

    def readable() -> None:
        for _ in range(64):
            try:
                data, ancdata, _flags, client = sock.recvmsg(READ_LIMIT, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            reply_cmsg = []
            for level, kind, payload in ancdata:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    # struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
                    dst = payload[8:12]
                    reply_cmsg.append((level, kind, struct.pack("i4s4s", 0, dst, b"\0" * 4)))
                elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                    # struct in6_pktinfo { in6_addr addr; int ifindex; }
                    reply_cmsg.append((level, kind, payload[:16] + struct.pack("i", 0)))
            with contextlib.suppress(OSError):
                sock.sendmsg([udp_answer(ident, data, client)], reply_cmsg, 0, client)

    loop.add_reader(sock.fileno(), readable)


# Serving -------------------------------------------------------------------------------


def sctp_supported() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError:
        return False
    return True


async def _start(spec: dict[str, Any]) -> tuple[dict[str, str], list[Any]]:
    ident = Identity(spec)
    loop = asyncio.get_running_loop()
    states: dict[str, str] = {}
    keep: list[Any] = []
    errors: list[str] = []
    for port in spec["ports"]:
        label = f"{port['port']}/{port['protocol']}"
        proto = port["protocol"]
        try:
            if proto == "UDP":
                for sock in _bind_sockets(port["port"], 0, socket.SOCK_DGRAM):
                    _serve_udp(loop, sock, ident)
                    keep.append(sock)
                states[label] = "serving"
                continue
            ipproto = socket.IPPROTO_SCTP if proto == "SCTP" else 0
            try:
                socks = _bind_sockets(port["port"], ipproto, socket.SOCK_STREAM)
            except OSError as exc:
                if proto == "SCTP" and exc.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
                    states[label] = "unsupported: this kernel has no SCTP"
                    continue
                raise
            handler = http_handler(ident) if port.get("http") else plain_handler(ident)
            for sock in socks:
                keep.append(await asyncio.start_server(handler, sock=sock))
            states[label] = "serving http" if port.get("http") else "serving"
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            if exc.errno == errno.EADDRINUSE:
                reason = "port clash: address already in use"
            errors.append(f"{label}: {reason}")
    if errors:
        raise PortError("; ".join(errors))
    return states, keep


def serve(spec: dict[str, Any], ready_fd: int) -> None:
    """Bind every port of the pod, report on `ready_fd`, then serve until killed."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        states, keep = loop.run_until_complete(_start(spec))
    except PortError as exc:
        os.write(ready_fd, f"E {exc}\n".encode())
        os.close(ready_fd)
        raise SystemExit(3) from None
    os.write(ready_fd, b"R " + json.dumps(states).encode() + b"\n")
    os.close(ready_fd)
    try:
        loop.run_forever()
    finally:
        for item in keep:
            item.close()
        loop.close()
