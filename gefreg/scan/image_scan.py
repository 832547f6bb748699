"""`gefreg scan`: scan an image (or an entry's built image), apply the policy, keep the report.

An image is scanned by Trivy (vulnerabilities, secrets, misconfigurations) and, for an entry,
the entry's rendered Dockerfile by hadolint. The findings go through the policy
(:mod:`gefreg.scan.policy`) and the result is a :class:`ScanReport`: the verdict, every finding
that blocked, what was suppressed and why, and what is needed to reproduce it (scanner and DB
versions, policy sha256, image ID, SBOM). Scanner results are cached (:mod:`gefreg.scan.cache`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gefreg.catalog.entries import close_names, find_entry
from gefreg.errors import BadInput
from gefreg.image.build_record import BuildRecord, require_build
from gefreg.model import is_digest
from gefreg.scan.cache import (
    DOCKERFILE,
    REPORT,
    SBOM,
    TRIVY_REPORT,
    CachedScan,
    ScanCache,
    cache_key,
    valid_until,
    write_json,
)
from gefreg.scan.findings import HADOLINT_SEVERITY, Finding, FindingClass
from gefreg.scan.policy import Policy, evaluate
from gefreg.scan.policy_file import load_policy, policy_files
from gefreg.scan.scan_report import ScanReport
from gefreg.scan.trivy_options import (
    ScannerInfo,
    TrivyOptions,
    VulnerabilityScan,
    db_info,
    remember_trivy_version,
    scanner_info,
    trivy_version,
)
from gefreg.scan.trivy_report import ImageMeta, image_meta, load_report, parse_report
from gefreg.settings import Settings

if TYPE_CHECKING:
    from gefreg.scan.trivy import UnknownImage

Progress = Callable[[str], None]


def _hadolint_version(memo: Path) -> str:
    from gefreg.scan.tool_versions import tool_version
    from gefreg.subprocesses import find_tool

    def parse(out: bytes) -> str:
        return out.decode(errors="replace").strip().rsplit(" ", 1)[-1] or "unknown"

    return tool_version(find_tool("hadolint"), ["--version"], parse, memo)


def _lint_dockerfile(path: Path, entry: str) -> tuple[Finding, ...]:
    from gefreg.scan.hadolint import run_hadolint

    return tuple(
        Finding(
            kind=FindingClass.DOCKERFILE,
            id=f.code,
            severity=HADOLINT_SEVERITY.get(f.level, HADOLINT_SEVERITY["error"]),
            title=f.message,
            target=f"Dockerfile rendered from {entry}",
            path=DOCKERFILE,
            line=f.line or None,
            url=f"https://github.com/hadolint/hadolint/wiki/{f.code}"
            if f.code.startswith("DL")
            else None,
        )
        for f in run_hadolint([path])
    )


@dataclass(frozen=True)
class _Target:
    """What to scan: an image reference, or an entry's built image (found without parsing)."""

    reference: str
    image_id: str | None
    entry: str | None = None
    entry_dir: Path | None = None
    build: BuildRecord | None = None


def _target(settings: Settings, target: str) -> _Target:
    folder = find_entry(settings.catalog, target)
    if folder is None:
        return _Target(target, target if is_digest(target) else None)
    name = folder.resolve().name  # a record's name must equal its folder's (service_record)
    record = require_build(settings, name)
    reference = record.tags[0] if record.tags else record.image_id
    return _Target(reference, record.image_id, name, folder, record)


@dataclass(frozen=True)
class _Dockerfile:
    """An entry's rendered Dockerfile; ``identity`` keys its hadolint result in the cache."""

    text: str
    identity: str
    notes: tuple[str, ...] = ()


def _render(settings: Settings, subject: _Target) -> _Dockerfile:
    """Render the entry now. When its fingerprint is the one in the build record, this is the
    Dockerfile the image was built from, and the fingerprint identifies it."""
    from gefreg.catalog.entries import base_names, load_entry
    from gefreg.hashing import sha256_bytes
    from gefreg.image.build_plan import prepare

    assert subject.entry_dir is not None and subject.build is not None
    plan = prepare(load_entry(subject.entry_dir, base_names(settings.catalog)), settings)
    now, built = plan.fingerprint.digest, subject.build.fingerprint
    if now == built:
        return _Dockerfile(plan.dockerfile, now)
    notes = (
        f"{subject.entry} changed since its image was built (fingerprint {now[:19]} now, "
        f"{built[:19]} when built): hadolint checked the current Dockerfile; rebuild with "
        f"`gefreg build {subject.entry}`",
    )
    return _Dockerfile(plan.dockerfile, "rendered " + sha256_bytes(plan.dockerfile.encode()), notes)


def scan(
    settings: Settings,
    target: str,
    *,
    policy_file: Path | None = None,
    options: TrivyOptions | None = None,
    today: date | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> ScanReport:
    """Scan ``target`` (an image reference or ID in the local engine, or a catalog entry).

    A cached result is looked for when the image ID is known without asking the engine (an
    entry's build record, or an ID given as ``sha256:...``); a tag is always scanned, and its
    result is cached under the image ID Trivy reports. For an entry, the result is reused while
    the image and the fingerprint it was built from are unchanged.
    """
    options = (options or TrivyOptions()).resolved()
    say = progress or (lambda _text: None)
    subject = _target(settings, target)
    policy = load_policy(policy_files(settings.catalog, policy_file, subject.entry_dir))
    cache = ScanCache(settings.state_dir / "scans")
    hadolint = _hadolint_version(cache.tools) if subject.entry is not None else None
    cached = None
    if use_cache and subject.image_id is not None:
        identity = subject.build.fingerprint if subject.build is not None else None
        info = scanner_info(options, trivy_version(cache.tools))
        key = cache_key(subject.image_id, info, options.key(), identity, hadolint)
        cached = cache.get(subject.image_id, key)
    was_cached = cached is not None
    notes: tuple[str, ...] = ()
    if cached is None:
        from gefreg.scan.trivy import UnknownImage  # (with its threads: not for cached results)

        try:
            cached, notes = _run_scanners(settings, cache, subject, options, hadolint, say)
        except UnknownImage as exc:
            raise _maybe_a_typo(settings, target, exc) from None
    return _finish(cached, subject, policy, today or date.today(), was_cached, notes)


def _maybe_a_typo(settings: Settings, target: str, exc: UnknownImage) -> UnknownImage:
    """An image the engine does not know whose name is close to an entry's: say which."""
    close = close_names(settings.catalog, target)
    if not close:
        return exc
    from gefreg.scan.trivy import UnknownImage

    return UnknownImage(
        f"{exc.message}, and no catalog entry is called {target!r}",
        f"did you mean {' or '.join(close)}? (entries of {settings.catalog})",
    )


def _run_scanners(
    settings: Settings,
    cache: ScanCache,
    subject: _Target,
    options: TrivyOptions,
    hadolint: str | None,
    say: Progress,
) -> tuple[CachedScan, tuple[str, ...]]:
    from concurrent.futures import ThreadPoolExecutor  # (imports not needed for cached results)

    from gefreg.scan.trivy import scan_image, start_sbom, write_sbom

    workspace = cache.workspace()
    try:
        scanned_at = datetime.now(UTC)
        shown = subject.reference  # the image ID is what Trivy scans: a tag may have moved
        if subject.image_id and subject.image_id != shown:
            shown += f" ({subject.image_id[:19]})"
        say(f"Trivy: scanning {shown}")
        ref = subject.image_id or subject.reference
        findings: tuple[Finding, ...] = ()
        with start_sbom(workspace / SBOM) as converter, ThreadPoolExecutor(1) as pool:
            # Trivy runs in the background while the entry's Dockerfile is rendered and linted.
            scanning = pool.submit(
                scan_image,
                ref,
                options,
                workspace / TRIVY_REPORT,
                db_in_cache=db_info(options) is not None,
            )
            dockerfile = None
            if subject.entry is not None:
                say(f"rendering the Dockerfile of {subject.entry}")
                dockerfile = _render(settings, subject)
                say("hadolint: checking the Dockerfile (Trivy still scanning)")
                (workspace / DOCKERFILE).write_text(dockerfile.text)
                findings += _lint_dockerfile(workspace / DOCKERFILE, subject.entry)
                if not scanning.done():  # the step now is Trivy's, not hadolint's
                    say(f"Trivy: scanning {shown} (hadolint done)")
            result = scanning.result()
            say("writing the CycloneDX SBOM")
            write_sbom(workspace / TRIVY_REPORT, converter)
        findings += result.findings
        remember_trivy_version(cache.tools, result.version)
        info = scanner_info(options, result.version)  # Trivy may just have fetched a DB
        image = result.image
        if image.image_id is None:
            image = ImageMeta(image.name, subject.image_id, image.repo_digests, image.repo_tags)
        identity = dockerfile.identity if dockerfile is not None else None
        key = cache_key(
            image.image_id or subject.reference, info, options.key(), identity, hadolint
        )
        record = CachedScan(
            key=key,
            folder=workspace,
            scanned_at=scanned_at,
            valid_until=valid_until(
                scanned_at, info, result.vulnerabilities, options.skip_db_update
            ),
            image=image,
            scanner=info,
            hadolint=hadolint,
            vulnerabilities=result.vulnerabilities,
            findings=findings,
            commands=result.commands,
        )
        return cache.put(workspace, record), dockerfile.notes if dockerfile else ()
    except BaseException:
        shutil.rmtree(workspace, ignore_errors=True)
        raise


def _finish(
    cached: CachedScan,
    subject: _Target,
    policy: Policy,
    today: date,
    was_cached: bool,
    notes: tuple[str, ...],
) -> ScanReport:
    verdict = evaluate(
        cached.findings,
        policy,
        today=today,
        vulnerabilities_evaluated=cached.vulnerabilities.evaluated,
    )
    dockerfile = cached.folder / DOCKERFILE
    report = ScanReport(
        reference=subject.reference,
        entry=subject.entry,
        image=cached.image,
        scanner=cached.scanner,
        hadolint=cached.hadolint,
        vulnerabilities=cached.vulnerabilities,
        verdict=verdict,
        scanned_at=cached.scanned_at,
        cached=was_cached,
        folder=cached.folder,
        trivy_report=cached.trivy_report,
        sbom=cached.sbom,
        dockerfile=dockerfile if dockerfile.is_file() else None,
        commands=cached.commands,
        notes=notes,
    )
    write_json(cached.folder / REPORT, report.to_json())
    return report


def evaluate_trivy_report(
    catalog: Path | None,
    path: Path,
    *,
    entry: str | None = None,
    policy_file: Path | None = None,
    today: date | None = None,
) -> ScanReport:
    """Apply the policy to a Trivy JSON report made elsewhere (no scanner runs).

    The report is taken to include the vulnerability scan (Trivy's default). ``entry`` selects
    an entry's own policy on top of the catalog's; without a catalog only ``policy_file`` (or
    the default policy) applies.
    """
    entry_dir = None
    if entry is not None:
        entry_dir = find_entry(catalog, entry) if catalog is not None else None
        if entry_dir is None:
            raise BadInput(
                f"no catalog entry {entry!r} in {catalog}",
                "name an entry folder or name, or leave it out",
            )
    policy = load_policy(policy_files(catalog, policy_file, entry_dir))
    data = load_report(path)
    image = image_meta(data)
    verdict = evaluate(parse_report(data), policy, today=today or date.today())
    version = str((data.get("Trivy") or {}).get("Version") or "unknown")
    created = data.get("CreatedAt")
    try:
        scanned_at = datetime.fromisoformat(str(created))
    except ValueError:
        scanned_at = datetime.now(UTC)
    return ScanReport(
        reference=image.name or str(path),
        entry=entry_dir.resolve().name if entry_dir else None,
        image=image,
        scanner=ScannerInfo(version, None),
        hadolint=None,
        vulnerabilities=VulnerabilityScan(True),
        verdict=verdict,
        scanned_at=scanned_at,
        cached=False,
        folder=None,
        trivy_report=path,
        sbom=None,
        dockerfile=None,
        notes=(
            f"evaluated {path} (a Trivy report made elsewhere); the vulnerability scan is "
            "taken to be part of it",
        ),
    )
