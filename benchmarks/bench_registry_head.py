"""Resolve 1,000 tags to digests: RegistryClient.head_manifests vs a skopeo loop vs the floor.

The script starts its own registry (gefreg's embedded one, on a free port, in a temporary data
folder), pushes one small image and PUTs its manifest under 1,000 tags, then times:

  (a) RegistryClient.head_manifests over the 1,000 tags (a fresh client each run, so
      connection set-up is included);
  (b) a loop of `skopeo inspect --raw` (skopeo's cheapest lookup), measured on a sample and
      extrapolated — the output says so;
  (c) the floor: 1,000 HEADs over raw http.client keep-alive connections in as many threads.

Targets: (a) at least 20x faster than (b), and close to (c).

    .venv/bin/python benchmarks/bench_registry_head.py [--tags 1000] [--workers 16]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import best_of, raw_head_floor, report, skopeo_loop
from gefreg.registry import processes
from gefreg.registry import server as regserver
from gefreg.registry.client import RegistryClient
from gefreg.registry.media_types import OCI_MANIFEST
from tests.registry_fixtures import tiny_image

REPO = "bench/head"


def populate(address: str, tags: list[str], workers: int) -> str:
    image = tiny_image("benchmark")
    with RegistryClient(address, workers=workers) as client:
        for digest, data in image.blobs():
            client.push_blob(REPO, digest, data)
        with ThreadPoolExecutor(workers) as pool:
            put = lambda tag: client.put_manifest(REPO, tag, image.manifest, OCI_MANIFEST)  # noqa: E731
            digests = set(pool.map(put, tags))
        assert digests == {image.digest}
        assert len(client.list_tags(REPO)) == len(tags), "not every tag is listed"
    return image.digest


def ours(address: str, tags: list[str], workers: int, digest: str) -> None:
    with RegistryClient(address, workers=workers) as client:
        heads = client.head_manifests(REPO, tags)
    assert set(heads.values()) == {digest} and len(heads) == len(tags)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--skopeo-sample", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("skopeo") is None:
        sys.exit("skopeo is not installed: apt-get install skopeo")
    tags = [f"v{i:04d}" for i in range(args.tags)]

    with tempfile.TemporaryDirectory() as tmp:
        served = regserver.serve(processes.free_port(), Path(tmp) / "registry")
        address = served.status.address or ""
        try:
            start = time.perf_counter()
            digest = populate(address, tags, args.workers)
            setup = time.perf_counter() - start
            print(
                f"registry {address} (docker-registry, pid {served.status.pid}); one image "
                f"under {args.tags} tags, pushed in {setup:.2f} s"
            )

            ours(address, tags, args.workers, digest)  # warm the registry's caches once
            # Interleaved, so that load from other programs hits both alike.
            runs: dict[str, list[float]] = {"ours": [], "floor": []}
            for _ in range(args.runs):
                runs["ours"].append(best_of(1, lambda: ours(address, tags, args.workers, digest)))
                runs["floor"].append(
                    best_of(1, lambda: raw_head_floor(address, REPO, tags, args.workers, digest))
                )
            t_ours, t_floor = (statistics.median(runs[k]) for k in ("ours", "floor"))
            sample = tags[: args.skopeo_sample]
            t_sample = best_of(1, lambda: skopeo_loop(address, REPO, sample))
            t_skopeo = t_sample * len(tags) / len(sample)
        finally:
            regserver.stop(Path(tmp) / "registry")

    extrapolated = len(sample) < len(tags)
    skopeo_name = "skopeo inspect --raw loop" + (" (extrapolated)" if extrapolated else "")
    report(
        f"digests of {args.tags} tags, {args.workers} threads, median of {args.runs}",
        [
            ("RegistryClient.head_manifests", t_ours),
            ("floor: raw http.client keep-alive", t_floor),
            (skopeo_name, t_skopeo),
        ],
    )
    if extrapolated:
        print(
            f"  skopeo: {len(sample)} tags took {t_sample:.2f} s "
            f"({t_sample / len(sample) * 1000:.0f} ms each), times {len(tags) / len(sample):.0f}"
        )
    best_ours, best_floor = min(runs["ours"]), min(runs["floor"])
    print(f"  best of {args.runs}: ours {best_ours:.3f} s, floor {best_floor:.3f} s")
    speedup, overhead = t_skopeo / t_ours, t_ours / t_floor
    print(
        f"  per tag: ours {t_ours / len(tags) * 1e6:.0f} µs, floor "
        f"{t_floor / len(tags) * 1e6:.0f} µs"
    )
    print(
        f"  ours vs skopeo loop: {speedup:.0f}x faster (target >= 20x -> "
        f"{'met' if speedup >= 20 else 'MISSED'})"
    )
    print(f"  ours vs floor: {overhead:.2f}x the floor's time")


if __name__ == "__main__":
    main()
