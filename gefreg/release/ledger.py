"""The release ledger: an append-only, committed record of what every published version is.

One JSON object per line in ``CATALOG/<name>/releases.jsonl``. Appending a line is the last
step of a publish, after the registry holds the image under its tag, so the ledger never
claims a release that did not happen. Review checks that a change only appends (the old file
is a byte prefix of the new one); verify and the runner trust the digests it holds.

A release is never removed: ``gefreg yank`` appends a :class:`Yank` line (schema
``gefreg.yank/1``) naming a release before it and why it must no longer be used.
``gefreg rebuild --record`` appends a :class:`RebuildNote` (``gefreg.rebuild/1``): the
release was built again from its commit and came out bit-identical.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gefreg.errors import CheckFailed, InvalidRecord, Problem
from gefreg.release import ledger_checks as checks
from gefreg.settings import Settings

LEDGER_FILE = "releases.jsonl"
SCHEMA = "gefreg.release/1"
YANK_SCHEMA = "gefreg.yank/1"
REBUILD_SCHEMA = "gefreg.rebuild/1"


@dataclass(frozen=True)
class Release:
    version: str
    digest: str
    repository: str
    fingerprint: str
    base_digest: str | None
    image_id: str
    published: str
    scan: dict[str, Any] = field(default_factory=dict)
    sbom_digest: str | None = None
    gefreg_version: str = ""
    schema: str = SCHEMA
    floating: list[str] | None = None  # the floating tags this publish moved (None: unknown)
    interface: dict[str, Any] | None = None  # ports, command, user, limits of this version
    # signing (None: published before gefreg signed releases, or published unsigned)
    signed_by: str | None = None  # the trust.yaml key id that signed it at publish
    locks: dict[str, str] | None = None  # lock digests that went into the image (provenance)
    catalog_commit: str | None = None  # the catalog's git commit at publish (provenance)
    scan_report_digest: str | None = None  # manifest of the scan report artifact (show)
    source_date_epoch: int | None = None  # the image's SOURCE_DATE_EPOCH (gefreg rebuild)

    def to_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")) + "\n"


@dataclass(frozen=True)
class Yank:
    """A release that must no longer be used, and why. ``floating`` is where this yank moved
    the floating tags that pointed at it (tag → version)."""

    version: str
    reason: str
    yanked: str
    gefreg_version: str = ""
    floating: dict[str, str] = field(default_factory=dict)
    schema: str = YANK_SCHEMA

    def to_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")) + "\n"


@dataclass(frozen=True)
class RebuildNote:
    """ "rebuilt: identical on DATE by gefreg X": ``gefreg rebuild --record`` built the release
    ``digest`` again from its commit and got the same image."""

    version: str
    digest: str
    result: str  # "identical"
    date: str
    gefreg_version: str
    schema: str = REBUILD_SCHEMA

    def to_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")) + "\n"

    @property
    def text(self) -> str:
        return f"rebuilt: {self.result} on {self.date} by gefreg {self.gefreg_version}"


Line = Release | Yank | RebuildNote


@dataclass(frozen=True)
class LedgerLines:
    """Every line of a ledger, in order: releases and the yanks and rebuild notes that follow
    them."""

    lines: tuple[Line, ...] = ()

    @property
    def releases(self) -> list[Release]:
        return [line for line in self.lines if isinstance(line, Release)]

    @property
    def yanks(self) -> dict[str, Yank]:
        return {line.version: line for line in self.lines if isinstance(line, Yank)}

    @property
    def rebuilds(self) -> list[RebuildNote]:
        return [line for line in self.lines if isinstance(line, RebuildNote)]

    def is_yanked(self, version: str) -> bool:
        return version in self.yanks

    def published_text(self) -> str:
        """'published: 1.0.0, 1.1.0 (yanked)': for errors about a version that is none."""
        shown = [r.version + (" (yanked)" * self.is_yanked(r.version)) for r in self.releases]
        return f"published: {', '.join(shown)}" if shown else "nothing is published yet"

    def usable(self) -> list[Release]:
        """The releases that are not yanked."""
        yanked = self.yanks
        return [r for r in self.releases if r.version not in yanked]


@dataclass(frozen=True)
class TrustedRelease:
    """A release the runner may use: NAME@VERSION as ``registry/repository@manifest_digest`` in
    the configured registry (what :meth:`CatalogLedger.lookup` answers)."""

    name: str
    version: str
    registry: str
    repository: str
    manifest_digest: str
    interface: Mapping[str, Any] | None = None  # ServiceInterface.to_json() of the release
    fingerprint: str | None = None  # the record fingerprint the ledger holds for it
    signed_by: str | None = None  # the key id the ledger says signed it at publish
    image_id: str | None = None  # the image ID published (the pulled image must have it)
    where: str | None = None  # "FILE:LINE" of its ledger line
    yanked: Yank | None = None  # when it was yanked (the runner refuses it unless allowed)


def ledger_path(entry_dir: Path) -> Path:
    return entry_dir / LEDGER_FILE


def parse(text: str, path: Path) -> list[Release]:
    """Releases from ledger text; any malformed line is an error naming file and line."""
    return parse_lines(text, path).releases


def parse_lines(text: str, path: Path) -> LedgerLines:
    """Every line of ledger text; any malformed line is an error naming file and line."""
    lines: list[Line] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}  # version -> digest
    yanked: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            line: Line = _PARSERS.get(str(data.get("schema")), _release)(data)
        except (ValueError, TypeError) as exc:
            problems.append(
                Problem(
                    path,
                    number,
                    None,
                    "",
                    f"not a ledger line: {exc}",
                    "ledgers are written by `gefreg publish`, `yank` and `rebuild` only",
                )
            )
            continue
        if isinstance(line, Yank):
            problems += checks.yank_problems(line, path, number, set(seen), yanked)
            yanked.add(line.version)
        elif isinstance(line, RebuildNote):
            problems += checks.rebuild_problems(line, path, number, seen)
        else:
            problems += checks.release_problems(line, path, number, set(seen))
            seen[line.version] = line.digest
        lines.append(line)
    if problems:
        raise InvalidRecord(problems)
    return LedgerLines(tuple(lines))


def _release(data: dict[str, Any]) -> Release:
    known = Release.__dataclass_fields__
    release = Release(**{k: v for k, v in data.items() if k in known})
    texts = (release.version, release.digest, release.repository, release.published)
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("a release line needs version, digest, repository and published as text")
    floating = release.floating
    if floating is not None and not (
        isinstance(floating, list) and all(isinstance(t, str) for t in floating)
    ):
        raise ValueError("floating must be a list of tags")
    return release


def _yank(data: dict[str, Any]) -> Yank:
    known = Yank.__dataclass_fields__
    yank = Yank(**{k: v for k, v in data.items() if k in known})
    texts = (yank.version, yank.reason, yank.yanked, yank.gefreg_version)
    if not all(isinstance(t, str) for t in texts) or not isinstance(yank.floating, dict):
        raise ValueError("a yank line needs version, reason and yanked as text")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in yank.floating.items()):
        raise ValueError("floating must map tags to versions")
    return yank


def _rebuild(data: dict[str, Any]) -> RebuildNote:
    known = RebuildNote.__dataclass_fields__
    note = RebuildNote(**{k: v for k, v in data.items() if k in known})
    texts = (note.version, note.digest, note.result, note.date, note.gefreg_version)
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("a rebuild line needs version, digest, result and date as text")
    return note


_PARSERS: dict[str, Callable[[dict[str, Any]], Line]] = {
    YANK_SCHEMA: _yank,
    REBUILD_SCHEMA: _rebuild,
}


def read(entry_dir: Path) -> list[Release]:
    return read_lines(entry_dir).releases


def read_lines(entry_dir: Path) -> LedgerLines:
    path = ledger_path(entry_dir)
    try:
        return parse_lines(path.read_text(encoding="utf-8"), path)
    except FileNotFoundError:
        return LedgerLines()


def find(releases: list[Release], version: str) -> Release | None:
    return next((r for r in releases if r.version == version), None)


def append(entry_dir: Path, release: Line) -> None:
    """Append one line and fsync it: a release is either fully recorded or not at all."""
    path = ledger_path(entry_dir)
    data = release.to_line().encode()
    with open(path, "ab") as fh:
        if fh.tell() > 0:
            with open(path, "rb") as check:
                check.seek(-1, os.SEEK_END)
                if check.read(1) != b"\n":
                    data = b"\n" + data
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def lock_path(entry_dir: Path) -> Path:
    """The file :func:`locked` holds for the entry: in the system's temporary folder, keyed
    by the ledger's path."""
    key = hashlib.sha256(str(ledger_path(entry_dir).resolve()).encode()).hexdigest()[:32]
    return Path(tempfile.gettempdir()) / "gefreg-locks" / f"{key}.lock"


@contextmanager
def locked(entry_dir: Path) -> Iterator[None]:
    """Serialize the publishers of one entry on this machine (however their state folders
    differ). The lock file lives in the system's temporary folder, keyed by the ledger's path,
    so nothing appears in the catalog."""
    lock = lock_path(entry_dir)
    lock.parent.mkdir(mode=0o1777, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def only_appended(old: str, new: str) -> bool:
    """True when ``new`` keeps every byte of ``old`` and only adds lines after it. When
    ``old`` does not end with a newline, what follows must start with one (as :func:`append`
    writes it): anything else would change its last line."""
    if not new.startswith(old):
        return False
    return not old or old.endswith("\n") or new == old or new[len(old)] == "\n"


def line_of(path: Path, version: str) -> int | None:
    """The number of the line of ``path`` that releases ``version`` (for messages)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for number, raw in enumerate(lines, start=1):
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if (
            isinstance(data, dict)
            and data.get("version") == version
            and data.get("schema", SCHEMA) == SCHEMA
        ):
            return number
    return None


class CatalogLedger:
    """The runner's view of the ledgers: NAME[@VERSION] → the published manifest digest.

    Without a version, the newest release that is neither yanked nor a pre-release answers (or
    the newest pre-release when there is nothing else). A yanked release says so. Only
    releases in the configured registry are trusted: a ledger line naming another registry is
    refused, not followed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def lookup(self, name: str, version: str | None) -> TrustedRelease | None:
        from gefreg.release import versions

        lines = read_lines(self.settings.catalog / name)
        releases = lines.releases
        if version is not None:
            release = find(releases, version)
        else:  # the newest release not yanked; when every one is, the newest (refused later)
            pool = [r.version for r in lines.usable()] or [r.version for r in releases]
            final = [v for v in pool if not versions.is_prerelease(v)]
            newest = versions.highest(final or pool)
            release = find(releases, newest) if newest else None
        if release is None:
            return None
        trusted = f"{self.settings.registry}/{name}"
        if release.repository != trusted:
            raise CheckFailed(
                f"the ledger says {name} {release.version} is in {release.repository}, but "
                f"gefreg trusts {trusted} (the configured registry)",
                f"if you trust that registry, run with --registry "
                f"{release.repository.rsplit('/', 1)[0]}",
            )
        registry = release.repository.split("/", 1)[0]
        path = ledger_path(self.settings.catalog / name)
        return TrustedRelease(
            name=name,
            version=release.version,
            registry=registry,
            repository=release.repository,
            manifest_digest=release.digest,
            interface=release.interface,
            fingerprint=release.fingerprint,
            signed_by=release.signed_by,
            image_id=release.image_id,
            where=f"{path}:{line_of(path, release.version)}",
            yanked=lines.yanks.get(release.version),
        )
