"""What the proxy reports: counters, upstream latency histogram, JSON-lines access log.

`Stats` is plain counters bumped on the hot path (dict increments, no locks: one
event loop per process). `Stats.snapshot()` is a JSON-able dict; several worker
processes' snapshots add up with `merge`. The access log buffers lines and
flushes them at most once per `flush_interval`, so logging costs one
`json.dumps` per request and no syscall.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import sys
import time
from collections import Counter
from typing import IO, Any

# Upper bounds (seconds) of the upstream latency histogram buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# Counter keys per listener and protocol, formatted once (they are on every request's path).
_KEYS: dict[str, dict[str, str]] = {}


class Stats:
    __slots__ = (
        "connections_active",
        "connections_total",
        "counters",
        "latency_buckets",
        "latency_count",
        "latency_sum",
        "requests",
        "started",
        "statuses",
    )

    def __init__(self) -> None:
        self.started = time.time()
        self.connections_total: Counter[str] = Counter()
        self.connections_active: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()  # keys made text in `snapshot`
        self.counters: Counter[str] = Counter()
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_count = 0
        self.latency_sum = 0.0

    def connection_opened(self, site: str) -> None:
        self.connections_total[site] += 1
        self.connections_active[site] += 1

    def connection_closed(self, site: str) -> None:
        self.connections_active[site] -= 1

    def request_done(
        self, site: str, protocol: str, status: int, upstream_seconds: float | None = None
    ) -> None:
        """A finished request of a listener, with its backend's latency if it had one."""
        names = _KEYS.get(site)
        if names is None:
            names = _KEYS[site] = {}
        key = names.get(protocol)
        if key is None:
            key = names[protocol] = f"{site} {protocol}"
        self.requests[key] += 1
        self.statuses[status] += 1
        if upstream_seconds is not None:
            self.upstream_latency(upstream_seconds)

    def upstream_latency(self, seconds: float) -> None:
        self.latency_count += 1
        self.latency_sum += seconds
        # The first bucket whose bound is >= seconds; past the last one, +Inf.
        self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def bump(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_seconds": round(time.time() - self.started, 3),
            "connections_total": dict(self.connections_total),
            "connections_active": dict(self.connections_active),
            "requests": dict(self.requests),
            "responses_by_status": {str(code): n for code, n in self.statuses.items()},
            "counters": dict(self.counters),
            "upstream_latency": {
                "count": self.latency_count,
                "sum_seconds": round(self.latency_sum, 6),
                "buckets": {
                    **{
                        str(b): n
                        for b, n in zip(LATENCY_BUCKETS, self.latency_buckets, strict=False)
                    },
                    "+Inf": self.latency_buckets[-1],
                },
            },
        }


def merge(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Add several workers' snapshots up (uptime: the longest)."""
    out: dict[str, Any] = {"workers": len(snapshots)}
    for snap in snapshots:
        for key, value in snap.items():
            if key == "uptime_seconds":
                out[key] = max(out.get(key, 0.0), value)
            elif isinstance(value, dict):
                out[key] = _merge_dict(out.get(key, {}), value)
            elif isinstance(value, int | float):
                out[key] = out.get(key, 0) + value
    return out


def _merge_dict(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    result = dict(into)
    for key, value in more.items():
        if isinstance(value, dict):
            result[key] = _merge_dict(result.get(key, {}), value)
        else:
            result[key] = result.get(key, 0) + value
    return result


def prometheus(snapshot: dict[str, Any]) -> str:
    """The snapshot in the Prometheus text format (for /metrics)."""
    lines = []
    for key, metric in (
        ("connections_total", "netlet_proxy_connections_total"),
        ("connections_active", "netlet_proxy_connections_active"),
    ):
        for site, n in sorted(snapshot.get(key, {}).items()):
            lines.append(f'{metric}{{listener="{site}"}} {n}')
    for name, n in sorted(snapshot.get("requests", {}).items()):
        site, _, proto = name.rpartition(" ")
        lines.append(f'netlet_proxy_requests_total{{listener="{site}",protocol="{proto}"}} {n}')
    for status, n in sorted(snapshot.get("responses_by_status", {}).items()):
        lines.append(f'netlet_proxy_responses_total{{code="{status}"}} {n}')
    for name, n in sorted(snapshot.get("counters", {}).items()):
        lines.append(f'netlet_proxy_events_total{{event="{name}"}} {n}')
    latency = snapshot.get("upstream_latency", {})
    cumulative = 0
    for bound, n in latency.get("buckets", {}).items():
        cumulative += n
        lines.append(f'netlet_proxy_upstream_latency_seconds_bucket{{le="{bound}"}} {cumulative}')
    lines.append(f"netlet_proxy_upstream_latency_seconds_sum {latency.get('sum_seconds', 0)}")
    lines.append(f"netlet_proxy_upstream_latency_seconds_count {latency.get('count', 0)}")
    return "\n".join(lines) + "\n"


class AccessLog:
    """JSON lines, one per request or L4 session, buffered and flushed periodically."""

    def __init__(self, stream: IO[str], flush_interval: float = 0.5) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._interval = flush_interval
        self._handle: asyncio.TimerHandle | None = None

    @classmethod
    def open(cls, target: str) -> AccessLog:
        if target == "-":
            return cls(sys.stderr)
        return cls(open(target, "a", encoding="utf-8"))

    def write(self, record: dict[str, Any]) -> None:
        self._lines.append(json.dumps(record, separators=(",", ":")))
        if self._handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._handle = loop.call_later(self._interval, self.flush)

    def flush(self) -> None:
        self._handle = None
        if self._lines:
            self._stream.write("\n".join(self._lines) + "\n")
            self._lines.clear()
            self._stream.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self.flush()
        if self._stream not in (sys.stderr, sys.stdout):
            self._stream.close()
