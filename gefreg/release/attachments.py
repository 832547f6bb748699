"""Things attached to an image in the registry the way cosign attaches them.

Signatures and attestations live in the image's repository under the tag
``sha256-<hex>.<suffix>`` (CNCF Distribution 2.8 has no referrers API; this is cosign's tag
scheme). The tag holds an OCI image manifest whose layers are the attached payloads, each
with its annotations, and whose config is a minimal image config listing those layers, as
cosign writes it. The manifest also names the image as its ``subject`` (OCI 1.1), like the
SBOM and scan artifacts. Everything read back here came from the registry and is untrusted:
sizes and counts are bounded and the caller verifies every payload.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gefreg.hashing import sha256_bytes
from gefreg.image import oci
from gefreg.registry.errors import DigestMismatch, RegistryRejected
from gefreg.registry.media_types import OCI_CONFIG, OCI_MANIFEST

MAX_LAYERS = 32
MAX_LAYER_BYTES = 1 << 20


@dataclass(frozen=True)
class Layer:
    media_type: str
    data: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_bytes(self.data)


@dataclass(frozen=True)
class Attached:
    """What a ``.sig``/``.att`` tag holds: its manifest digest, the readable layers of the
    wanted media type, and what could not be read."""

    digest: str
    layers: tuple[Layer, ...]
    problems: tuple[str, ...] = ()


def tag_for(subject_digest: str, suffix: str) -> str:
    """``sha256:abc…`` → ``sha256-abc….sig`` (cosign's scheme)."""
    return f"{subject_digest.replace(':', '-')}.{suffix}"


def manifest_bytes(
    layers: list[Layer], config_digest: str, config_size: int, subject: Mapping[str, Any]
) -> bytes:
    return oci.canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [
                {
                    "mediaType": layer.media_type,
                    "digest": layer.digest,
                    "size": len(layer.data),
                    "annotations": dict(layer.annotations),
                }
                for layer in layers
            ],
            "subject": dict(subject),
        }
    )


def config_bytes(layers: list[Layer]) -> bytes:
    """The image config cosign writes for its signature images: the payloads are the layers
    (uncompressed, so the diff IDs are the blob digests)."""
    return oci.canonical_json(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        }
    )


def write(
    client: Any,
    repo: str,
    subject_digest: str,
    subject_size: int,
    suffix: str,
    layers: list[Layer],
) -> str:
    """Put ``layers`` under the subject's ``.suffix`` tag; returns the manifest digest."""
    for blob in {layer.digest: layer.data for layer in layers}.items():
        client.push_blob(repo, blob[0], blob[1])
    config = config_bytes(layers)
    config_digest = sha256_bytes(config)
    client.push_blob(repo, config_digest, config)
    subject = {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject_size}
    body = manifest_bytes(layers, config_digest, len(config), subject)
    return str(client.put_manifest(repo, tag_for(subject_digest, suffix), body, OCI_MANIFEST))


def read(
    client: Any, repo: str, subject_digest: str, suffix: str, media_type: str
) -> Attached | None:
    """The layers of ``media_type`` under the subject's ``.suffix`` tag; None: no such tag."""
    manifest = client.get_manifest(repo, tag_for(subject_digest, suffix))
    if manifest is None:
        return None
    problems: list[str] = []
    try:
        body = json.loads(manifest.body)
        descriptors = body["layers"] if isinstance(body, dict) else None
        if not isinstance(descriptors, list):
            raise ValueError("no layers")
    except (ValueError, KeyError) as exc:
        return Attached(manifest.digest, (), (f"the manifest is not an image manifest ({exc})",))
    layers: list[Layer] = []
    for index, desc in enumerate(descriptors[:MAX_LAYERS]):
        layer = _read_layer(client, repo, desc, media_type)
        if isinstance(layer, str):
            problems.append(f"layer {index}: {layer}")
        elif layer is not None:
            layers.append(layer)
    if len(descriptors) > MAX_LAYERS:
        problems.append(f"only the first {MAX_LAYERS} of {len(descriptors)} layers were read")
    return Attached(manifest.digest, tuple(layers), tuple(problems))


def _read_layer(client: Any, repo: str, desc: Any, media_type: str) -> Layer | str | None:
    """The layer, None when it is of another media type, or what is wrong with it."""
    if not isinstance(desc, dict) or desc.get("mediaType") != media_type:
        return None
    digest, size = desc.get("digest"), desc.get("size")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        return "no sha256 digest"
    if not isinstance(size, int) or not 0 < size <= MAX_LAYER_BYTES:
        return f"size {size!r} is not between 1 and {MAX_LAYER_BYTES} bytes"
    annotations = desc.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        return "annotations are not a map of strings"
    try:
        data = client.get_blob(repo, digest)  # checked against the digest by the client
    except (RegistryRejected, DigestMismatch) as exc:  # gone, or not what the manifest says
        return f"blob {digest} cannot be read: {exc}"
    if len(data) != size:
        return f"blob {digest} has {len(data)} bytes, the manifest says {size}"
    return Layer(media_type, data, dict(annotations))
