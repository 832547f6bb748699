"""The catalog gefreg ships: every record valid, every Dockerfile through the real hadolint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from gefreg.catalog.entries import load_all
from gefreg.cli import cli
from gefreg.model import TEMPLATES

CATALOG = Path(__file__).resolve().parents[2] / "catalog"


def test_shipped_catalog_has_an_entry_per_template() -> None:
    entries, bases = load_all(CATALOG)
    assert {e.spec.template for e in entries} >= set(TEMPLATES)
    assert {b.name for b in bases} >= {"debian-bookworm", "python-bookworm"}


def lint(catalog: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli, ["lint", "--catalog", str(catalog), "--json"], catch_exceptions=False
    )
    report = dict(json.loads(result.stdout))
    assert result.exit_code == 0, report["findings"]
    return report


def test_every_shipped_entry_passes_lint_with_real_hadolint(tmp_path: Path) -> None:
    report = lint(CATALOG)
    assert sorted(report["entries"]) == sorted(e.name for e in load_all(CATALOG)[0])
    # apt installs the exact versions of apt.lock: not even hadolint's DL3008 advice
    assert report["findings"] == []
    # hadolint really runs: without its lock, an entry's apt step is unpinned (DL3008), and
    # gefreg says so too (GR110, a warning: the next build writes the lock)
    shutil.copytree(CATALOG, tmp_path / "catalog")
    (tmp_path / "catalog" / "netcdf-summary" / "apt.lock").unlink()
    findings = lint(tmp_path / "catalog")["findings"]
    assert {f["rule"] for f in findings} == {"DL3008", "GR110"}
    assert not [f for f in findings if f["level"] == "error"]
