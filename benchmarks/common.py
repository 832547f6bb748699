"""Shared helpers for the benchmarks: timing commands and printing a small table."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


def best_of(runs: int, action: Callable[[], object]) -> float:
    """Median wall time over ``runs`` runs (seconds)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command(argv: Sequence[str], **kw: object) -> Callable[[], object]:
    def run() -> object:
        return subprocess.run(list(argv), check=True, capture_output=True, **kw)  # type: ignore[call-overload]

    return run


def report(
    title: str,
    rows: list[tuple[str, float]],
    ratio_of: tuple[str, str] | None = None,
    unit: str = "s",
) -> float | None:
    print(f"\n## {title}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value:9.3f} {unit}")
    if ratio_of:
        values = dict(rows)
        ratio = values[ratio_of[0]] / values[ratio_of[1]]
        print(f"  ratio {ratio_of[0]} / {ratio_of[1]} = {ratio:.2f}x")
        return ratio
    return None
