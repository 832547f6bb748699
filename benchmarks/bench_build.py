"""Cache-hit `gefreg build` vs. a plain cached `docker build` of the same context.

A cached `docker build` still sends the whole context to the engine and walks its cache;
gefreg answers from its fingerprint (unchanged files are not rehashed: the hash cache keys on
size, mtime and inode). Targets (issue 3): <= 0.5x on a context of 200 MB or more,
<= 2x on a small one.

    .venv/bin/python benchmarks/bench_build.py [--large-mb 256]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import VENV_BIN, best_of, command, report
from gefreg.catalog.entries import load_entry
from gefreg.image.build import assemble_context
from gefreg.image.build_plan import prepare
from gefreg.settings import Settings
from tests.helpers import demo_entry, make_catalog


def catalog_with(root: Path, large_mb: int) -> Path:
    busybox = Path("/bin/busybox").read_bytes()
    small = demo_entry(
        name="small",
        base="scratch",
        template="static",
        files={"busybox": "/bin/busybox", "run.sh": "/opt/run.sh"},
        command=["/bin/busybox", "sh", "/opt/run.sh"],
    )
    small["small"]["busybox"] = busybox
    large = demo_entry(
        name="large",
        base="scratch",
        template="static",
        files={"busybox": "/bin/busybox", "run.sh": "/opt/run.sh", "vendor/": "/opt/vendor/"},
        command=["/bin/busybox", "sh", "/opt/run.sh"],
    )
    large["large"]["busybox"] = busybox
    catalog = make_catalog(root / "catalog", {**small, **large})
    vendor = catalog / "large" / "vendor"
    vendor.mkdir()
    for i in range(large_mb // 8):  # vendored wheels/data: 8 MB files of random bytes
        (vendor / f"blob-{i:03d}.whl").write_bytes(os.urandom(8 * 1024 * 1024))
    for name in ("small", "large"):
        os.chmod(catalog / name / "busybox", 0o755)
    return catalog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--large-mb", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        root = Path(tmp)
        catalog = catalog_with(root, args.large_mb)
        env = {**os.environ, "GEFREG_STATE": str(root / "state"), "DOCKER_BUILDKIT": "0"}
        settings = Settings(catalog=catalog, registry="127.0.0.1:5000", state_dir=root / "state")
        gefreg = str(VENV_BIN / "gefreg")
        for name in ("small", "large"):
            # The plain docker build gets exactly the context gefreg would send.
            context = root / f"context-{name}"
            plan = prepare(load_entry(catalog / name, set()), settings)
            size = assemble_context(plan, context)
            plain = command(["docker", "build", "-q", str(context)], env=env)
            ours = command([gefreg, "build", "--catalog", str(catalog), name], env=env)
            plain()
            ours()  # first build fills both caches
            rows = [
                ("gefreg build (cache hit)", best_of(args.runs, ours)),
                ("docker build (cached)", best_of(args.runs, plain)),
            ]
            ratio = report(
                f"{name} entry, context {size / 1e6:.1f} MB",
                rows,
                ratio_of=("gefreg build (cache hit)", "docker build (cached)"),
            )
            target = 0.5 if name == "large" else 2.0
            verdict = "met" if ratio is not None and ratio <= target else "MISSED"
            print(f"  target: <= {target}x -> {verdict}")


if __name__ == "__main__":
    main()
