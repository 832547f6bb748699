"""The container engine. This is the only module that imports the docker SDK.

Everything else talks to :class:`Engine`, whose methods return plain values and raise gefreg
errors, so an unreachable engine is always exit 3 with how to start it.
"""

from __future__ import annotations

import functools
import os
import re
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput, BuildFailed, EnvironmentFailure

START_HINT = (
    "start the Docker engine: `make setup` (Debian, as root), `sudo systemctl start "
    "docker`, or Docker Desktop; set DOCKER_HOST if it listens elsewhere"
)


class EngineUnavailable(EnvironmentFailure):
    """The Docker engine does not answer."""


@dataclass(frozen=True)
class ImageInfo:
    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    labels: dict[str, str]
    created: str
    size: int


@dataclass(frozen=True)
class BuildEvent:
    """One line of build output; ``step`` is set on 'Step N/M : ...' lines."""

    text: str
    step: str | None = None


STEP_RE = re.compile(r"^Step (\d+/\d+) : (.*)$")


def _image_info(attrs: dict[str, Any]) -> ImageInfo:
    config = attrs.get("Config") or {}
    return ImageInfo(
        id=attrs["Id"],
        repo_tags=tuple(attrs.get("RepoTags") or ()),
        repo_digests=tuple(attrs.get("RepoDigests") or ()),
        labels=dict(config.get("Labels") or {}),
        created=str(attrs.get("Created", "")),
        size=int(attrs.get("Size") or 0),
    )


@contextmanager
def _translated(action: str) -> Iterator[None]:
    import docker.errors
    import requests.exceptions

    try:
        yield
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        if isinstance(exc, docker.errors.APIError) and exc.response is not None:
            raise
        raise EngineUnavailable(
            f"the Docker engine does not answer while {action}: {exc}", START_HINT
        ) from None


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
        return {
            "engine": str(v.get("Version")),
            "api": str(v.get("ApiVersion")),
            "os": str(v.get("Os")),
            "arch": str(v.get("Arch")),
            "kernel": str(v.get("KernelVersion")),
        }

    # --- images -------------------------------------------------------------------------------

    def image(self, ref: str) -> ImageInfo | None:
        """The local image for a name, name@digest or ID; None when the engine has none."""
        import docker.errors

        with _translated(f"inspecting {ref}"):
            try:
                return _image_info(self.client.api.inspect_image(ref))
            except docker.errors.ImageNotFound:
                return None
            except docker.errors.APIError as exc:
                if exc.status_code in (400, 404):
                    return None
                raise EnvironmentFailure(f"the engine refused to inspect {ref}: {exc}") from None

    def pull(self, ref: str) -> ImageInfo:
        """Pull ``repository@sha256:...`` (or a tag) from its registry."""
        import docker.errors

        repository, _, digest = ref.partition("@")
        with _translated(f"pulling {ref}"):
            try:
                self.client.api.pull(repository, tag=digest or None)
            except docker.errors.APIError as exc:
                raise EnvironmentFailure(
                    f"could not pull {ref}: {exc.explanation or exc}",
                    "is the registry running? `gefreg registry status`",
                ) from None
        info = self.image(ref)
        if info is None:
            raise EnvironmentFailure(f"pulled {ref} but the engine does not list it")
        return info

    def load(self, archive: Path) -> list[str]:
        """`docker load` an archive; returns the loaded image IDs or tags."""
        with _translated(f"loading {archive}"), open(archive, "rb") as fh:
            events = self.client.api.load_image(fh)
        loaded = []
        for event in events or []:
            if "error" in event:
                raise EnvironmentFailure(f"the engine could not load {archive}: {event['error']}")
            stream = str(event.get("stream", ""))
            if stream.startswith("Loaded image"):
                loaded.append(stream.split(": ", 1)[1].strip())
        return loaded

    def save(self, ref: str, destination: Path) -> Path:
        """`docker save` one image into a docker-archive tarball (streamed to disk)."""
        import docker.errors

        tmp = destination.with_name(destination.name + ".tmp")
        with _translated(f"exporting {ref}"):
            try:
                chunks = self.client.api.get_image(ref)
                with open(tmp, "wb") as fh:
                    for chunk in chunks:
                        fh.write(chunk)
            except docker.errors.ImageNotFound:
                tmp.unlink(missing_ok=True)
                raise BadInput(f"the engine has no image {ref}", "build it first") from None
        tmp.replace(destination)
        return destination

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        with _translated(f"tagging {image_id}"):
            if not self.client.api.tag(image_id, repository, tag, force=True):
                raise EnvironmentFailure(
                    f"the engine refused to tag {image_id} as {repository}:{tag}"
                )

    def remove_image(self, ref: str) -> None:
        import docker.errors

        with _translated(f"removing {ref}"), suppress(docker.errors.ImageNotFound):
            self.client.api.remove_image(ref, force=True, noprune=False)

    def build(
        self,
        context: Path,
        *,
        labels: dict[str, str],
        no_cache: bool = False,
        on_event: Callable[[BuildEvent], None] | None = None,
        log: Path | None = None,
    ) -> str:
        """Build ``context/Dockerfile`` without tagging; returns the image ID.

        A failing step raises BuildFailed (exit 1) naming the step and the last output lines.
        """
        import docker.errors

        step: str | None = None
        tail: deque[str] = deque(maxlen=15)
        image_id: str | None = None
        log_fh = open(log, "w", encoding="utf-8") if log else None  # noqa: SIM115
        try:
            with _translated("building"):
                try:
                    stream = self.client.api.build(
                        path=str(context),
                        dockerfile="Dockerfile",
                        rm=True,
                        forcerm=True,
                        nocache=no_cache,
                        pull=False,
                        labels=labels,
                        decode=True,
                    )
                    for chunk in stream:
                        if "aux" in chunk and isinstance(chunk["aux"], dict):
                            image_id = chunk["aux"].get("ID") or image_id
                        if "error" in chunk:
                            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                            if log_fh:
                                log_fh.write(f"ERROR: {detail}\n")
                            raise BuildFailed(str(detail).strip(), step, list(tail), log)
                        text = str(chunk.get("stream") or chunk.get("status") or "")
                        for line in text.splitlines():
                            if log_fh:
                                log_fh.write(line + "\n")
                            m = STEP_RE.match(line)
                            if m:
                                step = f"step {m.group(1)}: {m.group(2)}"
                                tail.clear()
                            elif line.strip():
                                tail.append(line.rstrip())
                            if on_event:
                                on_event(BuildEvent(line, step if m else None))
                except docker.errors.APIError as exc:
                    raise BuildFailed(str(exc.explanation or exc), step, list(tail), log) from None
        finally:
            if log_fh:
                log_fh.close()
        if image_id is None:
            raise EnvironmentFailure("the engine finished the build without an image ID")
        return image_id


def engine_answers() -> bool:
    try:
        Engine.connect(timeout=10)
    except EnvironmentFailure:
        return False
    return True


class QuickInspectUnavailable(Exception):
    """The engine is not on a local unix socket; use :meth:`Engine.image` instead."""


def quick_inspect(ref: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Inspect an image with one raw HTTP request on the engine's unix socket.

    For cache hits, where importing the SDK would cost more than the whole answer. Returns the
    inspect JSON, None when the engine has no such image; raises QuickInspectUnavailable when
    it cannot answer this way (TCP/SSH engine, no socket), and EngineUnavailable when the
    socket does not answer.
    """
    import http.client
    import json
    import os
    import socket
    import urllib.parse

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://") or os.environ.get("DOCKER_TLS_VERIFY"):
        raise QuickInspectUnavailable(host)
    path = host.removeprefix("unix://")

    class _UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)

    conn = _UnixConnection("localhost", timeout=timeout)
    try:
        conn.request("GET", f"/images/{urllib.parse.quote(ref, safe='')}/json")
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        raise EngineUnavailable(
            f"the Docker engine does not answer on {path}: {exc}", START_HINT
        ) from None
    finally:
        conn.close()
    if response.status == 404:
        return None
    if response.status != 200:
        raise QuickInspectUnavailable(f"HTTP {response.status}")
    return dict(json.loads(body))


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
