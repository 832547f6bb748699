"""Versions of external programs, remembered per binary so that asking again costs a stat.

A scanner's version is part of every scan cache key, and starting a 170 MB Go binary just to
ask it takes about 0.06 s. The answer is kept in a small JSON file, keyed by the binary's
resolved path, size, modification time and inode: replacing or upgrading the binary changes
the key, and the program is asked again.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from gefreg.fsutil import write_json
from gefreg.subprocesses import run_tool


class ToolVersions:
    """The versions remembered in ``memo`` (a JSON file; None remembers nothing)."""

    def __init__(self, memo: Path | None) -> None:
        self.memo = memo

    @staticmethod
    def _key(binary: str, args: Sequence[str]) -> str | None:
        real = os.path.realpath(binary)
        try:
            st = os.stat(real)
        except OSError:
            return None
        return f"{real}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{' '.join(args)}"

    def _load(self) -> dict[str, str]:
        if self.memo is None:
            return {}
        try:
            loaded = json.loads(self.memo.read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def known(self, binary: str, args: Sequence[str]) -> str | None:
        key = self._key(binary, args)
        value = self._load().get(key) if key else None
        return str(value) if value is not None else None

    def remember(self, binary: str, args: Sequence[str], version: str) -> None:
        key = self._key(binary, args)
        if self.memo is None or key is None:
            return
        real = key.split("|", 1)[0]
        known = {k: v for k, v in self._load().items() if not k.startswith(real + "|")}
        known[key] = version
        with contextlib.suppress(OSError):  # remembering is an optimisation only
            write_json(self.memo, known, indent=1)

    def get(self, binary: str, args: Sequence[str], parse: Callable[[bytes], str]) -> str:
        """The remembered version, else ``parse`` of the output of ``binary args``."""
        version = self.known(binary, args)
        if version is None:
            version = parse(run_tool([binary, *args]).stdout)
            self.remember(binary, args, version)
        return version


def tool_version(
    binary: str, args: Sequence[str], parse: Callable[[bytes], str], memo: Path | None
) -> str:
    """``parse`` of the output of ``binary args``, remembered in ``memo``."""
    return ToolVersions(memo).get(binary, args, parse)
