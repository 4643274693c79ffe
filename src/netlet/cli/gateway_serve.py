"""`netlet gateway serve`: run the Gateway data plane (the asyncio proxy) on manifests.

Port mapping without root: listener ports below 1024 cannot be bound, so with
`--bind-override` they move up by `--port-offset` (default 8000 when not root,
0 as root): a Gateway's HTTP listener on 80 is served on 127.0.0.1:8080, HTTPS 443
on 8443. Routing still sees the listener's own port (redirects, Host matching).
The map is printed at start and served on the admin endpoint's /config.

Backends: with a loopback `--bind-override` on the machine's own network only
loopback endpoints are used (anything else would leave through the machine's
network) unless `--allow-external-backends`; with `--netns` the namespace's own
routes are the limit, so pod IPs are used (the node lab runs each Gateway's proxy
that way, see netlet.dataplane.lab.gateways).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from netlet.cli.common import EXIT_BAD_INPUT, FilesOption, fail, stderr_console


def serve(
    files: FilesOption = [],  # noqa: B006 - typer reads the default, never mutates it
    gateway: Annotated[
        list[str] | None,
        typer.Option("--gateway", "-g", help="Only this Gateway (NS/NAME). Repeatable."),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Reload when a manifest changes (old config kept on errors)."),
    ] = False,
    bind_override: Annotated[
        str | None,
        typer.Option(
            "--bind-override",
            help="Bind every listener on this address (e.g. 127.0.0.1) instead of the Gateway's.",
        ),
    ] = None,
    port_offset: Annotated[
        int | None,
        typer.Option(
            "--port-offset",
            help="Added to listener ports below 1024 (default: 0 as root, 8000 otherwise).",
        ),
    ] = None,
    admin: Annotated[
        str | None,
        typer.Option(
            "--admin", help="Admin endpoint HOST:PORT (/healthz /stats /metrics /config)."
        ),
    ] = None,
    access_log: Annotated[
        str | None,
        typer.Option("--access-log", help="JSON-lines access log: a file, or - for stderr."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, help="Worker processes sharing the ports (SO_REUSEPORT)."),
    ] = 1,
    netns: Annotated[
        str | None,
        typer.Option("--netns", help="Run inside this network namespace (/run/netns/NAME)."),
    ] = None,
    max_streams: Annotated[
        int, typer.Option("--max-streams", min=1, help="HTTP/2 concurrent streams per connection.")
    ] = 100,
    idle_timeout: Annotated[
        float,
        typer.Option("--idle-timeout", help="Seconds before an idle client connection closes."),
    ] = 60.0,
    no_uvloop: Annotated[
        bool, typer.Option("--no-uvloop", help="Use asyncio's own event loop.")
    ] = False,
    allow_external_backends: Annotated[
        bool,
        typer.Option(
            "--allow-external-backends",
            help="With a loopback --bind-override, also send to endpoints outside loopback.",
        ),
    ] = False,
) -> None:
    """Serve every Programmed listener of netlet's Gateways: HTTP/1.1, HTTP/2 and gRPC,
    TLS termination and passthrough, TCP and UDP, routed by the gateway tables."""
    from netlet.dataplane.proxy.limits import Limits
    from netlet.dataplane.proxy.serve import ServeOptions, run

    if not files:
        fail("no input: give manifests with -f FILE|DIR (repeatable)")
    if "-" in files:
        fail("serve reads files it can watch: give paths, not - (stdin)")
    for name in gateway or []:
        if name.count("/") != 1:
            fail(f"--gateway {name!r}: expected NAMESPACE/NAME")
    limits = dataclasses.replace(Limits(), max_streams=max_streams, idle_timeout=idle_timeout)
    options = ServeOptions(
        paths=tuple(files),
        gateways=tuple(gateway or ()),
        bind_override=bind_override,
        port_offset=port_offset,
        watch=watch,
        admin=admin,
        access_log=access_log,
        workers=workers,
        netns=netns,
        use_uvloop=not no_uvloop,
        allow_external_backends=allow_external_backends,
        limits=limits,
    )
    console = stderr_console()

    def report(message: str) -> None:
        console.print(message, markup=False, highlight=False)

    try:
        code = run(options, report)
    except OSError as exc:
        fail(str(exc))
    if code:
        raise typer.Exit(code if code != 2 else EXIT_BAD_INPUT)
