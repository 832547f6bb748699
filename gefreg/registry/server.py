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
import http.client
import json
import os
import secrets
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput, EnvironmentFailure, ToolMissing
from gefreg.fsutil import write_json
from gefreg.subprocesses import find_tool

ENV_DATA = "GEFREG_REGISTRY_DATA"
ENV_IMAGE = "GEFREG_REGISTRY_IMAGE"
# Distribution allocates about 0.5 MB per manifest request while keeping a live heap of a few
# MB, so with Go's default GOGC=100 it collects garbage every ~10 requests and a verify of a
# thousand tags spends much of its time there. A target of 5x the live heap (tens of MB)
# makes tag lookups ~1.5x faster (benchmarks/bench_verify.py). A GOGC the user set wins.
GOGC = "400"


def _gogc() -> str:
    return os.environ.get("GOGC", GOGC)


DEFAULT_PORT = 5000
DEFAULT_IMAGE = "registry:2"
HOST = "127.0.0.1"
BACKENDS = ("auto", "binary", "docker")

CONFIG = """\
# Written by gefreg for the embedded registry; rewritten at every start.
version: 0.1
log:
  level: warn              # errors and warnings only: a log line per request costs CPU
  formatter: text
  accesslog:
    disabled: true
  fields:
    service: gefreg-registry
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: {addr}
  secret: {secret}
  headers:
    X-Content-Type-Options: [nosniff]
  debug:
    addr: {debug}
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""


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


def render_config(port: int, storage: Path, debug_port: int, secret: str, bind: str = HOST) -> str:
    # JSON strings are YAML strings: any path is quoted safely.
    return CONFIG.format(
        storage=json.dumps(str(storage)),
        secret=json.dumps(secret),
        addr=json.dumps(f"{bind}:{port}"),
        debug=json.dumps(f"{bind}:{debug_port}"),
    )


def answers(address: str, path: str = "/v2/", timeout: float = 1.0) -> int | None:
    """The HTTP status of GET ``path`` on ``address`` (host:port), None if nothing answers."""
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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
        running = pid is not None and _alive(pid, ticks if isinstance(ticks, int) else None)
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
        chosen = _choose_backend(backend)
        for attempt in range(3):
            # The health port is picked here and bound by the server a moment later; if another
            # program took it in between, pick another. Anything else is an error.
            debug_port = free_port()
            log = folder / "registry.log"
            offset = log.stat().st_size if log.exists() else 0
            if chosen == "binary":
                state = _start_binary(folder, port, debug_port)
            else:
                state = _start_container(folder, port, debug_port)
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
    elif isinstance(pid, int) and _alive(pid, ticks if isinstance(ticks, int) else None):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    _wait_port_released(state, timeout)
    (folder / "state.json").unlink(missing_ok=True)


def _wait_port_released(state: dict[str, Any], timeout: float) -> None:
    """A server that is gone may hold its port a moment longer (its threads still exiting)."""
    port = str(state.get("address", "")).rpartition(":")[2]
    deadline = time.monotonic() + timeout
    while port.isdigit() and not port_free(int(port)) and time.monotonic() < deadline:
        time.sleep(0.02)


def _choose_backend(backend: str) -> str:
    if backend in ("auto", "binary"):
        try:
            find_tool("docker-registry")
            return "binary"
        except ToolMissing:
            if backend == "binary":
                raise
    return "docker"


def _start_binary(folder: Path, port: int, debug_port: int) -> dict[str, Any]:
    binary = find_tool("docker-registry")
    config = folder / "config.yml"
    _write_private(config, render_config(port, folder / "storage", debug_port, _secret(folder)))
    log = folder / "registry.log"
    with open(log, "ab") as fh:
        fh.write(f"--- gefreg: starting {binary} on {HOST}:{port} ---\n".encode())
    # posix_spawn with setsid: detached in its own session, stdout/stderr to the log.
    pid = os.posix_spawn(
        binary,
        [binary, "serve", str(config)],
        {**os.environ, "GOGC": _gogc()},
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    return {
        "backend": "binary",
        "pid": pid,
        "start_ticks": _start_ticks(pid),
        "address": f"{HOST}:{port}",
        "health": f"{HOST}:{debug_port}",
        "started": time.time(),
    }


def _start_container(folder: Path, port: int, debug_port: int) -> dict[str, Any]:
    from gefreg.engine.registry_container import start_registry_container

    image = os.environ.get(ENV_IMAGE) or DEFAULT_IMAGE
    config = folder / "config.yml"
    text = render_config(5000, Path("/var/lib/registry"), 5001, _secret(folder), bind="0.0.0.0")
    _write_private(config, text)
    container = start_registry_container(
        image,
        name=f"gefreg-registry-{port}",
        port=port,
        debug_port=debug_port,
        storage=folder / "storage",
        config=config,
        environment={"GOGC": _gogc()},
    )
    return {
        "backend": "docker",
        "container": container,
        "image": image,
        "address": f"{HOST}:{port}",
        "health": f"{HOST}:{debug_port}",
        "started": time.time(),
    }


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


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), None without /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks after boot): with the pid, its identity."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _alive(pid: int, start_ticks: int | None = None) -> bool:
    """The process runs (not a zombie) and, when ``start_ticks`` is known, is the same process
    that was started (not a recycled pid). /proc/PID/cmdline is no use here: it stays empty
    for a moment after posix_spawn returns."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)  # we may be its parent: reap it
        if done == pid:
            return False
    if Path("/proc/self/stat").exists():
        fields = _proc_stat(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return start_ticks is None or _start_ticks(pid) == start_ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _secret(folder: Path) -> str:
    """The http.secret that signs upload sessions: kept, so uploads survive a restart."""
    path = folder / "http-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        _write_private(path, secrets.token_hex(32))
        return path.read_text().strip()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


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
