"""Image signatures in cosign's layout (keyed mode, no transparency log).

The signed payload is cosign's "simple signing" JSON: it names the repository
(``critical.identity.docker-reference``) and the manifest digest
(``critical.image.docker-manifest-digest``) it is for. It is stored as a layer of media type
``application/vnd.dev.cosign.simplesigning.v1+json`` under the ``sha256-<hex>.sig`` tag, the
base64 ECDSA-P256/SHA-256 signature in the layer's ``dev.cosignproject.cosign/signature``
annotation, so ``cosign verify --key gefreg.pub --insecure-ignore-tlog IMAGE@DIGEST`` accepts
it. A verifier must check both names against what it is about to run: that is what stops a
signature copied from another image or repository.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from gefreg.release import attachments
from gefreg.release.attachments import Layer
from gefreg.release.keys import PublicKey, SigningKey

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_TYPE = "cosign container image signature"
SUFFIX = "sig"


@dataclass(frozen=True)
class Payload:
    """What a signature claims: this repository, this manifest digest."""

    reference: str  # REGISTRY/REPOSITORY, as cosign writes docker-reference
    digest: str
    optional: dict[str, Any] | None = None


def payload_bytes(reference: str, digest: str, optional: dict[str, Any] | None = None) -> bytes:
    """The simple-signing JSON, field for field as cosign marshals it."""
    doc = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_TYPE,
        },
        "optional": optional,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def parse_payload(data: bytes) -> Payload:
    """The claims of a payload; ValueError when it is not a cosign simple-signing payload."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or not isinstance(doc.get("critical"), dict):
        raise ValueError("no 'critical' section")
    critical = doc["critical"]
    if critical.get("type") != COSIGN_TYPE:
        raise ValueError(f"critical.type is {critical.get('type')!r}, not {COSIGN_TYPE!r}")
    identity, image = critical.get("identity"), critical.get("image")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(reference, str) or not isinstance(digest, str):
        raise ValueError(
            "critical.identity.docker-reference or critical.image.docker-manifest-digest missing"
        )
    optional = doc.get("optional")
    return Payload(reference, digest, optional if isinstance(optional, dict) else None)


def signature_layer(key: SigningKey, reference: str, digest: str) -> Layer:
    payload = payload_bytes(reference, digest)
    signature = base64.b64encode(key.sign(payload)).decode()
    return Layer(SIMPLE_SIGNING, payload, {SIGNATURE_ANNOTATION: signature})


def layer_signature(layer: Layer) -> bytes | None:
    """The raw signature of a layer (None: missing or not base64)."""
    text = layer.annotations.get(SIGNATURE_ANNOTATION)
    if not text:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def signed_by(layer: Layer, key: PublicKey) -> bool:
    signature = layer_signature(layer)
    return signature is not None and key.verifies(signature, layer.data)


def read(client: Any, repo: str, digest: str) -> attachments.Attached | None:
    return attachments.read(client, repo, digest, SUFFIX, SIMPLE_SIGNING)


def sign(
    client: Any, repo: str, reference: str, digest: str, subject_size: int, key: SigningKey
) -> str:
    """Add a signature by ``key`` to the image's ``.sig`` tag, keeping the signatures already
    there (key rotation: several signatures, a verifier accepts one it trusts). A signature
    by this key of this very payload already there is kept as it is. Returns the manifest
    digest of the ``.sig`` tag."""
    existing = read(client, repo, digest)
    kept = list(existing.layers) if existing else []
    fresh = payload_bytes(reference, digest)
    if existing and any(layer.data == fresh and signed_by(layer, key.public) for layer in kept):
        return existing.digest
    return attachments.write(
        client, repo, digest, subject_size, SUFFIX, [*kept, signature_layer(key, reference, digest)]
    )
