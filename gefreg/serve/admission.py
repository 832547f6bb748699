"""What a submitted task may do, decided before it is stored: every executor names a catalog
release, every input and output maps onto a port of those releases, local data lies under a
data root, and the resources are within bounds. The answer is a :class:`TaskPlan` (kept with
the task, so a worker runs exactly what was admitted) or an error the API turns into 400
(:class:`~gefreg.errors.BadInput`) or 403 (:class:`~gefreg.serve.urls.Forbidden`).

Mapping onto ports: an input or output ``path`` must be a release's port folder or lie inside
one. Inputs are staged into one folder per input port; a ``file://`` folder that fills a port
by itself is mounted as it is (read-only, hashed before and after by the runner). An output is
taken from the last executor that has an output port holding its path. An executor's
``command`` is empty (the release's command) or the release's command followed by arguments;
``stdout``/``stderr`` may name a file in one of its output ports (the captured log is put
there); ``workdir``, ``stdin``, ``env`` and ``volumes`` are refused: the release fixes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gefreg.engine import Engine
from gefreg.errors import BadInput
from gefreg.image.interface import ServiceInterface
from gefreg.limits import check
from gefreg.model import Port
from gefreg.serve import urls
from gefreg.serve.config import ServeConfig
from gefreg.serve.releases import trusted_release
from gefreg.serve.task_plan import ExecutorPlan, InputPlan, OutputPlan, TaskPlan
from gefreg.serve.tes_models import TesExecutor, TesFileType, TesInput, TesOutput, TesTask
from gefreg.serve.urls import Forbidden

GB = 1024**3
GLOB_CHARS = frozenset("*?[")


def clean_path(path: str, what: str) -> str:
    """An absolute, normalized container path (no ``..``, no control characters)."""
    if not path.startswith("/") or any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise BadInput(f"{what}: {path[:200]!r} is not an absolute path", "e.g. /data/input/a.txt")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts) or any(len(p.encode()) > 255 for p in parts):
        raise BadInput(f"{what}: {path[:200]!r}: no '.' or '..' and names up to 255 bytes")
    return "/" + "/".join(parts)


def _within(path: str, port: str) -> str | None:
    """``path`` relative to the port folder ``port`` ('' for the folder), else None."""
    if path == port:
        return ""
    if path.startswith(port.rstrip("/") + "/"):
        return path[len(port.rstrip("/")) + 1 :]
    return None


def _port_for(path: str, ports: Sequence[Port]) -> tuple[Port, str] | None:
    for port in ports:
        rel = _within(path, clean_path(port.path, "port"))
        if rel is not None:
            return port, rel
    return None


def _executor(
    number: int, spec: TesExecutor, image_text: str, face: ServiceInterface, image: Any
) -> ExecutorPlan:
    what = f"executors[{number}]"
    command = list(spec.command)
    own = list(face.command)
    if command and command[: len(own)] != own:
        raise BadInput(
            f"{what}.command: must be the release's command {own} followed by arguments "
            "(or empty for the command alone)",
            f"{face.name} {face.version} runs {' '.join(own)}",
        )
    for key in ("workdir", "stdin"):
        if getattr(spec, key):
            raise BadInput(f"{what}.{key}: not supported; the release fixes it", "leave it out")
    if spec.env:
        raise BadInput(f"{what}.env: the release fixes its environment", "leave env out")
    logs: dict[str, str | None] = {}
    for key in ("stdout", "stderr"):
        value = getattr(spec, key)
        if value:
            value = clean_path(value, f"{what}.{key}")
            found = _port_for(value, face.outputs)
            if found is None or not found[1]:
                raise BadInput(
                    f"{what}.{key}: {value} is not a file inside an output port of {face.name}",
                    "output ports: " + ", ".join(p.path for p in face.outputs),
                )
        logs[key] = value
    return ExecutorPlan(
        image=image_text,
        name=face.name,
        version=str(face.version),
        digest=str(image.manifest_digest),
        repository=str(image.repository),
        args=tuple(command[len(own) :]) if command else (),
        stdout=logs["stdout"],
        stderr=logs["stderr"],
        ignore_error=bool(spec.ignore_error),
    )


def _local_input(config: ServeConfig, index: int, spec: TesInput, target: str) -> tuple[Path, str]:
    what = f"inputs[{index}].url"
    found = urls.local_path(target, config.data_roots, what)
    if not found.exists():
        raise BadInput(f"{what}: {target} does not exist")
    kind = TesFileType.DIRECTORY.value if found.is_dir() else TesFileType.FILE.value
    if not found.is_dir() and not found.is_file():
        raise BadInput(f"{what}: {target} is neither a file nor a folder")
    if spec.type is not None and spec.type.value != kind:
        raise BadInput(f"{what}: {target} is a {kind.lower()}, the input says {spec.type.value}")
    return found, kind


def _input(config: ServeConfig, index: int, spec: TesInput, ports: Sequence[Port]) -> InputPlan:
    what = f"inputs[{index}]"
    path = clean_path(spec.path, f"{what}.path")
    found = _port_for(path, ports)
    if found is None:
        raise BadInput(
            f"{what}.path: {path} is not inside an input port of the task's releases",
            "input ports: " + ", ".join(sorted({p.path for p in ports})),
        )
    port, rel = found
    base: dict[str, Any] = {
        "index": index,
        "path": path,
        "port": clean_path(port.path, "port"),
        "name": spec.name,
    }
    if spec.content is not None and (spec.content != "" or spec.url is None):
        rel = _file_rel(what, rel, port, spec.type)
        return InputPlan(kind="content", type="FILE", rel=rel, target=spec.content, **base)
    if spec.url is None:
        raise BadInput(f"{what}: give a url or content")
    source = urls.classify(spec.url, config.b2share_hosts)
    if source.kind == "file":
        local, kind = _local_input(config, index, spec, source.target)
        if kind == "FILE":
            rel = _file_rel(what, rel, port, spec.type)
        return InputPlan(kind="file", type=kind, rel=rel, url=spec.url, target=str(local), **base)
    if source.kind in ("http", "b2share"):
        urls.check_host(source.target, config.allow_hosts)
    kind = spec.type.value if spec.type else "FILE"
    if kind == "DIRECTORY" and source.kind == "http":
        raise BadInput(f"{what}: an http(s) URL is one file; give type FILE")
    if kind == "FILE":
        rel = _file_rel(what, rel, port, spec.type)
    return InputPlan(
        kind=source.kind,
        type=kind,
        rel=rel,
        url=spec.url,
        target=source.target,
        checksum=source.checksum,
        record=source.record,
        **base,
    )


def _file_rel(what: str, rel: str, port: Port, given: TesFileType | None) -> str:
    """Where a file goes in its port folder: a file cannot be the folder itself, unless the
    port names the file it expects (GEF ``filename``)."""
    if rel:
        return rel
    if port.filename and given != TesFileType.DIRECTORY:
        return port.filename
    raise BadInput(
        f"{what}.path: {port.path} is the port folder itself; a file goes inside it",
        f"e.g. {port.path.rstrip('/')}/data.bin",
    )


def _in_place(inputs: list[InputPlan]) -> list[InputPlan]:
    """Local folders that fill a port alone are mounted in place; overlapping inputs refused."""
    out = []
    for plan in inputs:
        others = [o for o in inputs if o is not plan and o.port == plan.port]
        for other in others:
            if _within(other.path, plan.path) is not None:
                raise BadInput(
                    f"inputs[{other.index}].path {other.path} overlaps inputs[{plan.index}].path "
                    f"{plan.path}"
                )
        alone = plan.kind == "file" and plan.type == "DIRECTORY" and not plan.rel and not others
        out.append(InputPlan(**{**asdict(plan), "in_place": alone}))
    return out


def _destination(config: ServeConfig, index: int, spec: TesOutput, kind: str) -> Path:
    what = f"outputs[{index}].url"
    source = urls.classify(spec.url)
    if source.kind != "file":
        raise BadInput(
            f"{what}: outputs go to file:// destinations under a data root",
            "data roots: " + ", ".join(str(r) for r in config.data_roots),
        )
    dest = Path(source.target)
    existing = dest
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    resolved = urls.local_path(str(existing), config.data_roots, what)
    if existing != dest and not resolved.is_dir():
        raise BadInput(
            f"{what}: {existing} is not a folder; the output cannot go inside it",
            "choose a destination in a folder under a data root",
        )
    full = resolved / dest.relative_to(existing) if existing != dest else resolved
    if full.exists() and (kind == "FILE" or not full.is_dir() or any(full.iterdir())):
        raise BadInput(
            f"{what}: {source.target} already exists; outputs never overwrite anything",
            "choose a new path (or an empty folder for a DIRECTORY output)",
        )
    return full


def _output(
    config: ServeConfig, index: int, spec: TesOutput, faces: Sequence[ServiceInterface]
) -> OutputPlan:
    what = f"outputs[{index}]"
    path = clean_path(spec.path, f"{what}.path")
    wildcard = bool(GLOB_CHARS & set(path))
    prefix = None
    if wildcard:
        if not spec.path_prefix:
            raise BadInput(f"{what}.path_prefix: required when the path has wildcards")
        prefix = clean_path(spec.path_prefix, f"{what}.path_prefix")
        if _within(path, prefix) in (None, ""):
            raise BadInput(f"{what}.path_prefix: {prefix} is not a folder above {path}")
    for number in reversed(range(len(faces))):
        found = _port_for(path, faces[number].outputs)
        if found is None:
            continue
        port, rel = found
        kind = "DIRECTORY" if wildcard or not rel else (spec.type.value if spec.type else "FILE")
        if wildcard and GLOB_CHARS & set(port.path):
            raise BadInput(f"{what}.path: a port folder cannot hold wildcards")
        dest = _destination(config, index, spec, kind)
        return OutputPlan(
            index=index,
            url=spec.url,
            dest=str(dest),
            path=path,
            type=kind,
            port=clean_path(port.path, "port"),
            executor=number,
            rel=rel,
            prefix=prefix,
            name=spec.name,
        )
    raise BadInput(
        f"{what}.path: {path} is not inside an output port of the task's releases",
        "output ports: " + ", ".join(sorted({p.path for f in faces for p in f.outputs})),
    )


def _resources(task: TesTask) -> tuple[int | None, float | None, int | None, list[str]]:
    res = task.resources
    if res is None:
        return None, None, None, []
    memory = cpus = disk = None
    if res.cpu_cores is not None:
        if res.cpu_cores < 1 or check("cpus", float(res.cpu_cores)):
            raise BadInput(f"resources.cpu_cores: expected 1 to 1024, got {res.cpu_cores}")
        cpus = float(res.cpu_cores)
    if res.ram_gb is not None:
        memory = int(res.ram_gb * GB)
        if check("memory", memory):
            raise BadInput(f"resources.ram_gb: expected 0.004 to 1024, got {res.ram_gb}")
    if res.disk_gb is not None:
        disk = int(res.disk_gb * GB)
        if check("disk", disk):
            raise BadInput(f"resources.disk_gb: expected 0.001 to 65536, got {res.disk_gb}")
    warnings = []
    if res.backend_parameters:
        keys = ", ".join(sorted(res.backend_parameters))
        if res.backend_parameters_strict:
            raise BadInput(f"resources.backend_parameters: this server supports none ({keys})")
        warnings.append(f"unsupported backend_parameters ignored: {keys}")
    return memory, cpus, disk, warnings


def admit(config: ServeConfig, engine: Engine, task: TesTask) -> TaskPlan:
    """The plan of ``task``, or BadInput/Forbidden saying what is wrong with it."""
    if not task.executors:
        raise BadInput("executors: a task needs at least one executor")
    if task.volumes:
        raise BadInput(
            "volumes: not supported; executors share the task's inputs, and each writes its "
            "release's output ports",
            "leave volumes out",
        )
    resolved = [(*trusted_release(config.settings, engine, e.image), e) for e in task.executors]
    executors = tuple(
        _executor(i, spec, spec.image, face, image)
        for i, (image, face, spec) in enumerate(resolved)
    )
    faces = [face for _, face, _ in resolved]
    in_ports = [p for face in faces for p in face.inputs]
    inputs = _in_place([_input(config, i, s, in_ports) for i, s in enumerate(task.inputs or [])])
    outputs = tuple(_output(config, i, s, faces) for i, s in enumerate(task.outputs or []))
    _check_outputs_disjoint(outputs)
    memory, cpus, disk, warnings = _resources(task)
    return TaskPlan(
        executors=executors,
        inputs=tuple(inputs),
        outputs=outputs,
        input_ports=tuple(sorted({clean_path(p.path, "port") for p in in_ports})),
        memory=memory,
        cpus=cpus,
        disk=disk,
        warnings=tuple(warnings),
    )


def _check_outputs_disjoint(outputs: Sequence[OutputPlan]) -> None:
    for i, a in enumerate(outputs):
        for b in outputs[i + 1 :]:
            if _within(a.dest, b.dest) is not None or _within(b.dest, a.dest) is not None:
                raise BadInput(
                    f"outputs[{a.index}].url and outputs[{b.index}].url overlap ({a.dest}, "
                    f"{b.dest})",
                    "give each output its own destination",
                )


__all__ = ["Forbidden", "TaskPlan", "admit"]
