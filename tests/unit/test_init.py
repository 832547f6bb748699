"""gefreg init: a catalog repository of one's own, from an installed gefreg."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from gefreg import __version__
from gefreg.catalog.entries import load_all, load_lock
from gefreg.catalog.new_catalog import CURATED_BASES, init_catalog
from gefreg.cli import cli
from gefreg.errors import BadInput
from gefreg.scan.policy import Policy
from gefreg.scan.policy_file import load_policy

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_init_writes_a_catalog_that_gefreg_reads(tmp_path: Path) -> None:
    result = invoke("init", str(tmp_path / "ours"))
    assert result.exit_code == 0
    root = tmp_path / "ours"
    written = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert written == [
        ".github/workflows/catalog-publish.yml",
        ".github/workflows/catalog-review.yml",
        ".gitignore",
        "README.md",
        "catalog/bases/debian-bookworm/base.yaml",
        "catalog/bases/lock.json",
        "catalog/bases/python-bookworm/base.yaml",
        "catalog/policy.yaml",
        "catalog/trust.yaml",
    ]
    entries, bases = load_all(root / "catalog")
    assert entries == [] and sorted(b.name for b in bases) == sorted(CURATED_BASES)
    # The curated bases are the shipped ones, byte for byte; the lock starts empty.
    for name in CURATED_BASES:
        path = f"catalog/bases/{name}/base.yaml"
        assert (root / path).read_bytes() == (ROOT / path).read_bytes()
    assert load_lock(root / "catalog").digests == ()
    assert ".gefreg/" in (root / ".gitignore").read_text().splitlines()
    assert "next:" in result.stderr and "gefreg base build --all" in result.stderr


def test_the_policy_has_the_production_defaults(tmp_path: Path) -> None:
    root = init_catalog(tmp_path).catalog
    policy = load_policy([root / "policy.yaml"])
    # gefreg's own defaults, spelled out: the same rules as no policy file at all.
    assert policy.rules_json() == Policy().rules_json()
    assert policy.rules_json()["vulnerability-db-unavailable"] == "block"


def _run_lines(workflow: Path) -> list[str]:
    doc = YAML(typ="safe").load(workflow.read_text())
    steps = [step for job in doc["jobs"].values() for step in job["steps"]]
    return [line for step in steps for line in str(step.get("run", "")).splitlines()]


def test_workflows_install_this_gefreg_pinned_and_call_real_commands(tmp_path: Path) -> None:
    init_catalog(tmp_path)
    known = set(cli.commands)
    for workflow in sorted((tmp_path / ".github" / "workflows").glob("*.yml")):
        doc = YAML(typ="safe").load(workflow.read_text())
        assert doc["env"]["GEFREG_VERSION"] == __version__
        lines = _run_lines(workflow)
        assert 'python -m pip install "gefreg==${GEFREG_VERSION}"' in " ".join(lines)
        assert not any("make setup" in line or ".venv/" in line for line in lines)
        used = {m.group(1) for line in lines for m in re.finditer(r"\bgefreg (\w[\w-]*)", line)}
        assert used and used <= known, used - known


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "mine.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["init", str(tmp_path)])
    assert result.exit_code == 2 and "already holds catalog/" in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["catalog", "mine.txt"]
    with pytest.raises(BadInput, match="is a file"):
        init_catalog(tmp_path / "catalog" / "mine.txt")


def test_init_keeps_an_existing_readme_and_gitignore(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# Ours\n")
    (tmp_path / ".gitignore").write_text("*.tmp\n")
    made = init_catalog(tmp_path)
    assert (tmp_path / "README.md").read_text() == "# Ours\n"
    assert (tmp_path / ".gitignore").read_text() == "*.tmp\n"
    assert {p.name for p in made.kept} == {"README.md", ".gitignore"}
    assert json.loads((tmp_path / "catalog/bases/lock.json").read_text())["bases"] == {}


def test_an_empty_catalog_is_an_error_not_a_pass(tmp_path: Path) -> None:
    init_catalog(tmp_path)
    result = CliRunner().invoke(cli, ["lint", "--catalog", str(tmp_path / "catalog")])
    assert result.exit_code == 2
    assert f"no service records under {tmp_path / 'catalog'}" in result.stderr
    # Every command that works on the whole catalog: nothing to do is no success.
    for command in (["verify"], ["publish", "--pending"], ["list"], ["build", "--all"]):
        again = CliRunner().invoke(cli, [*command, "--catalog", str(tmp_path / "catalog")])
        assert again.exit_code == 2 and "no service records under" in again.stderr, command


def test_a_catalog_without_bases_builds_no_base_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "catalog" / "bases").mkdir(parents=True)
    for command in (["base", "build", "--all"], ["base", "build"]):
        result = CliRunner().invoke(cli, [*command, "--catalog", str(tmp_path / "catalog")])
        assert result.exit_code == 2, (command, result.output)
        assert f"no base records under {tmp_path / 'catalog' / 'bases'}" in result.stderr


def test_a_new_catalog_requires_signatures(tmp_path: Path) -> None:
    from gefreg.release import trust_policy

    policy = trust_policy.load(init_catalog(tmp_path).catalog)
    assert policy.exists and policy.require_signatures and policy.keys == ()


def test_init_never_writes_through_or_over_a_symbolic_link(tmp_path: Path) -> None:
    """A dangling `catalog` link was a traceback half-way through; a `.github/workflows` link
    had the workflows written into the folder it points at; a dangling README link was
    replaced by gefreg's README. Each is refused (exit 2) and nothing is written."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cases = {
        "dangling": ("catalog", tmp_path / "nowhere", "catalog/"),
        "through": (".github/workflows", elsewhere, ".github/workflows (a symbolic link)"),
        "into": ("catalog", elsewhere, "catalog/"),
    }
    for name, (link, target, said) in cases.items():
        folder = tmp_path / name
        (folder / link).parent.mkdir(parents=True, exist_ok=True)
        (folder / link).symlink_to(target)
        before = sorted(p.name for p in folder.rglob("*"))
        result = CliRunner().invoke(cli, ["init", str(folder)])
        assert result.exit_code == 2, (name, result.output)
        assert f"already holds {said}" in result.stderr, (name, result.stderr)
        assert sorted(p.name for p in folder.rglob("*")) == before
    assert list(elsewhere.iterdir()) == []
    readme = tmp_path / "readme"
    readme.mkdir()
    (readme / "README.md").symlink_to(tmp_path / "our-readme.md")
    made = init_catalog(readme)
    assert (readme / "README.md").is_symlink() and readme / "README.md" in made.kept
    # A symbolic link to the folder itself is where the user wants the catalog: fine.
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert CliRunner().invoke(cli, ["init", str(tmp_path / "link")]).exit_code == 0
    assert (tmp_path / "real" / "catalog" / "policy.yaml").is_file()
