"""`gefreg reproduce` on damaged run records: BadInput naming the field, never a traceback."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from gefreg.errors import BadInput
from gefreg.run.record import write_record
from gefreg.run.reproduce import reproduce
from gefreg.settings import Settings
from tests.unit.test_runrecord import sample_record


def damaged(change: Any) -> dict[str, Any]:
    record = copy.deepcopy(sample_record())
    change(record)
    return record


def _set(path: str, value: Any) -> Any:
    def change(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = record
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is KeyError:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


CASES = [
    (_set("image", "sha256:abc"), "field image: expected an object"),
    (_set("image.image_id", KeyError), "field image.image_id is missing"),
    (_set("image.image_id", "latest"), "field image.image_id: expected sha256"),
    (_set("image.name", 7), "field image.name: expected a non-empty string"),
    (_set("image.trusted", "yes"), "field image.trusted: expected true or false"),
    (_set("service", None), "field service: expected an object"),
    (_set("service.name", KeyError), "field service.name is missing"),
    (_set("service.user", "root"), "field service.user: expected an integer"),
    (_set("limits.cpus", "fast"), "field limits.cpus: expected a number"),
    (_set("limits.cpus", float("inf")), "field limits.cpus: expected a number from"),
    (_set("limits.timeout_s", KeyError), "field limits.timeout_s is missing"),
    (_set("limits.memory", 10**30), "field limits.memory: expected a size from 4m to 1t"),
    (_set("mounts", {}), "field mounts: expected a list"),
    (_set("mounts.0", "in"), r"field mounts\[0\]: expected an object"),
    (_set("mounts.0.target", KeyError), r"field mounts\[0\].target is missing"),
    (_set("mounts.0.side", "sideways"), r"field mounts\[0\].side: expected 'input' or"),
    (_set("command", "/bin/tool"), "field command: expected a list"),
    (_set("command", ["/bin/tool", 3]), r"field command\[1\]: expected a string"),
    (_set("args", None), "field args: expected a list"),
    (_set("id", 12), "field id: expected a non-empty string"),
    (_set("inputs", []), "field inputs: expected an object"),
    (_set("inputs.in", KeyError), r"field inputs: expected one entry per input port \(in\)"),
    (_set("inputs.in.path", KeyError), "field inputs.in.path is missing"),
    (_set("inputs.in.manifest", KeyError), "field inputs.in.manifest is missing"),
    (_set("outputs.out.manifest", None), "outputs.out: not a manifest"),
    (_set("volatile", "out/*"), "field volatile: expected a list"),
]


@pytest.mark.parametrize("change,message", CASES)
def test_a_damaged_record_is_bad_input(tmp_path: Path, change: Any, message: str) -> None:
    path = tmp_path / "run.json"
    write_record(path, damaged(change))
    settings = Settings(tmp_path / "catalog", "127.0.0.1:1", tmp_path / "state")
    with pytest.raises(BadInput, match=message) as info:
        reproduce(settings, None, path)  # type: ignore[arg-type]  # never reaches the engine
    assert str(path) in info.value.message
    assert not (tmp_path / "state").exists()
