"""The fingerprint: one hash of everything that goes into an image.

It covers the image-relevant part of the record, every shipped file (content and executable
bit), the template, the base digest and the pip and apt locks. It is the build cache key, the
``org.gefreg.fingerprint`` label, and what publish and review compare to decide whether a
version bump is needed. Fields that never reach the image (tests, resources, volatile) are
left out, so editing them needs no new version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from gefreg.errors import BadInput
from gefreg.hashing import HashCache, hash_files, sha256_bytes
from gefreg.model import Entry, ServiceSpec
from gefreg.validators import inside

SCHEME = 1
# apt_provides reaches the image only through pip.lock, which is a part of its own.
OUTSIDE_IMAGE = ("tests", "resources", "volatile", "apt_provides")
PIP_LOCK = "pip.lock"
APT_LOCK = "apt.lock"


@dataclass(frozen=True)
class ShippedFile:
    """One file of the build context: where it is in the entry and where it goes in the image."""

    relpath: str
    path: Path
    destination: str
    executable: bool


@dataclass(frozen=True)
class Fingerprint:
    digest: str
    parts: tuple[tuple[str, str], ...]

    def changed_parts(self, other: Fingerprint) -> list[str]:
        """Names of the parts that differ, for messages like 'files/collector.py changed'."""
        mine, theirs = dict(self.parts), dict(other.parts)
        return sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))


def record_digest(spec: ServiceSpec) -> str:
    data = dataclasses.asdict(spec)
    for key in OUTSIDE_IMAGE:
        data.pop(key, None)
    if data.get("source_date_epoch") is None:  # records written before the field existed
        data.pop("source_date_epoch", None)
    return sha256_bytes(json.dumps(data, sort_keys=True, ensure_ascii=False).encode())


def shipped_files(entry: Entry) -> list[ShippedFile]:
    """Every file the record ships, directories expanded in sorted order."""
    out: list[ShippedFile] = []
    for src, dst in entry.spec.files:
        top = inside(entry.directory, src)
        if top is None or not top.exists():
            raise BadInput(f"{entry.record_path}: files.{src}: missing or outside the entry")
        if top.is_dir():
            for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
                dirnames.sort()
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    rel = path.relative_to(top).as_posix()
                    out.append(
                        _shipped(
                            entry, f"{src.rstrip('/')}/{rel}", path, f"{dst.rstrip('/')}/{rel}"
                        )
                    )
        else:
            out.append(_shipped(entry, src, top, dst))
    return out


def _shipped(entry: Entry, relpath: str, path: Path, destination: str) -> ShippedFile:
    resolved = inside(entry.directory, relpath)
    if resolved is None:
        raise BadInput(
            f"{entry.record_path}: {relpath} resolves outside the entry (symlink?)",
            "copy the file into the entry instead of linking to it",
        )
    mode = resolved.stat().st_mode
    if not stat.S_ISREG(mode):
        raise BadInput(f"{entry.record_path}: {relpath} is not a regular file")
    return ShippedFile(relpath, resolved, destination, bool(mode & stat.S_IXUSR))


def compute(
    entry: Entry,
    *,
    template_name: str,
    template_digest: str,
    base_digest: str | None,
    cache: HashCache | None = None,
) -> Fingerprint:
    files = shipped_files(entry)
    digests = hash_files([f.path for f in files], cache=cache)
    parts: list[tuple[str, str]] = [
        ("scheme", str(SCHEME)),
        ("record", record_digest(entry.spec)),
        ("template:" + template_name, template_digest),
        ("base:" + entry.spec.base, base_digest or "none"),
    ]
    for f, digest in zip(files, digests, strict=True):
        parts.append((f"files/{f.relpath}", f"{digest} {'x' if f.executable else '-'}"))
    for name, wanted in ((PIP_LOCK, entry.spec.pip), (APT_LOCK, entry.spec.apt)):
        lock = entry.directory / name
        if wanted and lock.is_file():
            parts.append((name, sha256_bytes(lock.read_bytes())))
    blob = "\n".join(f"{k}\t{v}" for k, v in parts).encode()
    return Fingerprint("sha256:" + hashlib.sha256(blob).hexdigest(), tuple(parts))
