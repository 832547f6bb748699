"""A release run by gefreg and by CWL engines, on the same pinned image (the shipped
`fixity-manifest`, published to a local registry; `gefreg export cwl` of it).

1. Per-task overhead on a small input: `gefreg run NAME@VERSION` against `cwltool TOOL JOB` and
   `toil-cwl-runner --batchSystem single_machine TOOL JOB` (a fresh job store each time), each a
   new process as a user would type it. Interleaved; medians; ratios to `gefreg run`.
2. Throughput of a scatter over N small folders (default 100): a shell loop of `gefreg run`
   against the exported scatter workflow on Toil (single machine), and on the one-node Slurm
   cluster of `make slurm` (`--batchSystem slurm`; root only, started when not running).
   Every output of every engine is checked against the `gefreg run` loop's (tree manifests).

    .venv/bin/python benchmarks/bench_cwl.py [--runs 5] [--folders 100] [--skip-slurm]
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

NAME = "fixity-manifest"
ENV = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def sh(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=ENV)


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    sh(argv)
    return time.perf_counter() - start


def publish(root: Path, address: str) -> list[str]:
    catalog = root / "catalog"
    catalog.mkdir()
    shutil.copytree(ROOT / "catalog" / NAME, catalog / NAME)
    shutil.copy(ROOT / "catalog" / "policy.yaml", catalog / "policy.yaml")
    opts = ["--catalog", str(catalog), "--registry", address]
    sh([str(VENV_BIN / "gefreg"), "publish", "--build", *opts, NAME])
    return opts


def folders(root: Path, count: int) -> list[Path]:
    out = []
    for i in range(count):
        folder = root / f"station-{i:04d}"
        (folder / "sub").mkdir(parents=True)
        (folder / "a.dat").write_bytes(os.urandom(4096))
        (folder / "sub" / "b.txt").write_text(f"station {i}\n" * 50)
        out.append(folder)
    return out


def toil(batch: str, root: Path, tool: Path, job: Path, tag: str) -> list[str]:
    return [
        str(VENV_BIN / "toil-cwl-runner"), "--batchSystem", batch,
        "--jobStore", f"file:{root / ('js-' + tag)}", "--workDir", str(root),
        "--outdir", str(root / ("out-" + tag)), "--logLevel", "ERROR", str(tool), str(job),
    ]  # fmt: skip


def bench_overhead(root: Path, opts: list[str], runs: int) -> None:
    data = folders(root / "small", 1)[0]
    tool, job = root / "tool.cwl", root / "job.json"
    gefreg = str(VENV_BIN / "gefreg")
    sh([gefreg, "export", "cwl", *opts, f"{NAME}@1.0.0", "-o", str(tool)])
    sh([gefreg, "export", "job", "--port", "collection", str(data), "-o", str(job)])
    times: dict[str, list[float]] = {"gefreg run": [], "cwltool": [], "toil single_machine": []}
    for i in range(runs + 1):  # the first round warms caches and pulls the image
        out = root / f"g{i}"
        rounds = {
            "gefreg run": [gefreg, "run", *opts, f"{NAME}@1.0.0", "-i", str(data), "-o", str(out),
                           "--record", str(root / f"g{i}.json")],
            "cwltool": [str(VENV_BIN / "cwltool"), "--quiet", "--outdir", str(root / f"c{i}"),
                        str(tool), str(job)],
            "toil single_machine": toil("single_machine", root, tool, job, f"t{i}"),
        }  # fmt: skip
        for name, argv in rounds.items():
            took = timed(argv)
            if i:
                times[name].append(took)
    medians = [(name, sorted(v)[len(v) // 2]) for name, v in times.items()]
    base = medians[0][1]
    report(f"per-task wall time, small input, median of {runs}", medians)
    for name, value in medians[1:]:
        print(f"  ratio gefreg run / {name} = {base / value:.2f}x")


def bench_scatter(root: Path, opts: list[str], count: int, slurm: bool) -> None:
    from gefreg.run.tree_manifest import tree_manifest

    inputs = folders(root / "many", count)
    flow, jobs = root / "scatter.cwl", root / "jobs.json"
    gefreg = str(VENV_BIN / "gefreg")
    sh([gefreg, "export", "cwl", *opts, f"{NAME}@1.0.0", "--scatter", "-o", str(flow)])
    sh([gefreg, "export", "job", "--port", "collection", *map(str, inputs), "-o", str(jobs)])
    loop = root / "loop.sh"
    loop.write_text(
        'set -e\ni=0\nfor d in "$@"; do\n  i=$((i+1))\n'
        f'  {gefreg} run {" ".join(opts)} {NAME}@1.0.0 -i "$d" -o {root}/loop/$i '
        f"--record {root}/loop-records/$i.json >/dev/null 2>&1\ndone\n"
    )
    rows = [("shell loop of gefreg run", timed(["bash", str(loop), *map(str, inputs)]))]
    expected = [tree_manifest(root / "loop" / str(i + 1)).root for i in range(count)]
    engines = [("toil single_machine", "single_machine")]
    if slurm:
        sh(["bash", str(ROOT / "scripts" / "slurm.sh")])
        engines.append(("toil slurm (one node)", "slurm"))
    for label, batch in engines:
        start = time.perf_counter()
        done = sh(toil(batch, root, flow, jobs, batch))
        rows.append((label, time.perf_counter() - start))
        made = [Path(d["path"]) for d in json.loads(done.stdout)["manifest"]]
        assert [tree_manifest(p).root for p in made] == expected, f"{label}: outputs differ"
    report(f"scatter over {count} folders (outputs identical to gefreg run)", rows)
    for label, value in rows:
        print(f"  {label}: {count / value:.2f} folders/s")
    for label, value in rows[1:]:
        print(f"  ratio {label} / shell loop = {value / rows[0][1]:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--folders", type=int, default=100)
    parser.add_argument("--skip-slurm", action="store_true")
    args = parser.parse_args()
    from tests.registry_fixtures import LocalRegistry

    slurm = not args.skip_slurm and os.geteuid() == 0
    with tempfile.TemporaryDirectory(prefix="gefreg-bench-cwl-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)
        registry = LocalRegistry(root / "registry")
        registry.root.mkdir()
        registry.start()
        try:
            opts = publish(root, registry.address)
            bench_overhead(root, opts, args.runs)
            bench_scatter(root, opts, args.folders, slurm)
        finally:
            registry.kill()
            listed = sh(["docker", "images", "--format", "{{.Repository}} {{.ID}}"]).stdout
            ids = {
                i
                for r, i in (x.split() for x in listed.splitlines())
                if r.startswith(registry.address)
            }
            if ids:
                subprocess.run(["docker", "rmi", "-f", *sorted(ids)], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
