"""The container engine. This package is the only code that imports the docker SDK.

Everything else talks to :class:`Engine` — or, to stay testable without Docker, to the small
protocols in :mod:`gefreg.engine.protocols` that it implements — whose methods return plain
values (:mod:`gefreg.engine.types`) and raise gefreg errors, so an unreachable engine is always
exit 3 with how to start it. The calls are grouped by subject: :mod:`~gefreg.engine.images`,
:mod:`~gefreg.engine.containers`; :mod:`~gefreg.engine.quick` answers cache hits without the
SDK, :mod:`~gefreg.engine.registry_container` runs the embedded registry as a container.
"""

from __future__ import annotations

import functools
from typing import Any

from gefreg.engine.containers import ContainerCalls
from gefreg.engine.images import ImageCalls
from gefreg.engine.translate import translated
from gefreg.engine.types import (
    START_HINT,
    BindMount,
    BuildEvent,
    ContainerSpec,
    ContainerState,
    EngineUnavailable,
    ImageInfo,
    OutputStream,
    StartFailed,
    StoppedContainer,
    Ulimit,
)
from gefreg.errors import EnvironmentFailure

__all__ = [
    "START_HINT",
    "BindMount",
    "BuildEvent",
    "ContainerSpec",
    "ContainerState",
    "Engine",
    "EngineUnavailable",
    "ImageInfo",
    "OutputStream",
    "StartFailed",
    "StoppedContainer",
    "Ulimit",
    "engine_answers",
]


class Engine(ImageCalls, ContainerCalls):
    """A connection to the Docker engine (DOCKER_HOST or the default socket)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def connect(cls, timeout: int = 600) -> Engine:
        import docker

        with translated("connecting"):
            client = docker.from_env(timeout=timeout)
            client.ping()
        return cls(client)

    @functools.cached_property
    def version(self) -> dict[str, Any]:
        with translated("asking for its version"):
            return dict(self.client.version())

    def facts(self) -> dict[str, str]:
        v = self.version
        return {
            "engine": str(v.get("Version")),
            "api": str(v.get("ApiVersion")),
            "os": str(v.get("Os")),
            "arch": str(v.get("Arch")),
            "kernel": str(v.get("KernelVersion")),
        }


def engine_answers() -> bool:
    try:
        Engine.connect(timeout=10)
    except EnvironmentFailure:
        return False
    return True
