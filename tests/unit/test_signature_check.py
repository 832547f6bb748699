"""The signature and provenance check, against an in-memory registry (the same attacks run
against the real registry in tests/integration/test_signing.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import pytest

from gefreg.errors import CheckFailed
from gefreg.hashing import sha256_bytes
from gefreg.registry.client import Manifest
from gefreg.release import attachments, keys, signing, trust_policy
from gefreg.release.ledger import Release
from gefreg.release.signature_check import (
    INVALID,
    UNSIGNED,
    VERIFIED,
    SignatureStatus,
    Subject,
    release_status,
    require,
)

TODAY = date(2026, 11, 30)
REGISTRY = "127.0.0.1:5999"


@dataclass
class FakeRegistry:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def push_blob(self, repo: str, digest: str, data: bytes) -> None:
        assert sha256_bytes(data) == digest
        self.blobs[digest] = data

    def get_blob(self, repo: str, digest: str) -> bytes:
        return self.blobs[digest]

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        digest = sha256_bytes(body)
        self.manifests[(repo, reference)] = body
        self.manifests[(repo, digest)] = body
        return digest

    def get_manifest(self, repo: str, reference: str) -> Manifest | None:
        body = self.manifests.get((repo, reference))
        return (
            Manifest(sha256_bytes(body), "application/vnd.oci.image.manifest.v1+json", body)
            if body
            else None
        )


def make_key(folder: Path) -> keys.SigningKey:
    keys.generate(folder, None)
    return keys.load_signing_key(folder / keys.PRIVATE_FILE)


@dataclass
class World:
    registry: FakeRegistry
    catalog: Path
    curator: keys.SigningKey
    stranger: keys.SigningKey

    def policy(self) -> trust_policy.TrustPolicy:
        return trust_policy.load(self.catalog)

    def image(self, name: str, text: str) -> Release:
        body = json.dumps({"schemaVersion": 2, "config": {}, "layers": [], "x": text}).encode()
        digest = self.registry.put_manifest(name, "1.0.0", body, "")
        return Release(
            version="1.0.0",
            digest=digest,
            repository=f"{REGISTRY}/{name}",
            fingerprint="sha256:" + sha256_bytes(text.encode())[7:],
            base_digest=None,
            image_id="sha256:" + "0" * 64,
            published="2026-11-30T00:00:00Z",
            scan={"passed": True},
        )

    def sign(self, name: str, release: Release, key: keys.SigningKey | None = None) -> None:
        signing.sign_release(
            self.registry, self.policy(), name, release, key or self.curator, TODAY
        )

    def status(self, name: str, release: Release, today: date = TODAY) -> SignatureStatus:
        subject = Subject(
            name,
            release.version,
            release.repository,
            release.digest,
            release.fingerprint,
            release.signed_by,
        )
        return release_status(self.registry, self.policy(), subject, today)


@pytest.fixture
def world(tmp_path: Path) -> World:
    curator, stranger = make_key(tmp_path / "curator"), make_key(tmp_path / "stranger")
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "trust.yaml").write_text("require-signatures: true\nkeys: []\n")
    trust_policy.add_key(catalog, curator.public, "curators", ("svc-*",), date(2027, 1, 1))
    return World(FakeRegistry(), catalog, curator, stranger)


def test_signed_release_verifies(world: World) -> None:
    release = world.image("svc-a", "a")
    world.sign("svc-a", release)
    status = world.status("svc-a", release)
    assert status.state == VERIFIED and status.key_id == "curators"
    assert status.signature_digest and status.attestations == (
        "https://slsa.dev/provenance/v1",
        "urn:gefreg:predicate:scan-verdict:v1",
    )
    world.sign("svc-a", release)  # signing again with the same key adds nothing
    tag = attachments.tag_for(release.digest, "sig")
    layers = json.loads(world.registry.manifests[("svc-a", tag)])["layers"]
    assert len(layers) == 1


def failure_of(world: World, name: str, release: Release) -> str:
    status = world.status(name, release)
    assert status.state == INVALID
    with pytest.raises(CheckFailed) as caught:
        subject = Subject(
            name, release.version, release.repository, release.digest, release.fingerprint
        )
        require(status, world.policy(), subject)
    return caught.value.message


def test_signing_with_an_untrusted_key_is_refused_and_its_signature_too(world: World) -> None:
    release = world.image("svc-a", "a")
    with pytest.raises(CheckFailed, match="is not in"):
        world.sign("svc-a", release, world.stranger)
    from gefreg.release import signatures

    signatures.sign(world.registry, "svc-a", release.repository, release.digest, 10, world.stranger)
    message = failure_of(world, "svc-a", release)
    assert (
        "the signature check failed" in message and "not made by any key in trust.yaml" in message
    )


def test_a_signature_copied_from_another_image_is_refused(world: World) -> None:
    a, b = world.image("svc-a", "a"), world.image("svc-a", "b")
    world.sign("svc-a", a)
    for suffix in ("sig", "att"):
        copied = world.registry.manifests[("svc-a", attachments.tag_for(a.digest, suffix))]
        world.registry.manifests[("svc-a", attachments.tag_for(b.digest, suffix))] = copied
    message = failure_of(world, "svc-a", b)
    assert "payload-identity check failed for key curators" in message
    assert f"is for {a.repository}@{a.digest}, not" in message


def test_a_signature_for_another_repository_is_refused(world: World) -> None:
    release = world.image("svc-a", "a")
    from gefreg.release import signatures

    # a payload naming svc-other (same digest), stored next to svc-a
    signatures.sign(
        world.registry, "svc-a", f"{REGISTRY}/svc-other", release.digest, 10, world.curator
    )
    message = failure_of(world, "svc-a", release)
    assert "names the repository 127.0.0.1:5999/svc-other" in message


def test_revoked_expired_and_foreign_keys(world: World) -> None:
    release = world.image("svc-a", "a")
    world.sign("svc-a", release)
    assert "expired on 2027-01-01" in str(world.status("svc-a", release, date(2027, 1, 2)))
    trust_policy.revoke(world.catalog, "curators", "laptop stolen", TODAY)
    message = failure_of(world, "svc-a", release)
    revoked = "key 'curators' was revoked on 2026-11-30: laptop stolen"
    assert f"the key check failed for key curators: {revoked}" in message


def test_a_key_trusted_for_other_entries_is_refused(world: World, tmp_path: Path) -> None:
    """trust.yaml's entry globs: a key listed for other-* signs svc-a, validly, for svc-a."""
    from gefreg.release import signatures

    outsider = make_key(tmp_path / "outsider")
    trust_policy.add_key(world.catalog, outsider.public, "outsiders", ("other-*",), None)
    release = world.image("svc-a", "a")
    with pytest.raises(CheckFailed, match="outsiders"):
        world.sign("svc-a", release, outsider)  # `gefreg sign` refuses it up front
    signatures.sign(world.registry, "svc-a", release.repository, release.digest, 10, outsider)
    message = failure_of(world, "svc-a", release)
    assert "the key check failed for key outsiders" in message
    assert "key 'outsiders' is not trusted for svc-a (it may sign: other-*)" in message
    world.sign("svc-a", release)  # the entry's own key signs too: that signature counts
    assert world.status("svc-a", release).key_id == "curators"


def test_unsigned_releases_and_require_signatures(world: World) -> None:
    release = world.image("svc-a", "a")
    status = world.status("svc-a", release)
    assert status.state == UNSIGNED
    subject = Subject("svc-a", "1.0.0", release.repository, release.digest, release.fingerprint)
    with pytest.raises(CheckFailed, match=r"is not signed, and .*trust\.yaml requires signatures"):
        require(status, world.policy(), subject)
    (world.catalog / "trust.yaml").write_text(
        (world.catalog / "trust.yaml")
        .read_text()
        .replace("require-signatures: true", "require-signatures: false")
    )
    assert require(status, world.policy(), subject) is status
    said_signed = replace(release, signed_by="curators")
    assert "holds no signature (removed from the registry?)" in str(
        world.status("svc-a", said_signed)
    )


def test_attestation_problems(world: World) -> None:
    release = world.image("svc-a", "a")
    moved = replace(release, fingerprint="sha256:" + "9" * 64)
    world.sign("svc-a", moved)  # provenance naming another fingerprint than the ledger's
    message = failure_of(world, "svc-a", release)
    assert "provenance-fingerprint check failed for key curators" in message

    other = world.image("svc-a", "other")
    world.sign("svc-a", other)
    tag = attachments.tag_for(other.digest, "att")
    world.registry.manifests[("svc-a", attachments.tag_for(release.digest, "att"))] = (
        world.registry.manifests[("svc-a", tag)]
    )
    message = failure_of(world, "svc-a", release)
    assert "provenance-subject check failed" in message and other.digest in message


def test_check_release_is_the_one_call_consumers_make(world: World, tmp_path: Path) -> None:
    from gefreg.release.ledger import TrustedRelease
    from gefreg.release.signature_check import check_release
    from gefreg.settings import Settings

    release = world.image("svc-a", "a")
    trusted = TrustedRelease(
        "svc-a", "1.0.0", REGISTRY, release.repository, release.digest, None, release.fingerprint
    )
    settings = Settings(world.catalog, REGISTRY, tmp_path / "state")
    with pytest.raises(CheckFailed, match="is not signed"):
        check_release(settings, trusted, client=world.registry, today=TODAY)
    world.sign("svc-a", release)
    status = check_release(settings, trusted, client=world.registry, today=TODAY)
    assert (status.state, status.key_id) == (VERIFIED, "curators")

    bare = tmp_path / "bare"  # no trust.yaml: nothing to check, and no request is made
    bare.mkdir()
    nothing = Settings(bare, "127.0.0.1:1", tmp_path / "state")
    assert check_release(nothing, trusted).state == UNSIGNED


def test_an_unreadable_signature_tag_is_invalid_not_unsigned(world: World) -> None:
    release = world.image("svc-a", "a")
    world.sign("svc-a", release)
    tag = attachments.tag_for(release.digest, "sig")
    body = json.loads(world.registry.manifests[("svc-a", tag)])
    body["layers"][0]["digest"] = "sha256:" + "7" * 64  # a blob the registry does not have
    world.registry.manifests[("svc-a", tag)] = json.dumps(body).encode()
    world.registry.get_blob = _missing  # type: ignore[method-assign]
    status = world.status("svc-a", release)
    assert status.state == INVALID and "cannot be read" in str(status.failures[0])


def _missing(repo: str, digest: str) -> bytes:
    from gefreg.registry.errors import RegistryRejected

    raise RegistryRejected(f"blob {digest} unknown", 404, ())
