"""The few Linux system calls the lab needs that Python 3.11 lacks, via ctypes.

Kept free of heavy imports: the workload supervisor and its children load this
module, and they must start in milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15

libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd`."""
    check(libc.setns(fd, CLONE_NEWNET), "setns")


def setns_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd)
    finally:
        os.close(fd)


def set_process_name(name: str) -> None:
    """What `ps -o comm` shows (15 bytes at most)."""
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
