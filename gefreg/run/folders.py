"""The folders of a run, checked before anything runs: inputs (existing, holding no mount
point), outputs (empty unless ``force``, writable, not on a read-only file system), no port
inside another and the record outside every port. Then the missing folders are made — and
removed again, while empty, when the run stops before a container exists.

Every refusal is :class:`BadInput` (exit 2) naming the port and the folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from gefreg.errors import BadInput
from gefreg.run.ownership import first_unreadable
from gefreg.run.tree_walk import open_root, walk


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _read_only_fs(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


MOUNTINFO = Path("/proc/self/mountinfo")
_ESCAPED = re.compile(r"\\([0-7]{3})")


def mount_points(mountinfo: Path = MOUNTINFO) -> list[Path] | None:
    """Every mount point this process sees (field 5 of ``mountinfo``, with its octal escapes
    undone), or None when the table cannot be read (not Linux, no /proc)."""
    try:
        text = mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None
    points = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.append(Path(_ESCAPED.sub(lambda m: chr(int(m.group(1), 8)), fields[4])))
    return points


def first_mount_point(root: Path, mounts: list[Path] | None) -> Path | None:
    """The first mount point strictly inside the folder ``root`` (resolved): from the mount
    table (which also shows bind mounts of the same file system), else — without one — the
    first folder found on another device (``st_dev``) while walking the tree."""
    if mounts is not None:
        inside = sorted(m for m in mounts if root in m.parents)
        return inside[0] if inside else None
    device = os.stat(root).st_dev
    fd = open_root(root)
    try:
        for found in walk(fd, []):
            if stat.S_ISDIR(found.stat.st_mode) and found.stat.st_dev != device:
                return root / found.rel
    finally:
        os.close(fd)
    return None


def check_inputs(inputs: Mapping[str, Path]) -> dict[str, Path]:
    """Existing folders, resolved, holding no mount point. With the engine's default recursive
    bind, a mount below an input folder would be writable in the container; the runner binds
    inputs non-recursively, which hides such a mount instead — and then the run record would
    hash files the service never saw. So it is refused, naming the mount point."""
    out = {}
    mounts = mount_points()
    for port, path in inputs.items():
        try:
            if not path.exists():
                raise BadInput(f"input {port}: {path} does not exist")
            if not path.is_dir():
                raise BadInput(
                    f"input {port}: {path} is not a folder",
                    "ports are folders; put the file in one",
                )
            resolved = path.resolve()
            inner = first_mount_point(resolved, mounts)
        except OSError as exc:
            raise BadInput(f"input {port}: cannot use {path}: {exc.strerror or exc}") from None
        if inner is not None:
            raise BadInput(
                f"input {port}: {inner} is a mount point inside the input folder {path}",
                "give the mounted folder as an input port of its own, or copy the data into one "
                "folder (a file system mounted below an input is not part of it in the container)",
            )
        out[port] = resolved
    return out


def check_outputs(outputs: Mapping[str, Path], force: bool) -> dict[str, Path]:
    """Output folders, checked but not created (see :func:`make_folders`); anything the file
    system refuses while checking is BadInput naming the port and folder."""
    out = {}
    for port, path in outputs.items():
        try:
            out[port] = _check_output(port, path, force)
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (resolve)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise BadInput(f"output {port}: cannot use {path}: {reason}") from None
    return out


def _check_output(port: str, path: Path, force: bool) -> Path:
    resolved = path.resolve()
    if resolved.exists():
        if not resolved.is_dir():
            raise BadInput(f"output {port}: {path} exists and is not a folder")
        if not force and any(resolved.iterdir()):
            raise BadInput(
                f"output {port}: {path} is not empty",
                "give an empty or new folder, or --force to write into it (gefreg never "
                "deletes anything; the service may overwrite files there)",
            )
    existing = _nearest_existing(resolved)
    if not existing.is_dir():
        raise BadInput(f"output {port}: {existing} is not a folder, so {path} cannot be made")
    if _read_only_fs(existing):
        raise BadInput(
            f"output {port}: {path} is on a read-only file system",
            "choose an output folder on a writable file system",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"output {port}: {existing} is not writable for you")
    return resolved


def check_disjoint(inputs: Mapping[str, Path], outputs: Mapping[str, Path], record: Path) -> None:
    """No port folder may contain another (an output inside an input would make the input
    writable), and the record may not be inside any port (it would change what it describes)."""
    named = [(f"input {p}", f) for p, f in inputs.items()]
    named += [(f"output {p}", f) for p, f in outputs.items()]
    for i, (a_name, a) in enumerate(named):
        for b_name, b in named[i + 1 :]:
            if a_name.startswith("input") and b_name.startswith("input"):
                continue  # two inputs may share data: both are read-only
            if _inside(a, b) or _inside(b, a):
                raise BadInput(f"{a_name} ({a}) and {b_name} ({b}) overlap", "use separate folders")
        if _inside(record, a):
            raise BadInput(
                f"the run record {record} would be inside {a_name} ({a})",
                "write the record elsewhere (--record FILE)",
            )


def check_readable_by(inputs: Mapping[str, Path], uid: int, gid: int) -> None:
    """Every input file and folder must be readable by the service's user when it runs
    unprivileged as another uid than the caller's."""
    for port, path in inputs.items():
        bad = first_unreadable(path, uid, gid)
        if bad is not None:
            raise BadInput(
                f"input {port}: {bad} is not readable by the service's user {uid}",
                f"the service runs unprivileged; make the input readable: chmod -R a+rX {path}",
            )


def make_folders(folders: Mapping[str, Path]) -> list[Path]:
    """Create the missing folders (``{what: folder}``, e.g. ``output result``); returns every
    folder created, parents first, for :func:`remove_made`. A folder that cannot be created
    (``-o /proc/x``) is BadInput naming it, after removing what was made."""
    made: list[Path] = []
    for what, path in folders.items():
        missing = [p for p in (path, *path.parents) if not p.exists()]
        try:
            for folder in reversed(missing):
                try:
                    folder.mkdir()
                except FileExistsError:
                    continue  # made meanwhile, not by us: checked below
                made.append(folder)
        except OSError as exc:
            remove_made(made)
            raise BadInput(
                f"{what}: cannot create {path}: {exc.strerror or exc}",
                "choose a folder on a writable file system",
            ) from None
        if not path.is_dir():
            remove_made(made)
            raise BadInput(f"{what}: {path} is not a folder")
    return made


def remove_made(made: list[Path]) -> None:
    """Remove folders :func:`make_folders` made, children first, each only while empty: what
    someone put there meanwhile stays, with the folders holding it."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()
