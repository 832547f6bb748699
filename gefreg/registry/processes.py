"""Local processes and ports, as the embedded registry needs them: whether a pid is still the
process that was started (not a zombie, not a recycled pid), whether a port is free, and
whether an address answers HTTP."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
from pathlib import Path

HOST = "127.0.0.1"


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


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), None without /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks after boot): with the pid, its identity."""
    fields = proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def alive(pid: int, ticks: int | None = None) -> bool:
    """The process runs (not a zombie) and, when its start ``ticks`` are known, is the same process
    that was started (not a recycled pid). /proc/PID/cmdline is no use here: it stays empty
    for a moment after posix_spawn returns."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)  # we may be its parent: reap it
        if done == pid:
            return False
    if Path("/proc/self/stat").exists():
        fields = proc_stat(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return ticks is None or start_ticks(pid) == ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
