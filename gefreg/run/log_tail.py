"""The last lines of a log a service wrote, safe to show: why a run failed, at a glance.

The file is the container's (hostile, perhaps huge): only its end is read, and control
characters (terminal escape sequences, carriage returns) are shown as ``\\xNN``, so nothing a
service prints can rewrite the user's terminal.
"""

from __future__ import annotations

import os
from pathlib import Path

TAIL_LINES = 20
TAIL_BYTES = 64 * 1024
MAX_LINE = 300


def visible(text: str) -> str:
    """``text`` with every control character but tab (C0, DEL and the C1 range a terminal
    may obey too, such as U+009B, the one-character CSI) written as ``\\xNN``."""
    return "".join(
        c if c == "\t" or (32 <= ord(c) < 127 or ord(c) > 159) else f"\\x{ord(c):02x}" for c in text
    )


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of ``path`` (from its last 64 KiB at most), each cut at 300
    characters and made visible; [] when there is no such file."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - TAIL_BYTES))
            data = fh.read(TAIL_BYTES)
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    found = text.split("\n")  # not splitlines(): a \r or \x1c is shown, not obeyed
    if found and found[-1] == "":
        found.pop()
    if size > TAIL_BYTES and found:
        found = found[1:]  # the first line read is most likely cut
    out = []
    for line in found[-lines:]:
        shown = visible(line)
        out.append(shown if len(shown) <= MAX_LINE else shown[: MAX_LINE - 1] + "…")
    return out
