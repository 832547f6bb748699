"""Resolve an entry's apt packages to exact versions, and read back what a build installed.

Resolution asks apt itself, on the entry's own base image: ``apt-get install --simulate``
with the same options the Dockerfile uses prints every package it would install and the
version; that list is the apt lock. After a build, the dpkg status the apt step left is
compared with the lock, so a build that installed anything else is caught.
"""

from __future__ import annotations

import re

from gefreg.catalog import apt_lock
from gefreg.catalog.apt_lock import AptLock
from gefreg.engine import Engine
from gefreg.errors import BuildFailed, CheckFailed, EnvironmentFailure
from gefreg.image.labels import BaseImage
from gefreg.model import Entry

# "Inst name (version suite [arch])" or, for an upgrade, "Inst name [old] (version ...)".
INST_RE = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) ")
# apt's words for a version the archive does not have (any locale is forced to C below).
GONE_RE = re.compile(r"Version '([^']+)' for '([^']+)' was not found")
# apt's words for packages.apt asking for something Debian does not have (the record's fault).
RECORD_FAULT_RE = re.compile(
    r"Unable to locate package|has no installation candidate|Version '[^']+' for '[^']+' "
    r"was not found|Unable to correct problems"
)
SCRIPT = (
    "apt-get -qq -o Acquire::Retries=3 update >&2 && "
    'exec apt-get install --simulate --no-install-recommends "$@"'
)


def parse_simulation(text: str) -> dict[str, str]:
    """Package → version from ``apt-get install --simulate`` output."""
    found = {}
    for line in text.splitlines():
        m = INST_RE.match(line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def resolve(engine: Engine, entry: Entry, base: BaseImage) -> AptLock:
    """Ask apt on the base image which versions ``packages.apt`` installs today."""
    if base.digest is None:
        raise CheckFailed(f"{entry.name}: apt packages need a Debian base, not scratch")
    argv = ["sh", "-c", SCRIPT, "resolve", *entry.spec.apt]
    code, out, err = engine.run_helper(base.ref, ["env", "LC_ALL=C", *argv])
    if code != 0:
        tail = "\n  ".join(err.strip().splitlines()[-8:]) or "(no output)"
        message = f"apt cannot install {', '.join(entry.spec.apt)} on {base.name}:\n  {tail}"
        if RECORD_FAULT_RE.search(err):
            raise CheckFailed(message, f"fix packages.apt in {entry.record_path}")
        raise EnvironmentFailure(message, "is the Debian mirror reachable?")
    packages = parse_simulation(out)
    if not packages:
        raise EnvironmentFailure(f"apt reported nothing to install for {entry.name}")
    return apt_lock.make(entry.spec.apt, base.digest, packages)


def installed_by(base_status: str, status: str) -> dict[str, str]:
    """Packages whose installed version the apt step added or changed (two dpkg status files)."""
    before, after = parse_status(base_status), parse_status(status)
    return {name: v for name, v in after.items() if before.get(name) != v}


def parse_status(text: str) -> dict[str, str]:
    """Installed package → version from a dpkg status file (multi-arch names keep no suffix)."""
    out: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(": ")
            if sep and not line.startswith(" "):
                fields[key] = value.strip()
        if fields.get("Package") and "installed" in fields.get("Status", "").split():
            out[fields["Package"]] = fields.get("Version", "")
    return out


def check_installed(lock: AptLock, installed: dict[str, str]) -> None:
    """The build installed exactly the locked versions; anything else is named."""
    want = dict(lock.packages)
    have = {name.split(":", 1)[0]: v for name, v in installed.items()}
    wrong = [
        f"{name} {have.get(name, 'not installed')} (locked {version})"
        for name, version in sorted(want.items())
        if have.get(name.split(":", 1)[0]) != version
    ]
    extra = [f"{name} {v} (not locked)" for name, v in sorted(have.items()) if name not in want]
    if wrong or extra:
        raise CheckFailed(
            f"the apt step did not install what {apt_lock.LOCK_FILE} says: "
            + "; ".join(wrong + extra),
            "resolve again with `gefreg lock NAME` and commit the lock",
        )


def gone_versions(error: BuildFailed) -> list[tuple[str, str]]:
    """(package, version) pairs apt reported missing from the archive in a failed build."""
    text = "\n".join([error.message, *error.tail])
    return list(dict.fromkeys((m.group(2), m.group(1)) for m in GONE_RE.finditer(text)))
