"""Container calls of the engine adapter (the runner's): create, start, wait, kill, inspect,
logs, remove."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from gefreg.engine.translate import refused, translated
from gefreg.engine.types import (
    START_HINT,
    BindMount,
    ContainerSpec,
    ContainerState,
    EngineUnavailable,
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

    def save_logs(self, container: str, stdout: Path, stderr: Path) -> None:
        """Stream the container's stdout and stderr into two new files (never whole into
        memory). A file that exists is never overwritten: BadInput, and nothing is written."""
        for path in (stdout, stderr):
            if path.exists() or path.is_symlink():
                raise BadInput(f"{path} already exists", "gefreg never overwrites files")
        action = "reading the container's logs"
        with translated(action), refused(action):
            for path, want_out in ((stdout, True), (stderr, False)):
                chunks = self.client.api.logs(
                    container, stdout=want_out, stderr=not want_out, stream=True, follow=False
                )
                _write_new(path, chunks)

    def follow_logs(
        self, container: str, on_line: Callable[[str, str], None]
    ) -> Callable[[float], None]:
        """Call ``on_line("stdout"|"stderr", line)`` for each line the container writes, as
        it writes it, from two threads; the streams end when the container stops. Returns a
        function that waits (up to a timeout) for both to finish."""
        threads = [
            threading.Thread(target=self._follow, args=(container, stream, on_line), daemon=True)
            for stream in ("stdout", "stderr")
        ]
        for thread in threads:
            thread.start()

        def wait(timeout: float) -> None:
            deadline = time.monotonic() + timeout
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))

        return wait

    def _follow(self, container: str, stream: str, on_line: Callable[[str, str], None]) -> None:
        import docker.errors

        pending = b""
        try:
            chunks = self.client.api.logs(
                container,
                stdout=stream == "stdout",
                stderr=stream == "stderr",
                stream=True,
                follow=True,
            )
            for chunk in chunks:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    on_line(stream, line.decode("utf-8", errors="replace"))
        except (docker.errors.DockerException, OSError):
            return  # following is a courtesy: the saved logs are the record
        if pending:
            on_line(stream, pending.decode("utf-8", errors="replace"))

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
                    )
                )
        return out

    def container_ids(self, label: str) -> list[str]:
        """IDs of all containers (running or not) carrying ``label`` (``key`` or ``key=value``)."""
        with translated("listing containers"), refused("listing containers"):
            found = self.client.api.containers(all=True, filters={"label": label})
        return [str(c["Id"]) for c in found]


def _write_new(path: Path, chunks: Any) -> None:
    try:
        fh = open(path, "xb")  # noqa: SIM115
    except FileExistsError:
        raise BadInput(f"{path} already exists", "gefreg never overwrites files") from None
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
