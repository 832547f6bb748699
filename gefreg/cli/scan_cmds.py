"""`gefreg scan`: the security gate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from gefreg.cli import cli
from gefreg.cli.options import load, policy_option, settings_options, trivy_options

if TYPE_CHECKING:
    from gefreg.scan.trivy_options import TrivyOptions

FORMATS = ("table", "json", "sarif")


@cli.command()
@click.argument("target", metavar="[IMAGE_OR_ENTRY]", required=False)
@settings_options
@policy_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Write the report to FILE instead of standard output.",
)
@click.option(
    "--trivy-report",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Evaluate this Trivy JSON report (made elsewhere) instead of scanning.",
)
@trivy_options
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Judge exception expiry as of this day [default: today].",
)
@click.option("--no-cache", is_flag=True, help="Scan again even if a cached result is valid.")
def scan(
    target: str | None,
    catalog: str | None,
    registry: str | None,
    policy_file: Path | None,
    fmt: str,
    output: Path | None,
    trivy_report: Path | None,
    trivy: TrivyOptions,
    today: object,
    no_cache: bool,
) -> None:
    """Scan an image and gate it with the policy: exit 0 pass, 1 blocked, 3 scanner failed.

    IMAGE_OR_ENTRY is a catalog entry (its built image, plus hadolint on its Dockerfile) or an
    image reference or ID known to the local Docker engine. Trivy looks for vulnerabilities,
    secrets and misconfigurations; the policy (CATALOG/policy.yaml, then
    CATALOG/<entry>/policy.yaml) decides what blocks. Without a vulnerability DB the
    vulnerability part is reported as not evaluated and the policy's
    vulnerability-db-unavailable (block or warn) decides. The JSON report, Trivy's report and a
    CycloneDX SBOM are kept under the state folder; results are cached per image.

    \b
    Examples:
      gefreg scan waveform-metadata
      gefreg scan myimage:1.0 --format sarif -o scan.sarif
      gefreg scan --trivy-report trivy.json --policy policy.yaml
    """
    import datetime as dt

    from gefreg.cli import ui
    from gefreg.errors import BadInput, CheckFailed
    from gefreg.scan.formats import OutputFormat, render

    day = today.date() if isinstance(today, dt.datetime) else None
    if trivy_report is not None:
        from gefreg.scan.image_scan import evaluate_trivy_report

        used = trivy.flags() + (["--no-cache"] if no_cache else [])
        if used:
            raise BadInput(
                f"{', '.join(used)}: no scanner runs with --trivy-report",
                "drop them, or scan the image instead of passing a report",
            )
        report = evaluate_trivy_report(
            _catalog_if_any(catalog, needed=target is not None),
            trivy_report,
            entry=target,
            policy_file=policy_file,
            today=day,
        )
    elif target is None:
        raise BadInput("nothing to scan", "name an image or entry, or pass --trivy-report FILE")
    else:
        from gefreg.scan.image_scan import scan as run_scan

        settings = load(catalog, registry)
        with ui.Progress() as progress:
            report = run_scan(
                settings,
                target,
                policy_file=policy_file,
                options=trivy,
                today=day,
                use_cache=not no_cache,
                progress=progress.status,
            )
    chosen = OutputFormat(fmt)
    if output is not None:
        output.write_text(render(report, chosen))
        click.echo(f"wrote {output}", err=True)
    else:
        import shutil

        terminal = ui.is_terminal()
        width = max(100, shutil.get_terminal_size().columns) if terminal else 100
        click.echo(render(report, chosen, color=terminal, width=width), nl=False)
    if not report.passed:
        hint: str | None
        if report.verdict.blocking:
            hint = (
                "fix the image (the report names each blocking finding), or accept a finding "
                "with a policy exception that has a reason and an expiry date"
            )
        else:
            hint = report.vulnerabilities.fix
        raise CheckFailed(report.summary(), hint)


def _catalog_if_any(catalog: str | None, *, needed: bool) -> Path | None:
    """The catalog, for a report evaluated against its policy. A report and a policy file need
    none, so a missing default catalog is no error unless one was named or an entry given."""
    import os

    from gefreg.errors import BadInput

    try:
        return Path(load(catalog, None).catalog)
    except BadInput:
        if needed or catalog is not None or os.environ.get("GEFREG_CATALOG"):
            raise
        return None
