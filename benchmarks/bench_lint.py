"""Lint a generated catalog of 1,000 entries, and measure `gefreg --help` start-up.

Targets (issue 2): lint of 1,000 entries under 10 s on 2 cores; `gefreg --help` at most 2x
`python3 -c 'import click'`.

    .venv/bin/python benchmarks/bench_lint.py [--entries 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import VENV_BIN, best_of, command, report
from tests.helpers import demo_entry, make_catalog


def generate(root: Path, count: int) -> Path:
    entries = {}
    for i in range(count):
        entries.update(
            demo_entry(
                name=f"service-{i:04d}",
                description=f"Generated service number {i} for the lint benchmark.",
                packages={"apt": ["curl", f"lib{i % 7}-dev"]},
                env={"SERVICE_INDEX": str(i)},
            )
        )
    return make_catalog(root / "catalog", entries)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = generate(Path(tmp), args.entries)
        gefreg = str(VENV_BIN / "gefreg")
        env_state = {"GEFREG_STATE": str(Path(tmp) / "state")}
        import os

        env = {**os.environ, **env_state}
        lint = command([gefreg, "lint", "--catalog", str(catalog), "--json"], env=env)
        out = lint()
        data = json.loads(out.stdout)  # type: ignore[attr-defined]
        assert len(data["entries"]) == args.entries, "lint did not see every entry"
        cold = best_of(1, lambda: lint())
        warm = best_of(3, lint)
        report(
            f"gefreg lint over {args.entries} entries (hadolint included)",
            [("first run", cold), ("median of 3", warm)],
        )
        print(f"  target: < 10 s -> {'met' if warm < 10 else 'MISSED'}")

    python = sys.executable
    help_time = best_of(15, command([python, "-m", "gefreg", "--help"]))
    click_time = best_of(15, command([python, "-c", "import click"]))
    ratio = report(
        "start-up",
        [("gefreg --help", help_time), ("python -c 'import click'", click_time)],
        ratio_of=("gefreg --help", "python -c 'import click'"),
    )
    print(f"  target: <= 2x -> {'met' if ratio is not None and ratio <= 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
