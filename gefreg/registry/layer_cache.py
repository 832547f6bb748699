"""Which registry blob holds a layer: a local map from a layer's diff ID to its compressed
digest, size and the repository that has it, so a push mounts or skips what a registry holds."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from gefreg.fsutil import write_json


class LayerCache:
    """diff ID → (compressed digest, size, repository holding it), so an unchanged layer is
    neither compressed nor uploaded again: it is found in the target repository, or mounted
    from the one that has it (a base layer from REGISTRY/bases/NAME).

    Thread-safe: :func:`push_image` compresses layers in parallel and each thread records its
    layer as soon as it is uploaded."""

    @classmethod
    def of(cls, state_dir: Path) -> LayerCache:
        return cls(state_dir / "cache" / "layers.json")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self.data: dict[str, list[Any]] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def get(self, diff_id: str) -> tuple[str, int, str | None] | None:
        with self._lock:
            hit = self.data.get(diff_id)
        if not hit:
            return None
        return str(hit[0]), int(hit[1]), (str(hit[2]) if len(hit) > 2 else None)

    def put(self, diff_id: str, digest: str, size: int, repository: str) -> None:
        # One writer at a time: dumping a dict another thread is changing raises
        # RuntimeError, which aborted a publish with a traceback.
        with self._lock:
            self.data[diff_id] = [digest, size, repository]
            write_json(self.path, self.data, indent=None)
