"""Shared, expensive fixtures for integration tests: a working copy of the shipped catalog
whose real bases are built once per session (mmdebstrap, ~25 s each) and pushed to the
session's real registry."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from gefreg.catalog.entries import load_base
from gefreg.engine import Engine
from gefreg.image import bases
from gefreg.settings import Settings

SHIPPED = Path(__file__).resolve().parents[2] / "catalog"


@dataclass(frozen=True)
class BuiltBase:
    settings: Settings
    built: bases.BaseBuild

    @property
    def digest(self) -> str:
        return self.built.digest


class ShippedCatalog:
    """The shipped catalog copied for this session; bases are built on first use."""

    def __init__(self, registry: str, root: Path) -> None:
        shutil.copytree(SHIPPED, root / "catalog")
        self.settings = Settings(
            catalog=root / "catalog", registry=registry, state_dir=root / "state"
        )
        self._bases: dict[str, BuiltBase] = {}

    def base(self, name: str) -> BuiltBase:
        if name not in self._bases:
            record = load_base(self.settings.catalog / "bases" / name)
            built = bases.build(self.settings, record)
            bases.push(self.settings, built)
            Engine.connect().pull(f"{bases.repository(self.settings, name)}@{built.digest}")
            self._bases[name] = BuiltBase(self.settings, built)
        return self._bases[name]


@pytest.fixture(scope="session")
def shipped(registry: object, tmp_path_factory: pytest.TempPathFactory) -> ShippedCatalog:
    from gefreg.engine import engine_answers

    if not engine_answers():
        pytest.skip("no Docker engine")  # the docker marker turns this into a failure in CI
    address = registry.address  # type: ignore[attr-defined]
    return ShippedCatalog(address, tmp_path_factory.mktemp("shipped"))


@pytest.fixture(scope="session")
def debian_base(shipped: ShippedCatalog) -> BuiltBase:
    """The shipped debian-bookworm base, built for real and available to the engine."""
    return shipped.base("debian-bookworm")


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.connect()
