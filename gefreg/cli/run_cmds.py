"""Commands that run services: run and reproduce (`gefreg test` is in test_cmds)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gefreg.cli import cli
from gefreg.cli.options import json_option, settings_options
from gefreg.errors import CheckFailed

if TYPE_CHECKING:
    from gefreg.cli.ui import Progress
    from gefreg.run.request import RunObserver, RunResult
    from gefreg.settings import Settings

PROGRESS_MIN_BYTES = 64 * 1024**2


def _settings(catalog: str | None, registry: str | None, need_catalog: bool) -> Settings:
    """Settings; without a catalog (reproduce, --image) fall back to $GEFREG_STATE or ./.gefreg."""
    from gefreg.errors import BadInput
    from gefreg.settings import DEFAULT_REGISTRY, Settings, load_settings

    try:
        return load_settings(catalog, registry)
    except BadInput:
        if need_catalog or catalog:
            raise
    state = Path(os.environ.get("GEFREG_STATE") or ".gefreg").resolve()
    return Settings(Path("catalog").resolve(), registry or DEFAULT_REGISTRY, state)


def _observer(progress: Progress, follow: bool = False) -> RunObserver:
    from gefreg.run.log_tail import visible
    from gefreg.run.request import RunObserver

    class Shown(RunObserver):
        """Steps as status lines; hashing of more than 64 MiB as a step with bytes and rate;
        with ``follow`` every line the service writes, as it writes it (on stderr, made
        visible: stdout stays clean for --json, and no escape sequence reaches the terminal)."""

        follows = follow

        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.hashing_what: str | None = None
            self.report: Callable[[int, int | None], None] | None = None

        def output(self, stream: str, line: str) -> None:
            progress.echo(f"{'out' if stream == 'stdout' else 'err'} | {visible(line)}")

        def status(self, text: str) -> None:
            with self.lock:
                self.hashing_what = None
                progress.status(text)

        def hashing(self, what: str, done: int, total: int) -> None:
            if total < PROGRESS_MIN_BYTES:
                return
            with self.lock:
                if what != self.hashing_what or self.report is None:
                    self.hashing_what = what
                    progress.status(f"hashing {what} ({total / 1e9:.2f} GB)")
                    self.report = progress.transfer()
                self.report(done, total)

    return Shown()


def _summary(result: RunResult) -> str:
    r = result.record
    outputs = sum(len(m.files) for m in result.outputs.values())
    roots = ", ".join(f"{p} {m.root[:19]}…" for p, m in result.outputs.items())
    return (
        f"{r.service.name} {r.service.version or ''}: {result.status} "
        f"(exit {result.exit_code}) in {r.duration_s} s; "
        f"{outputs} output files ({roots})"
    )


@cli.command(name="run")
@click.argument("target", required=False, metavar="NAME[@VERSION|@sha256:DIGEST]")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[-- ARGS...]")
@click.option(
    "--input", "-i", "inputs", multiple=True, metavar="[PORT=]DIR", help="An input folder."
)
@click.option(
    "--output", "-o", "outputs", multiple=True, metavar="[PORT=]DIR", help="An output folder."
)
@click.option(
    "--record",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Where to write the run record [default: STATE/runs/TIME-NAME-ID/run.json].",
)
@click.option("--force", is_flag=True, help="Allow output folders that hold files (never changed).")
@click.option(
    "--overwrite", is_flag=True, help="With --force: new files replace same-named old ones."
)
@click.option("--image", "image_ref", metavar="REF", help="Run a local image not in the catalog.")
@click.option("--allow-untrusted", is_flag=True, help="Allow images that are not in the catalog.")
@click.option(
    "--allow-yanked", is_flag=True, help="Run a yanked release anyway (the record says so)."
)
@click.option("--memory", metavar="SIZE", help="Memory limit, e.g. 512m [default: the record's].")
@click.option("--cpus", type=float, help="CPU limit, e.g. 0.5 [default: the record's].")
@click.option("--timeout", metavar="DURATION", help="Wall-clock limit, e.g. 90s, 10m.")
@click.option("--pids", type=int, help="Process limit [default: the record's].")
@click.option("--disk", metavar="SIZE", help="Space the outputs may take, e.g. 50m [default: 10g].")
@click.option(
    "--log-limit", metavar="SIZE", help="Bytes kept of stdout and of stderr [default: 10m]."
)
@click.option("--follow", "-f", is_flag=True, help="Show what the service writes while it runs.")
@settings_options
@json_option
def run_cmd(
    target: str | None,
    args: tuple[str, ...],
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    record: Path | None,
    force: bool,
    overwrite: bool,
    image_ref: str | None,
    allow_untrusted: bool,
    allow_yanked: bool,
    memory: str | None,
    cpus: float | None,
    timeout: str | None,
    pids: int | None,
    disk: str | None,
    log_limit: str | None,
    follow: bool,
    catalog: str | None,
    registry: str | None,
    as_json: bool,
) -> None:
    """Run a built catalog service on your folders, hardened, and record the run.

    Each input port is mounted read-only, each output port writable; `PORT=` may be left out
    when the service has one port on that side. The container has no network, a read-only
    root file system, no capabilities, no new privileges, and runs as you (as uid 10001 or the
    record's user when you are root; the outputs are handed back to you afterwards), with the
    record's memory, CPU, pids, time and disk limits; its output goes to fresh folders gefreg
    owns, moved into yours afterwards. --force writes into folders that hold files already:
    the service never sees them, and a new file whose name is taken is refused (the run fails,
    the new outputs are kept beside yours) unless --overwrite.

    The run record (JSON) lists image, command, mounts, limits as applied, times, exit code,
    logs, and the sha256 of every input and output file. Its path is printed; --json prints
    the record instead. --follow shows what the service writes while it runs; when it fails,
    the last lines of its stderr are shown with the path of the whole log. Exit 0 when the
    service succeeded, 1 when it failed or timed out, 2 for bad input, 3 when the engine
    failed (the record then says `incomplete`).

    \b
    Examples:
      gefreg run fixity-manifest --input data/ --output out/
      gefreg run netcdf-summary@1.0.0 -i netcdf=nc/ -o summary=out/ --timeout 10m --disk 2g
      gefreg run waveform-metadata --input ~/archive --output out/ --follow
      gefreg run --image my/tool:dev --allow-untrusted -i in/ -o out/ -- --verbose
    """
    from gefreg.cli import ui
    from gefreg.engine import Engine
    from gefreg.release.ledger import CatalogLedger
    from gefreg.run.execute import run_service
    from gefreg.run.plan import LimitOverrides, plan_run

    if image_ref is not None and target is not None:
        args = (target, *args)  # with --image, every positional word is an argument
        target = None
    settings = _settings(catalog, registry, need_catalog=image_ref is None)
    engine = Engine.connect()
    with ui.Progress() as progress:
        progress.watch_pulls(engine)
        request = plan_run(
            settings,
            engine,
            target=target,
            image_ref=image_ref,
            inputs=inputs,
            outputs=outputs,
            args=args,
            limits=LimitOverrides(memory, cpus, timeout, pids, disk, log_limit),
            record=record,
            force=force or overwrite,
            overwrite=overwrite,
            allow_untrusted=allow_untrusted,
            allow_yanked=allow_yanked,
            ledger=CatalogLedger(settings),
        )
        result = run_service(request, engine=engine, observer=_observer(progress, follow))
        progress.done(_summary(result))
        progress.done(f"run record: {result.record_path}")
    if as_json:
        ui.print_json(result.record.to_json())
    else:
        click.echo(str(result.record_path))
    if not result.succeeded:
        raise _failed(
            request.service.name,
            result.status,
            result.error,
            result.record_path.with_name(result.record.logs[1].path),
            shown=follow,
        )


def _failed(name: str, status: str, error: str | None, stderr: Path, shown: bool) -> CheckFailed:
    """Why a service failed, with the last lines of its stderr (unless they were just shown
    live) and where the whole log is."""
    from gefreg.run.log_tail import tail

    message = f"{name} {status}: {error}"
    lines = [] if shown else tail(stderr)
    if lines:
        message += "\n  last lines of its stderr:\n" + "\n".join(f"    | {line}" for line in lines)
    elif not shown:
        message += "\n  (its stderr is empty)"
    return CheckFailed(message, f"its whole stderr: {stderr}")


@cli.command()
@click.argument("record", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="Folder for the new outputs, one sub-folder per port [default: next to the new record].",
)
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    metavar="[PORT=]DIR",
    help="Inputs found elsewhere than the recorded paths (must hash the same).",
)
@click.option(
    "--ignore", multiple=True, metavar="PATTERN", help="Also ignore PORT/glob (like volatile)."
)
@click.option("--allow-untrusted", is_flag=True, help="Re-run an image not from the catalog.")
@click.option("--allow-yanked", is_flag=True, help="Re-run a release yanked since.")
@settings_options
@json_option
def reproduce(
    record: Path,
    output: Path | None,
    inputs: tuple[str, ...],
    ignore: tuple[str, ...],
    allow_untrusted: bool,
    allow_yanked: bool,
    catalog: str | None,
    registry: str | None,
    as_json: bool,
) -> None:
    """Re-run the run recorded in RECORD and compare its outputs with the recorded ones.

    The same image — trusted only when the catalog vouches for it (a release in the ledger of
    the configured registry, or a build gefreg made; a record naming another registry, digest
    or image ID is refused with exit 1 before anything is pulled) — command, limits and inputs
    (refused when their hashes differ from the record). --allow-untrusted re-runs the engine's
    own image with the recorded ID (never pulled), recorded as trusted: false. Files matching the
    service's `volatile` patterns or --ignore are listed as ignored, never silently dropped.
    Exit 0 when the outputs are identical, 1 when they differ (added, removed and changed files
    are listed with sizes), 2 for bad input, 3 when the engine failed.

    \b
    Examples:
      gefreg reproduce .gefreg/runs/20250131T120000Z-fixity-manifest-1a2b3c4d/run.json
      gefreg reproduce run.json --input collection=/mnt/copy --ignore 'manifest/*.log' --json
    """
    from gefreg.cli import ui
    from gefreg.engine import Engine
    from gefreg.errors import CheckFailed
    from gefreg.run.reproduce import reproduce as run_reproduce

    settings = _settings(catalog, registry, need_catalog=False)
    engine = Engine.connect()
    with ui.Progress() as progress:
        progress.watch_pulls(engine)
        report = run_reproduce(
            settings,
            engine,
            record,
            output=output,
            inputs=inputs,
            ignore=ignore,
            allow_untrusted=allow_untrusted,
            allow_yanked=allow_yanked,
            observer=_observer(progress),
        )
        progress.done(f"re-run record: {report.rerun.record_path}")
    if as_json:
        ui.print_json(report.to_json())
    else:
        for line in report.lines():
            click.echo(line)
    if not report.identical:
        raise CheckFailed(f"{record} did not reproduce (see above)")


def _print_stderr(record: Path) -> None:
    from gefreg.run.log_tail import tail
    from gefreg.run.record import log_paths

    stderr = log_paths(record)[1]
    lines = tail(stderr)
    click.echo("  last lines of its stderr:" if lines else "  its stderr is empty")
    for line in lines:
        click.echo(f"    | {line}")
    click.echo(f"  whole stderr: {stderr}")
