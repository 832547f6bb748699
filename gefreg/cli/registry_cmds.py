"""`gefreg registry serve|status|stop`: the embedded registry on this machine."""

from __future__ import annotations

from pathlib import Path

import click

from gefreg.cli import cli
from gefreg.cli.options import json_option

data_option = click.option(
    "--data",
    "data",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder [default: $GEFREG_REGISTRY_DATA or the user data folder, "
    "e.g. ~/.local/share/gefreg/registry].",
)


@cli.group()
def registry() -> None:
    """Run the embedded registry: a local OCI registry that gefreg publishes to by default.

    It is CNCF Distribution (Debian: apt-get install docker-registry) listening on
    127.0.0.1 only, storing images under the data folder; without the binary it runs the
    registry:2 image through Docker. Every command talks to it at 127.0.0.1:5000 unless
    --registry / $GEFREG_REGISTRY say otherwise.

    \b
    Examples:
      gefreg registry serve                  start it (does nothing if it already runs)
      gefreg registry serve --port 5001      on another port
      gefreg registry status --json          is it up? where are its files?
      gefreg registry stop
    """


@registry.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5000,
    show_default=True,
    help="Port on 127.0.0.1.",
)
@data_option
@click.option(
    "--backend",
    type=click.Choice(["auto", "binary", "docker"]),
    default="auto",
    show_default=True,
    help="binary: the docker-registry program; docker: the registry:2 image "
    "($GEFREG_REGISTRY_IMAGE); auto: the binary when installed.",
)
def serve(port: int, data: Path | None, backend: str) -> None:
    """Start the registry in the background and wait until it answers.

    Safe to run again: if it already serves on that port it says so and exits 0. A port used
    by another program is an error (exit 3). The server keeps running after this command
    returns; its log and state are in the data folder.

    \b
    Examples:
      gefreg registry serve
      gefreg registry serve --port 5001 --data /srv/gefreg-registry
    It prints the `export GEFREG_REGISTRY=...` line when gefreg would not use it by
    itself (another port than $GEFREG_REGISTRY or 127.0.0.1:5000).
    """
    from gefreg.registry import server as regserver

    served = regserver.serve(port, data, backend=backend)
    st = served.status
    who = f"pid {st.pid}" if st.pid else f"container {(st.container or '')[:12]}"
    if served.already:
        click.echo(f"registry already serving on {st.address} ({who})")
    else:
        click.echo(f"registry serving on {st.address} ({st.backend}, {who})")
    click.echo(f"  storage: {st.storage}\n  log:     {st.log}")
    if st.address:
        _point_at(st.address)


def _point_at(address: str) -> None:
    """When gefreg would not use this registry by itself, say how to point it there."""
    import os

    from gefreg.settings import DEFAULT_REGISTRY

    current = os.environ.get("GEFREG_REGISTRY") or DEFAULT_REGISTRY
    if current.removeprefix("http://").rstrip("/") != address:
        click.echo(f"  gefreg uses {current}; point it at this one:")
        click.echo(f"  export GEFREG_REGISTRY={address}")


@registry.command()
@data_option
@json_option
def status(data: Path | None, as_json: bool) -> None:
    """Show whether the registry runs, where, and whether it answers.

    Exits 0 when it runs and answers GET /v2/, 1 otherwise (so scripts can test it).

    \b
    Examples:
      gefreg registry status
      gefreg registry status --json | jq .address
    """
    from gefreg.cli import ui
    from gefreg.errors import EXIT_CHECK_FAILED
    from gefreg.registry import server as regserver

    st = regserver.status(data)
    if as_json:
        ui.print_json(st.to_json())
    elif st.running:
        who = f"pid {st.pid}" if st.pid else f"container {(st.container or '')[:12]}"
        answer = "answers /v2/" if st.answers else "does NOT answer /v2/"
        health = {True: ", healthy", False: ", health check failing", None: ""}[st.healthy]
        click.echo(f"registry running on {st.address} ({st.backend}, {who}), {answer}{health}")
        click.echo(f"  storage: {st.storage}\n  log:     {st.log}")
    else:
        extra = " (it stopped without `gefreg registry stop`)" if st.stale else ""
        click.echo(f"registry not running{extra}; data folder: {st.data_dir}")
        click.echo("  start it: gefreg registry serve")
    if not (st.running and st.answers):
        click.get_current_context().exit(EXIT_CHECK_FAILED)


@registry.command()
@data_option
def stop(data: Path | None) -> None:
    """Stop the registry started from this data folder (the stored images stay).

    Does nothing, successfully, when it is not running.

    \b
    Example:
      gefreg registry stop
    """
    from gefreg.registry import server as regserver

    stopped = regserver.stop(data)
    if stopped is None:
        click.echo("registry not running")
    else:
        click.echo(f"registry on {stopped.address} stopped; storage kept in {stopped.storage}")
