"""What RegistryClient publishes is readable by other clients (skopeo, the Docker engine), and
what they publish is readable by RegistryClient."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from gefreg.registry.client import RegistryClient
from gefreg.registry.media_types import DOCKER_MANIFEST, OCI_MANIFEST
from tests.registry_fixtures import LocalRegistry, TinyImage, tiny_image

pytestmark = pytest.mark.registry  # Debian's docker-registry (CNCF Distribution)

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")


def run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr}"
    return proc.stdout


def publish(client: RegistryClient, repo: str, image: TinyImage, tag: str) -> str:
    for digest, data in image.blobs():
        client.push_blob(repo, digest, data)
    return client.put_manifest(repo, tag, image.manifest, OCI_MANIFEST)


@pytest.fixture
def client(registry: LocalRegistry) -> Iterator[RegistryClient]:
    with RegistryClient(registry.address) as c:
        yield c


@needs_skopeo
def test_skopeo_reads_what_we_pushed(client: RegistryClient, registry: LocalRegistry) -> None:
    image = tiny_image("skopeo reads")
    digest = publish(client, "interop/skopeo", image, "1.0")
    ref = f"docker://{registry.address}/interop/skopeo:1.0"
    info = json.loads(run("skopeo", "inspect", "--tls-verify=false", ref))
    assert info["Digest"] == digest
    assert info["Layers"] == [image.layer_digest]
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    raw = run("skopeo", "inspect", "--raw", "--tls-verify=false", ref)
    assert raw.encode() == image.manifest


@needs_skopeo
def test_we_read_what_skopeo_pushed(client: RegistryClient, registry: LocalRegistry) -> None:
    publish(client, "interop/source", tiny_image("skopeo writes"), "1.0")
    source = f"docker://{registry.address}/interop/source:1.0"
    target = f"docker://{registry.address}/interop/converted:2.0"
    run("skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
        "--format", "v2s2", source, target)  # fmt: skip
    expected = json.loads(run("skopeo", "inspect", "--tls-verify=false", target))["Digest"]
    manifest = client.get_manifest("interop/converted", "2.0")
    assert manifest is not None
    assert (manifest.media_type, manifest.digest) == (DOCKER_MANIFEST, expected)
    assert client.head_manifest("interop/converted", "2.0") == expected
    assert client.list_tags("interop/converted") == ["2.0"]


@pytest.mark.docker
def test_docker_pulls_what_we_pushed_and_pushes_back(
    client: RegistryClient, registry: LocalRegistry
) -> None:
    image = tiny_image("docker pulls")
    digest = publish(client, "interop/docker", image, "1.0")
    by_digest = f"{registry.address}/interop/docker@{digest}"
    back = f"{registry.address}/interop/docker-back:1.0"
    try:
        run("docker", "pull", by_digest)
        layers = json.loads(run("docker", "image", "inspect", by_digest))[0]["RootFS"]["Layers"]
        assert layers == json.loads(image.config)["rootfs"]["diff_ids"]
        run("docker", "tag", by_digest, back)
        run("docker", "push", back)
        manifest = client.get_manifest("interop/docker-back", "1.0")
        assert manifest is not None and manifest.media_type == DOCKER_MANIFEST
        assert [layer["digest"] for layer in manifest.json()["layers"]] == [image.layer_digest]
    finally:
        subprocess.run(["docker", "rmi", "-f", back, by_digest], capture_output=True, check=False)
