"""The one trust decision: which image may run, re-established from the catalog every time.

Whoever asks — ``gefreg run``, ``reproduce``, ``test``, a CWL export, the TES server, a
rebuild — describes the image it wants as an :class:`ImageClaim` (a command-line target, a run
record's ``image``, a task's executor: none of it is trusted) and calls :func:`trust_image`.
The answer is a :class:`ResolvedImage` pinned by the catalog, never by the claim:

1. a **release** in the ledger of the configured registry: the entry's ledger lists the
   version in ``REGISTRY/NAME`` of the configured registry, and every registry, repository,
   manifest digest and image ID the claim names is the ledger's;
2. else a **build** gefreg made of the entry: its current build record, or an earlier one kept
   in its build cache, with the claimed image ID (a claim without an image ID: the current
   build, of the claimed version);
3. then whatever a release must pass before anything uses it: its signature and attestations
   as the catalog's ``trust.yaml`` demands (:func:`gefreg.release.signature_check.
   check_release`). **Further checks of a release belong here, in** :func:`_release_checks`.

Anything else is refused with :class:`UntrustedImage` (exit 1) naming the check that failed,
before anything is pulled or run — unless the caller allows untrusted images: then the engine's
local image with the claimed ID (never pulled) is used and marked ``trusted: false``.

:func:`verify_image` is the second half, right before use: it pulls a release by digest from
the configured registry when the engine lacks it, checks the image ID against the ledger's,
and the container is then created from that ID, so no tag can move in between.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gefreg.catalog.entries import close_names, named_entry, names_hint
from gefreg.engine import ImageInfo
from gefreg.engine.protocols import ImageStore
from gefreg.errors import BadInput, CheckFailed
from gefreg.image.build_record import BuildRecord, all_builds, read_build
from gefreg.model import is_digest
from gefreg.release import versions
from gefreg.release.ledger import TrustedRelease
from gefreg.settings import Settings


class UntrustedImage(CheckFailed):
    """The catalog does not vouch for the image a request names (exit 1)."""


class YankedRelease(CheckFailed):
    """The release was yanked: it must not be used unless the caller allows it (exit 1)."""


@dataclass(frozen=True)
class ResolvedImage:
    """An image pinned by ID (and by registry manifest digest once published)."""

    name: str
    version: str | None
    image_id: str
    manifest_digest: str | None
    registry: str | None
    ref: str
    trusted: bool
    source: str  # "build-record", "ledger" or "engine"
    repository: str | None = None
    # the ledger's stored interface of this release (ServiceInterface.to_json), when it has one;
    # not part of the image's identity, and not written into run records (they carry their own)
    interface: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    # where that interface was read: "FILE:LINE" of the ledger line
    interface_source: str | None = field(default=None, compare=False, repr=False)
    # the image ID the ledger says was published: what a pulled release must have
    released_id: str | None = field(default=None, compare=False, repr=False)
    # a yanked release run anyway (--allow-yanked): {"reason": ..., "yanked": date}
    yanked: Mapping[str, str] | None = None
    # a release's signing status as checked: state, key_id, signature_digest (else None)
    signature: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "image_id": self.image_id,
            "manifest_digest": self.manifest_digest,
            "registry": self.registry,
            "repository": self.repository,
            "ref": self.ref,
            "trusted": self.trusted,
            "source": self.source,
        }
        if self.yanked is not None:
            data["yanked"] = dict(self.yanked)
        if self.signature is not None:
            data["signature"] = dict(self.signature)
        return data

    @classmethod
    def of_build(
        cls, record: BuildRecord, ref: str, manifest_digest: str | None = None, **kw: Any
    ) -> ResolvedImage:
        """The image of a build record: trusted, since gefreg built it from the catalog."""
        return cls(
            name=record.entry,
            version=record.version,
            image_id=record.image_id,
            manifest_digest=manifest_digest,
            registry=None,
            ref=ref,
            trusted=True,
            source="build-record",
            **kw,
        )

    @classmethod
    def of_release(
        cls,
        release: TrustedRelease,
        ref: str,
        image_id: str = "",
        signature: Mapping[str, Any] | None = None,  # the signing status checked
    ) -> ResolvedImage:
        """The image of a ledger release (its ID once the engine has it)."""
        return cls(
            name=release.name,
            version=release.version,
            image_id=image_id,
            manifest_digest=release.manifest_digest,
            registry=release.registry,
            ref=ref,
            trusted=True,
            source="ledger",
            repository=release.repository,
            interface=release.interface,
            interface_source=release.where,
            released_id=release.image_id,
            yanked=None
            if release.yanked is None
            else {"reason": release.yanked.reason, "yanked": release.yanked.yanked},
            signature=signature,
        )


class Ledger(Protocol):
    """Where published releases are looked up (:class:`gefreg.release.ledger.CatalogLedger`)."""

    def lookup(self, name: str, version: str | None) -> TrustedRelease | None:
        """The release of ``name`` at ``version`` (the newest when None), or None."""


@dataclass(frozen=True)
class ImageClaim:
    """What a request says about the image it wants. Only ``name`` is required; every other
    field that is given must agree with what the catalog says."""

    name: str
    version: str | None = None
    image_id: str | None = None
    manifest_digest: str | None = None
    registry: str | None = None
    repository: str | None = None
    ref: str = ""  # as asked, for the record and messages

    @property
    def names_a_registry(self) -> bool:
        return bool(self.manifest_digest or self.registry or self.repository)


def trust_image(
    settings: Settings,
    engine: ImageStore,
    claim: ImageClaim,
    *,
    ledger: Ledger | None,
    allow_untrusted: bool = False,
    allow_yanked: bool = False,
) -> ResolvedImage:
    """The image ``claim`` may run as, decided by the catalog (see the module docstring).
    A yanked release is refused unless ``allow_yanked`` (the result then says it was)."""
    ref = claim.ref or claim.name
    try:
        if named_entry(settings.catalog, claim.name) is None:
            typo = not allow_untrusted and close_names(settings.catalog, claim.name)
            if typo:  # a typo is no reason to run an untrusted image: no such suggestion
                raise BadInput(
                    f"{claim.name!r} is not a catalog entry (in {settings.catalog})",
                    names_hint(settings.catalog, claim.name),
                )
            raise UntrustedImage(
                f"{claim.name!r} is not a catalog entry (in {settings.catalog})",
                "name the catalog it comes from: --catalog DIR or GEFREG_CATALOG",
            )
        release = ledger.lookup(claim.name, claim.version) if ledger is not None else None
        if release is not None and _claims_release(claim, release):
            if release.yanked is not None and not allow_yanked:
                raise _yanked(settings, release)
            signature = _release_checks(settings, release)
            info = engine.image(f"{release.repository}@{release.manifest_digest}")
            return ResolvedImage.of_release(release, ref, info.id if info else "", signature)
        if claim.names_a_registry:
            raise UntrustedImage(_not_released(settings, claim))
        return ResolvedImage.of_build(_build_of(settings, claim), ref)
    except UntrustedImage as exc:
        if not allow_untrusted:
            allow = "pass --allow-untrusted to run it anyway (recorded as trusted: false)"
            exc.hint = f"{exc.hint}; {allow}" if exc.hint else allow
            raise
        return _local_untrusted(engine, claim, ref)


def _yanked(settings: Settings, release: TrustedRelease) -> YankedRelease:
    from gefreg.release.ledger import read_lines

    assert release.yanked is not None
    usable = [r.version for r in read_lines(settings.catalog / release.name).usable()]
    instead = (
        f"run {release.name} (its newest release not yanked: {usable[-1]}), or " if usable else ""
    )
    return YankedRelease(
        f"{release.name} {release.version} was yanked on {release.yanked.yanked[:10]}: "
        f"{release.yanked.reason}",
        f"{instead}pass --allow-yanked to run it anyway (the run record says so)",
    )


def _claims_release(claim: ImageClaim, release: TrustedRelease) -> bool:
    """Whether ``claim`` is ``release``: True when everything it names is the ledger's; False
    when it names nothing of a registry and another image (perhaps a local build of that
    version); UntrustedImage when it names a registry, repository or digest the ledger does
    not hold for that version."""
    checks = (
        ("registry", claim.registry, release.registry),
        ("repository", claim.repository, release.repository),
        ("manifest digest", claim.manifest_digest, release.manifest_digest),
    )
    for what, claimed, known in checks:
        if claimed is not None and claimed != known:
            raise UntrustedImage(
                f"{claim.name} {release.version}: the {what} {claimed} is not the one the "
                f"catalog published ({known}, in {release.where or 'the ledger'})",
                "only releases in the ledger of the configured registry run; the request was "
                "edited, or names another registry",
            )
    if claim.image_id is not None and release.image_id and claim.image_id != release.image_id:
        if claim.names_a_registry:
            raise UntrustedImage(
                f"{claim.name} {release.version}: the image ID {claim.image_id} is not the "
                f"released image {release.image_id} ({release.where or 'the ledger'})"
            )
        return False
    return True


def _not_released(settings: Settings, claim: ImageClaim) -> str:
    where = claim.repository or claim.registry or claim.manifest_digest
    return (
        f"{claim.name} {claim.version or ''}: {where} is not a release in the ledger of the "
        f"configured registry {settings.registry}"
    ).replace("  ", " ")


def _build_of(settings: Settings, claim: ImageClaim) -> BuildRecord:
    """The build record of ``claim``: by image ID among every build gefreg kept of the entry,
    else (no ID claimed) the current build, which must be of the claimed version."""
    if claim.image_id is not None:
        for kept in all_builds(settings, claim.name):
            if kept.image_id == claim.image_id and claim.version in (None, kept.version):
                return kept
        raise UntrustedImage(
            f"{claim.image_id[:19]} is neither a release of {claim.name}"
            f"{' ' + claim.version if claim.version else ''} in the ledger of "
            f"{settings.registry} nor an image gefreg built for {claim.name}"
        )
    published = _published(settings, claim.name)
    if claim.version is not None and versions.is_floating(claim.version):
        raise versions.not_a_version(claim.name, claim.version, published)
    record = read_build(settings, claim.name)
    if record is None:
        raise BadInput(
            f"{claim.name}{'@' + claim.version if claim.version else ''} is not built or "
            f"published{published}",
            f"build it first: gefreg build {claim.name}",
        )
    if claim.version is not None and record.version != claim.version:
        raise BadInput(
            f"{claim.name}@{claim.version} is not built or published{published} "
            f"(the build of {claim.name} is version {record.version})",
            f"run {claim.name}@{record.version}, or build that version",
        )
    return record


def _published(settings: Settings, name: str) -> str:
    """'; published: 1.0.0, 1.1.0 (yanked)' for messages about a version that is not one."""
    from gefreg.release.ledger import read_lines

    lines = read_lines(settings.catalog / name)
    return f"; {lines.published_text()}" if lines.releases else ""


def _release_checks(settings: Settings, release: TrustedRelease) -> dict[str, Any]:
    """What a release must pass beyond being in the ledger: trust.yaml's signature check
    (UntrustedImage naming the check and key). Returns the status for the run record."""
    from gefreg.release.signature_check import check_release

    try:
        return check_release(settings, release).record()
    except CheckFailed as exc:
        raise UntrustedImage(exc.message, exc.hint) from None


def _local_untrusted(engine: ImageStore, claim: ImageClaim, ref: str) -> ResolvedImage:
    """The engine's own image for an untrusted claim: by ID, never pulled."""
    wanted = claim.image_id or claim.manifest_digest or ref
    info = find_image(engine, wanted) if is_digest(wanted) else engine.image(wanted)
    if info is None:
        raise BadInput(
            f"the engine has no image {wanted!r}",
            "images are never pulled for untrusted runs; load or build it first",
        )
    return untrusted(info, ref, claim.manifest_digest, name=claim.name)


def find_image(engine: ImageStore, digest: str) -> ImageInfo | None:
    """The local image whose ID, or one of whose repository digests, is ``digest``."""
    info = engine.image(digest) if is_digest(digest) else None
    if info is not None and info.id == digest:
        return info
    for ref in engine.repo_digest_refs(digest):
        found = engine.image(ref)
        if found is not None:
            return found
    return None


def repository_of(info: ImageInfo, digest: str) -> str | None:
    for ref in info.repo_digests:
        repo, _, d = ref.partition("@")
        if d == digest:
            return repo
    return None


def untrusted(
    info: ImageInfo, ref: str, digest: str | None, name: str | None = None
) -> ResolvedImage:
    """A local image the catalog does not vouch for: ``trusted: false``."""
    name = name or ref.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0] or info.id[7:19]
    return ResolvedImage(
        name=name,
        version=None,
        image_id=info.id,
        manifest_digest=digest if digest and digest != info.id else None,
        registry=None,
        ref=ref,
        trusted=False,
        source="engine",
        repository=repository_of(info, digest) if digest else None,
    )


def verify_image(engine: ImageStore, image: ResolvedImage) -> ResolvedImage:
    """``image`` as the engine has it, refusing anything that does not match what resolved.

    A ledger release the engine does not have yet is pulled by digest from its registry; the
    result always carries the image ID the container must be created from.
    """
    info = engine.image(image.image_id) if image.image_id else None
    if info is None and image.trusted and image.manifest_digest and image.repository:
        info = engine.pull(f"{image.repository}@{image.manifest_digest}")
        if image.image_id and info.id != image.image_id:
            raise CheckFailed(
                f"pulled {image.repository}@{image.manifest_digest} but its image ID "
                f"{info.id} is not the resolved {image.image_id}"
            )
        image_id = info.id
    else:
        image_id = image.image_id
    if info is not None and image.released_id and info.id != image.released_id:
        raise UntrustedImage(
            f"{image.repository}@{image.manifest_digest} is the image {info.id}, but the ledger "
            f"says {image.name} {image.version} was published as {image.released_id}",
            "the registry or the ledger was changed; check them with gefreg verify",
        )
    if info is None:
        raise BadInput(
            f"the engine does not have the image of {image.name} ({image.image_id[:19]})",
            f"build it again (gefreg build {image.name}) or load it",
        )
    if info.id != image_id:
        raise CheckFailed(
            f"the engine's image {info.id} is not the resolved image {image_id}",
            "refusing to run something other than what was resolved",
        )
    if image.manifest_digest and image.repository:
        pinned = f"{image.repository}@{image.manifest_digest}"
        if pinned not in info.repo_digests:
            raise CheckFailed(
                f"the engine's image {info.id[:19]} does not carry the digest {pinned}",
                "refusing to run an image whose registry digest does not match",
            )
    return dataclasses.replace(image, image_id=info.id)
