"""Why a service failed, without opening files: `run` and `test` show the last lines of its
stderr and where the whole log is; `run --follow` shows its output while it runs. Real engine,
busybox services that build in a second."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg.cli import cli
from tests.helpers import busybox_entry, make_catalog, remove_own_images


@pytest.fixture(autouse=True)
def _remove_images(tmp_path: Path) -> Iterator[None]:
    """The images this test built (its catalog's own tag namespace), and nothing else."""
    yield
    remove_own_images([tmp_path / "catalog"])


pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
FAILING = """\
echo "reading the input" >&2
printf 'bad \\033[2Jthing\\n' >&2
echo "Traceback: the unit is not known" >&2
exit 3
"""
SLOW = """\
echo "one"
echo "warming up" >&2
sleep 4
echo "two"
"""


def catalog(tmp_path: Path, script: str, **fields: object) -> Path:
    name = "failing"
    found = make_catalog(tmp_path / "catalog", busybox_entry(name, script, **fields))
    os.chmod(found / name / "busybox", 0o755)
    return found


def gefreg(catalog: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--catalog", str(catalog)], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_a_failed_run_shows_the_end_of_its_stderr(tmp_path: Path) -> None:
    found = catalog(tmp_path, FAILING)
    assert gefreg(found, "build", "failing")[0] == 0
    (tmp_path / "in").mkdir()
    code, out, err = gefreg(
        found, "run", "failing", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")
    )
    assert code == 1
    record = Path(out.strip())
    stderr = record.with_name(json.loads(record.read_text())["logs"]["stderr"]["path"])
    assert (
        "  last lines of its stderr:\n"
        "    | reading the input\n"
        "    | bad \\x1b[2Jthing\n"  # an escape sequence is shown, never obeyed
        "    | Traceback: the unit is not known\n"
    ) in err
    assert f"hint: its whole stderr: {stderr}" in err and "\x1b" not in err


def test_a_failed_golden_test_shows_the_end_of_its_stderr(tmp_path: Path) -> None:
    found = catalog(
        tmp_path,
        FAILING,
        tests=[
            {"name": "t", "inputs": {"data": "."}, "expect": {"result/x": "sha256:" + "0" * 64}}
        ],
    )
    assert gefreg(found, "build", "failing")[0] == 0
    code, out, _ = gefreg(found, "test", "failing")
    assert code == 1
    assert "FAIL t — run failed" in out
    assert "    | Traceback: the unit is not known\n" in out and "  whole stderr: " in out


def test_follow_streams_the_output_while_the_service_runs(tmp_path: Path) -> None:
    found = catalog(tmp_path, SLOW)
    assert gefreg(found, "build", "failing")[0] == 0
    (tmp_path / "in").mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gefreg",
            "run",
            "failing",
            "--follow",
            "--catalog",
            str(found),
            "-i",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stderr is not None
    seen: list[tuple[float, str]] = []
    start = time.monotonic()
    for line in proc.stderr:
        seen.append((time.monotonic() - start, line.rstrip("\n")))
    assert proc.wait(timeout=60) == 0
    lines = [text for _, text in seen]
    assert "out | one" in lines and "err | warming up" in lines and "out | two" in lines
    when = {text: t for t, text in seen}
    assert when["out | two"] - when["out | one"] > 3  # shown as written, not at the end
