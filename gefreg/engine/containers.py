"""Container calls of the engine adapter (the runner's): create, start, wait, kill, inspect,
logs, remove; and a helper container run to completion (apt resolution)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import suppress
from typing import Any

from gefreg.engine.translate import refused, translated
from gefreg.engine.types import (
    START_HINT,
    BindMount,
    ContainerSpec,
    ContainerState,
    EngineUnavailable,
    OutputStream,
    StartFailed,
    StoppedContainer,
    container_state,
)
from gefreg.errors import BadInput, EnvironmentFailure


def _bind(mount: BindMount) -> Any:
    """The SDK's Mount for a bind; docker-py has no parameter for ``NonRecursive``, but a Mount
    is the API's JSON object, so the field is set on it directly."""
    from docker.types import Mount

    bind = Mount(mount.target, str(mount.source), type="bind", read_only=mount.read_only)
    if mount.non_recursive:
        bind["BindOptions"] = {**bind.get("BindOptions", {}), "NonRecursive": True}
    return bind


def _host_config(api: Any, spec: ContainerSpec) -> Any:
    from docker.types import LogConfig
    from docker.types import Ulimit as SdkUlimit

    extra: dict[str, Any] = {}
    if spec.ulimits:
        extra["ulimits"] = [
            SdkUlimit(name=u.name, soft=u.value, hard=u.value) for u in spec.ulimits
        ]
    if spec.log_driver is not None:
        extra["log_config"] = LogConfig(type=spec.log_driver, config={})
    return api.create_host_config(
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
        **extra,
    )


class ContainerCalls:
    """Mixed into :class:`gefreg.engine.Engine`; ``client`` is the docker SDK client."""

    client: Any

    def answers(self) -> bool:
        try:
            with translated("ping"):
                return bool(self.client.ping())
        except Exception:
            return False

    def create_container(self, spec: ContainerSpec) -> str:
        """Create (not start) a container exactly as ``spec`` says; returns its ID."""
        import docker.errors

        with translated("creating a container"), refused("creating a container"):
            api = self.client.api
            host_config = _host_config(api, spec)
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
                    raise BadInput(message, "check --memory, --cpus and --pids") from None
                raise EnvironmentFailure(message) from None
        return str(created["Id"])

    def start_container(self, container: str) -> None:
        """Start a created container; a process that cannot be started (no such executable,
        permission denied) raises :class:`StartFailed`."""
        import docker.errors

        with translated("starting the container"):
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

    def kill_container(self, container: str) -> None:
        """SIGKILL the container; a container that already stopped is fine."""
        import docker.errors

        with translated("stopping the container"), suppress(docker.errors.APIError):
            self.client.api.kill(container)

    def inspect_container(self, container: str) -> ContainerState:
        import docker.errors

        with translated("inspecting the container"):
            try:
                attrs = self.client.api.inspect_container(container)
            except docker.errors.APIError as exc:
                raise EnvironmentFailure(
                    f"the engine cannot inspect container {container[:12]}: {exc}"
                ) from None
        return container_state(container, attrs)

    def attach_output(self, container: str) -> OutputStream:
        """The container's stdout and stderr as they are written, from the moment this returns:
        call it before starting the container. The engine streams to the caller directly (and
        holds the service back when the caller reads slower than it writes), so nothing is
        lost even with the ``none`` log driver. ``close()`` ends the stream from any thread."""
        action = "attaching to the container's output"
        with translated(action), refused(action):
            stream = self.client.api.attach(
                container, stdout=True, stderr=True, stream=True, logs=False, demux=True
            )
        return _Demuxed(stream)

    def remove_container(self, container: str) -> None:
        import docker.errors

        action = "removing the container"
        with translated(action), refused(action), suppress(docker.errors.NotFound):
            self.client.api.remove_container(container, force=True, v=True)

    def stopped_containers(self, label: str) -> list[StoppedContainer]:
        """Containers carrying ``label`` that have exited (or died), with when they stopped."""
        with translated("listing containers"), refused("listing containers"):
            found = self.client.api.containers(
                all=True, filters={"label": label, "status": ["exited", "dead"]}
            )
            out = []
            for c in found:
                state = (self.client.api.inspect_container(c["Id"]) or {}).get("State") or {}
                out.append(
                    StoppedContainer(
                        id=str(c["Id"]),
                        name=str((c.get("Names") or ["?"])[0]).lstrip("/"),
                        labels={str(k): str(v) for k, v in (c.get("Labels") or {}).items()},
                        finished_at=str(state.get("FinishedAt") or ""),
                        image_id=str(c.get("ImageID") or ""),
                    )
                )
        return out

    def run_helper(
        self, image: str, command: Sequence[str], *, timeout: float = 900
    ) -> tuple[int | None, str, str]:
        """Run a short-lived helper container (root, default network) to completion and
        remove it; returns (exit code or None on timeout, stdout, stderr). gefreg uses it to
        ask apt on a base image which package versions it would install."""
        with translated("running a helper container"), refused("running a helper container"):
            api = self.client.api
            created = api.create_container(
                image,
                command=list(command),
                labels={"org.gefreg.role": "helper"},
                host_config=api.create_host_config(network_mode="bridge"),
            )
            container = str(created["Id"])
            try:
                api.start(container)
                code = self.wait_container(container, timeout)
                if code is None:
                    api.kill(container)
                out = api.logs(container, stdout=True, stderr=False)
                err = api.logs(container, stdout=False, stderr=True)
            finally:
                api.remove_container(container, force=True, v=True)
        return code, out.decode(errors="replace"), err.decode(errors="replace")

    def container_ids(self, label: str) -> list[str]:
        """IDs of all containers (running or not) carrying ``label`` (``key`` or ``key=value``)."""
        with translated("listing containers"), refused("listing containers"):
            found = self.client.api.containers(all=True, filters={"label": label})
        return [str(c["Id"]) for c in found]


class _Demuxed:
    """The SDK's demultiplexed attach stream as ``(1 | 2, bytes)`` chunks."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        try:
            for out, err in self.stream:
                if out:
                    yield 1, bytes(out)
                if err:
                    yield 2, bytes(err)
        except (OSError, ValueError, AttributeError):  # closed from another thread, or gone
            return

    def close(self) -> None:
        with suppress(Exception):
            self.stream.close()
