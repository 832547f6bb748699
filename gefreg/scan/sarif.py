"""SARIF 2.1.0 for a scan report, for code-scanning dashboards.

One run whose driver is gefreg (Trivy and hadolint are listed as extensions). Every finding is
a result: ``error`` when it blocked the image, ``warning``/``note`` below the threshold, and
suppressed ones carry a SARIF ``suppressions`` entry with the policy's justification. A
vulnerability scan that could not run is a tool execution notification.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gefreg import __version__
from gefreg.scan.findings import Finding, FindingClass, Severity
from gefreg.scan.policy import Decision, Outcome

if TYPE_CHECKING:
    from gefreg.scan.scan_report import ScanReport

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# GitHub code scanning ranks security results by this CVSS-like number.
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "2.0",
    Severity.UNKNOWN: "0.0",
}


def _uri(report: ScanReport, finding: Finding) -> str:
    if finding.kind is FindingClass.DOCKERFILE and report.dockerfile is not None:
        return Path(report.dockerfile).resolve().as_uri()
    where = finding.path or report.image.name or finding.target
    return quote(where.lstrip("/"), safe="/:@+~=")


def _level(decision: Decision) -> str:
    if decision.outcome is Outcome.BLOCKED:
        return "error"
    if decision.outcome is Outcome.BELOW_THRESHOLD and decision.finding.severity >= Severity.MEDIUM:
        return "warning"
    return "note"


def _result(report: ScanReport, decision: Decision, rule_index: int) -> dict[str, Any]:
    finding = decision.finding
    location: dict[str, Any] = {"artifactLocation": {"uri": _uri(report, finding)}}
    if finding.line:
        region: dict[str, Any] = {"startLine": finding.line}
        if finding.end_line and finding.end_line >= finding.line:
            region["endLine"] = finding.end_line
        location["region"] = region
    result: dict[str, Any] = {
        "ruleId": finding.id,
        "ruleIndex": rule_index,
        "level": _level(decision),
        "message": {"text": f"{finding.describe()} — {decision.why(report.policy)}"},
        "locations": [{"physicalLocation": location}],
        "properties": {
            "class": finding.kind.value,
            "severity": finding.severity.name,
            "outcome": decision.outcome.value,
            **{
                k: v
                for k, v in (
                    ("package", finding.package),
                    ("installed", finding.installed),
                    ("fixed", finding.fixed),
                )
                if v
            },
        },
    }
    if decision.outcome in (Outcome.EXCEPTED, Outcome.UNFIXED_IGNORED):
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": decision.why(report.policy),
            }
        ]
    return result


def _rule(finding: Finding) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": finding.id,
        "name": finding.id,
        "shortDescription": {"text": finding.title or finding.id},
        "properties": {
            "tags": ["security", finding.kind.value],
            "security-severity": SECURITY_SEVERITY[finding.severity],
        },
    }
    if finding.url:
        rule["helpUri"] = finding.url
    return rule


def to_sarif(report: ScanReport) -> dict[str, Any]:
    decisions = list(report.verdict.decisions)
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for decision in decisions:
        if decision.finding.id not in index:
            index[decision.finding.id] = len(rules)
            rules.append(_rule(decision.finding))
    notifications = []
    if not report.vulnerabilities.evaluated:
        notifications.append(
            {
                "level": "error" if report.verdict.db_blocks else "warning",
                "message": {
                    "text": "vulnerabilities not evaluated: "
                    f"{report.vulnerabilities.reason} (fix: {report.vulnerabilities.fix})"
                },
            }
        )
    extensions = [
        {"name": "Trivy", "version": report.scanner.version, "informationUri": "https://trivy.dev"}
    ]
    if report.hadolint:
        extensions.append(
            {
                "name": "hadolint",
                "version": report.hadolint,
                "informationUri": "https://github.com/hadolint/hadolint",
            }
        )
    return {
        "version": "2.1.0",
        "$schema": SCHEMA,
        "runs": [
            {
                "tool": {
                    "driver": {"name": "gefreg", "version": __version__, "rules": rules},
                    "extensions": extensions,
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": [_result(report, d, index[d.finding.id]) for d in decisions],
                "properties": {
                    "passed": report.passed,
                    "image": report.image.to_json(),
                    "policySha256": report.policy.sha256,
                },
            }
        ],
    }
