"""`gefreg serve`, `gefreg token new` and `gefreg site`: the GEF instance."""

from __future__ import annotations

from pathlib import Path

import click

from gefreg.cli import cli
from gefreg.cli.options import json_option, settings_options

tokens_option = click.option(
    "--tokens",
    "tokens",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The token file (JSON lines holding only SHA-256 hashes of the tokens).",
)


@cli.group()
def token() -> None:
    """Bearer tokens for `gefreg serve`.

    \b
    Examples:
      gefreg token new --tokens tokens.jsonl                  a token that may submit tasks
      gefreg token new --tokens tokens.jsonl --read-only      one that may only read them
      gefreg token new --tokens tokens.jsonl --owner alice    tasks shared by alice's tokens
    """


@token.command(name="new")
@tokens_option
@click.option("--read-only", is_flag=True, help="The token may list and read tasks, not submit.")
@click.option(
    "--owner",
    metavar="NAME",
    help="Tokens of one owner see the same tasks [default: the token alone].",
)
@json_option
def token_new(tokens: Path, read_only: bool, owner: str | None, as_json: bool) -> None:
    """Make a token: append its entry (a hash, never the token) to FILE and print the token
    once, as the last line of standard output. Keep it: it cannot be shown again.

    A running server sees the new token at once. To revoke one, delete its line (the id is
    printed on standard error and stored in the line).

    \b
    Examples:
      TOKEN=$(gefreg token new --tokens /etc/gefreg/tokens.jsonl | tail -n1)
      curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/ga4gh/tes/v1/tasks
    """
    from gefreg.cli import ui
    from gefreg.serve.tokens import new_token

    value, entry = new_token(tokens, read_only=read_only, owner=owner)
    kind = "read-only token" if read_only else "token"
    click.echo(f"new {kind} {entry.id} (owner {entry.owner}) in {tokens}", err=True)
    if as_json:
        ui.print_json(
            {"id": entry.id, "owner": entry.owner, "read_only": read_only, "token": value}
        )
    else:
        click.echo(value)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port."
)
@tokens_option
@click.option(
    "--data-root",
    "data_roots",
    multiple=True,
    required=True,
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="A folder tasks may read (file:// inputs) and write (outputs); repeat for several.",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Parallel tasks."
)
@click.option(
    "--home",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Tasks, staging and the input cache [default: STATE/serve].",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="HOST",
    help="Allow http(s) inputs from this host although it is on a private network.",
)
@click.option(
    "--b2share",
    multiple=True,
    metavar="URL",
    help="A B2SHARE instance whose records may be inputs [default: https://b2share.eudat.eu].",
)
@click.option("--doi-resolver", default="https://doi.org", show_default=True, metavar="URL")
@click.option(
    "--handle-resolver", default="https://hdl.handle.net", show_default=True, metavar="URL"
)
@click.option(
    "--max-input",
    default="10g",
    show_default=True,
    metavar="SIZE",
    help="Bytes a task may stage (unless it asks for resources.disk_gb).",
)
@click.option(
    "--max-unfinished",
    type=click.IntRange(1, 10**6),
    default=1000,
    show_default=True,
    metavar="N",
    help="Tasks one owner may have queued or running; more are refused (429).",
)
@click.option(
    "--staging-timeout",
    default="1h",
    show_default=True,
    metavar="TIME",
    help="Time a task's downloads (http, B2SHARE, DOI, handle inputs) may take together.",
)
@settings_options
def serve(
    host: str,
    port: int,
    tokens: Path,
    data_roots: tuple[Path, ...],
    workers: int,
    home: Path | None,
    allow_hosts: tuple[str, ...],
    b2share: tuple[str, ...],
    doi_resolver: str,
    handle_resolver: str,
    max_input: str,
    max_unfinished: int,
    staging_timeout: str,
    catalog: str | None,
    registry: str | None,
) -> None:
    """Run the GEF instance in the foreground: the GA4GH TES 1.1 API under /ga4gh/tes/v1 and
    the web catalog at /, until Ctrl-C.

    Only published releases of the catalog run (executor image NAME@VERSION or
    REGISTRY/NAME@sha256:DIGEST), hardened, through the same runner as `gefreg run`, one run
    record per executor. Inputs: file:// paths under a --data-root (others are refused with
    403), http(s) URLs, B2SHARE records, DOIs and handles, and literal content; outputs go to
    file:// destinations under a data root. Tasks are kept in STATE/serve/tasks.sqlite and
    survive a restart (tasks that were running end as SYSTEM_ERROR, queued ones still run).

    \b
    Examples:
      gefreg token new --tokens tokens.jsonl | tail -n1 > my.token
      gefreg serve --tokens tokens.jsonl --data-root /srv/data --workers 2
      gefreg serve --host 0.0.0.0 --port 8443 --tokens t.jsonl --data-root /a --data-root /b
    """
    import uvicorn

    from gefreg.cli.options import load
    from gefreg.errors import BadInput
    from gefreg.limits import parse_duration, parse_memory
    from gefreg.serve.app import create_app
    from gefreg.serve.config import DEFAULT_B2SHARE, ServeConfig
    from gefreg.serve.config import data_roots as check_roots
    from gefreg.serve.tokens import read_tokens

    settings = load(catalog, registry)
    limit = parse_memory(max_input)
    if not limit:
        raise BadInput(f"--max-input {max_input!r}: expected a size like 10g or 500m")
    seconds = parse_duration(staging_timeout)
    if not seconds:
        raise BadInput(f"--staging-timeout {staging_timeout!r}: expected a time like 1h or 90s")
    read_tokens(tokens)  # a missing or broken token file is an error now, not at the first request
    config = ServeConfig(
        settings=settings,
        tokens=tokens.resolve(),
        data_roots=check_roots(data_roots),
        workers=workers,
        home=home.resolve() if home else None,
        allow_hosts=frozenset(h.lower() for h in allow_hosts),
        b2share=b2share or DEFAULT_B2SHARE,
        doi_resolver=doi_resolver,
        handle_resolver=handle_resolver,
        max_input_bytes=limit,
        max_unfinished=max_unfinished,
        staging_timeout=seconds,
    )
    click.echo(
        f"gefreg serve: http://{host}:{port}/ (catalog {settings.catalog}, registry "
        f"{settings.registry}, {workers} worker(s), data roots: "
        + ", ".join(str(r) for r in config.data_roots)
        + ")",
        err=True,
    )
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False)


@cli.command()
@click.option(
    "--output",
    "-o",
    required=True,
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="The site's folder (new, empty, or an earlier site).",
)
@click.option(
    "--no-cwl", is_flag=True, help="Leave out the CWL tool files (no Docker engine needed)."
)
@settings_options
@json_option
def site(
    output: Path, no_cwl: bool, catalog: str | None, registry: str | None, as_json: bool
) -> None:
    """Write the web catalog as a static site for any web server.

    The same pages `gefreg serve` shows at /: every entry with search, its versions (digest,
    date, size, yanked), ports, resources, labels, scan verdict and counts, SBOM, signature
    status, ledger history and commands for gefreg, docker, cwltool and Toil. Pages hold no
    time of writing: the same catalog, ledgers and registry give byte-identical files. What
    only the registry knows (sizes, labels, SBOMs) is fetched by digest; when it cannot answer
    the pages say so and the problems are listed (exit 0 still).

    \b
    Examples:
      gefreg site --output public/
      gefreg site -o /var/www/catalog --registry harbor.example.org/gef
      rsync -a public/ web.example.org:/srv/catalog/
    """
    from gefreg.cli import ui
    from gefreg.cli.options import load
    from gefreg.engine import Engine
    from gefreg.serve.site import write_site

    settings = load(catalog, registry)
    engine = None if no_cwl else Engine.connect()
    report = write_site(settings, engine, output)
    for problem in report.problems:
        click.echo(f"warning: {problem}", err=True)
    if as_json:
        ui.print_json(
            {
                "folder": str(report.folder),
                "entries": report.entries,
                "versions": report.versions,
                "files": report.files,
                "removed": report.removed,
                "problems": list(report.problems),
            }
        )
    else:
        click.echo(
            f"site of {ui.count(report.entries, 'entry')} ({ui.count(report.versions, 'version')}, "
            f"{ui.count(report.files, 'file')}) "
            f"in {report.folder}"
        )
