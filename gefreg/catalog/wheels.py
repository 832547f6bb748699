"""Wheels for python-template entries, fetched on the host (builds have no usable HTTPS).

Wheels are kept in a content-addressed cache (``<cache>/wheels/<sha256>/<file>``), so a wheel
is downloaded once per machine and a build with a warm cache needs no network at all.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gefreg.catalog.pip_lock import (
    LOCK_FILE,
    PLATFORMS,
    PYTHON_VERSION,
    LockedPin,
    Resolved,
    format_lock,
    normalize,
    read_lock,
)
from gefreg.errors import BadInput, ToolFailed
from gefreg.fsutil import atomic_write
from gefreg.hashing import sha256_file
from gefreg.model import Entry
from gefreg.subprocesses import run_tool


def cache_dir() -> Path:
    """``$GEFREG_CACHE`` or the user's cache folder (~/.cache/gefreg)."""
    env = os.environ.get("GEFREG_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("gefreg"))


def _pip_download(args: list[str], dest: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
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
    try:
        run_tool([*argv, "--dest", str(dest), *args], timeout=900)
    except ToolFailed as exc:
        raise ToolFailed(
            f"could not fetch wheels with pip: {exc.message}",
            "check the network to your package index (PIP_INDEX_URL) or pre-fill "
            "the wheel cache with `gefreg lock` on a connected machine",
        ) from None


def _store(wheel: Path, digest: str) -> Path:
    target = cache_dir() / "wheels" / digest.removeprefix("sha256:") / wheel.name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.copyfile(wheel, tmp)
        os.replace(tmp, target)
    return target


def cached_wheel(hashes: tuple[str, ...]) -> Path | None:
    for hexdigest in hashes:
        folder = cache_dir() / "wheels" / hexdigest
        if folder.is_dir():
            for wheel in folder.glob("*.whl"):
                return wheel
    return None


@dataclass(frozen=True)
class Locked:
    path: Path
    pins: tuple[LockedPin, ...]
    changed: bool


def lock(entry: Entry) -> Locked:
    """Resolve the dependency closure of the entry's pins for the image platform and write
    its pip.lock (unchanged bytes when nothing moved)."""
    from gefreg.catalog.pip_resolve import locked_closure

    if not entry.spec.pip:
        raise BadInput(f"{entry.name} has no packages.pip to lock")
    resolved = Resolved.of(entry)
    pins = locked_closure(resolved.requested, resolved.provided)
    unhashed = [p for p in pins if not p.hashes]
    if unhashed:  # the index gave no hash: download those wheels and hash them here
        hashed = {normalize(p.name): p for p in _download_and_hash(unhashed)}
        pins = [hashed.get(normalize(p.name), p) for p in pins]
    path = entry.directory / LOCK_FILE
    text = format_lock(pins, resolved)
    old = path.read_text() if path.is_file() else None
    if old != text:
        atomic_write(path, text)
    return Locked(path, tuple(pins), old != text)


def _download_and_hash(pins: list[LockedPin]) -> list[LockedPin]:
    with tempfile.TemporaryDirectory(prefix="gefreg-lock-") as tmp:
        _pip_download([p.requirement for p in pins], Path(tmp))
        out = []
        for wheel in Path(tmp).glob("*.whl"):
            name, version = wheel.name.split("-")[:2]
            digest = sha256_file(wheel)
            _store(wheel, digest)
            out.append(LockedPin(name, version, (digest.removeprefix("sha256:"),)))
    missing = {normalize(p.name) for p in pins} - {normalize(p.name) for p in out}
    if missing:
        raise ToolFailed(
            f"pip did not download a wheel for {', '.join(sorted(missing))}",
            "only binary wheels for CPython 3.11 on linux x86-64 are used",
        )
    return out


def fetch(entry: Entry, dest: Path) -> list[Path]:
    """Put the locked wheels and a hashed requirements.txt into ``dest`` (the build context).

    Wheels already in the cache are used as they are; the rest are downloaded by pip with
    ``--require-hashes``, so a tampered or substituted wheel fails the fetch.
    """
    lock_path = entry.directory / LOCK_FILE
    if not lock_path.is_file():
        raise BadInput(
            f"{entry.name}: packages.pip needs {LOCK_FILE}", f"run `gefreg lock {entry.name}`"
        )
    pins = read_lock(lock_path)
    missing = [p for p in pins if cached_wheel(p.hashes) is None]
    if missing:
        with tempfile.TemporaryDirectory(prefix="gefreg-wheels-") as tmp:
            req = Path(tmp) / "requirements.txt"
            req.write_text(format_lock(missing))
            downloads = Path(tmp) / "dl"
            _pip_download(["--require-hashes", "-r", str(req)], downloads)
            for downloaded in downloads.glob("*.whl"):
                _store(downloaded, sha256_file(downloaded))
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for pin in pins:
        wheel = cached_wheel(pin.hashes)
        if wheel is None:
            raise ToolFailed(
                f"no wheel matching the locked hash of {pin.requirement}",
                f"the index serves a different file: re-lock with "
                f"`gefreg lock {entry.name}` and review the change",
            )
        target = dest / wheel.name
        try:
            os.link(wheel, target)
        except OSError:
            shutil.copyfile(wheel, target)
        out.append(target)
    (dest / "requirements.txt").write_text(format_lock(pins))
    return out
