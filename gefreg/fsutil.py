"""Writing files so that nobody ever reads half of one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: bytes | str, *, durable: bool = False) -> Path:
    """Write ``data`` to ``path`` through a unique temporary file in the same folder and a
    rename: readers see the old file or the new one, never a mix, and concurrent writers never
    share a temporary file. ``durable`` also fsyncs, for records that claim something happened.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, data: Any, *, indent: int | None = 2, durable: bool = False) -> Path:
    text = json.dumps(data, indent=indent) + ("\n" if indent is not None else "")
    return atomic_write(path, text, durable=durable)
