"""What an image is made of, file by file: read from a `docker save` archive or stream.

Each layer becomes a table of entries (path, kind, size, mode, owner, time, sha256 of the
content, link target); the image's file system is the layers applied in order, whiteouts
included. Archives are read as a stream, so a 1 GB image is never held in memory or written
to disk to be listed.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from gefreg.errors import EnvironmentFailure

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FileEntry:
    path: str
    kind: str  # file | dir | symlink | hardlink | other
    size: int
    mode: int
    uid: int
    gid: int
    mtime: int
    sha256: str | None = None  # regular files
    link: str | None = None  # symlink or hard-link target

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": "/" + self.path,
            "kind": self.kind,
            "size": self.size,
            "mode": f"{self.mode:04o}",
            "owner": f"{self.uid}:{self.gid}",
            "mtime": self.mtime,
        }
        if self.sha256:
            data["sha256"] = self.sha256
        if self.link is not None:
            data["link"] = self.link
        return data


@dataclass(frozen=True)
class ImageListing:
    ref: str
    image_id: str
    config: dict[str, Any]
    diff_ids: tuple[str, ...]
    layers: tuple[tuple[FileEntry, ...], ...] = field(repr=False)

    def files(self) -> dict[str, FileEntry]:
        """The file system a container of this image starts with. A layer's whiteouts hide
        what the layers below it hold; the tree is filtered once per layer (by each path's
        ancestors), so an image of many whiteouts costs no more than one of many files."""
        tree: dict[str, FileEntry] = {}
        for layer in self.layers:
            gone: set[str] = set()
            opaque: set[str] = set()
            added = []
            for item in layer:
                folder, _, base = item.path.rpartition("/")
                if base == OPAQUE:
                    opaque.add(folder)
                elif base.startswith(WHITEOUT):
                    gone.add((folder + "/" if folder else "") + base[len(WHITEOUT) :])
                else:
                    added.append(item)
            if gone or opaque:
                tree = {p: e for p, e in tree.items() if not _hidden(p, gone, opaque)}
            for item in added:
                tree[item.path] = item
        return tree


def _hidden(path: str, gone: set[str], opaque: set[str]) -> bool:
    """Whether a whiteout (``gone``) or an opaque folder hides ``path`` of a lower layer."""
    if path in gone:
        return True
    parent = path
    while parent:
        parent = parent.rpartition("/")[0]
        if parent in gone or parent in opaque:
            return True
    return False


def clean_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def _kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    return "other"


def _digest(fh: IO[bytes] | None) -> str:
    sha = hashlib.sha256()
    if fh is not None:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def list_layer(layer: tarfile.TarFile) -> tuple[FileEntry, ...]:
    """Every entry of one layer tar (read in stream mode: each file's content is hashed as
    it passes)."""
    out = []
    for member in layer:
        path = clean_name(member.name)
        if not path:
            continue
        kind = _kind(member)
        out.append(
            FileEntry(
                path,
                kind,
                member.size if kind == "file" else 0,
                member.mode & 0o7777,
                member.uid,
                member.gid,
                int(member.mtime),
                _digest(layer.extractfile(member)) if kind == "file" else None,
                clean_name(member.linkname) if kind == "hardlink" else (member.linkname or None),
            )
        )
    return tuple(out)


class _ChunkReader:
    """A file-like view of an iterator of byte chunks (what the engine streams); each chunk
    is sliced, never appended to another, so reading costs no copies of the stream."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks: Iterator[bytes] = iter(chunks)
        self.chunk = b""
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        parts = []
        while size != 0:
            if self.pos >= len(self.chunk):
                nxt = next(self.chunks, None)
                if nxt is None:
                    break
                self.chunk, self.pos = nxt, 0
            left = len(self.chunk) - self.pos
            take = left if size < 0 else min(size, left)
            parts.append(self.chunk[self.pos : self.pos + take])
            self.pos += take
            if size > 0:
                size -= take
        return b"".join(parts)


def read_archive(source: Iterable[bytes] | IO[bytes], ref: str) -> ImageListing:
    """List a `docker save` archive given as a stream of chunks or an open file."""
    fileobj: Any = source if hasattr(source, "read") else _ChunkReader(source)
    layers: dict[str, tuple[FileEntry, ...]] = {}
    small: dict[str, bytes] = {}
    with tarfile.open(fileobj=fileobj, mode="r|", bufsize=CHUNK) as outer:
        for member in outer:
            fh = outer.extractfile(member)
            if fh is None:
                continue
            if member.name.endswith("/layer.tar") or member.name.endswith(".tar"):
                with tarfile.open(fileobj=fh, mode="r|", bufsize=CHUNK) as layer:
                    layers[member.name] = list_layer(layer)
            elif member.name.endswith(".json") and member.size < 64 * 1024 * 1024:
                small[member.name] = fh.read()
    try:
        entry = json.loads(small["manifest.json"])[0]
        config_bytes = small[entry["Config"]]
        config = json.loads(config_bytes)
        ordered = tuple(layers[path] for path in entry["Layers"])
        diff_ids = tuple(str(d) for d in config["rootfs"]["diff_ids"])
    except (KeyError, IndexError, ValueError, TypeError) as exc:  # any shape but the expected
        raise EnvironmentFailure(
            f"the export of {ref} is not a docker archive: {type(exc).__name__} {exc}"
        ) from None
    return ImageListing(
        ref, "sha256:" + hashlib.sha256(config_bytes).hexdigest(), config, diff_ids, ordered
    )
