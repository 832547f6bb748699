"""The container engine. This is the only module that imports the docker SDK.

Everything else talks to :class:`Engine`, whose methods return plain values and raise gefreg
errors, so an unreachable engine is always exit 3 with how to start it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gefreg.errors import EnvironmentFailure

START_HINT = ("start the Docker engine: `make setup` (Debian, as root), `sudo systemctl start "
              "docker`, or Docker Desktop; set DOCKER_HOST if it listens elsewhere")


class EngineUnavailable(EnvironmentFailure):
    """The Docker engine does not answer."""


@contextmanager
def _translated(action: str) -> Iterator[None]:
    import docker.errors
    import requests.exceptions

    try:
        yield
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        if isinstance(exc, docker.errors.APIError) and exc.response is not None:
            raise
        raise EngineUnavailable(f"the Docker engine does not answer while {action}: {exc}",
                                START_HINT) from None


class Engine:
    """A connection to the Docker engine (DOCKER_HOST or the default socket)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def connect(cls, timeout: int = 600) -> Engine:
        import docker

        with _translated("connecting"):
            client = docker.from_env(timeout=timeout)
            client.ping()
        return cls(client)

    @functools.cached_property
    def version(self) -> dict[str, Any]:
        with _translated("asking for its version"):
            return dict(self.client.version())

    def facts(self) -> dict[str, str]:
        v = self.version
        return {"engine": str(v.get("Version")), "api": str(v.get("ApiVersion")),
                "os": str(v.get("Os")), "arch": str(v.get("Arch")),
                "kernel": str(v.get("KernelVersion"))}


def engine_answers() -> bool:
    try:
        Engine.connect(timeout=10)
    except EnvironmentFailure:
        return False
    return True
