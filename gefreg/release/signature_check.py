"""Judge what the registry holds next to a release — signature and attestations — against
the catalog's trust.yaml and ledger. This is the check every consumer runs before an image
is used (through the runner's one trust function), and what `verify` and `show` report.

Nothing fetched from the registry is believed: a signature counts only when a key listed in
trust.yaml verifies it, the key is neither revoked nor expired and may sign this entry, and
the signed payload names this repository and this manifest digest. The provenance counts
only when such a key signed it, its subject is this image and its record fingerprint is the
ledger's. Each refusal names the check that failed and the key involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from gefreg.errors import CheckFailed
from gefreg.release import attestations, signatures, trust_policy
from gefreg.release.attachments import tag_for
from gefreg.release.ledger import Release, TrustedRelease
from gefreg.release.trust_policy import TrustPolicy
from gefreg.settings import Settings

VERIFIED = "verified"
UNSIGNED = "unsigned"
INVALID = "invalid"


@dataclass(frozen=True)
class Failure:
    """One failed check: ``check`` is signature, key, payload, payload-identity, provenance,
    provenance-subject, provenance-fingerprint or scan-verdict."""

    check: str
    key_id: str | None
    message: str

    def __str__(self) -> str:
        key = f" (key {self.key_id})" if self.key_id else ""
        return f"{self.check}{key}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "key_id": self.key_id, "message": self.message}


@dataclass(frozen=True)
class SignatureStatus:
    """The signing state of one release, for run records, `verify` and `show`."""

    state: str  # verified | unsigned | invalid
    key_id: str | None = None
    signature_digest: str | None = None  # manifest digest of the sha256-<hex>.sig tag
    attestation_digest: str | None = None  # manifest digest of the sha256-<hex>.att tag
    attestations: tuple[str, ...] = ()  # predicate types verified
    failures: tuple[Failure, ...] = ()  # why it is invalid
    notes: tuple[str, ...] = field(default_factory=tuple)  # problems that did not decide

    @property
    def verified(self) -> bool:
        return self.state == VERIFIED

    def describe(self) -> str:
        if self.state == VERIFIED:
            return f"signed by {self.key_id} ({', '.join(self.attestations) or 'no attestations'})"
        if self.state == UNSIGNED:
            return "unsigned"
        return "INVALID: " + "; ".join(str(f) for f in self.failures)

    def record(self) -> dict[str, Any]:
        """What a run record keeps of it."""
        return {
            "state": self.state,
            "key_id": self.key_id,
            "signature_digest": self.signature_digest,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "key_id": self.key_id,
            "signature_digest": self.signature_digest,
            "attestation_digest": self.attestation_digest,
            "attestations": list(self.attestations),
            "failures": [f.to_json() for f in self.failures],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Subject:
    """The release being checked, as the ledger (never the registry) describes it."""

    entry: str
    version: str
    repository: str  # REGISTRY/REPOSITORY
    digest: str
    fingerprint: str | None
    signed_by: str | None = None

    @property
    def repo(self) -> str:
        return self.repository.split("/", 1)[1]


def release_status(
    client: Any, policy: TrustPolicy, subject: Subject, today: date
) -> SignatureStatus:
    found = signatures.read(client, subject.repo, subject.digest)
    if found is not None and not found.layers and found.problems:
        return SignatureStatus(
            INVALID,
            signature_digest=found.digest,
            failures=tuple(
                Failure("signature", None, f"{subject.repo}:{tag_for(subject.digest, 'sig')}: {p}")
                for p in found.problems
            ),
        )
    if found is None or not found.layers:
        if isinstance(subject.signed_by, str) and subject.signed_by:
            return SignatureStatus(
                INVALID,
                signature_digest=found.digest if found else None,
                failures=(
                    Failure(
                        "signature",
                        subject.signed_by,
                        f"the ledger says {subject.signed_by} signed this release, but "
                        f"{subject.repo}:{tag_for(subject.digest, signatures.SUFFIX)} holds no "
                        "signature (removed from the registry?)",
                    ),
                ),
            )
        return SignatureStatus(UNSIGNED, signature_digest=found.digest if found else None)
    key_id, failures = _accepted_signature(found.layers, policy, subject, today)
    if key_id is None:
        return SignatureStatus(INVALID, signature_digest=found.digest, failures=tuple(failures))
    notes = tuple(str(f) for f in failures) + tuple(found.problems)
    return _with_attestations(client, policy, subject, today, key_id, found.digest, notes)


def _accepted_signature(
    layers: Any, policy: TrustPolicy, subject: Subject, today: date
) -> tuple[str | None, list[Failure]]:
    """The id of a trusted key whose valid signature names this image, or the failures."""
    failures: list[Failure] = []
    tag = tag_for(subject.digest, signatures.SUFFIX)
    for layer in layers:
        key = next((k for k in policy.keys if signatures.signed_by(layer, k.public_key)), None)
        if key is None:
            failures.append(
                Failure(
                    "signature",
                    None,
                    f"the signature in {subject.repo}:{tag} was not made by any key in "
                    f"{policy.path.name} (re-signed with an unknown key?)",
                )
            )
            continue
        refusal = key.refusal(subject.entry, today)
        if refusal is not None:
            failures.append(Failure("key", key.id, refusal))
            continue
        try:
            payload = signatures.parse_payload(layer.data)
        except ValueError as exc:
            failures.append(Failure("payload", key.id, f"the signed payload is unusable: {exc}"))
            continue
        problem = _identity_problem(payload, subject)
        if problem is not None:
            failures.append(Failure("payload-identity", key.id, problem))
            continue
        return key.id, failures
    return None, failures


def _identity_problem(payload: signatures.Payload, subject: Subject) -> str | None:
    if payload.digest != subject.digest:
        return (
            f"the signature is for {payload.reference}@{payload.digest}, not "
            f"{subject.repository}@{subject.digest} (a signature copied from another image)"
        )
    if payload.reference != subject.repository:
        return (
            f"the signature names the repository {payload.reference}, not "
            f"{subject.repository} (a signature copied from another repository)"
        )
    return None


def _with_attestations(
    client: Any,
    policy: TrustPolicy,
    subject: Subject,
    today: date,
    key_id: str,
    signature_digest: str,
    notes: tuple[str, ...],
) -> SignatureStatus:
    found = attestations.read(client, subject.repo, subject.digest)
    keys = [(k.id, k.public_key) for k in policy.usable_for(subject.entry, today)]
    verified: list[str] = []
    failures: list[Failure] = []
    for index, layer in enumerate(found.layers if found else ()):
        try:
            opened = attestations.open_envelope(layer.data, keys)
        except ValueError as exc:
            failures.append(Failure("attestation", None, f"attestation {index}: {exc}"))
            continue
        failure = _statement_failure(opened, subject)
        if failure is not None:
            failures.append(failure)
        elif opened.statement["predicateType"] not in verified:
            verified.append(str(opened.statement["predicateType"]))
    if attestations.SLSA_PROVENANCE_V1 not in verified:
        missing = Failure(
            "provenance",
            key_id,
            f"no provenance attestation signed by a trusted key in "
            f"{subject.repo}:{tag_for(subject.digest, attestations.SUFFIX)}",
        )
        decisive = [f for f in failures if f.check.startswith("provenance")] or failures
        return SignatureStatus(
            INVALID,
            key_id,
            signature_digest,
            found.digest if found else None,
            tuple(verified),
            tuple(decisive or [missing]),
            notes,
        )
    notes += tuple(str(f) for f in failures) + (found.problems if found else ())
    return SignatureStatus(
        VERIFIED,
        key_id,
        signature_digest,
        found.digest if found else None,
        tuple(verified),
        (),
        notes,
    )


def _statement_failure(opened: attestations.Opened, subject: Subject) -> Failure | None:
    statement = opened.statement
    predicate_type = str(statement.get("predicateType"))
    is_provenance = predicate_type == attestations.SLSA_PROVENANCE_V1
    kind = "provenance" if is_provenance else "attestation"
    problem = attestations.subject_problem(statement, subject.repository, subject.digest)
    if problem is not None:
        return Failure(
            f"{kind}-subject", opened.signers[0], f"the {predicate_type} statement: {problem}"
        )
    if is_provenance:
        named = attestations.record_fingerprint(statement.get("predicate"))
        if named != subject.fingerprint:
            return Failure(
                "provenance-fingerprint",
                opened.signers[0],
                f"the provenance names the record fingerprint {named}, the ledger says "
                f"{subject.fingerprint}",
            )
    if (
        predicate_type == attestations.SCAN_VERDICT_V1
        and statement["predicate"].get("passed") is not True
    ):
        return Failure("scan-verdict", opened.signers[0], "the signed scan verdict is not a pass")
    return None


def require(status: SignatureStatus, policy: TrustPolicy, subject: Subject) -> SignatureStatus:
    """``status`` when the release may be used; CheckFailed (exit 1) naming the failed check
    and key id otherwise. Unsigned releases pass unless trust.yaml requires signatures."""
    what = f"{subject.entry}@{subject.version}"
    if status.state == VERIFIED:
        return status
    if status.state == UNSIGNED:
        if not policy.require_signatures:
            return status
        raise CheckFailed(
            f"{what} ({subject.repository}@{subject.digest}) is not signed, and "
            f"{policy.path} requires signatures",
            f"sign it with a trusted key: gefreg sign {what} --sign-key FILE",
        )
    first = status.failures[0] if status.failures else Failure("signature", None, "invalid")
    others = "".join(f"\n  also: {f}" for f in status.failures[1:4])
    raise CheckFailed(
        f"{what}: the {first.check} check failed"
        + (f" for key {first.key_id}" if first.key_id else "")
        + f": {first.message}{others}",
        "refusing to use an image the catalog's trust.yaml does not vouch for; "
        "`gefreg verify` lists every signature problem",
    )


def check_release(
    settings: Settings,
    release: TrustedRelease,
    *,
    client: Any = None,
    today: date | None = None,
) -> SignatureStatus:
    """The one call a consumer makes before using a published release: its status when
    trust.yaml lets it be used, CheckFailed (exit 1, naming the check and key) otherwise.
    Without a trust.yaml, and no ledger line saying the release was signed, there is nothing
    to check and no request is made."""
    policy = trust_policy.load(settings.catalog)
    subject = Subject(
        release.name,
        release.version,
        release.repository,
        release.manifest_digest,
        release.fingerprint,
        release.signed_by,
    )
    if not policy.exists and not release.signed_by:
        return SignatureStatus(UNSIGNED)
    day = today or date.today()
    if client is not None:
        return require(release_status(client, policy, subject, day), policy, subject)
    from gefreg.registry.client import RegistryClient

    with RegistryClient(settings.registry_url) as own:
        return require(release_status(own, policy, subject, day), policy, subject)


def release_signature(
    settings: Settings, client: Any, name: str, release: Release, today: date | None = None
) -> SignatureStatus:
    """The signing status of one ledger release, without deciding anything (for `show`)."""
    policy = trust_policy.load(settings.catalog)
    subject = Subject(
        name,
        release.version,
        release.repository,
        release.digest,
        release.fingerprint,
        release.signed_by,
    )
    return release_status(client, policy, subject, today or date.today())
