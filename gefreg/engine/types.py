"""Plain values the engine adapter takes and returns, and its errors: no docker SDK here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gefreg.errors import CheckFailed, EnvironmentFailure

START_HINT = (
    "start the Docker engine: `make setup` (Debian, as root), `sudo systemctl start "
    "docker`, or Docker Desktop; set DOCKER_HOST if it listens elsewhere"
)


class EngineUnavailable(EnvironmentFailure):
    """The Docker engine does not answer."""


class StartFailed(CheckFailed):
    """A container was created but its process could not be started (a broken image)."""


@dataclass(frozen=True)
class ImageInfo:
    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    labels: dict[str, str]
    created: str
    size: int


@dataclass(frozen=True)
class StoppedContainer:
    """A container that has exited; ``finished_at`` is the engine's RFC 3339 time."""

    id: str
    name: str
    labels: dict[str, str]
    finished_at: str
    image_id: str = ""  # the image it ran


@dataclass(frozen=True)
class BuildEvent:
    """One line of build output; ``step`` is set on 'Step N/M : ...' lines."""

    text: str
    step: str | None = None


@dataclass(frozen=True)
class BindMount:
    """A host folder mounted into a container."""

    source: Path
    target: str
    read_only: bool
    # not recursive: mounts below ``source`` are not carried into the container (where they
    # would not be read-only with a recursive bind); API >= 1.40, BindOptions.NonRecursive
    non_recursive: bool = False


@dataclass(frozen=True)
class Ulimit:
    """A resource limit set on the container's processes (``setrlimit``), soft = hard."""

    name: str  # "nofile", "fsize", ...
    value: int


@dataclass(frozen=True)
class ContainerSpec:
    """Everything the runner asks of a container. The hardening policy lives in
    :mod:`gefreg.run.hardening`; this is just what the engine is told (memory swap is always set
    equal to memory)."""

    image: str
    command: tuple[str, ...]
    user: str
    mounts: tuple[BindMount, ...]
    labels: tuple[tuple[str, str], ...]
    network: str
    read_only: bool
    tmpfs: tuple[tuple[str, str], ...]
    cap_drop: tuple[str, ...]
    security_opt: tuple[str, ...]
    memory: int
    nano_cpus: int
    pids: int
    name: str | None = None
    entrypoint: tuple[str, ...] | None = None  # None keeps the image's; () clears it
    ulimits: tuple[Ulimit, ...] = ()
    log_driver: str | None = None  # None keeps the engine's default


@dataclass(frozen=True)
class ContainerState:
    """A container as the engine reports it (``docker inspect``), in plain values."""

    id: str
    running: bool
    exit_code: int
    oom_killed: bool
    error: str
    started_at: str
    finished_at: str
    host_config: dict[str, Any]
    user: str
    env: tuple[str, ...]
    command: tuple[str, ...]
    entrypoint: tuple[str, ...]
    working_dir: str


class OutputStream(Protocol):
    """A running container's output: ``(1, bytes)`` for stdout, ``(2, bytes)`` for stderr,
    until it exits or :meth:`close` is called (from any thread)."""

    def __iter__(self) -> Iterator[tuple[int, bytes]]: ...

    def close(self) -> None: ...


def image_info(attrs: dict[str, Any]) -> ImageInfo:
    """An :class:`ImageInfo` from ``docker inspect`` JSON of an image."""
    config = attrs.get("Config") or {}
    return ImageInfo(
        id=attrs["Id"],
        repo_tags=tuple(attrs.get("RepoTags") or ()),
        repo_digests=tuple(attrs.get("RepoDigests") or ()),
        labels=dict(config.get("Labels") or {}),
        created=str(attrs.get("Created", "")),
        size=int(attrs.get("Size") or 0),
    )


def container_state(container: str, attrs: dict[str, Any]) -> ContainerState:
    """A :class:`ContainerState` from ``docker inspect`` JSON of a container."""
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    return ContainerState(
        id=str(attrs.get("Id", container)),
        running=bool(state.get("Running")),
        exit_code=int(state.get("ExitCode", -1)),
        oom_killed=bool(state.get("OOMKilled")),
        error=str(state.get("Error") or ""),
        started_at=str(state.get("StartedAt") or ""),
        finished_at=str(state.get("FinishedAt") or ""),
        host_config=dict(attrs.get("HostConfig") or {}),
        user=str(config.get("User") or ""),
        env=tuple(config.get("Env") or ()),
        command=tuple(config.get("Cmd") or ()),
        entrypoint=tuple(config.get("Entrypoint") or ()),
        working_dir=str(config.get("WorkingDir") or ""),
    )
