"""The last lines of a service's log: cheap on huge files, harmless on hostile ones."""

from __future__ import annotations

from pathlib import Path

from gefreg.run.log_tail import TAIL_BYTES, tail, visible


def test_the_last_lines_of_a_huge_log(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    with open(log, "w") as fh:
        for i in range(200_000):  # about 2.5 MB: only its end is read
            fh.write(f"line {i}\n")
    assert tail(log, 3) == ["line 199997", "line 199998", "line 199999"]
    assert len(tail(log)) == 20


def test_a_hostile_log_cannot_reach_the_terminal(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.write_bytes(b"ok\n\x1b[2J\x1b]0;owned\x07cleared\rover\n" + b"x" * 1000 + b"\n\xff\xfe\n")
    lines = tail(log)
    assert lines[0] == "ok"
    assert lines[1] == "\\x1b[2J\\x1b]0;owned\\x07cleared\\x0dover"
    assert len(lines[2]) == 300 and lines[2].endswith("…")
    assert lines[3] == "\ufffd\ufffd"
    assert all(visible(line) == line for line in lines)


def test_a_first_line_cut_by_the_window_is_left_out(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.write_text("a" * (TAIL_BYTES + 10) + "\nlast\n")
    assert tail(log) == ["last"]
    assert tail(tmp_path / "missing.log") == []
