"""Starting CNCF Distribution for the embedded registry: its configuration (rewritten at every
start, with a kept secret so uploads survive a restart), and the two ways to run it: Debian's
``docker-registry`` binary detached in its own session, or the ``registry:2`` image through the
engine (``$GEFREG_REGISTRY_IMAGE`` names another image)."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from gefreg.errors import ToolMissing
from gefreg.registry.processes import HOST, start_ticks
from gefreg.subprocesses import find_tool

ENV_IMAGE = "GEFREG_REGISTRY_IMAGE"


# Distribution allocates about 0.5 MB per manifest request while keeping a live heap of a few
# MB, so with Go's default GOGC=100 it collects garbage every ~10 requests and a verify of a
# thousand tags spends much of its time there. A target of 5x the live heap (tens of MB)
# makes tag lookups ~1.5x faster (benchmarks/bench_verify.py). A GOGC the user set wins.
GOGC = "400"


def gogc() -> str:
    return os.environ.get("GOGC", GOGC)


DEFAULT_IMAGE = "registry:2"


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


def render_config(port: int, storage: Path, debug_port: int, secret: str, bind: str = HOST) -> str:
    # JSON strings are YAML strings: any path is quoted safely.
    return CONFIG.format(
        storage=json.dumps(str(storage)),
        secret=json.dumps(secret),
        addr=json.dumps(f"{bind}:{port}"),
        debug=json.dumps(f"{bind}:{debug_port}"),
    )


def choose_backend(backend: str) -> str:
    if backend in ("auto", "binary"):
        try:
            find_tool("docker-registry")
            return "binary"
        except ToolMissing:
            if backend == "binary":
                raise
    return "docker"


def start_binary(folder: Path, port: int, debug_port: int) -> dict[str, Any]:
    binary = find_tool("docker-registry")
    config = folder / "config.yml"
    write_private(config, render_config(port, folder / "storage", debug_port, http_secret(folder)))
    log = folder / "registry.log"
    with open(log, "ab") as fh:
        fh.write(f"--- gefreg: starting {binary} on {HOST}:{port} ---\n".encode())
    # posix_spawn with setsid: detached in its own session, stdout/stderr to the log.
    pid = os.posix_spawn(
        binary,
        [binary, "serve", str(config)],
        {**os.environ, "GOGC": gogc()},
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
        "start_ticks": start_ticks(pid),
        "address": f"{HOST}:{port}",
        "health": f"{HOST}:{debug_port}",
        "started": time.time(),
    }


def start_container(folder: Path, port: int, debug_port: int) -> dict[str, Any]:
    from gefreg.engine.registry_container import start_registry_container

    image = os.environ.get(ENV_IMAGE) or DEFAULT_IMAGE
    config = folder / "config.yml"
    text = render_config(5000, Path("/var/lib/registry"), 5001, http_secret(folder), bind="0.0.0.0")
    write_private(config, text)
    container = start_registry_container(
        image,
        name=f"gefreg-registry-{port}",
        port=port,
        debug_port=debug_port,
        storage=folder / "storage",
        config=config,
        environment={"GOGC": gogc()},
    )
    return {
        "backend": "docker",
        "container": container,
        "image": image,
        "address": f"{HOST}:{port}",
        "health": f"{HOST}:{debug_port}",
        "started": time.time(),
    }


def http_secret(folder: Path) -> str:
    """The http.secret that signs upload sessions: kept, so uploads survive a restart."""
    path = folder / "http-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        write_private(path, secrets.token_hex(32))
        return path.read_text().strip()


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
