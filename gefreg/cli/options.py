"""Options shared by several commands, bundled into decorators (so that, for example,
`publish` takes every option `scan` takes for the scan it runs)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
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


def policy_option(func: F) -> F:
    """--policy FILE, passed on as ``policy_file``."""
    return click.option(
        "--policy",
        "policy_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        metavar="FILE",
        help="Scan policy instead of CATALOG/policy.yaml (an entry's own policy.yaml still "
        "applies on top).",
    )(func)


TRIVY_OPTIONS = ("db_repositories", "cache_dir", "skip_db_update", "offline_scan", "timeout")


def trivy_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options passed through to Trivy, handed to the command as one ``trivy`` argument
    (a :class:`gefreg.scan.trivy.TrivyOptions`, built only when the command runs)."""

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        from gefreg.scan.trivy_options import TrivyOptions

        given = {name: kwargs.pop(name) for name in TRIVY_OPTIONS}
        return func(*args, trivy=TrivyOptions(**given), **kwargs)

    options = [
        click.option(
            "--db-repository",
            "db_repositories",
            multiple=True,
            metavar="REPO",
            help="Trivy: OCI repository of the vulnerability DB (a mirror, for air-gapped "
            "machines); repeatable.",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(path_type=Path, file_okay=False),
            metavar="DIR",
            help="Trivy: cache directory (holds the vulnerability DB).",
        ),
        click.option(
            "--skip-db-update", is_flag=True, help="Trivy: use the DB in the cache as it is."
        ),
        click.option(
            "--offline-scan", is_flag=True, help="Trivy: make no API requests while scanning."
        ),
        click.option(
            "--timeout", metavar="DURATION", help="Trivy: time limit, e.g. 10m [default: 5m]."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load(catalog: str | None, registry: str | None) -> Any:
    from gefreg.settings import load_settings

    return load_settings(catalog, registry)
