"""What a Trivy scan is made with, known without starting Trivy: the options passed through,
Trivy's version (asked once per binary, :mod:`gefreg.scan.tool_versions`) and the
vulnerability DB and checks bundle in its cache folder, which gefreg always passes explicitly.
A cached re-scan needs only this."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput, ToolFailed
from gefreg.scan.tool_versions import ToolVersions
from gefreg.subprocesses import find_tool

DURATION_RE = re.compile(r"^(?=\d)(\d+h)?(\d+m)?(\d+(\.\d+)?s)?\Z")


DB_FIX = (
    "give Trivy a vulnerability DB: --db-repository REPO (a mirror of trivy-db inside your "
    "network), or --cache-dir DIR holding a DB fetched where the internet is reachable "
    "(`trivy image --download-db-only --cache-dir DIR`) together with --skip-db-update; "
    "or, to accept images unscanned for vulnerabilities, set "
    "`vulnerability-db-unavailable: warn` in the policy"
)


@dataclass(frozen=True)
class TrivyOptions:
    """Options passed through to Trivy. ``timeout`` is a Go duration such as ``10m``."""

    cache_dir: Path | None = None
    db_repositories: tuple[str, ...] = ()
    skip_db_update: bool = False
    offline_scan: bool = False
    timeout: str | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and not DURATION_RE.match(self.timeout):
            raise BadInput(
                f"--timeout {self.timeout!r} is not a duration",
                "write it like Trivy does: 90s, 10m, 1h30m",
            )

    def resolved(self) -> TrivyOptions:
        """These options with the cache folder spelled out (see :func:`default_cache_dir`)."""
        if self.cache_dir is not None:
            return self
        return replace(self, cache_dir=default_cache_dir())

    def args(self) -> list[str]:
        out: list[str] = []
        if self.cache_dir is not None:
            out += ["--cache-dir", str(self.cache_dir)]
        for repository in self.db_repositories:
            out += ["--db-repository", repository]
        if self.skip_db_update:
            out.append("--skip-db-update")
        if self.offline_scan:
            out.append("--offline-scan")
        if self.timeout is not None:
            out += ["--timeout", self.timeout]
        return out

    def flags(self) -> list[str]:
        """The command-line flags these options set, each once (for messages)."""
        return list(dict.fromkeys(a for a in self.args() if a.startswith("--")))

    def seconds(self) -> float | None:
        """The timeout in seconds (for the subprocess: Trivy's own limit plus a margin)."""
        if self.timeout is None:
            return None
        total = 0.0
        for number, unit in re.findall(r"(\d+(?:\.\d+)?)([hms])", self.timeout):
            total += float(number) * {"h": 3600, "m": 60, "s": 1}[unit]
        return total + 30

    def key(self) -> dict[str, Any]:
        """What in these options can change a scan's result (for the result cache)."""
        return {
            "db_repositories": list(self.db_repositories),
            "skip_db_update": self.skip_db_update,
            "offline_scan": self.offline_scan,
        }


@dataclass(frozen=True)
class DbInfo:
    """The vulnerability DB in Trivy's cache, as ``trivy version`` reports it."""

    version: int
    updated_at: str
    next_update: str
    downloaded_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "updated_at": self.updated_at,
            "next_update": self.next_update,
            "downloaded_at": self.downloaded_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DbInfo:
        return cls(
            int(data["version"]),
            str(data["updated_at"]),
            str(data["next_update"]),
            str(data["downloaded_at"]),
        )


@dataclass(frozen=True)
class ScannerInfo:
    version: str
    db: DbInfo | None
    checks_bundle: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": "trivy",
            "version": self.version,
            "vulnerability_db": self.db.to_json() if self.db else None,
            "checks_bundle": self.checks_bundle,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScannerInfo:
        db = data.get("vulnerability_db")
        return cls(
            str(data["version"]), DbInfo.from_json(db) if db else None, data.get("checks_bundle")
        )


@dataclass(frozen=True)
class VulnerabilityScan:
    """Whether vulnerabilities were looked for; when not, Trivy's reason and the fix."""

    evaluated: bool
    reason: str | None = None
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"evaluated": self.evaluated, "reason": self.reason, "fix": self.fix}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VulnerabilityScan:
        return cls(bool(data["evaluated"]), data.get("reason"), data.get("fix"))


def trivy() -> str:
    return find_tool("trivy")


def default_cache_dir() -> Path:
    """The cache folder Trivy uses when not told: ``$TRIVY_CACHE_DIR``, else ``trivy`` in the
    user's cache folder (Go's ``os.UserCacheDir``). gefreg always passes the folder to Trivy
    explicitly, so that gefreg reads the DB metadata of the folder Trivy really uses."""
    configured = os.environ.get("TRIVY_CACHE_DIR")
    if configured:
        return Path(configured)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "trivy"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trivy"


def _json_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _version(output: bytes) -> str:
    try:
        return str(json.loads(output)["Version"])
    except (ValueError, KeyError, TypeError):
        raise ToolFailed(
            "`trivy version --format json` printed something unexpected",
            "check the Trivy installation (0.50 or later is needed)",
        ) from None


VERSION_ARGS = ("version", "--format", "json")


def trivy_version(memo: Path | None = None) -> str:
    """Trivy's version, asked once per binary (remembered in ``memo``)."""
    return ToolVersions(memo).get(trivy(), VERSION_ARGS, _version)


def remember_trivy_version(memo: Path | None, version: str) -> None:
    """Remember the version a report states, so that no process has to be asked later."""
    ToolVersions(memo).remember(trivy(), VERSION_ARGS, version)


def db_info(options: TrivyOptions) -> DbInfo | None:
    """The vulnerability DB in Trivy's cache folder, from ``CACHE/db/metadata.json`` (the file
    ``trivy version`` reports from, in the layout Trivy documents for air-gapped use)."""
    db = _json_file((options.cache_dir or default_cache_dir()) / "db" / "metadata.json")
    if db is None:
        return None
    return DbInfo(
        version=int(db.get("Version") or 0),
        updated_at=str(db.get("UpdatedAt") or ""),
        next_update=str(db.get("NextUpdate") or ""),
        downloaded_at=str(db.get("DownloadedAt") or ""),
    )


def scanner_info(options: TrivyOptions, version: str) -> ScannerInfo:
    """Trivy's version with the DB and the checks bundle (``CACHE/policy/metadata.json``)."""
    bundle = _json_file((options.cache_dir or default_cache_dir()) / "policy" / "metadata.json")
    digest = bundle.get("Digest") if bundle else None
    return ScannerInfo(version, db_info(options), str(digest) if digest else None)
