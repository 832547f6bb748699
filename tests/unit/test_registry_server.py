"""Pieces of the embedded registry that need no registry: config, folders, process identity."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from gefreg.registry import processes, server_launch
from gefreg.registry import server as regserver


def test_config_quotes_paths_and_binds_loopback(tmp_path: Path) -> None:
    odd = tmp_path / 'a "quoted" folder: with colon'
    text = server_launch.render_config(5123, odd, 5124, "s3cr3t")
    assert 'addr: "127.0.0.1:5123"' in text and 'addr: "127.0.0.1:5124"' in text
    assert f"rootdirectory: {json.dumps(str(odd))}" in text
    assert "delete:\n    enabled: true" in text and 'secret: "s3cr3t"' in text


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(regserver.ENV_DATA, str(tmp_path / "env"))
    assert regserver.data_dir() == tmp_path / "env"
    assert regserver.data_dir(tmp_path / "given") == tmp_path / "given"


def test_status_without_state_is_not_running(tmp_path: Path) -> None:
    status = regserver.status(tmp_path)
    assert not status.running and not status.stale and status.storage == tmp_path / "storage"


def test_a_just_spawned_process_is_alive_and_known_by_its_start_time() -> None:
    """Regression: /proc/PID/cmdline is empty right after posix_spawn, so it cannot tell."""
    for _ in range(20):
        pid = os.posix_spawn("/bin/sleep", ["/bin/sleep", "30"], dict(os.environ), setsid=True)
        try:
            ticks = processes.start_ticks(pid)
            assert ticks is not None
            assert processes.alive(pid, ticks)
            assert not processes.alive(pid, ticks + 1)  # a recycled pid is not ours
        finally:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while processes.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not processes.alive(pid, ticks)


def test_port_free(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert not processes.port_free(busy.getsockname()[1])
    assert processes.port_free(processes.free_port())
