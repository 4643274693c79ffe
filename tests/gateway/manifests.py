"""Manifests the gateway tests share, and small builders for Gateways and routes.

Conventions: namespace `infra` holds Gateways, `app` and `other` hold routes and
Services. Pod IPs are fixed (10.244.1.x in app, 10.244.2.x in other) so tests can
name endpoints. `cert` is a valid kubernetes.io/tls Secret (the example's).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from netlet.cluster.build import load_text
from netlet.cluster.state import ClusterState
from netlet.gateway.build import GatewayWorld, build_world

EXAMPLE = Path(__file__).parents[2] / "examples" / "shop"
_SHOP_TLS = next(
    doc
    for doc in yaml.safe_load_all((EXAMPLE / "50-gateway.yaml").read_text())
    if doc and doc.get("kind") == "Secret"
)
TLS_CRT = _SHOP_TLS["data"]["tls.crt"]
TLS_KEY = _SHOP_TLS["data"]["tls.key"]
CA_PEM = __import__("base64").b64decode(TLS_CRT).decode()

BASE = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: netlet}}
spec: {{controllerName: netlet.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: other-class}}
spec: {{controllerName: example.com/other-controller}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: infra, labels: {{role: infra}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: app, labels: {{team: app, exposed: "yes"}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: other, labels: {{team: other}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: app}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: web-1, namespace: app, labels: {{app: web}}}}
spec: {{containers: [{{name: c, image: x, ports: [{{name: http, containerPort: 8080}}]}}]}}
status: {{podIP: 10.244.1.10}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web-2, namespace: app, labels: {{app: web}}}}
spec: {{containers: [{{name: c, image: x, ports: [{{name: http, containerPort: 8080}}]}}]}}
status: {{podIP: 10.244.1.11}}
---
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: app}}
spec:
  selector: {{app: api}}
  ports:
  - {{name: http, port: 80, targetPort: 9000}}
  - {{name: grpc, port: 9090, targetPort: 9090, appProtocol: kubernetes.io/h2c}}
  - {{name: db, port: 3306, targetPort: 3306, appProtocol: mysql}}
  - {{name: dns, port: 53, targetPort: 53, protocol: UDP}}
---
apiVersion: v1
kind: Pod
metadata: {{name: api-1, namespace: app, labels: {{app: api}}}}
spec: {{containers: [{{name: c, image: x}}]}}
status: {{podIP: 10.244.1.20}}
---
apiVersion: v1
kind: Service
metadata: {{name: empty, namespace: app}}
spec:
  selector: {{app: nothing-runs-this}}
  ports: [{{port: 80}}]
---
apiVersion: v1
kind: Service
metadata: {{name: ext, namespace: app}}
spec: {{type: ExternalName, externalName: example.org}}
---
apiVersion: v1
kind: Service
metadata: {{name: remote, namespace: other}}
spec:
  selector: {{app: remote}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: remote-1, namespace: other, labels: {{app: remote}}}}
spec: {{containers: [{{name: c, image: x}}]}}
status: {{podIP: 10.244.2.10}}
---
apiVersion: v1
kind: Secret
metadata: {{name: cert, namespace: infra}}
type: kubernetes.io/tls
data: {{tls.crt: {TLS_CRT}, tls.key: {TLS_KEY}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: cert, namespace: other}}
type: kubernetes.io/tls
data: {{tls.crt: {TLS_CRT}, tls.key: {TLS_KEY}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: broken, namespace: infra}}
type: kubernetes.io/tls
stringData: {{tls.crt: "-----BEGIN CERTIFICATE-----\\nnot base64!\\n-----END CERTIFICATE-----", tls.key: "x"}}
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def load(*docs: str) -> ClusterState:
    text = "\n---\n".join([BASE, *(dedent(d) for d in docs)])
    result = load_text(text)
    assert result.ok, "\n".join(str(d) for d in result.errors)
    return result.state


def world(*docs: str) -> GatewayWorld:
    return build_world(load(*docs))


def gateway(listeners: str, name: str = "gw", namespace: str = "infra", extra: str = "") -> str:
    """A Gateway of class netlet; `listeners` is the YAML list body (indented 2)."""
    body = textwrap.indent(dedent(listeners), "  ")
    more = textwrap.indent(dedent(extra), "  ") + "\n" if extra else ""
    return (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  gatewayClassName: netlet\n{more}  listeners:\n{body}"
    )


HTTP_ALL = gateway(
    """
    - name: http
      port: 80
      protocol: HTTP
      allowedRoutes: {namespaces: {from: All}}
    """
)


def route(
    spec: str,
    name: str = "r",
    namespace: str = "app",
    kind: str = "HTTPRoute",
    version: str = "v1",
    created: str | None = None,
) -> str:
    stamp = f", creationTimestamp: '{created}'" if created else ""
    return (
        f"apiVersion: gateway.networking.k8s.io/{version}\nkind: {kind}\n"
        f"metadata: {{name: {name}, namespace: {namespace}{stamp}}}\n"
        f"spec:\n{textwrap.indent(dedent(spec), '  ')}"
    )


def http_route(
    rules: str = "- backendRefs: [{name: web, port: 80}]",
    name: str = "r",
    namespace: str = "app",
    parents: str = "[{name: gw, namespace: infra}]",
    hostnames: str | None = None,
    created: str | None = None,
) -> str:
    hosts = f"hostnames: {hostnames}\n" if hostnames else ""
    spec = f"parentRefs: {parents}\n{hosts}rules:\n{textwrap.indent(dedent(rules), '  ')}"
    return route(spec, name, namespace, created=created)
