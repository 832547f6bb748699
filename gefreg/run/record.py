"""The run record: one JSON file per run saying exactly what ran, on what, how, and what came out.

Schema ``gefreg.run/1`` (full field reference: ``docs/run-record.md``). Written atomically
(temporary file, fsync, rename) twice: once with status ``incomplete`` before the container
starts — so a crash or a vanished engine never leaves a record claiming success — and once
when the run has ended and every output was hashed. ``stdout``/``stderr`` are saved next to the
record as ``<stem>.stdout.log``/``<stem>.stderr.log`` with their sha256 in the record. None of
the three may exist before the run (:func:`check_new_files`), and each is created exclusively:
gefreg never overwrites a file.

Default location: ``--record FILE`` if given, else
``<state dir>/runs/<UTC timestamp>-<name>-<id8>/run.json`` (the state dir is ``$GEFREG_STATE``
or ``.gefreg`` next to the catalog): never inside an output folder, so a record cannot change
the outputs it describes.

Mapping onto a Workflow Run RO-Crate (Process Run Crate profile, a ``CreateAction``;
:func:`to_create_action` writes the JSON-LD entities):

====================================  =========================================================
run record                            RO-Crate / schema.org
====================================  =========================================================
``id`` (urn:uuid)                     ``CreateAction`` ``@id``
``service.name``, ``.version``        ``instrument`` → ``SoftwareApplication`` (name,
                                      softwareVersion)
``image.*``                           ``containerImage`` → ``ContainerImage`` (additionalType
                                      DockerImage, registry, name, tag, sha256)
``command`` + ``args``                ``description`` (the command line, informational)
``environment``                       ``environment`` → ``PropertyValue`` (name, value)
``inputs.PORT``                       ``object`` → ``Dataset`` per port, ``hasPart`` → ``File``
                                      (contentSize, sha256)
``outputs.PORT``                      ``result`` → ``Dataset`` per port, same shape
``started`` / ``ended``               ``startTime`` / ``endTime``
``status``                            ``actionStatus``: succeeded → CompletedActionStatus,
                                      failed / timed-out / interrupted / incomplete →
                                      FailedActionStatus
``error``                             ``error``
``host``, ``limits``, ``hardening``,  no standard term: kept as gefreg-specific properties
``applied``, ``gefreg_version``
====================================  =========================================================
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gefreg import __version__
from gefreg.errors import BadInput, EnvironmentFailure

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


def new_run_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


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


def write_record(path: Path, data: Mapping[str, Any], *, new: bool = False) -> None:
    """Write atomically: a reader sees the old record or the new one, never half of one.

    ``new``: the record must not exist yet — it is linked into place, so a file that appeared
    there in the meantime is never replaced (BadInput instead).
    """
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
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


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


def gefreg_version() -> str:
    return __version__


ACTION_STATUS = {
    "succeeded": "http://schema.org/CompletedActionStatus",
    "failed": "http://schema.org/FailedActionStatus",
    "timed-out": "http://schema.org/FailedActionStatus",
    "interrupted": "http://schema.org/FailedActionStatus",
    "incomplete": "http://schema.org/FailedActionStatus",
}


def to_create_action(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The record as RO-Crate JSON-LD entities: the CreateAction first, then what it links to.

    Put them in a crate's ``@graph`` (with the workflow-run context) and list the action under
    the root dataset's ``mentions``.
    """
    service = record["service"]
    image = record["image"]
    app_id = f"#service-{service['name']}-{service.get('version') or 'unversioned'}"
    image_id = "#image-" + str(image["image_id"]).removeprefix("sha256:")[:16]
    action: dict[str, Any] = {
        "@id": record["id"],
        "@type": "CreateAction",
        "name": f"Run of {service['name']} {service.get('version') or ''}".strip(),
        "description": " ".join([*record["command"], *record["args"]]),
        "instrument": {"@id": app_id},
        "containerImage": {"@id": image_id},
        "actionStatus": {"@id": ACTION_STATUS[record["status"]]},
        "object": [],
        "result": [],
        "environment": [],
    }
    if record.get("started"):
        action["startTime"] = record["started"]
    if record.get("ended"):
        action["endTime"] = record["ended"]
    if record.get("error"):
        action["error"] = record["error"]
    entities: list[dict[str, Any]] = [
        action,
        {
            "@id": app_id,
            "@type": "SoftwareApplication",
            "name": service["name"],
            **({"softwareVersion": service["version"]} if service.get("version") else {}),
        },
    ]
    container: dict[str, Any] = {
        "@id": image_id,
        "@type": "ContainerImage",
        "additionalType": {"@id": "https://w3id.org/ro/terms/workflow-run#DockerImage"},
        "name": image.get("repository") or service["name"],
        "registry": image.get("registry") or "local",
        "sha256": str(image.get("manifest_digest") or image["image_id"]).removeprefix("sha256:"),
    }
    if service.get("version"):
        container["tag"] = service["version"]
    entities.append(container)
    for key, value in sorted((record.get("environment") or {}).items()):
        pv_id = f"#env-{key}"
        action["environment"].append({"@id": pv_id})
        entities.append({"@id": pv_id, "@type": "PropertyValue", "name": key, "value": value})
    for side, prop in (("inputs", "object"), ("outputs", "result")):
        for port, data in sorted((record.get(side) or {}).items()):
            if not data or not data.get("manifest"):
                continue
            base = f"{side}/{port}/"
            parts = []
            for f in data["manifest"]["files"]:
                file_id = base + f["path"]
                parts.append({"@id": file_id})
                entities.append(
                    {
                        "@id": file_id,
                        "@type": "File",
                        "contentSize": f["size"],
                        "sha256": f["sha256"].removeprefix("sha256:"),
                    }
                )
            action[prop].append({"@id": base})
            entities.append(
                {
                    "@id": base,
                    "@type": "Dataset",
                    "name": f"{side[:-1]} port {port}",
                    "alternateName": data.get("target"),
                    "hasPart": parts,
                }
            )
    return entities
