"""HEAD requests pipelined on plain-HTTP keep-alive connections (RFC 9112 §9.3.2).

Why: ``gefreg verify`` asks "what does this tag point at" once per tag, a thousand times for a
busy entry. A local registry answers a HEAD in a fraction of a millisecond, so a
request-then-wait client spends more CPU per tag than the registry does, and on a small machine
the two share the cores. Sending a window of requests before reading the answers cuts the
client's CPU per tag to about a third (``benchmarks/bench_verify.py``). No maintained Python
client pipelines (urllib3 and http.client wait for each answer), hence this small one.

It is deliberately narrow: HEAD only (idempotent, and no body to frame), plain HTTP only, and it
gives up on anything unexpected. Paths it could not get an answer for are simply missing from
the result; the caller asks for those the ordinary way, with its retries and error reporting.
"""

from __future__ import annotations

import io
import re
import socket
import threading
from collections import deque
from dataclasses import dataclass

MAX_LINE = 65536
MAX_HEADERS = 100
MAX_INTERIM = 10  # 1xx answers before the final one
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
RECONNECTS = 3  # new connections in a row that brought no answer, then give up


@dataclass(frozen=True)
class HeadAnswer:
    status: int
    headers: dict[str, str]  # names lower-cased


class _Closed(Exception):
    """The server closed the connection between answers (keep-alive ended: reconnect)."""


class _Broken(Exception):
    """The server sent something that is not an HTTP/1.x response head (stop pipelining)."""


def _line(reader: io.BufferedReader) -> bytes:
    """One whole line; the connection ending before its end (mid-answer too) is _Closed: the
    unanswered request is asked again on a new connection."""
    line = reader.readline(MAX_LINE)
    if not line.endswith(b"\n"):
        if len(line) < MAX_LINE:
            raise _Closed
        raise _Broken(b"line too long")
    return line


def _read_head(reader: io.BufferedReader) -> HeadAnswer:
    for _ in range(MAX_INTERIM + 1):
        line = _line(reader)
        if not line.startswith(b"HTTP/1."):
            raise _Broken(line[:80])
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise _Broken(line[:80])
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = _line(reader)
            if line in (b"\r\n", b"\n"):
                break
            name, sep, value = line.partition(b":")
            if not sep:
                raise _Broken(line[:80])
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        else:
            raise _Broken(b"too many header lines")
        status = int(parts[1])
        if not 100 <= status < 200:
            return HeadAnswer(status, headers)
        # an interim answer: the final one follows
    raise _Broken(b"too many interim answers")


def _request(path: str, headers: dict[str, str]) -> bytes:
    """One request head. Nothing in it may end a line early: a CR or LF smuggled into a path
    or header would shift every later answer onto the wrong path."""
    lines = [f"HEAD {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    if any(_CONTROL.search(line) for line in lines) or any(" " in p for p in (path, *headers)):
        raise ValueError(f"refusing to send a request head with control characters: {path!r}")
    return "\r\n".join([*lines, "", ""]).encode("latin-1")


def _one_connection(
    address: tuple[str, int],
    paths: list[str],
    headers: dict[str, str],
    window: int,
    timeout: float,
    found: dict[str, HeadAnswer],
    lock: threading.Lock,
) -> None:
    todo = deque(paths)
    failures = 0
    while todo and failures <= RECONNECTS:
        pending: deque[str] = deque()
        got: dict[str, HeadAnswer] = {}
        try:
            with (
                socket.create_connection(address, timeout=timeout) as sock,
                sock.makefile("rb") as reader,
            ):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while todo or pending:
                    if todo and len(pending) < window // 2 + 1:
                        batch = [
                            todo.popleft() for _ in range(min(len(todo), window - len(pending)))
                        ]
                        pending.extend(batch)
                        sock.sendall(b"".join(_request(p, headers) for p in batch))
                    answer = _read_head(reader)
                    got[pending.popleft()] = answer
                    if answer.headers.get("connection", "").lower() == "close":
                        break  # the server stops here; the rest goes on a new connection
        except (_Broken, ValueError, TimeoutError):
            # Not speaking HTTP as expected, or stalled (a server that answers the first of a
            # pipeline only would cost a time-out per answer): the caller asks the rest itself.
            pending.clear()
            todo.clear()
        except (OSError, _Closed):
            pass  # refused, reset or closed: the unanswered go on a new connection
        todo.extendleft(reversed(pending))
        with lock:
            found.update(got)
        failures = 0 if got else failures + 1


def pipelined_heads(
    host: str,
    port: int,
    paths: list[str],
    headers: dict[str, str],
    *,
    connections: int = 16,
    window: int = 32,
    timeout: float = 30,
) -> dict[str, HeadAnswer]:
    """HEAD every path on ``host:port`` over ``connections`` connections, ``window`` requests
    in flight on each. Returns the answers it got; a path missing from the result was not
    answered (connection refused or closed early too often, or a malformed answer)."""
    found: dict[str, HeadAnswer] = {}
    unique = list(dict.fromkeys(paths))
    if not unique:
        return found
    lock = threading.Lock()
    # As many connections as the caller would use without pipelining: a registry answers the
    # requests of one connection in turn, so fewer would serialise a slow one.
    count = max(1, min(connections, len(unique)))
    threads = [
        threading.Thread(
            target=_one_connection,
            args=((host, port), unique[i::count], headers, max(1, window), timeout, found, lock),
            daemon=True,
        )
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found
