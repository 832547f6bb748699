"""Attestations: in-toto Statements v1 about an image, each in a signed DSSE envelope.

Two predicates are attached to every signed release, under the ``sha256-<hex>.att`` tag as
cosign attaches them (layer media type ``application/vnd.dsse.envelope.v1+json`` with a
``predicateType`` annotation, which is only a hint: the signed statement is the authority):

* SLSA provenance v1: builder = gefreg and its version; the materials
  (``resolvedDependencies``) are the record's fingerprint, the base image digest, the locks and
  the catalog commit;
* gefreg's scan verdict: policy hash, scanner and DB versions, counts, tests.

The statement and provenance shapes are checked with the in-toto attestation bindings, the
envelope is made and verified by securesystemslib (DSSE, PAE), the signature by
`cryptography` (ECDSA P-256, SHA-256). Envelope key IDs are the key's SSH-style SHA256
fingerprint, the ID cosign's DSSE verifier computes for a key.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gefreg.release import attachments
from gefreg.release.attachments import Layer
from gefreg.release.keys import PublicKey, SigningKey

DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
INTOTO_PAYLOAD = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SCAN_VERDICT_V1 = "urn:gefreg:predicate:scan-verdict:v1"
BUILD_TYPE = "urn:gefreg:build-type:service-image:v1"
BUILDER_ID = "urn:gefreg:builder"
PREDICATE_ANNOTATION = "predicateType"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
RECORD_MATERIAL = "record"
ECDSA_SCHEME = "ecdsa-sha2-nistp256"
SUFFIX = "att"


@dataclass(frozen=True)
class ReleaseFacts:
    """What the attestations state about one release (all of it from the ledger line)."""

    entry: str
    version: str
    repository: str  # REGISTRY/REPOSITORY
    digest: str
    fingerprint: str
    base_digest: str | None
    locks: Mapping[str, str]
    catalog_commit: str | None
    gefreg_version: str
    published: str
    scan: Mapping[str, Any]


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def statement(
    repository: str, digest: str, predicate_type: str, predicate: Mapping[str, Any]
) -> dict[str, Any]:
    """An in-toto Statement v1 whose subject is the image (name = repository, as cosign)."""
    doc = {
        "_type": STATEMENT_V1,
        "subject": [{"name": repository, "digest": {"sha256": _hex(digest)}}],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }
    validate_statement(doc)
    return doc


def validate_statement(doc: Any) -> None:
    """ValueError unless ``doc`` is a Statement v1 the in-toto bindings accept (and, for SLSA
    provenance, a predicate with the fields SLSA v1 requires)."""
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    if not isinstance(doc, dict):
        raise ValueError("the statement is not a JSON object")
    try:
        pb = json_format.ParseDict(doc, statement_pb2.Statement())
    except json_format.ParseError as exc:
        raise ValueError(f"not an in-toto Statement: {exc}") from None
    Statement.copy_from_pb(pb).validate()
    if doc.get("predicateType") == SLSA_PROVENANCE_V1:
        validate_provenance(doc.get("predicate"))


def validate_provenance(predicate: Any) -> None:
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2

    try:
        json_format.ParseDict(predicate, provenance_pb2.Provenance())
    except (json_format.ParseError, AttributeError, TypeError) as exc:
        raise ValueError(f"not SLSA provenance v1: {exc}") from None
    definition = predicate.get("buildDefinition") or {}
    builder = (predicate.get("runDetails") or {}).get("builder") or {}
    if not definition.get("buildType") or "externalParameters" not in definition:
        raise ValueError(
            "SLSA provenance v1 needs buildDefinition.buildType and externalParameters"
        )
    if not builder.get("id"):
        raise ValueError("SLSA provenance v1 needs runDetails.builder.id")


def provenance(facts: ReleaseFacts) -> dict[str, Any]:
    """The SLSA provenance v1 predicate of a release."""
    materials: list[dict[str, Any]] = [
        {
            "name": RECORD_MATERIAL,
            "uri": f"gefreg-catalog:{facts.entry}",
            "digest": {"sha256": _hex(facts.fingerprint)},
        }
    ]
    if facts.base_digest and not any(name.startswith("base:") for name in facts.locks):
        materials.append({"name": "base", "digest": {"sha256": _hex(facts.base_digest)}})
    for name, digest in sorted(facts.locks.items()):
        materials.append({"name": name, "digest": {"sha256": _hex(digest)}})
    if facts.catalog_commit:
        materials.append({"name": "catalog", "digest": {"gitCommit": facts.catalog_commit}})
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "entry": facts.entry,
                "version": facts.version,
                "repository": facts.repository,
            },
            "resolvedDependencies": materials,
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID, "version": {"gefreg": facts.gefreg_version}},
            "metadata": {
                "invocationId": f"{facts.entry}@{facts.version}",
                "finishedOn": facts.published,
            },
        },
    }


def scan_verdict(facts: ReleaseFacts) -> dict[str, Any]:
    """The scan verdict predicate: what the publish gate decided, and with which tools."""
    scan = dict(facts.scan)
    return {
        "entry": facts.entry,
        "version": facts.version,
        "passed": bool(scan.get("passed")),
        "summary": scan.get("summary"),
        "policySha256": scan.get("policy_sha256"),
        "vulnerabilitiesEvaluated": scan.get("vulnerabilities_evaluated"),
        "scanner": scan.get("trivy"),
        "counts": scan.get("counts"),
        "tests": scan.get("tests"),
    }


def record_fingerprint(predicate: Any) -> str | None:
    """The record fingerprint a provenance predicate names (sha256:<hex>), if any."""
    definition = predicate.get("buildDefinition") if isinstance(predicate, dict) else None
    deps = definition.get("resolvedDependencies") if isinstance(definition, dict) else None
    for dep in deps if isinstance(deps, list) else []:
        if isinstance(dep, dict) and dep.get("name") == RECORD_MATERIAL:
            value = (dep.get("digest") or {}).get("sha256")
            return f"sha256:{value}" if isinstance(value, str) else None
    return None


# ------------------------------------------------------------------------------------- DSSE


def _sslib_key(public: PublicKey, keyid: str) -> Any:
    """The key for securesystemslib under ``keyid`` (which may be "", as cosign writes it)."""
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    return SSlibKey(keyid, "ecdsa", ECDSA_SCHEME, {"public": public.pem})


def envelope(doc: Mapping[str, Any], key: SigningKey) -> bytes:
    """``doc`` in a DSSE envelope signed by ``key`` (the signature covers the PAE)."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

    payload = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    env = Envelope(payload=payload, payload_type=INTOTO_PAYLOAD, signatures={})
    env.sign(CryptoSigner(key.private, _sslib_key(key.public, key.public.fingerprint)))
    return json.dumps(env.to_dict(), separators=(",", ":")).encode()


@dataclass(frozen=True)
class Opened:
    statement: dict[str, Any]
    signers: tuple[str, ...]  # the names (of ``keys``) whose signature verified


def open_envelope(data: bytes, keys: Sequence[tuple[str, PublicKey]]) -> Opened:
    """Parse a DSSE envelope and verify it with each of ``keys`` (name, key); ValueError when
    it is malformed, not an in-toto statement, or no key verifies it."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import FormatError, VerificationError

    try:
        doc = json.loads(data)
        env = Envelope.from_dict(doc)
    except (ValueError, KeyError, TypeError, FormatError, binascii.Error) as exc:
        raise ValueError(f"not a DSSE envelope ({exc.__class__.__name__}: {exc})") from None
    if env.payload_type != INTOTO_PAYLOAD:
        raise ValueError(f"payloadType is {env.payload_type!r}, not {INTOTO_PAYLOAD!r}")
    signers = []
    for name, public in keys:
        for keyid in {kid for kid in env.signatures if kid in ("", public.fingerprint)}:
            try:
                env.verify([_sslib_key(public, keyid)], 1)
            except VerificationError:
                continue
            signers.append(name)
            break
    if not signers:
        raise ValueError("its DSSE signature does not verify with any key in trust.yaml")
    try:
        statement_doc = json.loads(env.payload)
    except ValueError:
        raise ValueError("the signed payload is not JSON") from None
    validate_statement(statement_doc)
    return Opened(statement_doc, tuple(signers))


def subject_problem(doc: Mapping[str, Any], repository: str, digest: str) -> str | None:
    """None when the statement's subject is this image; else what it names instead."""
    subjects = doc.get("subject") or []
    want = _hex(digest)
    for subject in subjects:
        if (subject.get("digest") or {}).get("sha256") == want:
            name = subject.get("name")
            if name and name != repository:
                return f"its subject is {name}@{digest}, not {repository}"
            return None
    named = ", ".join(
        f"{s.get('name')}@sha256:{(s.get('digest') or {}).get('sha256')}" for s in subjects
    )
    return f"its subject is {named or 'nothing'}, not {repository}@{digest}"


def layers(facts: ReleaseFacts, key: SigningKey) -> list[Layer]:
    out = []
    for predicate_type, predicate in (
        (SLSA_PROVENANCE_V1, provenance(facts)),
        (SCAN_VERDICT_V1, scan_verdict(facts)),
    ):
        doc = statement(facts.repository, facts.digest, predicate_type, predicate)
        # cosign gives every attached layer a signature annotation; for DSSE it is empty
        # (the signature is inside the envelope), and cosign's readers expect it present.
        annotations = {PREDICATE_ANNOTATION: predicate_type, SIGNATURE_ANNOTATION: ""}
        out.append(Layer(DSSE_ENVELOPE, envelope(doc, key), annotations))
    return out


def read(client: Any, repo: str, digest: str) -> attachments.Attached | None:
    return attachments.read(client, repo, digest, SUFFIX, DSSE_ENVELOPE)


def attest(client: Any, repo: str, facts: ReleaseFacts, subject_size: int, key: SigningKey) -> str:
    """Attach both attestations signed by ``key`` to the image's ``.att`` tag, keeping what is
    there; statements this key already signed with the same content are not added again."""
    existing = read(client, repo, facts.digest)
    kept = list(existing.layers) if existing else []
    signed = set()
    for layer in kept:
        try:
            opened = open_envelope(layer.data, [("self", key.public)])
        except ValueError:
            continue
        signed.add(json.dumps(opened.statement, sort_keys=True))
    fresh = [
        layer
        for layer in layers(facts, key)
        if json.dumps(json.loads(_payload(layer.data)), sort_keys=True) not in signed
    ]
    if existing and not fresh:
        return existing.digest
    return attachments.write(client, repo, facts.digest, subject_size, SUFFIX, [*kept, *fresh])


def _payload(envelope_bytes: bytes) -> bytes:
    import base64

    return base64.b64decode(json.loads(envelope_bytes)["payload"])
