"""`gefreg publish`: put a built, scanned, tested image into the registry under rules that make
every published version immutable, then append it to the release ledger.

Order matters. Blobs and the manifest go up by digest first (nothing visible moves); then,
under the entry's lock, the version tag is checked and put, read back, and only then is the
ledger appended. A publish killed at any point leaves the ledger unchanged, and a rerun
completes it (a tag already pointing at exactly our digest is our own earlier attempt).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gefreg import __version__
from gefreg.catalog import git_source
from gefreg.catalog.entries import BASES_DIR
from gefreg.catalog.scaffold import placeholders
from gefreg.errors import BadInput, CheckFailed
from gefreg.hashing import sha256_bytes
from gefreg.image.build_plan import BuildPlan, prepare
from gefreg.image.build_record import BuildRecord, read_build
from gefreg.image.interface import ServiceInterface
from gefreg.image.reproducible import base_layers
from gefreg.model import Entry
from gefreg.registry.layer_cache import LayerCache
from gefreg.registry.media_types import OCI_EMPTY, OCI_MANIFEST
from gefreg.release import ledger, versions
from gefreg.release.image_push import PushedImage, push_image
from gefreg.release.keys import KEY_ENV as GEFREG_SIGNING_KEY
from gefreg.release.keys import SigningKey
from gefreg.settings import Settings

ARTIFACT_SBOM = "application/vnd.cyclonedx+json"
ARTIFACT_SCAN = "application/vnd.gefreg.scan.v1+json"


@dataclass(frozen=True)
class PublishEvidence:
    """The evidence publish requires: a passing scan (and tests), with its artifacts."""

    scan_summary: dict[str, Any]  # goes into the ledger line (with the tests' outcome)
    scan_report: bytes | None = None
    sbom: bytes | None = None


@dataclass(frozen=True)
class Published:
    entry: str
    version: str
    repository: str
    digest: str
    status: str  # "published" | "unchanged"
    floating: tuple[str, ...] = ()
    artifacts: tuple[tuple[str, str], ...] = ()
    signed_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "version": self.version,
            "repository": self.repository,
            "digest": self.digest,
            "status": self.status,
            "floating": list(self.floating),
            "artifacts": dict(self.artifacts),
            "signed_by": self.signed_by,
        }


def current_build(settings: Settings, entry: Entry, plan: BuildPlan) -> BuildRecord:
    """The build record, provided it was built from exactly the current record and files."""
    record = read_build(settings, entry.name)
    if record is None:
        raise CheckFailed(f"{entry.name} has not been built", f"gefreg build {entry.name}")
    if record.fingerprint != plan.fingerprint.digest:
        raise CheckFailed(
            f"the last build of {entry.name} is not of the current record and files "
            f"(fingerprint {record.fingerprint} != {plan.fingerprint.digest})",
            f"gefreg build {entry.name}",
        )
    if record.cache_key != sha256_bytes(plan.dockerfile.encode()):
        raise CheckFailed(
            f"the last build of {entry.name} was rendered differently (source date "
            f"{plan.source_date.created}, registry, or gefreg version changed since)",
            f"gefreg build {entry.name}",
        )
    return record


def _push(
    settings: Settings,
    engine: Any,
    client: Any,
    plan: BuildPlan,
    build: BuildRecord,
    on_bytes: Callable[[int, int | None], None] | None = None,
) -> PushedImage:
    """Upload the built image; its manifest must be the one the build computed."""
    repo = plan.entry.name
    pushed = push_image(
        engine,
        client,
        build.image_id,
        repo,
        LayerCache.of(settings.state_dir),
        on_bytes,
        base=base_layers(settings, plan),
        base_repository=f"{BASES_DIR}/{plan.base.name}",
    )
    if build.manifest_digest and pushed.digest != build.manifest_digest:
        raise CheckFailed(
            f"{repo}: the uploaded manifest is {pushed.digest}, the build computed "
            f"{build.manifest_digest}",
            f"rebuild: gefreg build --no-cache {repo}",
        )
    return pushed


def warn_uncommitted(settings: Settings, entry: Entry, on_step: Callable[[str], None]) -> None:
    """Uncommitted changes to the entry are published with a warning: `gefreg rebuild` takes
    the inputs from the recorded commit, which does not have them (it then says so)."""
    root = git_source.repository_root(settings.catalog)
    if root is None:
        return
    changed = [
        path
        for path in git_source.dirty(root, [git_source.relative(root, entry.directory)])
        if not path.endswith("/" + ledger.LEDGER_FILE)
    ]
    if changed:
        on_step(
            f"warning: publishing uncommitted changes ({', '.join(changed[:3])}); commit them "
            "first so that `gefreg rebuild` can reproduce this release"
        )


def check_no_placeholders(entry: Entry) -> None:
    """A placeholder from `gefreg new` must never become a permanent label."""
    spots = placeholders(entry.record_path)
    if spots:
        fields = ", ".join(f"{s.field} (line {s.line})" for s in spots)
        raise CheckFailed(
            f"{entry.name}: {entry.record_path} still holds placeholders from `gefreg new`: "
            f"{fields}; a published version keeps its labels for ever",
            f"set them and delete the '# placeholder' comments; `gefreg lint {entry.name}` "
            "lists them",
        )


def check_rules(entry: Entry, releases: list[ledger.Release], fingerprint: str) -> None:
    """The version rules that need no registry; each broken rule is exit 1."""
    version = entry.spec.version
    existing = ledger.find(releases, version)
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise CheckFailed(
                f"{entry.name} changed since {version} was published (fingerprint "
                f"{existing.fingerprint} -> {fingerprint}) but its version was not bumped",
                "bump the version in service.yaml",
            )
        return
    broken = versions.check_new_version(version, [r.version for r in releases])
    if broken is not None:
        raise CheckFailed(f"{entry.name} {broken.message}", broken.hint)


def publish(
    settings: Settings,
    entry: Entry,
    *,
    engine: Any,
    client: Any,
    gate: Callable[[BuildPlan, BuildRecord], PublishEvidence],
    floating: tuple[str, ...] = versions.FLOATING,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_step: Callable[[str], None] = lambda _: None,
    on_bytes: Callable[[int, int | None], None] | None = None,
    sign_key: SigningKey | None = None,
) -> Published:
    """Publish the entry's current build (see the module docstring). With ``sign_key`` the
    image is signed and attested (cosign layout) before the ledger line is appended.
    ``on_step`` hears each step, ``on_bytes`` the bytes uploaded so far."""
    from gefreg.release import signing, trust_policy

    check_no_placeholders(entry)
    policy = trust_policy.load(settings.catalog)
    if sign_key is None and policy.require_signatures:
        raise BadInput(
            f"{policy.path} requires signatures, and no signing key was given",
            f"publish with --sign-key FILE (or set {GEFREG_SIGNING_KEY})",
        )
    if sign_key is not None:  # a key nothing trusts fails now, before any upload
        signing.signing_key_id(policy, sign_key, entry.name, now().date())
    plan = prepare(entry, settings)
    build = current_build(settings, entry, plan)
    version = entry.spec.version
    repo = entry.name  # services are REGISTRY/NAME, bases REGISTRY/bases/NAME
    releases = ledger.read(entry.directory)
    check_rules(entry, releases, plan.fingerprint.digest)
    existing = ledger.find(releases, version)
    if existing is not None:
        return _republish(settings, client, existing, build, plan, engine)
    warn_uncommitted(settings, entry, on_step)
    on_step("checking the scan policy and tests")
    evidence = gate(plan, build)
    on_step(f"compressing and uploading {entry.name} {version} to {settings.registry}/{repo}")
    pushed = _push(settings, engine, client, plan, build, on_bytes)
    with ledger.locked(entry.directory):
        lines = ledger.read_lines(entry.directory)  # another publisher may have won meanwhile
        releases = lines.releases
        check_rules(entry, releases, plan.fingerprint.digest)
        winner = ledger.find(releases, version)
        if winner is not None:
            return _republish(settings, client, winner, build, plan, engine, pushed)
        on_step(f"tagging {repo}:{version}")
        current = client.head_manifest(repo, version)
        if current is not None and current != pushed.digest:
            raise CheckFailed(
                f"{settings.registry}/{repo}:{version} already exists with digest {current}, "
                f"not this build's {pushed.digest}; published versions never change",
                "bump the version; `gefreg verify` reports tags pushed outside gefreg",
            )
        client.put_manifest(repo, version, pushed.manifest, OCI_MANIFEST)
        after = client.head_manifest(repo, version)
        if after != pushed.digest:
            raise CheckFailed(
                f"another publisher moved {repo}:{version} to {after} while we "
                f"tagged {pushed.digest}; the ledger was not changed",
                "run `gefreg verify` and repair",
            )
        artifacts = _push_artifacts(client, repo, pushed.digest, len(pushed.manifest), evidence)
        # Floating tags move forward from the releases still in use: after a yanked 1.3.0,
        # 1.2.5 takes `1` and `latest` back.
        moved = versions.floating_tags(version, [r.version for r in lines.usable()], floating)
        release = ledger.Release(
            version=version,
            digest=pushed.digest,
            repository=f"{settings.registry}/{repo}",
            fingerprint=plan.fingerprint.digest,
            base_digest=plan.base.digest,
            image_id=pushed.image_id,
            published=now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            scan=evidence.scan_summary,
            sbom_digest=dict(artifacts).get("sbom"),
            scan_report_digest=dict(artifacts).get("scan"),
            gefreg_version=__version__,
            floating=list(moved),
            interface=ServiceInterface.from_spec(entry.spec).to_json(),
            locks=signing.lock_digests(plan.fingerprint.parts),
            catalog_commit=signing.catalog_commit(settings.catalog),
            source_date_epoch=plan.source_date.epoch,
        )
        if sign_key is not None:
            on_step(f"signing {repo}@{pushed.digest}")
            signed = signing.sign_release(
                client, policy, entry.name, release, sign_key, now().date()
            )
            release = dataclasses.replace(release, signed_by=signed.key_id)
        for tag in moved:
            client.put_manifest(repo, tag, pushed.manifest, OCI_MANIFEST)
        ledger.append(entry.directory, release)
    return Published(
        entry.name,
        version,
        f"{settings.registry}/{repo}",
        pushed.digest,
        "published",
        tuple(moved),
        tuple(artifacts),
        release.signed_by,
    )


def _republish(
    settings: Settings,
    client: Any,
    release: ledger.Release,
    build: BuildRecord,
    plan: BuildPlan,
    engine: Any,
    pushed: PushedImage | None = None,
) -> Published:
    """The version is in the ledger: a no-op for this very image (builds are reproducible, so
    a rebuild of the same record is this very image), refused for any other.

    ``pushed`` is this build as already uploaded (a publisher that lost the race), so the
    image is not exported and uploaded a second time while the entry is locked."""
    entry, repo = plan.entry, plan.entry.name
    if release.image_id != build.image_id:
        if pushed is None:
            pushed = _push(settings, engine, client, plan, build)
        if pushed.digest != release.digest:
            raise CheckFailed(
                f"{entry.name} {release.version} is published as {release.digest}; this build "
                f"is {pushed.digest}. Published versions never change. Same fingerprint, "
                "other bytes: see what differs with `gefreg diff "
                f"{entry.name}@{release.version} {build.image_id}`",
                "bump the version to publish new content; `gefreg rebuild "
                f"{entry.name}@{release.version}` checks the published image",
            )
    current = client.head_manifest(repo, release.version)
    if current != release.digest:
        where = "is gone from the registry" if current is None else f"points at {current}"
        raise CheckFailed(
            f"{repo}:{release.version} {where}, the ledger says {release.digest}",
            f"gefreg verify --repair {entry.name}",
        )
    return Published(entry.name, release.version, release.repository, release.digest, "unchanged")


def _push_artifacts(
    client: Any, repo: str, subject: str, subject_size: int, gate: PublishEvidence
) -> list[tuple[str, str]]:
    """SBOM and scan report as OCI artifacts whose `subject` is the image; registries without
    the referrers API find them through the `sha256-<hex>.<kind>` tag scheme."""
    from gefreg.image import oci

    out = []
    empty = b"{}"
    empty_digest = client_push_bytes(client, repo, empty)
    for kind, media, data in (
        ("sbom", ARTIFACT_SBOM, gate.sbom),
        ("scan", ARTIFACT_SCAN, gate.scan_report),
    ):
        if not data:
            continue
        blob = client_push_bytes(client, repo, data)
        manifest = oci.canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": media,
                "config": {"mediaType": OCI_EMPTY, "digest": empty_digest, "size": len(empty)},
                "layers": [{"mediaType": media, "digest": blob, "size": len(data)}],
                "subject": {
                    "mediaType": OCI_MANIFEST,
                    "digest": subject,
                    "size": subject_size,
                },
            }
        )
        tag = f"{subject.replace(':', '-')}.{kind}"
        digest = client.put_manifest(repo, tag, manifest, OCI_MANIFEST)
        out.append((kind, digest))
    return out


def client_push_bytes(client: Any, repo: str, data: bytes) -> str:
    digest = sha256_bytes(data)
    client.push_blob(repo, digest, data)
    return digest
