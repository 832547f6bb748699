"""`gefreg new`: a new catalog entry that lints, builds and tests from the first minute.

The scaffold is a working service (a small script that summarises its input folder), a
commented record, and a sample input for its golden test; the maintainer replaces the script
and the sample and runs `gefreg test --update`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gefreg.catalog.service_record import RECORD_FILE
from gefreg.errors import BadInput
from gefreg.model import NAME_RE, SCRATCH, TEMPLATES

DEFAULT_BASE = {"debian": "debian-bookworm", "python": "python-bookworm", "static": SCRATCH}

RECORD = """\
# {name}: one record drives the Dockerfile, the labels, the runner and the tests.
# Reference: README.md, "Record reference". Check it with `gefreg lint {name}`.
name: {name}
version: 0.1.0                      # SemVer; bump it whenever anything in the image changes
description: {description}
license: MIT                        # an SPDX expression
maintainers: [{maintainer}]
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


@dataclass(frozen=True)
class Scaffold:
    directory: Path
    files: tuple[Path, ...]
    notes: tuple[str, ...]


def new_entry(
    catalog: Path,
    name: str,
    template: str,
    *,
    base: str | None = None,
    description: str | None = None,
    maintainer: str | None = None,
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
    packages = (
        "packages:\n  apt: []                           # Debian packages\n"
        if (template != "static")
        else ""
    )
    files[RECORD_FILE] = RECORD.format(
        name=name,
        template=template,
        base=base,
        packages=packages,
        files=shipped,
        command=command,
        description=json.dumps(description or f"What {name} does, in one sentence."),
        maintainer=json.dumps(maintainer or "Your Name <you@example.org>"),
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
    notes.append(f"next: gefreg lint {name} && gefreg build {name} && gefreg test {name} --update")
    return Scaffold(folder, tuple(written), tuple(notes))
