"""pip.lock: the exact wheels (with sha256 hashes) a python-template entry installs.

Records pin the packages they use with ``==`` (``packages.pip``); ``gefreg lock`` has pip's own
resolver find their whole dependency closure for the image's Python and platform, and writes
every wheel with its hash — except the Python distributions the record's Debian packages
already provide (``packages.apt-provides``) and what only they need. Builds fetch the wheels on
the host with ``--require-hashes`` and install exactly these, offline, with ``--no-deps``.

The lock's first lines say what it was resolved from (a ``# gefreg-lock: {json}`` comment: the
requested pins, the provided names, the Python version); lint compares that with the record,
so a lock that no longer matches is found before a build, not at test time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput
from gefreg.model import PIP_REQUIREMENT_RE, Entry

LOCK_FILE = "pip.lock"
# The curated python base is Debian bookworm: CPython 3.11, glibc 2.36, x86-64.
PYTHON_VERSION = "3.11"
PLATFORMS = (
    "manylinux_2_36_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)
HASH_RE = re.compile(r"--hash=sha256:([0-9a-f]{64})")
HEADER = "# gefreg-lock: "


@dataclass(frozen=True)
class LockedPin:
    name: str
    version: str
    hashes: tuple[str, ...]

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Resolved:
    """What a lock was resolved from: compared with the record to find a stale lock."""

    requested: tuple[str, ...]  # the record's packages.pip, normalized and sorted
    provided: tuple[str, ...] = ()  # packages.apt-provides, normalized and sorted
    python: str = PYTHON_VERSION
    platforms: tuple[str, ...] = PLATFORMS
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, entry: Entry) -> Resolved:
        return cls(requested_pins(entry), provided_names(entry))

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "requested": list(self.requested),
            "apt-provides": list(self.provided),
            "python": self.python,
            "platforms": list(self.platforms),
        }


@dataclass(frozen=True)
class PipLock:
    pins: tuple[LockedPin, ...]
    resolved: Resolved | None  # None: written by a gefreg that locked the pins alone


def requested_pins(entry: Entry) -> tuple[str, ...]:
    out = []
    for req in entry.spec.pip:
        m = PIP_REQUIREMENT_RE.match(req)
        assert m  # the schema checked it
        out.append(f"{normalize(m.group(1))}=={m.group(2)}")
    return tuple(sorted(out))


def provided_names(entry: Entry) -> tuple[str, ...]:
    return tuple(sorted({normalize(n) for n in entry.spec.apt_provides}))


def read_lock(path: Path) -> list[LockedPin]:
    return list(read_pip_lock(path).pins)


def read_pip_lock(path: Path) -> PipLock:
    raw = path.read_text()
    resolved = _header(raw, path)
    text = raw.replace("\\\n", " ")
    pins = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, _, rest = line.partition(" ")
        m = PIP_REQUIREMENT_RE.match(requirement)
        hashes = tuple(HASH_RE.findall(rest))
        if not m or not hashes:
            raise BadInput(
                f"{path}:{number}: expected 'name==version --hash=sha256:...'",
                "regenerate it with `gefreg lock`",
            )
        pins.append(LockedPin(m.group(1), m.group(2), hashes))
    return PipLock(tuple(pins), resolved)


def _header(text: str, path: Path) -> Resolved | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith(HEADER):
            continue
        try:
            data = json.loads(line[len(HEADER) :])
            return Resolved(
                tuple(str(r) for r in data["requested"]),
                tuple(str(n) for n in data.get("apt-provides", [])),
                str(data["python"]),
                tuple(str(p) for p in data["platforms"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInput(
                f"{path}:{number}: unreadable gefreg-lock line ({exc})",
                "regenerate it with `gefreg lock`",
            ) from None
    return None


def format_lock(pins: list[LockedPin], resolved: Resolved | None = None) -> str:
    lines = [
        f"# Wheels for CPython {PYTHON_VERSION} on linux x86-64, installed with "
        "--require-hashes --no-deps:",
        "# the dependency closure of packages.pip, resolved by pip for that platform.",
        "# Written by `gefreg lock`; edit packages.pip in service.yaml instead of this file.",
    ]
    if resolved is not None:
        lines.append(HEADER + json.dumps(resolved.to_json(), sort_keys=True))
    for pin in sorted(pins, key=lambda p: normalize(p.name)):
        hashes = " \\\n    ".join(f"--hash=sha256:{h}" for h in pin.hashes)
        lines.append(f"{pin.requirement} \\\n    {hashes}")
    return "\n".join(lines) + "\n"


def lock_problems(entry: Entry) -> list[str]:
    """Why the entry's pip.lock does not match its record (empty when it does)."""
    path = entry.directory / LOCK_FILE
    rerun = f"run `gefreg lock {entry.name}`"
    if not entry.spec.pip:
        return (
            [f"{LOCK_FILE} is left over: packages.pip is empty (delete it)"]
            if path.is_file()
            else []
        )
    if not path.is_file():
        return [f"packages.pip needs {LOCK_FILE} with wheel hashes: {rerun}"]
    try:
        lock = read_pip_lock(path)
    except BadInput as exc:
        return [exc.message]
    if lock.resolved is None:
        return [
            f"{LOCK_FILE} pins packages.pip alone, without their dependencies (written by an "
            f"older gefreg): {rerun}"
        ]
    wanted = Resolved.of(entry)
    problems = []
    if lock.resolved.requested != wanted.requested:
        old, new = set(lock.resolved.requested), set(wanted.requested)
        changes = [f"+{p}" for p in sorted(new - old)] + [f"-{p}" for p in sorted(old - new)]
        problems.append(
            f"{LOCK_FILE} is stale: packages.pip changed ({', '.join(changes)}): {rerun}"
        )
    if lock.resolved.provided != wanted.provided:
        problems.append(f"{LOCK_FILE} is stale: packages.apt-provides changed: {rerun}")
    if (lock.resolved.python, lock.resolved.platforms) != (wanted.python, wanted.platforms):
        problems.append(
            f"{LOCK_FILE} was resolved for Python {lock.resolved.python}; the image has "
            f"{wanted.python}: {rerun}"
        )
    locked = {f"{normalize(p.name)}=={p.version}" for p in lock.pins}
    for pin in wanted.requested:
        if pin not in locked and lock.resolved.requested == wanted.requested:
            problems.append(f"{pin} is not in {LOCK_FILE} (edited by hand?): {rerun}")
    return problems
