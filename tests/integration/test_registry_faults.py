"""RegistryClient against scripted servers: failures, retries, pagination, parallelism."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from gefreg.errors import EXIT_ENVIRONMENT
from gefreg.registry.client import RegistryClient
from gefreg.registry.errors import DigestMismatch, RegistryRejected, RegistryUnavailable
from gefreg.registry.media_types import OCI_MANIFEST
from tests.fake_http import Reply, Request, serving
from tests.registry_fixtures import sha256, tiny_image

MANIFEST = tiny_image("fake").manifest
DIGEST = sha256(MANIFEST)


def quick(address: str, **kw: object) -> RegistryClient:
    options: dict[str, Any] = {"retries": 3, "backoff": 0.01, "timeout": 2}
    options.update(kw)
    return RegistryClient(address, **options)


def test_repeated_500s_are_retried_then_unavailable() -> None:
    with serving(lambda r: Reply(500, body=b"internal trouble")) as fake:
        start = time.monotonic()
        with pytest.raises(RegistryUnavailable) as caught:
            quick(fake.address).head_manifest("demo/app", "v1")
        assert fake.count() == 4  # 1 + 3 retries, no more
    assert time.monotonic() - start < 2
    assert caught.value.exit_code == EXIT_ENVIRONMENT
    assert "HTTP 500" in str(caught.value) and "4 tries" in str(caught.value)


# Both transports: GET goes through the requests Session, HEAD to a plain-HTTP registry
# straight through the Session's urllib3 pool.
CALLS: dict[str, Callable[[RegistryClient], object]] = {
    "GET": lambda client: client.ping(),
    "HEAD": lambda client: client.head_manifest("demo/app", "v1"),
}


@pytest.mark.parametrize("method", CALLS)
def test_garbage_instead_of_http_is_retried_then_unavailable(method: str) -> None:
    with serving(lambda r: b"SSH-2.0-OpenSSH_9.2\r\nthis is not HTTP\r\n") as fake:
        with pytest.raises(RegistryUnavailable) as caught:
            CALLS[method](quick(fake.address))
        assert [r.method for r in fake.requests] == [method] * 4
    assert "not valid HTTP" in str(caught.value)


@pytest.mark.parametrize("method", CALLS)
def test_connection_closed_without_answer_is_unavailable(method: str) -> None:
    with serving(lambda r: b"") as fake:
        with pytest.raises(RegistryUnavailable) as caught:
            CALLS[method](quick(fake.address, retries=1))
        assert [r.method for r in fake.requests] == [method] * 2
    assert "closed without an answer" in str(caught.value)


def test_a_transient_503_is_retried_and_succeeds() -> None:
    answers = iter([Reply(503), Reply(502)])

    def handler(request: Request) -> Reply:
        return next(answers, Reply(200, {"Docker-Content-Digest": DIGEST}))

    with serving(handler) as fake:
        assert quick(fake.address).head_manifest("demo/app", "v1") == DIGEST
        assert fake.count() == 3


def test_retry_after_is_honoured() -> None:
    answers = iter([Reply(429, {"Retry-After": "1"})])

    def handler(request: Request) -> Reply:
        return next(answers, Reply(200, {"Docker-Content-Digest": DIGEST}))

    with serving(handler) as fake:
        start = time.monotonic()
        assert quick(fake.address).head_manifest("demo/app", "v1") == DIGEST
        assert time.monotonic() - start >= 0.95


@pytest.mark.parametrize("method", CALLS)
def test_a_hanging_registry_times_out(method: str) -> None:
    def handler(request: Request) -> Reply:
        time.sleep(1.5)
        return Reply(200)

    with serving(handler) as fake:
        start = time.monotonic()
        with pytest.raises(RegistryUnavailable) as caught:
            CALLS[method](quick(fake.address, timeout=0.2, retries=1))
    assert time.monotonic() - start < 1.5
    assert "timed out" in str(caught.value)


def test_a_200_that_is_not_json_is_unavailable() -> None:
    page = Reply(200, {"Content-Type": "text/html"}, b"<html>login</html>")
    with serving(lambda r: page) as fake, pytest.raises(RegistryUnavailable) as caught:
        quick(fake.address).list_tags("demo/app")
    assert "not JSON" in str(caught.value)


def test_an_unexpected_4xx_shows_the_registry_error() -> None:
    body = json.dumps(
        {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}
    ).encode()
    with serving(lambda r: Reply(403, {"Content-Type": "application/json"}, body)) as fake:
        with pytest.raises(RegistryRejected) as caught:
            quick(fake.address).put_manifest("demo/app", "v1", MANIFEST, OCI_MANIFEST)
        assert fake.count() == 1  # a 4xx is an answer, not a failure to retry
    error = caught.value
    assert (error.status, error.codes, error.exit_code) == (403, ("DENIED",), EXIT_ENVIRONMENT)
    assert "DENIED: requested access to the resource is denied" in str(error)


def test_a_registry_that_is_not_one() -> None:
    with (
        serving(lambda r: Reply(404, body=b"Not Found")) as fake,
        pytest.raises(RegistryUnavailable) as caught,
    ):
        quick(fake.address).ping()
    assert "not the registry API" in str(caught.value)


def test_manifest_digest_is_checked() -> None:
    wrong = sha256(b"something else")
    stored = Reply(201, {"Docker-Content-Digest": wrong})
    with serving(lambda r: stored) as fake, pytest.raises(DigestMismatch):
        quick(fake.address).put_manifest("demo/app", "v1", MANIFEST, OCI_MANIFEST)
    headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": wrong}
    with serving(lambda r: Reply(200, headers, MANIFEST)) as fake, pytest.raises(DigestMismatch):
        quick(fake.address).get_manifest("demo/app", "v1")


def test_head_without_digest_header_falls_back_to_hashing_the_body() -> None:
    with serving(lambda r: Reply(200, {"Content-Type": OCI_MANIFEST}, MANIFEST)) as fake:
        assert quick(fake.address).head_manifest("demo/app", "v1") == DIGEST
        assert [r.method for r in fake.requests] == ["HEAD", "GET"]


@pytest.mark.parametrize("absolute", [False, True])
def test_tag_pagination_follows_link_headers(absolute: bool) -> None:
    tags = ["v1", "v2", "v3", "v4", "v5"]

    def handler(request: Request) -> Reply:
        n = int(request.param("n") or 100)
        last = request.param("last")
        rest = [t for t in tags if last is None or t > last]
        page, more = rest[:n], rest[n:]
        headers = {"Content-Type": "application/json"}
        if more:
            base = fake.url if absolute else ""
            headers["Link"] = f'<{base}/v2/demo/app/tags/list?n={n}&last={page[-1]}>; rel="next"'
        return Reply(200, headers, json.dumps({"name": "demo/app", "tags": page}).encode())

    with serving(handler) as fake:
        assert quick(fake.address).list_tags("demo/app", page_size=2) == tags
        pages = [(r.param("n"), r.param("last")) for r in fake.requests]
    assert pages == [("2", None), ("2", "v2"), ("2", "v4")]


def test_head_manifests_runs_in_parallel_over_kept_alive_connections() -> None:
    def handler(request: Request) -> Reply:
        time.sleep(0.1)
        ref = request.path.rsplit("/", 1)[-1]
        if ref.startswith("missing"):
            return Reply(404, body=b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
        return Reply(200, {"Docker-Content-Digest": DIGEST})

    refs = [f"t{i}" for i in range(40)] + ["missing"]
    with serving(handler) as fake:
        client = quick(fake.address, workers=8)
        start = time.monotonic()
        heads = client.head_manifests("demo/app", refs)
        elapsed = time.monotonic() - start
        connections = fake.connections()
        client.close()
    assert heads == {**{r: DIGEST for r in refs[:-1]}, "missing": None}
    # 41 requests of 0.1 s each: 4.1 s one by one; 8 at a time ~0.6 s.
    assert elapsed < 1.5, f"{elapsed:.2f} s"
    # Reused, not one per request: the first HEAD alone (it runs any auth handshake), then
    # the rest pipelined over `workers` connections.
    assert len(connections) <= 1 + 8, connections


def test_client_is_usable_from_many_threads() -> None:
    with serving(lambda r: Reply(200, {"Docker-Content-Digest": DIGEST})) as fake:
        client = quick(fake.address, workers=4)
        results: list[str | None] = []

        def work() -> None:
            for i in range(20):
                results.append(client.head_manifest("demo/app", f"v{i}"))

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        client.close()
    assert results == [DIGEST] * 120
