"""Who runs the service, and handing the files it made back to the caller.

When the caller is root the service runs as an unprivileged uid (the record's ``user``, 10001 by
default) in staging folders gefreg made for it (:mod:`gefreg.run.staging`): it never sees the
user's folders, so nothing of theirs needs protecting from it. Afterwards every entry in the
staging folders that the service created (owned by its uid) is handed to the caller with
``lchown`` — by directory descriptor, so any depth works; symlinks are never followed, nothing
outside the folders is touched, and set-uid / set-gid bits are cleared so a service cannot
leave a set-uid program owned by root behind. An entry that cannot be changed is reported.
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


@dataclass(frozen=True)
class HandBack:
    """What :func:`hand_back` did: how many entries changed owner, and what it could not reach."""

    count: int
    problems: tuple[Problem, ...] = ()


def hand_back(folder: Path, from_uid: int, to_uid: int, to_gid: int) -> HandBack:
    """Give every entry under ``folder`` owned by ``from_uid`` to ``to_uid:to_gid``, clearing
    set-uid and set-gid bits. By directory descriptor, never following symlinks, so trees
    deeper than PATH_MAX are handed back whole; an entry that cannot be changed is reported,
    not raised."""
    changed = 0
    problems: list[Problem] = []
    for found in _walk(folder, problems):
        st = found.stat
        if st.st_uid != from_uid:
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
