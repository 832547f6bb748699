"""What admission decided about a task (:mod:`gefreg.serve.admission`), kept with it in the
task store as JSON, so that a worker carries out exactly what was admitted: the releases of
its executors, where each input comes from and which port folder it goes to, where each output
is taken from and delivered to, and the limits asked for."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ExecutorPlan:
    image: str  # as submitted
    name: str
    version: str
    digest: str
    repository: str
    args: tuple[str, ...] = ()
    stdout: str | None = None  # container path inside one of its output ports
    stderr: str | None = None
    ignore_error: bool = False


@dataclass(frozen=True)
class InputPlan:
    index: int
    kind: str  # content | file | http | b2share | doi | hdl
    path: str
    type: str  # FILE | DIRECTORY (for doi/hdl/b2share/http: as given, else FILE)
    port: str  # the container path of the port it goes to
    rel: str  # where inside the port folder ('' = the folder itself)
    url: str | None = None
    target: str | None = None  # local path, URL without fragment, DOI or handle
    checksum: str | None = None
    record: str | None = None
    in_place: bool = False
    name: str | None = None


@dataclass(frozen=True)
class OutputPlan:
    index: int
    url: str
    dest: str  # the resolved host path under a data root
    path: str
    type: str
    port: str
    executor: int
    rel: str  # inside the port folder ('' = the folder itself); a pattern when wildcard
    prefix: str | None = None  # path_prefix, for wildcard outputs
    name: str | None = None


@dataclass(frozen=True)
class TaskPlan:
    executors: tuple[ExecutorPlan, ...]
    inputs: tuple[InputPlan, ...] = ()
    outputs: tuple[OutputPlan, ...] = ()
    input_ports: tuple[str, ...] = ()  # every input port path of every executor
    memory: int | None = None
    cpus: float | None = None
    disk: int | None = None
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskPlan:
        return cls(
            executors=tuple(
                ExecutorPlan(**{**e, "args": tuple(e["args"])}) for e in data["executors"]
            ),
            inputs=tuple(InputPlan(**i) for i in data["inputs"]),
            outputs=tuple(OutputPlan(**o) for o in data["outputs"]),
            input_ports=tuple(data["input_ports"]),
            memory=data.get("memory"),
            cpus=data.get("cpus"),
            disk=data.get("disk"),
            warnings=tuple(data.get("warnings") or ()),
        )
