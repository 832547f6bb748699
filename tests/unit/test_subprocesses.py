"""StartedTool: a program started before its input exists (the SBOM converter)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gefreg.errors import ToolFailed, ToolMissing
from gefreg.subprocesses import StartedTool


def test_input_given_later_reaches_the_program(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with StartedTool(["sh", "-c", f"cat > {out}"]) as tool:
        time.sleep(0.05)  # the program is up and waiting on its stdin
        tool.finish(b"the report\n", timeout=10)
    assert out.read_bytes() == b"the report\n"


def test_a_failure_raises_with_the_error_output() -> None:
    with (
        pytest.raises(ToolFailed) as caught,
        StartedTool(["sh", "-c", "cat; echo bad >&2; exit 4"]) as tool,
    ):
        tool.finish(b"x")
    assert "exit code 4" in str(caught.value) and "bad" in str(caught.value)


def test_left_unfinished_the_program_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(RuntimeError), StartedTool(["sh", "-c", f"cat >/dev/null; touch {marker}"]):
        raise RuntimeError("the scan failed")
    time.sleep(0.1)
    assert not marker.exists()  # killed, not handed an EOF to carry on with


def test_a_missing_program_is_toolmissing() -> None:
    with pytest.raises(ToolMissing):
        StartedTool(["/nonexistent/trivy", "convert"])


def test_niceness_lowers_the_priority() -> None:
    with StartedTool(["sh", "-c", "cat >/dev/null"], niceness=7) as tool:
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, tool.pid) == min(19, mine + 7)
        tool.finish(b"")
