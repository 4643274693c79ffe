"""`netlet policy explain|matrix|diff|lint` and the policy findings of `netlet check`:
output, formats and exit codes (0 ok / 1 denied, changed or findings / 2 bad input)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netlet.cli.main import app
from tests.policy.harness import world

runner = CliRunner()

POLICIES = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: prod}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: http}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: pass-prod}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {matchLabels: {env: prod}}}
  ingress: [{name: delegate, action: Pass, from: [{namespaces: {matchLabels: {env: prod}}}]}]
  egress:
  - {action: Accept, to: [{domainNames: [api.example.com]}]}
  - {action: Deny, to: [{networks: [203.0.113.0/24]}]}
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(world(POLICIES))
    return path


def invoke(*args: str) -> object:
    return runner.invoke(app, list(args))


def test_explain_walks_the_tiers_and_exits_0_when_allowed(cluster: Path) -> None:
    result = invoke(
        "policy",
        "explain",
        "-f",
        str(cluster),
        "--from",
        "prod/web",
        "--to",
        "prod/api",
        "--port",
        "8080",
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    out = result.stdout  # type: ignore[attr-defined]
    assert "prod/web (10.244.1.10) -> prod/api (10.244.2.10) 8080/TCP: ALLOWED" in out
    assert (
        "[Admin] pass-prod rule 0 (delegate) Pass -> [NetworkPolicy] prod/api rule 0 Accept" in out
    )


def test_explain_exits_1_when_denied_and_names_what_was_considered(cluster: Path) -> None:
    result = invoke(
        "policy",
        "explain",
        "-f",
        str(cluster),
        "--from",
        "other/client",
        "--to",
        "prod/api",
        "--port",
        "8080",
    )
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    out = result.stdout  # type: ignore[attr-defined]
    assert ": DENIED" in out
    # `other` is an env=prod namespace too: the Admin rule passes, NetworkPolicy denies.
    assert (
        "[Admin] pass-prod rule 0 (delegate) Pass -> [NetworkPolicy] isolated, no rule matches -> denied"
        in out
    )
    assert "considered, no rule matched: netpol/prod/api" in out


def test_explain_resolves_a_named_port_on_the_destination(cluster: Path) -> None:
    # A pod name alone is looked up in default, then anywhere if it is unique.
    result = invoke(
        "policy",
        "explain",
        "-f",
        str(cluster),
        "--from",
        "client",
        "--to",
        "dev/api",
        "--port",
        "http",
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "other/client (10.244.2.30) -> dev/api (10.244.1.30) 8081/TCP" in result.stdout  # type: ignore[attr-defined]
    ambiguous = invoke(
        "policy",
        "explain",
        "-f",
        str(cluster),
        "--from",
        "web",
        "--to",
        "dev/api",
        "--port",
        "http",
    )
    assert ambiguous.exit_code == 2 and "is ambiguous (dev/web, prod/web)" in ambiguous.stderr  # type: ignore[attr-defined]


def test_explain_json_and_dns_answers(cluster: Path, tmp_path: Path) -> None:
    answers = tmp_path / "answers.txt"
    answers.write_text("203.0.113.5 api.example.com\n")
    args = [
        "policy",
        "explain",
        "-f",
        str(cluster),
        "--from",
        "prod/web",
        "--to",
        "203.0.113.5",
        "--port",
        "443/tcp",
    ]
    denied = invoke(*args, "-o", "json")
    assert denied.exit_code == 1  # type: ignore[attr-defined]
    data = json.loads(denied.stdout)  # type: ignore[attr-defined]
    assert data["egress"]["policy"] == {"kind": "ClusterNetworkPolicy", "name": "pass-prod"}
    assert data["egress"]["rule"] == 1 and data["egress"]["action"] == "Deny"
    assert data["dependsOnDNS"] == ["api.example.com"]
    allowed = invoke(*args, "--dns-answers", str(answers))
    assert allowed.exit_code == 0, allowed.output  # type: ignore[attr-defined]
    assert "depends on DNS answers for: api.example.com" in allowed.stdout  # type: ignore[attr-defined]
    same = invoke(*args, "--resolve", "api.example.com=203.0.113.5")
    assert same.exit_code == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--from", "prod/nope", "--to", "prod/api", "--port", "80"], "pod prod/nope not found"),
        (
            ["--from", "prod/web", "--to", "prod/api", "--port", "nope"],
            "declares no such named port",
        ),
        (["--from", "prod/web", "--to", "prod/api", "--port", "70000"], "between 1 and 65535"),
        (["--from", "prod/web", "--to", "2001:db8::1", "--port", "80"], "no IPv6 address"),
        (["--from", "prod/web", "--to", "prod/api"], "--port are required"),
        (["--from", "prod/web", "--to", "prod/api", "--port", "80", "--resolve", "x"], "NAME=IP"),
    ],
    ids=[
        "an unknown pod",
        "an unknown named port",
        "a port out of range",
        "an address family the pod does not have",
        "a missing port",
        "a malformed --resolve",
    ],
)
def test_explain_bad_arguments_exit_2_with_a_message(
    cluster: Path, args: list[str], words: str
) -> None:
    result = invoke("policy", "explain", "-f", str(cluster), *args)
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    assert words in result.stderr  # type: ignore[attr-defined]


def test_invalid_manifests_exit_2_naming_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"
        "metadata: {name: c}\nspec: {tier: Admin, priority: 5000, subject: {namespaces: {}}}\n"
    )
    for command in (["explain", "--from", "a", "--to", "b", "--port", "1"], ["matrix"], ["lint"]):
        result = invoke("policy", *command, "-f", str(bad))
        assert result.exit_code == 2, (command, result.output)  # type: ignore[attr-defined]
        assert f"{bad}:4 (doc 0): ClusterNetworkPolicy c: spec.priority" in result.stderr  # type: ignore[attr-defined]


def test_matrix_table_lists_allowed_ports_per_pair(cluster: Path) -> None:
    result = invoke(
        "policy", "matrix", "-f", str(cluster), "-n", "prod", "--ports", "8080,9090/TCP"
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = result.stdout.splitlines()  # type: ignore[attr-defined]
    assert lines[0].startswith("Probes: 8080/TCP, 9090/TCP;")
    assert "domainNames peers use the DNS answers given" in lines[0]
    header = lines[1].split()
    assert header[:3] == ["FROM", "\\", "TO"] and header[3:] == ["prod/api", "prod/db", "prod/web"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["prod/web"] == ["8080/TCP", "all"]  # to api (only http), to db
    assert rows["prod/db"] == ["none", "all"]


def test_matrix_csv_json_md_and_dot(cluster: Path) -> None:
    base = ["policy", "matrix", "-f", str(cluster), "-n", "prod", "--ports", "8080"]
    rows = list(csv.reader(io.StringIO(invoke(*base, "-o", "csv").stdout)))  # type: ignore[attr-defined]
    assert rows[0] == ["from", "to", "port", "verdict"]
    assert ["prod/web", "prod/api", "8080/TCP", "allowed"] in rows
    assert ["prod/db", "prod/api", "8080/TCP", "denied"] in rows
    data = json.loads(invoke(*base, "-o", "json").stdout)  # type: ignore[attr-defined]
    assert data["probes"] == ["8080/TCP"] and not data["grouped"]
    cell = next(c for c in data["cells"] if c["from"] == "prod/db" and c["to"] == "prod/api")
    assert cell == {"from": "prod/db", "to": "prod/api", "allowed": [], "denied": ["8080/TCP"]}
    md = invoke(*base, "-o", "md").stdout  # type: ignore[attr-defined]
    assert md.splitlines()[0] == "| from \\ to | prod/api | prod/db | prod/web |"
    assert "| prod/db | no |  | yes |" in md
    dot = invoke(*base, "-o", "dot").stdout  # type: ignore[attr-defined]
    assert dot.startswith("digraph netlet_policy {") and 'e2 -> e0 [label="yes"];' in dot
    assert "e1 -> e0" not in dot  # db -> api is denied


def test_matrix_groups_pods_no_policy_tells_apart(tmp_path: Path) -> None:
    replicas = "".join(
        f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: web-{i}, namespace: prod, labels: {{app: web, tier: frontend}}}}\n"
        f"spec: {{nodeName: node-a, containers: [{{name: c, ports: [{{name: http, containerPort: 8080}}]}}]}}\n"
        for i in range(3)
    )
    path = tmp_path / "c.yaml"
    path.write_text(world(POLICIES + replicas))
    result = invoke(
        "policy",
        "matrix",
        "-f",
        str(path),
        "-n",
        "prod",
        "--group",
        "yes",
        "--ports",
        "8080",
        "-o",
        "json",
    )
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    groups = {e["name"]: e["members"] for e in data["endpoints"]}
    assert groups["prod/web* (4)"] == ["prod/web", "prod/web-0", "prod/web-1", "prod/web-2"]
    cell = next(c for c in data["cells"] if c["from"] == "prod/web* (4)" and c["to"] == "prod/api")
    assert cell["allowed"] == ["8080/TCP"]


def test_matrix_with_nodes_and_external_probes(cluster: Path) -> None:
    result = invoke(
        "policy",
        "matrix",
        "-f",
        str(cluster),
        "-n",
        "prod",
        "--nodes",
        "--probe",
        "203.0.113.0/24",
        "--ports",
        "443",
        "-o",
        "csv",
        "--resolve",
        "api.example.com=203.0.113.5",
    )
    rows = {(r[0], r[1]): r[3] for r in csv.reader(io.StringIO(result.stdout)) if r[0] != "from"}  # type: ignore[attr-defined]
    # The probe range is split where the domain's answer cuts it.
    assert rows[("prod/web", "203.0.113.5/32")] == "allowed"
    assert rows[("prod/web", "203.0.113.0-203.0.113.4")] == "denied"
    assert rows[("prod/web", "203.0.113.6-203.0.113.255")] == "denied"
    # Own node exempt, other node not (prod/api is isolated by a NetworkPolicy).
    assert rows[("node/node-b", "prod/api")] == "allowed"
    assert rows[("node/node-a", "prod/api")] == "denied"


def test_diff_lists_changes_and_exits_1(cluster: Path, tmp_path: Path) -> None:
    before = tmp_path / "before.yaml"
    before.write_text(world(""))
    result = invoke(
        "policy",
        "diff",
        "-f",
        str(before),
        "--against",
        str(cluster),
        "--ports",
        "8080",
        "-n",
        "prod",
    )
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    out = result.stdout  # type: ignore[attr-defined]
    assert "connection(s) change" in out
    assert "prod/db" in out and "allowed -> denied" in out and "isolated" in out
    same = invoke("policy", "diff", "-f", str(cluster), "--against", str(cluster))
    assert same.exit_code == 0 and "No connection changes" in same.stdout  # type: ignore[attr-defined]
    data = json.loads(
        invoke(
            "policy",
            "diff",
            "-f",
            str(before),
            "--against",
            str(cluster),
            "--ports",
            "8080",
            "-o",
            "json",
        ).stdout
    )  # type: ignore[attr-defined]
    assert all(c["before"] == "allowed" and c["after"] == "denied" for c in data["changes"])
    assert data["changes"][0]["afterVerdict"]["ingress"]["reason"] == "isolated"


def test_lint_and_check_report_policy_findings(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        world(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ghost, namespace: prod}\n"
            "spec: {podSelector: {matchLabels: {app: ghost}}}\n"
        )
    )
    lint = invoke("policy", "lint", "-f", str(path))
    assert lint.exit_code == 1  # type: ignore[attr-defined]
    assert "NetworkPolicy prod/ghost: spec.podSelector: selects no pods" in lint.stdout  # type: ignore[attr-defined]
    check = invoke("check", "-f", str(path))
    assert check.exit_code == 1  # type: ignore[attr-defined]
    assert "NetworkPolicy prod/ghost" in check.stderr  # type: ignore[attr-defined]
    clean = tmp_path / "clean.yaml"
    clean.write_text(world(POLICIES))
    assert invoke("policy", "lint", "-f", str(clean)).exit_code == 0  # type: ignore[attr-defined]


EXAMPLE = str(Path(__file__).parents[2] / "examples" / "shop")


def test_explain_takes_a_workload_name_for_its_first_replica_on_the_example() -> None:
    result = invoke(
        "policy",
        "explain",
        "-f",
        EXAMPLE,
        "--from",
        "shop/frontend",
        "--to",
        "shop/api",
        "--port",
        "http",
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    first = result.stdout.splitlines()[0]  # type: ignore[attr-defined]
    assert (
        first.startswith("shop/frontend-")
        and "-> shop/api-" in first
        and "8080/TCP: ALLOWED" in first
    )
    denied = invoke(
        "policy",
        "explain",
        "-f",
        EXAMPLE,
        "--from",
        "shop/checkout",
        "--to",
        "shop/api",
        "--port",
        "8080",
    )
    assert denied.exit_code == 1  # type: ignore[attr-defined]
    assert "[NetworkPolicy] isolated" in denied.stdout  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", ["explain", "matrix", "diff", "lint"])
def test_help_renders_for_every_policy_command(command: str) -> None:
    result = invoke("policy", command, "--help")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "Usage: netlet policy " + command in result.stdout  # type: ignore[attr-defined]
