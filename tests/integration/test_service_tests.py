"""`gefreg test`: golden tests of the shipped fixity-manifest entry, run for real."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg.catalog.entries import load_entry
from gefreg.cli import cli
from gefreg.engine import Engine
from gefreg.image.build import build_entry
from gefreg.run.service_tests import run_tests
from gefreg.settings import Settings
from tests.helpers import own_run_containers

pytestmark = pytest.mark.docker

SHIPPED = Path(__file__).resolve().parents[2] / "catalog" / "fixity-manifest"


@pytest.fixture
def fixity(tmp_path: Path, engine: Engine) -> Settings:
    catalog = tmp_path / "catalog"
    shutil.copytree(SHIPPED, catalog / "fixity-manifest")
    settings = Settings(catalog, "127.0.0.1:1", tmp_path / "state")
    build_entry(settings, load_entry(catalog / "fixity-manifest", set()), engine=engine)
    return settings


def gefreg_test(settings: Settings, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli,
        ["test", "--catalog", str(settings.catalog), *args],
        catch_exceptions=False,
        env={"GEFREG_STATE": str(settings.state_dir)},
    )
    return result.exit_code, result.stdout, result.stderr


def test_shipped_golden_test_passes(fixity: Settings, engine: Engine) -> None:
    code, out, err = gefreg_test(fixity, "fixity-manifest")
    assert code == 0, out + err
    assert out.splitlines()[0] == "PASS sample-collection"
    assert "  ok         manifest/manifest-sha256.txt" in out
    report = run_tests(fixity, load_entry(fixity.catalog / "fixity-manifest"), engine=engine)
    assert report.passed and report.declared == 1
    [result] = report.results
    assert result.run_status == "succeeded" and result.outputs is None  # removed when passing
    assert json.loads(result.record.read_text())["status"] == "succeeded"
    assert own_run_containers(engine, fixity.state_dir.parent) == []


def test_changed_expectation_fails_naming_the_file_and_update_fixes_it(fixity: Settings) -> None:
    record = fixity.catalog / "fixity-manifest" / "service.yaml"
    original = record.read_text()
    good = original.split("manifest/bag-info.txt: ")[1].split()[0].strip('"')
    wrong = "sha256:" + "f" * 64
    record.write_text(original.replace(good, wrong))

    code, out, err = gefreg_test(fixity, "fixity-manifest@1.0.0")
    assert code == 1
    assert out.splitlines()[0] == "FAIL sample-collection"
    assert f"  changed    manifest/bag-info.txt  {good[:19]}… (expected {wrong[:19]}…)" in out
    assert "  ok         manifest/manifest-sha256.txt" in out
    assert "outputs kept in:" in out and "1 of 1 tests failed: sample-collection" in err

    code, out, _ = gefreg_test(fixity, "fixity-manifest", "--update", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["changes"] == [
        {"test": "sample-collection", "file": "manifest/bag-info.txt", "old": wrong, "new": good}
    ]
    assert record.read_text() == original  # comments, quoting and layout as they were
    assert gefreg_test(fixity, "fixity-manifest")[0] == 0


def test_unbuilt_version_is_bad_input(fixity: Settings) -> None:
    code, _, err = gefreg_test(fixity, "fixity-manifest@9.9.9")
    assert code == 2 and "declares the tests of fixity-manifest 1.0.0, not 9.9.9" in err
