"""gefreg new: scaffolds that are valid records from the first minute."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg.catalog.entries import load_entry
from gefreg.catalog.scaffold import new_entry
from gefreg.cli import cli
from gefreg.errors import BadInput
from tests.helpers import make_catalog


@pytest.mark.parametrize("template", ["debian", "python", "static"])
def test_every_template_scaffolds_a_valid_record(tmp_path: Path, template: str) -> None:
    catalog = make_catalog(tmp_path / "catalog", bases=("debian-bookworm", "python-bookworm"))
    made = new_entry(catalog, f"my-{template}", template, description='Says "hi": really')
    entry = load_entry(made.directory, {"debian-bookworm", "python-bookworm"})
    assert entry.spec.template == template
    assert entry.spec.description == 'Says "hi": really'
    assert [t.name for t in entry.spec.tests] == ["sample"]


def test_scaffold_never_overwrites(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog")
    (catalog / "taken").mkdir()
    (catalog / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="already exists"):
        new_entry(catalog, "taken", "debian")
    assert (catalog / "taken" / "keep.txt").read_text() == "mine"


def test_new_then_lint_through_the_cli(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog")
    runner = CliRunner()
    made = runner.invoke(cli, ["new", "--catalog", str(catalog), "tool"], catch_exceptions=False)
    assert made.exit_code == 0 and "created" in made.stdout
    linted = runner.invoke(
        cli, ["lint", "--catalog", str(catalog), "tool", "--no-hadolint"], catch_exceptions=False
    )
    assert linted.exit_code == 0, linted.stdout
    bad = runner.invoke(cli, ["new", "--catalog", str(catalog), "Bad_Name"])
    assert bad.exit_code == 2
