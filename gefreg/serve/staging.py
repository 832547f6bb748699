"""Inputs into a task's folder: one folder per input port of the task's releases, holding every
input at its place (hard links into the content cache), or — for a ``file://`` folder that
fills a port alone — that folder itself, mounted read-only as it is.

Every staged file is recorded (input index, URL, path in the container, size, sha256, and
whether the cache had it); a checksum from the caller (``#sha256=``/``#md5=``) or from a
B2SHARE record is checked, and so is a size a record gives. The bytes staged per task are
bounded (``resources.disk_gb``, else the server's ``--max-input``), and so is the time a task's
downloads may take together (``--staging-timeout``).

A local path was resolved when the task was admitted; a queued task may wait, and meanwhile
anyone who can write in a data root could turn a folder on that path into a link to ``/etc``.
So each local input must still resolve to itself, under a data root, right before it is
copied or mounted; otherwise the task fails and nothing of it is staged.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput, CheckFailed
from gefreg.serve import fetch, pids
from gefreg.serve.content_cache import CHUNK, Cached, ContentCache, place
from gefreg.serve.task_plan import InputPlan, TaskPlan
from gefreg.serve.urls import under_root


class Canceled(Exception):
    """The task was canceled while it was being prepared."""


@dataclass
class Staged:
    """The input folder of every port (container path → host folder) and what was staged."""

    folders: dict[str, Path]
    files: list[dict[str, Any]] = field(default_factory=list)
    bytes: int = 0


@dataclass
class Stager:
    cache: ContentCache
    resolvers: pids.Resolvers
    limit: int
    roots: tuple[Path, ...]
    stopped: Callable[[], bool] = lambda: False
    time_limit: float = 3600.0  # seconds all downloads of a task may take together
    started: float = field(default_factory=time.monotonic)

    def _going(self) -> bool:
        """True when the task was stopped; CheckFailed once downloads took their time (a web
        server sending a byte now and then would otherwise hold a worker for good)."""
        if time.monotonic() - self.started > self.time_limit:
            raise CheckFailed(
                f"inputs: downloading took longer than {self.time_limit:g} s, the server's "
                "limit (gefreg serve --staging-timeout)",
                "fetch from a faster source, or copy the data under a data root",
            )
        return self.stopped()

    def stage(self, plan: TaskPlan, folder: Path) -> Staged:
        staged = Staged(folders={})
        in_place = {i.port: i for i in plan.inputs if i.in_place}
        for number, port in enumerate(plan.input_ports):
            if port in in_place:
                staged.folders[port] = self._admitted(in_place[port])
                continue
            target = folder / "inputs" / str(number)
            target.mkdir(parents=True, exist_ok=True)
            os.chmod(target, 0o755)
            staged.folders[port] = target
        for item in plan.inputs:
            if self.stopped():
                raise Canceled(item.path)
            if not item.in_place:
                self._one(item, staged.folders[item.port], staged)
        for port, path in staged.folders.items():
            if port not in in_place:  # never change the permissions of the user's own data
                _open_up(path)
        return staged

    def _record(
        self, staged: Staged, item: InputPlan, rel: str, cached: Cached, url: str | None
    ) -> None:
        staged.bytes += 0 if cached.hit else cached.size
        staged.files.append(
            {
                "input": item.index,
                "url": url,
                "path": _join(item.port, rel),
                "size": cached.size,
                "sha256": f"sha256:{cached.sha256}",
                "cached": cached.hit,
            }
        )

    def _budget(self, staged: Staged) -> int:
        return max(0, self.limit - staged.bytes)

    def _one(self, item: InputPlan, port_folder: Path, staged: Staged) -> None:
        what = f"inputs[{item.index}] ({item.url or 'content'})"
        if item.kind == "content":
            data = item_content(item).encode()
            cached = self.cache.add([data], limit=self._budget(staged), what=what)
            self._put(cached, port_folder, item.rel)
            self._record(staged, item, item.rel, cached, None)
        elif item.kind == "file":
            self._local(item, self._admitted(item), port_folder, staged, what)
        else:
            files = pids.remote_files(item.kind, str(item.target), item.record, self.resolvers)
            self._remote(item, files, port_folder, staged, what)

    def _admitted(self, item: InputPlan) -> Path:
        """The local path admission resolved, if it still resolves to itself under a root."""
        path = Path(str(item.target))
        if under_root(path, self.roots) != path:
            raise CheckFailed(
                f"inputs[{item.index}] ({item.url}): {path} is no longer what was admitted "
                "(a link on its way now leads elsewhere, or it is gone); not staged"
            )
        return path

    def _put(self, cached: Cached, port_folder: Path, rel: str) -> None:
        place(cached.path, port_folder / rel if rel else port_folder)

    def _local(
        self, item: InputPlan, source: Path, port_folder: Path, staged: Staged, what: str
    ) -> None:
        if item.type == "FILE":
            cached = self.cache.add_file(source, limit=self._budget(staged), what=what)
            self._put(cached, port_folder, item.rel)
            self._record(staged, item, item.rel, cached, item.url)
            return
        for current, dirs, files in os.walk(source):
            here = Path(current)
            rel_dir = _join_rel(item.rel, str(here.relative_to(source)))
            (port_folder / rel_dir).mkdir(parents=True, exist_ok=True)
            for name in sorted(files) + sorted(d for d in dirs if (here / d).is_symlink()):
                if self.stopped():
                    raise Canceled(item.path)
                self._local_entry(
                    item, here / name, port_folder, _join_rel(rel_dir, name), staged, what
                )

    def _local_entry(
        self, item: InputPlan, path: Path, port_folder: Path, rel: str, staged: Staged, what: str
    ) -> None:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(path), port_folder / rel)  # kept as a link, never followed
            return
        if not stat.S_ISREG(mode):
            raise BadInput(f"{what}: {path} is not a regular file, folder or link")
        cached = self.cache.add_file(path, limit=self._budget(staged), what=f"{what}: {path.name}")
        self._put(cached, port_folder, rel)
        self._record(staged, item, rel, cached, path.as_uri())

    def _remote(
        self,
        item: InputPlan,
        files: list[pids.RemoteFile],
        port_folder: Path,
        staged: Staged,
        what: str,
    ) -> None:
        if item.type == "FILE" and len(files) != 1:
            names = ", ".join(f.name for f in files[:20])
            raise BadInput(
                f"{what}: {len(files)} files ({names}); a FILE input takes one",
                "give type DIRECTORY",
            )
        for remote in files:
            checksum = item.checksum if item.type == "FILE" and item.checksum else remote.checksum
            rel = item.rel if item.type == "FILE" else _join_rel(item.rel, remote.name)
            cached = self.cache.find(checksum, remote.size)
            if cached is None:
                cached = self._download(remote, checksum, staged, f"{what}: {remote.url}")
            self._put(cached, port_folder, rel)
            self._record(staged, item, rel, cached, remote.url)

    def _download(
        self, remote: pids.RemoteFile, checksum: str | None, staged: Staged, what: str
    ) -> Cached:
        with fetch.get(remote.url, self.resolvers.policy) as resp:
            try:
                return self.cache.add(
                    fetch.body(resp, CHUNK),
                    expect=checksum,
                    expect_size=remote.size,
                    limit=self._budget(staged),
                    what=what,
                    stopped=self._going,
                )
            except InterruptedError:
                raise Canceled(what) from None


def item_content(item: InputPlan) -> str:
    """The literal content of a ``content`` input (kept in the plan's ``target``)."""
    return item.target or ""


def _join(port: str, rel: str) -> str:
    return port if not rel else f"{port.rstrip('/')}/{rel}"


def _join_rel(rel: str, name: str) -> str:
    if name in ("", "."):
        return rel
    return f"{rel}/{name}" if rel else name


def _open_up(folder: Path) -> None:
    """Staged folders readable by the service's user (files are 0444 in the cache)."""
    for current, dirs, _ in os.walk(folder):
        for d in dirs:
            path = Path(current) / d
            if not path.is_symlink():
                os.chmod(path, 0o755)


__all__ = ["Canceled", "CheckFailed", "Staged", "Stager"]
