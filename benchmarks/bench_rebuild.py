"""`gefreg rebuild NAME@VERSION` against the original build, beside a plain `docker build`.

For each entry of the shipped catalog named (in a temporary git clone of it, with its bases
built and pushed to a registry of its own): a plain `docker build --no-cache` of exactly the
context gefreg sends, the original `gefreg build --no-cache` (the engine's build plus
normalizing, the apt lock check and loading), then `gefreg publish` and `gefreg rebuild` of
that version (export from git, a clean build, the comparison). Prints the times and ratios,
and the build's own phases.

    .venv/bin/python benchmarks/bench_rebuild.py [--entries fixity-manifest netcdf-summary]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, VENV_BIN, report
from gefreg.catalog.entries import load_entry
from gefreg.image.build import assemble_context
from gefreg.image.build_plan import prepare
from gefreg.settings import Settings
from tests.helpers import git_repository
from tests.registry_fixtures import free_port

GEFREG = str(VENV_BIN / "gefreg")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({done.returncode}):\n{done.stderr}")
    return took, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", nargs="+", default=["fixity-manifest", "netcdf-summary"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp_name:
        tmp = Path(tmp_name)
        catalog = tmp / "repo" / "catalog"
        shutil.copytree(ROOT / "catalog", catalog)
        for ledger in catalog.glob("*/releases.jsonl"):
            ledger.unlink()
        git_repository(catalog.parent)
        registry = f"127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "GEFREG_CATALOG": str(catalog),
            "GEFREG_REGISTRY": registry,
            "GEFREG_STATE": str(tmp / "state"),
            "DOCKER_BUILDKIT": "0",
        }
        port = registry.rsplit(":", 1)[1]
        data = tmp / "registry"
        timed([GEFREG, "registry", "serve", "--port", port, "--data", str(data)], env)
        try:
            bases = {load_entry(catalog / n, None).spec.base for n in args.entries} - {"scratch"}
            for base in sorted(bases):
                timed([GEFREG, "base", "build", base], env)
            settings = Settings(catalog=catalog, registry=registry, state_dir=tmp / "state")
            for name in args.entries:
                measure(name, catalog, settings, env, tmp)
        finally:
            subprocess.run([GEFREG, "registry", "stop", "--data", str(data)], env=env)


def measure(name: str, catalog: Path, settings: Settings, env: dict[str, str], tmp: Path) -> None:
    entry = load_entry(catalog / name, None)
    if entry.spec.apt:  # the lock first, so that the plain build gets the same Dockerfile
        timed([GEFREG, "lock", name], env)
    context = tmp / f"context-{name}"
    assemble_context(prepare(entry, settings), context)
    build_s, out = timed([GEFREG, "build", "--no-cache", "--json", name], env)
    plain, _ = timed(["docker", "build", "--no-cache", "-q", str(context)], env)  # base is local
    record = json.loads(out)
    timed([GEFREG, "publish", name], env)
    rebuild_s, out = timed([GEFREG, "rebuild", f"{name}@{entry.spec.version}", "--json"], env)
    result = json.loads(out)
    assert result["identical"], result
    report(
        f"{name} ({entry.spec.template} template), image {record['image_id'][:19]}",
        [
            ("docker build --no-cache (plain)", plain),
            ("gefreg build --no-cache", build_s),
            ("gefreg rebuild (from git, clean)", rebuild_s),
        ],
        ratio_of=("gefreg rebuild (from git, clean)", "gefreg build --no-cache"),
    )
    print(f"  ratio gefreg build / docker build = {build_s / plain:.2f}x")
    print(f"  build phases: {record['phases']}")


if __name__ == "__main__":
    main()
