"""The layer cache of gefreg.release.image_push: layers are compressed and recorded in parallel."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from gefreg.registry.layer_cache import LayerCache


def test_layer_cache_survives_parallel_writers(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path / "cache" / "layers.json")
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def record(worker: int) -> None:
        start.wait()
        try:
            for n in range(50):
                cache.put(f"sha256:{worker:02d}{n:062d}", "sha256:" + "0" * 64, n, "repo")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(json.loads((tmp_path / "cache" / "layers.json").read_text())) == 200
    again = LayerCache(tmp_path / "cache" / "layers.json")
    assert again.get(f"sha256:03{49:062d}") == ("sha256:" + "0" * 64, 49, "repo")
    assert not list((tmp_path / "cache").glob("*.tmp*"))
