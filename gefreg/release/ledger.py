"""The release ledger: an append-only, committed record of what every published version is.

One JSON object per line in ``CATALOG/<name>/releases.jsonl``. Appending a line is the last
step of a publish, after the registry holds the image under its tag, so the ledger never
claims a release that did not happen. Review checks that a change only appends (the old file
is a byte prefix of the new one); verify and the runner trust the digests it holds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gefreg.errors import CheckFailed, InvalidRecord, Problem
from gefreg.model import DIGEST_RE
from gefreg.settings import Settings

LEDGER_FILE = "releases.jsonl"
SCHEMA = "gefreg.release/1"


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

    def to_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")) + "\n"


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


def ledger_path(entry_dir: Path) -> Path:
    return entry_dir / LEDGER_FILE


def parse(text: str, path: Path) -> list[Release]:
    """Releases from ledger text; any malformed line is an error naming file and line."""
    releases: list[Release] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    known = {f for f in Release.__dataclass_fields__}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            release = Release(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError) as exc:
            problems.append(
                Problem(
                    path,
                    number,
                    None,
                    "",
                    f"not a release line: {exc}",
                    "ledgers are written by `gefreg publish` only",
                )
            )
            continue
        if not DIGEST_RE.match(release.digest):
            problems.append(Problem(path, number, None, "digest", "not a sha256 digest"))
        if release.version in seen:
            problems.append(
                Problem(path, number, None, "version", f"{release.version} appears twice")
            )
        seen.add(release.version)
        releases.append(release)
    if problems:
        raise InvalidRecord(problems)
    return releases


def read(entry_dir: Path) -> list[Release]:
    path = ledger_path(entry_dir)
    try:
        return parse(path.read_text(encoding="utf-8"), path)
    except FileNotFoundError:
        return []


def find(releases: list[Release], version: str) -> Release | None:
    return next((r for r in releases if r.version == version), None)


def append(entry_dir: Path, release: Release) -> None:
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


@contextmanager
def locked(entry_dir: Path) -> Iterator[None]:
    """Serialize the publishers of one entry on this machine (however their state folders
    differ). The lock file lives in the system's temporary folder, keyed by the ledger's path,
    so nothing appears in the catalog."""
    key = hashlib.sha256(str(ledger_path(entry_dir).resolve()).encode()).hexdigest()[:32]
    folder = Path(tempfile.gettempdir()) / "gefreg-locks"
    folder.mkdir(mode=0o1777, exist_ok=True)
    lock = folder / f"{key}.lock"
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


class CatalogLedger:
    """The runner's view of the ledgers: NAME[@VERSION] → the published manifest digest.

    Without a version, the newest release that is not a pre-release answers (or the newest
    pre-release when there is nothing else). Only releases in the configured registry are
    trusted: a ledger line naming another registry is refused, not followed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def lookup(self, name: str, version: str | None) -> TrustedRelease | None:
        from gefreg.release import versions

        releases = read(self.settings.catalog / name)
        if version is not None:
            release = find(releases, version)
        else:
            final = [r.version for r in releases if not versions.is_prerelease(r.version)]
            newest = versions.highest(final or [r.version for r in releases])
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
        return TrustedRelease(
            name=name,
            version=release.version,
            registry=registry,
            repository=release.repository,
            manifest_digest=release.digest,
            interface=release.interface,
            fingerprint=release.fingerprint,
            signed_by=release.signed_by,
        )
