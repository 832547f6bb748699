"""The container engine. This is the only module that imports the docker SDK.

Everything else talks to :class:`Engine`, whose methods return plain values and raise gefreg
errors, so an unreachable engine is always exit 3 with how to start it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


# ----------------------------------------------------------------------------------------------
# The embedded registry as a container: gefreg.regserver's fallback when the docker-registry
# binary is not installed. The image (registry:2 by default) must be available to the engine.
# ----------------------------------------------------------------------------------------------

REGISTRY_IMAGE_HINT = (
    "install the registry binary instead (Debian/Ubuntu: apt-get install docker-registry), or make "
    "the image available to the engine and name it in $GEFREG_REGISTRY_IMAGE"
)


def start_registry_container(
    image: str, *, name: str, port: int, debug_port: int, storage: Path, config: Path
) -> str:
    """Run ``image`` detached, publishing 5000 (API) and 5001 (health) on 127.0.0.1 only;
    storage and the config file are bind-mounted. Returns the container id."""
    import docker.errors

    engine = Engine.connect(timeout=120)
    with _translated("starting the registry container"):
        try:
            old = engine.client.containers.get(name)
        except docker.errors.NotFound:
            old = None
        if old is not None:
            if old.labels.get("org.gefreg.role") != "registry":
                raise EnvironmentFailure(f"a container named {name} exists and is not gefreg's")
            old.remove(force=True)  # a stopped leftover of ours
        try:
            container = engine.client.containers.run(
                image,
                detach=True,
                name=name,
                ports={"5000/tcp": ("127.0.0.1", port), "5001/tcp": ("127.0.0.1", debug_port)},
                volumes={
                    str(storage): {"bind": "/var/lib/registry", "mode": "rw"},
                    str(config): {"bind": "/etc/docker/registry/config.yml", "mode": "ro"},
                },
                user=f"{os.getuid()}:{os.getgid()}",
                labels={"org.gefreg.role": "registry", "org.gefreg.registry.data": str(storage)},
            )
        except docker.errors.APIError as exc:
            raise EnvironmentFailure(
                f"cannot run the registry image {image}: {exc.explanation or exc}",
                REGISTRY_IMAGE_HINT,
            ) from None
    return str(container.id)


def registry_container_running(container_id: str) -> bool:
    import docker.errors

    try:
        engine = Engine.connect(timeout=30)
        with _translated("inspecting the registry container"):
            return bool(engine.client.containers.get(container_id).status == "running")
    except (docker.errors.NotFound, EnvironmentFailure):
        return False


def stop_registry_container(container_id: str, timeout: int = 10) -> None:
    import docker.errors

    engine = Engine.connect(timeout=60)
    with _translated("stopping the registry container"):
        try:
            container = engine.client.containers.get(container_id)
        except docker.errors.NotFound:
            return
        container.stop(timeout=timeout)
        container.remove(force=True)
