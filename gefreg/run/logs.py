"""A run's stdout and stderr: captured while it runs, capped, and never extending it.

The container's log driver is ``none`` (the engine keeps no copy of its own); gefreg attaches to
the container's output before it starts (:meth:`gefreg.engine.Engine.attach_output`) and a
thread writes each stream into its own new file next to the record — the first ``limit`` bytes
(``resources.logs``, 10 MiB by default, ``--log-limit``); the rest is read, counted and dropped,
and the record says ``truncated: N bytes dropped``. Reading is what lets the service go on (the
engine holds a writer back while its reader lags), so a service printing without end is stopped
by its timeout, not by its logs: once the container has ended, the capture gets a short grace to
drain what the engine still holds, never more than what is left of the timeout plus that grace,
and is then cut off (said in the record).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gefreg.engine import OutputStream
from gefreg.errors import BadInput, EnvironmentFailure
from gefreg.hashing import sha256_file

DRAIN_S = 5.0  # after the container ended: time for the last buffered output to arrive


@dataclass(frozen=True)
class LogFacts:
    """One saved log stream: its file name (next to the record), sha256, size, the cap and what
    was dropped beyond it."""

    path: str
    sha256: str | None = None
    size: int | None = None
    limit: int | None = None
    dropped: int = 0
    cut: bool = False  # the capture was stopped before the stream ended

    @classmethod
    def of(
        cls, path: Path, limit: int | None = None, dropped: int = 0, cut: bool = False
    ) -> LogFacts:
        if not path.is_file():
            return cls(path.name, limit=limit, dropped=dropped, cut=cut)
        return cls(path.name, sha256_file(path), path.stat().st_size, limit, dropped, cut)

    @property
    def note(self) -> str | None:
        parts = []
        if self.dropped:
            parts.append(f"truncated: {self.dropped} bytes dropped")
        if self.cut:
            parts.append("the capture was stopped when the run's time was up")
        return "; ".join(parts) or None

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "limit": self.limit,
            "dropped": self.dropped,
            "note": self.note,
        }


def open_new(path: Path) -> BinaryIO:
    """A new log file, created exclusively: gefreg never overwrites a file."""
    try:
        return open(path, "xb")
    except FileExistsError:
        raise BadInput(f"{path} already exists", "gefreg never overwrites files") from None
    except OSError as exc:
        raise EnvironmentFailure(
            f"cannot write the log file {path}: {exc.strerror or exc}"
        ) from None


class LogCapture:
    """Writes a container's two output streams into ``files`` (stdout, stderr) on a thread,
    keeping ``limit`` bytes of each; ``on_line(stream, line)`` hears every line (``run
    --follow``)."""

    def __init__(
        self,
        files: tuple[Path, Path],
        limit: int,
        on_line: Callable[[str, str], None] | None = None,
    ) -> None:
        self.files = files
        self.limit = limit
        self.on_line = on_line
        for path in files:  # both checked before either is made
            if path.exists() or path.is_symlink():
                raise BadInput(f"{path} already exists", "gefreg never overwrites files")
        first = open_new(files[0])
        try:
            self.handles = (first, open_new(files[1]))
        except BaseException:
            first.close()
            files[0].unlink()  # made just now, by this capture, and empty
            raise
        self.kept = [0, 0]
        self.dropped = [0, 0]
        self.pending = [b"", b""]
        self.stream: OutputStream | None = None
        self.thread: threading.Thread | None = None
        self.cut = False
        self.failure: OSError | None = None

    def start(self, stream: OutputStream) -> None:
        self.stream = stream
        self.thread = threading.Thread(target=self._read, name="gefreg-logs", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.stream is not None
        try:
            for which, chunk in self.stream:
                self._keep(which - 1, chunk)
        except OSError as exc:  # the disk holding the logs: said when the run ends
            self.failure = exc
        finally:
            for i in (0, 1):
                if self.on_line and self.pending[i]:
                    self.on_line(
                        ("stdout", "stderr")[i], self.pending[i].decode("utf-8", "replace")
                    )
                self.handles[i].close()

    def _keep(self, i: int, chunk: bytes) -> None:
        room = max(0, self.limit - self.kept[i])
        if room:
            self.handles[i].write(chunk[:room])
            self.kept[i] += min(room, len(chunk))
        self.dropped[i] += max(0, len(chunk) - room)
        if self.on_line:
            lines = (self.pending[i] + chunk).split(b"\n")
            self.pending[i] = lines.pop()
            for line in lines:
                self.on_line(("stdout", "stderr")[i], line.decode("utf-8", "replace"))

    def finish(self, within: float) -> None:
        """Wait up to ``within`` seconds (at least a short drain) for the streams to end, then
        stop reading."""
        if self.thread is None:
            for handle in self.handles:
                handle.close()
            return
        self.thread.join(max(0.0, within))
        if self.thread.is_alive():
            self.cut = True
            self.stop()

    def stop(self) -> None:
        """End the capture now (Ctrl-C, an engine failure, the time is up)."""
        if self.stream is not None:
            self.stream.close()
        if self.thread is not None:
            self.thread.join(DRAIN_S)

    def facts(self) -> tuple[LogFacts, LogFacts]:
        return (
            LogFacts.of(self.files[0], self.limit, self.dropped[0], self.cut),
            LogFacts.of(self.files[1], self.limit, self.dropped[1], self.cut),
        )
