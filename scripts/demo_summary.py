"""The end of `make demo`'s summary: the run, its reproduction, and — the last line — the
command a user types to run the published service on a folder of their own.

Usage: python3 scripts/demo_summary.py DEMO_DIR RUN_DIR REGISTRY (paths shown relative to the
current folder, the repository root). tests/integration/test_shipped_catalog_e2e.py runs the
command it prints.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys


def summary(demo: pathlib.Path, run: pathlib.Path, registry: str) -> list[str]:
    record = json.loads((run / "run.json").read_text())
    report = json.loads((run / "reproduce.json").read_text())
    verdict = "reproduced: outputs identical" if report.get("identical") else "NOT reproduced"
    return [
        f"run record:   {run / 'run.json'}  ({record['status']}, exit {record['exit_code']})",
        f"outputs:      {run / 'output'}",
        f"rerun:        {verdict} ({report.get('rerun')})",
        "run it on a folder of your own (miniSEED files):",
        f"  .venv/bin/gefreg run waveform-metadata@1.0.0 --catalog {demo / 'catalog'} "
        f"--registry {registry} --input YOUR-FOLDER --output RESULTS-FOLDER",
    ]


if __name__ == "__main__":
    demo_dir, run_dir = (pathlib.Path(os.path.relpath(p)) for p in sys.argv[1:3])
    print("\n".join(summary(demo_dir, run_dir, sys.argv[3])))
