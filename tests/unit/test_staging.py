"""Staging, delivery, the disk watch and the log capture, without an engine."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gefreg.run.delivery import deliver, recover_staging
from gefreg.run.logs import LogCapture
from gefreg.run.ownership import Identity
from gefreg.run.staging import (
    FILESYSTEM,
    WATCHING,
    DiskWatch,
    Staging,
    create_staging,
    remove_staging,
)

ROOT = os.geteuid() == 0
WATCHED = Identity(1234, 1234, 1234, 1234)  # not root: a plain staging folder, watched


def outputs(tmp_path: Path, **files: str) -> dict[str, Path]:
    out = tmp_path / "out"
    out.mkdir()
    for name, text in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {"result": out}


def test_new_files_are_moved_in_and_nothing_is_left(tmp_path: Path) -> None:
    target = outputs(tmp_path, **{"old.txt": "mine", "sub/keep.txt": "mine too"})
    staging = create_staging(target, "urn:uuid:1234abcd", WATCHED, 2**20)
    assert staging.enforced_by == WATCHING
    folder = staging.folders["result"]
    assert folder.parent.name == ".gefreg-run-1234abcd" and not any(folder.iterdir())
    (folder / "new.txt").write_text("new")
    (folder / "sub").mkdir()
    (folder / "sub" / "also.txt").write_text("also")  # a folder both have: merged
    os.symlink("/etc/shadow", folder / "link")
    done = deliver(staging, overwrite=False)
    assert (done.moved, done.conflicts, done.kept, done.problems) == (3, (), (), ())
    out = target["result"]
    assert (out / "new.txt").read_text() == "new" and (out / "sub" / "also.txt").exists()
    assert os.readlink(out / "link") == "/etc/shadow"  # moved as a link, never followed
    assert (out / "old.txt").read_text() == "mine" and (out / "sub" / "keep.txt").exists()
    assert remove_staging(staging) == []
    assert sorted(p.name for p in out.iterdir()) == ["link", "new.txt", "old.txt", "sub"]


def test_a_conflict_moves_nothing_and_keeps_the_outputs(tmp_path: Path) -> None:
    target = outputs(tmp_path, **{"a.txt": "mine", "d/x": "mine"})
    staging = create_staging(target, "urn:uuid:00000001", WATCHED, 2**20)
    folder = staging.folders["result"]
    (folder / "a.txt").write_text("theirs")
    (folder / "d").write_text("a file where a folder is")
    (folder / "b.txt").write_text("new")
    done = deliver(staging, overwrite=False)
    assert sorted(done.conflicts) == ["result/a.txt", "result/d"] and done.moved == 3
    out = target["result"]
    assert (out / "a.txt").read_text() == "mine" and not (out / "b.txt").exists()
    [kept] = done.kept
    assert sorted(p.name for p in Path(kept).iterdir()) == ["a.txt", "b.txt", "d"]
    assert remove_staging(staging) == []


def test_overwrite_replaces_files_never_folders(tmp_path: Path) -> None:
    target = outputs(tmp_path, **{"a.txt": "mine", "d/x": "mine"})
    staging = create_staging(target, "urn:uuid:00000002", WATCHED, 2**20)
    folder = staging.folders["result"]
    (folder / "a.txt").write_text("theirs")
    done = deliver(staging, overwrite=True)
    assert done.replaced == ("result/a.txt",) and done.conflicts == ()
    assert (target["result"] / "a.txt").read_text() == "theirs"
    staging = create_staging(target, "urn:uuid:00000003", WATCHED, 2**20)
    (staging.folders["result"] / "d").write_text("a file")
    assert deliver(staging, overwrite=True).conflicts == ("result/d",)
    assert (target["result"] / "d" / "x").read_text() == "mine"


@pytest.mark.skipif(not ROOT, reason="a file system of its own needs root (mount)")
def test_the_kernel_keeps_the_limit_and_delivery_copies_any_depth(tmp_path: Path) -> None:
    target = outputs(tmp_path)
    me = Identity(0, 0, 10001, 10001)
    staging = create_staging(target, "urn:uuid:00000004", me, 4 * 2**20)
    try:
        _fill_and_deliver(staging, target["result"])
    finally:
        if staging.mountpoint is not None and staging.mountpoint.is_mount():
            subprocess.run(["umount", str(staging.mountpoint)], check=False)


def _fill_and_deliver(staging: Staging, out: Path) -> None:
    target = {"result": out}
    assert staging.enforced_by == FILESYSTEM and staging.mountpoint is not None
    assert staging.mountpoint.is_mount()
    folder = staging.folders["result"]
    assert folder.stat().st_uid == 10001
    deep = folder
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(25):  # deeper than PATH_MAX
        os.mkdir("d" * 200, dir_fd=fd)
        inner = os.open("d" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    with open(os.open("bottom", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd), "w") as fh:
        fh.write("deep")
    os.close(fd)
    os.mkfifo(folder / "fifo")
    os.symlink("loop", folder / "loop")
    with pytest.raises(OSError, match="No space left"), open(deep / "big", "wb") as fh:
        fh.write(b"x" * 8 * 2**20)
    assert staging.full()
    (deep / "big").unlink()
    done = deliver(staging, overwrite=False)
    assert done.problems == () and done.moved == 3
    assert remove_staging(staging, delivered=True) == []
    assert (
        not staging.mountpoint.exists() and not (target["result"] / ".gefreg-run-00000004").exists()
    )
    found = []
    for _, _, files, dir_fd in os.fwalk(target["result"]):
        found += [(n, stat.S_IMODE(os.stat(n, dir_fd=dir_fd, follow_symlinks=False).st_mode))
                  for n in files]  # fmt: skip
    assert ("bottom", 0o640) in found
    assert stat.S_ISFIFO(os.lstat(target["result"] / "fifo").st_mode)
    assert os.readlink(target["result"] / "loop") == "loop"


def test_a_copy_out_keeps_holes_and_links(tmp_path: Path) -> None:
    """Copied out of the run's file system, a sparse file stays sparse and one file's names stay
    links to one file: delivered outputs take no more room than the disk limit allowed."""
    target = outputs(tmp_path, **{"old.txt": "mine"})
    staging = create_staging(target, "urn:uuid:00000005", Identity(0, 0, 10001, 10001), 8 * 2**20)
    try:
        assert staging.enforced_by == FILESYSTEM
        folder = staging.folders["result"]
        with open(folder / "hole", "wb") as fh:  # 100 MiB long, 4 KiB of data in the middle
            fh.seek(50 * 2**20)
            fh.write(b"d" * 4096)
            fh.truncate(100 * 2**20)
        (folder / "a").write_bytes(os.urandom(2**20))
        (folder / "sub").mkdir()
        for name in ("sub/b", "sub/c", "z"):
            os.link(folder / "a", folder / name)
        done = deliver(staging, overwrite=False)
        assert done.problems == () and done.moved == 4
        assert remove_staging(staging, delivered=True) == []
    finally:
        if staging.mountpoint is not None and staging.mountpoint.is_mount():
            subprocess.run(["umount", str(staging.mountpoint)], check=False)
    out = target["result"]
    hole = (out / "hole").stat()
    assert hole.st_size == 100 * 2**20 and hole.st_blocks * 512 < 2**20
    with open(out / "hole", "rb") as fh:
        fh.seek(50 * 2**20 - 1)
        assert fh.read(4098) == b"\0" + b"d" * 4096 + b"\0"
    inodes = {(out / name).stat().st_ino for name in ("a", "sub/b", "sub/c", "z")}
    assert len(inodes) == 1 and (out / "a").stat().st_nlink == 4
    assert (out / "old.txt").read_text() == "mine"


def test_a_replacing_file_keeps_its_links(tmp_path: Path) -> None:
    target = outputs(tmp_path, **{"old.txt": "mine"})
    staging = create_staging(target, "urn:uuid:00000006", Identity(0, 0, 10001, 10001), 8 * 2**20)
    try:
        folder = staging.folders["result"]
        (folder / "old.txt").write_bytes(os.urandom(2**20))
        for name in ("a1", "z1", "z2"):
            os.link(folder / "old.txt", folder / name)
        done = deliver(staging, overwrite=True)
        assert done.problems == () and done.replaced == ("result/old.txt",)
        assert remove_staging(staging, delivered=True) == []
    finally:
        if staging.mountpoint is not None and staging.mountpoint.is_mount():
            subprocess.run(["umount", str(staging.mountpoint)], check=False)
    out = target["result"]
    assert len({(out / n).stat().st_ino for n in ("old.txt", "a1", "z1", "z2")}) == 1
    assert not [p for p in out.iterdir() if p.name.endswith(".gefreg-new")]


def test_the_disk_watch_stops_the_container(tmp_path: Path) -> None:
    staging = create_staging(outputs(tmp_path), "urn:uuid:00000005", WATCHED, 2**20)
    stopped = threading.Event()
    watch = DiskWatch(staging, stopped.set)
    watch.start()
    (staging.folders["result"] / "big").write_bytes(os.urandom(2 * 2**20))
    assert stopped.wait(5)
    watch.finish()
    assert watch.exceeded and staging.full()


class Stream:
    """A container's output: ``chunks``, then (unless ``endless``) its end."""

    def __init__(self, chunks: list[tuple[int, bytes]], endless: bool = False) -> None:
        self.chunks, self.endless, self.closed = chunks, endless, threading.Event()

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        yield from self.chunks
        while self.endless and not self.closed.is_set():
            time.sleep(0.01)

    def close(self) -> None:
        self.closed.set()


def test_logs_are_capped_and_counted(tmp_path: Path) -> None:
    lines: list[tuple[str, str]] = []
    capture = LogCapture(
        (tmp_path / "out.log", tmp_path / "err.log"), 10, lambda s, t: lines.append((s, t))
    )
    capture.start(Stream([(1, b"0123456\n89abcdef\n"), (2, b"oops\n"), (1, b"tail")]))
    capture.finish(5)
    out, err = capture.facts()
    assert (tmp_path / "out.log").read_bytes() == b"0123456\n89"
    assert (out.size, out.dropped, out.note) == (10, 11, "truncated: 11 bytes dropped")
    assert (err.size, err.dropped, err.note) == (5, 0, None)
    assert lines == [("stdout", "0123456"), ("stdout", "89abcdef"), ("stderr", "oops"),
                     ("stdout", "tail")]  # fmt: skip


def test_a_capture_never_outlasts_its_time(tmp_path: Path) -> None:
    capture = LogCapture((tmp_path / "o", tmp_path / "e"), 2**20)
    capture.start(Stream([(1, b"x")], endless=True))
    start = time.monotonic()
    capture.finish(0.2)
    assert time.monotonic() - start < 5
    assert capture.facts()[0].note == "the capture was stopped when the run's time was up"


def test_what_a_killed_run_left_is_recovered(tmp_path: Path) -> None:
    """gefreg killed while its service ran: the staging (mounted, as root) is still there."""
    target = outputs(tmp_path)
    me = Identity(0, 0, 10001, 10001) if ROOT else WATCHED
    staging = create_staging(target, "urn:uuid:0000dead", me, 4 * 2**20)
    (staging.folders["result"] / "half.txt").write_text("written before the kill")
    notes = recover_staging(target["result"])
    kept = target["result"] / "gefreg-run-0000dead"
    assert notes == [f"the outputs of an interrupted run are in {kept}"]
    assert (kept / "result" / "half.txt").read_text() == "written before the kill"
    assert sorted(p.name for p in target["result"].iterdir()) == ["gefreg-run-0000dead"]
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()
