"""The scan policy: loading with file:line problems, and evaluation on real Trivy reports."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gefreg.errors import InvalidRecord
from gefreg.scan.findings import Finding, FindingClass, Severity
from gefreg.scan.policy import DbUnavailable, Outcome, Policy, evaluate
from gefreg.scan.policy_file import load_policy
from gefreg.scan.trivy_report import load_report, parse_report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trivy"
TODAY = date(2025, 3, 1)


def findings(name: str) -> list[Finding]:
    return parse_report(load_report(FIXTURES / f"{name}.json"))


def policy(tmp_path: Path, text: str, name: str = "policy.yaml") -> Policy:
    path = tmp_path / name
    path.write_text(text)
    return load_policy([path])


def ids(decisions: tuple[object, ...]) -> list[tuple[str, str | None]]:
    return [(d.finding.id, d.finding.package) for d in decisions]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------- parsing


def test_trivy_report_becomes_findings_with_versions() -> None:
    found = {(f.id, f.package): f for f in findings("debian-buster")}
    idn = found[("CVE-2019-18224", "libidn2-0")]
    assert idn.kind is FindingClass.VULNERABILITY and idn.severity is Severity.CRITICAL
    assert (idn.installed, idn.fixed) == ("2.0.5-1", "2.0.5-1+deb10u1")
    bash = found[("CVE-2019-18276", "bash")]
    assert bash.severity is Severity.LOW and bash.fixed is None and not bash.has_fix


def test_secrets_and_failed_checks_become_findings() -> None:
    found = findings("secret-misconfig")
    secret = next(f for f in found if f.kind is FindingClass.SECRET)
    assert (secret.id, secret.path, secret.line) == ("private-key", "/opt/app/id_rsa", 2)
    checks = {f.id: f.severity for f in found if f.kind is FindingClass.MISCONFIGURATION}
    assert checks == {
        "DS-0002": Severity.HIGH,
        "DS-0026": Severity.LOW,
        "DS-0031": Severity.CRITICAL,
    }


# ---------------------------------------------------------------------------------- evaluation


def test_default_policy_blocks_high_and_critical_only() -> None:
    verdict = evaluate(findings("debian-buster"), Policy(), today=TODAY)
    assert not verdict.passed
    assert ids(verdict.blocking) == [("CVE-2019-18224", "libidn2-0")]
    assert ids(verdict.below_threshold) == [("CVE-2019-18276", "bash")]
    assert "libidn2-0 2.0.5-1 (fixed in 2.0.5-1+deb10u1)" in verdict.reasons()[0]


def test_medium_findings_pass_by_default_and_block_at_a_medium_threshold(tmp_path: Path) -> None:
    alpine = findings("alpine-310")
    assert evaluate(alpine, Policy(), today=TODAY).passed
    strict = policy(tmp_path, "severity-threshold:\n  vulnerabilities: medium\n")
    verdict = evaluate(alpine, strict, today=TODAY)
    assert len(verdict.blocking) == 4
    assert {p for _, p in ids(verdict.blocking)} == {"libcrypto1.1", "libssl1.1"}


@pytest.mark.parametrize(
    ("threshold", "blocked"),
    [("low", 2), ("LOW", 2), ("critical", 1), ("none", 0), ("any", 2)],
)
def test_thresholds(tmp_path: Path, threshold: str, blocked: int) -> None:
    rules = policy(tmp_path, f"severity-threshold:\n  vulnerabilities: {threshold}\n")
    verdict = evaluate(findings("debian-buster"), rules, today=TODAY)
    assert len(verdict.blocking) == blocked


def test_ignore_unfixed_suppresses_only_vulnerabilities_without_a_fix(tmp_path: Path) -> None:
    rules = policy(tmp_path, "severity-threshold: {vulnerabilities: low}\nignore-unfixed: true\n")
    verdict = evaluate(findings("centos-7"), rules, today=TODAY)
    assert [(d.finding.id, d.outcome) for d in verdict.suppressed] == [
        ("CVE-2019-18276", Outcome.UNFIXED_IGNORED)
    ]
    assert sorted(i for i, _ in ids(verdict.blocking)) == ["CVE-2018-0734", "CVE-2019-1559"]
    assert "no fixed version" in verdict.suppressed[0].why(rules)


EXCEPTIONS = """\
exceptions:
  - id: CVE-2019-18224
    package: libidn2-0
    reason: the service resolves no user-supplied domain names
    expires: {expires}
  - id: CVE-2000-0001
    reason: left over from an old base image
    expires: 2099-01-01
"""


def test_an_exception_applies_and_says_why(tmp_path: Path) -> None:
    rules = policy(tmp_path, EXCEPTIONS.format(expires="2025-03-01"))  # expires today: applies
    verdict = evaluate(findings("debian-buster"), rules, today=TODAY)
    assert verdict.passed
    [excepted] = [d for d in verdict.suppressed if d.outcome is Outcome.EXCEPTED]
    assert excepted.finding.id == "CVE-2019-18224"
    assert "resolves no user-supplied domain names" in excepted.why(rules)
    assert "policy.yaml:2" in excepted.why(rules)
    assert [e.id for e in verdict.stale] == ["CVE-2000-0001"]


def test_an_expired_exception_stops_applying_and_is_reported(tmp_path: Path) -> None:
    rules = policy(tmp_path, EXCEPTIONS.format(expires="2025-02-28"))
    verdict = evaluate(findings("debian-buster"), rules, today=TODAY)
    assert not verdict.passed
    assert ids(verdict.blocking) == [("CVE-2019-18224", "libidn2-0")]
    assert [e.id for e in verdict.expired] == ["CVE-2019-18224"]
    assert "exception expired" in verdict.blocking[0].why(rules)
    assert [e.id for e in verdict.stale] == ["CVE-2000-0001"]


def test_an_exception_for_another_package_does_not_apply(tmp_path: Path) -> None:
    rules = policy(tmp_path, EXCEPTIONS.format(expires="2099-01-01").replace("libidn2-0", "curl"))
    verdict = evaluate(findings("debian-buster"), rules, today=TODAY)
    assert not verdict.passed
    assert sorted(e.id for e in verdict.stale) == ["CVE-2000-0001", "CVE-2019-18224"]


def test_secret_exception_by_path_glob(tmp_path: Path) -> None:
    rules = policy(
        tmp_path,
        """\
severity-threshold: {misconfigurations: none}
exceptions:
  - id: private-key
    path: /opt/app/*
    reason: throw-away key of the test fixture
    expires: 2099-01-01
""",
    )
    verdict = evaluate(findings("secret-misconfig"), rules, today=TODAY)
    assert verdict.passed
    assert [d.finding.path for d in verdict.suppressed] == ["/opt/app/id_rsa"]


def test_secrets_block_at_any_severity_by_default() -> None:
    verdict = evaluate(findings("secret-misconfig"), Policy(), today=TODAY)
    blocked = {(d.finding.kind, d.finding.id) for d in verdict.blocking}
    assert (FindingClass.SECRET, "private-key") in blocked
    assert (FindingClass.MISCONFIGURATION, "DS-0031") in blocked
    assert (FindingClass.MISCONFIGURATION, "DS-0026") not in blocked


def test_missing_vulnerability_db_blocks_by_default_and_warn_lets_it_pass(tmp_path: Path) -> None:
    clean: list[Finding] = []
    verdict = evaluate(clean, Policy(), today=TODAY, vulnerabilities_evaluated=False)
    assert not verdict.passed and verdict.db_blocks
    assert "not evaluated" in verdict.reasons()[0]
    warn = policy(tmp_path, "vulnerability-db-unavailable: warn\n")
    assert warn.db_unavailable is DbUnavailable.WARN
    assert evaluate(clean, warn, today=TODAY, vulnerabilities_evaluated=False).passed


def test_unmatched_exceptions_are_unverified_when_vulnerabilities_were_not_scanned(
    tmp_path: Path,
) -> None:
    rules = policy(tmp_path, EXCEPTIONS.format(expires="2099-01-01"))
    verdict = evaluate([], rules, today=TODAY, vulnerabilities_evaluated=False)
    assert verdict.stale == ()
    assert len(verdict.unverified) == 2


def test_dockerfile_threshold_accepts_hadolint_levels(tmp_path: Path) -> None:
    rules = policy(tmp_path, "severity-threshold: {dockerfile: warning}\n")
    warning = Finding(FindingClass.DOCKERFILE, "DL3008", Severity.MEDIUM, "pin versions", "df")
    info = Finding(FindingClass.DOCKERFILE, "DL3059", Severity.LOW, "merge RUNs", "df")
    verdict = evaluate([warning, info], rules, today=TODAY)
    assert [d.finding.id for d in verdict.blocking] == ["DL3008"]


# ---------------------------------------------------------------------------------- loading


def test_entry_policy_overrides_and_extends_the_catalog_policy(tmp_path: Path) -> None:
    catalog = tmp_path / "policy.yaml"
    catalog.write_text(
        EXCEPTIONS.format(expires="2099-01-01")
        + "severity-threshold: {vulnerabilities: medium, secrets: any}\n"
    )
    entry = tmp_path / "entry-policy.yaml"
    entry.write_text("""\
severity-threshold: {vulnerabilities: critical}
ignore-unfixed: true
exceptions:
  - id: DS-0002
    reason: the runner always sets --user
    expires: 2099-01-01
""")
    merged = load_policy([catalog, entry])
    assert merged.threshold(FindingClass.VULNERABILITY) is Severity.CRITICAL
    assert merged.threshold(FindingClass.SECRET) is Severity.UNKNOWN
    assert merged.ignore_unfixed is True
    assert [e.id for e in merged.exceptions] == ["CVE-2019-18224", "CVE-2000-0001", "DS-0002"]
    assert [s.path for s in merged.sources] == [catalog, entry]
    assert merged.sha256 != load_policy([catalog]).sha256


def test_policy_hash_depends_on_the_rules_not_the_formatting(tmp_path: Path) -> None:
    a = policy(tmp_path, "ignore-unfixed: true\n", "a.yaml")
    b = policy(tmp_path, "# a comment\nignore-unfixed:   true   # yes\n", "b.yaml")
    assert a.sha256 == b.sha256 and a.sha256 != Policy().sha256


def test_empty_policy_file_means_the_defaults(tmp_path: Path) -> None:
    assert policy(tmp_path, "# nothing yet\n").sha256 == Policy().sha256


BAD = """\
severity-threshold:
  vulnerabilities: severe
  secret: any
ignore-unfixed: "yes"
vulnerability-db-unavailable: ignore
exceptions:
  - id: CVE-2019-18224
    reason: ""
    expires: next week
  - id: CVE-2019-18276
    expires: 2025-01-01
"""


def test_every_problem_in_a_malformed_policy_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(BAD)
    with pytest.raises(InvalidRecord) as caught:
        load_policy([path])
    text = str(caught.value)
    assert f"{path}:2:20: severity-threshold.vulnerabilities: unknown threshold 'severe'" in text
    assert f"{path}:3:3: severity-threshold.secret: unknown key (fix: did you mean 'secrets'?)" in (
        text
    )
    assert f"{path}:4:17: ignore-unfixed: expected true or false" in text
    assert f"{path}:5:31: vulnerability-db-unavailable: expected block or warn" in text
    assert f"{path}:8:13: exceptions[0].reason: must not be empty" in text
    assert f"{path}:9:14: exceptions[0].expires: expected a date" in text
    assert "exceptions[1].reason: required key is missing" in text
    assert len(caught.value.problems) == 7


def test_yaml_syntax_error_in_policy_has_a_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("exceptions:\n  - id: [unclosed\n")
    with pytest.raises(InvalidRecord) as caught:
        load_policy([path])
    assert caught.value.problems[0].line is not None
    assert "YAML syntax error" in str(caught.value)


def test_the_shipped_catalog_policy_spells_out_the_defaults() -> None:
    """The example catalog keeps every default but one, which its comment explains: without a
    vulnerability DB (machines without internet access) a scan warns instead of blocking."""
    shipped = Path(__file__).resolve().parents[2] / "catalog" / "policy.yaml"
    expected = {**Policy().rules_json(), "vulnerability-db-unavailable": "warn"}
    assert load_policy([shipped]).rules_json() == expected
