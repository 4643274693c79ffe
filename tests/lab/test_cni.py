"""The CNI runtime against recording fake plugins (no root needed).

Spec: containernetworking/cni SPEC.md, "Section 2: Execution Protocol"
(parameters, errors) and "Section 4: Plugin Delegation" ("Adding an attachment":
plugins in order, each with the previous result as prevResult; "Deleting an
attachment": reverse order, prevResult always the final ADD result).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from netlet.dataplane.lab import cni

FAKE = """#!/bin/sh
input=$(cat)
printf '%s\\n' "{\\"command\\": \\"$CNI_COMMAND\\", \\"plugin\\": \\"{name}\\", \\"id\\": \\"$CNI_CONTAINERID\\", \\"netns\\": \\"$CNI_NETNS\\", \\"ifname\\": \\"$CNI_IFNAME\\", \\"args\\": \\"$CNI_ARGS\\", \\"path\\": \\"$CNI_PATH\\", \\"stdin\\": $input}" >> {log}
{body}
"""
SUCCEED = """if [ "$CNI_COMMAND" = ADD ]; then
  printf '{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.5/24"}], "madeBy": "{name}"}'
fi"""
FAIL_ADD = """if [ "$CNI_COMMAND" = ADD ]; then
  printf '{"code": 7, "msg": "injected failure", "details": "by {name}"}'
  exit 1
fi"""


def _plugin(directory: Path, name: str, log: Path, body: str = SUCCEED) -> None:
    path = directory / name
    text = FAKE.replace("{body}", body).replace("{name}", name).replace("{log}", str(log))
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def plugins(tmp_path: Path) -> tuple[Path, Path]:
    directory = tmp_path / "bin"
    directory.mkdir()
    return directory, tmp_path / "calls.jsonl"


def _inv(directory: Path) -> cni.Invocation:
    return cni.Invocation(
        container_id="c0ffee",
        netns="/run/netns/netlet-x-pod-default.p",
        ifname="eth0",
        args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p",
        plugin_netns=None,
        cni_path=(str(directory),),
        who="Pod default/p",
    )


CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "netlet-x",
    "plugins": [{"type": "one", "mtu": 1400}, {"type": "two", "flag": True}],
}


def test_add_runs_plugins_in_order_chaining_each_result_into_the_next_as_prev_result(
    plugins: tuple[Path, Path],
) -> None:
    directory, log = plugins
    _plugin(directory, "one", log)
    _plugin(directory, "two", log)
    result = cni.add(CONFLIST, _inv(directory))
    first, second = _calls(log)
    assert [first["plugin"], second["plugin"]] == ["one", "two"]
    assert first["command"] == second["command"] == "ADD"
    assert first["stdin"] == {"type": "one", "mtu": 1400, "cniVersion": "1.0.0", "name": "netlet-x"}
    assert second["stdin"]["prevResult"]["madeBy"] == "one"  # type: ignore[index]
    assert result["madeBy"] == "two"
    for call in (first, second):
        assert call["id"] == "c0ffee"
        assert call["netns"] == "/run/netns/netlet-x-pod-default.p"
        assert call["ifname"] == "eth0"
        assert call["path"] == str(directory)
        assert "K8S_POD_NAME=p" in str(call["args"])


def test_del_runs_plugins_in_reverse_each_with_the_final_add_result(
    plugins: tuple[Path, Path],
) -> None:
    directory, log = plugins
    _plugin(directory, "one", log)
    _plugin(directory, "two", log)
    stored = {"cniVersion": "1.0.0", "ips": [], "madeBy": "stored"}
    cni.delete(CONFLIST, _inv(directory), stored)
    calls = _calls(log)
    assert [(c["command"], c["plugin"]) for c in calls] == [("DEL", "two"), ("DEL", "one")]
    assert all(c["stdin"]["prevResult"] == stored for c in calls)  # type: ignore[index]


def test_a_failing_plugin_raises_its_cni_error_and_the_attachment_is_deleted_again(
    plugins: tuple[Path, Path],
) -> None:
    directory, log = plugins
    _plugin(directory, "one", log)
    _plugin(directory, "two", log, FAIL_ADD)
    with pytest.raises(cni.CniError) as info:
        cni.add(CONFLIST, _inv(directory))
    err = info.value
    assert (err.plugin, err.command, err.code, err.msg, err.details) == (
        "two",
        "ADD",
        7,
        "injected failure",
        "by two",
    )
    assert "Pod default/p" in str(err) and "CNI error code 7" in str(err)
    calls = [(c["command"], c["plugin"]) for c in _calls(log)]
    assert calls == [("ADD", "one"), ("ADD", "two"), ("DEL", "two"), ("DEL", "one")]
    # The clean-up carries the last result that was obtained.
    assert _calls(log)[2]["stdin"]["prevResult"]["madeBy"] == "one"  # type: ignore[index]


def test_a_missing_plugin_binary_names_the_plugin_and_the_search_path(
    plugins: tuple[Path, Path],
) -> None:
    directory, log = plugins
    _plugin(directory, "one", log)
    with pytest.raises(cni.CniError, match=r"plugin 'two'.*plugin binary not found in CNI_PATH"):
        cni.add(CONFLIST, _inv(directory))


def test_missing_plugins_lists_plugins_and_their_ipam_that_cannot_be_found(tmp_path: Path) -> None:
    present = tmp_path / "ptp"
    present.write_text("#!/bin/sh\n")
    present.chmod(0o755)
    not_executable = tmp_path / "tuning"
    not_executable.write_text("")
    conflist = cni.pod_conflist(
        "ptp", "n", cni.host_local_ipam("/d", ["10.0.0.0/24"], ["10.0.0.1"], []), 1500
    )
    assert cni.missing_plugins([conflist, cni.loopback_conflist()], [str(tmp_path)]) == [
        "host-local",
        "loopback",
        "tuning",
    ]
    assert os.access(present, os.X_OK)


@pytest.mark.parametrize(
    "ips, expected",
    [
        (
            ["10.244.1.7"],
            [
                {
                    "subnet": "10.244.1.0/24",
                    "gateway": "10.244.1.1",
                    "rangeStart": "10.244.1.7",
                    "rangeEnd": "10.244.1.7",
                }
            ],
        ),
        ([], [{"subnet": "10.244.1.0/24", "gateway": "10.244.1.1"}]),
    ],
    ids=[
        "a pod with an IP gets a range of exactly that IP",
        "a pod without an IP gets the node's podCIDR",
    ],
)
def test_host_local_ranges_pin_the_pod_ip_the_cluster_state_chose(
    ips: list[str], expected: list[dict[str, str]]
) -> None:
    ipam = cni.host_local_ipam("/run/netlet/x/cni", ["10.244.1.0/24"], ["10.244.1.1"], ips)
    assert ipam["type"] == "host-local"
    assert ipam["ranges"] == [expected]
    assert ipam["routes"] == [{"dst": "0.0.0.0/0"}]
    assert ipam["dataDir"] == "/run/netlet/x/cni"
