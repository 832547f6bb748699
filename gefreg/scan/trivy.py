"""Trivy as a subprocess: scan an image, read its JSON report into findings, SBOM, versions.

How an image is scanned (measured with Trivy 0.76 on a 2-core machine):

* One ``trivy image`` call with ``--scanners vuln,secret,misconfig``. Trivy sets up its
  vulnerability DB *before* it looks at the image, so when the DB cannot be had (no network,
  no mirror, ``--skip-db-update`` on an empty cache) the call fails within about 0.1 s.
* Only then a second call with ``--scanners secret,misconfig``, which needs no DB. Always
  running two calls would cost every user a second image analysis and a second load of the
  misconfiguration checks (about 0.5 s of every call). When Trivy's cache holds no DB at all
  (a first run, or a machine that never got one) the two calls run side by side instead, so
  a machine that cannot download the DB does not wait for the failure first.
* The SBOM comes from ``trivy convert --format cyclonedx`` on the JSON report (made with
  ``--list-all-pkgs``): no second analysis of the image. The converter is started with the
  scan and reads the report from its stdin, so its start-up (about 0.06 s, most of its time)
  is not added after the scan.
* Trivy's version is taken from its report and remembered per binary
  (:mod:`gefreg.scan.tool_versions`); the DB's version and dates are read from the cache folder,
  which gefreg always passes to Trivy explicitly. A cached re-scan starts no process at all.

Images are read from the local Docker engine only (``--image-src docker``): Trivy talks to the
engine itself, gefreg never pulls.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput, EnvironmentFailure, ToolFailed
from gefreg.scan.findings import Finding, FindingClass, Severity
from gefreg.scan.tool_versions import ToolVersions
from gefreg.subprocesses import StartedTool, find_tool, run_tool, short_command

ALL_SCANNERS = ("vuln", "secret", "misconfig")
OFFLINE_SCANNERS = ("secret", "misconfig")
IMAGE_CONFIG_SCANNERS = ("misconfig", "secret")
SBOM_TIMEOUT = 600.0  # seconds for a conversion, once the report is there
DURATION_RE = re.compile(r"^(?=\d)(\d+h)?(\d+m)?(\d+(\.\d+)?s)?$")

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


@dataclass(frozen=True)
class ImageMeta:
    """What the report says about the scanned image."""

    name: str
    image_id: str | None
    repo_digests: tuple[str, ...] = ()
    repo_tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image_id": self.image_id,
            "repo_digests": list(self.repo_digests),
            "repo_tags": list(self.repo_tags),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageMeta:
        return cls(
            str(data["name"]),
            data.get("image_id"),
            tuple(data.get("repo_digests") or ()),
            tuple(data.get("repo_tags") or ()),
        )


@dataclass(frozen=True)
class TrivyScan:
    report_path: Path
    image: ImageMeta
    findings: tuple[Finding, ...]
    vulnerabilities: VulnerabilityScan
    commands: tuple[str, ...]
    version: str  # of the Trivy that made the report, as the report says


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


# --------------------------------------------------------------------------------------------
# Running a scan


def trivy_error(stderr: bytes) -> str:
    """Trivy's own error line(s) (FATAL ... and its ``* detail`` lines), without timestamps."""
    lines = stderr.decode(errors="replace").splitlines()
    out: list[str] = []
    capturing = False
    for line in lines:
        if "\tFATAL\t" in line or line.startswith("FATAL"):
            capturing = True
            text = line.split("\tFATAL\t", 1)[-1]
            out.append(text.removeprefix("Fatal error\t").strip().rstrip(":"))
        elif capturing and line.strip().startswith("*"):
            out.append(line.strip().lstrip("* ").strip().rstrip(":"))
    if not out:
        out = [line.strip() for line in lines if line.strip()][-3:]
    return ": ".join(out) or "(no error output)"


def is_db_failure(error: str) -> bool:
    lowered = error.lower()
    return "db error" in lowered or "vulnerability db" in lowered or "java db" in lowered


ENGINE_DOWN = ("failed to connect to the docker api", "cannot connect to the docker daemon")
NO_SUCH_IMAGE = ("no such image", "unable to find the specified image")


def trivy_failure(ref: str, error: str, command: str) -> Exception:
    """The gefreg error for a failed ``trivy image`` (given Trivy's error line)."""
    lowered = error.lower()
    if any(text in lowered for text in ENGINE_DOWN):
        from gefreg.engine import START_HINT

        return EnvironmentFailure(
            f"Trivy could not reach the Docker engine to read {ref}: {error}", START_HINT
        )
    if any(text in lowered for text in NO_SUCH_IMAGE):
        return BadInput(
            f"image {ref!r} is not known to the local Docker engine",
            "build it first (gefreg build NAME), or check the name with `docker images`; "
            "gefreg scans local images only and never pulls",
        )
    return ToolFailed(f"{command} failed: {error}", "rerun it by hand to see Trivy's full log")


def _run_image(
    ref: str, scanners: Sequence[str], options: TrivyOptions, output: Path
) -> tuple[int, str, str]:
    argv = [
        trivy(),
        "image",
        "--quiet",
        "--format",
        "json",
        "--output",
        str(output),
        "--list-all-pkgs",
        "--image-src",
        "docker",
        "--scanners",
        ",".join(scanners),
        "--image-config-scanners",
        ",".join(IMAGE_CONFIG_SCANNERS),
        *options.args(),
        ref,
    ]
    proc = run_tool(argv, ok_codes=range(0, 256), timeout=options.seconds())
    error = trivy_error(proc.stderr) if proc.returncode != 0 else ""
    return proc.returncode, error, short_command(["trivy", *argv[1:]])


def scan_image(
    ref: str, options: TrivyOptions, output: Path, *, db_in_cache: bool = True
) -> TrivyScan:
    """Scan a local image for vulnerabilities, secrets and misconfigurations.

    Without a vulnerability DB the vulnerability part is reported as not evaluated (with
    Trivy's reason) and secrets and misconfigurations are still scanned. When the cache holds
    no DB yet (``db_in_cache`` false: Trivy has to download one, which fails at once where it
    cannot), the scan without the vulnerability scanner runs beside the full one instead of
    after it, so an air-gapped machine does not wait for the failure first.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    offline_output = output.with_name(output.stem + "-offline.json")
    offline = None
    with ThreadPoolExecutor(max_workers=2) as pool:
        full = pool.submit(_run_image, ref, ALL_SCANNERS, options, output)
        if not db_in_cache:
            offline = pool.submit(_run_image, ref, OFFLINE_SCANNERS, options, offline_output)
        code, error, command = full.result()
        commands = [command]
        vulnerabilities = VulnerabilityScan(True)
        if code != 0 and is_db_failure(error):
            vulnerabilities = VulnerabilityScan(False, reason=error, fix=DB_FIX)
            if offline is None:
                offline = pool.submit(_run_image, ref, OFFLINE_SCANNERS, options, offline_output)
            code, error, command = offline.result()
            commands.append(command)
            if code == 0:
                offline_output.replace(output)
        elif offline is not None:
            offline.result()  # not needed: the full scan worked
    offline_output.unlink(missing_ok=True)
    if code != 0:
        raise trivy_failure(ref, error, command)
    data = load_report(output)
    version = str((data.get("Trivy") or {}).get("Version") or "unknown")
    return TrivyScan(
        output,
        image_meta(data),
        tuple(parse_report(data)),
        vulnerabilities,
        tuple(commands),
        version,
    )


def start_sbom(sbom: Path) -> StartedTool:
    """``trivy convert --format cyclonedx`` started now, to read a JSON report made with
    ``--list-all-pkgs`` from its stdin once the scan has written it (:func:`write_sbom`).
    Trivy's start-up is most of a conversion's time; this way it overlaps the scan."""
    argv = [trivy(), "convert", "--quiet", "--format", "cyclonedx", "--output", str(sbom)]
    # Its start-up is background work: at the lowest priority it takes idle cycles, not the
    # scan's; once the scan ends it has the cores to itself.
    return StartedTool([*argv, "/dev/stdin"], niceness=19)


def write_sbom(report: Path, converter: StartedTool) -> None:
    converter.finish(report.read_bytes(), timeout=SBOM_TIMEOUT)


# --------------------------------------------------------------------------------------------
# Reading reports


def load_report(path: Path) -> dict[str, Any]:
    """A Trivy JSON report (schema 2); anything else is bad input."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise BadInput(
            f"{path}: not a JSON file ({exc})",
            "pass a report made with `trivy image --format json`",
        ) from None
    if not isinstance(data, dict) or data.get("SchemaVersion") != 2:
        raise BadInput(
            f"{path}: not a Trivy JSON report with SchemaVersion 2",
            "pass a report made with `trivy image --format json` (Trivy 0.20+)",
        )
    return data


def image_meta(report: Mapping[str, Any]) -> ImageMeta:
    meta = report.get("Metadata") or {}
    return ImageMeta(
        name=str(report.get("ArtifactName") or ""),
        image_id=meta.get("ImageID"),
        repo_digests=tuple(meta.get("RepoDigests") or ()),
        repo_tags=tuple(meta.get("RepoTags") or ()),
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _items(result: Mapping[str, Any], key: str) -> Iterator[Mapping[str, Any]]:
    for item in result.get(key) or ():
        if isinstance(item, dict):
            yield item


def parse_report(report: Mapping[str, Any]) -> list[Finding]:
    """Every vulnerability, secret and failed misconfiguration check in a Trivy report."""
    findings: list[Finding] = []
    for result in report.get("Results") or ():
        target = str(result.get("Target") or "")
        for v in _items(result, "Vulnerabilities"):
            title = v.get("Title") or (v.get("Description") or "")[:120] or v["VulnerabilityID"]
            findings.append(
                Finding(
                    kind=FindingClass.VULNERABILITY,
                    id=str(v["VulnerabilityID"]),
                    severity=Severity.parse(v.get("Severity")),
                    title=str(title),
                    target=target,
                    package=str(v.get("PkgName") or ""),
                    installed=v.get("InstalledVersion"),
                    fixed=v.get("FixedVersion") or None,
                    status=v.get("Status"),
                    path=v.get("PkgPath"),
                    url=v.get("PrimaryURL"),
                )
            )
        for s in _items(result, "Secrets"):
            findings.append(
                Finding(
                    kind=FindingClass.SECRET,
                    id=str(s.get("RuleID") or "secret"),
                    severity=Severity.parse(s.get("Severity")),
                    title=str(s.get("Title") or s.get("Category") or "secret"),
                    target=target,
                    path=target,
                    line=_int(s.get("StartLine")),
                    end_line=_int(s.get("EndLine")),
                )
            )
        for m in _items(result, "Misconfigurations"):
            if m.get("Status", "FAIL") != "FAIL":
                continue
            cause = m.get("CauseMetadata") or {}
            findings.append(
                Finding(
                    kind=FindingClass.MISCONFIGURATION,
                    id=str(m.get("ID") or m.get("AVDID") or "misconfig"),
                    severity=Severity.parse(m.get("Severity")),
                    title=str(m.get("Message") or m.get("Title") or ""),
                    target=target,
                    path=target,
                    line=_int(cause.get("StartLine")),
                    end_line=_int(cause.get("EndLine")),
                    url=m.get("PrimaryURL"),
                )
            )
    return findings
