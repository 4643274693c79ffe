"""Coarse timers for the hot path: one event-loop timer serving many deadlines.

Per-request timers (`loop.call_later`, `asyncio.timeout`) cost a heap push and a
cancel each, several times per request. Connections and backend exchanges
instead record a deadline here (a dict store); one timer ticks every `tick`
seconds while any deadline is pending and fires those that passed. Deadlines
are therefore late by at most one tick (50 ms by default), never early.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEFAULT_TICK = 0.05


class Deadlines:
    __slots__ = ("_entries", "_handle", "_tick")

    def __init__(self, tick: float = DEFAULT_TICK) -> None:
        self._entries: dict[object, tuple[float, Callable[[], None]]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._tick = tick

    def set(self, key: object, seconds: float, callback: Callable[[], None]) -> None:
        """Call `callback` once `seconds` have passed, unless `clear(key)` first.
        Setting a key again replaces its deadline."""
        self._entries[key] = (time.monotonic() + seconds, callback)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self._tick, self._run)

    def clear(self, key: object) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def _run(self) -> None:
        self._handle = None
        now = time.monotonic()
        expired = [(key, cb) for key, (when, cb) in self._entries.items() if when <= now]
        for key, _ in expired:
            del self._entries[key]
        for _, callback in expired:
            callback()
        if self._entries and self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self._tick, self._run)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._entries.clear()
