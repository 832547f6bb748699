"""Build records (where they live, reading them) and the fast path of a cache hit: answer
"unchanged" from file metadata alone.

A build record stores the (size, mtime, inode) of every input it was built from: the record,
each shipped file and folder, the pip lock, the base lock and the templates. If none of them
changed, and gefreg's version and the registry are the same, the rendered Dockerfile (and so
the cache key) cannot have changed; confirming the image is still in the engine is then the
only work left. This module imports nothing heavy, so such a hit costs a few milliseconds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gefreg import __version__
from gefreg.settings import Settings


def build_dir(settings: Settings, name: str) -> Path:
    return settings.builds_dir / name


def record_path(settings: Settings, name: str) -> Path:
    return build_dir(settings, name) / "build.json"


def read_record(settings: Settings, name: str) -> dict[str, Any] | None:
    """The entry's current build record; None when there is none (or it is damaged)."""
    try:
        data = json.loads(record_path(settings, name).read_text())
    except (OSError, ValueError):
        return None
    return dict(data) if isinstance(data, dict) else None


def stat_key(path: Path) -> list[Any] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    # ctime too: an edit that restores the mtime (touch -r, rsync -t) still changes it.
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def snapshot(paths: Iterable[Path]) -> dict[str, list[Any] | None]:
    return {str(p): stat_key(p) for p in sorted(set(paths))}


def unchanged(saved: dict[str, Any]) -> bool:
    return bool(saved) and all(stat_key(Path(p)) == key for p, key in saved.items())


def quick_hit(settings: Settings, directory: Path) -> dict[str, Any] | None:
    """The last build record of the entry in ``directory`` if none of its inputs changed
    since, else None. Build records are kept by entry name, so the folder must match too: two
    catalogs with an entry of the same name never answer for each other."""
    record = read_record(settings, directory.name)
    if (
        record is None
        or record.get("directory") != str(directory.resolve())
        or record.get("gefreg_version") != __version__
        or record.get("registry") != settings.registry
        or not unchanged(record.get("inputs") or {})
    ):
        return None
    return record
