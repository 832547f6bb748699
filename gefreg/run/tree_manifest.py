"""Manifests of folder trees: every entry's relative path, size and sha256, and one root hash.

A manifest is what a run record says about its inputs and outputs, and what ``reproduce``
compares. The walk never follows symlinks and never opens anything but regular files:

* a regular file is hashed by content (streamed, several files at once on a thread pool);
* a symlink is recorded with its target, size = len(target), sha256 over ``b"symlink\\0" +
  target`` — it is never followed, so a service cannot make gefreg read outside the folder;
* a FIFO, socket or device is recorded by kind only (size 0, sha256 over ``b"special\\0" +
  kind``) — opening one could block or read a device;
* empty folders are not recorded (a manifest is a list of files, like BagIt's).

The root hash is ``sha256`` over the entries sorted bytewise by path, one line each:
``path \\0 size \\0 sha256 \\n`` for files, ``path \\0 size \\0 sha256 \\0 kind \\n`` for the
other kinds. Equal trees (by this definition) have equal roots on every machine.

Files are hashed largest first, so two cores stay busy until the end even when sizes are mixed.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput
from gefreg.hashing import NotARegularFile, sha256_regular
from gefreg.run.tree_walk import Found, Problem, close_all, open_at, open_root, problem, walk

FILE = "file"
SYMLINK = "symlink"


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "char-device"
    if stat.S_ISBLK(mode):
        return "block-device"
    return "unknown"


@dataclass(frozen=True)
class FileEntry:
    """One entry of a tree: a POSIX path relative to the tree's root."""

    path: str
    size: int
    sha256: str
    kind: str = FILE
    target: str | None = None

    def line(self) -> bytes:
        parts = [os.fsencode(self.path), str(self.size).encode(), self.sha256.encode()]
        if self.kind != FILE:
            parts.append(self.kind.encode())
        return b"\0".join(parts) + b"\n"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "size": self.size, "sha256": self.sha256}
        if self.kind != FILE:
            data["kind"] = self.kind
        if self.target is not None:
            data["target"] = self.target
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileEntry:
        return cls(
            path=str(data["path"]),
            size=int(data["size"]),
            sha256=str(data["sha256"]),
            kind=str(data.get("kind", FILE)),
            target=None if data.get("target") is None else str(data["target"]),
        )


def _sort_key(entry: FileEntry) -> bytes:
    return os.fsencode(entry.path)


def manifest_root(files: Iterable[FileEntry]) -> str:
    """sha256 over the sorted entry lines (see the module docstring)."""
    digest = hashlib.sha256()
    for entry in sorted(files, key=_sort_key):
        digest.update(entry.line())
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class TreeManifest:
    """The entries of one tree, sorted bytewise by path, and their root hash."""

    files: tuple[FileEntry, ...]
    root: str

    @classmethod
    def of(cls, files: Iterable[FileEntry]) -> TreeManifest:
        ordered = tuple(sorted(files, key=_sort_key))
        return cls(ordered, manifest_root(ordered))

    @property
    def count(self) -> int:
        return len(self.files)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files if f.kind == FILE)

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "count": self.count,
            "bytes": self.bytes,
            "files": [f.to_json() for f in self.files],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "manifest") -> TreeManifest:
        """Read a manifest back; its root must match its files (a corrupt record is refused)."""
        try:
            manifest = cls.of(FileEntry.from_json(f) for f in data["files"])
            stored = str(data["root"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"{where}: not a manifest ({exc})") from None
        if manifest.root != stored:
            raise BadInput(
                f"{where}: root {stored} does not match its files ({manifest.root})",
                "the record was edited or damaged; use the original record",
            )
        return manifest


@dataclass(frozen=True)
class _Item:
    relpath: str
    root: int  # the descriptor of the tree's root folder
    size: int
    inode: tuple[int, int] | None = None  # (device, inode) of a file with more than one name


def _symlink(found: Found) -> FileEntry:
    raw = os.readlink(found.name, dir_fd=found.dir_fd).encode("utf-8", "surrogateescape")
    target = os.fsdecode(raw)
    digest = "sha256:" + hashlib.sha256(b"symlink\0" + raw).hexdigest()
    return FileEntry(found.rel, len(raw), digest, SYMLINK, target)


def scan_tree(root_fd: int, problems: list[Problem]) -> tuple[list[_Item], list[FileEntry]]:
    """Walk the folder ``root_fd`` (:mod:`gefreg.run.tree_walk`: by descriptor, never following
    symlinks): regular files to hash, and the other entries (symlinks, special files) already
    described. What cannot be read goes into ``problems``."""
    files: list[_Item] = []
    others: list[FileEntry] = []
    for found in walk(root_fd, problems):
        mode = found.stat.st_mode
        if stat.S_ISDIR(mode):
            continue
        if stat.S_ISREG(mode):
            st = found.stat
            inode = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
            files.append(_Item(found.rel, root_fd, st.st_size, inode))
        elif stat.S_ISLNK(mode):
            try:
                others.append(_symlink(found))
            except OSError as exc:
                problems.append(problem(found.rel, exc))
        else:
            kind = _special_kind(mode)
            digest = hashlib.sha256(b"special\0" + kind.encode()).hexdigest()
            others.append(FileEntry(found.rel, 0, "sha256:" + digest, kind))
    return files, others


class _Counter:
    """Turns per-chunk byte counts from worker threads into (done, total) progress calls."""

    def __init__(self, total: int, report: Callable[[int, int], None]) -> None:
        self.total = total
        self.done = 0
        self.report = report
        self.lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self.lock:
            self.done += n
            done = self.done
        self.report(done, self.total)


SMALL = 1024 * 1024
BATCH_BYTES = 16 * 1024 * 1024
BATCH_FILES = 64


def _tasks(order: list[int], items: list[_Item]) -> list[list[int]]:
    """Large files one per task, largest first, with batches of small files in between.

    Hashing a large file releases the GIL, so large files scale across cores. A small file is
    mostly Python overhead, which holds the GIL: one task per small file would multiply that
    overhead, and running all small files at the end would leave the cores taking turns. In
    batches placed between the large files, that work overlaps another core's hashing.
    """
    large = [[k] for k in order if items[k].size > SMALL]
    batches: list[list[int]] = []
    batch: list[int] = []
    size = 0
    for k in range(len(items)):  # in the order walked: folder by folder, for open_at's cache
        if items[k].size > SMALL:
            continue
        batch.append(k)
        size += items[k].size
        if size >= BATCH_BYTES or len(batch) >= BATCH_FILES:
            batches.append(batch)
            batch, size = [], 0
    if batch:
        batches.append(batch)
    tasks: list[list[int]] = []
    done = 0
    for i, task in enumerate(large):  # spread the batches evenly between the large files
        tasks.append(task)
        until = (i + 1) * len(batches) // len(large)
        tasks.extend(batches[done:until])
        done = max(done, until)
    tasks.extend(batches[done:])
    return tasks


def _hash_items(
    items: list[_Item],
    workers: int | None,
    progress: Callable[[int], None] | None,
    problems: dict[int, list[Problem]],
) -> list[FileEntry | None]:
    """Hash regular files, largest first (so the last busy core is not stuck with a big file);
    results come back in the order given, None for a file that could not be read (its problem
    goes into ``problems`` under its root)."""
    lock = threading.Lock()

    def one(item: _Item, cache: dict[str, int]) -> FileEntry | None:
        try:
            folder, name = open_at(item.root, item.relpath, cache)
            digest, size = sha256_regular(name, progress, dir_fd=folder)
        except NotARegularFile:
            found = Problem(item.relpath, "changed while gefreg read it")
        except OSError as exc:
            found = problem(item.relpath, exc)
        else:
            return FileEntry(item.relpath, size, digest)
        with lock:
            problems.setdefault(item.root, []).append(found)
        return None

    order = sorted(range(len(items)), key=lambda k: items[k].size, reverse=True)
    tasks = _tasks(order, items)
    count = workers or max(2, os.cpu_count() or 2)
    out: list[FileEntry | None] = [None] * len(items)

    def run(task: list[int]) -> list[tuple[int, FileEntry | None]]:
        cache: dict[str, int] = {}
        try:
            return [(k, one(items[k], cache)) for k in task]
        finally:
            close_all(cache)

    if count == 1 or len(tasks) <= 1:
        results = [run(task) for task in tasks]
    else:
        with ThreadPoolExecutor(max_workers=min(count, len(tasks))) as pool:
            results = list(pool.map(run, tasks))
    for batch in results:
        for k, entry in batch:
            out[k] = entry
    return out


def _hash_once(
    items: list[_Item],
    workers: int | None,
    progress: Callable[[int, int], None] | None,
    problems: dict[int, list[Problem]],
) -> list[FileEntry | None]:
    """:func:`_hash_items`, reading a file once however many names (hard links) it has: the
    others take its digest, so a service cannot make gefreg read one file once per name."""
    first: dict[tuple[int, int], int] = {}
    once = [it.inode is None or first.setdefault(it.inode, k) == k for k, it in enumerate(items)]
    unique = [k for k, keep in enumerate(once) if keep]
    counter = None
    if progress is not None:
        counter = _Counter(sum(items[k].size for k in unique), progress)
        progress(0, counter.total)
    hashed = _hash_items([items[k] for k in unique], workers, counter, problems)
    out: list[FileEntry | None] = [None] * len(items)
    for k, entry in zip(unique, hashed, strict=True):
        out[k] = entry
    for k, it in enumerate(items):
        j = first[it.inode] if it.inode is not None else k
        if j != k and (entry := out[j]) is not None:
            out[k] = FileEntry(it.relpath, entry.size, entry.sha256)
        elif j != k:
            problems.setdefault(it.root, []).append(Problem(it.relpath, "unreadable (a link)"))
    return out


@dataclass(frozen=True)
class TreeReading:
    """Manifests of several trees, and per tree what could not be read (empty when all was)."""

    manifests: dict[str, TreeManifest]
    problems: dict[str, tuple[Problem, ...]]

    def describe(self, limit: int = 3) -> str | None:
        """The problems in a sentence, None when there are none."""
        found = [
            f"{name}/{p}" if name else str(p) for name, ps in self.problems.items() for p in ps
        ]
        if not found:
            return None
        more = f" (and {len(found) - limit} more)" if len(found) > limit else ""
        return "; ".join(found[:limit]) + more


def read_trees(
    roots: Mapping[str, Path],
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TreeReading:
    """Manifests of several trees (e.g. one per port), hashed on one shared thread pool; an
    entry that cannot be read is left out and reported, never an exception.

    ``progress(done_bytes, total_bytes)`` is called as chunks are hashed, from worker threads.
    """
    fds: dict[str, int] = {}
    found: dict[int, list[Problem]] = {}
    missing: dict[str, tuple[Problem, ...]] = {}
    try:
        for name, path in roots.items():
            try:
                fds[name] = open_root(path)
            except OSError as exc:
                missing[name] = (problem("", exc),)
        scans = {}
        for name, fd in fds.items():
            scans[name] = scan_tree(fd, found.setdefault(fd, []))
        tagged = [(name, item) for name, (files, _) in scans.items() for item in files]
        hashed = _hash_once([item for _, item in tagged], workers, progress, found)
    finally:
        for fd in fds.values():
            os.close(fd)
    out: dict[str, list[FileEntry]] = {name: [] for name in roots}
    for name, (_, others) in scans.items():
        out[name] += others
    for (name, _), entry in zip(tagged, hashed, strict=True):
        if entry is not None:
            out[name].append(entry)
    problems = {name: tuple(found[fd]) for name, fd in fds.items() if found.get(fd)}
    return TreeReading(
        {name: TreeManifest.of(entries) for name, entries in out.items()}, {**missing, **problems}
    )


def tree_manifests(
    roots: Mapping[str, Path],
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, TreeManifest]:
    """:func:`read_trees` for trees that must be read whole (inputs): BadInput naming what could
    not be read."""
    reading = read_trees(roots, workers=workers, progress=progress)
    problems = reading.describe()
    if problems:
        raise BadInput(
            f"cannot read every file: {problems}",
            "make them readable (chmod -R a+rX) and keep the folders unchanged while gefreg works",
        )
    return reading.manifests


def tree_manifest(
    root: Path,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TreeManifest:
    """The manifest of one folder tree."""
    return tree_manifests({"": root}, workers=workers, progress=progress)[""]
