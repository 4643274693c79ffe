"""Manifests the lab tests share, and loading them."""

from __future__ import annotations

from netlet.cluster.build import load_text
from netlet.cluster.state import ClusterState

# 2 nodes x 3 pods: a Deployment spread over both nodes plus a bare pod pinned
# to node-b. Every pod serves an HTTP port, a plain TCP port and a UDP port.
TWO_BY_THREE = """
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
---
apiVersion: v1
kind: Node
metadata: {name: node-b, labels: {kubernetes.io/hostname: node-b}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubernetes.io/hostname: node-a}
      containers:
      - name: web
        ports:
        - {name: http, containerPort: 8080}
        - {name: raw, containerPort: 7000}
        - {name: dns, containerPort: 5353, protocol: UDP}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      nodeSelector: {kubernetes.io/hostname: node-b}
      containers:
      - name: api
        ports:
        - {name: http, containerPort: 8080}
        - {name: raw, containerPort: 7000}
        - {name: dns, containerPort: 5353, protocol: UDP}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: data, labels: {app: db}}
spec:
  nodeName: node-a
  containers:
  - name: db
    ports:
    - {name: http-admin, containerPort: 8080}
    - {name: raw, containerPort: 7000}
    - {name: dns, containerPort: 5353, protocol: UDP}
---
apiVersion: v1
kind: Pod
metadata: {name: cache, namespace: data, labels: {app: cache}}
spec:
  nodeName: node-b
  containers:
  - name: cache
    ports:
    - {name: http, containerPort: 8080}
    - {name: raw, containerPort: 7000}
    - {name: dns, containerPort: 5353, protocol: UDP}
"""


def load_state(text: str) -> ClusterState:
    result = load_text(text)
    assert result.ok, [str(d) for d in result.errors]
    return result.state
