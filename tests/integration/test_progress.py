"""Progress of real transfers: an upload to a real registry shows its bytes and rate in a CI
log, and a pull through the real engine reports the bytes it downloaded."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gefreg.engine import Engine
from gefreg.registry.client import RegistryClient
from gefreg.registry.media_types import OCI_MANIFEST
from tests.integration.test_publish import entry, gefreg, removing_test_images
from tests.registry_fixtures import LocalRegistry, tiny_image

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _remove_images(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    yield from removing_test_images(tmp_path, request)


def test_publish_shows_upload_bytes_rate_and_time(tmp_path: Path, registry: LocalRegistry) -> None:
    pub = entry(tmp_path, "pub-progress", registry.address, big=48 * 1024**2)
    pub.build()
    result = gefreg(
        "publish", *pub.opts(), pub.name, "--json", env={"GEFREG_PROGRESS_EVERY": "0.1"}
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    uploading = [line for line in lines if "… pub-progress: compressing and uploading" in line]
    assert uploading, lines
    amounts = [float(line.split(" — ")[1].split(" MB,")[0]) for line in uploading if " — " in line]
    assert amounts and amounts == sorted(amounts) and amounts[-1] > 0  # bytes only grow
    assert all("MB/s" in line for line in uploading if " — " in line)
    started = f"pub-progress: compressing and uploading pub-progress 1.0.0 to {registry.address}"
    assert f"{started}/pub-progress" in lines
    assert json.loads(result.stdout)["status"] == "published"


def test_pulls_report_the_bytes_they_download(registry: LocalRegistry, engine: Engine) -> None:
    image = tiny_image(f"pull progress {os.urandom(4).hex()}", filler=4 << 20)
    repo = "progress/pull"
    with RegistryClient(registry.address) as client:
        for digest, data in image.blobs():
            client.push_blob(repo, digest, data)
        digest = client.put_manifest(repo, "t", image.manifest, OCI_MANIFEST)
    ref = f"{registry.address}/{repo}@{digest}"
    heard: list[tuple[str, int, int | None]] = []

    def listener(pulled: str):  # type: ignore[no-untyped-def]
        return lambda done, total: heard.append((pulled, done, total))

    engine.pull_listener = listener
    try:
        info = engine.pull(ref)
        assert heard and {h[0] for h in heard} == {ref}
        assert heard[-1][1] == heard[-1][2] == len(image.layer)  # every byte of the layer
    finally:
        engine.pull_listener = None
        engine.remove_image(info.id)
