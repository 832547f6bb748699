"""Versions of external programs, remembered per binary so that asking again costs a stat.

A scanner's version is part of every scan cache key, and starting a 170 MB Go binary just to
ask it takes about 0.06 s. The answer is kept in a small JSON file, keyed by the binary's
resolved path, size, modification time and inode: replacing or upgrading the binary changes
the key, and the program is asked again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from gefreg.tools import run_tool


def tool_version(
    binary: str, args: Sequence[str], parse: Callable[[bytes], str], memo: Path | None
) -> str:
    """``parse`` of the output of ``binary args``, remembered in ``memo`` (a JSON file)."""
    real = os.path.realpath(binary)
    try:
        st = os.stat(real)
        key = f"{real}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{' '.join(args)}"
    except OSError:
        key = None
    known: dict[str, str] = {}
    if memo is not None and key is not None:
        try:
            loaded = json.loads(memo.read_text())
        except (OSError, ValueError):
            loaded = {}
        known = loaded if isinstance(loaded, dict) else {}
        if key in known:
            return str(known[key])
    version = parse(run_tool([binary, *args]).stdout)
    if memo is not None and key is not None:
        known = {k: v for k, v in known.items() if not k.startswith(real + "|")}
        known[key] = version
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_name(f"{memo.name}.{os.getpid()}")
            tmp.write_text(json.dumps(known, indent=1))
            os.replace(tmp, memo)
        except OSError:
            pass  # remembering is an optimisation only
    return version
