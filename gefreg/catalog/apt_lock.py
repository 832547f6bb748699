"""apt.lock: the exact Debian package versions an entry's apt step installs.

``packages.apt`` names what a service needs; the lock names every package apt installs for
it (dependencies included) with its exact version, resolved on the entry's base. Builds ask
apt for exactly these versions, so an image can be rebuilt later with the same packages, and
a version the archive no longer serves fails the build by name instead of being replaced
silently. The lock is written by `gefreg lock` (and by a build that finds none); commit it
next to service.yaml. It is JSON, like the base lock.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from gefreg.errors import InvalidRecord, Problem
from gefreg.fsutil import write_json
from gefreg.model import Entry

LOCK_FILE = "apt.lock"
SCHEMA_VERSION = 1
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?\Z")
VERSION_RE = re.compile(r"^[A-Za-z0-9.+~:-]{1,128}\Z")
HINT = "regenerate it with `gefreg lock NAME`"


@dataclass(frozen=True)
class AptLock:
    requested: tuple[str, ...]  # packages.apt as the lock was resolved for (sorted)
    base_digest: str | None
    packages: tuple[tuple[str, str], ...]  # (name, version), sorted by name

    @property
    def pins(self) -> list[str]:
        """``name=version`` for apt-get install."""
        return [f"{name}={version}" for name, version in self.packages]

    def to_json(self) -> dict[str, object]:
        return {
            "version": SCHEMA_VERSION,
            "comment": "Debian packages the apt step installs, exactly. Written by `gefreg "
            "lock`; edit packages.apt in service.yaml instead of this file.",
            "requested": list(self.requested),
            "base_digest": self.base_digest,
            "packages": dict(self.packages),
        }


def lock_path(entry: Entry) -> Path:
    return entry.directory / LOCK_FILE


def make(requested: tuple[str, ...], base_digest: str | None, packages: dict[str, str]) -> AptLock:
    return AptLock(tuple(sorted(requested)), base_digest, tuple(sorted(packages.items())))


def _problem(path: Path, field: str, message: str) -> InvalidRecord:
    return InvalidRecord([Problem(path, None, None, field, message, HINT)])


def parse(text: str, path: Path) -> AptLock:
    """Read a lock; anything malformed (it is untrusted input) names the field."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _problem(path, "", f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != SCHEMA_VERSION:
        raise _problem(path, "version", f"expected a version {SCHEMA_VERSION} lock object")
    requested, packages = data.get("requested"), data.get("packages")
    if not isinstance(requested, list) or not all(isinstance(r, str) for r in requested):
        raise _problem(path, "requested", "expected a list of package names")
    if not isinstance(packages, dict):
        raise _problem(path, "packages", "expected an object of package name → version")
    for name, version in packages.items():
        if not PACKAGE_RE.match(name):
            raise _problem(path, f"packages.{name}", "not a Debian package name")
        if not isinstance(version, str) or not VERSION_RE.match(version):
            raise _problem(path, f"packages.{name}", f"not a Debian version: {version!r}")
    base = data.get("base_digest")
    if base is not None and not isinstance(base, str):
        raise _problem(path, "base_digest", "expected a digest or null")
    return make(tuple(requested), base, packages)


def read(entry: Entry) -> AptLock | None:
    path = lock_path(entry)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return parse(text, path)


def write(entry: Entry, lock: AptLock) -> Path:
    path = lock_path(entry)
    write_json(path, lock.to_json())
    return path


def stale(entry: Entry, lock: AptLock | None, base_digest: str | None) -> str | None:
    """Why the lock does not fit the record (None when it does): missing, resolved for other
    packages, or on another base."""
    if not entry.spec.apt:
        return None
    if lock is None:
        return f"{entry.name} has no {LOCK_FILE}"
    if lock.requested != tuple(sorted(entry.spec.apt)):
        return f"{entry.name}/{LOCK_FILE} was resolved for other packages than packages.apt"
    if lock.base_digest != base_digest:
        return f"{entry.name}/{LOCK_FILE} was resolved on another base ({lock.base_digest})"
    return None
