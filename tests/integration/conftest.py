"""Shared, expensive fixtures for integration tests: the real Debian base is built once per
session (mmdebstrap, ~25 s) and pushed to the session's real registry."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from gefreg import bases
from gefreg.catalog import load_base
from gefreg.engine import Engine
from gefreg.settings import Settings

SHIPPED = Path(__file__).resolve().parents[2] / "catalog"


@dataclass(frozen=True)
class BuiltBase:
    settings: Settings
    built: bases.BaseBuild

    @property
    def digest(self) -> str:
        return self.built.digest


def build_shipped_base(name: str, registry: str, root: Path) -> BuiltBase:
    catalog = root / "catalog"
    shutil.copytree(SHIPPED / "bases" / name, catalog / "bases" / name)
    settings = Settings(catalog=catalog, registry=registry, state_dir=root / "state")
    built = bases.build(settings, load_base(catalog / "bases" / name))
    bases.push(settings, built)
    Engine.connect().pull(f"{bases.repository(settings, name)}@{built.digest}")
    return BuiltBase(settings, built)


@pytest.fixture(scope="session")
def debian_base(registry: object, tmp_path_factory: pytest.TempPathFactory) -> BuiltBase:
    """The shipped debian-bookworm base, built for real and available to the engine."""
    from gefreg.engine import engine_answers

    if not engine_answers():
        pytest.skip("no Docker engine")  # the docker marker turns this into a failure in CI
    return build_shipped_base(
        "debian-bookworm",
        registry.address,  # type: ignore[attr-defined]
        tmp_path_factory.mktemp("debian-base"),
    )


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.connect()
