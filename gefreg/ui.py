"""Terminal output for the CLI: errors, JSON, tables. The library never prints; this does."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from gefreg.errors import GefregError


def error(exc: GefregError) -> None:
    click.echo(f"gefreg: error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"  hint: {exc.hint}", err=True)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def is_terminal() -> bool:
    return sys.stdout.isatty()


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)
