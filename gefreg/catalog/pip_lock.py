"""pip.lock: the exact wheels (with sha256 hashes) a python-template entry installs.

Records list every pip package they need with ``==`` pins; there is no dependency resolution
at build time (``--no-deps``), so the image holds exactly what the record says. ``gefreg lock``
downloads each pin for the image's platform and writes the hashes; builds then fetch wheels on
the host with ``--require-hashes`` and install them offline inside the build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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


def read_lock(path: Path) -> list[LockedPin]:
    text = path.read_text().replace("\\\n", " ")
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
    return pins


def format_lock(pins: list[LockedPin]) -> str:
    lines = [
        "# Wheels for CPython 3.11 on linux x86-64, installed with --require-hashes --no-deps.",
        "# Written by `gefreg lock`; edit packages.pip in service.yaml instead of this file.",
    ]
    for pin in sorted(pins, key=lambda p: normalize(p.name)):
        hashes = " \\\n    ".join(f"--hash=sha256:{h}" for h in pin.hashes)
        lines.append(f"{pin.requirement} \\\n    {hashes}")
    return "\n".join(lines) + "\n"


def lock_problems(entry: Entry) -> list[str]:
    """Why the entry's pip.lock does not match its record (empty when it does)."""
    if not entry.spec.pip:
        return []
    path = entry.directory / LOCK_FILE
    if not path.is_file():
        return [f"packages.pip needs {LOCK_FILE} with wheel hashes: run `gefreg lock {entry.name}`"]
    try:
        pins = read_lock(path)
    except BadInput as exc:
        return [exc.message]
    locked = {(normalize(p.name), p.version) for p in pins}
    wanted = set()
    for req in entry.spec.pip:
        m = PIP_REQUIREMENT_RE.match(req)
        assert m
        wanted.add((normalize(m.group(1)), m.group(2)))
    problems = []
    for name, version in sorted(wanted - locked):
        problems.append(f"{name}=={version} is not in {LOCK_FILE}: run `gefreg lock {entry.name}`")
    for name, version in sorted(locked - wanted):
        problems.append(
            f"{LOCK_FILE} has {name}=={version}, which packages.pip does not list: "
            f"run `gefreg lock {entry.name}`"
        )
    return problems
