"""The embedded default registry: CNCF Distribution on 127.0.0.1, storage in the user's data.

Everything lives in one data folder (``$GEFREG_REGISTRY_DATA``, else
``platformdirs.user_data_dir("gefreg")/registry``)::

    config.yml     the Distribution configuration gefreg wrote (private: holds the secret)
    http-secret    signs upload sessions, so an upload survives a restart
    storage/       blobs and manifests (filesystem driver, deletes enabled)
    registry.log   the server's log
    state.json     how it was started: backend, pid or container, address, health URL
    lock           serialises serve/stop on this folder

The ``docker-registry`` binary (Debian's ``docker-registry`` package) runs detached in its own
session; without it, the ``registry:2`` image runs through the Docker engine
(``$GEFREG_REGISTRY_IMAGE`` names another image). ``serve`` is idempotent and returns only once
``/v2/`` answers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput, EnvironmentFailure
from gefreg.fsutil import write_json
from gefreg.registry.processes import HOST, alive, answers, free_port, port_free
from gefreg.registry.server_launch import choose_backend, start_binary, start_container

ENV_DATA = "GEFREG_REGISTRY_DATA"


DEFAULT_PORT = 5000
BACKENDS = ("auto", "binary", "docker")


@dataclass(frozen=True)
class ServerStatus:
    """What ``gefreg registry status`` shows."""

    data_dir: Path
    running: bool
    answers: bool  # GET /v2/ answered 200 or 401
    healthy: bool | None  # /debug/health said 200 (None: no health endpoint known)
    address: str | None
    backend: str | None  # "binary" | "docker"
    pid: int | None
    container: str | None
    stale: bool = False  # a state file for a server that is gone

    @property
    def storage(self) -> Path:
        return self.data_dir / "storage"

    @property
    def log(self) -> Path:
        return self.data_dir / "registry.log"

    def to_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "answers": self.answers,
            "healthy": self.healthy,
            "address": self.address,
            "backend": self.backend,
            "pid": self.pid,
            "container": self.container,
            "data_dir": str(self.data_dir),
            "storage": str(self.storage),
            "log": str(self.log),
        }


@dataclass(frozen=True)
class Served:
    status: ServerStatus
    already: bool  # it was serving before this call


def data_dir(explicit: Path | str | None = None) -> Path:
    """The data folder: the argument, else $GEFREG_REGISTRY_DATA, else the user's data dir."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("gefreg")) / "registry"


# ----------------------------------------------------------------------- status


def status(data: Path | str | None = None) -> ServerStatus:
    folder = data_dir(data)
    state = _read_state(folder)
    if state is None:
        return ServerStatus(folder, False, False, None, None, None, None, None)
    backend = str(state.get("backend"))
    pid = state.get("pid") if isinstance(state.get("pid"), int) else None
    container = state.get("container") if isinstance(state.get("container"), str) else None
    address = str(state.get("address"))
    if backend == "docker" and container:
        from gefreg.engine.registry_container import registry_container_running

        running = registry_container_running(container)
    else:
        ticks = state.get("start_ticks")
        running = pid is not None and alive(pid, ticks if isinstance(ticks, int) else None)
    code = answers(address) if running else None
    health = state.get("health")
    healthy = None
    if running and isinstance(health, str):
        healthy = answers(health, "/debug/health") == 200
    return ServerStatus(
        folder,
        running,
        code in (200, 401),
        healthy,
        address,
        backend,
        pid,
        container,
        stale=not running,
    )


# ----------------------------------------------------------------------- serve / stop


def serve(
    port: int = DEFAULT_PORT,
    data: Path | str | None = None,
    *,
    backend: str = "auto",
    timeout: float = 30.0,
) -> Served:
    """Start the registry on 127.0.0.1:``port`` unless it already serves there."""
    if backend not in BACKENDS:
        raise BadInput(f"unknown registry backend {backend!r}", f"use one of {', '.join(BACKENDS)}")
    if not 0 < port < 65536:
        raise BadInput(f"not a TCP port: {port}")
    folder = data_dir(data)
    address = f"{HOST}:{port}"
    with _locked(folder):
        current = status(folder)
        if current.running:
            if current.address != address:
                raise EnvironmentFailure(
                    f"the registry with data in {folder} already serves on {current.address}",
                    f"use that address, or stop it first: gefreg registry stop --data {folder}",
                )
            _wait_until_answers(current, timeout)
            return Served(status(folder), already=True)
        if current.stale:
            _wait_port_released(_read_state(folder) or {}, 5.0)
            (folder / "state.json").unlink(missing_ok=True)
        if not port_free(port):
            who = (
                "another registry (not the one with data in {folder})"
                if answers(address) in (200, 401)
                else "another program"
            ).format(folder=folder)
            raise EnvironmentFailure(
                f"port {port} on {HOST} is already in use by {who}",
                f"choose another port (gefreg registry serve --port {port + 1}) and point "
                f"--registry / $GEFREG_REGISTRY at {HOST}:{port + 1}",
            )
        (folder / "storage").mkdir(parents=True, exist_ok=True)
        chosen = choose_backend(backend)
        for attempt in range(3):
            # The health port is picked here and bound by the server a moment later; if another
            # program took it in between, pick another. Anything else is an error.
            debug_port = free_port()
            log = folder / "registry.log"
            offset = log.stat().st_size if log.exists() else 0
            if chosen == "binary":
                state = start_binary(folder, port, debug_port)
            else:
                state = start_container(folder, port, debug_port)
            _write_state(folder, state)
            try:
                _wait_until_answers(status(folder), timeout)
            except EnvironmentFailure:
                _stop(folder, _read_state(folder) or {}, timeout=5)
                if attempt < 2 and _debug_port_taken(log, offset, debug_port):
                    continue
                raise
            break
        return Served(status(folder), already=False)


def _debug_port_taken(log: Path, offset: int, debug_port: int) -> bool:
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
    except OSError:
        return False
    return f":{debug_port}" in text and "address already in use" in text


def stop(data: Path | str | None = None, *, timeout: float = 10.0) -> ServerStatus | None:
    """Stop the registry of this data folder; returns what was running (None: nothing)."""
    folder = data_dir(data)
    with _locked(folder):
        before = status(folder)
        state = _read_state(folder)
        if state is None:
            return None
        _stop(folder, state, timeout)
        return before if before.running else None


def _stop(folder: Path, state: dict[str, Any], timeout: float) -> None:
    pid, container, ticks = state.get("pid"), state.get("container"), state.get("start_ticks")
    if state.get("backend") == "docker" and isinstance(container, str):
        from gefreg.engine.registry_container import stop_registry_container

        stop_registry_container(container, timeout=int(timeout))
    elif isinstance(pid, int) and alive(pid, ticks if isinstance(ticks, int) else None):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    _wait_port_released(state, timeout)
    (folder / "state.json").unlink(missing_ok=True)


def _wait_port_released(state: dict[str, Any], timeout: float) -> None:
    """A server that is gone may hold its port a moment longer (its threads still exiting)."""
    port = str(state.get("address", "")).rpartition(":")[2]
    deadline = time.monotonic() + timeout
    while port.isdigit() and not port_free(int(port)) and time.monotonic() < deadline:
        time.sleep(0.02)


def _wait_until_answers(current: ServerStatus, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    address = current.address or ""
    while time.monotonic() < deadline:
        if answers(address, timeout=0.5) in (200, 401):
            return
        if not status(current.data_dir).running:
            raise EnvironmentFailure(
                f"the registry exited while starting on {address}:\n  {_log_tail(current.log)}",
                f"see {current.log}",
            )
        time.sleep(0.05)
    raise EnvironmentFailure(
        f"the registry on {address} did not answer GET /v2/ within {timeout:.0f} s",
        f"see {current.log}",
    )


def _log_tail(log: Path, lines: int = 6) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n  ".join(text) or "(empty log)"


def _read_state(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(folder: Path, state: dict[str, Any]) -> None:
    write_json(folder / "state.json", state)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
