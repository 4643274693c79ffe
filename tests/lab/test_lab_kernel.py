"""The node lab for real: namespaces, CNI plugins, workloads, probes (root only).

Each test gets its own lab name (fixture `lab_name`), so other engineers'
namespaces are never touched, and the fixture tears the lab down in `finally`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from netlet.cluster.state import ClusterState
from netlet.dataplane.lab import kernel, names
from netlet.dataplane.lab.errors import LabError
from netlet.dataplane.lab.lab import Lab, LabOptions, down
from netlet.dataplane.lab.probe import Outcome, Target
from netlet.resources.core import Pod
from tests.lab.manifests import TWO_BY_THREE, load_state

pytestmark = pytest.mark.root

PROBE_TIMEOUT = 1.0


def _pods(state: ClusterState) -> list[Pod]:
    return state.list(Pod)


def _footprint(lab: Lab) -> dict[str, object]:
    """What the lab made on the machine: namespaces (with inodes), processes."""
    status = lab.status()
    netns = {ns: kernel.netns_inode(ns) for ns in kernel.list_netns(names.netns_prefix(lab.name))}
    pids = [p.pid for p in status.pods if p.pid] + [status.supervisor_pid]
    return {"netns": netns, "pids": [p for p in pids if p]}


def _assert_nothing_left(name: str, footprint: dict[str, object]) -> None:
    netns = footprint["netns"]
    assert isinstance(netns, dict)
    assert kernel.list_netns(names.netns_prefix(name)) == []
    pids = footprint["pids"]
    assert isinstance(pids, list)
    assert [p for p in pids if kernel.pid_alive(p)] == []
    assert kernel.pids_in_netns(netns.values()) == {}
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert names.ifname_prefix(name) not in links
    assert not names.lab_dir(name).exists()


def test_two_nodes_three_pods_each_all_to_all_tcp_and_udp_match_the_open_matrix(
    two_by_three: ClusterState, lab_name: str
) -> None:
    with Lab.up(two_by_three, lab_name) as lab:
        status = lab.status()
        assert status.healthy
        assert [n.pods for n in status.nodes] == [3, 3]
        matrix = lab.probe(to="pods", timeout=PROBE_TIMEOUT)
        pods = _pods(two_by_three)
        # Expected from the manifests alone: with no policy and no kube-proxy, every
        # declared port of every pod is open to every pod, and answers with its name.
        expected = {
            (
                f"{src.namespace}/{src.name}",
                dst.ips[0],
                port.container_port,
                port.protocol.value,
            ): dst.name
            for src in pods
            for dst in pods
            for c in dst.spec.containers
            for port in c.ports
        }
        observed = {
            (r.source, r.target.address, r.target.port, r.target.protocol): r.reply
            for r in matrix.results
            if r.source != "external" and r.outcome == Outcome.CONNECTED
        }
        assert observed == expected
        assert len(expected) == 6 * 6 * 3
        # HTTP answers echo the client as the server saw it: the source pod's IP.
        ip_of = {f"{p.namespace}/{p.name}": p.ips[0] for p in pods}
        for r in matrix.results:
            if r.source != "external" and r.target.http:
                assert r.echo is not None and r.echo["client"]["ip"] == ip_of[r.source]
        # The external client has no route to pod IPs (as outside a real cluster).
        outside = {r.outcome for r in matrix.results if r.source == "external"}
        assert outside == {Outcome.REFUSED}


def test_closed_ports_are_refused_and_filtered_ones_time_out(
    two_by_three: ClusterState, lab_name: str
) -> None:
    with Lab.up(two_by_three, lab_name) as lab:
        db = lab.plan.pod("data/db")
        closed = [Target("pod", db.key, db.ips[0], 9, proto) for proto in ("TCP", "UDP")]
        filtered = [
            Target("pod", db.key, db.ips[0], 7000, "TCP"),
            Target("pod", db.key, db.ips[0], 5353, "UDP"),
        ]
        # A drop rule in db's node namespace: the lab's nodes route every pod packet,
        # so the forward hook there sees traffic from the other node.
        ruleset = (
            "table inet t {\n chain f {\n  type filter hook forward priority 0;\n"
            "  tcp dport 7000 drop\n  udp dport 5353 drop\n }\n}\n"
        )
        done = lab.exec("node/node-a", ["nft", "-f", "-"], input=ruleset)
        assert done.returncode == 0, done.stderr
        source = next(p.key for p in lab.plan.pods if p.node == "node-b")
        matrix = lab.probe(targets=closed + filtered, sources=[source], timeout=PROBE_TIMEOUT)
        got = {(r.target.port, r.target.protocol): (r.outcome, r.reason) for r in matrix.results}
        assert got == {
            (9, "TCP"): (Outcome.REFUSED, "ECONNREFUSED"),
            (9, "UDP"): (Outcome.REFUSED, "ECONNREFUSED"),
            (7000, "TCP"): (Outcome.TIMEOUT, "timeout"),
            (5353, "UDP"): (Outcome.TIMEOUT, "timeout"),
        }


def test_exec_runs_in_the_pods_namespace_where_the_cni_chain_configured_it(
    two_by_three: ClusterState, lab_name: str
) -> None:
    with Lab.up(two_by_three, lab_name) as lab:
        db = lab.plan.pod("data/db")
        addr = lab.exec("data/db", ["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        assert addr.returncode == 0 and f"inet {db.ips[0]}/24" in addr.stdout
        route = lab.exec("data/db", ["ip", "route", "show", "default"])
        assert route.stdout.startswith(f"default via {lab.plan.node('node-a').gateways()[0]}")
        # The second plugin of the chain (tuning, fed ptp's prevResult) set this sysctl.
        ping = lab.exec("data/db", ["cat", "/proc/sys/net/ipv4/ping_group_range"])
        assert ping.stdout.split() == ["0", "2147483647"]
        # Forwarding is on in node namespaces only; the machine's own setting is untouched.
        assert (
            lab.exec("node/node-a", ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "1"
        )
        assert lab.exec("data/db", ["sh", "-c", "exit 7"]).returncode == 7


def test_down_removes_namespaces_links_processes_and_files(
    two_by_three: ClusterState, lab_name: str
) -> None:
    lab = Lab.up(two_by_three, lab_name)
    footprint = _footprint(lab)
    netns = footprint["netns"]
    assert isinstance(netns, dict)
    assert len(netns) == 2 + 6 + 2  # nodes, pods, fabric and external
    # Something started by hand in a pod is stopped too.
    stray = subprocess.Popen(["ip", "netns", "exec", lab.plan.pod("data/db").netns, "sleep", "60"])
    try:
        report = lab.down()
    finally:
        stray.wait(timeout=10)
    assert report.leftovers == []
    _assert_nothing_left(lab_name, footprint)
    assert down(lab_name).namespaces == []  # a second down finds nothing


def test_a_failing_test_still_cleans_up(two_by_three: ClusterState, lab_name: str) -> None:
    footprint: dict[str, object] = {}
    with (
        pytest.raises(RuntimeError, match="the test failed"),
        Lab.up(two_by_three, lab_name) as lab,
    ):
        footprint.update(_footprint(lab))
        raise RuntimeError("the test failed")
    _assert_nothing_left(lab_name, footprint)


def test_a_killed_workload_shows_in_status_and_is_restarted(
    two_by_three: ClusterState, lab_name: str
) -> None:
    with Lab.up(two_by_three, lab_name) as lab:
        before = lab.status().pod("data/db")
        assert before.pid is not None
        os.kill(before.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (now := lab.status().pod("data/db")).restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert now.restarts == 1 and now.last_exit == "killed by SIGKILL"
        healed = lab.wait_healthy(10).pod("data/db")
        assert healed.workload == "ready" and healed.pid not in (None, before.pid)
        matrix = lab.probe(to="pods", ports="8080", sources=["data/cache"], timeout=PROBE_TIMEOUT)
        assert {r.reply for r in matrix.results} == {p.name for p in _pods(two_by_three)}


def test_up_is_idempotent_and_repairs_what_a_crash_removed(
    two_by_three: ClusterState, lab_name: str
) -> None:
    with Lab.up(two_by_three, lab_name) as lab:
        inodes = {p.key: kernel.netns_inode(p.netns) for p in lab.plan.pods}
        again = Lab.up(two_by_three, lab_name)
        assert {p.key: kernel.netns_inode(p.netns) for p in again.plan.pods} == inodes
        # A pod namespace vanishes (as if a run crashed half-way): the next up rebuilds it.
        victim = lab.plan.pod("data/cache")
        kernel.netns_delete(victim.netns)
        assert not lab.status().pod("data/cache").netns_present
        repaired = Lab.up(two_by_three, lab_name)
        assert repaired.status().healthy
        assert kernel.netns_inode(victim.netns) != inodes[victim.key]
        matrix = repaired.probe(to="pods", ports="raw", sources=["data/db"], timeout=PROBE_TIMEOUT)
        assert all(r.outcome == Outcome.CONNECTED for r in matrix.results)


def test_pods_without_an_ip_get_one_from_host_local_written_back_into_the_state(
    lab_name: str,
) -> None:
    state = load_state(TWO_BY_THREE)
    pod = state.get(Pod, "data", "db")
    assert pod is not None
    bare = pod.model_copy(
        update={"status": pod.status.model_copy(update={"pod_ip": None, "pod_ips": ()})}
    )
    state.apply(bare)
    with Lab.up(state, lab_name) as lab:
        got = state.get(Pod, "data", "db")
        assert got is not None and len(got.ips) == 1
        assert got.ips == lab.plan.pod("data/db").ips
        assert got.ips[0].startswith("10.244.0.")  # node-a's podCIDR 10.244.0.0/24
        assert state.pod_by_ip(got.ips[0]) == got


def test_host_network_pods_serve_on_their_nodes_addresses(lab_name: str) -> None:
    state = load_state(
        TWO_BY_THREE
        + """
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: kube-system}
spec:
  nodeName: node-b
  hostNetwork: true
  containers: [{name: c, ports: [{name: metrics, containerPort: 9100}, {containerPort: 9100, protocol: UDP}]}]
"""
    )
    with Lab.up(state, lab_name) as lab:
        matrix = lab.probe(to="pods", ports="9100", timeout=PROBE_TIMEOUT)
        node_ip = lab.plan.node("node-b").ips[0]
        for r in matrix.results:
            assert r.target.address == node_ip
            if r.source == "external":
                assert r.outcome == Outcome.CONNECTED  # the node is on the fabric
            assert r.outcome == Outcome.CONNECTED and r.reply == "agent", r


def test_the_bridge_plugin_wires_pods_too(lab_name: str) -> None:
    state = load_state(TWO_BY_THREE)
    with Lab.up(state, lab_name, options=LabOptions(cni="bridge")) as lab:
        bridge = lab.exec("node/node-a", ["ip", "-o", "link", "show", "cni0"])
        assert bridge.returncode == 0
        matrix = lab.probe(to="pods", ports="raw", timeout=PROBE_TIMEOUT)
        pods = [r for r in matrix.results if r.source != "external"]
        assert len(pods) == 36 and all(r.outcome == Outcome.CONNECTED for r in pods)


# Faults: a clear error, and the step's creations rolled back -----------------------------------


def _fake_plugin(directory: Path, name: str) -> None:
    target = directory / name
    target.unlink()
    target.write_text(
        "#!/bin/sh\ncat >/dev/null\n"
        'if [ "$CNI_COMMAND" = ADD ]; then\n'
        '  echo \'{"cniVersion": "1.0.0", "code": 11, "msg": "injected failure"}\'\n'
        "  exit 1\nfi\n"
    )
    target.chmod(0o755)


def test_a_failing_cni_plugin_is_reported_and_everything_is_rolled_back(
    two_by_three: ClusterState, lab_name: str, fake_cni: Path
) -> None:
    _fake_plugin(fake_cni, "tuning")
    with pytest.raises(LabError) as info:
        Lab.up(two_by_three, lab_name, options=LabOptions(cni_path=(str(fake_cni),)))
    message = str(info.value)
    assert "CNI ADD of plugin 'tuning' for Pod " in message
    assert "(CNI error code 11): injected failure" in message
    assert kernel.list_netns(names.netns_prefix(lab_name)) == []
    assert not names.lab_dir(lab_name).exists()


def test_a_missing_plugin_binary_is_reported_before_anything_is_created(
    two_by_three: ClusterState, lab_name: str, fake_cni: Path
) -> None:
    (fake_cni / "host-local").unlink()
    with pytest.raises(
        LabError, match=r"CNI plugin binaries missing: host-local \(searched CNI_PATH"
    ):
        Lab.up(two_by_three, lab_name, options=LabOptions(cni_path=(str(fake_cni),)))
    assert kernel.list_netns(names.netns_prefix(lab_name)) == []
    assert not names.lab_dir(lab_name).exists()


def test_a_port_taken_at_bind_time_fails_up_and_keeps_the_running_lab(
    two_by_three: ClusterState, lab_name: str
) -> None:
    with Lab.up(two_by_three, lab_name) as lab:
        before = set(kernel.list_netns(names.netns_prefix(lab_name)))
        # Something else already listens on node-b's port 9100.
        holder = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                lab.plan.node("node-b").netns,
                "python3",
                "-c",
                "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 9100)); s.listen(); "
                "print('ok', flush=True); time.sleep(60)",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
            state = load_state(
                TWO_BY_THREE
                + """
---
apiVersion: v1
kind: Pod
metadata: {name: exporter, namespace: kube-system}
spec:
  nodeName: node-b
  hostNetwork: true
  containers: [{name: c, ports: [{containerPort: 9100}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: late, namespace: data}
spec:
  nodeName: node-a
  containers: [{name: c, ports: [{containerPort: 80}]}]
"""
            )
            with pytest.raises(
                LabError,
                match=r"Pod kube-system/exporter: 9100/TCP: port clash: address already in use",
            ):
                Lab.up(state, lab_name)
        finally:
            holder.kill()
            holder.wait()
            assert holder.stdout is not None
            holder.stdout.close()
        # Rolled back: the new pod's namespace is gone, the old lab still serves.
        assert set(kernel.list_netns(names.netns_prefix(lab_name))) == before
        assert lab.wait_healthy(10).healthy
        # The supervisor was handed back the workloads it served before that up.
        status_file = names.lab_dir(lab_name) / "status.json"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            served = set(json.loads(status_file.read_text())["workers"])
            if "kube-system/exporter" not in served:
                break
            time.sleep(0.05)
        assert served == {p.key for p in lab.plan.pods}


def test_without_root_the_lab_says_so(
    two_by_three: ClusterState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="the node lab needs root"):
        Lab.up(two_by_three, "tnoroot")
    assert not names.lab_dir("tnoroot").exists()


def test_dual_stack_pods_answer_on_both_families(lab_name: str) -> None:
    from netlet.cluster.build import load_text
    from netlet.cluster.config import ClusterConfig

    result = load_text(TWO_BY_THREE, config=ClusterConfig(dual_stack=True))
    assert result.ok
    with Lab.up(result.state, lab_name) as lab:
        db = lab.plan.pod("data/db")
        assert [ip.count(":") > 0 for ip in db.ips] == [False, True]
        matrix = lab.probe(to="pods", ports="raw", sources=["data/cache"], timeout=PROBE_TIMEOUT)
        assert len(matrix.results) == 6 * 2
        assert all(r.outcome == Outcome.CONNECTED for r in matrix.results)
        assert {r.target.address for r in matrix.results if r.target.name == "data/db"} == set(
            db.ips
        )


def test_up_restarts_a_crashed_supervisor(two_by_three: ClusterState, lab_name: str) -> None:
    with Lab.up(two_by_three, lab_name) as lab:
        status = lab.status()
        assert status.supervisor_pid is not None
        workers = [p.pid for p in status.pods if p.pid]
        os.kill(status.supervisor_pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(kernel.pid_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        crashed = lab.status()
        assert not crashed.supervisor_alive and not crashed.healthy
        # Workloads die with their supervisor (PR_SET_PDEATHSIG): no orphans serve stale pods.
        assert not any(kernel.pid_alive(p) for p in workers)
        recovered = Lab.up(two_by_three, lab_name).status()
        assert recovered.healthy and recovered.supervisor_pid != status.supervisor_pid


def test_up_after_a_crash_half_way_through_the_pods_finishes_the_lab(
    two_by_three: ClusterState, lab_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netlet.dataplane.lab import build, cni
    from netlet.dataplane.lab import lab as lab_module

    real_add = cni.add
    calls = {"n": 0}

    def crash_on_the_fifth(conflist, inv):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 5:
            raise SystemExit("simulated crash")  # the process dies: no rollback runs
        return real_add(conflist, inv)

    monkeypatch.setattr(cni, "add", crash_on_the_fifth)
    monkeypatch.setattr(build.Undo, "run", lambda self: [])
    monkeypatch.setattr(lab_module, "remove_tree", lambda path: None)
    with pytest.raises(SystemExit):
        Lab.up(two_by_three, lab_name, options=LabOptions(parallelism=1))
    half_made = list(names.lab_dir(lab_name).joinpath("pods").glob("*.json"))
    assert half_made and any('"creating"' in p.read_text() for p in half_made)
    monkeypatch.undo()
    with Lab.up(two_by_three, lab_name) as lab:
        assert lab.status().healthy
        matrix = lab.probe(to="pods", ports="raw", sources=["data/db"], timeout=PROBE_TIMEOUT)
        assert all(r.outcome == Outcome.CONNECTED for r in matrix.results)


def test_sctp_ports_are_served_where_the_kernel_has_sctp_and_reported_where_not(
    lab_name: str,
) -> None:
    from netlet.dataplane.lab.probe import sctp_supported

    state = load_state(
        """
apiVersion: v1
kind: Pod
metadata: {name: sig}
spec:
  containers: [{name: c, ports: [{containerPort: 3868, protocol: SCTP}, {containerPort: 3869}]}]
"""
    )
    with Lab.up(state, lab_name) as lab:
        pod = lab.status().pod("default/sig")
        assert pod.workload == "ready"
        matrix = lab.probe(to="pods", sources=["default/sig"], timeout=PROBE_TIMEOUT)
        if sctp_supported():
            assert "3868/SCTP serving" in pod.port_states
            sctp = [r for r in matrix.results if r.target.protocol == "SCTP"]
            assert [(r.outcome, r.reply) for r in sctp] == [(Outcome.CONNECTED, "sig")]
        else:
            assert "3868/SCTP unsupported: this kernel has no SCTP" in pod.port_states
            assert matrix.notes == ("SCTP targets skipped: this kernel has no SCTP",)
        assert [
            (r.target.port, r.outcome) for r in matrix.results if r.target.protocol == "TCP"
        ] == [(3869, Outcome.CONNECTED)]


def test_node_namespaces_do_not_rate_limit_icmp_so_rejects_stay_observable(
    two_by_three: ClusterState, lab_name: str
) -> None:
    with Lab.up(two_by_three, lab_name) as lab:
        for node in lab.plan.nodes:
            assert (
                kernel.read_sysctl(names.netns_path(node.netns), "net.ipv4.icmp_ratelimit") == "0"
            )


def test_sync_routes_removes_on_link_and_gateway_routes_it_no_longer_plans(lab_name: str) -> None:
    from netlet.dataplane.lab import topology
    from netlet.dataplane.lab.plan import Route

    netns = f"{names.netns_prefix(lab_name)}routes"
    kernel.netns_create(netns)
    try:
        with kernel.netlink(names.netns_path(netns)) as ipr:
            # A veth pair inside the namespace stands in for the fabric leg.
            ipr.link("add", ifname=names.NODE_UPLINK, kind="veth", peer="peer0")
            index = ipr.link_lookup(ifname=names.NODE_UPLINK)[0]
            ipr.addr("add", index=index, address="172.31.0.2", prefixlen=24)
            for name in (names.NODE_UPLINK, "peer0"):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
        on_link = Route("10.96.0.0/12")
        via = Route("10.244.9.0/24", "172.31.0.9")
        topology.sync_routes(netns, (on_link, via), ())

        def routes() -> str:
            return subprocess.run(
                ["ip", "-n", netns, "route"], capture_output=True, text=True, check=True
            ).stdout

        assert "10.96.0.0/12" in routes() and "10.244.9.0/24 via 172.31.0.9" in routes()
        topology.sync_routes(netns, (), (on_link, via))
        assert "10.96.0.0/12" not in routes() and "10.244.9.0/24" not in routes()
    finally:
        kernel.netns_delete(netns)
