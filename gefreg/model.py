"""Domain values as frozen dataclasses. No I/O here: loading and validation live in
gefreg.catalog (service_record, base_record, entries)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# Shared syntax rules. The same patterns guard validation (catalog/) and rendering (image/render),
# so a value that reaches a Dockerfile instruction outside a quoted label has passed one of these.
# They end in \Z, not $: `$` also matches before a final line break ("curl\n" broke a RUN line).
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
PORT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# Written so that no character can be matched two ways: a near-miss fails in linear time.
CONTAINER_PATH_RE = re.compile(r"^(?:/|(?:/[A-Za-z0-9_.+@-]+)+/?)\Z")
ENTRY_PATH_RE = re.compile(r"^(?:[A-Za-z0-9_.+@-]+/)*[A-Za-z0-9_.+@-]+/?\Z")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
APT_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+~:-]+)?\Z")
PIP_REQUIREMENT_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)\Z")
# The one digest pattern: image IDs, manifest digests, fingerprints and cache keys are all
# sha256 digests. (The registry client also accepts OCI's general ``algorithm:encoded`` form,
# since a registry may answer with another algorithm.)
SHA256_DIGEST = r"sha256:[0-9a-f]{64}"
DIGEST_RE = re.compile(rf"^{SHA256_DIGEST}\Z")


def is_digest(text: object) -> bool:
    """True for ``sha256:<64 lowercase hex>``."""
    return isinstance(text, str) and DIGEST_RE.match(text) is not None


RECORD_FILE = "service.yaml"
BASE_FILE = "base.yaml"
TEMPLATES = ("debian", "python", "static")
SCRATCH = "scratch"
DEFAULT_UID = 10001


@dataclass(frozen=True)
class Port:
    """A GEF input or output: a directory mounted at ``path`` inside the container."""

    name: str
    path: str
    type: str | None = None
    filename: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Resources:
    """Limits the runner applies (bounds: :mod:`gefreg.limits`). Defaults are documented in the
    README."""

    memory: int = 1024**3  # bytes, swap included
    cpus: float = 1.0
    timeout: float = 600.0  # seconds, the whole run
    pids: int = 256
    disk: int = 10 * 1024**3  # bytes the outputs may take
    logs: int = 10 * 1024**2  # bytes of stdout, and of stderr, kept


@dataclass(frozen=True)
class ServiceTest:
    """A golden test: run with sample inputs and compare output files against expected hashes."""

    name: str
    inputs: tuple[tuple[str, str], ...]
    expect: tuple[tuple[str, str], ...]
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSpec:
    """One catalog record, validated. It drives the Dockerfile, the labels and the runner."""

    name: str
    version: str
    description: str
    license: str
    maintainers: tuple[str, ...]
    base: str
    template: str
    command: tuple[str, ...]
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    source: str | None = None
    documentation: str | None = None
    revision: str | None = None
    apt: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    apt_provides: tuple[str, ...] = ()  # Python distributions the apt packages provide
    files: tuple[tuple[str, str], ...] = ()
    entrypoint: tuple[str, ...] = ()
    workdir: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    user: int = DEFAULT_UID
    resources: Resources = field(default_factory=Resources)
    tests: tuple[ServiceTest, ...] = ()
    volatile: tuple[str, ...] = ()
    source_date_epoch: int | None = None  # None: the version's commit time, or 0 outside git


@dataclass(frozen=True)
class Entry:
    """A service record together with where it lives."""

    spec: ServiceSpec
    directory: Path
    record_path: Path

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class BaseSpec:
    """A curated base image built from the Debian archive with mmdebstrap."""

    name: str
    description: str
    suite: str
    variant: str
    mirror: str
    packages: tuple[str, ...]
    source_date_epoch: int
    labels: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BaseEntry:
    spec: BaseSpec
    directory: Path
    record_path: Path

    @property
    def name(self) -> str:
        return self.spec.name
