"""Pipelined HEADs against scripted servers: in flight together, answers matched to paths,
keep-alive ending (politely or not), garbage, nothing listening; and the registry client
falling back to ordinary requests for whatever pipelining left unsettled."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from pathlib import Path

from gefreg.registry.client import RegistryClient
from gefreg.registry.pipelining import pipelined_heads
from tests.bearer_registry import DIGEST as AUTH_DIGEST
from tests.bearer_registry import BearerRegistry, auths, docker_config
from tests.fake_http import Reply, Request, serving
from tests.registry_fixtures import sha256

DIGEST = sha256(b"pipelined")
HOST = {"Host": "test"}


def echo(request: Request) -> Reply:
    return Reply(200, {"X-Path": request.path, "Content-Length": "1234"})  # HEAD: no body


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_each_answer_is_matched_to_its_path_over_few_connections() -> None:
    paths = [f"/v2/demo/manifests/t{i}" for i in range(300)]
    with serving(echo) as fake:
        answers = pipelined_heads("127.0.0.1", port_of(fake.address), paths, HOST, connections=3)
        connections = fake.connections()
    assert sorted(answers) == sorted(paths)
    assert all(a.status == 200 and a.headers["x-path"] == p for p, a in answers.items())
    assert len(connections) == 3


def test_requests_are_in_flight_before_the_first_answer() -> None:
    """The server answers only once it holds all 8 requests: a client that waits for each
    answer before sending the next would never get there."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[int] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while data.count(b"\r\n\r\n") < 8 and (chunk := conn.recv(65536)):
                data += chunk
            held.append(data.count(b"\r\n\r\n"))
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 57\r\n\r\n" * 8)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    paths = [f"/p{i}" for i in range(8)]
    answers = pipelined_heads("127.0.0.1", server.getsockname()[1], paths, HOST, connections=1)
    thread.join(5)
    server.close()
    assert held == [8]
    assert {p: a.status for p, a in answers.items()} == dict.fromkeys(paths, 404)


def test_keep_alive_ending_moves_the_unanswered_to_a_new_connection() -> None:
    served: Counter[tuple[str, int]] = Counter()

    def handler(request: Request) -> Reply | bytes:
        served[request.client] += 1
        if served[request.client] == 5:
            return Reply(200, {"Connection": "close", "X-Path": request.path})
        if served[request.client] > 5:  # pragma: no cover - the server has closed by now
            raise AssertionError("answered after Connection: close")
        return echo(request)

    paths = [f"/t{i}" for i in range(40)]
    with serving(handler) as fake:
        answers = pipelined_heads("127.0.0.1", port_of(fake.address), paths, HOST, connections=2)
    assert sorted(answers) == sorted(paths)
    assert all(a.headers["x-path"] == p for p, a in answers.items())
    assert len(served) >= 8  # 40 answers, at most 5 per connection


def test_a_connection_dropped_without_notice_is_retried() -> None:
    served: Counter[tuple[str, int]] = Counter()

    def handler(request: Request) -> Reply | bytes:
        served[request.client] += 1
        return b"" if served[request.client] == 3 else echo(request)  # b"": just hang up

    paths = [f"/t{i}" for i in range(20)]
    with serving(handler) as fake:
        answers = pipelined_heads("127.0.0.1", port_of(fake.address), paths, HOST, connections=1)
    assert sorted(answers) == sorted(paths)


def test_garbage_stops_pipelining_and_leaves_the_rest_unanswered() -> None:
    def handler(request: Request) -> Reply | bytes:
        return b"SSH-2.0-OpenSSH_9.2\r\n" if request.path == "/t2" else echo(request)

    paths = [f"/t{i}" for i in range(6)]
    with serving(handler) as fake:
        answers = pipelined_heads("127.0.0.1", port_of(fake.address), paths, HOST, connections=1)
    assert sorted(answers) == ["/t0", "/t1"]


def test_nothing_listening_gives_no_answers_quickly() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    start = time.monotonic()
    assert pipelined_heads("127.0.0.1", port, ["/a", "/b"], HOST) == {}
    assert time.monotonic() - start < 2


def test_client_settles_the_rest_the_ordinary_way() -> None:
    """A 500 and a missing digest header are not settled by pipelining: the ordinary path
    retries the first and hashes the manifest for the second."""
    failed: set[str] = set()
    body = b'{"schemaVersion": 2}'

    def handler(request: Request) -> Reply:
        ref = request.path.rsplit("/", 1)[-1]
        if ref == "flaky" and ref not in failed:
            failed.add(ref)
            return Reply(500, body=b"try again")
        if ref == "quiet":
            return Reply(200, {"Content-Type": "application/json"}, body)
        if ref == "gone":
            return Reply(404)
        return Reply(200, {"Docker-Content-Digest": DIGEST})

    refs = [f"t{i}" for i in range(30)] + ["flaky", "quiet", "gone"]
    with serving(handler) as fake, RegistryClient(fake.address, backoff=0.01) as client:
        heads = client.head_manifests("demo/app", refs)
    assert heads == {
        **{r: DIGEST for r in refs[:31]},
        "quiet": sha256(body),
        "gone": None,
    }


def test_pipelined_requests_carry_the_token_of_the_handshake(tmp_path: Path) -> None:
    registry = BearerRegistry()
    with serving(registry) as fake:
        registry.fake = fake
        creds = docker_config(tmp_path / "docker", auths(fake.address))
        with RegistryClient(fake.address, credentials=creds) as client:
            heads = client.head_manifests("demo/app", [f"v{i}" for i in range(20)])
        tokens = [r for r in fake.requests if r.path == "/token"]
        unauthorised = [r for r in fake.requests if "Authorization" not in r.headers]
    assert heads == {f"v{i}": AUTH_DIGEST for i in range(20)}
    assert len(tokens) == 1  # one handshake, by the first HEAD
    assert len(unauthorised) == 1  # only that first HEAD went without a token


def test_a_stalled_pipeline_is_left_to_the_caller_after_one_time_out() -> None:
    """A server that answers the first request of a pipeline and then goes quiet: one
    time-out, then the rest is the caller's, not one time-out per answer."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Path: first\r\n\r\n")
            stop.wait(5)  # holds the connection open, answering nothing more
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    paths = [f"/t{i}" for i in range(8)]
    start = time.monotonic()
    answers = pipelined_heads(
        "127.0.0.1", server.getsockname()[1], paths, HOST, connections=1, timeout=0.3
    )
    elapsed = time.monotonic() - start
    stop.set()
    server.close()
    assert list(answers) == ["/t0"]
    assert elapsed < 1.0, f"{elapsed:.2f} s"


def test_a_line_break_in_a_path_or_header_is_never_sent() -> None:
    with serving(echo) as fake:
        port = port_of(fake.address)
        smuggled = pipelined_heads("127.0.0.1", port, ["/a\r\nX: y"], HOST)
        in_header = pipelined_heads("127.0.0.1", port, ["/a"], {"Authorization": "t\nX: y"})
        requests = list(fake.requests)
    assert smuggled == {} and in_header == {} and requests == []


def test_a_connection_closed_mid_answer_is_asked_again() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[int] = []

    def serve() -> None:
        for attempt in range(2):
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                seen.append(attempt)
                if attempt == 0:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Pa")  # and hang up mid-head
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Path: again\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    answers = pipelined_heads("127.0.0.1", server.getsockname()[1], ["/a"], HOST, connections=1)
    thread.join(5)
    server.close()
    assert seen == [0, 1]
    assert answers["/a"].headers == {"x-path": "again"}
