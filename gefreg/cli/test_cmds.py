"""`gefreg test`: the golden tests of an entry, through the same hardened runner as `run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gefreg.cli import cli
from gefreg.cli.options import json_option, settings_options
from gefreg.cli.run_cmds import _observer, _print_stderr, _settings


def _print_tests(report: Any) -> None:
    for result in report.results:
        verdict = "PASS" if result.passed else "FAIL"
        extra = "" if result.run_status == "succeeded" else f" — run {result.run_status}: "
        click.echo(f"{verdict} {result.name}{extra}{result.error or '' if extra else ''}")
        for check in result.files:
            digest = check.actual or check.expected or ""
            line = f"  {check.status:<10} {check.key}  {digest[:19]}…"
            if check.status == "changed":
                line += f" (expected {str(check.expected)[:19]}…)"
            click.echo(line)
        if not result.passed:
            if result.run_status != "succeeded":
                _print_stderr(result.record)
            click.echo(f"  record: {result.record}")
            if result.outputs:
                click.echo(f"  outputs kept in: {result.outputs}")


@cli.command(name="test")
@click.argument("target", metavar="PATH|NAME[@VERSION]")
@click.option("--update", is_flag=True, help="Rewrite the expected hashes in service.yaml.")
@settings_options
@json_option
def test_cmd(
    target: str, update: bool, catalog: str | None, registry: str | None, as_json: bool
) -> None:
    """Run the golden tests an entry declares, through the same hardened runner as `run`.

    Each test runs the built image on sample input folders of the entry and compares every
    output file with its expected sha256 (`expect` in service.yaml). Reports pass/fail per test
    and per file; exit 1 on any mismatch. --update rewrites the expected hashes in place,
    keeping comments and layout, and lists what changed (exit 1 only if a run failed).

    \b
    Examples:
      gefreg test fixity-manifest
      gefreg test fixity-manifest@1.0.0        # the published image, pulled by digest
      gefreg test catalog/fixity-manifest --update
    """
    from gefreg.catalog.entries import base_names, load_entry, resolve
    from gefreg.cli import ui
    from gefreg.engine import Engine
    from gefreg.errors import BadInput, CheckFailed
    from gefreg.release.ledger import CatalogLedger
    from gefreg.release.trust import verify_image
    from gefreg.release.versions import understood
    from gefreg.run.image_choice import resolve_image
    from gefreg.run.service_tests import built_image, run_tests

    settings = _settings(catalog, registry, need_catalog=True)
    name, version = target, None
    if not Path(target).exists() and "@" in target:
        name, _, pin = target.partition("@")
        version = understood(pin)  # `@v1.2.3` is 1.2.3
    [folder] = resolve(settings.catalog, [name])
    entry = load_entry(folder, base_names(settings.catalog))
    if not entry.spec.tests:
        click.echo(f"{entry.name}: no tests declared in {entry.record_path}", err=True)
        if as_json:
            ui.print_json({"entry": entry.name, "passed": True, "tests": []})
        return
    engine = Engine.connect()
    if version is None:
        image = built_image(settings, entry, engine)
    elif version != entry.spec.version:
        raise BadInput(
            f"service.yaml declares the tests of {entry.name} {entry.spec.version}, not {version}",
            f"test {version} from the catalog revision that has it (git checkout), or test "
            f"{entry.name}@{entry.spec.version}",
        )
    with ui.Progress() as progress:
        if version is not None:  # a published version: from the ledger, pulled by digest
            progress.watch_pulls(engine)
            image = verify_image(
                engine,
                resolve_image(
                    settings,
                    f"{entry.name}@{version}",
                    engine=engine,
                    ledger=CatalogLedger(settings),
                ),
            )
        report = run_tests(
            settings,
            entry,
            engine=engine,
            image=image,
            update=update,
            observer=_observer(progress),
        )
    if as_json:
        ui.print_json(report.to_json())
    else:
        _print_tests(report)
        for change in report.changes:
            click.echo(change.describe())
        if report.updated:
            click.echo(f"updated {report.updated} ({ui.count(len(report.changes), 'change')})")
    failed = [r for r in report.results if not r.passed]
    if update:
        failed = [r for r in failed if r.run_status != "succeeded"]
    if failed:
        raise CheckFailed(
            f"{len(failed)} of {len(report.results)} tests failed: "
            + ", ".join(r.name for r in failed)
        )
