"""Serving programs handed over as a file (what the node lab does): the proxy serves
exactly the tables in the file, and refuses a file that is not one.

Spec: docs/architecture.md "Node lab" (each Gateway's proxy serves the program the
lab computed) and "Gateway data plane" (a bad load keeps the proxy from starting,
with the reason).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator

import httpx
import pytest

from netlet.cluster.build import load_text
from netlet.dataplane.proxy.serve import (
    LoadError,
    Runtime,
    ServeOptions,
    load_programs,
    write_program_file,
)
from netlet.gateway.build import build_programs
from tests.proxy.backends import EchoBackend, LoopThread, free_port
from tests.proxy.harness import gateway, manifests, service

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: svc, port: 80}]}]
"""


@pytest.fixture
def echo(loop_thread: LoopThread) -> Iterator[EchoBackend]:
    backend = loop_thread.run(EchoBackend("from-file").start())
    try:
        yield backend
    finally:
        loop_thread.run(backend.stop())


def test_programs_written_to_a_file_are_served_as_they_are(loop_thread, tmp_path, echo):
    port = free_port()
    text = manifests(
        gateway(f"- {{name: http, port: {port}, protocol: HTTP}}"),
        service("svc", [echo.port]),
        ROUTE,
    )
    programs = dict(build_programs(load_text(text).state))
    path = tmp_path / "gw.program"
    write_program_file(str(path), programs)
    assert path.stat().st_mode & 0o777 == 0o600
    options = ServeOptions(
        paths=(), bind_override="127.0.0.1", port_offset=0, program_file=str(path)
    )
    runtime = Runtime(options, lambda _: None)
    loop_thread.run(runtime.start())
    try:
        with httpx.Client(timeout=10) as client:
            response = client.get(f"http://127.0.0.1:{port}/x")
        assert json.loads(response.text)["backend"] == "from-file"
    finally:
        loop_thread.run(runtime.stop(0.5))


@pytest.mark.parametrize(
    "content, gateways, message",
    [
        pytest.param(pickle.dumps({"a": 1}), (), "does not hold gateway programs", id="not programs"),
        pytest.param(b"not a pickle", (), "cannot read programs", id="not a program file"),
        pytest.param(pickle.dumps({}), ("ns/missing",), "has no program for ns/missing", id="no such Gateway"),
    ],
)  # fmt: skip
def test_a_bad_program_file_is_refused_with_the_reason(tmp_path, content, gateways, message):
    path = tmp_path / "bad.program"
    path.write_bytes(content)
    with pytest.raises(LoadError, match=message):
        load_programs(ServeOptions(paths=(), program_file=str(path), gateways=gateways))
