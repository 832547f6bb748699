"""Scanner results kept on disk, so a re-scan of an unchanged image answers at once.

Layout under ``STATE/scans/``: one folder per image and cache key,
``<image id hex>/<key>/`` holding ``trivy.json`` (Trivy's report), ``sbom.cdx.json``,
``Dockerfile`` (the rendered Dockerfile hadolint checked, for entries), ``scan.json`` (this
record) and ``report.json`` (gefreg's latest report with its verdict); ``tools.json`` remembers
the scanners' versions.

The key covers everything that can change what the *scanners* say: the image ID, Trivy's
version, the vulnerability DB's version and date, the Trivy options that choose the DB, the
Dockerfile hadolint checked (for an entry: the fingerprint in its build record, which
identifies the rendered Dockerfile the image was built from), hadolint's and gefreg's
version. The policy is deliberately not part of it: the verdict is computed afresh from the
cached findings on every run (a few milliseconds), so an edited policy or an exception that
expired today is honoured without scanning again.

A record stops being used when Trivy would fetch a newer DB (the DB's ``NextUpdate``), or, for
a scan that had no DB at all, after :data:`NO_DB_RETRY` so that the DB is tried again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gefreg import fsutil
from gefreg.scan.findings import Finding
from gefreg.scan.trivy_options import ScannerInfo, VulnerabilityScan
from gefreg.scan.trivy_report import ImageMeta

FORMAT = 1
NO_DB_RETRY = timedelta(hours=1)
RECORD = "scan.json"
TRIVY_REPORT = "trivy.json"
SBOM = "sbom.cdx.json"
DOCKERFILE = "Dockerfile"
REPORT = "report.json"


@dataclass(frozen=True)
class CachedScan:
    """What the scanners said about one image under one key."""

    key: str
    folder: Path
    scanned_at: datetime
    valid_until: datetime | None
    image: ImageMeta
    scanner: ScannerInfo
    hadolint: str | None
    vulnerabilities: VulnerabilityScan
    findings: tuple[Finding, ...]
    commands: tuple[str, ...]

    @property
    def trivy_report(self) -> Path:
        return self.folder / TRIVY_REPORT

    @property
    def sbom(self) -> Path | None:
        path = self.folder / SBOM
        return path if path.is_file() else None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "key": self.key,
            "scanned_at": self.scanned_at.isoformat(),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "image": self.image.to_json(),
            "scanner": self.scanner.to_json(),
            "hadolint": self.hadolint,
            "vulnerabilities": self.vulnerabilities.to_json(),
            "findings": [f.to_json() for f in self.findings],
            "commands": list(self.commands),
        }

    @classmethod
    def from_json(cls, folder: Path, data: dict[str, Any]) -> CachedScan:
        until = data.get("valid_until")
        return cls(
            key=str(data["key"]),
            folder=folder,
            scanned_at=datetime.fromisoformat(data["scanned_at"]),
            valid_until=datetime.fromisoformat(until) if until else None,
            image=ImageMeta.from_json(data["image"]),
            scanner=ScannerInfo.from_json(data["scanner"]),
            hadolint=data.get("hadolint"),
            vulnerabilities=VulnerabilityScan.from_json(data["vulnerabilities"]),
            findings=tuple(Finding.from_json(f) for f in data["findings"]),
            commands=tuple(data.get("commands") or ()),
        )


def cache_key(
    image_id: str,
    scanner: ScannerInfo,
    trivy_options: dict[str, Any],
    dockerfile: str | None,
    hadolint: str | None,
) -> str:
    """``dockerfile`` identifies the Dockerfile hadolint checked (an entry's fingerprint)."""
    from gefreg import __version__

    parts = {
        "format": FORMAT,
        "gefreg": __version__,
        "image_id": image_id,
        "trivy": scanner.version,
        "db": scanner.db.to_json() if scanner.db else None,
        "checks_bundle": scanner.checks_bundle,
        "options": trivy_options,
        "dockerfile": dockerfile,
        "hadolint": hadolint,
    }
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def valid_until(
    scanned_at: datetime,
    scanner: ScannerInfo,
    vulnerabilities: VulnerabilityScan,
    skip_db_update: bool,
) -> datetime | None:
    if not vulnerabilities.evaluated:
        return scanned_at + NO_DB_RETRY
    if skip_db_update or scanner.db is None or not scanner.db.next_update:
        return None
    try:
        return datetime.fromisoformat(scanner.db.next_update.replace("Z", "+00:00"))
    except ValueError:
        return None


class ScanCache:
    """The ``STATE/scans`` folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def tools(self) -> Path:
        """Where scanner versions are remembered (see :mod:`gefreg.scan.tool_versions`)."""
        return self.root / "tools.json"

    def folder(self, image_id: str, key: str) -> Path:
        return self.root / image_id.removeprefix("sha256:") / key

    def get(self, image_id: str, key: str, now: datetime | None = None) -> CachedScan | None:
        folder = self.folder(image_id, key)
        try:
            data = json.loads((folder / RECORD).read_bytes())
            if data.get("format") != FORMAT or data.get("key") != key:
                return None
            cached = CachedScan.from_json(folder, data)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        now = now or datetime.now(UTC)
        if cached.valid_until is not None and now >= cached.valid_until:
            return None
        if not cached.trivy_report.is_file():
            return None
        return cached

    def workspace(self) -> Path:
        """A fresh folder to scan into; :meth:`put` moves it into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="tmp-", dir=self.root))

    def put(self, workspace: Path, record: CachedScan) -> CachedScan:
        """Write the record into ``workspace`` and move the folder to its key's place."""
        image_id = record.image.image_id or "unknown"
        target = self.folder(image_id, record.key)
        moved = CachedScan(**{**record.__dict__, "folder": target})
        (workspace / RECORD).write_text(json.dumps(moved.to_json(), indent=1))
        target.parent.mkdir(parents=True, exist_ok=True)
        for _attempt in range(2):
            try:
                os.replace(workspace, target)
                return moved
            except OSError:
                # An older result under the same key, or a scan that ran at the same time:
                # the same inputs, so either copy will do.
                shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(workspace, ignore_errors=True)
        return moved


def write_json(path: Path, data: Any) -> None:
    """Write JSON so that a reader never sees half a file (rename over the old one)."""
    fsutil.write_json(path, data, indent=1)
