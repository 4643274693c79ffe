"""A CNI runtime: invoke plugins exactly as a container runtime does.

Follows the CNI specification 1.0 (containernetworking/cni SPEC.md, "Section 2:
Execution Protocol" and "Section 4: Plugin Delegation"):

- a network configuration list (`cniVersion` 1.0.0, `name`, `plugins`) is
  executed plugin by plugin; each plugin gets its own object plus `name` and
  `cniVersion` on stdin, and from the second plugin on the previous plugin's
  result as `prevResult` ("Adding an attachment");
- parameters travel in CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
  CNI_ARGS and CNI_PATH;
- the final ADD result is stored by the caller; DEL runs the plugins in reverse
  order, each with that stored result as `prevResult` ("Deleting an attachment");
- an error is a JSON object with `code`, `msg` and `details` on stdout and a
  non-zero exit; a failed ADD is torn down with DEL, as runtimes do.

Plugins run with this thread inside the *node's* namespace (the runtime's host
namespace in a real cluster), so ptp/bridge put their host-side veth and routes
there and never in the machine's own namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netlet.dataplane.lab.errors import LabError
from netlet.dataplane.lab.kernel import entered

CNI_VERSION = "1.0.0"
DEFAULT_CNI_PATH: tuple[str, ...] = ("/opt/cni/bin", "/usr/lib/cni")
PLUGIN_TIMEOUT = 30.0
# Let ping work without privileges inside pods, as containerd's
# enable_unprivileged_icmp does; it also makes the chain exercise prevResult.
POD_SYSCTLS = {"net.ipv4.ping_group_range": "0 2147483647"}


class CniError(LabError):
    def __init__(
        self,
        *,
        plugin: str,
        command: str,
        who: str,
        code: int | None,
        msg: str,
        details: str = "",
    ) -> None:
        self.plugin = plugin
        self.command = command
        self.who = who
        self.code = code
        self.msg = msg
        self.details = details
        code_text = f" (CNI error code {code})" if code is not None else ""
        detail_text = f": {details}" if details else ""
        super().__init__(
            f"CNI {command} of plugin {plugin!r} for {who} failed{code_text}: {msg}{detail_text}"
        )


@dataclass(frozen=True, slots=True)
class Invocation:
    """Who a plugin runs for: the CNI parameters other than the command."""

    container_id: str
    netns: str  # CNI_NETNS: path of the pod's namespace
    ifname: str
    args: str  # CNI_ARGS
    plugin_netns: str | None  # namespace the plugin runs in (the node's); None: this one
    cni_path: tuple[str, ...]
    who: str  # for messages: "Pod default/web-0"


def find_plugin(kind: str, cni_path: Sequence[str]) -> Path | None:
    for directory in cni_path:
        candidate = Path(directory) / kind
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def plugin_types(conflist: dict[str, Any]) -> list[str]:
    """Every executable a configuration list needs (plugins and their IPAM)."""
    out = []
    for plugin in conflist["plugins"]:
        out.append(plugin["type"])
        ipam = plugin.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type"):
            out.append(ipam["type"])
    return out


def missing_plugins(conflists: Sequence[dict[str, Any]], cni_path: Sequence[str]) -> list[str]:
    wanted = sorted({t for c in conflists for t in plugin_types(c)})
    return [t for t in wanted if find_plugin(t, cni_path) is None]


def _derive(conflist: dict[str, Any], plugin: dict[str, Any], prev: dict[str, Any] | None) -> bytes:
    """The plugin's stdin ("Deriving execution configuration from plugin configuration")."""
    conf = dict(plugin)
    conf["cniVersion"] = conflist["cniVersion"]
    conf["name"] = conflist["name"]
    if prev is not None:
        conf["prevResult"] = prev
    return json.dumps(conf).encode()


def _run(
    command: str, plugin: dict[str, Any], stdin: bytes, inv: Invocation
) -> dict[str, Any] | None:
    kind = plugin["type"]
    path = find_plugin(kind, inv.cni_path)
    if path is None:
        raise CniError(
            plugin=kind,
            command=command,
            who=inv.who,
            code=None,
            msg=f"plugin binary not found in CNI_PATH {':'.join(inv.cni_path)}",
        )
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": inv.container_id,
        "CNI_NETNS": inv.netns,
        "CNI_IFNAME": inv.ifname,
        "CNI_ARGS": inv.args,
        "CNI_PATH": ":".join(inv.cni_path),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    try:
        with entered(inv.plugin_netns) if inv.plugin_netns else contextlib.nullcontext():
            proc = subprocess.run(
                [str(path)],
                input=stdin,
                env=env,
                capture_output=True,
                timeout=PLUGIN_TIMEOUT,
                check=False,
            )
    except subprocess.TimeoutExpired:
        raise CniError(
            plugin=kind,
            command=command,
            who=inv.who,
            code=None,
            msg=f"no answer within {PLUGIN_TIMEOUT:.0f} s",
        ) from None
    except OSError as exc:
        raise CniError(
            plugin=kind, command=command, who=inv.who, code=None, msg=f"cannot run {path}: {exc}"
        ) from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        code: int | None = None
        msg = out or proc.stderr.decode(errors="replace").strip() or f"exit {proc.returncode}"
        details = ""
        try:
            err = json.loads(out)
            code, msg, details = err.get("code"), err.get("msg", msg), err.get("details", "")
        except (ValueError, AttributeError):
            pass
        raise CniError(
            plugin=kind, command=command, who=inv.who, code=code, msg=msg, details=details
        )
    if command != "ADD":
        return None
    try:
        result = json.loads(out)
    except ValueError:
        raise CniError(
            plugin=kind,
            command=command,
            who=inv.who,
            code=None,
            msg=f"result is not JSON: {out[:200]}",
        ) from None
    if not isinstance(result, dict):
        raise CniError(
            plugin=kind, command=command, who=inv.who, code=None, msg="result is not an object"
        )
    return result


def add(conflist: dict[str, Any], inv: Invocation) -> dict[str, Any]:
    """ADD the attachment; return the final result. On failure the plugins that ran
    are deleted again (with the last result) and the error is raised."""
    prev: dict[str, Any] | None = None
    try:
        for plugin in conflist["plugins"]:
            result = _run("ADD", plugin, _derive(conflist, plugin, prev), inv)
            assert result is not None
            prev = result
    except CniError:
        # The namespace is removed next; the ADD error is the one to report.
        with contextlib.suppress(CniError):
            delete(conflist, inv, prev)
        raise
    assert prev is not None
    return prev


def delete(conflist: dict[str, Any], inv: Invocation, result: dict[str, Any] | None) -> None:
    """DEL the attachment: plugins in reverse order, each with the stored ADD result."""
    for plugin in reversed(conflist["plugins"]):
        _run("DEL", plugin, _derive(conflist, plugin, result), inv)


# Configuration lists the lab uses ------------------------------------------------------


def loopback_conflist() -> dict[str, Any]:
    """The loopback network runtimes set up first (containerd's `cni-loopback`)."""
    return {"cniVersion": CNI_VERSION, "name": "cni-loopback", "plugins": [{"type": "loopback"}]}


def host_local_ipam(
    data_dir: str, pod_cidrs: Sequence[str], gateways: Sequence[str], ips: Sequence[str]
) -> dict[str, Any]:
    """host-local IPAM: a range of exactly the wanted IP per family when the pod has
    one (so the kernel and the cluster state agree), else the node's podCIDR."""
    import ipaddress

    ranges = []
    routes = []
    for cidr, gateway in zip(pod_cidrs, gateways, strict=True):
        net = ipaddress.ip_network(cidr)
        wanted = next((ip for ip in ips if ipaddress.ip_address(ip) in net), None)
        item: dict[str, str] = {"subnet": cidr, "gateway": gateway}
        if wanted is not None:
            item["rangeStart"] = wanted
            item["rangeEnd"] = wanted
        ranges.append([item])
        routes.append({"dst": "0.0.0.0/0" if net.version == 4 else "::/0"})
    return {"type": "host-local", "dataDir": data_dir, "ranges": ranges, "routes": routes}


def pod_conflist(mode: str, network: str, ipam: dict[str, Any], mtu: int) -> dict[str, Any]:
    if mode == "ptp":
        main: dict[str, Any] = {"type": "ptp", "mtu": mtu, "ipam": ipam}
    elif mode == "bridge":
        main = {
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": True,
            "hairpinMode": True,
            "mtu": mtu,
            "ipam": ipam,
        }
    else:
        raise LabError(f"unknown CNI mode {mode!r}: use ptp or bridge")
    return {
        "cniVersion": CNI_VERSION,
        "name": network,
        "plugins": [main, {"type": "tuning", "sysctl": dict(POD_SYSCTLS)}],
    }


def pod_ips_from_result(result: dict[str, Any]) -> list[str]:
    return [ip["address"].split("/")[0] for ip in result.get("ips", [])]
