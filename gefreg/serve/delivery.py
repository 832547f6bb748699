"""Outputs from a task's run folders to their ``file://`` destinations under the data roots.

Nothing is ever overwritten: files are created exclusively (``O_EXCL``, never through a
symbolic link), and a destination that appeared since the task was admitted fails the task.
Each destination's folder is checked against the data roots again right before writing, so a
link planted since admission cannot redirect the copy. What the container made is data: only
regular files and folders are copied; links and special files are left out and reported.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput, CheckFailed
from gefreg.serve.content_cache import CHUNK
from gefreg.serve.task_plan import OutputPlan
from gefreg.serve.urls import under_root


@dataclass
class Delivered:
    files: list[dict[str, str]] = field(default_factory=list)  # TES tesOutputFileLog
    skipped: list[str] = field(default_factory=list)


def real_parent(dest: Path, roots: tuple[Path, ...]) -> Path:
    """The folder ``dest`` goes into, resolved and made (one level at a time, never through a
    link); CheckFailed when it is not under a data root (any more)."""
    existing, missing = dest.parent, []
    while not existing.exists() and not existing.is_symlink():
        missing.append(existing.name)
        existing = existing.parent
    folder = under_root(existing, roots)
    if folder is None or not folder.is_dir():
        raise CheckFailed(f"output destination {dest} is not under a data root (any more)")
    for name in reversed(missing):
        folder = folder / name
        try:
            os.mkdir(folder, 0o755)
        except FileExistsError:
            if folder.is_symlink() or not folder.is_dir():
                raise CheckFailed(f"output destination {dest}: {folder} is in the way") from None
    return folder


def _copy(source: Path, dest: Path, roots: tuple[Path, ...]) -> int:
    dest = real_parent(dest, roots) / dest.name
    src_fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            dst_fd = os.open(dest, flags, 0o644)
        except FileExistsError:
            raise CheckFailed(
                f"output destination {dest} exists; outputs never overwrite"
            ) from None
        size = 0
        with os.fdopen(dst_fd, "wb") as out:
            while chunk := os.read(src_fd, CHUNK):
                out.write(chunk)
                size += len(chunk)
        return size
    finally:
        os.close(src_fd)


def open_new(folder: Path, rel: str) -> int:
    """A new file ``folder/rel`` opened for writing, made without ever following a link (the
    folders below ``folder`` may hold what a container left: links included). Missing folders
    are made; an existing file, or a link on the way, is CheckFailed."""
    parts = [p for p in rel.split("/") if p]
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name in parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=fd)
            try:
                inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                raise CheckFailed(f"{folder}/{rel}: {name} is not a folder") from None
            os.close(fd)
            fd = inner
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            return os.open(parts[-1], flags, 0o644, dir_fd=fd)
        except FileExistsError:
            raise CheckFailed(f"{folder}/{rel} exists; it is never overwritten") from None
    finally:
        os.close(fd)


def _log(delivered: Delivered, dest: Path, container_path: str, size: int) -> None:
    delivered.files.append({"url": dest.as_uri(), "path": container_path, "size_bytes": str(size)})


def _walk(folder: Path) -> list[tuple[str, Path]]:
    """(relative path, path) of every entry below ``folder``, links not followed."""
    out = []
    for current, dirs, files in os.walk(folder):
        here = Path(current)
        for name in sorted(dirs) + sorted(files):
            path = here / name
            out.append((str(path.relative_to(folder)), path))
    return out


def _tree(src: Path, dest: Path, container: str, roots: tuple[Path, ...], out: Delivered) -> None:
    (real_parent(dest, roots) / dest.name).mkdir(exist_ok=True)
    for rel, path in _walk(src):
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            (real_parent(dest / rel, roots) / path.name).mkdir(exist_ok=True)
        elif stat.S_ISREG(mode):
            _log(out, dest / rel, f"{container}/{rel}", _copy(path, dest / rel, roots))
        else:
            out.skipped.append(f"{container}/{rel} (not a regular file)")


def _matches(pattern: str, rel: str) -> bool:
    """POSIX globbing per path component (``*`` never crosses ``/``)."""
    want, have = pattern.split("/"), rel.split("/")
    return len(want) == len(have) and all(
        fnmatch.fnmatchcase(h, w) for w, h in zip(want, have, strict=True)
    )


def _wildcard(plan: OutputPlan, folder: Path, roots: tuple[Path, ...], out: Delivered) -> None:
    prefix = str(plan.prefix).rstrip("/")
    found = False
    for rel, path in _walk(folder):
        if not _matches(plan.rel, rel) or not stat.S_ISREG(path.lstat().st_mode):
            continue
        container = f"{plan.port.rstrip('/')}/{rel}"
        dest = Path(plan.dest) / container[len(prefix) + 1 :]
        _log(out, dest, container, _copy(path, dest, roots))
        found = True
    if not found:
        out.skipped.append(f"{plan.path}: no file matched")


def deliver(
    outputs: tuple[OutputPlan, ...], folders: dict[int, dict[str, Path]], roots: tuple[Path, ...]
) -> Delivered:
    """Copy every output; ``folders`` maps executor → output port path → its run folder."""
    out = Delivered()
    for plan in outputs:
        folder = folders.get(plan.executor, {}).get(plan.port)
        if folder is None:
            raise BadInput(f"outputs[{plan.index}]: executor {plan.executor} did not run")
        if plan.prefix is not None:
            _wildcard(plan, folder, roots, out)
            continue
        source = folder / plan.rel if plan.rel else folder
        try:
            mode = source.lstat().st_mode
        except FileNotFoundError:
            raise CheckFailed(f"outputs[{plan.index}]: the task made no {plan.path}") from None
        if plan.type == "DIRECTORY" and stat.S_ISDIR(mode):
            _tree(source, Path(plan.dest), plan.path, roots, out)
        elif plan.type == "FILE" and stat.S_ISREG(mode):
            _log(out, Path(plan.dest), plan.path, _copy(source, Path(plan.dest), roots))
        else:
            kind = "folder" if plan.type == "DIRECTORY" else "regular file"
            raise CheckFailed(f"outputs[{plan.index}]: {plan.path} is not a {kind}")
    return out


def summary(delivered: Delivered) -> dict[str, Any]:
    return {"files": len(delivered.files), "skipped": list(delivered.skipped)}
