"""One Gateway's proxy in the node lab: what the supervisor runs in the Gateway's
namespace (gateways.py made the namespace and the program file).

`serve(spec, ready_fd)` is `netlet gateway serve` for that one Gateway, on the
program file the lab wrote, with the admin endpoint on the namespace's loopback.
It binds every listener, then reports on `ready_fd` as the workloads do: `R
<json>` (each bound port and what serves it, and any listener that could not be
served) or `E <message>` when nothing could be served; then it serves until
SIGTERM (or SIGKILL from the supervisor, or the supervisor's death).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any


def serve(spec: dict[str, Any], ready_fd: int) -> None:
    from netlet.dataplane.proxy.serve import ServeOptions, run_async

    options = ServeOptions(
        paths=(),
        gateways=(str(spec["gateway"]),),
        port_offset=0,
        admin=spec.get("admin"),
        netns=str(spec["netns"]),  # entered already by the supervisor
        program_file=str(spec["program"]),
    )
    code = run_async(lambda: _main(options, ready_fd), use_uvloop=True)
    raise SystemExit(code)


def _tell(fd: int, line: str) -> None:
    os.write(fd, line.replace("\n", " ").encode() + b"\n")


async def _main(options: Any, ready_fd: int) -> int:
    from netlet.dataplane.proxy.serve import LoadError, Runtime

    def report(message: str) -> None:
        print(f"netlet gateway {options.gateways[0]}: {message}", file=sys.stderr, flush=True)

    runtime = Runtime(options, report)
    try:
        problems = await runtime.start()
    except (LoadError, OSError) as exc:
        _tell(ready_fd, f"E {exc}")
        return 3
    binds = runtime.server.binds
    if not binds:
        _tell(ready_fd, "E nothing to serve: " + "; ".join(problems or ["no listener"]))
        await runtime.stop(0)
        return 3
    states = {
        f"{b.bind_port}/{b.transport.upper()}": f"serving {b.kind} on {b.address}" for b in binds
    }
    for i, problem in enumerate(problems):
        states[f"problem{i}"] = problem
    _tell(ready_fd, "R " + json.dumps(states))
    os.close(ready_fd)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping)
    await stop
    await runtime.stop(1.0)
    return 0
