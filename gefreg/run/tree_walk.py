"""Walking a folder tree that a container may have made: by directory descriptor, never by path.

Every entry is reached relative to its folder's descriptor — ``os.scandir(fd)``, ``fstatat``
without following symlinks, ``openat`` with ``O_NOFOLLOW | O_DIRECTORY`` — so a tree deeper
than PATH_MAX, symlink loops, links out of the tree and names of any bytes are just data. At most
:data:`MAX_OPEN` folder descriptors are open at once: higher folders are closed while a deep
branch is walked and reopened through ``..`` on the way back up, checked by device and inode,
so no depth exhausts the process's descriptors.

Problems are data too: an entry that cannot be read (EACCES), vanished meanwhile (ENOENT), or
turned into something else (ELOOP, ENOTDIR) is added to ``problems`` with its relative path,
and the walk goes on with the rest. (Only a folder that moved while it was walked ends it.)
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_OPEN = 48
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "vanished while gefreg read it",
    errno.ELOOP: "changed into a symlink while gefreg read it",
    errno.ENOTDIR: "changed while gefreg read it",
    errno.ENAMETOOLONG: "its name is too long",
}


@dataclass(frozen=True)
class Problem:
    """An entry that could not be read, and why."""

    rel: str
    reason: str

    def __str__(self) -> str:
        return f"{self.rel or '.'}: {self.reason}"


def problem(rel: str, exc: OSError) -> Problem:
    return Problem(rel, REASONS.get(exc.errno or 0, exc.strerror or str(exc)))


@dataclass(frozen=True)
class Found:
    """One entry: its relative POSIX path, its name, and the descriptor of its folder (valid
    until the walk moves on), with its ``lstat``."""

    rel: str
    name: str
    dir_fd: int
    stat: os.stat_result


class TreeMoved(OSError):
    """A folder was moved or replaced while the tree was walked."""


@dataclass
class _Level:
    rel: str  # "" for the root, else "a/b/"
    ident: tuple[int, int]
    fd: int | None
    names: list[str] = field(default_factory=list)


def _ident(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _names(fd: int, rel: str, problems: list[Problem]) -> list[str]:
    try:
        with os.scandir(fd) as entries:
            return [e.name for e in entries]
    except OSError as exc:
        problems.append(problem(rel.rstrip("/"), exc))
        return []


def open_root(root: Path) -> int:
    """A descriptor of the folder ``root`` (its own path may go through symlinks: the caller
    resolved and checked it)."""
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def walk(root_fd: int, problems: list[Problem]) -> Iterator[Found]:
    """Every entry under the folder ``root_fd`` (not the folder itself), depth first, without
    following symlinks. ``root_fd`` stays open (the caller's); problems go into ``problems``."""
    stack = [_Level("", _ident(os.fstat(root_fd)), root_fd)]
    stack[0].names = _names(root_fd, "", problems)
    try:
        while stack:
            level = stack[-1]
            if not level.names:
                _up(stack)
                continue
            assert level.fd is not None  # the deepest level is always open
            name = level.names.pop()
            rel = level.rel + name
            try:
                st = os.stat(name, dir_fd=level.fd, follow_symlinks=False)
            except OSError as exc:
                problems.append(problem(rel, exc))
                continue
            yield Found(rel, name, level.fd, st)
            if stat.S_ISDIR(st.st_mode):
                _down(stack, level.fd, name, rel, st, problems)
    finally:
        for level in stack[1:]:
            if level.fd is not None:
                os.close(level.fd)


def _down(
    stack: list[_Level],
    parent: int,
    name: str,
    rel: str,
    st: os.stat_result,
    problems: list[Problem],
) -> None:
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        problems.append(problem(rel, exc))
        return
    if _ident(os.fstat(fd)) != _ident(st):
        os.close(fd)
        problems.append(Problem(rel, REASONS[errno.ENOTDIR]))
        return
    child = _Level(rel + "/", _ident(st), fd)
    child.names = _names(fd, child.rel, problems)
    stack.append(child)
    open_levels = [lv for lv in stack[1:-1] if lv.fd is not None]
    for level in open_levels[: max(0, len(open_levels) + 2 - MAX_OPEN)]:
        assert level.fd is not None
        os.close(level.fd)
        level.fd = None


def _up(stack: list[_Level]) -> None:
    """Leave the deepest folder, reopening its parent through ``..`` when it was closed."""
    level = stack.pop()
    if not stack:
        return
    assert level.fd is not None
    parent = stack[-1]
    try:
        if parent.fd is None:
            fd = os.open("..", DIR_FLAGS, dir_fd=level.fd)
            if _ident(os.fstat(fd)) != parent.ident:
                os.close(fd)
                raise TreeMoved(errno.ESTALE, f"{parent.rel or '.'} moved while it was walked")
            parent.fd = fd
    finally:
        if len(stack) > 0 and level.fd != stack[0].fd:
            os.close(level.fd)


CACHED = 32  # folder descriptors :func:`open_at` keeps


def open_at(root_fd: int, rel: str, cache: dict[str, int]) -> tuple[int, str]:
    """(descriptor of the folder holding ``rel``, its last name): folders are opened one name at
    a time with ``O_NOFOLLOW``, from the nearest one in ``cache`` (folder ``rel`` -> descriptor,
    at most :data:`CACHED`; the caller closes them with :func:`close_all`) or from ``root_fd``."""
    folder, _, name = rel.rpartition("/")
    if not folder:
        return root_fd, name
    if folder in cache:
        return cache[folder], name
    base, done = root_fd, ""
    ancestor = folder
    while "/" in ancestor:
        ancestor = ancestor.rpartition("/")[0]
        if ancestor in cache:
            base, done = cache[ancestor], ancestor
            break
    fd = base
    for part in folder[len(done) :].lstrip("/").split("/"):
        opened = os.open(part, DIR_FLAGS, dir_fd=fd)
        if fd != base:
            os.close(fd)
        fd = opened
    if len(cache) >= CACHED:
        os.close(cache.pop(next(iter(cache))))
    cache[folder] = fd
    return fd, name


def close_all(cache: dict[str, int]) -> None:
    for fd in cache.values():
        os.close(fd)
    cache.clear()
