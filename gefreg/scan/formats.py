"""Output formats of a scan report. Each returns text; the CLI decides where it goes."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from gefreg.scan.findings import FindingClass
from gefreg.scan.policy import Decision, threshold_name

if TYPE_CHECKING:
    from gefreg.scan.scan_report import ScanReport


SHORT_CLASS = {
    FindingClass.VULNERABILITY: "vuln",
    FindingClass.SECRET: "secret",
    FindingClass.MISCONFIGURATION: "misconfig",
    FindingClass.DOCKERFILE: "dockerfile",
}


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"


Formatter = Callable[["ScanReport", bool, int], str]


def format_json(report: ScanReport, color: bool = False, width: int = 100) -> str:
    return json.dumps(report.to_json(), indent=2) + "\n"


def format_sarif(report: ScanReport, color: bool = False, width: int = 100) -> str:
    from gefreg.scan.sarif import to_sarif

    return json.dumps(to_sarif(report), indent=2) + "\n"


def _where(report: ScanReport, decision: Decision) -> str:
    finding = decision.finding
    if finding.package:
        text = f"{finding.package} {finding.installed or '?'}"
        return text + (f" → {finding.fixed}" if finding.fixed else " (no fix)")
    place = report.location(finding) or finding.target
    return f"{place}:{finding.line}" if finding.line else place


def _findings_table(
    report: ScanReport, title: str, decisions: tuple[Decision, ...], why: bool
) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", expand=True)
    for name in ("class", "id", "severity"):
        table.add_column(name, no_wrap=True)
    table.add_column("package installed → fixed / file:line", overflow="fold", ratio=2)
    table.add_column("why" if why else "title", overflow="fold", ratio=3)
    for d in decisions:
        f = d.finding
        cells = (
            SHORT_CLASS[f.kind],
            f.id,
            f.severity.name,
            _where(report, d),
            d.why(report.policy) if why else f.title,
        )
        table.add_row(*(Text(cell) for cell in cells))  # Text: no markup in scanner output
    return table


def format_table(report: ScanReport, color: bool = False, width: int = 100) -> str:
    from rich.console import Console

    out = io.StringIO()
    console = Console(
        file=out,
        force_terminal=color,
        no_color=not color,
        width=width,
        highlight=False,
        soft_wrap=True,
    )
    for section in (_header, _vulnerability_scan, _findings, _exceptions_and_notes, _footer):
        section(console, report)
    return out.getvalue()


def _header(console: Any, report: ScanReport) -> None:
    """The subject, the scanners with their DB, the policy and whether results were cached."""
    from rich.markup import escape

    policy = report.policy
    status = "[bold green]PASSED[/]" if report.passed else "[bold red]FAILED[/]"
    console.print(f"[bold]gefreg scan[/] {escape(report.entry or report.reference)}: {status}")
    console.print(
        f"  image     {report.image.image_id or '?'}"
        + (f" ({report.image.name})" if report.image.name else ""),
        markup=False,
    )
    db = report.scanner.db
    if db is not None:
        db_text = f"vulnerability DB v{db.version} updated {db.updated_at}"
    elif report.vulnerabilities.evaluated:
        db_text = "vulnerability DB not recorded"
    else:
        db_text = "no vulnerability DB"
    scanners = f"trivy {report.scanner.version} ({db_text})"
    if report.hadolint:
        scanners += f", hadolint {report.hadolint}"
    console.print(f"  scanners  {scanners}", markup=False)
    files = ", ".join(str(s.path) for s in policy.sources) or "built-in defaults"
    console.print(f"  policy    {files} ({policy.sha256[:19]}…)", markup=False)
    limits = ", ".join(f"{k.value} ≥ {threshold_name(v)}" for k, v in policy.thresholds)
    console.print(
        f"            blocks: {limits}; ignore-unfixed: "
        f"{str(policy.ignore_unfixed).lower()}; as of {report.verdict.today.isoformat()}"
    )
    if report.cached:
        console.print(f"  cached    scanner results from {report.scanned_at:%Y-%m-%d %H:%M} UTC")
    console.print()


def _vulnerability_scan(console: Any, report: ScanReport) -> None:
    """Whether vulnerabilities were looked for; when not, why, the fix and what the policy says."""
    vulns = report.vulnerabilities
    if vulns.evaluated:
        return
    effect = (
        "[bold red]this blocks the image[/]"
        if report.verdict.db_blocks
        else "[yellow]allowed by the policy (warn)[/]"
    )
    console.print(
        "[bold]Vulnerabilities: NOT EVALUATED[/] — Trivy could not use a "
        f"vulnerability DB; {effect} (vulnerability-db-unavailable: "
        f"{report.policy.db_unavailable.value})"
    )
    console.print(f"  reason: {vulns.reason}", markup=False)
    console.print(f"  fix:    {vulns.fix}", markup=False)
    console.print()


def _findings(console: Any, report: ScanReport) -> None:
    """Blocking and suppressed findings as tables; those below the threshold as a list."""
    verdict = report.verdict
    for title, decisions, why in (
        ("Blocking", verdict.blocking, False),
        ("Suppressed", verdict.suppressed, True),
    ):
        if decisions:
            console.print(_findings_table(report, f"{title} ({len(decisions)})", decisions, why))
    below = verdict.below_threshold
    if below:
        counts: dict[str, int] = {}
        for d in below:
            label = f"{d.finding.kind.value} {d.finding.severity.name}"
            counts[label] = counts.get(label, 0) + 1
        text = ", ".join(f"{n} {label}" for label, n in counts.items())
        console.print(f"Below threshold ({len(below)}, not blocking): {text}")
        for d in below:
            console.print(f"  {d.finding.describe()}", markup=False)


def _exceptions_and_notes(console: Any, report: ScanReport) -> None:
    verdict = report.verdict
    for title, items in (
        ("Expired exceptions (no longer applied)", verdict.expired),
        ("Stale exceptions (matched nothing; remove them?)", verdict.stale),
        ("Unverified exceptions (the vulnerability scan did not run)", verdict.unverified),
    ):
        if items:
            console.print(f"{title}:")
            for exception in items:
                console.print(f"  {exception.describe()}", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    console.print()


def _footer(console: Any, report: ScanReport) -> None:
    """The files kept beside the report, the summary and the reasons of the verdict."""
    from rich.markup import escape

    for label, path in (
        ("report", report.report_path),
        ("trivy report", report.trivy_report),
        ("sbom", report.sbom),
    ):
        if path is not None:
            console.print(f"  {label:<13} {path}", markup=False)
    console.print(
        ("[bold green]" if report.passed else "[bold red]") + escape(report.summary()) + "[/]"
    )
    for reason in report.verdict.reasons():
        console.print(f"  {reason}", markup=False)


FORMATTERS: dict[OutputFormat, Formatter] = {
    OutputFormat.TABLE: format_table,
    OutputFormat.JSON: format_json,
    OutputFormat.SARIF: format_sarif,
}


def render(report: ScanReport, fmt: OutputFormat, *, color: bool = False, width: int = 100) -> str:
    return FORMATTERS[fmt](report, color, width)
