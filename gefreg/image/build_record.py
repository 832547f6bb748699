"""The build record: what `gefreg build` wrote about an entry's image, and the one reader of it.

``<state>/builds/NAME/build.json`` is the entry's current build; ``by-key/<cache key>.json``
keeps a copy per cache key, so that a rebuild of unchanged inputs is answered from it and the
runner can trust an earlier build by its image ID. Every consumer (scan, publish, golden tests,
the runner, the build cache) reads records through :func:`read_build` or :func:`all_builds`:
a record is a file on disk, so it is validated field by field each time, and a damaged one is
an error that names the file and the field, never a traceback.

The fast path of a cache hit lives here too (:func:`quick_hit`): a record stores the (size,
mtime, ctime, inode) of every input it was built from (the record, each shipped file and folder,
the pip and apt locks, the base lock and the templates). If none of them changed, gefreg's
version and the registry are the same, and git still gives the same source date, the rendered
Dockerfile (and so the cache key) cannot have changed; confirming the image is still in the
engine is then the only work left. This module imports nothing heavy, so such a hit costs a
few milliseconds.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gefreg import __version__
from gefreg.errors import BadInput
from gefreg.fsutil import write_json
from gefreg.jsonfields import JsonFields
from gefreg.model import NAME_RE
from gefreg.settings import Settings

SCHEMA = "gefreg.build/1"
RECORD_FILE = "build.json"
BY_KEY = "by-key"

StatKey = list[int] | None
T = TypeVar("T")


@dataclass(frozen=True)
class BuildRecord:
    """One build of one entry: the image, where it came from, and the inputs it was built from.

    ``entry``, ``version``, ``image_id``, ``tags`` and ``fingerprint`` are what consumers rely
    on and are always present; the rest describes the build for people and for the cache.
    """

    entry: str
    version: str
    image_id: str
    tags: tuple[str, ...]
    fingerprint: str
    fingerprint_parts: Mapping[str, str] = field(default_factory=dict)
    cache_key: str | None = None
    base: Mapping[str, str | None] = field(default_factory=dict)  # name, ref, digest
    template: Mapping[str, str] = field(default_factory=dict)  # name, digest
    registry: str | None = None
    gefreg_version: str | None = None
    engine: Mapping[str, str] = field(default_factory=dict)
    started: str | None = None
    duration_s: float | None = None
    context_bytes: int | None = None
    log: str | None = None
    record: str | None = None  # the service.yaml it was built from
    directory: str | None = None  # the entry folder (build records are kept by name)
    inputs: Mapping[str, StatKey] = field(default_factory=dict)
    manifest_digest: str | None = None  # the digest `gefreg publish` puts (reproducible)
    engine_image_id: str | None = None  # what the engine built, before normalizing
    source_date: Mapping[str, Any] = field(default_factory=dict)  # epoch, origin, commit
    phases: Mapping[str, float] = field(default_factory=dict)  # seconds per build phase
    removed_build_files: tuple[str, ...] = ()  # logs and caches taken out of the layers

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "entry": self.entry,
            "version": self.version,
            "image_id": self.image_id,
            "tags": list(self.tags),
            "fingerprint": self.fingerprint,
            "fingerprint_parts": dict(self.fingerprint_parts),
            "cache_key": self.cache_key,
            "base": dict(self.base),
            "template": dict(self.template),
            "registry": self.registry,
            "gefreg_version": self.gefreg_version,
            "engine": dict(self.engine),
            "started": self.started,
            "duration_s": self.duration_s,
            "context_bytes": self.context_bytes,
            "log": self.log,
            "record": self.record,
            "directory": self.directory,
            "inputs": dict(self.inputs),
            "manifest_digest": self.manifest_digest,
            "engine_image_id": self.engine_image_id,
            "source_date": dict(self.source_date) or None,
            "phases": dict(self.phases),
            "removed_build_files": list(self.removed_build_files),
        }

    @classmethod
    def from_json(cls, data: Any, where: Path, name: str) -> BuildRecord:
        """A record of entry ``name`` read from ``where``; BadInput naming the field if damaged."""
        f = JsonFields(
            f"the build record of {name} ({where})", f"build it again: gefreg build {name}"
        )
        data = f.mapping(data, "")
        entry = f.text(f.get(data, "entry"), "entry")
        if entry != name:
            raise f.fail("entry", repr(name), entry)

        def optional(key: str, read: Callable[[Any, str], T]) -> T | None:
            value = data.get(key)
            return None if value is None else read(value, key)

        return cls(
            entry=entry,
            version=f.text(f.get(data, "version"), "version"),
            image_id=f.digest(f.get(data, "image_id"), "image_id"),
            tags=f.strings(f.get(data, "tags"), "tags"),
            fingerprint=f.digest(f.get(data, "fingerprint"), "fingerprint"),
            fingerprint_parts=optional("fingerprint_parts", f.text_map) or {},
            cache_key=optional("cache_key", f.digest),
            base=optional("base", lambda v, k: f.text_map(v, k, nullable=True)) or {},
            template=optional("template", f.text_map) or {},
            registry=optional("registry", f.text),
            gefreg_version=optional("gefreg_version", f.text),
            engine=optional("engine", f.text_map) or {},
            started=optional("started", f.text),
            duration_s=optional("duration_s", lambda v, k: f.number(v, k, 0, math.inf)),
            context_bytes=optional("context_bytes", lambda v, k: f.integer(v, k, 0, 2**63)),
            log=optional("log", f.text),
            record=optional("record", f.text),
            directory=optional("directory", f.text),
            inputs=optional("inputs", lambda v, k: _stat_keys(f, v, k)) or {},
            manifest_digest=optional("manifest_digest", f.digest),
            engine_image_id=optional("engine_image_id", f.digest),
            source_date=optional("source_date", lambda v, k: _source_date(f, v, k)) or {},
            phases=optional("phases", lambda v, k: _phases(f, v, k)) or {},
            removed_build_files=optional("removed_build_files", f.strings) or (),
        )


def _source_date(f: JsonFields, value: Any, name: str) -> dict[str, Any]:
    data = f.mapping(value, name)
    if not data:
        return {}
    return {
        "epoch": f.integer(f.get(data, "epoch", name), f"{name}.epoch", 0, 2**63),
        "origin": f.text(f.get(data, "origin", name), f"{name}.origin"),
        "commit": f.optional_text(data.get("commit"), f"{name}.commit"),
    }


def _phases(f: JsonFields, value: Any, name: str) -> dict[str, float]:
    data = f.mapping(value, name)
    return {k: f.number(v, f"{name}.{k}", 0, math.inf) for k, v in data.items()}


def _stat_keys(f: JsonFields, value: Any, name: str) -> dict[str, StatKey]:
    data = f.mapping(value, name)
    for path, key in data.items():
        if key is not None and not (
            isinstance(key, list)
            and all(isinstance(n, int) and not isinstance(n, bool) for n in key)
        ):
            raise f.fail(f"{name}.{path}", "a list of whole numbers or null", key)
    return dict(data)


def build_dir(settings: Settings, name: str) -> Path:
    if not NAME_RE.match(name):  # the folder is named after the entry: never a path
        raise BadInput(f"{name!r} is not an entry name", "entry names are lowercase a-z, 0-9, -")
    return settings.builds_dir / name


def record_path(settings: Settings, name: str) -> Path:
    return build_dir(settings, name) / RECORD_FILE


def _load(path: Path, name: str) -> BuildRecord | None:
    """The record at ``path``; None when there is no such file, BadInput when it is damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSON errors are ValueErrors
        raise BadInput(
            f"the build record of {name} ({path}) cannot be read: {exc}",
            f"build it again: gefreg build {name}",
        ) from None
    return BuildRecord.from_json(data, path, name)


def _load_or_none(path: Path, name: str) -> BuildRecord | None:
    """For caches: a damaged record is a miss (it is rewritten by the next build)."""
    try:
        return _load(path, name)
    except BadInput:
        return None


def read_build(settings: Settings, name: str) -> BuildRecord | None:
    """The entry's current build; None when it was never built, BadInput when damaged."""
    return _load(record_path(settings, name), name)


def require_build(settings: Settings, name: str) -> BuildRecord:
    """The entry's current build; BadInput (build it first) when there is none."""
    record = read_build(settings, name)
    if record is None:
        raise BadInput(
            f"{name} has no built image yet (no {record_path(settings, name)})",
            f"build it first: gefreg build {name}",
        )
    return record


def all_builds(settings: Settings, name: str) -> list[BuildRecord]:
    """The current build followed by the earlier ones kept by cache key; damaged ones are
    left out (an image is trusted through a record, so a damaged one trusts nothing)."""
    current = _load_or_none(record_path(settings, name), name)
    kept = [record for _, record in kept_builds(settings, name) if record is not None]
    return ([current] if current is not None else []) + kept


def kept_builds(settings: Settings, name: str) -> list[tuple[Path, BuildRecord | None]]:
    """Every build record kept by cache key, with its file; None for a damaged one."""
    paths = sorted((build_dir(settings, name) / BY_KEY).glob("*.json"))
    return [(path, _load_or_none(path, name)) for path in paths]


def by_key_path(settings: Settings, name: str, cache_key: str) -> Path:
    return build_dir(settings, name) / BY_KEY / (cache_key.removeprefix("sha256:") + ".json")


def cached_build(settings: Settings, name: str, cache_key: str) -> BuildRecord | None:
    """The earlier build of these exact inputs, if one was recorded (damaged: None)."""
    return _load_or_none(by_key_path(settings, name, cache_key), name)


def save_build(settings: Settings, record: BuildRecord) -> Path:
    """Write ``record`` as the entry's current build and under its cache key; fsynced, since a
    build record claims an image exists. Returns the current record's path."""
    data = record.to_json()
    if record.cache_key is not None:
        write_json(by_key_path(settings, record.entry, record.cache_key), data, durable=True)
    return write_json(record_path(settings, record.entry), data, durable=True)


def stat_key(path: Path) -> StatKey:
    try:
        st = os.stat(path)
    except OSError:
        return None
    # ctime too: an edit that restores the mtime (touch -r, rsync -t) still changes it.
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def snapshot(paths: Iterable[Path]) -> dict[str, StatKey]:
    return {str(p): stat_key(p) for p in sorted(set(paths))}


def unchanged(saved: Mapping[str, StatKey]) -> bool:
    return bool(saved) and all(stat_key(Path(p)) == key for p, key in saved.items())


def quick_hit(settings: Settings, directory: Path) -> BuildRecord | None:
    """The last build of the entry in ``directory`` if none of its inputs changed since, else
    None. Build records are kept by entry name, so the folder must match too: two catalogs
    with an entry of the same name never answer for each other."""
    name = directory.resolve().name
    if not NAME_RE.match(name):
        return None
    record = _load_or_none(record_path(settings, name), name)
    if (
        record is None
        or record.directory != str(directory.resolve())
        or record.gefreg_version != __version__
        or record.registry != settings.registry
        or not unchanged(record.inputs)
        or not same_source_date(record)
    ):
        return None
    return record


def same_source_date(record: BuildRecord) -> bool:
    """A source date taken from git moves with commits, which change no input file: ask git
    again (a few milliseconds). One from the record's own field moves only with the record."""
    if record.source_date.get("origin") == "record":
        return True
    from gefreg.catalog import git_source, source_date

    path = Path(str(record.record))
    root = git_source.repository_root(path.parent)
    now = (
        source_date.from_git(root, git_source.relative(root, path), "HEAD")
        if root is not None
        else source_date.SourceDate(source_date.DEFAULT, "default")
    )
    return record.source_date.get("epoch") == now.epoch
