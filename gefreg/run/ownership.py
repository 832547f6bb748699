"""Output folders a non-root container can write to, and files handed back to the caller.

When the caller is root the service runs as an unprivileged uid (the record's ``user``, 10001 by
default), which cannot write to a root-owned folder. For the run, the output folder's group
becomes that uid's group with group rwx and the sticky bit (so the service cannot delete or
rename files that were already there); afterwards mode and group are restored exactly, and every
entry under the folder that the service created (owned by its uid) is handed to the caller with
``lchown`` — symlinks are never followed, nothing outside the folder is touched, and set-uid /
set-gid bits are cleared so a service cannot leave a set-uid program owned by root behind.

Entries that were in the folder before the run (``--force``) are never handed back: their
``(st_dev, st_ino)`` are recorded before the run (:func:`entry_ids`) and skipped. And a folder
holding entries the service's uid owns, or its group may write (:func:`first_open_to`), is
refused before the run: the service could change them, and they would be indistinguishable
from its own output.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gefreg.model import DEFAULT_UID
from gefreg.run.tree_walk import Found, Problem, open_root, problem, walk


@dataclass(frozen=True)
class Identity:
    """Who runs gefreg and who the service runs as: root callers run it as the interface's
    unprivileged user; everyone else as themselves."""

    uid: int
    gid: int
    run_uid: int
    run_gid: int

    @classmethod
    def of_caller(cls, service_user: int = DEFAULT_UID) -> Identity:
        uid, gid = os.geteuid(), os.getegid()
        if uid == 0:
            return cls(uid, gid, service_user, service_user)
        return cls(uid, gid, uid, gid)

    @property
    def separate(self) -> bool:
        """Whether the service runs as another user than the caller (files change hands)."""
        return self.run_uid != self.uid

    @property
    def user(self) -> str:
        return f"{self.run_uid}:{self.run_gid}"


@dataclass(frozen=True)
class Grant:
    """What :func:`grant_write` changed on one folder, to undo it."""

    path: Path
    mode: int
    gid: int


def grant_write(folder: Path, gid: int) -> Grant:
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(str(folder))
    grant = Grant(folder, stat.S_IMODE(st.st_mode), st.st_gid)
    os.chown(folder, -1, gid, follow_symlinks=False)
    os.chmod(folder, grant.mode | 0o070 | stat.S_ISVTX)
    return grant


def revoke(grant: Grant) -> None:
    os.chown(grant.path, -1, grant.gid, follow_symlinks=False)
    os.chmod(grant.path, grant.mode)


EntryId = tuple[int, int]  # (st_dev, st_ino)


def _walk(folder: Path, problems: list[Problem] | None = None) -> Iterator[Found]:
    """Every entry under ``folder`` (not the folder itself), by directory descriptor, without
    following symlinks (:func:`gefreg.run.tree_walk.walk`)."""
    found = problems if problems is not None else []
    try:
        root = open_root(folder)
    except FileNotFoundError:
        return
    try:
        yield from walk(root, found)
    finally:
        os.close(root)


def _ids(st: os.stat_result) -> EntryId:
    return st.st_dev, st.st_ino


def entry_ids(folder: Path) -> frozenset[EntryId]:
    """``(st_dev, st_ino)`` of every entry under ``folder``, taken before a run."""
    return frozenset(_ids(found.stat) for found in _walk(folder))


def first_open_to(folder: Path, uid: int, gid: int) -> Path | None:
    """The first entry that ``uid`` owns — ``folder`` itself or any entry under it — or under it
    that group ``gid`` owns with group write permission (symlinks: ownership only), or None.
    (The folder's own group permissions are the run's: :func:`grant_write` sets them, with the
    sticky bit.)"""

    def open_to(st: os.stat_result) -> bool:
        if st.st_uid == uid:
            return True
        return not stat.S_ISLNK(st.st_mode) and st.st_gid == gid and bool(st.st_mode & 0o020)

    if os.lstat(folder).st_uid == uid:
        return folder
    for found in _walk(folder):
        if open_to(found.stat):
            return folder / found.rel
    return None


@dataclass(frozen=True)
class HandBack:
    """What :func:`hand_back` did: how many entries changed owner, and what it could not reach."""

    count: int
    problems: tuple[Problem, ...] = ()


def hand_back(
    folder: Path,
    from_uid: int,
    to_uid: int,
    to_gid: int,
    keep: frozenset[EntryId] = frozenset(),
) -> HandBack:
    """Give every entry under ``folder`` owned by ``from_uid`` to ``to_uid:to_gid``, except the
    entries in ``keep`` (what was there before the run, by :func:`entry_ids`), clearing set-uid
    and set-gid bits. By directory descriptor, never following symlinks, so trees deeper than
    PATH_MAX are handed back whole; an entry that cannot be changed is reported, not raised."""
    changed = 0
    problems: list[Problem] = []
    for found in _walk(folder, problems):
        st = found.stat
        if st.st_uid != from_uid or _ids(st) in keep:
            continue
        try:
            os.chown(found.name, to_uid, to_gid, dir_fd=found.dir_fd, follow_symlinks=False)
            changed += 1
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                mode = stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID)
                os.chmod(found.name, mode, dir_fd=found.dir_fd)  # not a symlink: nothing followed
        except OSError as exc:
            problems.append(problem(found.rel, exc))
    return HandBack(changed, tuple(problems))


def can_read(st: os.stat_result, uid: int, gid: int, need_exec: bool) -> bool:
    """Whether ``uid:gid`` (no capabilities, no supplementary groups) may read ``st``."""
    if st.st_uid == uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid == gid:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bool(bits & 4) and (not need_exec or bool(bits & 1))


def first_unreadable(root: Path, uid: int, gid: int) -> Path | None:
    """The first folder or file under ``root`` (root included) that ``uid:gid`` cannot read."""
    st = os.stat(root)
    if not can_read(st, uid, gid, need_exec=True):
        return root
    for found in _walk(root):
        mode = found.stat.st_mode
        if stat.S_ISDIR(mode) and not can_read(found.stat, uid, gid, need_exec=True):
            return root / found.rel
        if stat.S_ISREG(mode) and not can_read(found.stat, uid, gid, need_exec=False):
            return root / found.rel
    return None
