"""What the API server and the CRDs' schemas reject, and how netlet reports it.

Every case asserts that the error names the file, the object (kind
namespace/name) and the field path, and that the other objects still load.
Sources: k8s.io/apimachinery/pkg/util/validation (names, labels, ports),
pkg/apis/core/validation (Service, Pod), pkg/apis/networking/validation
(NetworkPolicy, Ingress), the Gateway API and network-policy-api CRDs.
"""

from __future__ import annotations

import pytest

from netlet.cluster.build import load_text
from netlet.resources.core import Pod
from netlet.resources.diagnostics import Diagnostic

GOOD_POD = """---
apiVersion: v1
kind: Pod
metadata: {name: survivor, namespace: default}
spec:
  containers: [{name: c}]
"""


def _only_error(text: str) -> Diagnostic:
    result = load_text(text.rstrip("\n") + "\n" + GOOD_POD, name="input.yaml")
    errors = result.errors
    assert len(errors) == 1, [str(e) for e in result.diagnostics]
    # Other objects still load.
    assert result.state.get(Pod, "default", "survivor") is not None
    return errors[0]


CASES = [
    # (id, manifest, object, field path, words in the message)
    (
        "service port above 65535",
        """apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{name: a, port: 80}, {name: b, port: 70000}]""",
        "Service shop/web",
        "spec.ports[1].port",
        "between 1 and 65535",
    ),
    (
        "service port given as a string",
        """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{port: "80"}]""",
        "Service default/web",
        "spec.ports[0].port",
        "valid integer",
    ),
    (
        "unnamed ports on a multi-port service",
        """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{port: 80}, {port: 443}]""",
        "Service default/web",
        "spec.ports[0].name",
        "Required value",
    ),
    (
        "service name that is not a DNS-1035 label",
        """apiVersion: v1
kind: Service
metadata: {name: 1web}
spec:
  ports: [{port: 80}]""",
        "Service default/1web",
        "metadata.name",
        "DNS-1035",
    ),
    (
        "unknown service type",
        """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: Magic
  ports: [{port: 80}]""",
        "Service default/web",
        "spec.type",
        "'ClusterIP', 'NodePort', 'LoadBalancer' or 'ExternalName'",
    ),
    (
        "externalTrafficPolicy on a ClusterIP service",
        """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  externalTrafficPolicy: Local
  ports: [{port: 80}]""",
        "Service default/web",
        "spec.externalTrafficPolicy",
        "may only be set when type is 'NodePort' or 'LoadBalancer'",
    ),
    (
        "target port name that is not an IANA service name",
        """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{port: 80, targetPort: "http_port"}]""",
        "Service default/web",
        "spec.ports[0].targetPort",
        "alpha-numeric",
    ),
    (
        "duplicate port and protocol",
        """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{name: a, port: 80}, {name: b, port: 80}]""",
        "Service default/web",
        "spec.ports",
        "duplicate port/protocol",
    ),
    (
        "bad label value",
        """apiVersion: v1
kind: Pod
metadata:
  name: p
  labels: {app: "no spaces allowed"}
spec:
  containers: [{name: c}]""",
        "Pod default/p",
        "metadata.labels",
        "valid label",
    ),
    (
        "bad label key prefix",
        """apiVersion: v1
kind: Pod
metadata:
  name: p
  labels: {"Example.COM/app": web}
spec:
  containers: [{name: c}]""",
        "Pod default/p",
        "metadata.labels",
        "prefix part",
    ),
    (
        "pod name with uppercase letters",
        """apiVersion: v1
kind: Pod
metadata: {name: MyPod}
spec:
  containers: [{name: c}]""",
        "Pod default/MyPod",
        "metadata.name",
        "RFC 1123 subdomain",
    ),
    (
        "namespace name with a dot",
        """apiVersion: v1
kind: Namespace
metadata: {name: my.ns}""",
        "Namespace my.ns",
        "metadata.name",
        "RFC 1123 label",
    ),
    (
        "pod without containers",
        """apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {containers: []}""",
        "Pod default/p",
        "spec.containers",
        "at least 1 item",
    ),
    (
        "container port protocol not in the enum",
        """apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, ports: [{containerPort: 80, protocol: ICMP}]}]""",
        "Pod default/p",
        "spec.containers[0].ports[0].protocol",
        "'TCP', 'UDP' or 'SCTP'",
    ),
    (
        "duplicate container port names",
        """apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - {name: a, ports: [{name: http, containerPort: 80}]}
  - {name: b, ports: [{name: http, containerPort: 81}]}""",
        "Pod default/p",
        "spec.containers[*].ports[*].name",
        "duplicate port name",
    ),
    (
        "ipBlock CIDR that does not parse",
        """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]""",
        "NetworkPolicy default/np",
        "spec.ingress[0].from[0].ipBlock.cidr",
        "valid CIDR",
    ),
    (
        "ipBlock except outside the cidr",
        """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]""",
        "NetworkPolicy default/np",
        "spec.ingress[0].from[0].ipBlock.except[0]",
        "strict subset",
    ),
    (
        "network policy endPort below port",
        """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec:
  podSelector: {}
  egress: [{ports: [{port: 9000, endPort: 8000}]}]""",
        "NetworkPolicy default/np",
        "spec.egress[0].ports[0].endPort",
        "greater than or equal",
    ),
    (
        "network policy selector operator typo",
        """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec:
  podSelector:
    matchExpressions: [{key: app, operator: Inn, values: [a]}]""",
        "NetworkPolicy default/np",
        "spec.podSelector.matchExpressions[0].operator",
        "In, NotIn, Exists, DoesNotExist",
    ),
    (
        "unknown apiVersion of a known kind",
        """apiVersion: apps/v1beta1
kind: Deployment
metadata: {name: web}
spec: {}""",
        "Deployment default/web",
        "apiVersion",
        "served: apps/v1",
    ),
    (
        "missing metadata.name",
        """apiVersion: v1
kind: Service
metadata: {namespace: shop}
spec:
  ports: [{port: 80}]""",
        "Service shop/",
        "metadata.name",
        "Required value",
    ),
    (
        "deployment selector that does not match its template",
        """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: c}]}""",
        "Deployment default/web",
        "spec.template.metadata.labels",
        "does not match template",
    ),
    (
        "cluster network policy priority out of range",
        """apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: cnp}
spec:
  tier: Admin
  priority: 1001
  subject: {namespaces: {}}""",
        "ClusterNetworkPolicy cnp",
        "spec.priority",
        "less than or equal to 1000",
    ),
    (
        "cluster network policy unknown action",
        """apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: cnp}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  ingress: [{action: Allow, from: [{namespaces: {}}]}]""",
        "ClusterNetworkPolicy cnp",
        "spec.ingress[0].action",
        "'Accept', 'Deny' or 'Pass'",
    ),
    (
        "HTTPRoute path not starting with a slash",
        """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules: [{matches: [{path: {type: PathPrefix, value: api}}]}]""",
        "HTTPRoute default/r",
        "spec.rules[0].matches[0].path",
        "absolute path",
    ),
    (
        "Gateway with duplicate listener names",
        """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: netlet
  listeners:
  - {name: web, port: 80, protocol: HTTP}
  - {name: web, port: 8080, protocol: HTTP}""",
        "Gateway default/gw",
        "spec.listeners",
        "name must be unique",
    ),
    (
        "endpoint slice with an address of the wrong family",
        """apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: ["fd00::1"]}]""",
        "EndpointSlice default/web-1",
        "endpoints[0].addresses[0]",
        "must be an IPv4 address",
    ),
    (
        "network attachment with a config that is not JSON",
        """apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: macvlan}
spec: {config: "{not json"}""",
        "NetworkAttachmentDefinition default/macvlan",
        "spec.config",
        "JSON CNI configuration",
    ),
]


@pytest.mark.parametrize(
    ("manifest", "obj", "path", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_invalid_object_is_reported_with_file_object_and_field(
    manifest: str, obj: str, path: str, words: str
) -> None:
    diag = _only_error(manifest)
    text = str(diag)
    assert text.startswith("input.yaml:"), text  # file and line
    assert "(doc 0)" in text
    assert diag.obj is not None and str(diag.obj) == obj
    assert diag.field_path == path, text
    assert words in diag.message, text


def test_error_line_points_at_the_offending_field() -> None:
    text = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports:
  - name: a
    port: 80
  - name: b
    port: 70000
"""
    diag = _only_error(text)
    assert diag.origin is not None and diag.origin.line == 9


def test_duplicate_objects_are_an_error_naming_both_places() -> None:
    svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n"
    result = load_text(svc + "---\n" + svc, name="dup.yaml")
    (diag,) = result.errors
    text = str(diag)
    assert diag.code == "duplicate"
    assert "dup.yaml:5 (doc 1)" in text and "see also dup.yaml:1 (doc 0)" in text
    assert "Service default/web" in text


def test_a_generated_pod_colliding_with_a_declared_pod_is_a_duplicate() -> None:
    text = """apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0}
spec: {containers: [{name: c}]}
"""
    result = load_text(text)
    (diag,) = result.errors
    assert diag.code == "duplicate" and "Pod default/db-0" in str(diag)


def test_node_port_outside_the_range_and_duplicated_are_errors() -> None:
    text = """apiVersion: v1
kind: Service
metadata: {name: a}
spec: {type: NodePort, ports: [{port: 80, nodePort: 30080}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec: {type: NodePort, ports: [{port: 80, nodePort: 30080}]}
---
apiVersion: v1
kind: Service
metadata: {name: c}
spec: {type: NodePort, ports: [{port: 80, nodePort: 80}]}
"""
    result = load_text(text)
    messages = sorted(f"{d.obj} {d.field_path}: {d.message}" for d in result.errors)
    assert len(messages) == 2
    assert "Service default/b spec.ports[0].nodePort" in messages[0]
    assert "already allocated" in messages[0]
    assert "Service default/c spec.ports[0].nodePort" in messages[1]
    assert "not in the valid range" in messages[1]


def test_duplicate_cluster_ip_is_an_error_and_outside_the_range_a_warning() -> None:
    text = """apiVersion: v1
kind: Service
metadata: {name: a}
spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: c}
spec: {clusterIP: 192.168.5.5, ports: [{port: 80}]}
"""
    result = load_text(text)
    (err,) = result.errors
    assert "already allocated" in err.message and str(err.obj) == "Service default/b"
    (warn,) = [d for d in result.warnings if d.code == "service-cidr"]
    assert "outside the service CIDR 10.96.0.0/12" in warn.message
