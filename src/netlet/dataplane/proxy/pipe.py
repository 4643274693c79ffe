"""Two transports joined back to back: what arrives on one is written to the other.

Used for WebSocket tunnels after a 101, TCPRoute and TLS passthrough. Flow
control crosses over: when one side's write buffer fills, the other side stops
reading, so a fast sender cannot grow memory without bound. Half-close is
passed on where the transport supports it (plain TCP); closing either side
closes both. An idle pair is closed after `idle_timeout` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast


class PipeProtocol(asyncio.Protocol):
    __slots__ = (
        "_closing",
        "_on_close",
        "_pending",
        "bytes_in",
        "got_eof",
        "last",
        "peer",
        "transport",
    )

    def __init__(self, on_close: Callable[[], None] | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: PipeProtocol | None = None
        self._pending: list[bytes] = []
        self._on_close = on_close
        self._closing = False
        self.got_eof = False
        self.bytes_in = 0
        self.last = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass

    def link(self, peer: PipeProtocol) -> None:
        self.peer = peer
        if self._pending and peer.transport is not None:
            for data in self._pending:
                peer.transport.write(data)
            self._pending.clear()

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self.last = time.monotonic()
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self._pending.append(data)

    def eof_received(self) -> bool:
        self.got_eof = True
        peer = self.peer
        if peer is not None and peer.got_eof:
            # Both directions are finished: nothing more can flow.
            self.close()
            return False
        if peer is not None and peer.transport is not None and peer.transport.can_write_eof():
            peer.transport.write_eof()
            return True
        self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self.transport is not None:
            self.transport.close()
        if self.peer is not None:
            self.peer.close()
        if self._on_close is not None:
            self._on_close()


def join(
    a: asyncio.Transport,
    b: asyncio.Transport,
    *,
    a_first: bytes = b"",
    b_first: bytes = b"",
    idle_timeout: float | None = None,
    on_close: Callable[[PipeProtocol, PipeProtocol], None] | None = None,
) -> tuple[PipeProtocol, PipeProtocol]:
    """Splice `a` and `b`. `a_first` is written to `a` first (bytes `b` already sent),
    `b_first` to `b` (bytes `a` already sent). `on_close(pa, pb)` runs once."""
    done = False

    def closed() -> None:
        nonlocal done
        if not done:
            done = True
            if timer is not None:
                timer.cancel()
            if on_close is not None:
                on_close(pa, pb)

    pa = PipeProtocol(closed)
    pb = PipeProtocol(closed)
    pa.connection_made(a)
    pb.connection_made(b)
    pa.link(pb)
    pb.link(pa)
    if a_first:
        a.write(a_first)
    if b_first:
        b.write(b_first)
    a.set_protocol(pa)
    b.set_protocol(pb)
    # Either side may have been paused while the pipe was being set up.
    a.resume_reading()
    b.resume_reading()
    timer: asyncio.TimerHandle | None = None
    if idle_timeout:
        loop = asyncio.get_running_loop()

        def check() -> None:
            nonlocal timer
            idle = time.monotonic() - max(pa.last, pb.last)
            if idle >= idle_timeout:
                timer = None
                pa.close()
            else:
                timer = loop.call_later(idle_timeout - idle, check)

        timer = loop.call_later(idle_timeout, check)
    return pa, pb
