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

    def by_path(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}

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
    path: Path
    size: int


def scan_tree(root: Path) -> tuple[list[_Item], list[FileEntry]]:
    """Walk ``root`` without following symlinks: regular files to hash, and the other entries
    (symlinks, special files) already described."""
    files: list[_Item] = []
    others: list[FileEntry] = []
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except PermissionError:
            raise BadInput(
                f"cannot read folder {folder}", "make it readable (chmod a+rX)"
            ) from None
        for entry in entries:
            rel = prefix + entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append((Path(entry.path), rel + "/"))
            elif stat.S_ISREG(st.st_mode):
                files.append(_Item(rel, Path(entry.path), st.st_size))
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(entry.path)
                raw = os.fsencode(target)
                others.append(
                    FileEntry(
                        rel,
                        len(raw),
                        "sha256:" + hashlib.sha256(b"symlink\0" + raw).hexdigest(),
                        SYMLINK,
                        target,
                    )
                )
            else:
                kind = _special_kind(st.st_mode)
                digest = hashlib.sha256(b"special\0" + kind.encode()).hexdigest()
                others.append(FileEntry(rel, 0, "sha256:" + digest, kind))
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
    for k in order:
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
    items: list[_Item], workers: int | None, progress: Callable[[int], None] | None
) -> list[FileEntry]:
    """Hash regular files, largest first (so the last busy core is not stuck with a big file);
    results come back in the order given."""

    def one(item: _Item) -> FileEntry:
        try:
            digest, size = sha256_regular(item.path, progress)
        except (FileNotFoundError, NotARegularFile):
            raise BadInput(
                f"{item.path} changed while gefreg was hashing it",
                "keep the folder unchanged while gefreg works on it",
            ) from None
        except PermissionError:
            raise BadInput(f"cannot read {item.path}", "make it readable (chmod a+r)") from None
        return FileEntry(item.relpath, size, digest)

    order = sorted(range(len(items)), key=lambda k: items[k].size, reverse=True)
    tasks = _tasks(order, items)
    count = workers or max(2, os.cpu_count() or 2)
    out: list[FileEntry | None] = [None] * len(items)

    def run(task: list[int]) -> list[tuple[int, FileEntry]]:
        return [(k, one(items[k])) for k in task]

    if count == 1 or len(tasks) <= 1:
        results = [run(task) for task in tasks]
    else:
        with ThreadPoolExecutor(max_workers=min(count, len(tasks))) as pool:
            results = list(pool.map(run, tasks))
    for batch in results:
        for k, entry in batch:
            out[k] = entry
    return [e for e in out if e is not None]


def tree_manifests(
    roots: Mapping[str, Path],
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, TreeManifest]:
    """Manifests of several trees (e.g. one per port), hashed on one shared thread pool.

    ``progress(done_bytes, total_bytes)`` is called as chunks are hashed, from worker threads.
    """
    scans = {name: scan_tree(path) for name, path in roots.items()}
    tagged = [(name, item) for name, (files, _) in scans.items() for item in files]
    counter = None
    if progress is not None:
        counter = _Counter(sum(item.size for _, item in tagged), progress)
        progress(0, counter.total)
    hashed = _hash_items([item for _, item in tagged], workers, counter)
    out: dict[str, list[FileEntry]] = {name: list(others) for name, (_, others) in scans.items()}
    for (name, _), entry in zip(tagged, hashed, strict=True):
        out[name].append(entry)
    return {name: TreeManifest.of(entries) for name, entries in out.items()}


def tree_manifest(
    root: Path,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TreeManifest:
    """The manifest of one folder tree."""
    return tree_manifests({"": root}, workers=workers, progress=progress)[""]
