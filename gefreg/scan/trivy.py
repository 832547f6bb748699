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

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gefreg.errors import BadInput, EnvironmentFailure, ToolFailed
from gefreg.scan.findings import Finding
from gefreg.scan.trivy_options import (
    DB_FIX,
    TrivyOptions,
    VulnerabilityScan,
    trivy,
)
from gefreg.scan.trivy_report import ImageMeta, image_meta, load_report, parse_report
from gefreg.subprocesses import StartedTool, run_tool, short_command

ALL_SCANNERS = ("vuln", "secret", "misconfig")
OFFLINE_SCANNERS = ("secret", "misconfig")
IMAGE_CONFIG_SCANNERS = ("misconfig", "secret")
SBOM_TIMEOUT = 600.0  # seconds for a conversion, once the report is there


@dataclass(frozen=True)
class TrivyScan:
    report_path: Path
    image: ImageMeta
    findings: tuple[Finding, ...]
    vulnerabilities: VulnerabilityScan
    commands: tuple[str, ...]
    version: str  # of the Trivy that made the report, as the report says


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


class UnknownImage(BadInput):
    """Trivy found no such image in the local engine (a typo, or not built yet)."""


def trivy_failure(ref: str, error: str, command: str) -> Exception:
    """The gefreg error for a failed ``trivy image`` (given Trivy's error line)."""
    lowered = error.lower()
    if any(text in lowered for text in ENGINE_DOWN):
        from gefreg.engine import START_HINT

        return EnvironmentFailure(
            f"Trivy could not reach the Docker engine to read {ref}: {error}", START_HINT
        )
    if any(text in lowered for text in NO_SUCH_IMAGE):
        return UnknownImage(
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
