"""netlet's gateway proxy vs nginx: the same route to the same backend, the same load.

Both proxies forward `GET /` on a loopback port to one backend (a separate nginx
answering `200 ok` from memory, so the backend is never the bottleneck), with
keep-alive connections to the backend and access logs off. wrk drives each for
a bounded time with the same connections; we print requests/s, p50 and p99
latency and the netlet/nginx ratio, with 1 worker process each and with 2
(netlet: `--workers 2`, SO_REUSEPORT; nginx: `worker_processes 2`).

    .venv/bin/python benchmarks/gateway_rps.py [--duration 10] [--connections 50]
        [--workers 1,2] [--vary [header|path|regex]] [--profile]

`--vary header` (or just `--vary`) gives every request a different X-Request-Id,
a header no route matches on: the proxy's decision memo (keyed on what routing
reads) still applies. `--vary path` gives every request a different path
(`/item/N`, all routed by the same catch-all rule): the memo keys a path by what
the route tables can tell apart (`PathClasses`), so these still share a decision.
`--vary regex` sends the same paths through a RegularExpression match
(`/item/[0-9]+`; nginx gets the same regex location): a regular expression reads
the whole path, so no two requests share a key and the gateway brain's
`match_http` runs for every request.

`--profile` samples the netlet worker with py-spy during one extra 1-worker run
and prints where the time goes (own time by function, and by module).

Needs nginx (Debian nginx-light) and wrk; everything binds 127.0.0.1 only and
every process started here is stopped at the end, also on errors. Target
(issue 7): netlet >= 0.5x nginx requests/s. The machine has 2 cores shared by
wrk, the proxy and the backend, so absolute figures are modest; read the ratio.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETLET = [sys.executable, "-m", "netlet.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


NGINX_COMMON = """\
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
master_process on;
worker_processes {workers};
events {{ worker_connections 4096; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
{body}
}}
"""

BACKEND = """\
  server {{
    listen 127.0.0.1:{port} reuseport;
    location / {{ return 200 "ok\\n"; }}
  }}
"""

PROXY = """\
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port} reuseport;
    location {location} {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_buffering on;
    }}
  }}
"""

MANIFESTS = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: netlet}}
spec: {{controllerName: netlet.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: bench, namespace: default}}
spec:
  gatewayClassName: netlet
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: v1
kind: Service
metadata: {{name: backend, namespace: default}}
spec:
  ports: [{{name: http, port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: backend-1, namespace: default, labels: {{kubernetes.io/service-name: backend}}}}
addressType: IPv4
endpoints: [{{addresses: [127.0.0.1]}}]
ports: [{{name: http, port: {backend}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: bench, namespace: default}}
spec:
  parentRefs: [{{name: bench}}]
  rules:
  - {matches}backendRefs: [{{name: backend, port: 80}}]
"""

# What the route matches on: everything, or (--vary regex) a regular expression.
VARY_TITLES = {
    "header": "a different X-Request-Id on every request",
    "path": "a different path on every request",
    "regex": "a different path on every request, matched by a regular expression",
}

# (nginx location, HTTPRoute rule matches); main() picks one for the whole run.
ROUTE_MATCH = {
    "any": ("/", ""),
    "regex": (
        "~ ^/item/[0-9]+",
        "matches: [{path: {type: RegularExpression, value: '/item/[0-9]+'}}]\n    ",
    ),
}
ROUTE = list(ROUTE_MATCH["any"])


@contextlib.contextmanager
def process(args: list[str], **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def nginx(workdir: Path, name: str, workers: int, body: str) -> Iterator[subprocess.Popen[bytes]]:
    directory = workdir / name
    directory.mkdir()
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_COMMON.format(dir=directory, workers=workers, body=body))
    with process(["nginx", "-c", str(conf), "-p", str(directory)]) as proc:
        yield proc


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float = 0.0  # proxy CPU time per request (all its processes), microseconds


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


# wrk scripts for --vary: a new X-Request-Id per request, or a new path.
VARY_SCRIPTS = {
    "header": """\
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, {["Host"] = "bench.example.com", ["X-Request-Id"] = tostring(counter)})
end
""",
    "path": """\
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/item/" .. tostring(counter), {["Host"] = "bench.example.com"})
end
""",
}
# The same paths, routed by a regular expression (ROUTE_MATCH).
VARY_SCRIPTS["regex"] = VARY_SCRIPTS["path"]
SCRIPT: list[str] = []


def wrk(port: int, duration: int, connections: int, threads: int) -> Result:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-H",
            "Host: bench.example.com",
            *SCRIPT,
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses:\s+(\d+)", r"Socket errors:.*?(\d+)"):
        found = re.search(pattern, out)
        if found:
            errors += int(found.group(1))
    return Result(rps, p50, p99, errors)


def run_netlet(
    workdir: Path, backend: int, workers: int
) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    manifests = workdir / f"netlet-{workers}-{port}"
    manifests.mkdir()
    (manifests / "bench.yaml").write_text(
        MANIFESTS.format(port=port, backend=backend, matches=ROUTE[1])
    )
    args = [*NETLET, "gateway", "serve", "-f", str(manifests), "--bind-override", "127.0.0.1"]
    if workers > 1:
        args += ["--workers", str(workers)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    return proc, port, manifests


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (nginx workers, netlet worker processes)."""
    out = [pid]
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for text in child.read_text().split():
            out.extend(tree(int(text)))
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by `pid` and its descendants."""
    total = 0
    for each in tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def median(runs: list[Result]) -> Result:
    runs = sorted(runs, key=lambda r: r.rps)
    return runs[len(runs) // 2]


def measure(port: int, pid: int, args: argparse.Namespace, rounds: int) -> Result:
    """One warm-up second, then `rounds` runs of `args.duration`; the median run,
    with the proxy's CPU time per request."""
    wrk(port, 1, args.connections, args.threads)  # warm-up: connections, pools, caches
    runs = []
    for _ in range(rounds):
        before = cpu_seconds(pid)
        result = wrk(port, args.duration, args.connections, args.threads)
        used = cpu_seconds(pid) - before
        result.cpu_us = used * 1e6 / max(1.0, result.rps * args.duration)
        runs.append(result)
    return median(runs)


def profile(workdir: Path, backend: int, args: argparse.Namespace) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("py-spy not found: install it (pip install py-spy) for --profile")
        return
    proc, port, _ = run_netlet(workdir, backend, 1)
    try:
        wait_port(port)
        raw = workdir / "profile.txt"
        wrk(port, 1, args.connections, args.threads)
        sampler = subprocess.Popen(
            [
                py_spy,
                "record",
                "-p",
                str(proc.pid),
                "-d",
                str(args.duration),
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(raw),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wrk(port, args.duration, args.connections, args.threads)
        sampler.wait(args.duration + 30)
    finally:
        stop(proc)
    own: collections.Counter[str] = collections.Counter()
    modules: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        leaf = stack.split(";")[-1]
        own[leaf] += count
        match = re.search(r"\(([^)]*?)(?::\d+)?\)$", leaf)
        path = match.group(1) if match else leaf
        modules[_module_of(path)] += count
    print(f"\nprofile of one netlet worker under load ({total} samples, own time):")
    for name, count in own.most_common(20):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("by module:")
    for name, count in modules.most_common(12):
        print(f"  {100 * count / total:5.1f}%  {name}")


def _module_of(path: str) -> str:
    for marker, label in (
        ("netlet/dataplane/proxy/", "netlet proxy: "),
        ("netlet/gateway/", "netlet gateway brain: "),
        ("asyncio/", "asyncio: "),
        ("site-packages/", ""),
    ):
        if marker in path:
            return label + path.split(marker, 1)[1].split("/", maxsplit=1)[0]
    return os.path.basename(path) or path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per run (bounded)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved runs per proxy (median kept)"
    )
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy profile of netlet (1 worker)"
    )
    parser.add_argument(
        "--vary",
        nargs="?",
        const="header",
        choices=sorted(VARY_SCRIPTS),
        help="a different X-Request-Id (header) or path (path, regex) on every request",
    )
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (scripts/setup installs nginx-light and wrk)")
            return 2
    workers_list = [int(w) for w in args.workers.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="netlet-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # nginx workers (nobody) read their config dir
        if args.vary:
            (workdir / "vary.lua").write_text(VARY_SCRIPTS[args.vary])
            SCRIPT[:] = ["-s", str(workdir / "vary.lua")]
        if args.vary == "regex":
            ROUTE[:] = ROUTE_MATCH["regex"]
        backend = free_port()
        with nginx(workdir, "backend", 1, BACKEND.format(port=backend)):
            wait_port(backend)
            for workers in workers_list:
                proxy_port = free_port()
                with nginx(
                    workdir,
                    f"proxy-{workers}",
                    workers,
                    PROXY.format(port=proxy_port, backend=backend, location=ROUTE[0]),
                ) as reference:
                    wait_port(proxy_port)
                    proc, port, _ = run_netlet(workdir, backend, workers)
                    try:
                        wait_port(port, timeout=60)
                        # Interleave the two so a burst of load from elsewhere hits both.
                        ours_runs, ref_runs = [], []
                        for _ in range(args.rounds):
                            ref_runs.append(measure(proxy_port, reference.pid, args, 1))
                            ours_runs.append(measure(port, proc.pid, args, 1))
                        ours = median(ours_runs)
                        ref = median(ref_runs)
                    finally:
                        stop(proc)
                rows.append((workers, ours, ref))
            if args.profile:
                profile(workdir, backend, args)
    print(
        f"\ngateway proxy, GET / through one HTTPRoute to one backend; wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration}s x {args.rounds} interleaved rounds (median); "
        f"{VARY_TITLES[args.vary] + '; ' if args.vary else ''}"
        f"{os.cpu_count()} cores shared by wrk, proxy and backend"
    )
    print(
        f"{'workers':>7}  {'proxy':<7} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU us/req':>10} {'errors':>7}"
    )
    for workers, ours, ref in rows:
        for name, result in (("netlet", ours), ("nginx", ref)):
            print(
                f"{workers:>7}  {name:<7} {result.rps:>10.0f} {result.p50_ms:>8.2f} "
                f"{result.p99_ms:>8.2f} {result.cpu_us:>10.1f} {result.errors:>7}"
            )
        ratio = ours.rps / ref.rps if ref.rps else 0.0
        verdict = "meets" if ratio >= 0.5 else "below"
        print(f"{workers:>7}  ratio netlet/nginx: {ratio:.2f}x ({verdict} the 0.5x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
