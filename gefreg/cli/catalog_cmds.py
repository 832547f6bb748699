"""Commands that work on catalog records alone: init, new, render, lint, lock."""

from __future__ import annotations

from pathlib import Path

import click

from gefreg.cli import cli
from gefreg.cli.options import json_option, load, settings_options
from gefreg.errors import CheckFailed


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Start a catalog repository of your own in DIRECTORY (default: here).

    Writes catalog/ with the two curated bases (debian-bookworm, python-bookworm) and an
    empty base lock, catalog/policy.yaml with the production scan policy, catalog/trust.yaml
    requiring signed releases (add your key with `gefreg trust add`), a README for the
    catalog, a .gitignore for gefreg's state, and the CI workflows (review of pull requests,
    publishing of main) that install this gefreg version from the package index. Nothing is
    overwritten: an existing README or .gitignore is kept, and an existing catalog/ stops it.

    \b
    Example:
      gefreg init our-catalog && cd our-catalog && git init
      gefreg registry serve && gefreg base build --all
      gefreg new my-tool --template python
    """
    from gefreg.catalog.entries import relative
    from gefreg.catalog.new_catalog import init_catalog

    made = init_catalog(directory)
    for path in made.files:
        click.echo(f"created {relative(path)}")
    for path in made.kept:
        click.echo(f"kept your {relative(path)}", err=True)
    here = relative(made.directory)
    steps = [] if here == "." else [f"cd {here}"]
    if not (made.directory / ".git").exists():
        steps.append("git init")
    steps += [
        "gefreg registry serve          # or set GEFREG_REGISTRY to your registry",
        "gefreg base build --all        # the curated bases; writes catalog/bases/lock.json",
        "gefreg key generate ~/keys/ours && gefreg trust add ~/keys/ours/gefreg.pub --id ours",
        "gefreg new my-tool             # your first service",
    ]
    click.echo("next:\n" + "\n".join(f"  {step}" for step in steps), err=True)


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
    labels complete (GR105), GEF ports match the record (GR106), pip packages locked (GR107),
    no placeholder left from `gefreg new` (GR109); a warning when no golden tests are declared
    (GR108).

    Exits 1 when a finding at or above --failure-threshold remains, 2 when a record is invalid.

    \b
    Examples:
      gefreg lint                          # the whole catalog (what CI runs)
      gefreg lint my-tool --no-hadolint    # one entry, gefreg's own rules only
      gefreg lint --failure-threshold warning --json
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
            f"lint {verdict}: {ui.count(len(report.entries), 'entry')}, "
            f"{ui.count(len(report.findings), 'finding')}",
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
    """Write the lock files of ENTRIES: pip.lock (wheels by hash), apt.lock (Debian versions).

    pip.lock: pip's own resolver finds the whole dependency closure of packages.pip for the
    image's Python and platform (CPython 3.11, linux x86-64, binary wheels only), without
    installing anything; distributions the record's Debian packages provide
    (packages.apt-provides) are left out with what only they need. Builds then install
    exactly these files, offline, with --require-hashes --no-deps.

    apt.lock: every Debian package the apt step installs, at its exact version, as apt
    resolves packages.apt on the entry's base today (a container of the base runs `apt-get
    install --simulate`). Builds ask apt for exactly these versions, so a rebuild years later
    installs the same packages or names the ones the archive no longer has. A build writes
    a missing or outdated apt.lock itself; run this to move to the archive's newer versions
    (and bump the version).

    Commit both next to service.yaml; lint says when one no longer matches the record.

    \b
    Examples:
      gefreg lock my-tool
      gefreg lock waveform-metadata && git diff catalog/waveform-metadata/
    """
    from gefreg.catalog.entries import base_names, load_entry, load_lock, relative, resolve
    from gefreg.catalog.wheels import lock
    from gefreg.cli import ui
    from gefreg.errors import BadInput

    settings = load(catalog, registry)
    engine = None
    for folder in resolve(settings.catalog, list(entries)):
        entry = load_entry(folder, base_names(settings.catalog))
        if not entry.spec.pip and not entry.spec.apt:
            raise BadInput(f"{entry.name} has no packages.pip or packages.apt to lock")
        if entry.spec.pip:
            locked = lock(entry)
            state = "wrote" if locked.changed else "unchanged"
            wheels = ", ".join(p.requirement for p in locked.pins)
            count = ui.count(len(locked.pins), "wheel")
            click.echo(f"{state} {relative(locked.path)}: {count} ({wheels})")
        if entry.spec.apt:
            from gefreg.engine import Engine
            from gefreg.image.build import lock_apt

            engine = engine or Engine.connect()
            path = lock_apt(engine, settings, entry, load_lock(settings.catalog))
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
@click.option("--license", "license_", metavar="SPDX", help="Its license, e.g. Apache-2.0.")
@settings_options
def new(
    name: str,
    template: str,
    base: str | None,
    description: str | None,
    maintainer: str | None,
    license_: str | None,
    catalog: str | None,
    registry: str | None,
) -> None:
    """Scaffold a new catalog entry NAME that builds and tests right away.

    Writes CATALOG/NAME/service.yaml (commented), a small working service script and a
    sample input for its golden test. Replace the script and the sample with your own, then
    run `gefreg test NAME --update` to record the expected output hashes. What you did not
    give as options (description, license, maintainer) is written as a marked placeholder:
    lint and publish refuse it until you have set it.

    \b
    Examples:
      gefreg new spectrogram --template python
      gefreg new fixity --template static --license MIT --maintainer 'Ada <ada@example.org>' \\
          --description 'A SHA-256 manifest of a data collection.'
    """
    from gefreg.catalog.entries import relative
    from gefreg.catalog.scaffold import new_entry

    settings = load(catalog, registry)
    made = new_entry(
        settings.catalog,
        name,
        template,
        base=base,
        description=description,
        maintainer=maintainer,
        license=license_,
    )
    for path in made.files:
        click.echo(f"created {relative(path)}")
    for note in made.notes:
        click.echo(note, err=True)
    click.echo("next:\n" + "\n".join(f"  {step}" for step in made.next_steps), err=True)
