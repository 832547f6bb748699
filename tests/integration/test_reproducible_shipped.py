"""The shipped catalog's claim: each entry (static, debian, python) gives the same image ID and
manifest digest on every build without cache, from its committed apt and pip locks.

The debian and python entries install from the Debian archive in every build, so this is the
slowest test of the suite (see the README's CI figures). It runs before the end-to-end test,
whose builds are then cache hits of these."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg.catalog.entries import load_all
from gefreg.cli import cli
from tests.integration.conftest import ShippedCatalog

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def build_all(shipped: ShippedCatalog, names: list[str]) -> dict[str, dict[str, object]]:
    settings = shipped.settings
    env = {
        "GEFREG_CATALOG": str(settings.catalog),
        "GEFREG_REGISTRY": settings.registry,
        "GEFREG_STATE": str(settings.state_dir),
    }
    result = CliRunner().invoke(
        cli, ["build", "--no-cache", "--json", *names], catch_exceptions=False, env=env
    )
    assert result.exit_code == 0, result.stderr
    records = json.loads(result.stdout)
    records = records if isinstance(records, list) else [records]
    return {r["entry"]: r for r in records}


def locks(catalog: Path) -> dict[str, bytes]:
    return {str(p.relative_to(catalog)): p.read_bytes() for p in sorted(catalog.glob("*/*.lock"))}


def test_every_shipped_entry_builds_the_same_image_twice_without_cache(
    shipped: ShippedCatalog,
) -> None:
    entries, records = load_all(shipped.settings.catalog)
    for record in records:
        shipped.base(record.name)
    names = sorted(e.name for e in entries)
    committed = locks(shipped.settings.catalog)
    assert {"netcdf-summary/apt.lock", "waveform-metadata/apt.lock"} <= set(committed)

    first = build_all(shipped, names)
    second = build_all(shipped, names)
    for name in names:
        a, b = first[name], second[name]
        assert a["engine_image_id"] != b["engine_image_id"], name  # two real builds
        assert (a["image_id"], a["manifest_digest"]) == (b["image_id"], b["manifest_digest"]), name
    assert {e.spec.template for e in entries if e.name in names} == {"static", "debian", "python"}
    assert locks(shipped.settings.catalog) == committed  # built from the locks, not re-resolved
    print({n: (first[n]["duration_s"], second[n]["duration_s"]) for n in names})
