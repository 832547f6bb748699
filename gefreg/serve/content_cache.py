"""Staged input files, kept once by content: ``sha256/<hex>``, read-only, with an
``md5/<hex>`` symbolic link to it (B2SHARE records give MD5 sums). A task's input folder holds
hard links to them, so a file staged twice is stored once, and a download whose checksum is
known in advance (given by the caller or a B2SHARE record) is skipped when the cache has it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from gefreg.errors import BadInput, CheckFailed, EnvironmentFailure

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Cached:
    path: Path
    sha256: str
    md5: str
    size: int
    hit: bool


class SizeLimit(CheckFailed):
    """More data than the task may stage."""


def _hexes(checksum: str) -> tuple[str, str]:
    algo, _, hexd = checksum.partition(":")
    return algo, hexd


class ContentCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("sha256", "md5", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(root / sub, 0o755)
        os.chmod(root, 0o755)

    def find(self, checksum: str | None, size: int | None = None) -> Cached | None:
        """The cached file with that ``algo:hex`` checksum (and size, when given)."""
        if not checksum:
            return None
        algo, hexd = _hexes(checksum)
        md5 = hexd if algo == "md5" else ""
        if algo == "md5":
            try:
                hexd = os.readlink(self.root / "md5" / hexd).rsplit("/", 1)[-1]
            except OSError:
                return None
        path = self.root / "sha256" / hexd
        try:
            st = path.lstat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or (size is not None and st.st_size != size):
            return None
        return Cached(path, hexd, md5, st.st_size, True)

    def add(
        self,
        chunks: Iterable[bytes],
        *,
        expect: str | None = None,
        expect_size: int | None = None,
        limit: int,
        what: str,
        stopped: Callable[[], bool] = lambda: False,
    ) -> Cached:
        """Store a stream; checks ``expect`` (``algo:hex``) and ``expect_size``, and stops at
        ``limit`` bytes (SizeLimit). A mismatch is CheckFailed naming both values."""
        sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    if stopped():
                        raise InterruptedError(what)
                    size += len(chunk)
                    if size > limit:
                        raise SizeLimit(f"{what}: more than {limit} bytes, the task's input limit")
                    sha.update(chunk)
                    md5.update(chunk)
                    fh.write(chunk)
            got = {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}
            _check(what, expect, expect_size, got, size)
            os.chmod(tmp, 0o444)
            target = self.root / "sha256" / got["sha256"]
            with contextlib.suppress(FileExistsError):
                os.link(tmp, target)
            with contextlib.suppress(FileExistsError):
                os.symlink(f"../sha256/{got['sha256']}", self.root / "md5" / got["md5"])
        except InterruptedError:
            raise  # stopped: not a failure to store
        except OSError as exc:
            raise EnvironmentFailure(f"{what}: cannot store it: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return Cached(target, got["sha256"], got["md5"], size, False)

    def add_file(self, path: Path, *, limit: int, what: str) -> Cached:
        """Store a local regular file (never following a symlink to it)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise BadInput(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise BadInput(f"{what}: {path} is not a regular file")
            return self.add(iter(lambda: fh.read(CHUNK), b""), limit=limit, what=what)


def _check(
    what: str, expect: str | None, size_expected: int | None, got: dict[str, str], size: int
) -> None:
    if size_expected is not None and size != size_expected:
        raise CheckFailed(f"{what}: size mismatch: expected {size_expected} bytes, got {size}")
    if expect:
        algo, hexd = _hexes(expect)
        if got[algo] != hexd:
            raise CheckFailed(
                f"{what}: checksum mismatch: expected {algo}:{hexd}, got {algo}:{got[algo]}"
            )


def place(cached: Path, dest: Path) -> None:
    """Put a cached file at ``dest`` (a hard link; a copy across file systems). ``dest`` must
    not exist."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(cached, dest)
    except FileExistsError:
        raise BadInput(f"two inputs want the same path {dest.name}") from None
    except OSError:
        shutil.copyfile(cached, dest)
        os.chmod(dest, 0o444)
