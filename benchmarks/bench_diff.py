"""`gefreg diff` of two 1 GB images against `docker save` of both (the export it cannot avoid).

Two FROM-scratch images of N MB of random data in 16 MB files; the second has one file
changed, so their big layers differ and every file of both must be read and hashed. The
plain tool is what any comparison has to start with: exporting both images (`docker save`,
to files). gefreg streams both exports at once and lists and hashes every file as it passes.
The images are built with plain `docker build` and removed afterwards.

    .venv/bin/python benchmarks/bench_diff.py [--size-mb 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import VENV_BIN, best_of, report

FILE_MB = 16
TAG = "gefreg-bench-diff"


def build(context: Path, tag: str, size_mb: int, changed: bool) -> None:
    data = context / "data"
    data.mkdir(parents=True)
    noise = random.Random(0).randbytes(1024 * 1024)  # some incompressible data, in both images
    for i in range(size_mb // FILE_MB):
        seed = f"{i}-{'b' if changed and i == 3 else 'a'}".encode()
        block = (seed * (1024 * 1024 // len(seed) + 1))[: 1024 * 1024]
        part = data / f"part-{i:03d}.bin"
        part.write_bytes((noise if i == 0 else block) * FILE_MB)
        os.utime(part, (0, 0))  # COPY keeps the context's times: only part-003 may differ
    os.utime(data, (0, 0))
    (context / "Dockerfile").write_text("FROM scratch\nCOPY data/ /data/\n")
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(context)],
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    a, b = f"{TAG}:a", f"{TAG}:b"
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp_name:
        tmp = Path(tmp_name)
        try:
            build(tmp / "a", a, args.size_mb, changed=False)
            build(tmp / "b", b, args.size_mb, changed=True)

            def gefreg_diff() -> None:
                done = subprocess.run(
                    [str(VENV_BIN / "gefreg"), "diff", a, b, "--json"],
                    capture_output=True,
                    text=True,
                )
                assert done.returncode == 1, done.stderr
                files = [f["path"] for f in json.loads(done.stdout)["files"]]
                # COPY gives /data the time of the build (the engine's, as gefreg normalizes
                # away in its own builds): two plain builds a second apart differ there too
                assert set(files) - {"/data"} == {"/data/part-003.bin"}, files

            def docker_save() -> None:
                for tag, name in ((a, "a.tar"), (b, "b.tar")):
                    subprocess.run(["docker", "save", tag, "-o", str(tmp / name)], check=True)

            gefreg_diff()  # warm the page cache for both
            rows = [
                ("gefreg diff A B", best_of(args.runs, gefreg_diff)),
                ("docker save A; docker save B", best_of(args.runs, docker_save)),
            ]
            report(
                f"two {args.size_mb} MB images, one {FILE_MB} MB file changed",
                rows,
                ratio_of=("gefreg diff A B", "docker save A; docker save B"),
            )
        finally:
            subprocess.run(["docker", "rmi", a, b], capture_output=True)


if __name__ == "__main__":
    main()
