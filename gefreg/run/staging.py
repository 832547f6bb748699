"""Where a run's outputs are written: fresh folders gefreg owns, never the user's folders.

The service never sees the user's output folders (so with ``--force`` it cannot change, rename
or delete what is already there). Each output port is mounted from a new, empty folder owned by
the service's user, in gefreg's working folder ``.gefreg-run-<id8>`` inside the output folder:

* **the disk limit enforced by the kernel** (the caller is root and ``mkfs.ext4``/``mount``
  work here): the port folders are on an ext4 file system in a sparse image of the limit's size,
  made for the run, mounted ``nosuid,nodev``; a service writing more gets ENOSPC (``No space left
  on device``). The image, its mount and the working folder are removed afterwards;
* **watched** otherwise: the port folders are plain folders on the output folder's own file
  system, and :class:`DiskWatch` stops the container once they hold more than the limit.

Either way ``ulimit fsize`` is the limit too, so no single file grows past it, and the files'
sizes may not add up to more than it either (:meth:`Staging.sizes`: sparse files take no room,
but gefreg reads every byte of them to hash them — 10 GB of holes took 44 s — so a service
could have made the hashing after its end last for days). After the
container is gone the outputs are handed back, hashed and delivered (:mod:`gefreg.run.delivery`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gefreg.errors import GefregError
from gefreg.run.ownership import Identity
from gefreg.run.tree_walk import open_root, walk
from gefreg.subprocesses import run_tool

FILESYSTEM = "filesystem"
WATCHING = "watching"
WATCH_EVERY_S = 0.25


@dataclass
class Staging:
    """The folders one run's service writes into, and how its disk limit is kept."""

    work: dict[str, Path]  # port -> gefreg's working folder in that port's output folder
    folders: dict[str, Path]  # port -> the folder mounted into the container
    targets: dict[str, Path]  # port -> the user's output folder
    limit: int
    enforced_by: str
    image: Path | None = None
    mountpoint: Path | None = None
    baseline: int = 0  # bytes the empty file system already uses (its own metadata)
    notes: list[str] = field(default_factory=list)

    def used(self) -> int:
        """Bytes the outputs take on disk now (allocated blocks)."""
        if self.mountpoint is not None:
            st = os.statvfs(self.mountpoint)
            return (st.f_blocks - st.f_bfree) * st.f_frsize - self.baseline
        return sum(allocated(folder) for folder in self.folders.values())

    def sizes(self) -> int:
        """What the outputs' files add up to by size (a file with several names once): holes
        count, as gefreg reads every byte of them to hash them."""
        return sum(file_sizes(folder) for folder in self.folders.values())

    def full(self) -> bool:
        """Whether the outputs reached the limit: they take as much as it allows (a file cut
        at ``ulimit fsize`` included), or their file system ran out of space or inodes."""
        if self.mountpoint is not None:
            st = os.statvfs(self.mountpoint)
            if st.f_bavail * st.f_frsize < 64 * 1024 or st.f_favail == 0:
                return True
        return self.used() >= self.limit


def allocated(folder: Path) -> int:
    """The blocks the entries under ``folder`` take, in bytes (by descriptor: any depth)."""
    try:
        fd = open_root(folder)
    except OSError:
        return 0
    try:
        return sum(found.stat.st_blocks * 512 for found in walk(fd, []))
    finally:
        os.close(fd)


def file_sizes(folder: Path) -> int:
    """The sizes of the regular files under ``folder`` added up, each file once."""
    try:
        fd = open_root(folder)
    except OSError:
        return 0
    try:
        seen = {(f.stat.st_dev, f.stat.st_ino): f.stat.st_size for f in walk(fd, [])
                if stat.S_ISREG(f.stat.st_mode)}  # fmt: skip
        return sum(seen.values())
    finally:
        os.close(fd)


def work_name(run_id: str) -> str:
    return ".gefreg-run-" + run_id.rsplit(":", 1)[-1][:8]


def create_staging(
    outputs: Mapping[str, Path],
    run_id: str,
    identity: Identity,
    limit: int,
) -> Staging:
    """New, empty port folders for one run (see the module docstring); the kernel keeps the
    limit when it can."""
    work = {port: path / work_name(run_id) for port, path in outputs.items()}
    for folder in work.values():
        folder.mkdir(mode=0o700)
    staging = Staging(work, {}, dict(outputs), limit, WATCHING)
    try:
        if identity.uid == 0 and outputs and _mount_image(staging, next(iter(work.values()))):
            staging.enforced_by = FILESYSTEM
            assert staging.mountpoint is not None
            staging.folders = {port: staging.mountpoint / port for port in outputs}
        else:
            staging.folders = {port: work[port] / port for port in outputs}
        for folder in staging.folders.values():
            folder.mkdir(mode=0o700)
            os.chown(folder, identity.run_uid, identity.run_gid)
    except BaseException:
        remove_staging(staging)
        raise
    return staging


def _mount_image(staging: Staging, work: Path) -> bool:
    """An ext4 file system with room for the limit in a sparse image, mounted at
    ``work/mnt``; False (and nothing left) when this machine cannot."""
    image, mountpoint = work / "disk.img", work / "mnt"
    size = staging.limit + staging.limit // 14 + 1024**2  # ext4's own metadata: ~3 % over
    room = os.statvfs(work)
    if room.f_bavail * room.f_frsize < size:  # a sparse image must not outgrow its disk
        staging.notes.append("the disk limit is watched: less free space than the limit")
        return False
    try:
        with open(image, "xb") as fh:
            fh.truncate(size)
        run_tool(["mkfs.ext4", "-q", "-F", "-m", "0", "-i", "8192", "-O", "^has_journal",
                  "-E", "lazy_itable_init=1,nodiscard", str(image)], timeout=60)  # fmt: skip
        mountpoint.mkdir(mode=0o755)
        run_tool(["mount", "-o", "loop,nosuid,nodev", str(image), str(mountpoint)], timeout=60)
    except (GefregError, OSError) as exc:
        staging.notes.append(f"the disk limit is watched: no file system of its own ({exc})")
        with contextlib.suppress(OSError):
            mountpoint.rmdir()
        image.unlink(missing_ok=True)
        return False
    staging.image, staging.mountpoint = image, mountpoint
    os.chmod(mountpoint, 0o755)
    st = os.statvfs(mountpoint)
    staging.baseline = (st.f_blocks - st.f_bfree) * st.f_frsize
    return True


def remove_staging(staging: Staging, delivered: bool = False) -> list[str]:
    """Unmount and remove what gefreg made for the run — only while it holds no outputs, or
    once they were all ``delivered`` (copied out): what is still there is kept, and said (the
    returned sentences)."""
    problems: list[str] = []
    if staging.mountpoint is not None:
        if staging.mountpoint.is_mount():
            left = (
                [f for f in staging.folders.values() if f.is_dir() and any(f.iterdir())]
                if not delivered
                else []
            )
            if left:
                return [f"undelivered outputs stay in {left[0]} ({staging.image} mounted there)"]
            try:
                run_tool(["umount", str(staging.mountpoint)], timeout=120)
            except GefregError as exc:
                return [f"{staging.mountpoint} could not be unmounted: {exc.message}"]
        if staging.image is not None:
            staging.image.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            staging.mountpoint.rmdir()
    else:
        for folder in staging.folders.values():
            try:
                _prune_empty(folder)
                folder.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                problems.append(f"undelivered outputs stay in {folder}")
    for work in staging.work.values():
        with contextlib.suppress(OSError):
            work.rmdir()
    return problems


def _prune_empty(folder: Path) -> None:
    """Remove the empty folders under ``folder`` that a merge left (gefreg's own staging)."""
    for _, dirs, _files, fd in os.fwalk(folder, topdown=False):
        for name in dirs:
            with contextlib.suppress(OSError):  # not empty: an undelivered entry, kept
                os.rmdir(name, dir_fd=fd)


class DiskWatch:
    """Sums what the port folders hold while the container runs, and calls ``stop`` once it is
    more than the limit (for staging the kernel does not limit)."""

    def __init__(self, staging: Staging, stop: Callable[[], None]) -> None:
        self.staging = staging
        self.stop_container = stop
        self.exceeded = False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="gefreg-disk", daemon=True)

    def start(self) -> None:
        if self.staging.enforced_by == WATCHING:
            self.thread.start()

    def _watch(self) -> None:
        pause = WATCH_EVERY_S
        while not self.done.wait(pause):
            start = time.monotonic()
            used = self.staging.used()
            pause = max(WATCH_EVERY_S, 4 * (time.monotonic() - start))  # never more than 1/5
            if used > self.staging.limit:
                self.exceeded = True
                with contextlib.suppress(Exception):
                    self.stop_container()
                return

    def finish(self) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join()
