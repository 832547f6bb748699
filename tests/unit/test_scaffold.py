"""gefreg new: scaffolds that are valid records from the first minute."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg.catalog.entries import load_entry
from gefreg.catalog.scaffold import new_entry, next_steps, placeholders
from gefreg.cli import cli
from gefreg.errors import BadInput, CheckFailed
from gefreg.release.publish import check_no_placeholders
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


def lint(catalog: Path, *names: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["lint", "--catalog", str(catalog), *names, "--no-hadolint"], catch_exceptions=False
    )
    return result.exit_code, result.stdout


def test_new_then_lint_refuses_the_placeholders_until_edited(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog")
    runner = CliRunner()
    made = runner.invoke(cli, ["new", "--catalog", str(catalog), "tool"], catch_exceptions=False)
    assert made.exit_code == 0 and "created" in made.stdout
    code, out = lint(catalog, "tool")
    assert code == 1
    record = catalog / "tool" / "service.yaml"
    lines = record.read_text().splitlines()
    flagged = {
        field: n
        for n, line in enumerate(lines, 1)
        for field in ("description", "license", "maintainers")
        if line.startswith(field + ":")
    }
    for field, number in flagged.items():
        column = len(field) + 3  # the value, after "field: " (file:line:column, as promised)
        assert f"{record}:{number}:{column}: error: GR109: {field}: still the placeholder" in out
    # Editing the value but keeping the marker is not enough; deleting the marker is.
    text = record.read_text().replace("license: MIT", "license: Apache-2.0")
    record.write_text(text)
    assert "GR109: license" in lint(catalog, "tool")[1]
    edited = re.sub(r"  # placeholder: .*", "", text)
    edited = edited.replace("Your Name <you@example.org>", "Ada Lovelace <ada@example.org>")
    edited = edited.replace("What tool does, in one sentence.", "Counts the files it is given.")
    record.write_text(edited)
    assert lint(catalog, "tool") == (0, "")
    bad = runner.invoke(cli, ["new", "--catalog", str(catalog), "Bad_Name"])
    assert bad.exit_code == 2


def test_a_deleted_marker_does_not_hide_the_placeholder_maintainer(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog")
    made = new_entry(catalog, "tool", "debian", description="Counts files.", license="MIT")
    record = made.directory / "service.yaml"
    record.write_text(re.sub(r"  # placeholder: .*", "", record.read_text()))
    assert [(p.field, p.message) for p in placeholders(record)] == [
        ("maintainers", "still the placeholder value from `gefreg new`: set your own")
    ]


def test_values_given_as_options_are_no_placeholders(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog")
    runner = CliRunner()
    made = runner.invoke(
        cli,
        [
            "new",
            "--catalog",
            str(catalog),
            "tool",
            "--license",
            "Apache-2.0",
            "--maintainer",
            "Ada Lovelace <ada@example.org>",
            "--description",
            "Counts files.",
        ],
        catch_exceptions=False,
    )
    assert made.exit_code == 0
    assert placeholders(catalog / "tool" / "service.yaml") == []
    assert lint(catalog, "tool")[0] == 0


def test_new_prints_every_next_step(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", bases=("python-bookworm",))
    result = CliRunner().invoke(
        cli, ["new", "--catalog", str(catalog), "tool", "--template", "python"]
    )
    steps = [line.split("#")[0].strip() for line in result.stderr.splitlines()[1:]]
    assert steps == [
        "$EDITOR catalog/tool/service.yaml",
        "gefreg lint tool",
        "gefreg lock tool",
        "gefreg build tool",
        "gefreg test tool --update",
        "gefreg scan tool",
        "git add catalog/tool && git commit",
    ]
    debian = next_steps("tool", "debian")
    assert not any("gefreg lock" in step for step in debian)


def test_the_python_scaffold_shows_where_pip_packages_go(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", bases=("python-bookworm",))
    made = new_entry(catalog, "tool", "python")
    text = (made.directory / "service.yaml").read_text()
    assert "  pip: []" in text and "gefreg lock tool" in text
    # Filling it in is valid YAML and a valid record, at the place the comment shows.
    filled = text.replace("  pip: []", "  pip: [rich==13.7.1]")
    (made.directory / "service.yaml").write_text(filled)
    entry = load_entry(made.directory, {"python-bookworm"})
    assert entry.spec.pip == ("rich==13.7.1",)


def test_publish_refuses_placeholders(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog")
    made = new_entry(catalog, "tool", "debian")
    entry = load_entry(made.directory, {"debian-bookworm"})
    with pytest.raises(CheckFailed, match=r"placeholders from `gefreg new`: description \(line"):
        check_no_placeholders(entry)
