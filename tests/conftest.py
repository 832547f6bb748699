"""Test configuration. Tests marked `docker` need a running engine, tests marked `registry`
(or using a registry fixture) Debian's docker-registry binary: with CI=true a missing one fails
them; elsewhere they are skipped with the reason."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from tests.helpers import demo_entry, make_catalog

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.registry_fixtures", "tests.serve_fixtures"]


@functools.cache
def _engine_problem() -> str | None:
    from gefreg.engine import Engine
    from gefreg.errors import EnvironmentFailure

    try:
        Engine.connect(timeout=10)
    except EnvironmentFailure as exc:
        return exc.message
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is not None:
        problem = _engine_problem()
        if problem is not None:
            _unavailable(f"no Docker engine answers ({problem}); run `make setup`")


def _unavailable(reason: str) -> None:
    """Fail under CI=true, where everything must be there; skip with the reason elsewhere.
    (tests/registry_fixtures.py does the same for the `registry` marker.)"""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """A catalog with one valid debian entry, `demo-service`."""
    return make_catalog(tmp_path / "catalog", demo_entry())


@pytest.fixture(scope="session")
def _trivy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trivy-cache")


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, _trivy_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep gefreg's state and caches inside the test's temporary folder, and Trivy's cache in
    one of this session's own: Trivy locks its cache, and other sessions on the machine (or
    the user's own scans) would otherwise make scans here time out waiting for it."""
    monkeypatch.setenv("GEFREG_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("TRIVY_CACHE_DIR", str(_trivy_cache))
    monkeypatch.delenv("GEFREG_CATALOG", raising=False)
    monkeypatch.delenv("GEFREG_REGISTRY", raising=False)
