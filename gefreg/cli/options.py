"""Options shared by several commands, bundled into decorators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def settings_options(func: F) -> F:
    """--catalog and --registry; commands turn them into Settings with :func:`load`."""

    func = click.option(
        "--registry",
        metavar="HOST[:PORT]",
        help="Registry to use [default: $GEFREG_REGISTRY or 127.0.0.1:5000, the embedded one].",
    )(func)
    func = click.option(
        "--catalog",
        metavar="DIR",
        help="Catalog folder [default: $GEFREG_CATALOG or ./catalog].",
    )(func)
    return func


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(
        func
    )


def load(catalog: str | None, registry: str | None) -> Any:
    from gefreg.settings import load_settings

    return load_settings(catalog, registry)
