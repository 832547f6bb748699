"""Service image builds through the engine, with a content-addressed cache and build records.

Images are reproducible: the engine builds, then gefreg normalizes and loads the result
(:mod:`gefreg.image.reproducible`), so the same inputs give the same image ID and manifest
digest. The cache key is the sha256 of the rendered Dockerfile: it embeds the fingerprint
(record, shipped files, template, base digest, pip and apt locks), the source date, the
registry the base comes from and the gefreg version, so any change to an input changes the
key. Unchanged files are not rehashed
(the hash cache keys on size, mtime and inode), so a cache hit costs a render and one engine
lookup.

A build record is only written after the image was built and tagged; an interrupted build
leaves no record and no tag.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gefreg import __version__
from gefreg.catalog import apt_lock
from gefreg.catalog.entries import BaseLock, load_lock
from gefreg.catalog.source_date import SourceDate
from gefreg.engine import BuildEvent, Engine
from gefreg.errors import BadInput, BuildFailed, EnvironmentFailure
from gefreg.hashing import HashCache, hash_files, sha256_bytes
from gefreg.image import apt_resolve, bases, reproducible
from gefreg.image.build_plan import BuildPlan, prepare, resolve_base
from gefreg.image.build_record import (
    BuildRecord,
    build_dir,
    cached_build,
    save_build,
    snapshot,
)
from gefreg.image.fingerprint import shipped_files
from gefreg.image.labels import BaseImage
from gefreg.image.render import CONTEXT_FILES
from gefreg.image.templates import templates_dir
from gefreg.model import Entry
from gefreg.settings import Settings


@dataclass(frozen=True)
class BuildResult:
    record: BuildRecord
    cached: bool
    path: Path

    @property
    def image_id(self) -> str:
        return self.record.image_id


def local_tags(settings: Settings, plan: BuildPlan, key: str) -> list[tuple[str, str]]:
    """The entry's version and build-key tags, in the catalog's own namespace."""
    repo = f"{settings.image_namespace}/{plan.entry.name}"
    return [(repo, plan.entry.spec.version), (repo, "build-" + key.removeprefix("sha256:")[:12])]


def input_paths(settings: Settings, plan: BuildPlan) -> list[Path]:
    """Every file whose change could change the rendered Dockerfile (see build_record)."""
    entry = plan.entry
    paths = [
        entry.record_path,
        entry.directory / "pip.lock",
        entry.directory / apt_lock.LOCK_FILE,
        load_lock(settings.catalog).path,
    ]
    for src, _ in entry.spec.files:
        top = entry.directory / src
        paths.append(top)
        if top.is_dir():
            for dirpath, _dirs, files in os.walk(top):
                paths.append(Path(dirpath))
                paths += [Path(dirpath) / f for f in files]
    folder = templates_dir()
    paths += [folder / plan.template.filename, *folder.glob("_*.j2")]
    return paths


def _cache_hit(engine: Engine, settings: Settings, plan: BuildPlan, key: str) -> BuildResult | None:
    record = cached_build(settings, plan.entry.name, key)
    if record is None:
        return None
    info = engine.image(record.image_id)
    if info is None or info.labels.get("org.gefreg.fingerprint") != plan.fingerprint.digest:
        return None
    tags = local_tags(settings, plan, key)
    for repo, tag in tags:
        if f"{repo}:{tag}" not in info.repo_tags:
            engine.tag(info.id, repo, tag)
    # the inputs' file metadata again, e.g. after a `touch`; the tags as they are now
    record = dataclasses.replace(
        record,
        inputs=snapshot(input_paths(settings, plan)),
        tags=tuple(f"{repo}:{tag}" for repo, tag in tags),
    )
    return BuildResult(record, cached=True, path=save_build(settings, record))


def ensure_base(engine: Engine, settings: Settings, base: BaseImage) -> None:
    """Make the pinned base available to the engine: local, else pulled, else pushed from the
    layout built on this machine and then pulled."""
    if base.digest is None or engine.image(base.ref) is not None:
        return
    try:
        engine.pull(base.ref)
        return
    except EnvironmentFailure as pull_error:
        local = bases.find_local(settings, base.name, base.digest)
        if local is None:
            raise EnvironmentFailure(
                f"base {base.ref} is neither in the engine nor pullable: {pull_error.message}",
                f"build and push it: gefreg base build {base.name} (with the registry running: "
                f"gefreg registry serve)",
            ) from None
    bases.push(settings, local)
    engine.pull(base.ref)


def assemble_context(plan: BuildPlan, context: Path) -> int:
    """Copy exactly the declared files (plus wheels) into a fresh build context.

    Every copied file is hashed again and compared with the fingerprint, so a file changed
    between render and build is caught instead of silently built. Returns the context size.
    """
    if context.exists():
        shutil.rmtree(context)
    (context / CONTEXT_FILES).mkdir(parents=True)
    (context / "Dockerfile").write_text(plan.dockerfile)
    files = shipped_files(plan.entry)
    copies = []
    for f in files:
        target = context / CONTEXT_FILES / f.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f.path, target)
        os.chmod(target, 0o755 if f.executable else 0o644)
        copies.append(target)
    expected = dict(plan.fingerprint.parts)
    for f, digest in zip(files, hash_files(copies), strict=True):
        if expected.get(f"files/{f.relpath}", "").split(" ")[0] != digest:
            raise BadInput(
                f"{plan.entry.directory / f.relpath} changed while gefreg was building",
                "run the build again once the file is stable",
            )
    if plan.entry.spec.pip:
        from gefreg.catalog.wheels import fetch

        fetch(plan.entry, context / "wheels")
    return sum(p.stat().st_size for p in context.rglob("*") if p.is_file())


# The legacy builder reuses cached intermediate images; when one is removed while the build
# runs (a concurrent `docker rmi` of an image it was the parent of), the step fails with this.
GONE_FROM_CACHE = "unable to find image"


def _build(
    engine: Engine,
    context: Path,
    labels: dict[str, str],
    no_cache: bool,
    on_event: Callable[[BuildEvent], None] | None,
    log: Path,
) -> str:
    """``engine.build``, once more when a cached step's image vanished mid-build: the second
    build no longer finds that cache entry and runs the step. Any other failure stands."""
    try:
        return engine.build(context, labels=labels, no_cache=no_cache, on_event=on_event, log=log)
    except BuildFailed as exc:
        if GONE_FROM_CACHE not in exc.message:
            raise
    return engine.build(context, labels=labels, no_cache=no_cache, on_event=on_event, log=log)


def lock_apt(engine: Engine, settings: Settings, entry: Entry, lock: BaseLock) -> Path:
    """Resolve the entry's packages.apt on its base now and write apt.lock."""
    base = resolve_base(settings, lock, entry.spec.base)
    ensure_base(engine, settings, base)
    return apt_lock.write(entry, apt_resolve.resolve(engine, entry, base))


def ensure_apt_lock(
    engine: Engine,
    settings: Settings,
    entry: Entry,
    lock: BaseLock,
    on_note: Callable[[str], None] | None = None,
) -> None:
    """An entry with apt packages builds from its apt.lock; a missing or outdated lock is
    resolved on the base first (and written next to the record, to be committed)."""
    if not entry.spec.apt:
        return
    base = resolve_base(settings, lock, entry.spec.base)
    why = apt_lock.stale(entry, apt_lock.read(entry), base.digest)
    if why is None:
        return
    path = lock_apt(engine, settings, entry, lock)
    if on_note:
        on_note(f"{why}: resolved it and wrote {path} (commit it)")


def build_entry(
    settings: Settings,
    entry: Entry,
    *,
    engine: Engine,
    no_cache: bool = False,
    lock: BaseLock | None = None,
    on_event: Callable[[BuildEvent], None] | None = None,
    date: SourceDate | None = None,
    resolve_apt: bool = True,
    tag: bool = True,
    on_note: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build the entry's image reproducibly (see :mod:`gefreg.image.reproducible`).

    ``date``, ``resolve_apt=False`` and ``tag=False`` are for rebuilds: the source date comes
    from the release's commit, the apt lock must already be there, and the user's local tags
    are left where they are."""
    lock = lock if lock is not None else load_lock(settings.catalog)
    if resolve_apt:
        ensure_apt_lock(engine, settings, entry, lock, on_note)
    cache = HashCache(settings.hash_cache)
    plan = prepare(entry, settings, lock=lock, cache=cache, date=date)
    cache.save()
    key = sha256_bytes(plan.dockerfile.encode())
    if not no_cache:
        hit = _cache_hit(engine, settings, plan, key)
        if hit is not None:
            return hit
    ensure_base(engine, settings, plan.base)
    folder = build_dir(settings, entry.name)
    context = folder / f"context.{os.getpid()}"
    log = folder / "build.log"
    started = datetime.now(UTC)
    t0 = time.monotonic()
    try:
        size = assemble_context(plan, context)
        built = _build(engine, context, {}, no_cache, on_event, log)
    except BuildFailed as exc:
        raise reproducible.explain_build_failure(exc, plan) from None
    finally:
        shutil.rmtree(context, ignore_errors=True)
    engine_s = round(time.monotonic() - t0, 3)
    step = (lambda text: on_event(BuildEvent(text, text))) if on_event else (lambda _: None)
    image, phases = reproducible.finish(engine, settings, plan, built, folder, step)
    tags = local_tags(settings, plan, key) if tag else []
    for repo, name in tags:
        engine.tag(image.image_id, repo, name)
    record = BuildRecord(
        entry=entry.name,
        version=entry.spec.version,
        image_id=image.image_id,
        tags=tuple(f"{repo}:{name}" for repo, name in tags),
        fingerprint=plan.fingerprint.digest,
        fingerprint_parts=dict(plan.fingerprint.parts),
        cache_key=key,
        base={"name": plan.base.name, "ref": plan.base.ref, "digest": plan.base.digest},
        template={"name": plan.template.name, "digest": plan.template.digest},
        registry=settings.registry,
        gefreg_version=__version__,
        engine=engine.facts(),
        started=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        duration_s=round(time.monotonic() - t0, 3),
        context_bytes=size,
        log=str(log),
        record=str(entry.record_path.resolve()),
        directory=str(entry.directory.resolve()),
        inputs=snapshot(input_paths(settings, plan)),
        manifest_digest=image.manifest_digest,
        engine_image_id=built,
        source_date=plan.source_date.to_json(),
        phases={"engine_build_s": engine_s, **phases},
        removed_build_files=tuple(sorted(set(image.removed))),
    )
    return BuildResult(record, cached=False, path=save_build(settings, record))
