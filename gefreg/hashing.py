"""File hashing: streamed, cached by (size, mtime, inode) like git's index, parallel for many files.

Hashing is a hot path (build contexts of hundreds of MB, input archives of GBs), so files are
read in chunks, never whole, and unchanged files are not rehashed when a cache is given.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gefreg.fsutil import write_json

CHUNK = 1024 * 1024


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """sha256 of a regular file's content as 'sha256:<hex>' (see :func:`sha256_regular`)."""
    return sha256_regular(path, progress)[0]


class NotARegularFile(OSError):
    """The path is a symlink, FIFO, device or folder: refused instead of followed or blocked on."""


_buffers = threading.local()


def _buffer() -> bytearray:
    """A read buffer per thread, reused: allocating 1 MiB per file costs more than hashing a
    small file."""
    buf: bytearray | None = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = bytearray(CHUNK)
    return buf


def sha256_regular(
    path: Path | str,
    progress: Callable[[int], None] | None = None,
    *,
    dir_fd: int | None = None,
) -> tuple[str, int]:
    """sha256 and byte count of a regular file, never following a symlink or opening a FIFO.

    Opened with O_NOFOLLOW|O_NONBLOCK and checked with fstat, so a file swapped for a link or a
    pipe between listing and reading raises :class:`NotARegularFile` instead of hashing
    something else or hanging. The size is what was read, so digest and size always agree.
    With ``dir_fd``, ``path`` is a name in that folder (no path length limit applies).
    Reads go into a per-thread buffer through the raw descriptor: for many small files the
    Python overhead per file, not the hashing, is what costs.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the last component is a symlink
            raise NotARegularFile(exc.errno, "is a symlink", str(path)) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(0, "not a regular file", str(path))
        digest = hashlib.sha256()
        buf = _buffer()
        view = memoryview(buf)
        total = 0
        while n := os.readv(fd, (buf,)):
            digest.update(view[:n])
            total += n
            if progress:
                progress(n)
    finally:
        os.close(fd)
    return "sha256:" + digest.hexdigest(), total


class HashCache:
    """Remembers file hashes keyed on path, size, mtime and inode; saved as JSON.

    A file whose stat key is unchanged is trusted; any change (even touching it) rehashes.
    Entries are only written after hashing completed, so an interrupted run caches nothing false.
    """

    VERSION = 2

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, list[object]] = {}
        self._dirty = False
        if path is not None:
            try:
                data = json.loads(path.read_text())
                if data.get("version") == self.VERSION:
                    self._entries = data["entries"]
            except (OSError, ValueError, KeyError, TypeError):
                self._entries = {}

    @staticmethod
    def _key(st: os.stat_result) -> list[object]:
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]

    def hash(self, path: Path, progress: Callable[[int], None] | None = None) -> str:
        name = str(path.resolve())
        st = path.stat()
        key = self._key(st)
        with self._lock:
            hit = self._entries.get(name)
        if hit is not None and hit[:-1] == key:
            if progress:
                progress(st.st_size)
            return str(hit[-1])
        digest = sha256_file(path, progress)
        # Only trust the result if the file did not change while we read it.
        if self._key(path.stat()) == key:
            with self._lock:
                self._entries[name] = [*key, digest]
                self._dirty = True
        return digest

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        with self._lock:
            write_json(self.path, {"version": self.VERSION, "entries": self._entries}, indent=None)
        self._dirty = False


def hash_files(
    paths: Iterable[Path],
    *,
    cache: HashCache | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Hash many files in parallel threads; returns digests in the order given."""
    items = list(paths)
    if not items:
        return []
    hasher = cache.hash if cache is not None else sha256_file
    workers = workers or min(len(items), max(2, (os.cpu_count() or 2)))
    if workers == 1 or len(items) == 1:
        return [hasher(p, progress) for p in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: hasher(p, progress), items))
