"""What publish demands before a version may exist: a passing scan and passing tests.

Both run here (from their caches when nothing changed), so `gefreg publish` cannot be talked
into pushing an image that was never scanned or tested, whatever ran before it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gefreg.errors import CheckFailed
from gefreg.image.build_plan import BuildPlan
from gefreg.image.build_record import BuildRecord
from gefreg.release.publish import PublishEvidence
from gefreg.scan.trivy_options import TrivyOptions
from gefreg.settings import Settings
from gefreg.words import count


def publish_gate(
    settings: Settings,
    *,
    engine: Any,
    policy_file: Path | None = None,
    scan_options: TrivyOptions | None = None,
    on_step: Callable[[str], None] = lambda _: None,
) -> Callable[[BuildPlan, BuildRecord], PublishEvidence]:
    """A gate for :func:`gefreg.release.publish.publish`: scan with the policy, run the tests."""

    def gate(plan: BuildPlan, build: BuildRecord) -> PublishEvidence:
        from gefreg.run.service_tests import built_image, run_tests
        from gefreg.scan.image_scan import scan

        entry = plan.entry
        on_step(f"scanning {entry.name} (policy gate)")
        report = scan(
            settings, entry.name, policy_file=policy_file, options=scan_options, progress=on_step
        )
        if not report.passed:
            reasons = "; ".join(report.verdict.reasons()[:5])
            raise CheckFailed(
                f"{report.summary()}: {reasons}",
                f"see `gefreg scan {entry.name}`; fix the image or add a dated "
                "exception to the policy",
            )
        tests: dict[str, Any] = {"declared": len(entry.spec.tests), "passed": True}
        if entry.spec.tests:
            on_step(f"testing {entry.name} ({count(len(entry.spec.tests), 'test')})")
            result = run_tests(
                settings, entry, engine=engine, image=built_image(settings, entry, engine)
            )
            if not result.passed:
                failed = [r.name for r in result.results if not r.passed]
                raise CheckFailed(
                    f"{entry.name}: tests failed: {', '.join(failed)}",
                    f"see `gefreg test {entry.name}`",
                )
            tests = {
                "declared": len(entry.spec.tests),
                "passed": True,
                "names": [r.name for r in result.results],
            }
        report_json = report.to_json()
        summary = {
            "passed": True,
            "summary": report.summary(),
            "vulnerabilities_evaluated": report.vulnerabilities.evaluated,
            "policy_sha256": report_json["policy"].get("sha256"),
            "trivy": report_json["scanners"]["trivy"],
            "counts": {
                "blocking": len(report.verdict.blocking),
                "suppressed": len(report.verdict.suppressed),
                "below_threshold": len(report.verdict.below_threshold),
            },
            "tests": tests,
        }
        sbom = report.sbom.read_bytes() if report.sbom and report.sbom.is_file() else None
        return PublishEvidence(
            scan_summary=summary,
            scan_report=json.dumps(report_json, indent=2, default=str).encode(),
            sbom=sbom,
        )

    return gate
