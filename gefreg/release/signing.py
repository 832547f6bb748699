"""Signing a release: its cosign signature and its attestations, made with a key that
trust.yaml lists for the entry (`gefreg publish --sign-key` and `gefreg sign`).

Everything signed comes from the ledger line of the release (the attestations state what the
ledger records), so re-signing later — key rotation — states the same facts again.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from gefreg.errors import CheckFailed
from gefreg.release import attestations, signatures
from gefreg.release.keys import SigningKey
from gefreg.release.ledger import Release
from gefreg.release.trust_policy import TrustPolicy


@dataclass(frozen=True)
class SignedRelease:
    entry: str
    version: str
    reference: str  # REGISTRY/REPOSITORY@DIGEST
    key_id: str
    signature_digest: str
    attestation_digest: str

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "version": self.version,
            "reference": self.reference,
            "key_id": self.key_id,
            "signature_digest": self.signature_digest,
            "attestation_digest": self.attestation_digest,
        }


def signing_key_id(policy: TrustPolicy, key: SigningKey, entry: str, today: date) -> str:
    """The trust.yaml id of ``key``, when it may sign ``entry`` today; else CheckFailed:
    signing with a key nothing trusts would publish a release nothing may run."""
    listed = next(
        (k for k in policy.keys if k.public_key.fingerprint == key.public.fingerprint), None
    )
    if listed is None:
        raise CheckFailed(
            f"the signing key {key.path} ({key.public.fingerprint}) is not in {policy.path}",
            "add its public key: gefreg trust add gefreg.pub --id ID (and commit trust.yaml)",
        )
    refusal = listed.refusal(entry, today)
    if refusal is not None:
        raise CheckFailed(
            f"cannot sign {entry}: {refusal}", "sign with a key trust.yaml lists for it"
        )
    return listed.id


def facts(entry: str, release: Release) -> attestations.ReleaseFacts:
    return attestations.ReleaseFacts(
        entry=entry,
        version=release.version,
        repository=release.repository,
        digest=release.digest,
        fingerprint=release.fingerprint,
        base_digest=release.base_digest,
        locks=dict(release.locks or {}),
        catalog_commit=release.catalog_commit,
        gefreg_version=release.gefreg_version,
        published=release.published,
        scan=dict(release.scan),
    )


def sign_release(
    client: Any, policy: TrustPolicy, entry: str, release: Release, key: SigningKey, today: date
) -> SignedRelease:
    """Attach a signature and both attestations by ``key`` to the release's image."""
    key_id = signing_key_id(policy, key, entry, today)
    repo = release.repository.split("/", 1)[1]
    manifest = client.get_manifest(repo, release.digest)
    if manifest is None:
        raise CheckFailed(
            f"{release.repository}@{release.digest} is not in the registry: nothing to sign",
            f"gefreg verify {entry}",
        )
    size = len(manifest.body)
    sig = signatures.sign(client, repo, release.repository, release.digest, size, key)
    att = attestations.attest(client, repo, facts(entry, release), size, key)
    return SignedRelease(
        entry, release.version, f"{release.repository}@{release.digest}", key_id, sig, att
    )


def catalog_commit(catalog: Path) -> str | None:
    """The catalog's git HEAD (None outside git, or when the repository around it does not
    track the catalog, as for a working copy under an ignored folder): the provenance's
    catalog material, and the commit `gefreg rebuild` takes the inputs from."""
    try:
        done = subprocess.run(
            ["git", "-C", str(catalog), "rev-parse", "--verify", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        tracked = subprocess.run(
            ["git", "-C", str(catalog), "ls-files", "--error-unmatch", "--", "."],
            capture_output=True,
            check=False,
        )
    except OSError:
        return None
    head = done.stdout.strip()
    if tracked.returncode != 0:
        return None
    return head if done.returncode == 0 and len(head) in (40, 64) else None


def lock_digests(parts: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The locks among a fingerprint's parts: the pinned base, pip.lock and apt.lock."""
    return {
        name: value
        for name, value in parts
        if (name.startswith("base:") and value.startswith("sha256:"))
        or name in ("pip.lock", "apt.lock")
    }
