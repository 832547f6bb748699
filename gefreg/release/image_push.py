"""Push a locally built image to a registry by digest, with deterministic compression.

`docker push` moves a tag the moment it finishes and compresses layers its own way. Publishing
needs the opposite: upload everything first, learn the manifest digest, and only then decide
whether the version tag may point at it. So gefreg exports the image (`docker save`),
compresses each layer deterministically (gzip, mtime 0, fixed level) and puts the manifest by
digest: the same image always yields the same manifest digest. Layers the registry already
holds are not compressed again: they are found in the repository, or mounted from the one
that has them; the base's layers always keep the base's own blobs (from REGISTRY/bases/NAME).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.engine import Engine
from gefreg.errors import EnvironmentFailure
from gefreg.hashing import sha256_bytes
from gefreg.image import normalize, oci
from gefreg.image.normalize import BaseLayers
from gefreg.registry.layer_cache import LayerCache
from gefreg.registry.media_types import OCI_LAYER_GZIP, OCI_MANIFEST

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class PushedImage:
    repository: str
    digest: str
    image_id: str
    manifest: bytes
    size: int


def compress_layer(source: Any, target: Path) -> tuple[str, int, str]:
    """gzip a layer tar deterministically (:func:`oci.gzip_layer`), hashing both sides in the
    same pass; returns (compressed digest, size, diff ID)."""
    with oci.gzip_layer(target, oci.SERVICE_GZIP_LEVEL) as (uncompressed, compressed):
        while chunk := source.read(CHUNK):
            uncompressed.write(chunk)
    return (
        "sha256:" + compressed.sha.hexdigest(),
        compressed.size,
        "sha256:" + uncompressed.sha.hexdigest(),
    )


class _Uploaded:
    """Bytes sent so far over every blob of one push (layers upload in parallel)."""

    def __init__(self, report: Callable[[int, int | None], None] | None) -> None:
        self.report = report
        self.lock = threading.Lock()
        self.sent: dict[str, int] = {}

    def for_blob(self, digest: str) -> Callable[[int], None] | None:
        if self.report is None:
            return None
        report = self.report

        def seen(sent: int) -> None:
            with self.lock:
                self.sent[digest] = sent
                total = sum(self.sent.values())
            report(total, None)

        return seen


def _base_layer(
    client: Any, repository: str, base: BaseLayers, source: str, index: int
) -> oci.Blob:
    """A layer the image inherits from its base is published as the base's own blob (found
    in the repository or mounted from the base's), never compressed again: so the manifest
    digest is the same wherever the base came from, and the one the build computed."""
    blob = base.blobs[index]
    if client.blob_exists(repository, blob.digest) or client.mount_blob(
        repository, blob.digest, source
    ):
        return blob
    raise EnvironmentFailure(
        f"layer {blob.digest} of the base is neither in {repository} nor in {source}",
        "push the base first: gefreg base build NAME",
    )


def push_image(
    engine: Engine,
    client: Any,
    image_ref: str,
    repository: str,
    cache: LayerCache,
    on_bytes: Callable[[int, int | None], None] | None = None,
    *,
    base: BaseLayers | None = None,
    base_repository: str | None = None,
) -> PushedImage:
    """Upload every blob of a local image and put its manifest by digest (no tag).
    ``on_bytes`` hears the bytes uploaded so far (from worker threads). ``base`` names the
    layers the image inherits (and ``base_repository`` where they are): they keep the base's
    blobs, as in the manifest the build computed."""
    uploaded = _Uploaded(on_bytes)
    base = base or BaseLayers()
    with tempfile.TemporaryDirectory(prefix="gefreg-push-") as tmp_name:
        tmp = Path(tmp_name)
        archive = engine.save(image_ref, tmp / "image.tar")
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
            config_bytes = tar.extractfile(manifest["Config"]).read()  # type: ignore[union-attr]
            config = json.loads(config_bytes)
            diff_ids = config["rootfs"]["diff_ids"]
            if len(diff_ids) != len(manifest["Layers"]):
                raise EnvironmentFailure(f"the engine exported an inconsistent image {image_ref}")
            if tuple(diff_ids[: len(base.diff_ids)]) != base.diff_ids:
                raise EnvironmentFailure(f"{image_ref} does not start with its base's layers")

            def layer(index: int) -> oci.Blob:
                diff_id = diff_ids[index]
                if index < len(base.diff_ids):
                    return _base_layer(client, repository, base, str(base_repository), index)
                known = cache.get(diff_id)
                if known:
                    digest, size, source = known
                    if client.blob_exists(repository, digest) or (
                        source not in (None, repository)
                        and client.mount_blob(repository, digest, source)
                    ):
                        return oci.Blob(digest, size, OCI_LAYER_GZIP)
                member = tar.getmember(manifest["Layers"][index])
                target = tmp / f"layer-{index}.tar.gz"
                with open(archive, "rb") as fh:  # own handle: layers compress in parallel
                    fh.seek(member.offset_data)
                    digest, size, computed = compress_layer(_Limited(fh, member.size), target)
                if computed != diff_id:
                    raise EnvironmentFailure(
                        f"layer {index} of {image_ref} does not match its "
                        f"diff ID ({computed} != {diff_id})"
                    )
                client.push_blob(repository, digest, target, uploaded.for_blob(digest))
                cache.put(diff_id, digest, size, repository)
                target.unlink()
                return oci.Blob(digest, size, OCI_LAYER_GZIP)

            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                layers = list(pool.map(layer, range(len(diff_ids))))
        config_digest = sha256_bytes(config_bytes)
        client.push_blob(repository, config_digest, config_bytes)
        body = normalize.manifest(config_bytes, layers)
        digest = sha256_bytes(body)
        stored = client.put_manifest(repository, digest, body, OCI_MANIFEST)
        if stored != digest:
            raise EnvironmentFailure(f"the registry stored {repository} as {stored}, not {digest}")
        shutil.rmtree(tmp, ignore_errors=True)
    return PushedImage(
        repository, digest, config_digest, body, len(config_bytes) + sum(b.size for b in layers)
    )


class _Limited:
    """Read at most ``size`` bytes from a file (one member of an uncompressed tar)."""

    def __init__(self, fh: Any, size: int) -> None:
        self.fh, self.left = fh, size

    def read(self, n: int) -> bytes:
        if self.left <= 0:
            return b""
        data = self.fh.read(min(n, self.left))
        self.left -= len(data)
        return bytes(data)
