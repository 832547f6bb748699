"""The dependency closure of a record's pip pins, found by pip's own resolver for the image.

``pip install --dry-run --report`` with ``--python-version``/``--platform``/``--abi`` (and
``--only-binary=:all:``) resolves as if installing into CPython 3.11 on linux x86-64, without
installing anything; its JSON report names every distribution with its wheel's sha256. Names
the record says Debian provides (``packages.apt-provides``) are left out, with everything only
they need: the closure is walked from the requested pins through each distribution's
``Requires-Dist`` (markers evaluated for the image's platform), never into a provided one.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.catalog.pip_lock import PLATFORMS, PYTHON_VERSION, LockedPin, normalize
from gefreg.errors import BadInput, ToolFailed
from gefreg.subprocesses import run_tool

# PEP 508 marker environment of the image: CPython 3.11 on linux x86-64 (python-bookworm).
MARKERS = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.2",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.11.2",
    "python_version": PYTHON_VERSION,
    "sys_platform": "linux",
}


@dataclass(frozen=True)
class Distribution:
    name: str  # normalized
    version: str
    sha256: str | None
    requires: tuple[str, ...]
    requested: bool


def pip_argv(report: Path, target: Path) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--disable-pip-version-check",
        "--report",
        str(report),
        "--target",
        str(target),
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--abi",
        "cp" + PYTHON_VERSION.replace(".", ""),
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]
    for platform in PLATFORMS:
        argv += ["--platform", platform]
    return argv


def resolve_report(pins: tuple[str, ...]) -> dict[str, Any]:
    """pip's installation report for ``pins`` on the image's platform."""
    with tempfile.TemporaryDirectory(prefix="gefreg-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        try:
            run_tool([*pip_argv(report, Path(tmp) / "target"), *pins], timeout=900)
        except ToolFailed as exc:
            raise ToolFailed(
                f"pip could not resolve {' '.join(pins)} for CPython {PYTHON_VERSION} on "
                f"linux x86-64: {exc.message}",
                "every package and dependency needs a binary wheel for that platform; check "
                "the pins, and the network to your package index (PIP_INDEX_URL)",
            ) from None
        data: dict[str, Any] = json.loads(report.read_text())
        return data


def distributions(report: dict[str, Any]) -> dict[str, Distribution]:
    out = {}
    for item in report.get("install", []):
        meta = item.get("metadata") or {}
        info = item.get("download_info") or {}
        hashes = (info.get("archive_info") or {}).get("hashes") or {}
        name = normalize(str(meta["name"]))
        out[name] = Distribution(
            name,
            str(meta["version"]),
            hashes.get("sha256"),
            tuple(str(r) for r in meta.get("requires_dist") or ()),
            bool(item.get("requested")),
        )
    return out


def _needed(requirement: str, extras: frozenset[str]) -> tuple[str, frozenset[str]] | None:
    """(name, extras) a Requires-Dist line asks for on the image, None when its marker says
    it is not needed there."""
    from packaging.requirements import Requirement

    req = Requirement(requirement)
    if req.marker is not None:
        contexts = [{**MARKERS, "extra": e} for e in extras] or [{**MARKERS, "extra": ""}]
        if not any(req.marker.evaluate(c) for c in contexts):
            return None
    return normalize(req.name), frozenset(req.extras)


def closure(found: dict[str, Distribution], provided: tuple[str, ...]) -> list[Distribution]:
    """The requested distributions and what they need, never walking into a provided one."""
    skip = set(provided)
    unknown = sorted(skip - set(found))
    if unknown:
        raise BadInput(
            f"packages.apt-provides names {', '.join(unknown)}, which packages.pip does not "
            "need (pip's resolution does not contain it)",
            "remove it from packages.apt-provides, or check its spelling",
        )
    todo = [(d.name, frozenset[str]()) for d in found.values() if d.requested]
    seen: set[tuple[str, frozenset[str]]] = set()
    keep: dict[str, Distribution] = {}
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen or name in skip or name not in found:
            continue
        seen.add((name, extras))
        dist = found[name]
        keep[name] = dist
        for line in dist.requires:
            wanted = _needed(line, extras)
            if wanted is not None:
                todo.append(wanted)
    return sorted(keep.values(), key=lambda d: d.name)


def locked_closure(pins: tuple[str, ...], provided: tuple[str, ...]) -> list[LockedPin]:
    """Every wheel the image needs for ``pins``, with its sha256 (None when the index gave
    none: the caller downloads and hashes those)."""
    found = distributions(resolve_report(pins))
    return [
        LockedPin(d.name, d.version, (d.sha256,) if d.sha256 else ())
        for d in closure(found, provided)
    ]
