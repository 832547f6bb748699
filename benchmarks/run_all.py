"""Run every benchmark, one after the other, on this machine (`make bench`).

Each script compares gefreg with the plain tool it wraps in the same run and prints ratios;
the README's "Measured" table records their output and the command that produced it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "bench_lint.py",
    "bench_build.py",
    "bench_scan.py",
    "bench_registry_head.py",
    "bench_verify.py",
    "bench_run.py",
    "bench_signing.py",
    "bench_cwl.py",
    "bench_serve.py",
    "bench_rebuild.py",
    "bench_diff.py",
]


def main() -> int:
    failed = []
    for script in SCRIPTS:
        print(f"\n# {script}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script)])
        print(f"# {script}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
