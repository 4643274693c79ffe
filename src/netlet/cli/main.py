"""The `netlet` command. Each brain's commands live in their own module and are
registered here."""

from __future__ import annotations

import typer

from netlet import __version__
from netlet.cli.check import check
from netlet.cli.get import get

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


@app.command("version")
def version() -> None:
    """Print netlet's version."""
    typer.echo(f"netlet {__version__}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
