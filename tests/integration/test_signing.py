"""Signed releases against the real registry (CNCF Distribution): `gefreg key generate`,
`trust add/revoke`, `publish --sign-key`, `sign` and `verify`, and the attacks verify (and,
through the runner's trust check, every run) must refuse, each naming what failed.

What gefreg stored is read back with an independent client (skopeo) and checked with code
that is not gefreg's: the simple-signing signature with plain `cryptography`, the DSSE
envelope with securesystemslib's verifier.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gefreg.registry.client import RegistryClient
from gefreg.release import attachments, attestations, keys, ledger, signatures, signing
from tests.integration.test_publish import (
    Service,
    entry,
    gefreg,
    remote_tags,
    removing_test_images,
    run_version,
)
from tests.registry_fixtures import LocalRegistry

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _remove_images(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    """Entries here are named sig-*: the images this test built and published are removed
    afterwards (and only these: other sessions run the same tests on the same engine)."""
    yield from removing_test_images(tmp_path, request, "sig-")


PASSWORD = {"GEFREG_SIGNING_PASSWORD": "correct horse battery"}


@dataclass
class Signer:
    folder: Path

    @property
    def key(self) -> Path:
        return self.folder / "gefreg.key"

    @property
    def pub(self) -> Path:
        return self.folder / "gefreg.pub"

    def load(self) -> keys.SigningKey:
        return keys.load_signing_key(self.key, PASSWORD["GEFREG_SIGNING_PASSWORD"].encode())


def new_key(folder: Path) -> Signer:
    made = gefreg("key", "generate", str(folder), env=PASSWORD)
    assert made.exit_code == 0, made.stderr
    return Signer(folder)


def trust(pub: Service, *args: str) -> None:
    done = gefreg("trust", *args, "--catalog", str(pub.catalog))
    assert done.exit_code == 0, done.stderr


def require_signatures(pub: Service, on: bool) -> None:
    path = pub.catalog / "trust.yaml"
    text = path.read_text()
    for value in ("true", "false"):
        text = text.replace(
            f"require-signatures: {value}", f"require-signatures: {str(on).lower()}"
        )
    path.write_text(text)


def signed_service(tmp_path: Path, name: str, registry: str) -> tuple[Service, Signer]:
    pub = entry(tmp_path, name, registry)
    curator = new_key(tmp_path / "keys" / "curators")
    trust(pub, "add", str(curator.pub), "--id", "curators")
    require_signatures(pub, True)
    return pub, curator


def publish_signed(pub: Service, signer: Signer) -> dict[str, Any]:
    pub.build()
    done = gefreg(
        "publish", *pub.opts(), pub.name, "--sign-key", str(signer.key), "--json", env=PASSWORD
    )
    assert done.exit_code == 0, done.stderr
    return dict(json.loads(done.stdout))


def skopeo_dir(address: str, name: str, tag: str, into: Path) -> tuple[dict[str, Any], Path]:
    """The manifest of NAME:TAG and the folder holding its blobs, copied by skopeo."""
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            f"docker://{address}/{name}:{tag}",
            f"dir:{into}",
        ],
        capture_output=True,
        check=True,
    )
    return json.loads((into / "manifest.json").read_text()), into


def test_signed_publish_stores_cosign_signature_and_attestations(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    pub, curator = signed_service(tmp_path, "sig-published", registry.address)
    out = publish_signed(pub, curator)
    digest = out["digest"]
    assert out["signed_by"] == "curators"
    (line,) = pub.releases()
    assert line["signed_by"] == "curators" and line["locks"] == {}
    tag = digest.replace(":", "-")
    assert {f"{tag}.sig", f"{tag}.att"} <= remote_tags(registry.address, pub.name)

    public = serialization.load_pem_public_key(curator.pub.read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    manifest, folder = skopeo_dir(registry.address, pub.name, f"{tag}.sig", tmp_path / "sig")
    assert manifest["subject"]["digest"] == digest
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = (folder / layer["digest"].split(":", 1)[1]).read_bytes()
    signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    critical = json.loads(payload)["critical"]
    assert critical["identity"]["docker-reference"] == f"{registry.address}/{pub.name}"
    assert critical["image"]["docker-manifest-digest"] == digest

    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    manifest, folder = skopeo_dir(registry.address, pub.name, f"{tag}.att", tmp_path / "att")
    types = [layer["annotations"]["predicateType"] for layer in manifest["layers"]]
    assert types == ["https://slsa.dev/provenance/v1", "urn:gefreg:predicate:scan-verdict:v1"]
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
        envelope = Envelope.from_dict(json.loads((folder / layer["digest"][7:]).read_bytes()))
        (keyid,) = envelope.signatures
        envelope.verify([SSlibKey.from_crypto(public, keyid=keyid)], 1)
        statement = json.loads(envelope.payload)
        assert statement["subject"][0]["digest"]["sha256"] == digest[7:]
    provenance = statement_of(folder, manifest["layers"][0])["predicate"]
    materials = {
        m["name"]: m["digest"] for m in provenance["buildDefinition"]["resolvedDependencies"]
    }
    assert materials["record"] == {"sha256": line["fingerprint"][7:]}
    # the scan verdict: the publish gate's decision, policy hash, scanner and DB versions, counts
    verdict = statement_of(folder, manifest["layers"][1])["predicate"]
    assert verdict["passed"] is True and verdict["counts"] == line["scan"]["counts"]
    assert verdict["policySha256"] == line["scan"]["policy_sha256"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", verdict["policySha256"])
    assert verdict["scanner"] == line["scan"]["trivy"] and verdict["scanner"]["version"]
    assert "vulnerability_db" in verdict["scanner"]

    checked = pub.verify()
    assert checked.exit_code == 0, checked.stdout + checked.stderr

    # `show` displays them: who signed, which attestations verified, the tags' digests
    sig_digest = (
        "sha256:"
        + hashlib.sha256(manifest_of(registry.address, pub.name, f"{tag}.sig")).hexdigest()
    )
    att_digest = (
        "sha256:"
        + hashlib.sha256(manifest_of(registry.address, pub.name, f"{tag}.att")).hexdigest()
    )
    shown = gefreg("show", *pub.opts(), f"{pub.name}@1.0.0", "--json")
    assert shown.exit_code == 0, shown.stderr
    signature = json.loads(shown.stdout)["registry"]["signature"]
    assert (signature["state"], signature["key_id"]) == ("verified", "curators")
    assert signature["signature_digest"] == sig_digest
    assert signature["attestation_digest"] == att_digest
    assert signature["attestations"] == types and signature["failures"] == []
    text = gefreg("show", *pub.opts(), f"{pub.name}@1.0.0").stdout
    assert f"  signature: signed by curators ({', '.join(types)})" in text


def statement_of(folder: Path, layer: dict[str, Any]) -> dict[str, Any]:
    envelope = json.loads((folder / layer["digest"][7:]).read_bytes())
    return dict(json.loads(base64.b64decode(envelope["payload"])))


def replace_tag(address: str, name: str, tag: str, body: bytes) -> None:
    with RegistryClient(address) as client:
        client.put_manifest(name, tag, body, "application/vnd.oci.image.manifest.v1+json")


def manifest_of(address: str, name: str, tag: str) -> bytes:
    with RegistryClient(address) as client:
        found = client.get_manifest(name, tag)
    assert found is not None
    return found.body


def refused(pub: Service, *expected: str) -> str:
    done = pub.verify("--shallow")
    assert done.exit_code == 1, done.stdout + done.stderr
    for text in expected:
        assert text in done.stdout, done.stdout
    return done.stdout


def test_verify_refuses_signatures_trust_yaml_does_not_vouch_for(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    pub, curator = signed_service(tmp_path, "sig-attacked", registry.address)
    first = publish_signed(pub, curator)["digest"]
    address, name = registry.address, pub.name
    sig_tag, att_tag = attachments.tag_for(first, "sig"), attachments.tag_for(first, "att")
    good_sig, good_att = manifest_of(address, name, sig_tag), manifest_of(address, name, att_tag)

    # re-signed with a key that is not in trust.yaml (the attacker replaces the .sig tag)
    stranger = new_key(tmp_path / "keys" / "stranger").load()
    layer = signatures.signature_layer(stranger, f"{address}/{name}", first)
    with RegistryClient(address) as client:
        attachments.write(client, name, first, 100, "sig", [layer])
    refused(
        pub,
        "sig-attacked: signature: sig-attacked:1.0.0: signature:",
        "not made by any key in trust.yaml",
    )

    # the .sig of another image copied over this image's .sig tag
    (pub.entry / "run.sh").write_text("echo second version from $0\n")
    pub.set_version("1.0.1")
    second = publish_signed(pub, curator)["digest"]
    replace_tag(
        address, name, sig_tag, manifest_of(address, name, attachments.tag_for(second, "sig"))
    )
    refused(
        pub,
        "payload-identity (key curators)",
        f"is for {address}/{name}@{second}",
        "copied from another image",
    )

    # a signature, by the trusted key, whose payload names another repository
    with RegistryClient(address) as client:
        layer = signatures.signature_layer(curator.load(), f"{address}/sig-other", first)
        attachments.write(client, name, first, 100, "sig", [layer])
    refused(pub, f"names the repository {address}/sig-other", "copied from another repository")

    # a tampered attestation: the statement's subject changed after signing
    replace_tag(address, name, sig_tag, good_sig)
    body = json.loads(good_att)
    with RegistryClient(address) as client:
        raw = client.get_blob(name, body["layers"][0]["digest"])
        envelope = json.loads(raw)
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["subject"][0]["digest"]["sha256"] = second[7:]
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        tampered = attachments.Layer(
            "application/vnd.dsse.envelope.v1+json",
            json.dumps(envelope).encode(),
            body["layers"][0]["annotations"],
        )
        attachments.write(client, name, first, 100, "att", [tampered])
    refused(pub, "attestation: attestation 0: its DSSE signature does not verify with any key")

    # the attestation of another image copied over (validly signed, wrong subject)
    replace_tag(
        address, name, att_tag, manifest_of(address, name, attachments.tag_for(second, "att"))
    )
    refused(pub, "provenance-subject (key curators)", f"not {address}/{name}@{first}")

    # provenance by the trusted key for this image, naming another record than the ledger's
    [release] = [r for r in ledger.read(pub.entry) if r.version == "1.0.0"]
    forged = replace(signing.facts(name, release), fingerprint="sha256:" + "9" * 64)
    with RegistryClient(address) as client:
        attestations.attest(client, name, forged, 100, curator.load())
    refused(
        pub,
        "provenance-fingerprint (key curators)",
        f"names the record fingerprint sha256:{'9' * 64}, the ledger says {release.fingerprint}",
    )
    # the attestations removed: the .att tag holds no provenance (verify reports it, show too)
    with RegistryClient(address) as client:
        attachments.write(client, name, first, 100, "att", [])
    refused(pub, "provenance (key curators): no provenance attestation signed by a trusted key")
    shown = gefreg("show", *pub.opts(), f"{name}@1.0.0")
    assert "  signature: INVALID: provenance (key curators): no provenance" in shown.stdout
    replace_tag(address, name, att_tag, good_att)
    assert pub.verify("--shallow").exit_code == 0

    # a key revoked in trust.yaml; then re-signed by a new key, which trust.yaml lets expire
    trust(pub, "revoke", "curators", "--reason", "laptop stolen")
    refused(pub, "key (key curators): key 'curators' was revoked on", "laptop stolen")
    rotated = new_key(tmp_path / "keys" / "rotated")
    trust(pub, "add", str(rotated.pub), "--id", "rotated", "--entry", "sig-*")
    signed = gefreg(
        "sign",
        *pub.opts(),
        f"{name}@1.0.0",
        f"{name}@1.0.1",
        "--sign-key",
        str(rotated.key),
        env=PASSWORD,
    )
    assert signed.exit_code == 0, signed.stderr
    assert f"{name}@1.0.0: signed by rotated" in signed.stdout
    assert (
        pub.verify("--shallow").exit_code == 0
    )  # the curators signature stays, the new one counts
    path = pub.catalog / "trust.yaml"
    path.write_text(
        path.read_text().replace("  - id: rotated\n", "  - id: rotated\n    expires: 2020-01-01\n")
    )
    refused(pub, "key 'rotated' expired on 2020-01-01")


def test_unsigned_releases_and_require_signatures(tmp_path: Path, registry: LocalRegistry) -> None:
    pub = entry(tmp_path, "sig-unsigned", registry.address)
    pub.build()
    assert pub.publish().exit_code == 0  # no trust.yaml: published unsigned, as before signing
    assert pub.verify("--shallow").exit_code == 0
    curator = new_key(tmp_path / "keys" / "c")
    trust(pub, "add", str(curator.pub), "--id", "curators")
    allowed = pub.verify("--shallow")
    assert allowed.exit_code == 0
    assert "sig-unsigned: unsigned (allowed):" in allowed.stdout
    require_signatures(pub, True)
    refused(pub, "sig-unsigned: unsigned: ", "is not signed and trust.yaml requires signatures")
    (tmp_path / "in").mkdir()
    ran = run_version(pub, "1.0.0", tmp_path / "in", str(tmp_path / "out"))
    assert ran.exit_code == 1, ran.stderr
    assert "sig-unsigned@1.0.0" in ran.stderr and "is not signed, and" in ran.stderr
    assert "requires signatures" in ran.stderr and not (tmp_path / "out").exists()

    pub.set_version("1.0.1")
    (pub.entry / "run.sh").write_text("echo changed from $0\n")
    pub.build()
    unsigned = pub.publish()
    assert unsigned.exit_code == 2 and "requires signatures" in unsigned.stderr
    assert [r["version"] for r in pub.releases()] == ["1.0.0"]
    stranger = new_key(tmp_path / "keys" / "stranger")  # a key trust.yaml does not list
    foreign = gefreg(
        "publish", *pub.opts(), pub.name, "--sign-key", str(stranger.key), env=PASSWORD
    )
    assert foreign.exit_code == 1 and f"signing key {stranger.key}" in foreign.stderr
    assert "is not in" in foreign.stderr and "trust.yaml" in foreign.stderr
    assert [r["version"] for r in pub.releases()] == ["1.0.0"]
    assert "1.0.1" not in remote_tags(registry.address, pub.name)  # refused before any upload

    signed = gefreg(
        "sign", *pub.opts(), f"{pub.name}@1.0.0", "--sign-key", str(curator.key), env=PASSWORD
    )
    assert signed.exit_code == 0, signed.stderr
    assert pub.verify("--shallow").exit_code == 0


def test_runs_check_the_signature_before_anything_runs(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    """run (and reproduce, through the same trust check) use a published release only when
    trust.yaml vouches for it; the run record says which key signed it."""
    pub, curator = signed_service(tmp_path, "sig-runs", registry.address)
    digest = publish_signed(pub, curator)["digest"]
    address, name = registry.address, pub.name
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text("data\n")
    record_file = tmp_path / "run" / "run.json"
    ran = run_version(
        pub, "1.0.0", inputs, str(tmp_path / "out"), "--record", str(record_file), "--json"
    )
    assert ran.exit_code == 0, ran.stderr
    image = json.loads(ran.stdout)["image"]
    sig_tag = attachments.tag_for(digest, "sig")
    good_sig = manifest_of(address, name, sig_tag)
    assert image["signature"] == {
        "state": "verified",
        "key_id": "curators",
        "signature_digest": "sha256:" + hashlib.sha256(good_sig).hexdigest(),
    }

    # `gefreg test NAME@VERSION` runs the entry's golden tests on the signed release (here
    # one that fails: the service writes no file); refused below once the signature is bad
    add_golden_test(pub)
    tested = gefreg("test", *pub.opts(), f"{name}@1.0.0")
    assert tested.exit_code == 1 and "1 of 1 tests failed: golden" in tested.stderr, (
        tested.stdout + tested.stderr
    )

    stranger = new_key(tmp_path / "keys" / "stranger").load()
    with RegistryClient(address) as client:
        layer = signatures.signature_layer(stranger, f"{address}/{name}", digest)
        attachments.write(client, name, digest, 100, "sig", [layer])
    tested = gefreg("test", *pub.opts(), f"{name}@1.0.0")
    assert tested.exit_code == 1, tested.stdout + tested.stderr
    assert "sig-runs@1.0.0: the signature check failed" in tested.stderr
    assert "not made by any key in trust.yaml" in tested.stderr
    assert "tests failed" not in tested.stderr and "golden" not in tested.stdout
    out = tmp_path / "refused"
    refused_run = run_version(pub, "1.0.0", inputs, str(out))
    assert refused_run.exit_code == 1, refused_run.stderr
    assert "sig-runs@1.0.0: the signature check failed" in refused_run.stderr
    assert "not made by any key in trust.yaml" in refused_run.stderr
    assert not out.exists() or not any(out.iterdir())
    again = gefreg(
        "reproduce", str(record_file), "--catalog", str(pub.catalog), "--registry", address
    )
    assert again.exit_code == 1 and "the signature check failed" in again.stderr
    rebuilt = gefreg("rebuild", *pub.opts(), f"{name}@1.0.0")  # refused before any build
    assert rebuilt.exit_code == 1, rebuilt.stdout + rebuilt.stderr
    assert "sig-runs@1.0.0: the signature check failed" in rebuilt.stderr
    assert "building" not in rebuilt.stderr and "bit-identical" not in rebuilt.stdout

    replace_tag(address, name, sig_tag, good_sig)
    trust(pub, "revoke", "curators", "--reason", "key leaked")
    revoked = run_version(pub, "1.0.0", inputs, str(tmp_path / "revoked"))
    assert revoked.exit_code == 1
    assert "the key check failed for key curators: key 'curators' was revoked" in revoked.stderr


def add_golden_test(pub: Service) -> None:
    """A golden test in the entry's record (outside the image: no new version needed)."""
    (pub.entry / "tests" / "in").mkdir(parents=True)
    (pub.entry / "tests" / "in" / "a.txt").write_text("data\n")
    record = pub.entry / "service.yaml"
    expect = {"result/out.txt": "sha256:" + "0" * 64}
    test = {"name": "golden", "inputs": {"data": "tests/in"}, "expect": expect}
    record.write_text(record.read_text() + f"tests: {json.dumps([test])}\n")
