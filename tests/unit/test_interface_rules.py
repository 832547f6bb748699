"""One set of rules for ports, user and limits, whatever the interface was read from: image
labels, a ledger line, a run record or the command line (issue 11.3). Each refusal is exit 2
naming the file, the line where there is one, and the field in the source's own terms."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gefreg.errors import BadInput
from gefreg.image.interface import InvalidInterface, ServiceInterface, violations
from gefreg.jsonfields import line_of_field
from gefreg.model import Port, Resources
from gefreg.run.plan import LimitOverrides, apply_overrides
from gefreg.run.recorded import interface_from_record
from tests.unit.test_runrecord import sample_record

GOOD = ServiceInterface(
    "demo", "1.0.0", (Port("in", "/data/in"),), (Port("out", "/data/out"),), ("/bin/tool",)
)

# (what is wrong, the interface field, a change to the interface)
BAD: list[tuple[str, str, dict[str, Any]]] = [
    ("would hide a system directory", "outputs[0].path", {"outputs": (Port("out", "/bin"),)}),
    ("would hide a system directory", "inputs[0].path", {"inputs": (Port("in", "/etc/x"),)}),
    ("expected an absolute path", "outputs[0].path", {"outputs": (Port("out", "rel"),)}),
    ("expected an absolute path", "outputs[0].path", {"outputs": (Port("out", "/a/../etc"),)}),
    ("overlaps", "outputs[0].path", {"outputs": (Port("out", "/data/in/out"),)}),
    ("is not a port name", "outputs[0].name", {"outputs": (Port("x y", "/data/out"),)}),
    ("non-root uid", "user", {"user": 0}),
    ("a size from 4m to 1t", "resources.memory", {"resources": Resources(memory=2**60)}),
    ("a number from 0.01", "resources.cpus", {"resources": Resources(cpus=float("nan"))}),
    ("up to a year", "resources.timeout", {"resources": Resources(timeout=1e12)}),
    ("from 1 to 4194304", "resources.pids", {"resources": Resources(pids=0)}),
    ("a size from 1m to 64t", "resources.disk", {"resources": Resources(disk=10)}),
]


def test_a_good_interface_passes() -> None:
    assert violations(GOOD) == []


@pytest.mark.parametrize("message,field,change", BAD)
def test_every_rule_has_a_field(message: str, field: str, change: dict[str, Any]) -> None:
    import dataclasses

    found = violations(dataclasses.replace(GOOD, **change))
    assert [(f, m) for f, m in found if message in m] and field in [f for f, _ in found]


@pytest.mark.parametrize("message,field,change", BAD)
def test_a_ledger_line(message: str, field: str, change: dict[str, Any]) -> None:
    import dataclasses

    data = dataclasses.replace(GOOD, **change).to_json()
    data = json.loads(json.dumps(data, allow_nan=True))
    with pytest.raises(BadInput) as info:
        ServiceInterface.from_json(data, "catalog/demo/releases.jsonl:3", prefix="interface.")
    assert info.value.exit_code == 2
    assert f"catalog/demo/releases.jsonl:3: field interface.{field}:" in info.value.message
    assert message in info.value.message


def record_with(change: dict[str, Any]) -> dict[str, Any]:
    record = copy.deepcopy(sample_record())
    record["service"]["user"] = change.get("user", 10001)
    if "outputs" in change:
        port = change["outputs"][0]
        record["mounts"][1].update(port=port.name, target=port.path)
    if "inputs" in change:
        record["mounts"][0]["target"] = change["inputs"][0].path
    if "resources" in change:
        r = change["resources"]
        record["limits"].update(
            memory=r.memory, cpus=r.cpus, timeout_s=r.timeout, pids=r.pids, disk=r.disk
        )
    return record


RECORD_FIELDS = {
    "outputs[0].path": "mounts[1].target",
    "inputs[0].path": "mounts[0].target",
    "outputs[0].name": "mounts[1].port",
    "user": "service.user",
    "resources.memory": "limits.memory",
    "resources.cpus": "limits.cpus",
    "resources.timeout": "limits.timeout_s",
    "resources.pids": "limits.pids",
    "resources.disk": "limits.disk",
}


@pytest.mark.parametrize("message,field,change", BAD)
def test_a_run_record(tmp_path: Path, message: str, field: str, change: dict[str, Any]) -> None:
    record = record_with(change)
    text = json.dumps(record, indent=2)
    own = RECORD_FIELDS[field]
    with pytest.raises(BadInput) as info:
        interface_from_record(json.loads(text), "run.json", text)
    assert info.value.exit_code == 2
    # the file, the line of the field, the field as the record names it
    line = line_of_field(text, own)
    assert line is not None and f'"{own.rsplit(".", 1)[1]}":' in text.splitlines()[line - 1]
    assert f"run.json:{line}: field {own}" in info.value.message, info.value.message


def test_the_line_of_a_json_field() -> None:
    text = '{\n  "a": 1,\n  "m": [\n    {"t": "x"},\n    {\n      "t": "/bin"\n    }\n  ]\n}'
    assert line_of_field(text, "m[1].t") == 6
    assert line_of_field(text, "m[0].t") == 4
    assert line_of_field(text, "a") == 2
    assert line_of_field(text, "m[2].t") is None and line_of_field(text, "b") is None
    assert line_of_field("not json", "a") is None
    assert line_of_field(json.dumps({"a": {"b": [1, 2]}}), "a.b[1]") == 1


def test_image_labels() -> None:
    labels = {
        "eudat.gef.service.input.1.name": "in",
        "eudat.gef.service.input.1.path": "/data/in",
        "eudat.gef.service.output.3.name": "out",
        "eudat.gef.service.output.3.path": "/bin",
    }
    with pytest.raises(InvalidInterface) as info:
        ServiceInterface.from_labels("evil/tool", labels, ["true"])
    assert info.value.message == (
        "image evil/tool: field GEF label eudat.gef.service.output.3.path: "
        "'/bin' would hide a system directory"
    )


@pytest.mark.parametrize(
    "over,option,message",
    [
        (LimitOverrides(memory="2t"), "--memory", "a size from 4m to 1t"),
        (LimitOverrides(disk="10"), "--disk", "a size from 1m to 64t"),
        (LimitOverrides(logs="2g"), "--log-limit", "a size up to 1g"),
        (LimitOverrides(pids=0), "--pids", "from 1 to 4194304"),
    ],
)
def test_the_command_line(over: LimitOverrides, option: str, message: str) -> None:
    with pytest.raises(BadInput, match=message) as info:
        apply_overrides(Resources(), over)
    assert info.value.message.startswith(f"{option} ") and info.value.exit_code == 2


def test_every_problem_at_once() -> None:
    import dataclasses

    face = dataclasses.replace(GOOD, outputs=(Port("out", "/bin"),), user=0)
    with pytest.raises(InvalidInterface) as info:
        ServiceInterface.from_json(face.to_json(), "releases.jsonl:2", prefix="interface.")
    assert info.value.message.startswith("2 problems:")
    assert "interface.outputs[0].path" in info.value.message
    assert "interface.user" in info.value.message
