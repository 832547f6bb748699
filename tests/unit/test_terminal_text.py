"""Text from outside never drives the user's terminal: ledgers, registry answers, catalog
folder names and tool output reach it with their control characters written as \\xNN.

The CLI runs with color=True, as on a terminal (click strips some ANSI sequences from a pipe,
never OSC sequences such as `ESC ] 0 ; title BEL`), and the output is checked byte by byte.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gefreg.cli import cli, ui
from gefreg.release import ledger, ledger_checks
from tests.helpers import demo_entry, make_catalog

# ESC [ 2 J clears the screen; ESC ] 0 ; … BEL sets the window title; U+009B is a one-character
# CSI that some terminals obey as well.
HOSTILE = "\x1b[2J\x1b]0;owned\x07\x9b31m"
RAW = ("\x1b", "\x07", "\x9b")


def gefreg(catalog: Path, *args: str) -> Result:
    env = {"GEFREG_STATE": str(catalog.parent / "state"), "GEFREG_REGISTRY": "127.0.0.1:1"}
    return CliRunner().invoke(
        cli, [*args, "--catalog", str(catalog)], env=env, color=True, catch_exceptions=False
    )


def assert_inert(text: str) -> None:
    assert not any(c in text for c in RAW), repr(text)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """demo 1.0.0 published and yanked, with hostile text in every free-form ledger field."""
    catalog = make_catalog(tmp_path / "catalog", demo_entry(name="demo"))
    release = ledger.Release(
        version="1.0.0",
        digest="sha256:" + "1" * 64,
        repository="127.0.0.1:1/demo",
        fingerprint="sha256:" + "2" * 64,
        base_digest=None,
        image_id="sha256:" + "3" * 64,
        published=f"2026-01-01{HOSTILE}",
        scan={"summary": f"scan passed: demo: {HOSTILE}"},
    )
    yank = {"schema": ledger.YANK_SCHEMA, "version": "1.0.0", "reason": "r", "yanked": HOSTILE}
    text = release.to_line() + json.dumps(yank) + "\n"
    (catalog / "demo" / "releases.jsonl").write_text(text)
    return catalog


def test_list_and_show_print_ledger_text_inert(catalog: Path) -> None:
    listed = gefreg(catalog, "list")
    assert listed.exit_code == 0, listed.stderr
    assert_inert(listed.stdout)
    shown = gefreg(catalog, "show", "demo@1.0.0")
    assert shown.exit_code == 0, shown.stderr
    assert "YANKED \\x1b[2J\\x1b]" in shown.stdout  # shown, not obeyed
    assert_inert(shown.stdout + shown.stderr)
    again = gefreg(catalog, "yank", "demo@1.0.0", "--reason", "again")
    assert_inert(again.stdout + again.stderr)


def test_a_yank_reason_is_one_line_of_text(catalog: Path, tmp_path: Path) -> None:
    assert ledger_checks.reason_problem("bad\x9b31m units") is not None
    line = {"schema": ledger.YANK_SCHEMA, "version": "1.0.0", "reason": "x\x9b2J", "yanked": "t"}
    path = catalog / "demo" / "releases.jsonl"
    path.write_text(path.read_text().splitlines()[0] + "\n" + json.dumps(line) + "\n")
    refused = gefreg(catalog, "show", "demo")
    assert refused.exit_code == 2 and f"{path}:2: reason: the reason must be one line" in (
        refused.stderr
    )


def test_names_in_error_messages_are_inert(catalog: Path) -> None:
    """A catalog folder named with escape sequences (a hostile pull request) appears in the
    'entries: …' and 'did you mean' hints; a typed name appears in the message."""
    hostile = catalog / f"dem{HOSTILE}"
    hostile.mkdir()
    (hostile / "service.yaml").write_text("name: x\n")
    for name in ("nothing-like-it", "demx", f"demo{HOSTILE}"):
        refused = gefreg(catalog, "show", name)
        assert refused.exit_code == 2
        assert_inert(refused.stderr)
    usage = gefreg(catalog, f"shwo{HOSTILE}")
    assert usage.exit_code == 2 and "gefreg: error:" in usage.stderr
    assert_inert(usage.stderr)


def test_tool_output_in_progress_is_inert_and_never_markup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a terminal, progress is a rich status line: a tool printing `[/usr]` raised
    rich's MarkupError (gefreg crashed mid-build), and escape sequences reached the screen."""
    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr(
        ui, "console", lambda stderr=False: Console(file=screen, force_terminal=True)
    )
    progress = ui.Progress(every=60)
    progress.live = True  # as when stderr is a terminal
    with progress:
        progress.status(f"demo: Step 3/9 : RUN cp [/usr] {HOSTILE}")
        progress.note(f"demo: [bold]{HOSTILE}[/]")
        time.sleep(0.6)  # the live line shows the note
        progress.echo(f"out | {HOSTILE}")
    text = screen.getvalue()
    assert "[/usr]" in text and "[bold]" in text and "out | " in text
    assert "\\x1b]0;owned" in text and "]0;owned\x07" not in text and "\x9b" not in text


def test_a_bad_progress_interval_is_bad_input(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(name="demo"))
    result = CliRunner().invoke(
        cli,
        ["build", "demo", "--catalog", str(catalog)],
        env={"GEFREG_PROGRESS_EVERY": "soon", "GEFREG_STATE": str(tmp_path / "state")},
    )
    assert result.exit_code == 2, result.output
    assert "GEFREG_PROGRESS_EVERY='soon' is not a number of seconds" in result.stderr
