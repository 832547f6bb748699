"""Resource limits: what each may be, in one place, for every source that gives one.

The catalog record's ``resources`` (text such as ``512m``, ``10m``), the interface a ledger line
stores and the ``limits`` of a run record (numbers: bytes, seconds), the TES server's task
resources and the command line's ``--memory``/``--cpus``/``--timeout``/``--pids``/``--disk``/
``--log-limit`` all go through :func:`parse` or :func:`check`, so a value one of them accepts
is accepted by all (a record allowing 1 TiB while a ledger allowed 1 PiB is what this ended).
Beyond these bounds a value is a mistake, not a service's need.

The keys are the fields of :class:`gefreg.model.Resources` (which holds the defaults). The
open-files ``ulimit`` is the runner's policy, not a service's choice; it is here too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

MiB = 1024**2
GiB = 1024**3
TiB = 1024**4

MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\Z", re.IGNORECASE)
DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\Z")

NOFILE = 4096  # open files per process in the container (ulimit nofile)


def parse_memory(text: str) -> int | None:
    """'512m', '1g', '1.5GiB' or a byte count → bytes; None when it is not a size."""
    m = MEMORY_RE.match(text.strip())
    if not m:
        return None
    factor = {"": 1, "k": 1024, "m": MiB, "g": GiB, "t": TiB}[m.group(2).lower()]
    try:
        return int(float(m.group(1)) * factor)
    except OverflowError:
        return None


def parse_duration(text: str) -> float | None:
    """'90s', '10m', '1h', '2d', '250ms' or seconds → seconds; None when it is not one."""
    m = DURATION_RE.match(text.strip())
    if not m:
        return None
    factor = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    return float(m.group(1)) * factor[m.group(2)]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Bound:
    """One limit: its range, whether it is whole, how text is read and an example."""

    low: float
    high: float
    integer: bool
    parse: Callable[[str], float | int | None]
    expected: str  # "a size from 4m to 1t like 512m or 2g"


BOUNDS: dict[str, Bound] = {
    "memory": Bound(4 * MiB, TiB, True, parse_memory, "a size from 4m to 1t like 512m or 2g"),
    "cpus": Bound(0.01, 1024.0, False, _number, "a number from 0.01 to 1024 like 0.5 or 2"),
    "timeout": Bound(
        0.001, 366 * 86400.0, False, parse_duration, "a duration up to a year like 90s, 10m or 2h"
    ),
    "pids": Bound(1, 4_194_304, True, _number, "a whole number from 1 to 4194304 like 256"),
    "disk": Bound(MiB, 64 * TiB, True, parse_memory, "a size from 1m to 64t like 500m or 10g"),
    "logs": Bound(0, GiB, True, parse_memory, "a size up to 1g like 10m (0 keeps nothing)"),
}


class LimitError(ValueError):
    """A limit outside its bounds; the message says what was expected."""


def check(name: str, value: object, shown: object = None) -> str | None:
    """What is wrong with ``value`` (a number: bytes, seconds, CPUs) as limit ``name``, or None.
    ``shown`` is what the user wrote, when that was text."""
    bound = BOUNDS[name]
    wrong = f"expected {bound.expected}, found {_shown(value if shown is None else shown)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return wrong
    if bound.integer and isinstance(value, float) and not value.is_integer():
        return wrong
    if not math.isfinite(value) or not bound.low <= value <= bound.high:
        return wrong
    return None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse(name: str, raw: object) -> float | int:
    """Limit ``name`` from text (``512m``, ``10m``, ``0.5``) or a number; LimitError saying what
    was expected otherwise."""
    bound = BOUNDS[name]
    value = bound.parse(raw) if isinstance(raw, str) else raw
    problem = check(name, value, raw if isinstance(raw, str) else None)
    if problem:
        raise LimitError(problem)
    assert isinstance(value, int | float)
    return int(value) if bound.integer else float(value)


def human_size(size: int) -> str:
    """``50m``, ``10g``, ``1536k``: the shortest exact form of a byte count, as a user writes it."""
    for unit, factor in (("t", TiB), ("g", GiB), ("m", MiB), ("k", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
