"""Progress that tells the truth: steps with their time, bytes with their rate, and lines that
keep coming in a CI log while a long step runs."""

from __future__ import annotations

import time

import pytest

from gefreg.cli import ui


def test_a_log_gets_each_step_its_periodic_lines_and_its_time(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ui, "SHOW_STEP_TIME", 0.3)
    with ui.Progress(every=0.2) as progress:
        assert not progress.live  # stderr is captured: not a terminal
        progress.status("uploading demo 1.0.0")
        report = progress.transfer()
        report(0, 20_000_000)
        time.sleep(0.3)
        report(10_000_000, 20_000_000)
        time.sleep(0.5)
        progress.status("tagging demo:1.0.0")
        progress.done("demo 1.0.0: published")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "uploading demo 1.0.0"
    periodic = [line for line in lines if line.startswith("  … uploading demo 1.0.0 — ")]
    assert periodic, lines
    last = periodic[-1]
    assert "10.0 of 20.0 MB, " in last and last.endswith(" s)")
    rate = float(last.split("MB, ")[1].split(" MB/s")[0])
    assert 10 < rate < 40  # 10 MB in about 0.3 s
    took = [line for line in lines if line.endswith(": uploading demo 1.0.0")]
    assert len(took) == 1 and float(took[0].split()[0]) >= 0.8
    assert lines[-2:] == ["tagging demo:1.0.0", "demo 1.0.0: published"]  # short: no time


def test_notes_are_lines_within_a_step(capsys: pytest.CaptureFixture[str]) -> None:
    with ui.Progress(every=60) as progress:
        progress.status("base python-bookworm: mmdebstrap …")
        progress.noter("python-bookworm")("I: extracting archives...")
    assert capsys.readouterr().err.splitlines() == [
        "base python-bookworm: mmdebstrap …",
        "python-bookworm: I: extracting archives...",
    ]


def test_disabled_progress_says_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with ui.Progress(enabled=False, every=0.01) as progress:
        progress.status("x")
        progress.transfer()(1, 2)
        time.sleep(0.05)
        progress.done("y")
    assert capsys.readouterr().err == ""


def test_a_stalled_transfer_shows_its_rate_falling(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ui, "RATE_WINDOW", 0.4)
    with ui.Progress(every=0.2) as progress:
        progress.status("uploading")
        report = progress.transfer()
        report(0, None)
        time.sleep(0.2)
        report(5_000_000, None)
        time.sleep(1.2)  # nothing more arrives
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  … ")]
    rates = [float(line.split("MB, ")[1].split(" MB/s")[0]) for line in lines if "MB/s" in line]
    assert rates[0] > 5 and rates[-1] == 0.0, lines  # not the last rate, frozen
    assert all("5.0 MB" in line for line in lines[1:])
