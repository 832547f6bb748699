"""`gefreg clean`: remove what gefreg made for this catalog and no longer needs — never more.

What counts, and nothing else:

* **build tags** in this catalog's own namespace (``gefreg/<folder>-<hash>/NAME``) that no
  current build record names: tags of older builds and of entries that left the catalog. Tags
  are removed one by one, never forced: the engine deletes an image only when its last tag goes,
  no container uses it and it is not also known by digest (a pulled release). Other catalogs'
  tags, pulled releases and images gefreg did not tag are not looked at;
* **stopped run containers**: containers with gefreg's run label, for a service of this
  catalog, running an image of this catalog (its builds, its releases: labels alone do not
  tell two catalogs' services of one name apart), that exited at least ``min_age`` ago (the
  runner removes its own containers within seconds, so an older one was left behind by a run
  that was killed);
* **state** under the catalog's state folder that nothing reads any more: build records of
  images the engine no longer has (or is about to lose), build folders and rendered lint
  Dockerfiles of entries that left the catalog, and build contexts a killed build left. The
  state folder may be any folder (GEFREG_STATE): a build folder holding anything gefreg does
  not write there is kept and listed, a Dockerfile without gefreg's header is not looked at.

Run records, outputs, ledgers, caches and the registry are never touched.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gefreg.catalog.entries import service_record_paths
from gefreg.engine import Engine
from gefreg.image.build_record import BY_KEY, all_builds, kept_builds, read_build
from gefreg.run.hardening import RUN_LABEL, SERVICE_LABEL
from gefreg.settings import Settings

MIN_AGE = timedelta(minutes=10)
RENDERED = b"# Rendered by gefreg"


@dataclass(frozen=True)
class Removal:
    kind: str  # "tag" | "container" | "state"
    what: str
    why: str
    size: int | None = None  # bytes freed, when known (an image's size when its last tag goes)
    error: str | None = None  # set when removing it was refused
    ref: str | None = None  # what the engine is given, when not ``what`` (a container ID)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CleanPlan:
    tags: tuple[Removal, ...]
    containers: tuple[Removal, ...]
    state: tuple[Removal, ...]
    doomed_images: frozenset[str]  # image IDs whose last tag is among ``tags``

    @property
    def removals(self) -> tuple[Removal, ...]:
        return self.tags + self.containers + self.state


def _names(settings: Settings) -> set[str]:
    return {p.parent.name for p in service_record_paths(settings.catalog)}


def _current_tags(settings: Settings, names: set[str]) -> tuple[set[str], set[str]]:
    """The tags the current build records name, and the entries whose record is damaged
    (their tags are left alone: nothing says which ones are current)."""
    from gefreg.errors import GefregError

    keep: set[str] = set()
    damaged: set[str] = set()
    for name in names:
        try:
            record = read_build(settings, name)
        except GefregError:
            damaged.add(name)
            continue
        if record is not None:
            keep.update(record.tags)
    return keep, damaged


def stale_tags(settings: Settings, engine: Engine) -> tuple[list[Removal], set[str]]:
    names = _names(settings)
    keep, damaged = _current_tags(settings, names)
    prefix = settings.image_namespace + "/"
    out, doomed = [], set()
    for image in engine.tagged_images(prefix):
        mine = [t for t in image.repo_tags if t.startswith(prefix)]
        stale = [t for t in mine if t not in keep and _entry(t, prefix) not in damaged]
        # An image the engine also knows by digest (a release pulled from the registry, same
        # image ID as the build) stays when its last tag goes.
        last = len(stale) == len(image.repo_tags) and not image.repo_digests
        if last:
            doomed.add(image.id)
        for i, tag in enumerate(sorted(stale)):
            left = _entry(tag, prefix) not in names
            why = "its entry left the catalog" if left else "not the current build"
            size = image.size if last and i == len(stale) - 1 else None
            out.append(Removal("tag", tag, why, size))
    return out, doomed


def _entry(tag: str, prefix: str) -> str:
    return tag[len(prefix) :].split(":", 1)[0]


def _finished(text: str) -> datetime | None:
    try:  # the engine writes nanoseconds: keep the seconds
        return datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)
    except ValueError:
        return None


def own_images(settings: Settings, names: set[str]) -> set[str]:
    """The image IDs this catalog ran or could run: its builds (current and kept) and the
    releases in its ledgers. Another catalog's service of the same name runs other images."""
    from gefreg.errors import GefregError
    from gefreg.release import ledger

    found = {r.image_id for name in names for r in all_builds(settings, name)}
    for name in names:
        try:
            found.update(r.image_id for r in ledger.read(settings.catalog / name))
        except GefregError:
            continue  # a damaged ledger vouches for nothing
    return found


def stopped_runs(
    settings: Settings, engine: Engine, min_age: timedelta, now: datetime
) -> list[Removal]:
    names = _names(settings)
    ours = own_images(settings, names)
    out = []
    for container in engine.stopped_containers(RUN_LABEL):
        service = container.labels.get(SERVICE_LABEL, "")
        finished = _finished(container.finished_at)
        if service not in names or container.image_id not in ours:
            continue  # another catalog's (or tool's) container, whatever its labels say
        if finished is None or now - finished < min_age:
            continue
        run = container.labels.get(RUN_LABEL, "?")
        what = f"{container.name} ({container.id[:12]})"
        out.append(Removal("container", what, f"run {run} of {service}", ref=container.id))
    return out


def stale_state(settings: Settings, engine: Engine, doomed: set[str]) -> list[Removal]:
    names = _names(settings)
    out = []
    builds = settings.builds_dir
    for folder in sorted(builds.iterdir()) if builds.is_dir() else []:
        if not folder.is_dir():
            continue
        if folder.name not in names:
            foreign = _not_ours(folder)
            error = f"holds files gefreg did not write: {foreign}" if foreign else None
            out.append(
                Removal("state", str(folder), "build records of an entry that left", None, error)
            )
            continue
        out += _stale_records(settings, engine, folder.name, doomed)
        for context in sorted(folder.glob("context.*")):
            pid = context.name.partition(".")[2]
            if not (pid.isdigit() and _alive(int(pid))):
                out.append(Removal("state", str(context), "build context of a killed build"))
    lint = settings.state_dir / "lint"
    for dockerfile in sorted(lint.glob("*.Dockerfile")) if lint.is_dir() else []:
        if dockerfile.name.removesuffix(".Dockerfile") not in names and _rendered(dockerfile):
            out.append(Removal("state", str(dockerfile), "rendered for an entry that left"))
    return out


def _not_ours(folder: Path) -> str | None:
    """The first thing in a build folder that gefreg does not write there (build.json,
    build.log, by-key/*.json, context.<pid>/), if any: then the folder is not removed. The
    state folder is wherever GEFREG_STATE says, perhaps among the user's own files."""
    for child in sorted(folder.iterdir()):
        if child.name in ("build.json", "build.log") and child.is_file():
            continue
        if child.name.startswith("context.") and child.is_dir() and not child.is_symlink():
            continue
        if child.name == BY_KEY and child.is_dir() and not child.is_symlink():
            strange = [p for p in child.iterdir() if p.suffix != ".json" or not p.is_file()]
            if not strange:
                continue
            return str(strange[0])
        return str(child)
    return None


def _rendered(dockerfile: Path) -> bool:
    """Whether gefreg wrote this file (lint renders every Dockerfile with its header)."""
    try:
        with open(dockerfile, "rb") as fh:
            return fh.read(len(RENDERED)) == RENDERED
    except OSError:
        return False


def _stale_records(
    settings: Settings, engine: Engine, name: str, doomed: set[str]
) -> list[Removal]:
    out = []
    for path, record in kept_builds(settings, name):
        if record is None:
            out.append(Removal("state", str(path), "unreadable build record"))
            continue
        image = record.image_id
        if image in doomed or engine.image(image) is None:
            out.append(Removal("state", str(path), f"its image {image[:19]} is gone"))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def plan_clean(
    settings: Settings,
    engine: Engine,
    *,
    min_age: timedelta = MIN_AGE,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CleanPlan:
    """What `gefreg clean` would remove (nothing is removed here)."""
    tags, doomed = stale_tags(settings, engine)
    containers = stopped_runs(settings, engine, min_age, now())
    state = stale_state(settings, engine, doomed)
    return CleanPlan(tuple(tags), tuple(containers), tuple(state), frozenset(doomed))


def clean(settings: Settings, engine: Engine, plan: CleanPlan) -> list[Removal]:
    """Remove what the plan lists: containers first (they hold images), then tags, then
    state. A refusal (an image in use) is reported on its line, never forced."""
    done: list[Removal] = []
    for item in plan.containers:
        engine.remove_container(item.ref or item.what)
        done.append(item)
    for item in plan.tags:
        error = engine.untag(item.what)
        done.append(Removal(item.kind, item.what, item.why, item.size, error))
    for item in plan.state:
        if item.error:  # kept: it is listed with the reason
            done.append(item)
            continue
        path = Path(item.what)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        done.append(item)
    return done
