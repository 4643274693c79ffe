"""Writes held until the event loop has dispatched every socket that was ready.

uvloop sends what a protocol writes at once, one `send` per write; on loopback each
`send` runs the receiver's TCP input and wakes the receiving process then and there.
A proxy answering many connections from one pass of the loop would so wake its peers
(the load generator, the backends) once per response, in the middle of its own work.
`WriteBatch` keeps the writes made during one pass and sends them when the pass ends
(`loop.call_soon` runs after the I/O callbacks of the pass): as many `send`s, but the
peers are woken by a burst, and find the rest of it ready when they run.

Invariant: the writes of a transport go out in the order they were made. Whoever
closes or hands over a transport with writes in a batch flushes the batch first
(`flush`); a transport the peer closed meanwhile drops what it is given, as it would
have at once.
"""

from __future__ import annotations

import asyncio
from typing import Any


class WriteBatch:
    """Writes of one event loop (protocols share it), sent at the end of the pass."""

    __slots__ = ("_items", "_scheduled")

    def __init__(self) -> None:
        self._items: list[tuple[Any, bytes]] = []
        self._scheduled = False

    def write(self, transport: Any, data: bytes, loop: asyncio.AbstractEventLoop) -> None:
        """`transport.write(data)` when the loop has dispatched what is ready."""
        self._items.append((transport, data))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send every held write now (also before a transport is closed or handed over)."""
        self._scheduled = False
        items = self._items
        if not items:
            return
        self._items = []
        for transport, data in items:
            # A bare try is cheaper than contextlib.suppress on this per-response path.
            try:  # noqa: SIM105
                transport.write(data)
            except RuntimeError:
                pass  # closed meanwhile (the peer went away): nothing to send to

    def __len__(self) -> int:
        return len(self._items)
