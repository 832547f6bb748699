"""The run record: one JSON file per run saying exactly what ran, on what, how, and what came out.

Schema ``gefreg.run/1`` (full field reference: ``docs/run-record.md``), built as a
:class:`RunRecord` (frozen; each step of a run makes the next version with
:func:`dataclasses.replace`) and written atomically (temporary file, fsync, rename) twice: once
with status ``incomplete`` before the container starts — so a crash or a vanished engine never
leaves a record claiming success — and once when the run has ended and every output was hashed.
``stdout``/``stderr`` are saved next to the record as ``<stem>.stdout.log``/``<stem>.stderr.log``
with their sha256 in the record. None of the three may exist before the run
(:func:`check_new_files`), and each is created exclusively: gefreg never overwrites a file.

Default location: ``--record FILE`` if given, else
``<state dir>/runs/<UTC timestamp>-<name>-<id8>/run.json`` (the state dir is ``$GEFREG_STATE``
or ``.gefreg`` next to the catalog): never inside an output folder, so a record cannot change
the outputs it describes. As a Workflow Run RO-Crate: :mod:`gefreg.run.crate`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gefreg import __version__
from gefreg.errors import BadInput, EnvironmentFailure
from gefreg.limits import NOFILE
from gefreg.model import Resources
from gefreg.release.trust import ResolvedImage
from gefreg.run.delivery import Delivery
from gefreg.run.hardening import Hardening
from gefreg.run.logs import LogFacts
from gefreg.run.tree_manifest import TreeManifest

SCHEMA = "gefreg.run/1"
STATUSES = ("succeeded", "failed", "timed-out", "interrupted", "incomplete")
REQUIRED = (
    "schema",
    "id",
    "status",
    "service",
    "image",
    "command",
    "args",
    "mounts",
    "limits",
    "inputs",
    "outputs",
)
RUNS_DIR = "runs"


@dataclass(frozen=True)
class ServiceFacts:
    name: str
    version: str | None
    trusted: bool
    user: int  # the interface's unprivileged uid
    interface: str  # where ports, command, user and limits came from

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "trusted": self.trusted,
            "user": self.user,
            "interface": self.interface,
        }


@dataclass(frozen=True)
class ContainerFacts:
    name: str
    labels: tuple[tuple[str, str], ...]
    id: str | None = None
    started_at: str | None = None  # engine clock, once the run ended
    finished_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name, "labels": dict(self.labels)}
        if self.started_at is not None or self.finished_at is not None:
            data.update(started_at=self.started_at, finished_at=self.finished_at)
        return data


@dataclass(frozen=True)
class MountFacts:
    side: str  # "input" or "output"
    port: str
    source: str
    target: str
    read_only: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "port": self.port,
            "source": self.source,
            "target": self.target,
            "read_only": self.read_only,
        }


@dataclass(frozen=True)
class LimitFacts:
    resources: Resources
    overridden: tuple[str, ...] = ()  # the limits given on the command line

    def to_json(self) -> dict[str, Any]:
        r = self.resources
        return {
            "memory": r.memory,
            "memory_swap": r.memory,
            "cpus": r.cpus,
            "nano_cpus": round(r.cpus * 1e9),
            "pids": r.pids,
            "timeout_s": r.timeout,
            "disk": r.disk,
            "logs": r.logs,
            "ulimits": {"nofile": NOFILE, "fsize": r.disk},
            "from_command_line": list(self.overridden),
        }


@dataclass(frozen=True)
class InputFacts:
    path: str
    target: str
    manifest: TreeManifest
    unchanged: bool | None = None
    root_after: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "target": self.target,
            "manifest": self.manifest.to_json(),
            "unchanged": self.unchanged,
            "root_after": self.root_after,
        }


@dataclass(frozen=True)
class OutputFacts:
    path: str
    target: str
    manifest: TreeManifest | None = None
    preexisting: TreeManifest | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "target": self.target,
            "manifest": None if self.manifest is None else self.manifest.to_json(),
            "preexisting": None if self.preexisting is None else self.preexisting.to_json(),
        }


@dataclass(frozen=True)
class RunRecord:
    """One run as recorded; :meth:`to_json` is the ``gefreg.run/1`` document."""

    id: str
    status: str
    service: ServiceFacts
    image: ResolvedImage
    entrypoint: tuple[str, ...] | None
    command: tuple[str, ...]
    args: tuple[str, ...]
    container: ContainerFacts
    mounts: tuple[MountFacts, ...]
    hardening: Hardening
    limits: LimitFacts
    caller: tuple[int, int]  # uid, gid
    run_as: str  # uid:gid of the container
    created: str
    logs: tuple[LogFacts, LogFacts]  # stdout, stderr
    inputs: Mapping[str, InputFacts]
    outputs: Mapping[str, OutputFacts]
    volatile: tuple[str, ...]
    host: Mapping[str, Any]
    environment: Mapping[str, str] = field(default_factory=dict)
    applied: Mapping[str, Any] | None = None
    handed_back: int | None = None
    started: str | None = None
    ended: str | None = None
    duration_s: float | None = None
    exit_code: int | None = None
    oom_killed: bool | None = None
    error: str | None = None
    reproduces: str | None = None
    disk_enforced_by: str | None = None  # "filesystem" or "watching"
    delivery: Delivery | None = None
    gefreg_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "id": self.id,
            "status": self.status,
            "service": self.service.to_json(),
            "image": self.image.to_json(),
            "entrypoint": None if self.entrypoint is None else list(self.entrypoint),
            "command": list(self.command),
            "args": list(self.args),
            "container": self.container.to_json(),
            "environment": dict(self.environment),
            "mounts": [m.to_json() for m in self.mounts],
            "hardening": self.hardening.to_json(),
            "limits": self.limits.to_json(),
            "applied": None if self.applied is None else dict(self.applied),
            "caller": {"uid": self.caller[0], "gid": self.caller[1]},
            "run_as": self.run_as,
            "handed_back": self.handed_back,
            "created": self.created,
            "started": self.started,
            "ended": self.ended,
            "duration_s": self.duration_s,
            "exit_code": self.exit_code,
            "oom_killed": self.oom_killed,
            "error": self.error,
            "logs": {"stdout": self.logs[0].to_json(), "stderr": self.logs[1].to_json()},
            "inputs": {port: facts.to_json() for port, facts in self.inputs.items()},
            "outputs": {port: facts.to_json() for port, facts in self.outputs.items()},
            "disk_enforced_by": self.disk_enforced_by,
            "delivery": None if self.delivery is None else self.delivery.to_json(),
            "volatile": list(self.volatile),
            "reproduces": self.reproduces,
            "host": dict(self.host),
            "gefreg_version": self.gefreg_version,
        }


def now() -> datetime:
    return datetime.now(UTC)


def timestamp(when: datetime) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2025-01-31T12:00:00.123Z."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def default_record_path(state_dir: Path, name: str, run_id: str, when: datetime) -> Path:
    short = run_id.rsplit(":", 1)[-1][:8]
    return state_dir / RUNS_DIR / f"{when.strftime('%Y%m%dT%H%M%SZ')}-{name}-{short}" / "run.json"


def log_paths(record: Path) -> tuple[Path, Path]:
    return (
        record.with_name(record.stem + ".stdout.log"),
        record.with_name(record.stem + ".stderr.log"),
    )


def write_record(path: Path, record: RunRecord | Mapping[str, Any], *, new: bool = False) -> None:
    """Write atomically: a reader sees the old record or the new one, never half of one.

    ``new``: the record must not exist yet — it is linked into place, so a file that appeared
    there in the meantime is never replaced (BadInput instead).
    """
    data = record.to_json() if isinstance(record, RunRecord) else record
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        if not new:
            os.replace(tmp, path)
            return
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise EnvironmentFailure(
            f"cannot write the run record {path}: {exc.strerror or exc}"
        ) from None
    try:
        _link_new(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _link_new(tmp: Path, path: Path) -> None:
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:  # no hard links here: reserve the name, then replace it
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            os.replace(tmp, path)
    except FileExistsError:
        raise BadInput(
            f"{path} appeared while gefreg was running; it was left as it is",
            "gefreg never overwrites files: choose another --record",
        ) from None
    except OSError as exc:
        raise EnvironmentFailure(
            f"cannot write the run record {path}: {exc.strerror or exc}"
        ) from None


def check_new_files(record: Path) -> None:
    """The record and its two log files must not exist yet: gefreg never overwrites a file."""
    for path in (record, *log_paths(record)):
        if path.exists() or path.is_symlink():
            what = "a run record" if path == record else "a log file"
            raise BadInput(
                f"{what} already exists at {path}",
                "choose another --record (its logs go next to it as <stem>.stdout.log and "
                "<stem>.stderr.log); gefreg never overwrites files",
            )


def read_run_record(path: Path) -> dict[str, Any]:
    """A run record, checked for its schema version and required fields."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"no run record at {path}") from None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: not a readable run record ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else None
        raise BadInput(f"{path}: expected a {SCHEMA} run record, found schema {found!r}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise BadInput(f"{path}: run record lacks {', '.join(missing)}")
    if data["status"] not in STATUSES:
        raise BadInput(f"{path}: unknown status {data['status']!r}")
    return data


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_facts(engine_facts: Mapping[str, str]) -> dict[str, Any]:
    uname = os.uname()
    return {
        "hostname": uname.nodename,
        "kernel": uname.release,
        "machine": uname.machine,
        "os": platform.platform(terse=True),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "engine": dict(engine_facts),
        "python": platform.python_version(),
    }
