"""The layering in pyproject.toml ([tool.importlinter]) holds: cli on top, the stages in the
order they depend on each other, the core at the bottom, the docker SDK only in engine."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    linter = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_no_cache_or_state_is_committed() -> None:
    """Trivy's caches and gefreg's working state are never part of the repository (a Trivy
    analysis cache, cc/fanal/fanal.db, once was); .gitignore keeps them out."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    parts = {part for path in listed for part in Path(path).parts}
    names = {Path(path).name for path in listed}
    assert not parts & {"fanal", "java-db", ".gefreg", "__pycache__"}
    assert not names & {"fanal.db", "trivy.db"}
    ignored = subprocess.run(
        ["git", "check-ignore", "cache/fanal/fanal.db", "cache/db/trivy.db", ".gefreg/x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert len(ignored) == 3


def test_no_module_is_over_400_lines() -> None:
    """One module per concept, each readable in a sitting: split a module that outgrows this."""
    long = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / "gefreg").rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}


def test_unit_tests_import_nothing_from_integration_tests() -> None:
    """Unit tests run without the engine: shared helpers live in tests/ (fakes.py, helpers.py),
    never in an integration test module, whose import would pull in its fixtures and needs."""
    offenders = []
    for path in sorted((ROOT / "tests" / "unit").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("tests.integration")]
    assert offenders == []
