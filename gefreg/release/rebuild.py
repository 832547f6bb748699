"""`gefreg rebuild NAME@VERSION`: build a published version again and compare it bit for bit.

The inputs are taken from exactly where the release came from: the catalog commit its ledger
line records (record, shipped files, locks and base lock as that commit holds them, and the
source date that commit gives), never the working tree; a release without a commit (a catalog
outside git) is rebuilt from the working tree if its fingerprint is still the one published.
The build starts clean (a fresh state folder, no cache) and its image ID and manifest digest
are compared with the ledger's. Inputs that are gone (a package version, the commit, the
gefreg version) are exit 3 naming them; a different image is exit 1 with the difference.
Before anything is built, the release passes trust.yaml's signature check like a run would
(exit 1 naming the check and key): a rebuild vouches for the release it proves.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gefreg import __version__
from gefreg.catalog import git_source, source_date
from gefreg.catalog.entries import BASES_DIR, base_names, load_entry
from gefreg.engine import BuildEvent, Engine
from gefreg.errors import BadInput, EnvironmentFailure, InputsUnavailable
from gefreg.image.build import build_entry
from gefreg.image.build_plan import prepare
from gefreg.image.image_diff import ImageDiff, diff
from gefreg.model import NAME_RE, Entry, is_digest
from gefreg.release import ledger
from gefreg.settings import Settings
from gefreg.validators import SEMVER_RE


@dataclass(frozen=True)
class Rebuilt:
    name: str
    version: str
    source: str  # "commit <sha>" | "working tree"
    published_digest: str
    published_image_id: str
    digest: str
    image_id: str
    source_date: dict[str, Any]
    duration_s: float
    engine_image: str = ""  # the engine's build before normalizing (removed afterwards)
    difference: ImageDiff | None = None
    note: ledger.RebuildNote | None = None
    signature: dict[str, Any] | None = None  # trust.yaml's check of the release (run record form)

    @property
    def identical(self) -> bool:
        return self.digest == self.published_digest and self.image_id == self.published_image_id

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "identical": self.identical,
            "source": self.source,
            "published": {"digest": self.published_digest, "image_id": self.published_image_id},
            "rebuilt": {"digest": self.digest, "image_id": self.image_id},
            "source_date": self.source_date,
            "duration_s": self.duration_s,
            "engine_image_removed": self.engine_image or None,
            "difference": self.difference.to_json() if self.difference else None,
            "signature": self.signature,
            "recorded": self.note.text if self.note else None,
        }


def _release(settings: Settings, name: str, version: str) -> ledger.Release:
    if not NAME_RE.match(name) or not SEMVER_RE.match(version):
        raise BadInput(
            f"{name}@{version} is not NAME@VERSION of a catalog entry",
            "e.g. fixity-manifest@1.0.0 (gefreg verify lists the published versions)",
        )
    release = ledger.find(ledger.read(settings.catalog / name), version)
    if release is None:
        raise BadInput(
            f"{name} {version} is not in {settings.catalog / name / ledger.LEDGER_FILE}",
            "rebuild a published version (gefreg verify lists them)",
        )
    if release.gefreg_version and release.gefreg_version != __version__:
        raise InputsUnavailable(
            f"{name} {version} was built by gefreg {release.gefreg_version}, this is "
            f"{__version__} (its templates and labels are part of the image)",
            f"rebuild with that version: pip install gefreg=={release.gefreg_version}",
        )
    return release


def _signature(settings: Settings, release: ledger.Release, name: str) -> dict[str, Any] | None:
    """trust.yaml's signature check of the release (CheckFailed, exit 1, naming the check and
    the key). A line naming another registry is not looked up there: it is only compared."""
    from gefreg.release.signature_check import check_release

    if release.repository != f"{settings.registry}/{name}":
        return None
    trusted = ledger.CatalogLedger(settings).lookup(name, release.version)
    return check_release(settings, trusted).record() if trusted else None


def _from_commit(
    settings: Settings, name: str, commit: str, into: Path
) -> tuple[Settings, Entry, source_date.SourceDate]:
    """The entry and the bases as ``commit`` holds them, in a catalog below ``into``."""
    git_source.check_name(commit)
    root = git_source.repository_root(settings.catalog)
    if root is None:
        raise InputsUnavailable(
            f"the release was published from commit {commit[:12]}, but {settings.catalog} is "
            "not in a git repository",
            "run the rebuild in a clone of the catalog repository",
        )
    git_source.checked_commit(root, commit)
    entry_rel = git_source.catalog_path(root, settings.catalog, name)
    bases_rel = git_source.catalog_path(root, settings.catalog, BASES_DIR)
    missing = git_source.export(root, commit, [entry_rel, bases_rel], into)
    if entry_rel in missing:
        raise InputsUnavailable(
            f"commit {commit[:12]} has no {entry_rel}: the entry was not committed when it "
            "was published",
            "publish from a committed catalog; this release cannot be rebuilt from git",
        )
    catalog = into / git_source.relative(root, settings.catalog)
    tmp_settings = replace(settings, catalog=catalog, state_dir=into / ".state")
    entry = load_entry(catalog / name, base_names(catalog))
    record_rel = git_source.catalog_path(root, settings.catalog, name, entry.record_path.name)
    date = (
        source_date.SourceDate(entry.spec.source_date_epoch, "record")
        if entry.spec.source_date_epoch is not None
        else source_date.from_git(root, record_rel, commit)
    )
    return tmp_settings, entry, date


def _inputs(
    settings: Settings, name: str, release: ledger.Release, into: Path
) -> tuple[Settings, Entry, source_date.SourceDate, str]:
    if release.catalog_commit:
        found = _from_commit(settings, name, release.catalog_commit, into)
        source = f"commit {release.catalog_commit}"
    else:
        entry = load_entry(settings.catalog / name, base_names(settings.catalog))
        found = (
            replace(settings, state_dir=into / ".state"),
            entry,
            source_date.of_entry(entry),
        )
        source = "working tree"
    tmp_settings, entry, date = found
    plan = prepare(entry, tmp_settings, date=date)
    if plan.fingerprint.digest != release.fingerprint:
        raise InputsUnavailable(
            f"the {source} does not hold what {name} {release.version} was built from "
            f"(fingerprint {plan.fingerprint.digest}, the ledger says {release.fingerprint})",
            "it was published from uncommitted changes, or the record moved on; without "
            "the exact inputs it cannot be rebuilt",
        )
    return tmp_settings, entry, date, source


def _difference(
    engine: Engine,
    trusted: str,
    release: ledger.Release,
    rebuilt: str,
    on_step: Callable[[str], None],
) -> ImageDiff | None:
    """How the rebuilt image differs from the published one, pulled from ``trusted`` (the
    configured registry's repository of the entry) by the ledger's digest; None when the
    registry cannot show it. A ledger line naming another registry, or no digest, is not
    followed (the ledger is untrusted text)."""
    if release.repository != trusted or not is_digest(release.digest):
        return None
    published = f"{trusted}@{release.digest}"
    try:
        if engine.image(published) is None:
            on_step(f"pulling {published} to compare")
            engine.pull(published)
    except EnvironmentFailure:
        return None  # the digests alone say it differs; the registry cannot show how
    return diff(engine, published, rebuilt, on_step=on_step)


def rebuild(
    settings: Settings,
    name: str,
    version: str,
    *,
    engine: Engine,
    record: bool = False,
    on_step: Callable[[str], None] = lambda _: None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Rebuilt:
    release = _release(settings, name, version)
    signature = _signature(settings, release, name)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gefreg-rebuild-") as tmp:
        tmp_settings, entry, date, source = _inputs(settings, name, release, Path(tmp))
        on_step(f"building {name} {version} from the {source} (no cache)")

        def event(e: BuildEvent) -> None:
            if e.step:
                on_step(e.text)

        built = build_entry(
            tmp_settings,
            entry,
            engine=engine,
            no_cache=True,
            date=date,
            resolve_apt=False,
            tag=False,
            on_event=event,
        )
    # The engine's own build (before gefreg normalized it) is of no use after a rebuild:
    # removed, never forced, with the intermediate images this no-cache build made.
    engine_image = str(built.record.engine_image_id or "")
    if engine_image and engine_image != built.image_id:
        engine.untag(engine_image)
    result = Rebuilt(
        name,
        version,
        source,
        release.digest,
        release.image_id,
        str(built.record.manifest_digest),
        built.image_id,
        date.to_json(),
        round(time.monotonic() - t0, 3),
        engine_image,
        signature=signature,
    )
    if not result.identical:
        trusted = f"{settings.registry}/{name}"
        difference = _difference(engine, trusted, release, built.image_id, on_step)
        return replace(result, difference=difference)
    if not record:
        return result
    note = ledger.RebuildNote(
        version, release.digest, "identical", now().strftime("%Y-%m-%d"), __version__
    )
    with ledger.locked(settings.catalog / name):
        ledger.append(settings.catalog / name, note)
    return replace(result, note=note)
