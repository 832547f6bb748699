"""From the engine's build to the reproducible image: export, normalize, check, load.

The engine builds from the rendered Dockerfile as usual (its layer cache still works); the
image it produced is exported, its service layers and config rewritten by
:mod:`gefreg.image.normalize`, the apt step checked against the apt lock, and the result
loaded back. The engine then runs, scans and tests exactly the image gefreg publishes.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from gefreg.catalog import apt_lock
from gefreg.engine import Engine
from gefreg.errors import BuildFailed, EnvironmentFailure, InputsUnavailable
from gefreg.image import apt_resolve, bases
from gefreg.image.build_plan import BuildPlan
from gefreg.image.normalize import (
    DPKG_STATUS,
    BaseLayers,
    Normalized,
    load_stream,
    normalize_saved,
    saved_file,
)
from gefreg.settings import Settings

SNAPSHOT_HINT = (
    "the Debian archive keeps only current versions; rebuild against a snapshot: set the "
    "base's mirror to http://snapshot.debian.org/archive/debian/YYYYMMDDT000000Z (see the "
    "README, 'Reproducible images'), or resolve again with `gefreg lock NAME` for a new version"
)


def base_layers(settings: Settings, plan: BuildPlan) -> BaseLayers:
    if plan.base.digest is None:
        return BaseLayers()
    return bases.published_layers(settings, plan.base.name, plan.base.digest)


def explain_build_failure(error: BuildFailed, plan: BuildPlan) -> BuildFailed | InputsUnavailable:
    """A failed apt step that asked for versions the archive no longer has is an input gone
    (exit 3, naming them), not a broken record."""
    gone = apt_resolve.gone_versions(error)
    if not gone:
        return error
    named = ", ".join(f"{name} {version}" for name, version in gone)
    return InputsUnavailable(
        f"{plan.entry.name}: the Debian archive no longer has {named} "
        f"(pinned in {apt_lock.LOCK_FILE})",
        SNAPSHOT_HINT,
    )


def finish(
    engine: Engine,
    settings: Settings,
    plan: BuildPlan,
    built: str,
    work: Path,
    on_step: Callable[[str], None] = lambda _: None,
) -> tuple[Normalized, dict[str, float]]:
    """Turn the engine's image ``built`` into the reproducible one, loaded into the engine;
    returns it with the seconds each phase took (export, normalize, load)."""
    times: dict[str, float] = {}
    clock = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.monotonic()
        times[phase] = round(now - clock, 3)
        clock = now

    base = base_layers(settings, plan)
    work = work / f"assemble.{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    saved = work / "built.tar"
    try:
        on_step("exporting the built image")
        engine.save(built, saved)
        lap("export_s")
        on_step(f"normalizing its layers (every time set to {plan.source_date.created})")
        image = normalize_saved(saved, work, plan.source_date.epoch, base)
        if plan.apt_lock is not None:
            before = saved_file(saved, range(len(base.diff_ids)), DPKG_STATUS) or b""
            apt_resolve.check_installed(
                plan.apt_lock,
                apt_resolve.installed_by(before.decode(errors="replace"), image.dpkg_status or ""),
            )
        lap("normalize_s")
        on_step("loading the normalized image")
        loaded = engine.load_stream(
            load_stream(saved, image, len(base.diff_ids)), f"{plan.entry.name} (normalized)"
        )
        lap("load_s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if image.image_id not in loaded or engine.image(image.image_id) is None:
        raise EnvironmentFailure(
            f"the engine loaded {', '.join(loaded) or 'nothing'}, not {image.image_id}"
        )
    return image, times
