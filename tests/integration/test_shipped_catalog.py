"""The catalog gefreg ships: every record valid, every Dockerfile through the real hadolint."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from gefreg.catalog.entries import load_all
from gefreg.cli import cli
from gefreg.model import TEMPLATES

CATALOG = Path(__file__).resolve().parents[2] / "catalog"


def test_shipped_catalog_has_an_entry_per_template() -> None:
    entries, bases = load_all(CATALOG)
    assert {e.spec.template for e in entries} >= set(TEMPLATES)
    assert {b.name for b in bases} >= {"debian-bookworm", "python-bookworm"}


def test_every_shipped_entry_passes_lint_with_real_hadolint() -> None:
    result = CliRunner().invoke(
        cli, ["lint", "--catalog", str(CATALOG), "--json"], catch_exceptions=False
    )
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report["findings"]
    assert sorted(report["entries"]) == sorted(e.name for e in load_all(CATALOG)[0])
    # hadolint really ran: the apt-based entries carry its (warning-level) DL3008 advice.
    assert any(f["rule"].startswith("DL") for f in report["findings"])
    assert not [f for f in report["findings"] if f["level"] == "error"]
