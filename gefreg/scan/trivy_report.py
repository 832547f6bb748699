"""Trivy's JSON report (schema v2), read into gefreg's findings: vulnerabilities, secrets and
misconfigurations, and what the report says about the image. Needs no Trivy: a report made
elsewhere is judged the same way (``gefreg scan --trivy-report FILE``)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput
from gefreg.scan.findings import Finding, FindingClass, Severity


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
