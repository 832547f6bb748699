"""The container engine. This is the only module that imports the docker SDK.

Everything else talks to :class:`Engine`, whose methods return plain values and raise gefreg
errors, so an unreachable engine is always exit 3 with how to start it.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput, BuildFailed, CheckFailed, EnvironmentFailure

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
class BuildEvent:
    """One line of build output; ``step`` is set on 'Step N/M : ...' lines."""

    text: str
    step: str | None = None


STEP_RE = re.compile(r"^Step (\d+/\d+) : (.*)$")


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
class ContainerSpec:
    """Everything the runner asks of a container. The hardening policy lives in runner.py;
    this is just what the engine is told (memory swap is always set equal to memory)."""

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


def _bind(mount: BindMount) -> Any:
    """The SDK's Mount for a bind; docker-py has no parameter for ``NonRecursive``, but a Mount
    is the API's JSON object, so the field is set on it directly."""
    from docker.types import Mount

    bind = Mount(mount.target, str(mount.source), type="bind", read_only=mount.read_only)
    if mount.non_recursive:
        bind["BindOptions"] = {**bind.get("BindOptions", {}), "NonRecursive": True}
    return bind


@contextmanager
def _refused(action: str) -> Iterator[None]:
    """For the container section: an engine that answers with an error (``APIError``, or an
    SDK refusal such as an unsupported API version) becomes EnvironmentFailure with the
    engine's explanation; a stream cut off mid-answer is the engine going away. Used inside
    :func:`_translated`, which handles an engine that does not answer at all."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except docker.errors.APIError as exc:
        raise EnvironmentFailure(
            f"the engine failed while {action}: {exc.explanation or exc}"
        ) from None
    except (docker.errors.InvalidVersion, docker.errors.InvalidArgument) as exc:
        raise EnvironmentFailure(f"the engine cannot do this while {action}: {exc}") from None
    except requests.exceptions.RequestException as exc:
        if isinstance(exc, requests.exceptions.ConnectionError):
            raise  # _translated: the engine does not answer
        raise EngineUnavailable(
            f"the Docker engine stopped answering while {action}: {exc}", START_HINT
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

    # --- containers (the runner) --------------------------------------------------------------

    def image_config(self, ref: str) -> dict[str, Any] | None:
        """The image's runtime config (Cmd, Entrypoint, Env, User, WorkingDir, Labels)."""
        import docker.errors

        with _translated(f"inspecting {ref}"):
            try:
                return dict(self.client.api.inspect_image(ref).get("Config") or {})
            except docker.errors.APIError as exc:
                if exc.status_code in (400, 404):
                    return None
                raise EnvironmentFailure(f"the engine refused to inspect {ref}: {exc}") from None

    def repo_digest_refs(self, digest: str) -> list[str]:
        """``repository@digest`` references of local images pulled with that manifest digest."""
        with _translated("listing images"), _refused("listing images"):
            images = self.client.api.images(all=False)
        refs = []
        for image in images or []:
            for ref in image.get("RepoDigests") or []:
                if ref.endswith("@" + digest):
                    refs.append(str(ref))
        return refs

    def create_container(self, spec: ContainerSpec) -> str:
        """Create (not start) a container exactly as ``spec`` says; returns its ID."""
        import docker.errors

        with _translated("creating a container"), _refused("creating a container"):
            api = self.client.api
            host_config = api.create_host_config(
                mounts=[_bind(m) for m in spec.mounts],
                network_mode=spec.network,
                read_only=spec.read_only,
                tmpfs=dict(spec.tmpfs),
                cap_drop=list(spec.cap_drop),
                security_opt=list(spec.security_opt),
                pids_limit=spec.pids,
                mem_limit=spec.memory,
                memswap_limit=spec.memory,
                nano_cpus=spec.nano_cpus,
                privileged=False,
            )
            try:
                created = api.create_container(
                    spec.image,
                    command=list(spec.command),
                    entrypoint=None if spec.entrypoint is None else list(spec.entrypoint),
                    user=spec.user,
                    labels=dict(spec.labels),
                    host_config=host_config,
                    name=spec.name,
                    network_disabled=spec.network == "none",
                    stdin_open=False,
                    tty=False,
                )
            except docker.errors.APIError as exc:
                message = f"the engine refused to create the container: {exc.explanation or exc}"
                if exc.status_code == 400:
                    from gefreg.errors import BadInput

                    raise BadInput(message, "check --memory, --cpus and --pids") from None
                raise EnvironmentFailure(message) from None
        return str(created["Id"])

    def start_container(self, container: str) -> None:
        """Start a created container; a process that cannot be started (no such executable,
        permission denied) raises :class:`StartFailed`."""
        import docker.errors

        with _translated("starting the container"):
            try:
                self.client.api.start(container)
            except docker.errors.APIError as exc:
                raise StartFailed(
                    f"the service could not start: {exc.explanation or exc}"
                ) from None

    def wait_container(self, container: str, timeout: float) -> int | None:
        """Block until the container exits (its exit code) or ``timeout`` seconds pass (None).

        The SDK reports a read timeout as a connection error; it counts as a timeout only when
        the deadline has passed and the engine still answers, otherwise the engine is gone.
        """
        import docker.errors
        import requests.exceptions

        deadline = time.monotonic() + timeout
        try:
            result = self.client.api.wait(container, timeout=max(timeout, 0.001))
        except requests.exceptions.RequestException as exc:
            if time.monotonic() >= deadline - 0.05 and self.answers():
                return None
            raise EngineUnavailable(
                f"the Docker engine went away while the container ran: {exc}", START_HINT
            ) from None
        except docker.errors.APIError as exc:
            if exc.response is not None and exc.status_code == 404:
                raise EnvironmentFailure(
                    f"the container {container[:12]} disappeared while it ran (removed by "
                    "someone else?)"
                ) from None
            raise EnvironmentFailure(f"the engine failed while waiting: {exc}") from None
        except docker.errors.DockerException as exc:
            raise EngineUnavailable(
                f"the Docker engine went away while the container ran: {exc}", START_HINT
            ) from None
        return int(result.get("StatusCode", -1))

    def answers(self) -> bool:
        try:
            with _translated("ping"):
                return bool(self.client.ping())
        except Exception:
            return False

    def kill_container(self, container: str) -> None:
        """SIGKILL the container; a container that already stopped is fine."""
        import docker.errors

        with _translated("stopping the container"), suppress(docker.errors.APIError):
            self.client.api.kill(container)

    def inspect_container(self, container: str) -> ContainerState:
        import docker.errors

        with _translated("inspecting the container"):
            try:
                attrs = self.client.api.inspect_container(container)
            except docker.errors.APIError as exc:
                raise EnvironmentFailure(
                    f"the engine cannot inspect container {container[:12]}: {exc}"
                ) from None
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

    def save_logs(self, container: str, stdout: Path, stderr: Path) -> None:
        """Stream the container's stdout and stderr into two new files (never whole into
        memory). A file that exists is never overwritten: BadInput, and nothing is written."""
        for path in (stdout, stderr):
            if path.exists() or path.is_symlink():
                raise BadInput(f"{path} already exists", "gefreg never overwrites files")
        action = "reading the container's logs"
        with _translated(action), _refused(action):
            for path, want_out in ((stdout, True), (stderr, False)):
                chunks = self.client.api.logs(
                    container, stdout=want_out, stderr=not want_out, stream=True, follow=False
                )
                try:
                    fh = open(path, "xb")  # noqa: SIM115
                except FileExistsError:
                    raise BadInput(
                        f"{path} already exists", "gefreg never overwrites files"
                    ) from None
                except OSError as exc:
                    raise EnvironmentFailure(
                        f"cannot write the log file {path}: {exc.strerror or exc}"
                    ) from None
                with fh:
                    for chunk in chunks:
                        try:
                            fh.write(chunk)
                        except OSError as exc:
                            raise EnvironmentFailure(
                                f"cannot write the log file {path}: {exc.strerror or exc}"
                            ) from None

    def remove_container(self, container: str) -> None:
        import docker.errors

        action = "removing the container"
        with _translated(action), _refused(action), suppress(docker.errors.NotFound):
            self.client.api.remove_container(container, force=True, v=True)

    def container_ids(self, label: str) -> list[str]:
        """IDs of all containers (running or not) carrying ``label`` (``key`` or ``key=value``)."""
        with _translated("listing containers"), _refused("listing containers"):
            found = self.client.api.containers(all=True, filters={"label": label})
        return [str(c["Id"]) for c in found]


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
# The embedded registry as a container: gefreg.registry.server's fallback when the docker-registry
# binary is not installed. The image (registry:2 by default) must be available to the engine.
# ----------------------------------------------------------------------------------------------

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
