"""Assemble OCI images by hand, byte for byte reproducibly.

`docker import` stamps the current time into the image config; writing layer, config and
manifest ourselves with fixed timestamps and deterministic compression gives the same digest
for the same root file system every time. The result is written as an OCI image layout
(for registries, skopeo and Trivy) and can be exported as a `docker load` archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gefreg.fsutil import atomic_write
from gefreg.hashing import sha256_bytes
from gefreg.registry.media_types import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST

CHUNK = 1024 * 1024


def canonical_json(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class OciImage:
    """An image in an OCI layout folder: its manifest digest is the image's registry digest."""

    layout: Path
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    diff_ids: tuple[str, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def image_id(self) -> str:
        """The Docker image ID: the digest of the config blob."""
        return self.config.digest

    def blob_path(self, digest: str) -> Path:
        return blob_path(self.layout, digest)


def blob_path(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":", 1)
    return layout / "blobs" / algorithm / hexdigest


def _write_blob(layout: Path, data: bytes, media_type: str) -> Blob:
    digest = sha256_bytes(data)
    path = blob_path(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        atomic_write(path, data)
    return Blob(digest, len(data), media_type)


class _HashingWriter(io.RawIOBase):
    """A file wrapper that hashes and counts everything written through it."""

    def __init__(self, fh: io.BufferedWriter) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _normalized_members(
    source: tarfile.TarFile, epoch: int
) -> Iterator[tuple[tarfile.TarInfo, io.BufferedReader | None]]:
    """Entries in the source's own order (hard links must follow their targets) with clamped
    times, numeric owners and no ``./`` prefix; device nodes under /dev are dropped (the engine
    provides /dev at run time)."""
    for member in source:
        name = _clean(member.name)
        if not name or (name.startswith("dev/") and member.isdev()):
            continue
        member.name = name
        if member.islnk():
            member.linkname = _clean(member.linkname)
        member.mtime = min(int(member.mtime), epoch)
        member.uname = member.gname = ""
        member.pax_headers = {}
        fileobj = source.extractfile(member) if member.isreg() else None
        yield member, fileobj  # type: ignore[misc]


BASE_GZIP_LEVEL = 6  # part of every base digest in a lock file: never change it
SERVICE_GZIP_LEVEL = 1  # service layers: 2.5x faster than 6 for 14 % more bytes


@contextmanager
def gzip_layer(path: Path, level: int) -> Iterator[tuple[_HashingWriter, _HashingWriter]]:
    """Write a layer as gzip with mtime 0 and no file name in the header, so equal tar bytes
    at the same level give equal blobs. Yields (uncompressed, compressed) writers whose
    ``sha`` and ``size`` are the diff ID and the blob once the block ends."""
    with open(path, "wb") as raw_out:
        compressed = _HashingWriter(raw_out)
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=level
        ) as gz:
            yield _HashingWriter(gz), compressed  # type: ignore[arg-type]


def write_layer(layout: Path, rootfs_tar: Path, epoch: int) -> tuple[Blob, str]:
    """Normalize a root file system tarball into a gzip layer; returns (layer blob, diff ID)."""
    tmp = layout / "blobs" / "layer.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with (
        gzip_layer(tmp, BASE_GZIP_LEVEL) as (uncompressed, compressed),
        tarfile.open(rootfs_tar, "r:*") as source,
        tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.GNU_FORMAT) as out,
    ):
        for member, fileobj in _normalized_members(source, epoch):
            out.addfile(member, fileobj)
    digest = "sha256:" + compressed.sha.hexdigest()
    final = blob_path(layout, digest)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    diff_id = "sha256:" + uncompressed.sha.hexdigest()
    return Blob(digest, compressed.size, OCI_LAYER_GZIP), diff_id


def assemble(
    layout: Path,
    rootfs_tar: Path,
    *,
    epoch: int,
    env: dict[str, str],
    labels: dict[str, str],
    cmd: list[str],
    created_by: str,
    ref_name: str,
) -> OciImage:
    """Write an OCI image layout holding one image made of ``rootfs_tar``."""
    if layout.exists():
        shutil.rmtree(layout)
    layout.mkdir(parents=True)
    layer, diff_id = write_layer(layout, rootfs_tar, epoch)
    created = rfc3339(epoch)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "Env": [f"{k}={v}" for k, v in sorted(env.items())],
            "Cmd": cmd,
            "Labels": dict(sorted(labels.items())),
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": created_by}],
    }
    config_blob = _write_blob(layout, canonical_json(config), OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [layer.descriptor()],
        "annotations": {"org.opencontainers.image.created": created},
    }
    manifest_blob = _write_blob(layout, canonical_json(manifest), OCI_MANIFEST)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                **manifest_blob.descriptor(),
                "annotations": {"org.opencontainers.image.ref.name": ref_name},
            }
        ],
    }
    (layout / "index.json").write_bytes(canonical_json(index))
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    return OciImage(layout, manifest_blob, config_blob, (layer,), (diff_id,))


def open_layout(layout: Path) -> OciImage:
    """Read back the single image of a layout written by :func:`assemble`."""
    index = json.loads((layout / "index.json").read_bytes())
    desc = index["manifests"][0]
    manifest_bytes = blob_path(layout, desc["digest"]).read_bytes()
    manifest = json.loads(manifest_bytes)
    config_desc = manifest["config"]
    config = json.loads(blob_path(layout, config_desc["digest"]).read_bytes())
    layers = tuple(Blob(d["digest"], d["size"], d["mediaType"]) for d in manifest["layers"])
    return OciImage(
        layout,
        Blob(desc["digest"], len(manifest_bytes), OCI_MANIFEST),
        Blob(config_desc["digest"], config_desc["size"], OCI_CONFIG),
        layers,
        tuple(config["rootfs"]["diff_ids"]),
    )


def write_docker_archive(image: OciImage, out: Path, repo_tags: list[str]) -> Path:
    """A `docker load` archive (Docker 20.10 does not load OCI layouts); layers stay gzipped,
    which `docker load` accepts."""
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        config_name = image.config.digest.split(":", 1)[1] + ".json"
        tar.add(image.blob_path(image.config.digest), arcname=config_name)
        layer_names = []
        for layer in image.layers:
            name = layer.digest.split(":", 1)[1] + "/layer.tar"
            tar.add(image.blob_path(layer.digest), arcname=name)
            layer_names.append(name)
        manifest = [{"Config": config_name, "RepoTags": repo_tags, "Layers": layer_names}]
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)
    return out
