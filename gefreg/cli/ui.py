"""Terminal output for the CLI: errors, JSON, tables. The library never prints; this does."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from gefreg.errors import GefregError


def error(exc: GefregError) -> None:
    click.echo(f"gefreg: error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"  hint: {exc.hint}", err=True)


def count(number: int, noun: str, plural: str | None = None) -> str:
    """'1 entry', '2 entries', '0 findings'."""
    if number == 1:
        return f"1 {noun}"
    if plural is None:
        plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{number} {plural}"


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def is_terminal() -> bool:
    return sys.stdout.isatty()


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


class Progress:
    """Shows long work: a live status line on a terminal, plain lines otherwise (CI logs).

    Always writes to stderr so stdout stays clean for --json.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self._status: Any = None
        self._console: Any = None

    def __enter__(self) -> Progress:
        if self.live:
            self._console = console(stderr=True)
            self._status = self._console.status("starting…")
            self._status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)

    def status(self, text: str) -> None:
        """The current activity (a step); shown live, or printed as a line."""
        if not self.enabled:
            return
        if self._status is not None:
            self._status.update(text[:150])
        else:
            click.echo(text, err=True)

    def reporter(self, prefix: str) -> Callable[[str], None]:
        """A callback showing each line as the current status, prefixed (e.g. an entry name)."""
        return lambda text: self.status(f"{prefix}: {text}")

    def done(self, text: str) -> None:
        """A finished piece of work: always printed as a line."""
        if not self.enabled:
            return
        if self._console is not None:
            self._console.print(text)
        else:
            click.echo(text, err=True)
