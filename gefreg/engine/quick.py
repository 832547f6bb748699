"""One raw HTTP request on the engine's unix socket, for cache hits where importing the docker SDK
would cost more than the whole answer."""

from __future__ import annotations

from typing import Any

from gefreg.engine.types import START_HINT, EngineUnavailable


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
