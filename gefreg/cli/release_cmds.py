"""Commands that publish and guard releases: publish, verify, review."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from gefreg.cli import cli
from gefreg.cli.options import json_option, load, policy_option, settings_options, trivy_options
from gefreg.cli.signing_cmds import sign_key_option
from gefreg.errors import CheckFailed

if TYPE_CHECKING:
    from gefreg.scan.trivy_options import TrivyOptions


@cli.command()
@click.argument("entries", nargs=-1)
@click.option(
    "--pending",
    is_flag=True,
    help="Publish every entry whose current version is not in its ledger yet.",
)
@click.option(
    "--build",
    "build_first",
    is_flag=True,
    help="Build each entry first (a cache hit when nothing changed).",
)
@click.option(
    "--floating/--no-floating",
    default=True,
    show_default=True,
    help="Move the floating tags 1, 1.2 and latest forward (never for pre-releases).",
)
@policy_option
@trivy_options
@sign_key_option
@settings_options
@json_option
def publish(
    entries: tuple[str, ...],
    pending: bool,
    build_first: bool,
    floating: bool,
    policy_file: Path | None,
    trivy: TrivyOptions,
    sign_key: Path | None,
    catalog: str | None,
    registry: str | None,
    as_json: bool,
) -> None:
    """Publish ENTRIES as immutable versions and append them to the release ledger.

    Only an image built from the current record that passes the scan policy and the entry's
    tests is published. The image goes up by digest first; then the version tag is set,
    read back and recorded in CATALOG/NAME/releases.jsonl (commit that file). Rules:

    
      - a published version never changes: the same image again is a no-op (exit 0),
        another image under that version is refused (exit 1) with both digests;
      - a new version continues a published major.minor line above its releases (a
        backport such as 1.2.5 after 1.3.0 is fine), or opens a new line above the
        highest release (0.0.9 after 0.1.0 is refused);
      - changed content (fingerprint) under a published version is refused: bump it;
      - floating tags 1, 1.2 and latest only move forward; pre-releases never get them.

    With --sign-key the image is signed in cosign's layout (sha256-<hex>.sig) and gets SLSA
    provenance and scan-verdict attestations (sha256-<hex>.att) before the ledger line is
    written; the key must be listed in CATALOG/trust.yaml for the entry. When trust.yaml says
    require-signatures: true, publishing without a key is refused.

    
    Examples:
      gefreg publish waveform-metadata
      gefreg publish --pending --build       # CI on the main branch
      gefreg publish waveform-metadata --sign-key keys/ci-2026/gefreg.key
      gefreg publish waveform-metadata --cache-dir /srv/trivy --skip-db-update

    The scan it runs takes the options of `gefreg scan` (--policy and the Trivy options).
    """
    from gefreg.catalog.entries import base_names, load_entry, resolve
    from gefreg.cli import ui
    from gefreg.engine import Engine
    from gefreg.errors import BadInput
    from gefreg.image.build import build_entry
    from gefreg.registry.client import RegistryClient
    from gefreg.release import ledger, versions
    from gefreg.release.keys import load_signing_key, password_from_env
    from gefreg.release.publish import publish as run_publish
    from gefreg.run.evidence import publish_gate

    settings = load(catalog, registry)
    key = load_signing_key(sign_key, password_from_env()) if sign_key else None
    if pending == bool(entries):
        raise BadInput("name the entries to publish, or use --pending (not both)")
    known = base_names(settings.catalog)
    selected = [load_entry(f, known) for f in resolve(settings.catalog, list(entries))]
    if pending:
        waiting = [
            e for e in selected if ledger.find(ledger.read(e.directory), e.spec.version) is None
        ]
        for e in selected:
            if e not in waiting:
                click.echo(f"{e.name} {e.spec.version}: already published", err=True)
        selected = waiting
    engine = Engine.connect()
    results = []
    with ui.Progress() as progress, RegistryClient(settings.registry_url) as client:
        if selected:  # a registry that is down fails now, not after the scans and tests
            progress.status(f"checking the registry {settings.registry}")
            client.ping()
        gate = publish_gate(
            settings,
            engine=engine,
            policy_file=policy_file,
            scan_options=trivy,
            on_step=progress.status,
        )
        for entry in selected:
            if build_first:
                progress.status(f"{entry.name}: building")
                build_entry(settings, entry, engine=engine)
            published = run_publish(
                settings,
                entry,
                engine=engine,
                client=client,
                gate=gate,
                floating=versions.FLOATING if floating else (),
                on_step=progress.reporter(entry.name),
                on_bytes=progress.transfer(),
                sign_key=key,
            )
            tags = f" (+ {', '.join(published.floating)})" if published.floating else ""
            signed = f", signed by {published.signed_by}" if published.signed_by else ""
            progress.done(
                f"{entry.name} {published.version}: {published.status} "
                f"{published.repository}@{published.digest}{tags}{signed}"
            )
            results.append(published.to_json())
    if as_json:
        ui.print_json(results if len(results) != 1 else results[0])


@cli.command()
@click.argument("entries", nargs=-1)
@click.option(
    "--repair",
    is_flag=True,
    help="Point drifted tags back at the ledger digest (the manifest is still there).",
)
@click.option("--shallow", is_flag=True, help="Check tags only, not that every blob is reachable.")
@settings_options
@json_option
def verify(
    entries: tuple[str, ...],
    repair: bool,
    shallow: bool,
    catalog: str | None,
    registry: str | None,
    as_json: bool,
) -> None:
    """Compare the registry with the release ledger (default: every entry).

    Every ledger version must be present with the ledger's digest, no version-looking tag may
    exist that the ledger does not know, floating tags (1, 1.2, latest) must point where the
    ledger says, and every blob must be reachable. Each release's signature and attestations
    must pass CATALOG/trust.yaml: an invalid one exits 1; an unsigned release is reported, and
    exits 1 only when trust.yaml requires signatures. Drift (a tag moved by a push outside
    gefreg) exits 1; --repair moves such tags back. A version tag the ledger does not know
    cannot be repaired (gefreg never adopts it and the registry API cannot delete one tag):
    it is reported, with exit 1, until it is deleted with the registry's own tools.

    \b
    Examples:
      gefreg verify
      gefreg verify waveform-metadata --repair
    """
    from gefreg.catalog.entries import resolve
    from gefreg.cli import ui
    from gefreg.registry.client import RegistryClient
    from gefreg.release import trust_policy
    from gefreg.release.verify import LedgerFolder
    from gefreg.release.verify import verify as run_verify

    settings = load(catalog, registry)
    selected = [LedgerFolder(f.name, f) for f in resolve(settings.catalog, list(entries))]
    trust = trust_policy.load(settings.catalog)
    with RegistryClient(settings.registry_url) as client:
        result = run_verify(
            selected,
            client,
            registry=settings.registry,
            repair=repair,
            deep=not shallow,
            trust=trust,
        )
    if as_json:
        ui.print_json(result.to_json())
    else:
        for issue in result.issues:
            state = "repaired" if issue.repaired else issue.kind
            if not issue.blocking:
                state += " (allowed)"
            if repair and not issue.repaired:
                state += " (not repaired)"
            click.echo(ui.shown(f"{issue.entry}: {state}: {issue.message}"))
            if issue.hint and not issue.repaired and issue.blocking:
                click.echo(ui.shown(f"  hint: {issue.hint}"))
        blocking = sum(1 for i in result.issues if i.blocking)
        notes = len(result.issues) - blocking
        click.echo(
            f"verify {'passed' if result.ok else 'FAILED'}: "
            f"{ui.count(len(result.entries), 'entry')}, "
            f"{ui.count(result.checked_tags, 'tag')} checked, "
            f"{ui.count(blocking, 'issue')}" + (f", {notes} allowed (unsigned)" if notes else ""),
            err=True,
        )
    if not result.ok:
        raise CheckFailed(
            "the registry does not match the ledger",
            "gefreg verify --repair moves drifted tags back",
        )


@cli.command()
@click.option(
    "--base",
    "base_rev",
    required=True,
    metavar="REV",
    help="The git revision to compare with (in CI: the target branch, e.g. origin/main).",
)
@click.option(
    "--names",
    is_flag=True,
    help="Print only the entries whose image changed, one per line (for CI).",
)
@click.option(
    "--require-rebuilt",
    is_flag=True,
    help="Releases added since REV need a 'rebuilt: identical' note (gefreg rebuild --record).",
)
@settings_options
@json_option
def review(
    base_rev: str,
    names: bool,
    require_rebuilt: bool,
    catalog: str | None,
    registry: str | None,
    as_json: bool,
) -> None:
    """Check a catalog change against REV, as CI does on a pull request.

    Records valid; ledgers only appended to (never edited or shortened); the version bumped
    wherever the fingerprint (anything that goes into the image) changed; a new version kept
    to the version rule publish applies (it continues a published major.minor line above that
    line's releases, or opens a new line above the highest release); yanks only as `gefreg
    yank` writes them; published entries not deleted; a changed trust.yaml valid, with
    revoked keys still listed and revoked and no key id given another key (added keys, widened
    globs and require-signatures turned off are listed as notes for the reviewer). Lists the
    entries whose image changed, so CI builds and scans only those. With
    --require-rebuilt, every release the change adds must also carry a note that `gefreg
    rebuild NAME@VERSION --record` rebuilt it bit for bit.

    \b
    Example (CI):
      gefreg review --base origin/main --json
      gefreg build $(gefreg review --base origin/main --names)
      gefreg review --base origin/main --require-rebuilt
    """
    from gefreg.cli import ui
    from gefreg.release.review import review as run_review

    settings = load(catalog, registry)
    report = run_review(settings, base_rev, require_rebuilt=require_rebuilt)
    if as_json:
        ui.print_json(report.to_json())
    elif names:
        for name in report.to_build:
            click.echo(name)
    else:
        for entry in report.entries:
            version = (
                entry.version
                if entry.base_version in (None, entry.version)
                else (f"{entry.base_version} -> {entry.version}")
            )
            marker = "FAIL" if entry.problems else "ok"
            click.echo(f"{marker:4} {entry.name} ({entry.status}, {version})")
            for problem in entry.problems:  # they quote the pull request's own text
                click.echo(ui.shown(f"     {problem}"))
            for version, reason in entry.yanked:
                click.echo(ui.shown(f"     yanks {version}: {reason}"))
        if report.trust is not None:
            marker = "FAIL" if report.trust.problems else "ok"
            click.echo(f"{marker:4} trust.yaml (changed)")
            for line in (*report.trust.problems, *(f"note: {n}" for n in report.trust.notes)):
                click.echo(ui.shown(f"     {line}"))
        click.echo(
            f"review against {base_rev}: {ui.count(len(report.entries), 'changed entry')}, "
            f"build: {' '.join(report.to_build) or 'none'}",
            err=True,
        )
    if not report.ok:
        raise CheckFailed("the catalog change breaks the release rules (see above)")


@cli.command()
@click.argument("target", metavar="NAME@VERSION")
@click.option("--reason", required=True, metavar="TEXT", help="Why it must not be used (one line).")
@settings_options
@json_option
def yank(
    target: str, reason: str, catalog: str | None, registry: str | None, as_json: bool
) -> None:
    """Yank a published version: it stays, but must no longer be used.

    Appends a line to CATALOG/NAME/releases.jsonl (commit it: review checks it like a
    release) and moves the floating tags (1, 1.2, latest) that pointed at it back to the
    highest release that is not yanked; a tag no other release can take stays until the next
    release of its line. `run NAME` skips yanked releases and `run NAME@VERSION` refuses a
    yanked one unless --allow-yanked (the run record then says so); `show`,
    `verify` and `review` say that it is yanked and why. Yanking again is a no-op.

    \b
    Example:
      gefreg yank waveform-metadata@1.2.0 --reason "wrong sampling rate for EHZ channels"
    """
    from gefreg.catalog.entries import relative, resolve
    from gefreg.cli import ui
    from gefreg.errors import BadInput
    from gefreg.registry.client import RegistryClient
    from gefreg.release.ledger import ledger_path
    from gefreg.release.versions import understood
    from gefreg.release.yank import yank as run_yank

    settings = load(catalog, registry)
    name, _, pin = target.partition("@")
    version = understood(pin)  # `@v1.2.3` is 1.2.3
    if not name or not version:
        raise BadInput(f"{target!r}: name the version to yank", "write NAME@VERSION")
    [folder] = resolve(settings.catalog, [name])
    with RegistryClient(settings.registry_url) as client:  # asked only when something changes
        result = run_yank(folder.name, folder, version, reason, client=client)
    if as_json:
        ui.print_json(result.to_json())
        return
    if result.status == "already yanked":
        text = f"{name} {version} was already yanked on {result.yanked}: {result.reason}"
        click.echo(ui.shown(text))  # the ledger's words
        return
    click.echo(f"yanked {name} {version}: {reason}")
    for tag, moved_to in sorted(result.moved.items()):
        click.echo(f"  {tag} -> {moved_to}")
    for tag in result.stuck:
        click.echo(f"  {tag} stays on {version}: no other release can take it yet")
    click.echo(f"commit {relative(ledger_path(folder))}", err=True)
