"""The shipped catalog's claim: each entry (static, debian, python) gives the same image ID and
manifest digest on every build without cache, from its committed apt and pip locks.

The debian and python entries install from the Debian archive in every build, so this is the
slowest test of the suite (see the README's CI figures). It runs before the end-to-end test,
whose builds are then cache hits of these."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg import __version__
from gefreg.catalog import source_date
from gefreg.catalog.entries import base_names, load_all, load_entry
from gefreg.cli import cli
from gefreg.image.build_plan import prepare
from gefreg.release import ledger
from tests.helpers import git_repository
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


def test_rebuild_says_which_debian_package_version_the_archive_no_longer_has(
    shipped: ShippedCatalog, tmp_path: Path
) -> None:
    """A release whose commit pins a package version the archive does not serve (as happens
    when Debian replaces it with a security update): the rebuild asks apt for exactly that
    version, and says which one is gone (exit 3) and how to pin the archive. The ledger line
    is written here as publish would have written it while the archive still had it."""
    shipped.base("debian-bookworm")
    catalog = tmp_path / "catalog"
    shutil.copytree(shipped.settings.catalog, catalog)
    (catalog / "netcdf-summary" / ledger.LEDGER_FILE).unlink(missing_ok=True)
    lock_file = catalog / "netcdf-summary" / "apt.lock"
    lock = json.loads(lock_file.read_text())
    lock["packages"]["nco"] = "0.0.0~gone-1"
    lock_file.write_text(json.dumps(lock, indent=2) + "\n")
    commit = git_repository(catalog)
    settings = replace(shipped.settings, catalog=catalog, state_dir=tmp_path / "state")
    entry = load_entry(catalog / "netcdf-summary", base_names(catalog))
    plan = prepare(entry, settings, date=source_date.of_entry(entry))
    release = ledger.Release(
        version=entry.spec.version,
        digest="sha256:" + "0" * 64,
        repository=f"{settings.registry}/netcdf-summary",
        fingerprint=plan.fingerprint.digest,
        base_digest=plan.base.digest,
        image_id="sha256:" + "1" * 64,
        published="2026-01-01T00:00:00Z",
        gefreg_version=__version__,
        catalog_commit=commit,
    )
    ledger.append(catalog / "netcdf-summary", release)
    env = {
        "GEFREG_CATALOG": str(catalog),
        "GEFREG_REGISTRY": settings.registry,
        "GEFREG_STATE": str(settings.state_dir),
    }
    done = CliRunner().invoke(
        cli, ["rebuild", f"netcdf-summary@{entry.spec.version}"], catch_exceptions=False, env=env
    )
    assert done.exit_code == 3, done.stderr + done.stdout
    assert "the Debian archive no longer has nco 0.0.0~gone-1" in done.stderr
    assert "snapshot.debian.org" in done.stderr
