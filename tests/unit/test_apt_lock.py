"""apt.lock: reading it as untrusted input, when it is outdated, and what apt's output says."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gefreg.catalog import apt_lock
from gefreg.catalog.entries import load_entry
from gefreg.errors import BuildFailed, CheckFailed, InvalidRecord
from gefreg.image import apt_resolve
from tests.helpers import FAKE_DIGEST, demo_entry, make_catalog

SIMULATION = """\
NOTE: This is only a simulation!
Inst libexpat1 (2.5.0-1+deb12u2 Debian:12.12/stable [amd64])
Inst libssl3 [3.0.15-1~deb12u1] (3.0.17-1~deb12u3 Debian:12.12/stable [amd64])
Inst nco (5.1.4-1+b2 Debian:12.12/stable [amd64])
Conf nco (5.1.4-1+b2 Debian:12.12/stable [amd64])
"""


def test_simulation_output_gives_every_package_with_its_version() -> None:
    assert apt_resolve.parse_simulation(SIMULATION) == {
        "libexpat1": "2.5.0-1+deb12u2",
        "libssl3": "3.0.17-1~deb12u3",
        "nco": "5.1.4-1+b2",
    }


def entry_with_apt(tmp_path: Path, *packages: str):  # type: ignore[no-untyped-def]
    catalog = make_catalog(tmp_path / "c", demo_entry(packages={"apt": list(packages)}))
    return load_entry(catalog / "demo-service", {"debian-bookworm"})


def test_lock_round_trip_and_staleness(tmp_path: Path) -> None:
    entry = entry_with_apt(tmp_path, "nco")
    assert apt_lock.stale(entry, None, FAKE_DIGEST) == "demo-service has no apt.lock"
    lock = apt_lock.make(("nco",), FAKE_DIGEST, {"nco": "5.1.4-1+b2", "libexpat1": "2.5.0-1"})
    apt_lock.write(entry, lock)
    again = apt_lock.read(entry)
    assert again == lock
    assert again is not None and again.pins == ["libexpat1=2.5.0-1", "nco=5.1.4-1+b2"]
    assert apt_lock.stale(entry, again, FAKE_DIGEST) is None
    assert "on another base" in str(apt_lock.stale(entry, again, "sha256:" + "cd" * 32))
    other = dataclasses.replace(entry, spec=dataclasses.replace(entry.spec, apt=("nco", "jq")))
    assert "other packages" in str(apt_lock.stale(other, again, FAKE_DIGEST))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"version": 2}, "version"),
        ({"version": 1, "requested": "nco", "packages": {}}, "requested"),
        ({"version": 1, "requested": [], "packages": {"Bad Name": "1"}}, "packages.Bad Name"),
        ({"version": 1, "requested": [], "packages": {"nco": "1; rm -rf /"}}, "packages.nco"),
        ({"version": 1, "requested": [], "packages": {"nco": 1}}, "packages.nco"),
    ],
)
def test_a_hostile_lock_is_refused_naming_the_field(
    tmp_path: Path, data: dict[str, object], field: str
) -> None:
    path = tmp_path / "apt.lock"
    with pytest.raises(InvalidRecord) as caught:
        apt_lock.parse(json.dumps(data), path)
    (problem,) = caught.value.problems
    assert problem.path == path and problem.field == field
    assert "gefreg lock" in str(problem.hint)


STATUS_BASE = """\
Package: libc6
Status: install ok installed
Version: 2.36-9+deb12u9

Package: libssl3
Status: install ok installed
Version: 3.0.15-1~deb12u1
"""
STATUS_AFTER = (
    STATUS_BASE.replace("3.0.15-1~deb12u1", "3.0.17-1~deb12u3")
    + """
Package: nco
Status: install ok installed
Version: 5.1.4-1+b2
Description: a tool
 with a continuation line: Version: 9
"""
)


def test_installed_packages_are_checked_against_the_lock() -> None:
    installed = apt_resolve.installed_by(STATUS_BASE, STATUS_AFTER)
    assert installed == {"libssl3": "3.0.17-1~deb12u3", "nco": "5.1.4-1+b2"}
    lock = apt_lock.make(("nco",), None, installed)
    apt_resolve.check_installed(lock, installed)
    wrong = apt_lock.make(("nco",), None, {"nco": "5.1.4-1"})
    with pytest.raises(CheckFailed) as caught:
        apt_resolve.check_installed(wrong, installed)
    assert "nco 5.1.4-1+b2 (locked 5.1.4-1)" in caught.value.message
    assert "libssl3 3.0.17-1~deb12u3 (not locked)" in caught.value.message


def test_a_version_gone_from_the_archive_is_found_in_the_build_output() -> None:
    error = BuildFailed(
        "The command returned a non-zero code: 100",
        "step 3/9: RUN apt-get",
        ["Reading package lists...", "E: Version '5.1.4-1' for 'nco' was not found"],
    )
    assert apt_resolve.gone_versions(error) == [("nco", "5.1.4-1")]


def test_a_snapshot_mirror_is_accepted_by_apt_in_the_base(tmp_path: Path) -> None:
    """Pinning the archive: a base on snapshot.debian.org tells apt (in mmdebstrap and, through
    the configuration mmdebstrap leaves in the image, in every service build) to accept the
    snapshot's expired Release file. The plain mirror gets no such option."""
    from gefreg.catalog.entries import load_base
    from gefreg.image.bases import mmdebstrap_command

    catalog = make_catalog(tmp_path / "c", {})
    base = load_base(catalog / "bases" / "debian-bookworm")
    option = '--aptopt=Acquire::Check-Valid-Until "false"'
    snapshot = "http://snapshot.debian.org/archive/debian/20250101T000000Z"
    pinned = dataclasses.replace(base, spec=dataclasses.replace(base.spec, mirror=snapshot))
    assert option in mmdebstrap_command(pinned, tmp_path / "out.tar")
    assert mmdebstrap_command(pinned, tmp_path / "out.tar")[-1] == snapshot
    assert option not in mmdebstrap_command(base, tmp_path / "out.tar")
