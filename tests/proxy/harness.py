"""Manifests for proxy end-to-end tests, and a harness running the real proxy on them.

Convention: backends are selector-less Services whose EndpointSlices point at
in-test servers on 127.0.0.1; Gateway listener ports are free high ports, so the
proxy binds them as they are on 127.0.0.1 (`--bind-override 127.0.0.1`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from netlet.dataplane.proxy.limits import Limits
from netlet.dataplane.proxy.serve import Runtime, ServeOptions
from tests.proxy.backends import LoopThread, free_port

GATEWAY_CLASS = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: netlet}
spec: {controllerName: netlet.dev/gateway-controller}
"""


def gateway(listeners: str, name: str = "gw", namespace: str = "default") -> str:
    return (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        "spec:\n  gatewayClassName: netlet\n  listeners:\n"
        + textwrap.indent(textwrap.dedent(listeners).strip("\n"), "  ")
        + "\n"
    )


def service(
    name: str,
    ports: list[int],
    *,
    port: int = 80,
    namespace: str = "default",
    app_protocol: str | None = None,
    protocol: str = "TCP",
) -> str:
    """A selector-less Service `name`:`port` whose endpoints are 127.0.0.1:`ports`."""
    app = f", appProtocol: {app_protocol}" if app_protocol else ""
    endpoints = "\n".join(
        f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-{i}, namespace: {namespace}, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
endpoints: [{{addresses: [127.0.0.1]}}]
ports: [{{name: p, port: {p}, protocol: {protocol}{app}}}]"""
        for i, p in enumerate(ports)
    )
    return (
        f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  ports: [{{name: p, port: {port}, protocol: {protocol}{app}}}]
"""
        + endpoints
        + "\n"
    )


def tls_secret(name: str, cert_pem: bytes, key_pem: bytes, namespace: str = "default") -> str:
    crt = base64.b64encode(cert_pem).decode()
    key = base64.b64encode(key_pem).decode()
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"type: kubernetes.io/tls\ndata:\n  tls.crt: {crt}\n  tls.key: {key}\n"
    )


def manifests(*docs: str) -> str:
    return "\n---\n".join(doc.strip("\n") for doc in (GATEWAY_CLASS, *docs)) + "\n"


class Proxy:
    """The real proxy (serve.Runtime) on a manifest directory, in the loop thread."""

    def __init__(self, loop_thread: LoopThread, directory: Path, **options: Any) -> None:
        self.loop_thread = loop_thread
        self.directory = directory
        self.messages: list[str] = []
        limits = options.pop("limits", Limits())
        self.options = ServeOptions(
            paths=(str(directory),),
            bind_override="127.0.0.1",
            port_offset=0,
            limits=limits,
            **options,
        )
        self.runtime = Runtime(self.options, self.messages.append)
        self.problems: list[str] = []

    def write(self, text: str, name: str = "gateway.yaml") -> None:
        (self.directory / name).write_text(text)

    def start(self) -> Proxy:
        self.problems = self.loop_thread.run(self.runtime.start())
        return self

    def reload(self) -> bool:
        return self.loop_thread.run(self.runtime.reload())

    def stop(self) -> None:
        self.loop_thread.run(self.runtime.stop(timeout=0.5))

    @property
    def stats(self) -> dict[str, Any]:
        return self.runtime.stats.snapshot()

    def run(self, coro: Any, timeout: float = 20) -> Any:
        return self.loop_thread.run(coro, timeout)


@contextlib.contextmanager
def http_gateway(
    loop_thread: LoopThread, directory: Path, backend_port: int, *routes: str
) -> Iterator[int]:
    """The proxy serving Gateway `gw` with one HTTP listener (on a free port, yielded)
    and Service `svc` backed by `backend_port` on loopback, with `routes`; stopped at
    the end."""
    port = free_port()
    proxy = Proxy(loop_thread, directory)
    proxy.write(
        manifests(
            gateway(f"- {{name: http, port: {port}, protocol: HTTP}}"),
            service("svc", [backend_port]),
            *routes,
        )
    )
    proxy.start()
    try:
        yield port
    finally:
        proxy.stop()


async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)
