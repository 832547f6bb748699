"""Everything needed before a build: template, resolved base, source date, apt lock,
fingerprint, rendered Dockerfile."""

from __future__ import annotations

from dataclasses import dataclass

from gefreg.catalog import apt_lock, source_date
from gefreg.catalog.apt_lock import AptLock
from gefreg.catalog.entries import (
    BASES_DIR,
    LOCK_FILE,
    BaseLock,
    base_repository,
    entry_path,
    load_lock,
)
from gefreg.errors import BadInput
from gefreg.hashing import HashCache
from gefreg.image import fingerprint as fp
from gefreg.image.labels import BaseImage
from gefreg.image.render import Rendered, render
from gefreg.image.templates import Template, load_template
from gefreg.model import SCRATCH, Entry
from gefreg.settings import Settings


@dataclass(frozen=True)
class BuildPlan:
    entry: Entry
    template: Template
    base: BaseImage
    fingerprint: fp.Fingerprint
    rendered: Rendered
    source_date: source_date.SourceDate
    apt_lock: AptLock | None = None

    @property
    def dockerfile(self) -> str:
        return self.rendered.dockerfile


def resolve_base(settings: Settings, lock: BaseLock, name: str) -> BaseImage:
    """A base name → a reference pinned by digest through the committed lock file."""
    if name == SCRATCH:
        return BaseImage(SCRATCH, SCRATCH, None)
    digest = lock.digest(name)
    if digest is None:
        raise BadInput(
            f"base {name!r} has no digest in {settings.catalog / BASES_DIR / LOCK_FILE}",
            f"build it first: gefreg base build {name}",
        )
    return BaseImage(name, f"{base_repository(settings.registry, name)}@{digest}", digest)


def prepare(
    entry: Entry,
    settings: Settings,
    *,
    lock: BaseLock | None = None,
    cache: HashCache | None = None,
    date: source_date.SourceDate | None = None,
) -> BuildPlan:
    """``date`` overrides the source date the entry's folder would give (a rebuild takes the
    record from a commit, where the folder is no longer in the repository)."""
    lock = lock if lock is not None else load_lock(settings.catalog)
    date = date if date is not None else source_date.of_entry(entry)
    pins = apt_lock.read(entry) if entry.spec.apt else None
    template = load_template(entry.spec.template)
    base = resolve_base(settings, lock, entry.spec.base)
    fingerprint = fp.compute(
        entry,
        template_name=template.name,
        template_digest=template.digest,
        base_digest=base.digest,
        cache=cache,
    )
    rendered = render(
        entry,
        template,
        base=base,
        fingerprint=fingerprint.digest,
        entry_path=entry_path(settings.catalog, entry),
        source_date_epoch=date.epoch,
        apt_pins=pins.pins if pins is not None else None,
    )
    return BuildPlan(entry, template, base, fingerprint, rendered, date, pins)
