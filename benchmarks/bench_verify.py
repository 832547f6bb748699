"""`gefreg verify` over a ledger of 1,000 releases vs a skopeo loop vs the physical floor.

The script starts its own registry (gefreg's embedded one, on a free port, in a temporary data
folder), pushes one small image, PUTs its manifest under 1,000 SemVer tags (0.0.0 … 9.9.9,
in parallel) plus the 111 floating tags (0, 0.0, …, latest) those releases imply, and writes
a 1,000-line ledger directly with ``ledger.Release`` into a one-entry catalog. Then it times:

  (a) shallow verify (every ledger tag, floating tag and version-looking tag checked):
      `gefreg verify --shallow` as a user runs it (a subprocess: interpreter start and imports
      included) and the library call ``verify([entry], client, deep=False)`` (fresh client);
  (b) a loop of `skopeo inspect --raw` over the same tags (skopeo's cheapest lookup), measured
      on a sample and extrapolated — the output says so;
  (c) the request/response floor: 1,000 HEADs over raw http.client keep-alive connections in
      as many threads. verify pipelines its HEADs to a plain-HTTP registry
      (gefreg.registry.pipelining), so it can come in under this; the registry's own CPU per
      HEAD is then what is left;
  (d) deep verify (also every blob of every manifest reachable), CLI and library.

Targets: verify at least 20x faster than (b), and close to (c).

    .venv/bin/python benchmarks/bench_verify.py [--releases 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import VENV_BIN, best_of, raw_head_floor, report, skopeo_loop
from gefreg.catalog.entries import load_entry
from gefreg.registry import processes
from gefreg.registry import server as regserver
from gefreg.registry.client import RegistryClient
from gefreg.registry.media_types import OCI_MANIFEST
from gefreg.release import ledger, versions
from gefreg.release.verify import verify
from tests.helpers import demo_entry, make_catalog
from tests.registry_fixtures import tiny_image

NAME = "bench-verify"


def release_versions(n: int) -> list[str]:
    """n distinct versions spread over majors and minor lines: 0.0.0, 0.0.1, … 9.9.9, 10.0.0 …"""
    return [f"{i // 100}.{(i // 10) % 10}.{i % 10}" for i in range(n)]


def make_entry(root: Path, name: str = NAME) -> Path:
    """A catalog with one entry (never built: verify reads only the record and the ledger)."""
    tree = demo_entry(
        name=name,
        base="scratch",
        template="static",
        files={"run.sh": "/opt/run.sh"},
        command=["/bin/sh", "/opt/run.sh"],
    )
    return make_catalog(root / "catalog", tree)


def populate(address: str, catalog: Path, tags: list[str], floating: list[str]) -> str:
    """One image under every tag (in parallel), and a ledger line per version."""
    image = tiny_image("verify benchmark")
    with RegistryClient(address, workers=16) as client:
        for digest, data in image.blobs():
            client.push_blob(NAME, digest, data)
        with ThreadPoolExecutor(16) as pool:
            put = lambda tag: client.put_manifest(NAME, tag, image.manifest, OCI_MANIFEST)  # noqa: E731
            assert set(pool.map(put, tags + floating)) == {image.digest}
        assert len(client.list_tags(NAME)) == len(tags) + len(floating), "tags missing"
    lines = [
        ledger.Release(
            version=version,
            digest=image.digest,
            repository=f"{address}/{NAME}",
            fingerprint="sha256:" + f"{i:064x}",
            base_digest=None,
            image_id=image.config_digest,
            published="2025-01-01T00:00:00Z",
            scan={"passed": True},
            gefreg_version="bench",
        ).to_line()
        for i, version in enumerate(tags)
    ]
    (catalog / NAME / ledger.LEDGER_FILE).write_text("".join(lines))
    return image.digest


def cli_verify(catalog: Path, address: str, *extra: str) -> None:
    done = subprocess.run(
        [
            str(VENV_BIN / "gefreg"),
            "verify",
            "--catalog",
            str(catalog),
            "--registry",
            address,
            *extra,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "GEFREG_STATE": str(catalog.parent / "state")},
    )
    if done.returncode != 0:
        raise SystemExit(f"gefreg verify failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def lib_verify(catalog: Path, address: str, deep: bool, expect: int) -> None:
    entry = load_entry(catalog / NAME, set())
    with RegistryClient(address) as client:
        result = verify([entry], client, registry=address, deep=deep)
    assert result.ok and result.checked_tags == expect, result.to_json()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=16, help="threads of the floor")
    parser.add_argument("--skopeo-sample", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("skopeo") is None:
        sys.exit("skopeo is not installed: apt-get install skopeo")
    tags = release_versions(args.releases)
    floating = sorted(versions.floating_targets(tags, versions.FLOATING))
    checked = len(tags) + len(floating)

    with tempfile.TemporaryDirectory() as tmp:
        served = regserver.serve(processes.free_port(), Path(tmp) / "registry")
        address = served.status.address or ""
        try:
            catalog = make_entry(Path(tmp))
            empty = make_entry(Path(tmp) / "unpublished", "bench-unpublished")  # no releases
            start = time.perf_counter()
            digest = populate(address, catalog, tags, floating)
            print(
                f"registry {address} (docker-registry, pid {served.status.pid}); one image under "
                f"{len(tags)} version tags + {len(floating)} floating tags and a "
                f"{len(tags)}-line ledger, set up in {time.perf_counter() - start:.2f} s"
            )
            lib_verify(catalog, address, False, checked)  # warm the registry's caches once
            everything = tags + floating  # what verify HEADs
            runs: dict[str, list[float]] = {k: [] for k in ("cli", "lib", "floor", "floor_all")}
            for _ in range(args.runs):  # interleaved, so other load hits all alike
                runs["cli"].append(best_of(1, lambda: cli_verify(catalog, address, "--shallow")))
                runs["lib"].append(best_of(1, lambda: lib_verify(catalog, address, False, checked)))
                runs["floor"].append(
                    best_of(1, lambda: raw_head_floor(address, NAME, tags, args.workers, digest))
                )
                runs["floor_all"].append(
                    best_of(
                        1, lambda: raw_head_floor(address, NAME, everything, args.workers, digest)
                    )
                )
            deep_cli = best_of(args.runs, lambda: cli_verify(catalog, address))
            deep_lib = best_of(args.runs, lambda: lib_verify(catalog, address, True, checked))
            startup = best_of(args.runs, lambda: cli_verify(empty, address, "--shallow"))
            step = max(1, len(everything) // args.skopeo_sample)
            sample = everything[::step][: args.skopeo_sample]
            t_sample = best_of(1, lambda: skopeo_loop(address, NAME, sample))
        finally:
            regserver.stop(Path(tmp) / "registry")

    t_cli, t_lib, t_floor, t_floor_all = (
        statistics.median(runs[k]) for k in ("cli", "lib", "floor", "floor_all")
    )
    per_tag = t_sample / len(sample)
    t_skopeo = per_tag * checked  # the same tags verify checks
    extrapolated = len(sample) < checked
    report(
        f"verify a {len(tags)}-release ledger ({checked} tags), median of {args.runs}",
        [
            ("gefreg verify --shallow (CLI process)", t_cli),
            ("verify(deep=False) (library)", t_lib),
            ("gefreg verify, deep (CLI process)", deep_cli),
            ("verify(deep=True) (library)", deep_lib),
            ("gefreg verify, an entry with no releases (start-up only)", startup),
            (f"floor: {len(tags)} raw http.client HEADs", t_floor),
            (f"floor: {checked} raw HEADs (the tags verify checks)", t_floor_all),
            (
                f"skopeo inspect --raw loop, {checked} tags"
                + (" (extrapolated)" if extrapolated else ""),
                t_skopeo,
            ),
        ],
    )
    if extrapolated:
        print(
            f"  skopeo: a sample of {len(sample)} tags took {t_sample:.2f} s "
            f"({per_tag * 1000:.1f} ms each), times {checked / len(sample):.1f}; "
            f"{per_tag * len(tags):.2f} s for the {len(tags)} version tags alone"
        )
    print(
        f"  best of {args.runs}: cli {min(runs['cli']):.3f} s, lib {min(runs['lib']):.3f} s, "
        f"floor {min(runs['floor']):.3f} s / {min(runs['floor_all']):.3f} s"
    )
    speedup = t_skopeo / t_cli
    print(
        f"  gefreg verify --shallow vs skopeo loop: {speedup:.1f}x faster (target >= 20x -> "
        f"{'met' if speedup >= 20 else 'MISSED'}); library {t_skopeo / t_lib:.1f}x"
    )
    print(
        f"  vs the floor for the same {checked} tags: library {t_lib / t_floor_all:.2f}x, "
        f"CLI {t_cli / t_floor_all:.2f}x (of which {startup:.2f} s is start-up)"
    )


if __name__ == "__main__":
    main()
