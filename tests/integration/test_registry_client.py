"""RegistryClient against a real CNCF Distribution 2.8 registry (Debian's docker-registry)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from gefreg.errors import EXIT_ENVIRONMENT
from gefreg.registry.client import RegistryClient
from gefreg.registry.errors import RegistryRejected, RegistryUnavailable
from gefreg.registry.media_types import OCI_MANIFEST
from tests.registry_fixtures import LocalRegistry, TinyImage, sha256, tiny_image

pytestmark = pytest.mark.registry  # Debian's docker-registry (CNCF Distribution)


def push_image(client: RegistryClient, repo: str, image: TinyImage, *tags: str) -> str:
    for digest, data in image.blobs():
        client.push_blob(repo, digest, data)
    digests = {client.put_manifest(repo, tag, image.manifest, OCI_MANIFEST) for tag in tags}
    assert digests == {image.digest}
    return image.digest


def raw_get(
    address: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.fixture
def client(registry: LocalRegistry) -> Iterator[RegistryClient]:
    with RegistryClient(registry.address) as c:
        yield c


def test_ping_uses_plain_http_for_loopback(client: RegistryClient) -> None:
    assert client.endpoint.url.startswith("http://127.0.0.1:")
    client.ping()


def test_push_then_read_back_by_tag_and_digest(client: RegistryClient, tmp_path: Path) -> None:
    image = tiny_image("read back")
    layer_file = tmp_path / "layer.tar.gz"
    layer_file.write_bytes(image.layer)
    client.push_blob("tests/readback", image.layer_digest, layer_file)  # streamed from a file
    client.push_blob("tests/readback", image.config_digest, image.config)  # from bytes
    digest = client.put_manifest("tests/readback", "1.0", image.manifest, OCI_MANIFEST)

    assert digest == image.digest
    assert client.head_manifest("tests/readback", "1.0") == digest
    assert client.head_manifest("tests/readback", digest) == digest
    for reference in ("1.0", digest):
        manifest = client.get_manifest("tests/readback", reference)
        assert manifest is not None
        assert (manifest.digest, manifest.media_type, manifest.body) == (
            digest,
            OCI_MANIFEST,
            image.manifest,
        )
    assert client.get_blob("tests/readback", image.layer_digest) == image.layer
    assert client.blob_exists("tests/readback", image.config_digest)
    assert not client.blob_exists("tests/readback", sha256(b"never pushed"))


def test_push_blob_skips_a_blob_already_there(
    client: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tiny_image("skip")
    client.push_blob("tests/skip", image.config_digest, image.config)

    def no_upload(repo: str) -> str:
        raise AssertionError("push_blob started an upload for a blob the registry has")

    monkeypatch.setattr(client, "_start_upload", no_upload)
    client.push_blob("tests/skip", image.config_digest, image.config)


def test_unknown_things(client: RegistryClient) -> None:
    assert client.get_manifest("tests/nothing-here", "1.0") is None
    assert client.head_manifest("tests/nothing-here", "1.0") is None
    assert client.list_tags("tests/nothing-here") == []
    with pytest.raises(RegistryRejected) as caught:
        client.get_blob("tests/nothing-here", sha256(b"x"))
    assert caught.value.codes == ("BLOB_UNKNOWN",) and caught.value.exit_code == EXIT_ENVIRONMENT


def test_head_without_oci_accept_is_404_on_distribution(
    client: RegistryClient, registry: LocalRegistry
) -> None:
    """Why the client always sends Accept: Distribution hides OCI manifests otherwise."""
    digest = push_image(client, "tests/accept", tiny_image("accept"), "v1")
    status, _, body = raw_get(registry.address, "/v2/tests/accept/manifests/v1")
    assert status == 404 and b"MANIFEST_UNKNOWN" in body
    assert client.head_manifest("tests/accept", "v1") == digest


def test_tag_listing_across_pages(client: RegistryClient, registry: LocalRegistry) -> None:
    tags = ["a1", "b2", "c3", "d4", "e5"]
    push_image(client, "tests/tags", tiny_image("tags"), *reversed(tags))
    assert client.list_tags("tests/tags", page_size=2) == tags
    assert client.list_tags("tests/tags") == tags
    # What Distribution 2.8.2 really answers: it ignores n= and sends every tag, unsorted and
    # without a Link header (pagination of tags arrived in Distribution 3). The client's Link
    # handling is proven against a paginating server in test_registry_faults.py.
    status, headers, body = raw_get(registry.address, "/v2/tests/tags/tags/list?n=2")
    assert status == 200 and "Link" not in headers
    assert sorted(json.loads(body)["tags"]) == tags


def test_parallel_heads(registry: LocalRegistry) -> None:
    with RegistryClient(registry.address, workers=8) as client:
        tags = [f"t{i:03d}" for i in range(60)]
        digest = push_image(client, "tests/parallel", tiny_image("parallel"), *tags)
        heads = client.head_manifests("tests/parallel", [*tags, "missing", "t000"])
    assert heads == {**{t: digest for t in tags}, "missing": None}


def test_rejections_carry_the_registry_error(client: RegistryClient, tmp_path: Path) -> None:
    with pytest.raises(RegistryRejected) as caught:
        client.put_manifest("tests/reject", "v1", b"{not json", OCI_MANIFEST)
    assert caught.value.codes == ("MANIFEST_INVALID",)
    assert "MANIFEST_INVALID: manifest invalid" in str(caught.value)

    orphan = tiny_image("orphan")  # its blobs were never pushed
    with pytest.raises(RegistryRejected) as caught:
        client.put_manifest("tests/reject", "v1", orphan.manifest, OCI_MANIFEST)
    assert "MANIFEST_BLOB_UNKNOWN" in caught.value.codes

    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"these bytes do not hash to the digest")
    with pytest.raises(RegistryRejected) as caught:
        client.push_blob("tests/reject", sha256(b"something else"), wrong)
    assert caught.value.codes == ("DIGEST_INVALID",)


def test_a_big_file_is_streamed_not_read_into_memory(
    client: RegistryClient, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    chunk = os.urandom(1 << 20)
    with open(big, "wb") as fh:
        for i in range(64):
            fh.write(chunk[i:] + chunk[:i])
    digest = "sha256:" + hashlib.sha256(big.read_bytes()).hexdigest()
    tracemalloc.start()
    try:
        client.push_blob("tests/big", digest, big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert client.blob_exists("tests/big", digest)
    assert peak < 8 << 20, f"push_blob of a 64 MiB file peaked at {peak / 2**20:.1f} MiB"


def test_registry_killed_is_unavailable_within_bounded_time(
    fresh_registry: LocalRegistry,
) -> None:
    client = RegistryClient(fresh_registry.address, retries=3, backoff=0.1, timeout=5)
    client.ping()
    fresh_registry.kill()
    start = time.monotonic()
    with pytest.raises(RegistryUnavailable) as caught:
        client.head_manifest("tests/dead", "v1")
    elapsed = time.monotonic() - start
    assert caught.value.exit_code == EXIT_ENVIRONMENT
    assert "Connection refused" in str(caught.value) and "4 tries" in str(caught.value)
    assert "gefreg registry serve" in (caught.value.hint or "")
    assert elapsed < 3, f"took {elapsed:.1f} s"


def _big_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for _ in range(mib):
            fh.write(block)
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def _kill_when_upload_started(
    reg: LocalRegistry, then_start: bool, killed: threading.Event
) -> threading.Thread:
    """Kill the registry once it has received 4 MiB of an upload (and start it again)."""

    def watch() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            uploads = list(reg.storage.rglob("_uploads/*/data"))
            if any(p.stat().st_size > (4 << 20) for p in uploads):
                reg.kill()
                killed.set()
                if then_start:
                    reg.start()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def test_registry_dies_mid_push(fresh_registry: LocalRegistry, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    digest = _big_file(blob, 400)
    client = RegistryClient(fresh_registry.address, retries=2, backoff=0.1, timeout=10)
    killed = threading.Event()
    watcher = _kill_when_upload_started(fresh_registry, False, killed)
    start = time.monotonic()
    with pytest.raises(RegistryUnavailable) as caught:
        client.push_blob("tests/midpush", digest, blob)
    watcher.join()
    assert killed.is_set() and not fresh_registry.running
    assert time.monotonic() - start < 15
    assert caught.value.exit_code == EXIT_ENVIRONMENT


def test_push_survives_a_registry_restart(fresh_registry: LocalRegistry, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    digest = _big_file(blob, 400)
    client = RegistryClient(fresh_registry.address, retries=5, backoff=0.2, timeout=10)
    killed = threading.Event()
    watcher = _kill_when_upload_started(fresh_registry, True, killed)
    client.push_blob("tests/restart", digest, blob)  # a new upload session after the restart
    watcher.join()
    assert killed.is_set() and fresh_registry.running
    assert client.blob_exists("tests/restart", digest)


def test_a_blob_is_mounted_from_another_repository(registry) -> None:  # type: ignore[no-untyped-def]
    from gefreg.registry.client import RegistryClient

    data = b"a layer both repositories share"
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with RegistryClient(registry.address) as client:
        client.push_blob("mount/source", digest, data)
        assert not client.blob_exists("mount/target", digest)
        assert client.mount_blob("mount/target", digest, "mount/source")
        assert client.blob_exists("mount/target", digest)
        missing = "sha256:" + "0" * 64
        assert not client.mount_blob("mount/target", missing, "mount/source")
