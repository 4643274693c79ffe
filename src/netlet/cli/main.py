"""The `netlet` command. Each brain's commands live in their own module and are
registered here."""

from __future__ import annotations

import typer

from netlet import __version__
from netlet.cli import lab as lab_cli
from netlet.cli import nft as nft_cli
from netlet.cli.check import FINDERS, check
from netlet.cli.gateway import gateway_app, gateway_findings
from netlet.cli.gateway_serve import serve as gateway_serve
from netlet.cli.get import WIDE_EXTRAS, get
from netlet.cli.policy import policy_app
from netlet.cli.svc import endpoints_cell, service_findings, svc_app
from netlet.policy.lint import policy_findings

app = typer.Typer(
    name="netlet",
    help=(
        "Kubernetes networking in Python: Services, NetworkPolicy, Gateway API and DNS, "
        "as an offline analyzer of manifests and as a real lab on one Linux node."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command("get")(get)
app.command("check")(check)
# The node lab (root only): src/netlet/cli/lab.py
# up/down: the lab's commands plus nftables (src/netlet/cli/nft.py wraps them).
app.command("up")(nft_cli.up)
app.command("status")(lab_cli.status)
app.command("exec")(lab_cli.exec_)
app.command("probe")(lab_cli.probe)
app.command("down")(nft_cli.down)
app.command("apply")(nft_cli.apply)
app.add_typer(nft_cli.render_app, name="render")
app.add_typer(svc_app, name="svc")
FINDERS.append(("services", service_findings))
app.add_typer(policy_app, name="policy")
FINDERS.append(("policy", policy_findings))
gateway_app.command("serve")(gateway_serve)
app.add_typer(gateway_app, name="gateway")
FINDERS.append(("gateway", gateway_findings))
WIDE_EXTRAS.setdefault("Service", []).append(("ENDPOINTS", endpoints_cell))


@app.command("version")
def version() -> None:
    """Print netlet's version."""
    typer.echo(f"netlet {__version__}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
