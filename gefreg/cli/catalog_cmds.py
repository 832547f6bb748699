"""Commands that work on catalog records alone: render, lint."""

from __future__ import annotations

import click

from gefreg.cli import cli
from gefreg.cli.options import json_option, load, settings_options
from gefreg.errors import CheckFailed


@cli.command()
@click.argument("entry")
@settings_options
@click.option("--labels", "show_labels", is_flag=True, help="Print the labels instead.")
@json_option
def render(
    entry: str, catalog: str | None, registry: str | None, show_labels: bool, as_json: bool
) -> None:
    """Print the annotated Dockerfile of ENTRY (a folder, a service.yaml or a name).

    Rendering is a pure function of the record, its shipped files, the template and the base
    lock: the same inputs always give byte-identical output.

    \b
    Example:
      gefreg render waveform-metadata > Dockerfile
    """
    from gefreg.catalog.entries import base_names, load_entry, resolve
    from gefreg.cli import ui
    from gefreg.image.build_plan import prepare

    settings = load(catalog, registry)
    [folder] = resolve(settings.catalog, [entry])
    plan = prepare(load_entry(folder, base_names(settings.catalog)), settings)
    if as_json:
        ui.print_json(
            {
                "entry": plan.entry.name,
                "version": plan.entry.spec.version,
                "fingerprint": plan.fingerprint.digest,
                "template": {"name": plan.template.name, "digest": plan.template.digest},
                "base": {"name": plan.base.name, "ref": plan.base.ref, "digest": plan.base.digest},
                "labels": dict(plan.rendered.labels),
                "dockerfile": plan.dockerfile,
            }
        )
    elif show_labels:
        for key, value in plan.rendered.labels:
            click.echo(f"{key}={value}")
    else:
        click.echo(plan.dockerfile, nl=False)


@cli.command()
@click.argument("entries", nargs=-1)
@settings_options
@click.option("--no-hadolint", is_flag=True, help="Skip hadolint (gefreg's own rules still run).")
@click.option(
    "--failure-threshold",
    type=click.Choice(["error", "warning", "info", "style"]),
    default="error",
    show_default=True,
    help="Lowest finding level that fails the lint.",
)
@json_option
def lint(
    entries: tuple[str, ...],
    catalog: str | None,
    registry: str | None,
    no_hadolint: bool,
    failure_threshold: str,
    as_json: bool,
) -> None:
    """Validate records, render them, and check the Dockerfiles (default: the whole catalog).

    Every record problem is reported with file:line:column at once. Rendered Dockerfiles are
    checked by hadolint (one call for many files) and by gefreg's own rules: base pinned by
    digest (GR101), no `latest` (GR102), final USER not root (GR103), no ADD of URLs (GR104),
    labels complete (GR105), GEF ports match the record (GR106), pip packages locked (GR107); a
    warning when no golden tests are declared (GR108).

    Exits 1 when a finding at or above --failure-threshold remains, 2 when a record is invalid.
    """
    from gefreg.cli import ui
    from gefreg.scan.lint import lint as run_lint

    settings = load(catalog, registry)
    report = run_lint(
        settings, list(entries), hadolint=not no_hadolint, threshold=failure_threshold
    )
    if as_json:
        ui.print_json(report.to_json())
    else:
        for finding in report.findings:
            click.echo(str(finding))
        verdict = "failed" if report.failed else "passed"
        click.echo(
            f"lint {verdict}: {len(report.entries)} entries, {len(report.findings)} findings",
            err=True,
        )
    if report.failed:
        invalid = any(f.rule in ("record", "render") for f in report.findings)
        if invalid:
            from gefreg.errors import BadInput

            raise BadInput("some records are invalid (see above)")
        raise CheckFailed("lint found problems (see above)")


@cli.command(name="lock")
@click.argument("entries", nargs=-1, required=True)
@settings_options
def lock_cmd(entries: tuple[str, ...], catalog: str | None, registry: str | None) -> None:
    """Write pip.lock for python-template ENTRIES: one wheel hash per packages.pip pin.

    Wheels are downloaded for the image platform (CPython 3.11, linux x86-64) into gefreg's
    wheel cache; builds then install exactly these files, offline, with --require-hashes.
    Commit pip.lock next to service.yaml.
    """
    from gefreg.catalog.entries import base_names, load_entry, relative, resolve
    from gefreg.catalog.wheels import lock

    settings = load(catalog, registry)
    for folder in resolve(settings.catalog, list(entries)):
        path = lock(load_entry(folder, base_names(settings.catalog)))
        click.echo(f"wrote {relative(path)}")


@cli.command()
@click.argument("name")
@click.option(
    "--template",
    type=click.Choice(["debian", "python", "static"]),
    default="debian",
    show_default=True,
    help="Dockerfile template of the new entry.",
)
@click.option("--base", help="Curated base [default: the template's usual base].")
@click.option("--description", help="One sentence saying what the service does.")
@click.option("--maintainer", metavar="'NAME <EMAIL>'", help="Who maintains it.")
@settings_options
def new(
    name: str,
    template: str,
    base: str | None,
    description: str | None,
    maintainer: str | None,
    catalog: str | None,
    registry: str | None,
) -> None:
    """Scaffold a new catalog entry NAME that lints, builds and tests right away.

    Writes CATALOG/NAME/service.yaml (commented), a small working service script and a
    sample input for its golden test. Replace the script and the sample with your own, then
    run `gefreg test NAME --update` to record the expected output hashes.

    \b
    Example:
      gefreg new spectrogram --template python --maintainer 'Ada <ada@example.org>'
    """
    from gefreg.catalog.entries import relative
    from gefreg.catalog.scaffold import new_entry

    settings = load(catalog, registry)
    made = new_entry(
        settings.catalog, name, template, base=base, description=description, maintainer=maintainer
    )
    for path in made.files:
        click.echo(f"created {relative(path)}")
    for note in made.notes:
        click.echo(note, err=True)
