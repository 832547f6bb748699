"""Run record schema: atomic writes, validation on read, the RO-Crate CreateAction mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gefreg.errors import BadInput
from gefreg.run.crate import to_create_action
from gefreg.run.record import (
    REQUIRED,
    SCHEMA,
    check_new_files,
    cpu_model,
    default_record_path,
    host_facts,
    log_paths,
    read_run_record,
    timestamp,
    write_record,
)
from gefreg.run.recorded import interface_from_record
from gefreg.run.tree_manifest import FileEntry, TreeManifest


def sample_record(**overrides: Any) -> dict[str, Any]:
    inputs = TreeManifest.of([FileEntry("a.csv", 3, "sha256:" + "1" * 64)])
    outputs = TreeManifest.of([FileEntry("r.txt", 5, "sha256:" + "2" * 64)])
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "id": "urn:uuid:00000000-0000-4000-8000-000000000000",
        "status": "succeeded",
        "service": {"name": "demo", "version": "1.0.0", "trusted": True, "user": 10001},
        "image": {
            "name": "demo",
            "version": "1.0.0",
            "image_id": "sha256:" + "a" * 64,
            "manifest_digest": None,
            "registry": None,
            "repository": None,
            "ref": "demo",
            "trusted": True,
            "source": "build-record",
        },
        "command": ["/bin/tool", "/data/in"],
        "args": ["--fast"],
        "environment": {"PATH": "/bin"},
        "mounts": [
            {"side": "input", "port": "in", "source": "/x", "target": "/data/in"},
            {"side": "output", "port": "out", "source": "/y", "target": "/data/out"},
        ],
        "limits": {"memory": 2**27, "cpus": 0.5, "timeout_s": 60.0, "pids": 64},
        "started": "2025-01-01T00:00:00.000Z",
        "ended": "2025-01-01T00:00:01.000Z",
        "inputs": {"in": {"path": "/x", "target": "/data/in", "manifest": inputs.to_json()}},
        "outputs": {"out": {"path": "/y", "target": "/data/out", "manifest": outputs.to_json()}},
        "volatile": ["out/stamp"],
    }
    record.update(overrides)
    return record


def test_write_is_atomic_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "run.json"
    write_record(path, sample_record())
    assert read_run_record(path) == sample_record()
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]  # no temporary left


def test_a_new_record_never_replaces_a_file(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_record(path, sample_record(), new=True)
    assert read_run_record(path) == sample_record()
    write_record(path, sample_record(status="failed"))  # the run's own second write
    path.write_text("someone else's")
    with pytest.raises(BadInput, match="appeared while gefreg was running"):
        write_record(path, sample_record(), new=True)
    assert path.read_text() == "someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary left


@pytest.mark.parametrize("existing", ["run.json", "run.stdout.log", "run.stderr.log"])
def test_record_and_logs_must_be_new(tmp_path: Path, existing: str) -> None:
    check_new_files(tmp_path / "run.json")
    (tmp_path / existing).write_text("user data")
    with pytest.raises(BadInput, match=f"already exists at {tmp_path / existing}"):
        check_new_files(tmp_path / "run.json")


@pytest.mark.parametrize(
    "change,message",
    [
        ({"schema": "gefreg.run/0"}, "expected a gefreg.run/1 run record"),
        ({"status": "great"}, "unknown status"),
    ],
)
def test_read_refuses_wrong_schema_or_status(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "run.json"
    write_record(path, sample_record(**change))
    with pytest.raises(BadInput, match=message):
        read_run_record(path)


def test_read_refuses_missing_fields_and_junk(tmp_path: Path) -> None:
    record = sample_record()
    del record["mounts"]
    write_record(tmp_path / "a.json", record)
    with pytest.raises(BadInput, match="lacks mounts"):
        read_run_record(tmp_path / "a.json")
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(BadInput, match="not a readable run record"):
        read_run_record(tmp_path / "b.json")
    with pytest.raises(BadInput, match="no run record"):
        read_run_record(tmp_path / "c.json")
    assert "schema" in REQUIRED and "outputs" in REQUIRED


def test_default_location_and_log_names(tmp_path: Path) -> None:
    when = datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
    path = default_record_path(tmp_path, "demo", "urn:uuid:1a2b3c4d-0000", when)
    assert path == tmp_path / "runs" / "20250131T120000Z-demo-1a2b3c4d" / "run.json"
    assert [p.name for p in log_paths(path)] == ["run.stdout.log", "run.stderr.log"]
    assert timestamp(when) == "2025-01-31T12:00:00.123Z"


def test_host_facts() -> None:
    facts = host_facts({"engine": "20.10"})
    assert facts["kernel"] and facts["cpu_count"] and facts["engine"] == {"engine": "20.10"}
    assert cpu_model() == facts["cpu_model"] != ""


def test_interface_comes_back_from_the_record() -> None:
    face = interface_from_record(sample_record())
    assert [p.name for p in face.inputs] == ["in"] and face.outputs[0].path == "/data/out"
    assert face.resources.timeout == 60.0 and face.volatile == ("out/stamp",)
    assert face.command == ("/bin/tool", "/data/in")


def test_create_action_mapping() -> None:
    entities = to_create_action(sample_record())
    action = entities[0]
    by_id = {e["@id"]: e for e in entities}
    assert action["@type"] == "CreateAction" and action["@id"].startswith("urn:uuid:")
    assert action["actionStatus"]["@id"] == "http://schema.org/CompletedActionStatus"
    assert action["startTime"] and action["endTime"]
    assert action["description"] == "/bin/tool /data/in --fast"
    app = by_id[action["instrument"]["@id"]]
    assert app["@type"] == "SoftwareApplication" and app["softwareVersion"] == "1.0.0"
    image = by_id[action["containerImage"]["@id"]]
    assert image["@type"] == "ContainerImage" and image["sha256"] == "a" * 64
    [obj] = action["object"]
    assert action["result"] == [{"@id": "outputs/out/"}]
    assert by_id[obj["@id"]]["hasPart"] == [{"@id": "inputs/in/a.csv"}]
    assert by_id["outputs/out/r.txt"]["contentSize"] == 5
    assert by_id[action["environment"][0]["@id"]] == {
        "@id": "#env-PATH",
        "@type": "PropertyValue",
        "name": "PATH",
        "value": "/bin",
    }
    failed = to_create_action(sample_record(status="timed-out", error="killed after 2 s"))[0]
    assert failed["actionStatus"]["@id"].endswith("FailedActionStatus")
    assert failed["error"] == "killed after 2 s"
    json.dumps(entities)  # plain JSON
