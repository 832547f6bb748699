"""What a scan found and decided (:class:`ScanReport`), and what is needed to reproduce it: the
image, the scanners and the DB, the policy and its verdict, and the files kept beside it. The
formats (:mod:`gefreg.scan.formats`, :mod:`gefreg.scan.sarif`) render it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gefreg import __version__
from gefreg.scan.cache import REPORT
from gefreg.scan.findings import Finding, FindingClass
from gefreg.scan.policy import Policy, Verdict
from gefreg.scan.trivy_options import ScannerInfo, VulnerabilityScan
from gefreg.scan.trivy_report import ImageMeta


@dataclass(frozen=True)
class ScanReport:
    """Everything a scan found and decided, and what is needed to reproduce it."""

    reference: str
    entry: str | None
    image: ImageMeta
    scanner: ScannerInfo
    hadolint: str | None
    vulnerabilities: VulnerabilityScan
    verdict: Verdict
    scanned_at: datetime
    cached: bool
    folder: Path | None
    trivy_report: Path | None
    sbom: Path | None
    dockerfile: Path | None
    commands: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    @property
    def policy(self) -> Policy:
        return self.verdict.policy

    @property
    def report_path(self) -> Path | None:
        return self.folder / REPORT if self.folder else None

    def location(self, finding: Finding) -> str | None:
        """The file a finding points at: the saved Dockerfile for hadolint findings."""
        if finding.kind is FindingClass.DOCKERFILE and self.dockerfile is not None:
            return str(self.dockerfile)
        return finding.path

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        subject = self.entry or self.reference
        blocking = len(self.verdict.blocking)
        text = f"scan {verdict}: {subject}: {blocking} blocking finding"
        text += "" if blocking == 1 else "s"
        if not self.vulnerabilities.evaluated:
            text += ", vulnerabilities not evaluated (no vulnerability DB)"
        return text

    def to_json(self) -> dict[str, Any]:
        files = {
            "report": self.report_path,
            "trivy_report": self.trivy_report,
            "sbom": self.sbom,
            "dockerfile": self.dockerfile,
        }
        return {
            "gefreg_scan": 1,
            "gefreg_version": __version__,
            "passed": self.passed,
            "summary": self.summary(),
            "reasons": self.verdict.reasons(),
            "subject": {
                "reference": self.reference,
                "entry": self.entry,
                **self.image.to_json(),
            },
            "scanners": {
                "trivy": self.scanner.to_json(),
                "hadolint": {"version": self.hadolint} if self.hadolint else None,
            },
            "vulnerabilities": {
                **self.vulnerabilities.to_json(),
                "when_unavailable": self.policy.db_unavailable.value,
                "blocks": self.verdict.db_blocks,
            },
            "policy": self.policy.to_json(),
            "verdict": self.verdict.to_json(),
            "scanned_at": self.scanned_at.isoformat(),
            "cached": self.cached,
            "files": {k: str(v) if v else None for k, v in files.items()},
            "commands": list(self.commands),
            "notes": list(self.notes),
        }
