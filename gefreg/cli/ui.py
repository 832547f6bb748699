"""Terminal output for the CLI: errors, JSON, tables. The library never prints; this does."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from gefreg.errors import GefregError
from gefreg.words import count as count  # the one plural rule, for every command


def shown(text: str) -> str:
    """Text from outside (names, ledgers, registries, tools) as it may reach a terminal:
    control characters written as ``\\xNN``, line breaks kept."""
    from gefreg.run.log_tail import visible

    return "\n".join(visible(line) for line in text.split("\n"))


def error(exc: GefregError) -> None:
    click.echo(f"gefreg: error: {shown(exc.message)}", err=True)
    if exc.hint:
        click.echo(f"  hint: {shown(exc.hint)}", err=True)


def usage_error(exc: click.UsageError) -> int:
    """A click usage error in gefreg's form: what is wrong, the usage line, where help is.
    Returns the exit code. A group typed alone (`gefreg`, `gefreg export`) is asked for its
    help, not an error: the help, exit 0, whatever click's version (8.2 made it an error)."""
    if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
        click.echo(exc.ctx.get_help())
        return 0
    message = exc.format_message().strip()
    message, _, suggestion = message.partition("Did you mean")
    message = message.strip().rstrip(".( ")
    message = message[:1].lower() + message[1:] if message[1:2].islower() else message
    click.echo(f"gefreg: error: {shown(message)}", err=True)
    if suggestion:
        click.echo(f"  hint: did you mean{shown(suggestion.rstrip(').'))}", err=True)
    ctx = exc.ctx
    if ctx is not None:
        usage = ctx.get_usage().removeprefix("Usage: ").strip()
        click.echo(f"  usage: {usage}", err=True)
        click.echo(f"  hint: `{ctx.command_path} --help` explains it, with examples", err=True)
    return exc.exit_code


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def is_terminal() -> bool:
    return sys.stdout.isatty()


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _seconds_setting(text: str | None) -> float:
    """$GEFREG_PROGRESS_EVERY: seconds between progress lines in logs."""
    from gefreg.errors import BadInput

    try:
        seconds = float(text) if text else PROGRESS_EVERY
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86400:
        raise BadInput(
            f"GEFREG_PROGRESS_EVERY={text!r} is not a number of seconds",
            "set it to e.g. 10 (seconds between progress lines in logs), or unset it",
        )
    return seconds


def _plain(text: str) -> Any:
    """``text`` for rich as it is: a tool's `[/x]` is not markup (it raised MarkupError)."""
    from rich.text import Text

    return Text(text)


PROGRESS_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal
SHOW_STEP_TIME = 2.0  # steps that took at least this long say so when they end
RATE_WINDOW = 5.0  # seconds over which a transfer rate is measured


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 60 else f"{int(value // 60)} min {value % 60:.0f} s"


def _megabytes(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


class Progress:
    """Shows long work truthfully, on stderr (stdout stays clean for --json).

    A step (:meth:`status`) is what runs now; :meth:`note` adds a line within it and
    :meth:`transfer` reports bytes moved (shown with the rate). On a terminal the live line
    shows the step, its detail and its elapsed time; otherwise (CI logs) each step is printed
    when it starts, a line repeats it every ``every`` seconds with the detail and the time so
    far ($GEFREG_PROGRESS_EVERY, default 10), and a step that took a while says so at its end.
    """

    def __init__(self, enabled: bool = True, every: float | None = None) -> None:
        import os
        import threading

        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        configured = os.environ.get("GEFREG_PROGRESS_EVERY")
        self.every = every if every is not None else _seconds_setting(configured)
        self._status: Any = None
        self._console: Any = None
        self._lock = threading.RLock()
        self._step: str | None = None
        self._detail = ""
        self._started = 0.0
        self._printed = 0.0
        self._samples: list[tuple[float, int]] = []
        self._total: int | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> Progress:
        import threading

        if self.live:
            self._console = console(stderr=True)
            self._status = self._console.status("starting…")
            self._status.__enter__()
        if self.enabled:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self._end_step()
        if self._status is not None:
            self._status.__exit__(*exc)

    def _line(self, text: str) -> None:
        text = shown(text)
        if self._console is not None:
            self._console.print(text, markup=False, highlight=False)
        else:
            click.echo(text, err=True)

    def _end_step(self) -> None:
        with self._lock:
            if self._step is not None and self.enabled:
                took = time.monotonic() - self._started
                if took >= SHOW_STEP_TIME:
                    self._line(f"  {_seconds(took)}: {self._step}")
            self._step = None

    def status(self, text: str) -> None:
        """A new step starts (the previous one ends); shown live, or printed as a line."""
        if not self.enabled:
            return
        self._end_step()
        text = shown(text)  # steps and notes often carry a tool's output
        with self._lock:
            self._step, self._detail, self._samples, self._total = text, "", [], None
            self._started = self._printed = time.monotonic()
            if self._status is not None:
                self._status.update(_plain(text[:150]))
            else:
                click.echo(text, err=True)

    def note(self, text: str) -> None:
        """A line within the current step (a tool's output): live detail, or a printed line."""
        if not self.enabled:
            return
        text = shown(text)
        with self._lock:
            self._detail = text
            if self._status is None:
                click.echo(text, err=True)

    def echo(self, text: str) -> None:
        """A line of output in the middle of a step (above the live line on a terminal)."""
        if self.enabled:
            with self._lock:
                self._line(text)

    def transfer(self) -> Callable[[int, int | None], None]:
        """A callback for bytes moved so far in the current step (and the total, if known):
        shown as 'X of Y MB, R MB/s', the rate over the last few seconds up to the moment it
        is shown (no bytes for a while: the rate falls). Safe to call from worker threads."""

        def report(done: int, total: int | None) -> None:
            now = time.monotonic()
            with self._lock:
                self._samples.append((now, done))
                # keep the last sample older than the window: the rate's starting point
                old = [i for i, (t, _) in enumerate(self._samples) if now - t > RATE_WINDOW]
                if len(old) > 1:
                    del self._samples[: old[-1]]
                self._total = total

        return report

    def _bytes_text(self, now: float) -> str:
        """'X of Y MB, R MB/s' for the bytes reported in this step ('' when none were)."""
        if not self._samples:
            return ""
        done = self._samples[-1][1]
        start_t, start_d = self._samples[0]
        for t, d in self._samples:  # the last sample at or before the window's start
            if now - t >= RATE_WINDOW:
                start_t, start_d = t, d
        rate = (done - start_d) / (now - start_t) if now > start_t else 0.0
        total = self._total
        amount = f"{done / 1e6:.1f} of {_megabytes(total)}" if total else _megabytes(done)
        return f"{amount}, {_megabytes(rate)}/s"

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                if self._step is None:
                    continue
                now = time.monotonic()
                elapsed = _seconds(now - self._started)
                text = self._bytes_text(now) or self._detail
                detail = f" — {text}" if text else ""
                if self._status is not None:
                    self._status.update(_plain(f"{self._step[:120]}{detail[:80]} ({elapsed})"))
                elif now - self._printed >= self.every:
                    self._printed = now
                    click.echo(f"  … {self._step}{detail} ({elapsed})", err=True)

    def watch_pulls(self, engine: Any) -> None:
        """Every image the engine pulls shows as a step with its bytes and rate."""

        def listener(ref: str) -> Callable[[int, int | None], None]:
            self.status(f"pulling {ref}")
            return self.transfer()

        engine.pull_listener = listener

    def reporter(self, prefix: str) -> Callable[[str], None]:
        """A callback showing each line as a new step, prefixed (e.g. an entry name)."""
        return lambda text: self.status(f"{prefix}: {text}")

    def noter(self, prefix: str) -> Callable[[str], None]:
        """A callback showing each line as a note of the current step, prefixed."""
        return lambda text: self.note(f"{prefix}: {text}")

    def done(self, text: str) -> None:
        """A finished piece of work (ends the current step): always printed as a line."""
        if not self.enabled:
            return
        self._end_step()
        with self._lock:
            self._line(text)
