"""Delivering a run's outputs from the folders gefreg staged them in into the user's folders.

Every new entry is moved: renamed when staging and target share a file system, else copied by
descriptor (any depth) from the run's own file system — files (content, mode, times), folders,
symlinks (as links, never followed) and FIFOs; set-uid bits were already cleared at the
hand-back; a socket cannot be copied and is left out, said. A copy takes no more room than the
original, which the disk limit bounded: holes stay holes and the names of one file stay links to
one file (copied in full, a service's sparse files and hard links multiplied what it could
leave). An entry whose path already exists in the user's folder is a **conflict**: without
``overwrite`` nothing is moved — the outputs are kept, whole, in ``OUT/gefreg-run-<id8>/`` and
the run fails naming the conflicts; with ``overwrite`` files replace files and folders merge (a
file never replaces a folder, nor a folder a file). gefreg deletes nothing else, and never
follows a link in the user's folder.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gefreg.run.staging import FILESYSTEM, WATCHING, Staging, remove_staging
from gefreg.run.tree_walk import DIR_FLAGS, close_all, open_at, open_root, walk

FILE_IN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
FILE_OUT = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Delivery:
    """What delivery did: entries moved, replaced (``overwrite``), conflicting, where outputs
    were kept instead, and what could not be moved."""

    moved: int = 0
    replaced: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "moved": self.moved,
            "replaced": list(self.replaced),
            "conflicts": list(self.conflicts),
            "kept": list(self.kept),
            "problems": list(self.problems),
        }


@contextmanager
def _roots(*paths: Path) -> Iterator[list[int]]:
    fds: list[int] = []
    try:
        fds.extend(open_root(p) for p in paths)
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def recover_staging(folder: Path) -> list[str]:
    """What a run left in the output folder ``folder`` when gefreg was killed while it ran: the
    working folders ``.gefreg-run-*``. Their outputs are kept beside (``gefreg-run-<id8>/PORT``),
    their file system unmounted, the rest removed. Returns what was done, in sentences."""
    notes: list[str] = []
    for work in sorted(folder.glob(".gefreg-run-*")):
        mountpoint = work / "mnt"
        mounted = mountpoint.is_mount()
        holder = mountpoint if mounted else work
        ports = {p.name: p for p in holder.iterdir() if p.is_dir() and p != mountpoint}
        kept = folder / work.name.lstrip(".")
        staging = Staging(
            {"": work},
            ports,
            {port: kept / port for port in ports},
            0,
            FILESYSTEM if mounted else WATCHING,
            work / "disk.img" if mounted else None,
            mountpoint if mounted else None,
        )
        for target in staging.targets.values():
            target.mkdir(parents=True, exist_ok=True)
        done = deliver(staging, overwrite=False) if ports else Delivery()
        notes.append(f"the outputs of an interrupted run are in {kept}")
        notes += [*done.problems, *remove_staging(staging, delivered=not done.problems)]
    return notes


def deliver(staging: Staging, overwrite: bool) -> Delivery:
    """Move every port's staged outputs into its user folder (see the module docstring)."""
    plans = {port: _plan(staging, port, overwrite) for port in staging.folders}
    conflicts = tuple(f"{port}/{rel}" for port, (_, found) in plans.items() for rel in found)
    moved = 0
    replaced: list[str] = []
    kept: list[str] = []
    problems: list[str] = []
    for port, (actions, _) in plans.items():
        source, target = staging.folders[port], staging.targets[port]
        if conflicts:  # nothing is moved: the outputs are kept, whole, beside the user's files
            target = target / staging.work[port].name.lstrip(".")
            try:
                target.mkdir(mode=0o755)
            except OSError as exc:
                problems.append(f"{port}: cannot make {target}: {exc.strerror}")
                continue
            kept.append(str(target))
            actions = [("move", e.name) for e in os.scandir(source)]
        with _roots(source, target) as (src, dst):
            done = _carry_out(port, actions, src, dst, problems)
        moved += done.count("move")
        pairs = zip(actions, done, strict=True)
        replaced += [f"{port}/{rel}" for (_, rel), did in pairs if did == "replace"]
    return Delivery(moved, tuple(replaced), conflicts, tuple(kept), tuple(problems))


def _plan(staging: Staging, port: str, overwrite: bool) -> tuple[list[tuple[str, str]], list[str]]:
    """(actions, conflicts) for one port: ``("move" | "replace", rel)`` per new entry."""
    actions: list[tuple[str, str]] = []
    conflicts: list[str] = []
    with _roots(staging.folders[port], staging.targets[port]) as (src, dst):
        _plan_into(src, dst, "", overwrite, actions, conflicts)
    return actions, conflicts


def _plan_into(
    src: int,
    dst: int,
    rel: str,
    overwrite: bool,
    actions: list[tuple[str, str]],
    conflicts: list[str],
) -> None:
    for entry in os.scandir(src):
        name, here = entry.name, rel + entry.name
        new = os.stat(name, dir_fd=src, follow_symlinks=False)
        try:
            old = os.stat(name, dir_fd=dst, follow_symlinks=False)
        except FileNotFoundError:
            actions.append(("move", here))
            continue
        if stat.S_ISDIR(new.st_mode) and stat.S_ISDIR(old.st_mode):
            inner_src = os.open(name, DIR_FLAGS, dir_fd=src)
            inner_dst = os.open(name, DIR_FLAGS, dir_fd=dst)
            try:
                _plan_into(inner_src, inner_dst, here + "/", overwrite, actions, conflicts)
            finally:
                os.close(inner_src)
                os.close(inner_dst)
        elif overwrite and not stat.S_ISDIR(new.st_mode) and not stat.S_ISDIR(old.st_mode):
            actions.append(("replace", here))
        else:
            conflicts.append(here)


def _carry_out(
    port: str, actions: list[tuple[str, str]], src: int, dst: int, problems: list[str]
) -> list[str]:
    """Do ``actions`` (relative to the two roots); returns what was done per action ("" when
    it could not be)."""
    same = os.fstat(src).st_dev == os.fstat(dst).st_dev
    done: list[str] = []
    caches: tuple[dict[str, int], dict[str, int]] = ({}, {})
    out = _Copies(dst, problems)
    try:
        for what, rel in actions:
            from_dir, name = open_at(src, rel, caches[0])
            to_dir, _ = open_at(dst, rel, caches[1])
            try:
                if same:
                    _rename(from_dir, to_dir, name, what)
                else:
                    _copy(from_dir, to_dir, name, what, out, port, rel)
                done.append(what)
            except OSError as exc:
                problems.append(f"{port}/{rel}: {exc.strerror or exc}")
                done.append("")
    finally:
        close_all(caches[0])
        close_all(caches[1])
        close_all(out.cache)
    return done


def _rename(from_dir: int, to_dir: int, name: str, what: str) -> None:
    if what == "replace":
        os.replace(name, name, src_dir_fd=from_dir, dst_dir_fd=to_dir)
        return
    # a new name: never replace something that appeared meanwhile
    try:
        os.stat(name, dir_fd=to_dir, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(name, name, src_dir_fd=from_dir, dst_dir_fd=to_dir)
        return
    raise FileExistsError(errno.EEXIST, "appeared while gefreg delivered the outputs", name)


@dataclass
class _Copies:
    """What copying into one port's folder has made so far: the first copy of every file with
    more than one name (its path below ``root``), so its other names become links again."""

    root: int
    problems: list[str]
    links: dict[tuple[int, int], str] = field(default_factory=dict)
    cache: dict[str, int] = field(default_factory=dict)

    def linked(self, st: os.stat_result, to_dir: int, new_name: str, path: str) -> bool:
        """Whether ``new_name`` could be made a link to the first copy of the same file."""
        if st.st_nlink < 2:
            return False
        first = self.links.setdefault((st.st_dev, st.st_ino), path)
        if first == path:
            return False
        try:
            parent, leaf = open_at(self.root, first, self.cache)
            os.link(leaf, new_name, src_dir_fd=parent, dst_dir_fd=to_dir, follow_symlinks=False)
        except OSError:  # the first copy went (a replaced folder): this one is copied
            return False
        return True

    def renamed(self, old: str, new: str) -> None:
        """The copy at ``old`` (a replacing file's temporary name) is now at ``new``."""
        for key, path in self.links.items():
            if path == old:
                self.links[key] = new


def _copy(
    from_dir: int, to_dir: int, name: str, what: str, out: _Copies, port: str, below: str
) -> None:
    """Copy the entry ``below`` the port's folder (a whole folder: by descriptor, any depth)."""
    st = os.stat(name, dir_fd=from_dir, follow_symlinks=False)
    temporary = f".{name}.gefreg-new" if what == "replace" else name
    path = f"{below.rpartition('/')[0]}/{temporary}".lstrip("/")  # as made, below the folder
    rel = f"{port}/{below}"
    _copy_one(from_dir, to_dir, name, temporary, st, out, rel, path)
    if stat.S_ISDIR(st.st_mode):
        inner_src = os.open(name, DIR_FLAGS, dir_fd=from_dir)
        inner_dst = os.open(temporary, DIR_FLAGS, dir_fd=to_dir)
        cache: dict[str, int] = {}
        try:
            for found in walk(inner_src, []):
                parent, leaf = open_at(inner_dst, found.rel, cache)
                _copy_one(found.dir_fd, parent, found.name, leaf, found.stat, out,
                          f"{rel}/{found.rel}", f"{path}/{found.rel}")  # fmt: skip
        finally:
            close_all(cache)
            os.close(inner_src)
            os.close(inner_dst)
    if what == "replace":  # a file (folders merge)
        os.replace(temporary, name, src_dir_fd=to_dir, dst_dir_fd=to_dir)
        out.renamed(path, below)


def _copy_one(
    from_dir: int,
    to_dir: int,
    name: str,
    new_name: str,
    st: os.stat_result,
    out: _Copies,
    rel: str,
    path: str,
) -> None:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        os.mkdir(new_name, 0o700, dir_fd=to_dir)
        os.chmod(new_name, mode | 0o700, dir_fd=to_dir)  # its entries still to come
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=from_dir), new_name, dir_fd=to_dir)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(new_name, mode, dir_fd=to_dir)
    elif stat.S_ISREG(st.st_mode):
        if out.linked(st, to_dir, new_name, path):
            return
        _copy_file(from_dir, to_dir, name, new_name, st)
    else:
        out.problems.append(f"{rel}: a {'socket' if stat.S_ISSOCK(st.st_mode) else 'device'} "
                            "cannot be moved; left out")  # fmt: skip
        return
    os.utime(new_name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=to_dir, follow_symlinks=False)


def _copy_file(from_dir: int, to_dir: int, name: str, new_name: str, st: os.stat_result) -> None:
    fin = os.open(name, FILE_IN, dir_fd=from_dir)
    try:
        fout = os.open(new_name, FILE_OUT, 0o600, dir_fd=to_dir)
        try:
            _copy_data(fin, fout, os.fstat(fin).st_size)
            os.fchmod(fout, stat.S_IMODE(st.st_mode))
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_data(fin: int, fout: int, size: int) -> None:
    """Copy the data of ``fin`` into ``fout``, holes left holes: delivered, a sparse file takes
    no more room than it took under the disk limit (copied byte for byte, 20 files of 40 MiB
    that took nothing became 800 MiB of the user's disk)."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fin, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but a hole from here on
                break
            raise
        end = os.lseek(fin, start, os.SEEK_HOLE)
        os.lseek(fout, start, os.SEEK_SET)
        while start < end:
            sent = os.sendfile(fout, fin, start, min(end - start, 1 << 30))
            if not sent:
                break
            start += sent
        offset = end
    os.ftruncate(fout, size)
