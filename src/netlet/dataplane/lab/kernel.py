"""Thin, explicit access to the kernel: network namespaces, sysctls, processes.

Namespaces are entered per *thread* with setns(2) and always left again
(`entered`), so a socket, a netlink handle or a child process created inside the
block belongs to that namespace while the rest of the program stays where it
was. Namespaces are created as `ip netns add` does (unshare a thread, bind-mount
its namespace on /run/netns/NAME) without forking. pyroute2 is used for netlink,
opened inside the namespace it should talk to.

Invariant: nothing here ever changes the machine's own namespace; a thread that
cannot return to its namespace stops the program (it would act on the wrong
network afterwards).
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from pyroute2 import IPRoute  # type: ignore[import-untyped]

from netlet.dataplane.lab import syscalls
from netlet.dataplane.lab.names import NETNS_DIR

MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

_libc = syscalls.libc
_check = syscalls.check
setns = syscalls.setns


def _current_ns_fd() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


@contextmanager
def entered(path: str | Path) -> Iterator[None]:
    """Run the block with this thread inside the network namespace at `path`."""
    home = _current_ns_fd()
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            try:
                setns(home)
            except OSError as exc:  # pragma: no cover - the thread is lost
                os.write(2, f"netlet: cannot leave namespace {path}: {exc}\n".encode())
                os._exit(70)
    finally:
        os.close(home)


@contextmanager
def netlink(path: str | Path) -> Iterator[IPRoute]:
    """An rtnetlink handle bound to the namespace at `path`."""
    with entered(path):
        ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


_netns_dir_lock = threading.Lock()


def _ensure_netns_dir() -> None:
    """Make /run/netns a shared mount point, as iproute2 does, so bind mounts of
    namespaces made here are seen by `ip netns` in every mount namespace. Once per
    process; the lock keeps parallel pod creation from stacking bind mounts."""
    with _netns_dir_lock:
        _share_netns_dir()


@functools.cache
def _share_netns_dir() -> None:
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    target = str(NETNS_DIR).encode()
    if _libc.mount(b"", target, b"none", MS_SHARED | MS_REC, None) != 0:
        _check(_libc.mount(target, target, b"none", MS_BIND | MS_REC, None), "bind /run/netns")
        _check(_libc.mount(b"", target, b"none", MS_SHARED | MS_REC, None), "share /run/netns")


def netns_create(name: str) -> int:
    """Create the named network namespace; return its inode. Fails if it exists."""
    _ensure_netns_dir()
    path = NETNS_DIR / name
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    home = _current_ns_fd()
    try:
        try:
            _check(_libc.unshare(syscalls.CLONE_NEWNET), "unshare")
            try:
                _check(
                    _libc.mount(
                        b"/proc/thread-self/ns/net", str(path).encode(), b"none", MS_BIND, None
                    ),
                    f"bind netns {name}",
                )
            finally:
                setns(home)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    finally:
        os.close(home)
    return netns_inode(name)


def netns_delete(name: str) -> bool:
    """Unmount and remove the named namespace; False when it was not there."""
    path = NETNS_DIR / name
    if not path.exists():
        return False
    _libc.umount2(str(path).encode(), MNT_DETACH)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def netns_exists(name: str) -> bool:
    """True when the name is bound to a namespace (a bare file left by a crash
    between create and bind has the directory's device, not nsfs's)."""
    try:
        return os.stat(NETNS_DIR / name).st_dev != os.stat(NETNS_DIR).st_dev
    except OSError:
        return False


def netns_inode(name: str) -> int:
    return os.stat(NETNS_DIR / name).st_ino


def list_netns(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def pids_in_netns(inodes: Iterable[int]) -> dict[int, int]:
    """pid -> netns inode for every process whose network namespace is one of `inodes`."""
    wanted = set(inodes)
    found: dict[int, int] = {}
    if not wanted:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            inode = os.stat(f"/proc/{entry.name}/ns/net").st_ino
        except OSError:
            continue
        if inode in wanted:
            found[int(entry.name)] = inode
    return found


def write_sysctl(netns: str | Path, values: dict[str, str]) -> None:
    """Write net.* sysctls inside a namespace (/proc/sys/net is per namespace)."""
    with entered(netns):
        for key, value in values.items():
            path = Path("/proc/sys") / key.replace(".", "/")
            if key.startswith("net.ipv6.") and not path.exists():
                continue  # IPv6 disabled on this machine: nothing to tune
            with open(path, "w") as f:
                f.write(value)


def read_sysctl(netns: str | Path, key: str) -> str:
    with entered(netns), open(Path("/proc/sys") / key.replace(".", "/")) as f:
        return f.read().strip()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_and_wait(pids: Iterable[int], timeout: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL after `timeout`; return the pids still alive at the end."""
    pids = [p for p in pids if pid_alive(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline:
            pids = [p for p in pids if pid_alive(p)]
            if not pids:
                return []
            time.sleep(0.02)
    return pids


def is_root() -> bool:
    return os.geteuid() == 0


def errno_name(err: int | None) -> str:
    return errno.errorcode.get(err or 0, f"errno {err}")
