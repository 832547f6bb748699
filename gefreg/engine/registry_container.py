"""The embedded registry as a container: :mod:`gefreg.registry.server`'s fallback when the
docker-registry binary is not installed. The image (registry:2 by default) must be available to
the engine."""

from __future__ import annotations

import os
from pathlib import Path

from gefreg.engine import Engine
from gefreg.engine.translate import translated
from gefreg.errors import EnvironmentFailure

REGISTRY_IMAGE_HINT = (
    "install the registry binary instead (Debian/Ubuntu: apt-get install docker-registry), or make "
    "the image available to the engine and name it in $GEFREG_REGISTRY_IMAGE"
)


def start_registry_container(
    image: str,
    *,
    name: str,
    port: int,
    debug_port: int,
    storage: Path,
    config: Path,
    environment: dict[str, str] | None = None,
) -> str:
    """Run ``image`` detached, publishing 5000 (API) and 5001 (health) on 127.0.0.1 only;
    storage and the config file are bind-mounted. Returns the container id."""
    import docker.errors

    engine = Engine.connect(timeout=120)
    with translated("starting the registry container"):
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
                environment=dict(environment or {}),
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
        with translated("inspecting the registry container"):
            return bool(engine.client.containers.get(container_id).status == "running")
    except (docker.errors.NotFound, EnvironmentFailure):
        return False


def stop_registry_container(container_id: str, timeout: int = 10) -> None:
    import docker.errors

    engine = Engine.connect(timeout=60)
    with translated("stopping the registry container"):
        try:
            container = engine.client.containers.get(container_id)
        except docker.errors.NotFound:
            return
        container.stop(timeout=timeout)
        container.remove(force=True)
