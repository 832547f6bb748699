"""pip.lock: the dependency closure as pip resolves it, what apt provides left out, and lint
finding a lock that no longer matches its record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gefreg.catalog.entries import load_entry
from gefreg.catalog.pip_lock import (
    LOCK_FILE,
    LockedPin,
    Resolved,
    format_lock,
    lock_problems,
    read_pip_lock,
)
from gefreg.catalog.pip_resolve import closure, distributions
from gefreg.errors import BadInput, InvalidRecord
from gefreg.image.fingerprint import record_digest
from gefreg.model import Entry
from tests.helpers import demo_entry, make_catalog

H = "a" * 64


def item(name: str, version: str, requires: list[str], requested: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "version": version, "requires_dist": requires},
        "download_info": {"archive_info": {"hashes": {"sha256": H}}},
        "requested": requested,
    }


# The shape of pip's installation report (`pip install --dry-run --report`), version 1.
REPORT = {
    "version": "1",
    "install": [
        item(
            "rich",
            "13.7.1",
            [
                'ipywidgets (>=7.5.1,<9) ; extra == "jupyter"',
                "markdown-it-py (>=2.2.0)",
                "pygments (>=2.13.0,<3.0.0)",
                'typing-extensions (>=4.0.0,<5.0) ; python_version < "3.9"',
            ],
            requested=True,
        ),
        item("markdown-it-py", "3.0.0", ["mdurl~=0.1", 'psutil ; extra == "benchmarking"']),
        item("mdurl", "0.1.2", []),
        item("Pygments", "2.17.2", ["colorama>=0.4.6; extra == 'windows-terminal'"]),
        item("obspy", "1.4.2", ["numpy>=1.20", "matplotlib>=3.3", "requests"], requested=True),
        item("numpy", "1.26.4", []),
        item("matplotlib", "3.8.0", ["numpy>=1.21", "pillow>=8", "kiwisolver[extra]"]),
        item("pillow", "10.0.0", []),
        item(
            "kiwisolver", "1.4.5", ['cppy ; extra == "extra"', 'winreg ; sys_platform == "win32"']
        ),
        item("cppy", "1.2.1", []),
        item("requests", "2.31.0", ["urllib3", "idna"]),
        item("urllib3", "2.0.0", []),
        item("idna", "3.4", []),
    ],
}


def names(dists: list[Any]) -> list[str]:
    return [d.name for d in dists]


def test_the_closure_follows_requires_dist_with_markers_and_extras() -> None:
    found = distributions(REPORT)
    assert names(closure(found, ())) == [
        "cppy",  # kiwisolver[extra] asks for it
        "idna",
        "kiwisolver",
        "markdown-it-py",  # what `pip: [rich==13.7.1]` lacked: ModuleNotFoundError at test time
        "matplotlib",
        "mdurl",
        "numpy",
        "obspy",
        "pillow",
        "pygments",
        "requests",
        "rich",
        "urllib3",
    ]


def test_what_apt_provides_is_left_out_with_what_only_it_needs() -> None:
    found = distributions(REPORT)
    kept = names(closure(found, ("matplotlib", "requests")))
    assert kept == ["markdown-it-py", "mdurl", "numpy", "obspy", "pygments", "rich"]
    # numpy stays: obspy needs it directly, not only through matplotlib
    with pytest.raises(BadInput, match=r"names scipy, which packages\.pip does not need"):
        closure(found, ("scipy",))


def python_entry(tmp_path: Path, **packages: Any) -> Entry:
    catalog = make_catalog(
        tmp_path / "catalog",
        demo_entry(name="tool", template="python", base="python-bookworm", packages=packages),
        bases=("python-bookworm",),
    )
    return load_entry(catalog / "tool", {"python-bookworm"})


def write_lock(entry: Entry, pins: list[LockedPin], resolved: Resolved | None) -> None:
    (entry.directory / LOCK_FILE).write_text(format_lock(pins, resolved))


def test_a_lock_round_trips_and_matches_its_record(tmp_path: Path) -> None:
    entry = python_entry(tmp_path, pip=["rich==13.7.1"])
    pins = [LockedPin("rich", "13.7.1", (H,)), LockedPin("mdurl", "0.1.2", (H,))]
    write_lock(entry, pins, Resolved.of(entry))
    lock = read_pip_lock(entry.directory / LOCK_FILE)
    assert sorted(lock.pins, key=lambda p: p.name) == sorted(pins, key=lambda p: p.name)
    assert lock.resolved == Resolved(("rich==13.7.1",))
    assert lock_problems(entry) == []


def test_lint_finds_a_stale_lock(tmp_path: Path) -> None:
    entry = python_entry(tmp_path, pip=["rich==13.7.1"])
    write_lock(entry, [LockedPin("rich", "13.7.1", (H,))], Resolved(("rich==13.7.0",)))
    [problem] = lock_problems(entry)
    assert "stale: packages.pip changed (+rich==13.7.1, -rich==13.7.0)" in problem
    write_lock(entry, [LockedPin("rich", "13.7.1", (H,))], Resolved(("rich==13.7.1",), ("x",)))
    assert "packages.apt-provides changed" in lock_problems(entry)[0]
    write_lock(entry, [LockedPin("rich", "13.7.1", (H,))], Resolved(("rich==13.7.1",), (), "3.12"))
    assert "resolved for Python 3.12; the image has 3.11" in lock_problems(entry)[0]
    write_lock(entry, [LockedPin("mdurl", "0.1.2", (H,))], Resolved(("rich==13.7.1",)))
    assert "rich==13.7.1 is not in pip.lock" in lock_problems(entry)[0]
    write_lock(entry, [LockedPin("rich", "13.7.1", (H,))], None)  # pins alone: older gefreg
    assert "without their dependencies" in lock_problems(entry)[0]
    (entry.directory / LOCK_FILE).unlink()
    assert "needs pip.lock" in lock_problems(entry)[0]


def test_a_lock_without_pins_is_left_over(tmp_path: Path) -> None:
    entry = python_entry(tmp_path)
    assert lock_problems(entry) == []
    write_lock(entry, [LockedPin("rich", "13.7.1", (H,))], Resolved(("rich==13.7.1",)))
    assert "left over" in lock_problems(entry)[0]


def test_apt_provides_is_checked_and_never_changes_the_fingerprint(tmp_path: Path) -> None:
    plain = python_entry(tmp_path / "a", pip=["obspy==1.4.2"])
    provided = python_entry(tmp_path / "b", pip=["obspy==1.4.2"], **{"apt-provides": ["numpy"]})
    assert provided.spec.apt_provides == ("numpy",)
    assert record_digest(plain.spec) == record_digest(provided.spec)  # pip.lock carries it
    with pytest.raises(InvalidRecord, match=r"ObsPy is pinned in packages\.pip"):
        python_entry(tmp_path / "c", pip=["obspy==1.4.2"], **{"apt-provides": ["ObsPy"]})
    with pytest.raises(InvalidRecord, match=r"only means something with packages\.pip"):
        python_entry(tmp_path / "d", **{"apt-provides": ["numpy"]})
