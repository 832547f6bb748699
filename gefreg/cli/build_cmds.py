"""Commands that make images: base build, build."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from gefreg.cli import cli
from gefreg.cli.options import json_option, load, settings_options

if TYPE_CHECKING:
    from gefreg.engine import BuildEvent


@cli.group()
def base() -> None:
    """Curated base images, built reproducibly from the Debian archive.

    \b
    Bases are records too: CATALOG/bases/NAME/base.yaml (suite, variant, packages, a fixed
    source_date_epoch). Building the same record twice gives the same image digest; the
    digest is written to CATALOG/bases/lock.json, which service renders pin FROM by digest.

    \b
    Examples:
      gefreg base build --all                # every base: mmdebstrap, then pushed
      gefreg base build python-bookworm --no-push --json
      gefreg base build --all --no-cache     # check the reproducibility claim
    """


@base.command(name="build")
@click.argument("names", nargs=-1)
@click.option("--all", "build_all", is_flag=True, help="Build every base in the catalog.")
@click.option("--no-cache", is_flag=True, help="Rebuild from the Debian archive even if cached.")
@click.option(
    "--push/--no-push",
    default=True,
    show_default=True,
    help="Push to the registry (service builds pull the base from there).",
)
@click.option("--load", "load_", is_flag=True, help="Also `docker load` the image into the engine.")
@settings_options
@json_option
def base_build(
    names: tuple[str, ...],
    build_all: bool,
    no_cache: bool,
    push: bool,
    load_: bool,
    catalog: str | None,
    registry: str | None,
    as_json: bool,
) -> None:
    """Build base images NAMES with mmdebstrap and assemble their OCI images.

    \b
    Examples:
      gefreg base build debian-bookworm
      gefreg base build --all --no-cache     # check the reproducibility claim
    """
    from gefreg.catalog.entries import load_all
    from gefreg.cli import ui
    from gefreg.errors import BadInput
    from gefreg.image import bases

    settings = load(catalog, registry)
    _, records = load_all(settings.catalog)
    by_name = {b.name: b for b in records}
    if not by_name:  # a CI job pointed at the wrong folder must not pass by building nothing
        raise BadInput(
            f"no base records under {settings.catalog / 'bases'}",
            "`gefreg init` writes the two curated bases; or point --catalog (GEFREG_CATALOG) "
            "at the folder that holds bases/NAME/base.yaml",
        )
    wanted = sorted(by_name) if build_all or not names else list(names)
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise BadInput(
            f"no base {', '.join(unknown)} in {settings.catalog}/bases",
            f"bases: {', '.join(sorted(by_name)) or 'none'}",
        )
    results = []
    with ui.Progress(enabled=True) as progress:
        for name in wanted:
            progress.status(f"{name}: mmdebstrap …")
            built = bases.build(
                settings,
                by_name[name],
                no_cache=no_cache,
                on_line=progress.noter(name),
            )
            result: dict[str, Any] = built.to_json()
            if push:
                progress.status(f"{name}: pushing to {settings.registry}")
                bases.push(settings, built)
                result["pushed"] = f"{bases.repository(settings, name)}@{built.digest}"
            if load_:
                _load(settings, built)
                result["loaded"] = True
            state = "cached" if built.cached else "built"
            lock = " (lock updated)" if built.lock_changed else ""
            progress.done(f"{name}: {state} {built.digest}{lock}")
            results.append(result)
    if as_json:
        ui.print_json(results)


def _load(settings: Any, built: Any) -> None:
    from gefreg.engine import Engine
    from gefreg.image import oci

    image = oci.open_layout(built.layout)
    tag = f"gefreg/bases/{built.name}:sha256-{built.digest.removeprefix('sha256:')[:16]}"
    archive = oci.write_docker_archive(image, built.layout.parent / "docker-archive.tar", [tag])
    Engine.connect().load(archive)


@cli.command()
@click.argument("entries", nargs=-1)
@click.option(
    "--all",
    "build_all",
    is_flag=True,
    help="Build the whole catalog: bases first, then every entry.",
)
@click.option("--no-cache", is_flag=True, help="Build from scratch, ignoring every cache.")
@settings_options
@json_option
def build(
    entries: tuple[str, ...],
    build_all: bool,
    no_cache: bool,
    catalog: str | None,
    registry: str | None,
    as_json: bool,
) -> None:
    """Build the images of ENTRIES (folders or names) through the Docker engine.

    The build context holds only the declared files (plus wheels from pip.lock). The result is
    a build record (.gefreg/builds/NAME/build.json) with image ID, tags, fingerprint, base
    digest, template, engine and gefreg versions and the log path. An unchanged entry is a
    cache hit: no docker build, answered in well under a second.

    \b
    Examples:
      gefreg build waveform-metadata
      gefreg build --all --json
    """
    settings = load(catalog, registry)
    _check_targets(settings, entries, build_all)
    if not build_all and not no_cache:
        hits = [_quick_hit(settings, target) for target in entries]
        if all(hits):
            _report([h for h in hits if h], as_json)
            return
    from gefreg.catalog.entries import base_names, load_all, load_entry, load_lock, resolve
    from gefreg.cli import ui
    from gefreg.engine import Engine
    from gefreg.image.build import build_entry

    engine = Engine.connect()
    if build_all:
        records, base_records = load_all(settings.catalog)
        _build_bases(settings, [b.name for b in base_records], no_cache)
        folders = [e.directory for e in records]
    else:
        folders = resolve(settings.catalog, list(entries))
    lock = load_lock(settings.catalog)
    known = base_names(settings.catalog)
    results = []
    with ui.Progress() as progress:
        progress.watch_pulls(engine)  # a base the engine lacks is pulled first
        for folder in folders:
            entry = load_entry(folder, known)
            name = entry.name
            show, note = progress.reporter(name), progress.noter(name)

            def on_event(
                event: BuildEvent,
                show: Callable[[str], None] = show,
                note: Callable[[str], None] = note,
            ) -> None:
                # Each Dockerfile step is a step; what it prints is shown within it (the
                # engine's own " ---> " bookkeeping aside; the build log has it all).
                text = event.text.rstrip()
                if event.step:
                    show(text if len(text) <= 160 else text[:157] + "...")
                elif text and not text.startswith(" ---> "):
                    note(text)

            def wrote_lock(text: str, name: str = name) -> None:
                progress.done(f"{name}: {text}")  # a file to commit: not a passing step

            result = build_entry(
                settings,
                entry,
                engine=engine,
                no_cache=no_cache,
                lock=lock,
                on_event=on_event,
                on_note=wrote_lock,
            )
            state = "cache hit" if result.cached else f"built in {result.record.duration_s} s"
            progress.done(f"{name} {entry.spec.version}: {state} {result.image_id[:19]}")
            results.append({**result.record.to_json(), "cached": result.cached})
    if as_json:
        ui.print_json(results if len(results) != 1 else results[0])


def _check_targets(settings: Any, entries: tuple[str, ...], build_all: bool) -> None:
    from gefreg.errors import BadInput

    if build_all and entries:
        raise BadInput("give entries or --all, not both")
    if not build_all and not entries:
        raise BadInput("name the entries to build, or use --all")
    if build_all:
        from gefreg.catalog.entries import resolve

        resolve(settings.catalog, [])  # no service records is an error, not an empty success


def _quick_hit(settings: Any, target: str) -> dict[str, Any] | None:
    """A cache hit answered from file metadata and one engine request (see build_record)."""
    from gefreg.catalog.entries import find_entry
    from gefreg.engine.quick import QuickInspectUnavailable, quick_inspect
    from gefreg.image.build_record import quick_hit

    folder = find_entry(settings.catalog, target)
    record = quick_hit(settings, folder) if folder is not None else None
    if record is None:
        return None
    try:
        info = quick_inspect(record.image_id)
    except QuickInspectUnavailable:
        return None
    if info is None:
        return None
    labels = (info.get("Config") or {}).get("Labels") or {}
    if labels.get("org.gefreg.fingerprint") != record.fingerprint:
        return None
    if not set(record.tags) <= set(info.get("RepoTags") or ()):
        return None
    return {**record.to_json(), "cached": True}


def _report(results: list[dict[str, Any]], as_json: bool) -> None:
    from gefreg.cli import ui

    if as_json:
        ui.print_json(results if len(results) != 1 else results[0])
        return
    for r in results:
        click.echo(f"{r['entry']} {r['version']}: cache hit {r['image_id'][:19]}", err=True)


def _build_bases(settings: Any, names: list[str], no_cache: bool) -> None:
    from gefreg.catalog.entries import load_base
    from gefreg.cli import ui
    from gefreg.image import bases

    with ui.Progress() as progress:
        for name in names:
            record = load_base(settings.catalog / "bases" / name)
            built = bases.build(
                settings,
                record,
                no_cache=no_cache,
                on_line=progress.noter(f"base {name}"),
            )
            bases.push(settings, built)
            progress.done(f"base {name}: {'cached' if built.cached else 'built'} {built.digest}")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@settings_options
@json_option
def clean(dry_run: bool, catalog: str | None, registry: str | None, as_json: bool) -> None:
    """Remove what gefreg made for this catalog and no longer needs — never anything else.

    \b
    - build tags in this catalog's namespace (gefreg/<folder>-<hash>/NAME) that no
      current build record names: older builds, entries that left the catalog (tags go
      one by one, never forced: an image goes with its last tag, unless in use);
    - run containers of this catalog's services left stopped for over 10 minutes (a
      killed run; the runner removes its own at once);
    - state nothing reads any more: build records of images that are gone, build
      folders and lint output of entries that left, contexts of killed builds.

    Run records, outputs, ledgers, caches, pulled releases, other catalogs' tags and
    images gefreg did not tag are never touched.

    \b
    Examples:
      gefreg clean --dry-run
      gefreg clean --json
    """
    from gefreg.cli import ui
    from gefreg.engine import Engine
    from gefreg.run.cleanup import clean as run_clean
    from gefreg.run.cleanup import plan_clean

    settings = load(catalog, registry)
    engine = Engine.connect()
    plan = plan_clean(settings, engine)
    done = list(plan.removals) if dry_run else run_clean(settings, engine, plan)
    if as_json:
        ui.print_json({"dry_run": dry_run, "removals": [r.to_json() for r in done]})
        return
    verb = "would remove" if dry_run else "removed"
    freed = 0
    for item in done:
        if item.error:
            click.echo(f"kept {item.kind} {item.what}: {item.error}")
            continue
        freed += item.size or 0
        size = f"; frees {item.size / 1024**2:.1f} MiB" if item.size else ""
        click.echo(f"{verb} {item.kind} {item.what} ({item.why}{size})")
    gone = [item.kind for item in done if not item.error]
    counts = [
        ui.count(gone.count("tag"), "tag"),
        ui.count(gone.count("container"), "container"),
        ui.count(gone.count("state"), "state file", "state files"),
    ]
    tail = f", {freed / 1024**2:.1f} MiB of images" if freed else ""
    click.echo(f"{'dry run: ' if dry_run else ''}{', '.join(counts)}{tail}", err=True)
