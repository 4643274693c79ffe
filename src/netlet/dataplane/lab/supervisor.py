"""The workload supervisor: one daemon per lab keeping one workload per pod alive.

Run as `python -m netlet.dataplane.lab.supervisor LAB_DIR`. It detaches (the
launcher's process exits at once, the daemon is reparented), then:

- reads `LAB_DIR/workloads.json` (what every pod serves; `generation` counts
  edits) and forks one child per pod; the child enters the pod's namespace
  (`setns`), names itself `netlet-wl`, dies with the supervisor
  (PR_SET_PDEATHSIG) and serves (workload.py); entries of kind `gateway` are a
  Gateway's proxy (`netlet-gw`, gateway_proxy.py) in the Gateway's namespace;
- a child reports `R` (all ports bound) or `E message` (a port clash...) on a pipe;
- a child that exits is restarted with backoff (0.1 s doubling to 5 s, reset
  after 10 s of running), like kubelet's CrashLoopBackOff but quicker;
- SIGHUP re-reads the workloads file: removed or changed pods' children are
  stopped, new ones started; SIGTERM stops every child and exits;
- every change is written atomically to `LAB_DIR/status.json`: per pod its pid,
  state (starting, ready, failed, backoff), restarts, last exit and message.

Single-threaded (select on pipes and a signal wake-up pipe) so forking is safe.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlet.dataplane.lab import syscalls, workload

WORKLOADS_FILE = "workloads.json"
STATUS_FILE = "status.json"
PID_FILE = "supervisor.pid"
LOG_FILE = "supervisor.log"
PROCESS_NAME = "netlet-wl"
GATEWAY_PROCESS_NAME = "netlet-gw"
SUPERVISOR_NAME = "netlet-sup"
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
BACKOFF_RESET_AFTER = 10.0


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by {name}"
    return f"exit code {os.WEXITSTATUS(status)}"


@dataclass
class Worker:
    key: str
    spec: dict[str, Any]
    pid: int | None = None
    pipe: int | None = None
    state: str = "starting"
    restarts: int = 0
    last_exit: str | None = None
    message: str | None = None
    ports: dict[str, str] = field(default_factory=dict)
    started: float = 0.0
    restart_at: float = 0.0
    backoff: float = BACKOFF_FIRST
    buffer: bytes = b""

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "state": self.state,
            "restarts": self.restarts,
            "lastExit": self.last_exit,
            "message": self.message,
            "ports": self.ports,
            "since": self.started,
        }


class Supervisor:
    def __init__(self, lab_dir: Path) -> None:
        self.dir = lab_dir
        self.workers: dict[str, Worker] = {}
        self.generation = -1
        self.stopping = False
        self.reload = True
        self.dirty = True
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # Signals ---------------------------------------------------------------------------

    def install_signals(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def _on_stop(self, *_: Any) -> None:
        self.stopping = True

    def _on_reload(self, *_: Any) -> None:
        self.reload = True

    # Children --------------------------------------------------------------------------

    def _spawn(self, worker: Worker) -> None:
        r, w = os.pipe2(os.O_CLOEXEC)
        me = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                os.close(r)
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                os.close(self.wake_r)
                os.close(self.wake_w)
                for other in self.workers.values():
                    if other.pipe is not None:
                        os.close(other.pipe)
                syscalls.die_with_parent()
                if os.getppid() != me:
                    os._exit(1)
                gateway = worker.spec.get("kind") == "gateway"
                syscalls.set_process_name(GATEWAY_PROCESS_NAME if gateway else PROCESS_NAME)
                syscalls.setns_path(worker.spec["netns"])
                if gateway:
                    # Imported in the child only: the supervisor itself stays light.
                    from netlet.dataplane.lab import gateway_proxy

                    gateway_proxy.serve(worker.spec, w)
                else:
                    workload.serve(worker.spec, w)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:  # report anything, never return into the parent's code
                with contextlib.suppress(OSError):
                    os.write(w, f"E {type(exc).__name__}: {exc}\n".encode())
                code = 2
            finally:
                os._exit(code)
        os.close(w)
        worker.pid, worker.pipe = pid, r
        worker.state, worker.started, worker.buffer = "starting", time.monotonic(), b""
        self.dirty = True

    def _stop(self, worker: Worker) -> None:
        if worker.pid is not None:
            try:
                os.kill(worker.pid, signal.SIGKILL)
                os.waitpid(worker.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if worker.pipe is not None:
            os.close(worker.pipe)
        worker.pid = worker.pipe = None

    def _read_pipe(self, worker: Worker) -> None:
        assert worker.pipe is not None
        try:
            chunk = os.read(worker.pipe, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            os.close(worker.pipe)
            worker.pipe = None
            return
        worker.buffer += chunk
        while b"\n" in worker.buffer:
            line, worker.buffer = worker.buffer.split(b"\n", 1)
            text = line.decode(errors="replace")
            if text.startswith("R "):
                worker.state, worker.message = "ready", None
                worker.ports = json.loads(text[2:])
            elif text.startswith("E "):
                worker.state, worker.message = "failed", text[2:]
            self.dirty = True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for worker in self.workers.values():
                if worker.pid != pid:
                    continue
                now = time.monotonic()
                if now - worker.started > BACKOFF_RESET_AFTER:
                    worker.backoff = BACKOFF_FIRST
                worker.last_exit = describe_exit(status)
                worker.restarts += 1
                if worker.pipe is not None:
                    self._read_pipe_all(worker)
                worker.pid = None
                if worker.state != "failed":
                    worker.state = "backoff"
                worker.restart_at = now + worker.backoff
                worker.backoff = min(worker.backoff * 2, BACKOFF_MAX)
                self.dirty = True

    def _read_pipe_all(self, worker: Worker) -> None:
        while worker.pipe is not None:
            ready, _, _ = select.select([worker.pipe], [], [], 0)
            if not ready:
                os.close(worker.pipe)
                worker.pipe = None
                return
            self._read_pipe(worker)

    # Plan ------------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            data = json.loads((self.dir / WORKLOADS_FILE).read_text())
        except (OSError, ValueError) as exc:
            print(f"netlet supervisor: cannot read workloads: {exc}", file=sys.stderr)
            return
        wanted = {p["key"]: p for p in data.get("pods", [])}
        for key in list(self.workers):
            if key not in wanted or wanted[key] != self.workers[key].spec:
                self._stop(self.workers.pop(key))
        for key, spec in wanted.items():
            if key not in self.workers:
                worker = Worker(key, spec)
                self.workers[key] = worker
                self._spawn(worker)
        self.generation = int(data.get("generation", 0))
        self.dirty = True

    def _write_status(self) -> None:
        status = {
            "supervisorPid": os.getpid(),
            "generation": self.generation,
            "updated": time.time(),
            "workers": {k: w.as_dict() for k, w in sorted(self.workers.items())},
        }
        write_atomic(self.dir / STATUS_FILE, json.dumps(status, indent=1))
        self.dirty = False

    # Loop ------------------------------------------------------------------------------

    def run(self) -> None:
        self.install_signals()
        while not self.stopping:
            if self.reload:
                self.reload = False
                self._load()
            self._reap()
            now = time.monotonic()
            for worker in self.workers.values():
                if worker.pid is None and now >= worker.restart_at:
                    self._spawn(worker)
            if self.dirty:
                self._write_status()
            pipes = {w.pipe: w for w in self.workers.values() if w.pipe is not None}
            due = [w.restart_at - now for w in self.workers.values() if w.pid is None]
            timeout = max(0.0, min([1.0, *due]))
            try:
                ready, _, _ = select.select([self.wake_r, *pipes], [], [], timeout)
            except InterruptedError:
                continue
            for fd in ready:
                if fd == self.wake_r:
                    try:
                        while os.read(self.wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                elif fd in pipes:
                    self._read_pipe(pipes[fd])
        for worker in self.workers.values():
            self._stop(worker)
            worker.state = "stopped"
        self._write_status()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m netlet.dataplane.lab.supervisor LAB_DIR", file=sys.stderr)
        raise SystemExit(2)
    lab_dir = Path(args[0])
    # Detach: the launcher waits only for this first process.
    if os.fork() != 0:
        os._exit(0)
    os.setsid()
    syscalls.set_process_name(SUPERVISOR_NAME)
    write_atomic(lab_dir / PID_FILE, f"{os.getpid()}\n")
    Supervisor(lab_dir).run()


if __name__ == "__main__":
    main()
