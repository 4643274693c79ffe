"""Running the proxy: manifests -> the brain's programs -> a snapshot -> sockets;
then watching the manifests, the admin endpoint, signals and worker processes.

Reload (`--watch`, or SIGHUP): the manifests are loaded and the programs built
again; if loading reports an error, or building fails, the problem is reported
and the old snapshot stays in service. Otherwise the new snapshot is published
with one assignment (`Holder.swap`) and the sockets are adjusted; requests in
flight finish on the snapshot they started with.

Programs come from manifests (`paths`), or - in the node lab - from a file of
pickled programs the lab wrote from its own ClusterState (`program_file`, in the
lab's root-only state directory), so the proxy serves exactly the tables the lab
computed, pod IPs included, without loading manifests again.

Workers (`--workers N`, N > 1): N processes each run the whole proxy on the same
ports with SO_REUSEPORT, so the kernel spreads connections over them; the
parent process only supervises them and serves the admin endpoint, adding the
workers' counters up (it asks each over a pipe).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlet.cluster.build import load_cluster
from netlet.dataplane.proxy.admin import AdminHandler
from netlet.dataplane.proxy.http1 import H1Server
from netlet.dataplane.proxy.limits import Limits
from netlet.dataplane.proxy.observe import AccessLog, Stats, merge
from netlet.dataplane.proxy.plan import loopback_only
from netlet.dataplane.proxy.routing import Holder, Snapshot
from netlet.dataplane.proxy.server import ProxyServer, default_port_offset
from netlet.dataplane.proxy.site import Site
from netlet.gateway.build import build_programs
from netlet.gateway.table import GatewayProgram

Report = Callable[[str], None]

CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class ServeOptions:
    paths: tuple[str, ...]
    gateways: tuple[str, ...] = ()  # "ns/name"; empty = every netlet Gateway
    bind_override: str | None = None
    port_offset: int | None = None  # None: 0 as root, 8000 otherwise
    watch: bool = False
    watch_interval: float = 1.0
    admin: str | None = None  # "host:port"
    access_log: str | None = None  # path or "-"
    workers: int = 1
    netns: str | None = None
    use_uvloop: bool = True
    # In loopback mode (--bind-override 127.x) on the machine's own network, backends
    # outside loopback are not used (their traffic would leave through the machine's
    # network) unless allowed. Inside a namespace (--netns, the node lab) the
    # namespace's routes are the limit: pod IPs are what the backends are.
    allow_external_backends: bool = False
    limits: Limits = field(default_factory=Limits)
    program_file: str | None = None  # pickled {"ns/name": GatewayProgram}, see the doc

    @property
    def endpoint_filter(self) -> Callable[[str], bool] | None:
        override = self.bind_override
        if (
            self.netns is None
            and override
            and not self.allow_external_backends
            and loopback_only(override)
        ):
            return loopback_only
        return None

    @property
    def watched(self) -> tuple[str, ...]:
        return (self.program_file,) if self.program_file else self.paths

    @property
    def offset(self) -> int:
        return default_port_offset() if self.port_offset is None else self.port_offset


class LoadError(Exception):
    """The manifests could not be turned into programs; the message says why."""


def load_programs(options: ServeOptions) -> dict[str, GatewayProgram]:
    if options.program_file is not None:
        stored = read_program_file(options.program_file)
        if options.gateways:
            missing = [g for g in options.gateways if g not in stored]
            if missing:
                raise LoadError(f"{options.program_file} has no program for {', '.join(missing)}")
            stored = {g: stored[g] for g in options.gateways}
        return stored
    result = load_cluster(list(options.paths))
    if result.errors:
        shown = "\n".join(str(d) for d in result.errors[:20])
        more = f"\n... and {len(result.errors) - 20} more" if len(result.errors) > 20 else ""
        raise LoadError(f"the manifests have errors:\n{shown}{more}")
    programs = build_programs(result.state)
    if options.gateways:
        missing = [g for g in options.gateways if g not in programs]
        if missing:
            raise LoadError(f"no programmed netlet Gateway named {', '.join(missing)}")
        programs = {g: programs[g] for g in options.gateways}
    return dict(programs)


def write_program_file(path: str, programs: dict[str, GatewayProgram]) -> None:
    """Write programs for `program_file` atomically, readable by the owner only."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(programs, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def read_program_file(path: str) -> dict[str, GatewayProgram]:
    # Only files netlet wrote itself, in a directory only root writes (the lab's state).
    try:
        with open(path, "rb") as fh:
            programs = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise LoadError(f"cannot read programs from {path}: {exc}") from None
    if not isinstance(programs, dict) or not all(
        isinstance(k, str) and isinstance(v, GatewayProgram) for k, v in programs.items()
    ):
        raise LoadError(f"{path} does not hold gateway programs")
    return programs


def fingerprint(paths: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of every manifest file under `paths`: a change in any
    of them (or a file appearing or going) changes the value."""
    out = []
    for path in paths:
        if path == "-":
            continue
        root = Path(path)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for item in files:
            with contextlib.suppress(OSError):
                st = item.stat()
                out.append((str(item), st.st_mtime_ns, st.st_size))
    return tuple(out)


def enter_netns(name: str) -> None:
    """Move this process into the network namespace /run/netns/NAME (as `ip netns exec`)."""
    path = name if name.startswith("/") else f"/run/netns/{name}"
    fd = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _split_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class Runtime:
    """The proxy in one process."""

    def __init__(
        self, options: ServeOptions, report: Report = print, *, reuse_port: bool = False
    ) -> None:
        self.options = options
        self.report = report
        self.stats = Stats()
        self.access_log = AccessLog.open(options.access_log) if options.access_log else None
        self.holder = Holder(Snapshot(0, {}))
        self.server = ProxyServer(
            self.holder,
            limits=options.limits,
            stats=self.stats,
            access_log=self.access_log,
            bind_override=options.bind_override,
            port_offset=options.offset,
            reuse_port=reuse_port or options.workers > 1,
        )
        self.generation = 0
        self.last_reload: dict[str, Any] = {}
        self._fingerprint: tuple[tuple[str, int, int], ...] = ()
        self._watcher: asyncio.Task[None] | None = None
        self._admin: asyncio.Server | None = None
        self._admin_site: Site | None = None
        self.stats_source: Callable[[], Any] | None = None
        self.admin_address: tuple[str, int] | None = None

    async def start(self) -> list[str]:
        """Load and serve; raises LoadError when the first load fails."""
        self._fingerprint = fingerprint(self.options.watched)
        loop = asyncio.get_running_loop()
        programs = await loop.run_in_executor(None, load_programs, self.options)
        problems = await self._publish(programs)
        if self.options.watch:
            self._watcher = loop.create_task(self._watch())
        if self.options.admin:
            self.admin_address = await self.start_admin(self.options.admin)
        return problems

    async def _publish(self, programs: dict[str, GatewayProgram]) -> list[str]:
        self.generation += 1
        snapshot = Snapshot(self.generation, programs, self.options.endpoint_filter)
        problems = await self.server.apply(snapshot)
        self.last_reload = {
            "generation": self.generation,
            "time": round(time.time(), 3),
            "ok": True,
            "problems": problems,
        }
        return problems

    async def reload(self) -> bool:
        """Load again; on success publish, on failure keep the old snapshot. True if
        a new snapshot is in service."""
        loop = asyncio.get_running_loop()
        try:
            programs = await loop.run_in_executor(None, load_programs, self.options)
        except LoadError as exc:
            self.stats.bump("reload_failed")
            self.last_reload = {"time": round(time.time(), 3), "ok": False, "error": str(exc)}
            self.report(f"reload rejected, still serving generation {self.generation}: {exc}")
            return False
        except Exception as exc:  # a bug in building must not take the proxy down
            self.stats.bump("reload_failed")
            self.last_reload = {"time": round(time.time(), 3), "ok": False, "error": repr(exc)}
            self.report(f"reload failed, still serving generation {self.generation}: {exc!r}")
            return False
        problems = await self._publish(programs)
        self.stats.bump("reloads")
        self.report(f"reloaded: generation {self.generation}")
        for problem in problems:
            self.report(f"problem: {problem}")
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.options.watch_interval)
            current = fingerprint(self.options.watched)
            if current != self._fingerprint:
                self._fingerprint = current
                await self.reload()

    async def start_admin(self, where: str) -> tuple[str, int]:
        host, port = _split_hostport(where)
        handler = AdminHandler(self.admin_stats, self.config)
        site = Site("admin", port, handler, self.options.limits, Stats())
        self._admin_site = site
        loop = asyncio.get_running_loop()
        self._admin = await loop.create_server(lambda: H1Server(site), host, port)
        bound = self._admin.sockets[0].getsockname()
        return bound[0], bound[1]

    async def admin_stats(self) -> dict[str, Any]:
        if self.stats_source is not None:
            result: dict[str, Any] = await self.stats_source()
            return result
        return self.stats.snapshot()

    def config(self) -> dict[str, Any]:
        data = self.server.config()
        data["last_reload"] = self.last_reload
        data["port_offset"] = self.options.offset
        return data

    async def stop(self, timeout: float | None = None) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._admin is not None:
            self._admin.close()
            if self._admin_site is not None:
                await self._admin_site.drain(0)
        await self.server.close(timeout)
        if self.access_log is not None:
            self.access_log.close()


async def _main(options: ServeOptions, report: Report) -> int:
    runtime = Runtime(options, report)
    try:
        problems = await runtime.start()
    except LoadError as exc:
        report(f"cannot start: {exc}")
        return 2
    _announce(runtime, problems, report)
    await _wait_for_signals(runtime)
    await runtime.stop()
    return 0


def _announce(runtime: Runtime, problems: list[str], report: Report) -> None:
    for bind in runtime.server.binds:
        report(f"serving {bind}")
    for problem in problems:
        report(f"problem: {problem}")
    if runtime.options.admin:
        report(f"admin on http://{runtime.options.admin}/ (healthz, stats, metrics, config)")


async def _wait_for_signals(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: _settle(stop))
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(runtime.reload()))
    await stop


def run_async(coro_factory: Callable[[], Any], use_uvloop: bool) -> Any:
    """Run with uvloop when it is installed (and wanted), else asyncio's loop."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro_factory())
    return asyncio.run(coro_factory())


def run(options: ServeOptions, report: Report = print) -> int:
    """The blocking entry point of `netlet gateway serve`; returns the exit code."""
    if options.netns:
        enter_netns(options.netns)
    if options.workers > 1:
        return _supervise(options, report)
    result: int = run_async(lambda: _main(options, report), options.use_uvloop)
    return result


# Workers -----------------------------------------------------------------------------------


def _worker(options: ServeOptions, conn: multiprocessing.connection.Connection, index: int) -> None:
    def report(message: str) -> None:
        print(f"[worker {index}] {message}", flush=True)

    run_async(lambda: _worker_main(options, conn, report), options.use_uvloop)


async def _worker_main(
    options: ServeOptions, conn: multiprocessing.connection.Connection, report: Report
) -> None:
    worker_options = ServeOptions(**{**options.__dict__, "admin": None, "workers": 1})
    runtime = Runtime(worker_options, report, reuse_port=True)
    try:
        problems = await runtime.start()
    except LoadError as exc:
        conn.send({"error": str(exc)})
        return
    conn.send({"ready": [str(b) for b in runtime.server.binds], "problems": problems})
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    reloads: set[asyncio.Task[bool]] = set()

    def on_request() -> None:
        try:
            message = conn.recv()
        except EOFError:
            if not stop.done():
                stop.set_result(None)
            return
        if message == "stats":
            conn.send(runtime.stats.snapshot())
        elif message == "reload":
            reloads.add(loop.create_task(runtime.reload()))
        elif message == "stop" and not stop.done():
            stop.set_result(None)

    loop.add_reader(conn.fileno(), on_request)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: _settle(stop))
    await stop
    loop.remove_reader(conn.fileno())
    await runtime.stop()


def _supervise(options: ServeOptions, report: Report) -> int:
    ctx = multiprocessing.get_context("spawn")
    workers = []
    for index in range(options.workers):
        parent_conn, child_conn = ctx.Pipe()
        process = ctx.Process(target=_worker, args=(options, child_conn, index), daemon=True)
        process.start()
        workers.append((process, parent_conn))
    for index, (_, conn) in enumerate(workers):
        if not conn.poll(60):
            report(f"worker {index} did not start in time")
            _stop_workers(workers)
            return 2
        message = conn.recv()
        if "error" in message:
            report(f"cannot start: {message['error']}")
            _stop_workers(workers)
            return 2
        if index == 0:
            for line in message["ready"]:
                report(f"serving {line} ({options.workers} workers, SO_REUSEPORT)")
            for problem in message["problems"]:
                report(f"problem: {problem}")
    try:
        return int(run_async(lambda: _parent(options, workers, report), options.use_uvloop))
    finally:
        _stop_workers(workers)


async def _parent(
    options: ServeOptions,
    workers: list[tuple[Any, multiprocessing.connection.Connection]],
    report: Report,
) -> int:
    loop = asyncio.get_running_loop()
    lock = asyncio.Lock()

    async def stats() -> dict[str, Any]:
        async with lock:
            return await loop.run_in_executor(None, _collect, workers)

    admin: asyncio.Server | None = None
    if options.admin:
        host, port = _split_hostport(options.admin)

        def config() -> dict[str, Any]:
            return {"workers": options.workers, "pids": [p.pid for p, _ in workers]}

        site = Site("admin", port, AdminHandler(stats, config), options.limits, Stats())
        admin = await loop.create_server(lambda: H1Server(site), host, port)
        report(f"admin on http://{options.admin}/ (healthz, stats, metrics, config)")
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: _settle(stop))

    def reload_all() -> None:
        for _, conn in workers:
            with contextlib.suppress(OSError):
                conn.send("reload")

    loop.add_signal_handler(signal.SIGHUP, reload_all)

    async def watch_workers() -> None:
        while True:
            await asyncio.sleep(0.5)
            for index, (process, _) in enumerate(workers):
                if not process.is_alive():
                    report(f"worker {index} exited ({process.exitcode}); stopping")
                    if not stop.done():
                        stop.set_result(None)
                    return

    watcher = loop.create_task(watch_workers())
    await stop
    watcher.cancel()
    if admin is not None:
        admin.close()
    return 0


def _collect(workers: list[tuple[Any, multiprocessing.connection.Connection]]) -> dict[str, Any]:
    snapshots = []
    for _, conn in workers:
        try:
            conn.send("stats")
            if conn.poll(2):
                snapshots.append(conn.recv())
        except (OSError, EOFError):
            continue
    return merge(snapshots)


def _stop_workers(workers: list[tuple[Any, multiprocessing.connection.Connection]]) -> None:
    for _, conn in workers:
        with contextlib.suppress(OSError):
            conn.send("stop")
    deadline = time.monotonic() + 15
    for process, _ in workers:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.terminate()
            process.join(2)
