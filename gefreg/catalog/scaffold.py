"""`gefreg new`: a new catalog entry that lints, builds and tests from the first minute.

The scaffold is a working service (a small script that summarises its input folder), a
commented record, and a sample input for its golden test; the maintainer replaces the script
and the sample and runs `gefreg test --update`.

What only the maintainer can say (license, maintainers, description) is written as a marked
placeholder. It builds and tests, but :func:`placeholders` finds it, and lint and publish
refuse it: a placeholder must never become a permanent label of a published image.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from gefreg.errors import BadInput
from gefreg.model import NAME_RE, RECORD_FILE, SCRATCH, TEMPLATES

DEFAULT_BASE = {"debian": "debian-bookworm", "python": "python-bookworm", "static": SCRATCH}
# The comment that marks a placeholder line, and the values `new` writes when not told.
PLACEHOLDER = "# placeholder: "
PLACEHOLDER_MAINTAINER = "Your Name <you@example.org>"
PLACEHOLDER_LICENSE = "MIT"
PLACEHOLDER_DESCRIPTION = "What {name} does, in one sentence."
_KEY_RE = re.compile(r"^([a-z_]+):")

RECORD = """\
# {name}: one record drives the Dockerfile, the labels, the runner and the tests.
# Reference: gefreg's README, "Record reference". Check it with `gefreg lint {name}`.
# Lines marked "placeholder" are refused by lint and publish until you set them and
# delete the marker.
name: {name}
version: 0.1.0                      # SemVer; bump it whenever anything in the image changes
description: {description}
license: {license}
maintainers: {maintainers}
# source: https://example.org/{name}
base: {base}
template: {template}
{packages}files:
{files}command: {command}
inputs:
  - {{name: input, path: /data/input, description: The folder to summarise.}}
outputs:
  - {{name: result, path: /data/output}}
resources: {{memory: 256m, cpus: 1, timeout: 5m}}
tests:
  - name: sample
    inputs: {{input: tests/input}}
    expect:                          # `gefreg test {name} --update` fills in the hashes
      result/summary.txt: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
"""

SHELL_SERVICE = """\
#!/bin/sh
# Replace this with your service. It reads /data/input and writes /data/output.
set -eu
in=${1:-/data/input}
out=${2:-/data/output}
cd "$in"
find . -type f | LC_ALL=C sort > /tmp/files
printf '%s files\\n' "$(wc -l < /tmp/files | tr -d ' ')" > "$out/summary.txt"
"""

PYTHON_SERVICE = '''\
"""Replace this with your service. It reads /data/input and writes /data/output."""

import os
import sys


def main(src: str, dst: str) -> int:
    names = sorted(
        os.path.relpath(os.path.join(root, f), src)
        for root, _, files in os.walk(src)
        for f in files
    )
    with open(os.path.join(dst, "summary.txt"), "w", encoding="utf-8") as out:
        out.write(f"{len(names)} files\\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*(sys.argv[1:3] or ["/data/input", "/data/output"])))
'''


PACKAGES = {
    "debian": "packages:\n  apt: []                           # Debian packages, e.g. [nco, jq]\n",
    "python": (
        "packages:\n"
        "  apt: []                           # Debian packages, e.g. [libgeos-c1v5]\n"
        "  pip: []                           # exact pins, e.g. [obspy==1.4.2]; then run\n"
        "                                    # `gefreg lock {name}` (locks every dependency)\n"
    ),
    "static": "",
}


@dataclass(frozen=True)
class Scaffold:
    directory: Path
    files: tuple[Path, ...]
    notes: tuple[str, ...]
    next_steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Placeholder:
    line: int
    field: str
    message: str
    column: int = 1  # where the value starts (file:line:column, like every record problem)


def _marked(value: str, what: str) -> str:
    return f"{value}  {PLACEHOLDER}{what}"


def placeholders(record: Path) -> list[Placeholder]:
    """Placeholders `gefreg new` wrote that are still in the record (line, field, message).

    A line still carrying the placeholder marker counts, and so does the placeholder
    maintainer or description even when the marker was deleted without editing the value."""
    try:
        lines = record.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []  # the record's own validation reports that
    name = record.parent.name
    found = []
    for number, line in enumerate(lines, start=1):
        key = _KEY_RE.match(line)
        field = key.group(1) if key else "record"
        after = key.end() if key else 0
        column = after + len(line[after:]) - len(line[after:].lstrip()) + 1
        if PLACEHOLDER in line:
            found.append(
                Placeholder(
                    number,
                    field,
                    "still the placeholder from `gefreg new`: set it, then delete the "
                    "'# placeholder' comment",
                    column,
                )
            )
        elif PLACEHOLDER_MAINTAINER in line or (
            field == "description" and PLACEHOLDER_DESCRIPTION.format(name=name) in line
        ):
            found.append(
                Placeholder(
                    number,
                    field,
                    "still the placeholder value from `gefreg new`: set your own",
                    column,
                )
            )
    return found


def new_entry(
    catalog: Path,
    name: str,
    template: str,
    *,
    base: str | None = None,
    description: str | None = None,
    maintainer: str | None = None,
    license: str | None = None,
) -> Scaffold:
    if not NAME_RE.match(name):
        raise BadInput(
            f"{name!r} is not a valid entry name",
            "use lowercase letters, digits and '-', at most 63 characters",
        )
    if template not in TEMPLATES:
        raise BadInput(f"unknown template {template!r}", f"use one of: {', '.join(TEMPLATES)}")
    folder = catalog / name
    if folder.exists():
        raise BadInput(f"{folder} already exists", "choose another name; nothing was changed")
    base = base or DEFAULT_BASE[template]
    notes: list[str] = []
    files: dict[str, str | bytes] = {}
    if template == "python":
        files["main.py"] = PYTHON_SERVICE
        shipped = "  main.py: /opt/service/main.py\n"
        command = "[python3, /opt/service/main.py, /data/input, /data/output]"
    else:
        files["run.sh"] = SHELL_SERVICE
        shipped = "  run.sh: /opt/service/run.sh\n"
        command = "[/bin/sh, /opt/service/run.sh, /data/input, /data/output]"
    if template == "static":
        busybox = shutil.which("busybox")
        shipped = (
            "  bin/busybox: /bin/busybox     # static busybox (Debian busybox-static)\n" + shipped
        )
        command = "[/bin/busybox, sh, /opt/service/run.sh, /data/input, /data/output]"
        if busybox:
            files["bin/busybox"] = Path(busybox).read_bytes()
        else:
            notes.append(
                f"put a static busybox at {folder}/bin/busybox (apt-get install "
                "busybox-static) or replace it with your own static binary"
            )
    files[RECORD_FILE] = RECORD.format(
        name=name,
        template=template,
        base=base,
        packages=PACKAGES[template].format(name=name),
        files=shipped,
        command=command,
        description=(
            json.dumps(description)
            if description
            else _marked(
                json.dumps(PLACEHOLDER_DESCRIPTION.format(name=name)),
                "one sentence on what it does",
            )
        ),
        license=(
            json.dumps(license)
            if license
            else _marked(PLACEHOLDER_LICENSE, "your SPDX license, e.g. Apache-2.0")
        ),
        maintainers=(
            f"[{json.dumps(maintainer)}]"
            if maintainer
            else _marked(f"[{json.dumps(PLACEHOLDER_MAINTAINER)}]", "who maintains it")
        ),
    )
    files["tests/input/sample.txt"] = "Sample input: replace with a small real example.\n"
    written = []
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
            os.chmod(path, 0o755)
        else:
            path.write_text(content)
        written.append(path)
    return Scaffold(folder, tuple(written), tuple(notes), next_steps(name, template))


def next_steps(name: str, template: str) -> tuple[str, ...]:
    """What to do after `gefreg new`, in order: each a command and what it is for."""
    steps = [
        (f"$EDITOR catalog/{name}/service.yaml", "set the placeholders, files, command, ports"),
        (f"gefreg lint {name}", "every problem at once, with file:line:column"),
    ]
    if template == "python":
        steps.append((f"gefreg lock {name}", "after filling packages.pip: pins every wheel"))
    steps += [
        (f"gefreg build {name}", "cached by fingerprint"),
        (f"gefreg test {name} --update", "records the expected output hashes"),
        (f"gefreg scan {name}", "the policy gate, as publish will run it"),
        (f"git add catalog/{name} && git commit", "then open a pull request"),
    ]
    width = max(len(command) for command, _ in steps) + 2
    return tuple(f"{command:<{width}}# {why}" for command, why in steps)
