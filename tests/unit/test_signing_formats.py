"""The signing formats, checked against the cosign and in-toto specifications with code that
does not share gefreg's: field names and media types spelled out here, signatures verified
with plain `cryptography`, the DSSE PAE built by hand, the SSH key fingerprint computed from
the curve point, statements parsed by the in-toto attestation bindings."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gefreg.errors import BadInput
from gefreg.release import attachments, attestations, keys, signatures

DIGEST = "sha256:" + "ab" * 32
REPOSITORY = "127.0.0.1:5000/demo-service"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> keys.SigningKey:
    folder = tmp_path_factory.mktemp("key")
    keys.generate(folder, None)
    return keys.load_signing_key(folder / keys.PRIVATE_FILE)


def facts() -> attestations.ReleaseFacts:
    return attestations.ReleaseFacts(
        entry="demo-service",
        version="1.0.0",
        repository=REPOSITORY,
        digest=DIGEST,
        fingerprint="sha256:" + "cd" * 32,
        base_digest="sha256:" + "ef" * 32,
        locks={"base:debian-bookworm": "sha256:" + "ef" * 32, "pip.lock": "sha256:" + "12" * 32},
        catalog_commit="a" * 40,
        gefreg_version="0.9.0",
        published="2026-11-30T03:19:15Z",
        scan={"passed": True, "policy_sha256": "sha256:" + "34" * 32, "counts": {"blocking": 0}},
    )


# --- keys ----------------------------------------------------------------------------------


def test_key_files_are_the_pem_formats_cosign_reads(tmp_path: Path) -> None:
    pair = keys.generate(tmp_path / "plain", None)
    private = pair.private.read_text()
    assert private.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert pair.public.read_text().startswith("-----BEGIN PUBLIC KEY-----")  # PKIX
    assert stat.S_IMODE(pair.private.stat().st_mode) & 0o077 == 0
    loaded = serialization.load_pem_private_key(private.encode(), None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name == "secp256r1"

    secret = keys.generate(tmp_path / "secret", b"correct horse")
    assert secret.private.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert keys.load_signing_key(secret.private, b"correct horse").public.fingerprint == (
        secret.fingerprint
    )
    with pytest.raises(BadInput, match="no password was given"):
        keys.load_signing_key(secret.private, None)
    with pytest.raises(BadInput, match="password is wrong"):
        keys.load_signing_key(secret.private, b"wrong")
    with pytest.raises(BadInput, match="never overwrites"):
        keys.generate(tmp_path / "plain", None)


def test_fingerprint_is_the_ssh_sha256_fingerprint(key: keys.SigningKey) -> None:
    """What go-securesystemslib's SHA256KeyID (cosign's DSSE key ID) computes: SHA-256 of
    the SSH wire encoding, base64 without padding."""
    point = key.public.key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )

    def string(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    wire = string(b"ecdsa-sha2-nistp256") + string(b"nistp256") + string(point)
    expected = base64.b64encode(hashlib.sha256(wire).digest()).decode().rstrip("=")
    assert key.public.fingerprint == "SHA256:" + expected


# --- cosign simple signing -----------------------------------------------------------------


def test_simple_signing_payload_has_cosigns_field_names() -> None:
    doc = json.loads(signatures.payload_bytes(REPOSITORY, DIGEST))
    assert doc == {
        "critical": {
            "identity": {"docker-reference": REPOSITORY},
            "image": {"docker-manifest-digest": DIGEST},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    parsed = signatures.parse_payload(signatures.payload_bytes(REPOSITORY, DIGEST))
    assert (parsed.reference, parsed.digest) == (REPOSITORY, DIGEST)
    other = json.dumps({"critical": {**doc["critical"], "type": "atomic container signature"}})
    with pytest.raises(ValueError, match=r"critical\.type"):
        signatures.parse_payload(other.encode())


def test_signature_layer_is_cosigns_layout(key: keys.SigningKey) -> None:
    layer = signatures.signature_layer(key, REPOSITORY, DIGEST)
    assert layer.media_type == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert set(layer.annotations) == {"dev.cosignproject.cosign/signature"}
    raw = base64.b64decode(layer.annotations["dev.cosignproject.cosign/signature"], validate=True)
    decode_dss_signature(raw)  # ASN.1 DER (r, s), as cosign writes ECDSA signatures
    public = serialization.load_pem_public_key(key.public.pem.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(raw, layer.data, ec.ECDSA(hashes.SHA256()))  # raises if it does not verify
    assert signatures.signed_by(layer, key.public)


def test_attachment_manifest_and_tag() -> None:
    layer = attachments.Layer("application/x-test", b"payload", {"a": "b"})
    config = attachments.config_bytes([layer])
    body = json.loads(
        attachments.manifest_bytes(
            [layer], "sha256:" + "00" * 32, len(config), {"digest": DIGEST, "size": 10}
        )
    )
    assert body["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert body["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert body["layers"] == [
        {
            "mediaType": "application/x-test",
            "digest": layer.digest,
            "size": 7,
            "annotations": {"a": "b"},
        }
    ]
    assert body["subject"]["digest"] == DIGEST
    assert json.loads(config)["rootfs"]["diff_ids"] == [layer.digest]
    assert attachments.tag_for(DIGEST, "sig") == "sha256-" + "ab" * 32 + ".sig"


# --- in-toto statements in DSSE ------------------------------------------------------------


def test_envelope_is_dsse_over_the_pae(key: keys.SigningKey) -> None:
    layer = attestations.layers(facts(), key)[0]
    assert layer.media_type == "application/vnd.dsse.envelope.v1+json"
    assert layer.annotations == {
        "predicateType": "https://slsa.dev/provenance/v1",
        "dev.cosignproject.cosign/signature": "",  # cosign's readers expect it on every layer
    }
    env = json.loads(layer.data)
    assert set(env) == {"payload", "payloadType", "signatures"}
    assert env["payloadType"] == "application/vnd.in-toto+json"
    ((sig),) = env["signatures"]
    assert sig["keyid"] == key.public.fingerprint
    body = base64.b64decode(env["payload"], validate=True)
    kind = env["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)
    key.public.key.verify(
        base64.b64decode(sig["sig"], validate=True), pae, ec.ECDSA(hashes.SHA256())
    )
    statement = json.loads(body)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": REPOSITORY, "digest": {"sha256": "ab" * 32}}]
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    predicate = statement["predicate"]
    assert predicate["runDetails"]["builder"]["version"] == {"gefreg": "0.9.0"}
    materials = {
        m["name"]: m["digest"] for m in predicate["buildDefinition"]["resolvedDependencies"]
    }
    assert materials == {
        "record": {"sha256": "cd" * 32},
        "base:debian-bookworm": {"sha256": "ef" * 32},
        "pip.lock": {"sha256": "12" * 32},
        "catalog": {"gitCommit": "a" * 40},
    }


def test_statements_parse_with_the_in_toto_bindings(key: keys.SigningKey) -> None:
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    for layer in attestations.layers(facts(), key):
        doc = json.loads(base64.b64decode(json.loads(layer.data)["payload"]))
        pb = json_format.ParseDict(doc, statement_pb2.Statement())
        Statement.copy_from_pb(pb).validate()
        if doc["predicateType"] == attestations.SLSA_PROVENANCE_V1:
            prov = json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
            assert prov.build_definition.build_type == attestations.BUILD_TYPE
            assert prov.run_details.builder.id == attestations.BUILDER_ID


def test_open_envelope_verifies_with_securesystemslib(tmp_path: Path, key: keys.SigningKey) -> None:
    data = attestations.layers(facts(), key)[0].data
    opened = attestations.open_envelope(data, [("curators", key.public)])
    assert opened.signers == ("curators",)
    assert attestations.record_fingerprint(opened.statement["predicate"]) == facts().fingerprint

    keys.generate(tmp_path / "other", None)
    other = keys.load_signing_key(tmp_path / "other" / keys.PRIVATE_FILE)
    with pytest.raises(ValueError, match="does not verify"):
        attestations.open_envelope(data, [("other", other.public)])

    env = json.loads(data)  # the subject changed after signing
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "99" * 32
    env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(ValueError, match="does not verify"):
        attestations.open_envelope(json.dumps(env).encode(), [("curators", key.public)])


def test_envelope_without_keyid_as_cosign_writes_it(key: keys.SigningKey) -> None:
    """cosign's DSSE signatures may carry an empty keyid; they verify by key alone."""
    doc = attestations.statement(REPOSITORY, DIGEST, attestations.SCAN_VERDICT_V1, {"passed": True})
    body = json.dumps(doc).encode()
    kind = attestations.INTOTO_PAYLOAD.encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)
    sig = key.private.sign(pae, ec.ECDSA(hashes.SHA256()))
    env = {
        "payloadType": attestations.INTOTO_PAYLOAD,
        "payload": base64.b64encode(body).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}],
    }
    opened = attestations.open_envelope(json.dumps(env).encode(), [("k", key.public)])
    assert opened.statement["subject"][0]["digest"]["sha256"] == "ab" * 32
    assert attestations.subject_problem(opened.statement, REPOSITORY, DIGEST) is None
    assert "not" in str(
        attestations.subject_problem(opened.statement, REPOSITORY, "sha256:" + "0" * 64)
    )


def test_malformed_envelopes_are_refused_not_crashed(key: keys.SigningKey) -> None:
    for data in (b"not json", b"[]", b'{"payload": "!!", "payloadType": "x", "signatures": []}'):
        with pytest.raises(ValueError):
            attestations.open_envelope(data, [("k", key.public)])
