"""`netlet gateway serve` as a user runs it: a subprocess on manifests, stopped by
SIGTERM; with two SO_REUSEPORT workers; and (root) inside a network namespace at
the Gateway's own address.

Spec: the issue's CLI contract (`-f DIR [--watch] [--bind-override 127.0.0.1]`,
port mapping for privileged ports, admin endpoint) and Gateway API
GatewaySpec.Addresses (the proxy listens at the Gateway's address).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.proxy.backends import EchoBackend, LoopThread, free_port
from tests.proxy.harness import gateway, manifests, service

NETLET = [sys.executable, "-m", "netlet.cli.main"]


def fetch(url: str) -> list[str]:
    """A command printing the HTTP status of GET `url` (exit 0 only on 2xx)."""
    code = (
        "import sys, urllib.request\n"
        f"r = urllib.request.urlopen({url!r}, timeout=3)\n"
        "print(r.status); sys.exit(0 if r.status < 300 else 1)"
    )
    return [sys.executable, "-c", code]


def route(backend: str = "svc-a") -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs: [{{name: {backend}, port: 80}}]
"""


class Served:
    def __init__(self, args: list[str], admin_port: int, prefix: list[str] | None = None) -> None:
        self.admin = f"http://127.0.0.1:{admin_port}"
        self.process = subprocess.Popen(
            [
                *(prefix or []),
                *NETLET,
                "gateway",
                "serve",
                *args,
                "--admin",
                f"127.0.0.1:{admin_port}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, timeout: float = 30, prefix: list[str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"serve exited: {self.process.stdout.read() if self.process.stdout else ''}"
                )
            try:
                if prefix is None:
                    if httpx.get(f"{self.admin}/healthz", timeout=1).status_code == 200:
                        return
                else:
                    done = subprocess.run(
                        [*prefix, *fetch(f"{self.admin}/healthz")],
                        capture_output=True,
                        timeout=5,
                        check=False,
                    )
                    if done.returncode == 0:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("serve did not become ready")

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate(timeout=10)
        return self.process.returncode, out


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture
def echo(loop_thread: LoopThread) -> Iterator[EchoBackend]:
    backend = loop_thread.run(EchoBackend("a").start())
    try:
        yield backend
    finally:
        loop_thread.run(backend.stop())


@pytest.fixture
def launched() -> Iterator[list[Served]]:
    processes: list[Served] = []
    try:
        yield processes
    finally:
        for served in processes:
            served.stop()


def test_serve_runs_until_sigterm_and_maps_privileged_ports(tmp_path: Path, echo, launched):
    offset = free_port() - 80
    (tmp_path / "gw.yaml").write_text(
        manifests(
            gateway("- {name: http, port: 80, protocol: HTTP}"),
            service("svc-a", [echo.port]),
            route(),
        )
    )
    served = Served(
        ["-f", str(tmp_path), "--bind-override", "127.0.0.1", "--port-offset", str(offset)],
        free_port(),
    )
    launched.append(served)
    served.wait_ready()
    with httpx.Client(timeout=10) as c:
        response = c.get(f"http://127.0.0.1:{80 + offset}/cli", headers={"host": "cli.example.com"})
        config = c.get(f"{served.admin}/config").json()
    assert response.headers["x-backend"] == "a"
    assert echo.requests[-1].path == "/cli"
    assert config["listeners"][0]["port"] == 80
    assert config["listeners"][0]["bound"] == f"127.0.0.1:{80 + offset}"
    code, out = served.stop()
    assert code == 0
    assert f"serving default/gw http 80/tcp -> 127.0.0.1:{80 + offset}" in out


def test_serve_exits_2_with_a_clear_message_on_bad_manifests(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text(
        manifests(gateway("- {name: http, port: 99999, protocol: HTTP}"))
    )
    done = subprocess.run(
        [*NETLET, "gateway", "serve", "-f", str(tmp_path), "--bind-override", "127.0.0.1"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "spec.listeners[0].port" in done.stderr


def test_two_workers_share_the_port_and_the_admin_adds_their_counters(
    tmp_path: Path, echo, launched
):
    port = free_port()
    (tmp_path / "gw.yaml").write_text(
        manifests(
            gateway(f"- {{name: http, port: {port}, protocol: HTTP}}"),
            service("svc-a", [echo.port]),
            route(),
        )
    )
    served = Served(
        ["-f", str(tmp_path), "--bind-override", "127.0.0.1", "--workers", "2"], free_port()
    )
    launched.append(served)
    served.wait_ready(timeout=60)
    for _ in range(40):
        # A new connection per request lets the kernel spread them over both workers.
        with httpx.Client(timeout=10) as c:
            assert c.get(f"http://127.0.0.1:{port}/w").status_code == 200
    with httpx.Client(timeout=10) as c:
        stats = c.get(f"{served.admin}/stats").json()
        config = c.get(f"{served.admin}/config").json()
    assert stats["workers"] == 2
    assert stats["requests"][f"default/gw:{port} HTTP/1.1"] == 40
    assert len(config["pids"]) == 2
    assert sum(1 for v in stats["connections_total"].values() if v) >= 1
    code, _ = served.stop()
    assert code == 0


@pytest.mark.root
def test_serve_inside_a_network_namespace_listens_at_the_gateway_address(tmp_path: Path, launched):
    namespace = f"netlet-pxt-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    backend = None
    try:
        inside = ["ip", "netns", "exec", namespace]
        subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
        # The Gateway's address lives in its namespace (the node lab gives it a link).
        subprocess.run([*inside, "ip", "addr", "add", "192.0.2.20/32", "dev", "lo"], check=True)
        backend_port = 18080
        backend = subprocess.Popen(
            [
                *inside,
                sys.executable,
                "-m",
                "http.server",
                str(backend_port),
                "--bind",
                "127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=tmp_path,
        )
        (tmp_path / "gw.yaml").write_text(
            manifests(
                gateway("- {name: http, port: 80, protocol: HTTP}").replace(
                    "spec:\n", "spec:\n  addresses: [{type: IPAddress, value: 192.0.2.20}]\n", 1
                ),
                service("svc-a", [backend_port]),
                route(),
            )
        )
        served = Served(["-f", str(tmp_path / "gw.yaml"), "--netns", namespace], 19901)
        launched.append(served)
        served.wait_ready(prefix=inside)
        deadline = time.monotonic() + 10
        while True:
            done = subprocess.run(
                [*inside, *fetch("http://192.0.2.20/gw.yaml")],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            if done.stdout.strip() == "200" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert done.stdout.strip() == "200"
        code, out = served.stop()
        assert code == 0
        assert "serving default/gw http 80/tcp -> 192.0.2.20:80" in out
    finally:
        if backend is not None:
            backend.terminate()
            backend.wait(10)
        subprocess.run(["ip", "netns", "del", namespace], check=False)
        assert (
            namespace
            not in subprocess.run(
                ["ip", "netns", "list"], capture_output=True, text=True, check=False
            ).stdout
        )
