"""`netlet render nftables`: the ruleset without root; bad input exits 2 and says why.

CLI conventions: docs/architecture.md "Conventions" (exit 0 ok, 1 finding, 2 bad input).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from netlet.cli.main import app

runner = CliRunner()


def test_render_prints_each_node_with_a_header_and_its_golden_ruleset() -> None:
    done = runner.invoke(app, ["render", "nftables", "-f", "examples/shop"])
    assert done.exit_code == 0, done.output
    golden = Path(__file__).parent / "golden"
    expected = (
        "# node node-a\n"
        + (golden / "shop-node-a.nft").read_text()
        + "\n# node node-b\n"
        + (golden / "shop-node-b.nft").read_text()
    )
    assert done.stdout == expected


@pytest.mark.parametrize(
    ("table", "present", "absent"),
    [
        pytest.param("services", "table ip netlet ", "netlet-policy", id="services only"),
        pytest.param("policy", "table ip netlet-policy", "table ip netlet ", id="policy only"),
    ],
)
def test_render_one_table_of_one_node(table: str, present: str, absent: str) -> None:
    done = runner.invoke(
        app, ["render", "nftables", "-f", "examples/shop", "--node", "node-b", "--table", table]
    )
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("# node node-b\n")
    assert present in done.stdout and absent not in done.stdout


def test_an_unknown_node_exits_2_naming_the_nodes() -> None:
    done = runner.invoke(app, ["render", "nftables", "-f", "examples/shop", "--node", "nope"])
    assert done.exit_code == 2
    assert "no node named 'nope' (nodes: node-a, node-b)" in done.stderr


def test_bad_manifests_exit_2_with_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "svc.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 70000}]}\n"
    )
    done = runner.invoke(app, ["render", "nftables", "-f", str(bad)])
    assert done.exit_code == 2
    assert "svc.yaml" in done.stderr and "spec.ports[0].port" in done.stderr


def test_render_dual_stack_adds_the_ip6_tables(tmp_path: Path) -> None:
    manifest = tmp_path / "ds.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
        "spec:\n  ipFamilyPolicy: RequireDualStack\n  ports: [{port: 80}]\n"
    )
    done = runner.invoke(app, ["render", "nftables", "-f", str(manifest), "--dual-stack"])
    assert done.exit_code == 0, done.output
    for table in ("table ip netlet ", "table ip6 netlet ", "table ip6 netlet-policy"):
        assert table in done.stdout


@pytest.mark.root
def test_up_programs_every_node_apply_resyncs_and_down_removes_the_tables(tmp_path: Path) -> None:
    import secrets
    import subprocess

    from netlet.dataplane.lab.lab import down
    from netlet.dataplane.lab.names import node_netns

    lab = "c" + secrets.token_hex(4)
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\n"
        "spec: {containers: [{name: c, ports: [{containerPort: 8080}]}]}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
        "spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n"
    )

    def tables() -> str:
        return subprocess.run(
            ["ip", "netns", "exec", node_netns(lab, "node-1"), "nft", "list", "tables"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    try:
        done = runner.invoke(app, ["up", "-f", str(manifest), "--lab", lab])
        assert done.exit_code == 0, done.output
        assert "nftables node-1: ip netlet: full sync (first sync)" in done.stdout
        assert tables() == "table ip netlet\ntable ip netlet-policy\n"
        again = runner.invoke(app, ["apply", "-f", str(manifest), "--lab", lab])
        assert again.exit_code == 0, again.output
        assert "nftables node-1: ip netlet-policy: full sync" in again.stdout
        gone = runner.invoke(app, ["down", "--lab", lab])
        assert gone.exit_code == 0, gone.output
        assert "nothing left" in gone.stdout
    finally:
        down(lab)
