"""Which image a run uses. One small function, :func:`resolve_image`, answers; nothing else
decides.

Targets and what they resolve to today:

* ``NAME`` → the newest published release in the ledger (the newest that is not a
  pre-release, else the newest pre-release) when the entry has one, else the entry's current
  build record (``.gefreg/builds/NAME/build.json``);
* ``NAME@VERSION`` → that release in the ledger, else the current build record if its version
  matches, else "not built/published";
* ``NAME@sha256:DIGEST`` → an image the engine has with that ID or repository digest; trusted
  only when one of the entry's own build records names that image ID;
* anything not in the catalog (an unknown name, ``--image REF``) → refused unless the caller
  allows untrusted images; then the engine's local image, marked ``trusted: false``.

The release ledger (publishing: NAME@VERSION → registry manifest digest) plugs in through the
:class:`Ledger` protocol: when a ledger is given and knows the release, its manifest digest and
registry win, and :func:`verify_image` pulls ``repository@digest`` from the trusted registry if
the engine does not have it yet. A release may carry the service interface stored when it was
published (:meth:`gefreg.image.interface.ServiceInterface.to_json`); it travels on the
resolved image so that a published version runs with its own ports and command after the
record moved on.

Whatever resolved the image, :func:`verify_image` checks the engine's local image against it
(image ID, and the repository digest when one was resolved) and refuses a mismatch, and the
runner starts the container by image ID, so nothing can move a tag in between.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gefreg.catalog.entries import named_entry
from gefreg.engine import ImageInfo
from gefreg.engine.protocols import ImageStore
from gefreg.errors import BadInput, CheckFailed
from gefreg.image.build_record import BuildRecord, all_builds, read_build
from gefreg.model import is_digest
from gefreg.release.ledger import TrustedRelease
from gefreg.settings import Settings


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

    def to_json(self) -> dict[str, Any]:
        return {
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
    def from_json(cls, data: dict[str, Any]) -> ResolvedImage:
        return cls(
            name=str(data["name"]),
            version=data.get("version"),
            image_id=str(data["image_id"]),
            manifest_digest=data.get("manifest_digest"),
            registry=data.get("registry"),
            ref=str(data.get("ref") or data["image_id"]),
            trusted=bool(data.get("trusted")),
            source=str(data.get("source") or "record"),
            repository=data.get("repository"),
        )


class Ledger(Protocol):
    """Where published releases are looked up (implemented by publishing)."""

    def lookup(self, name: str, version: str | None) -> TrustedRelease | None:
        """The release of ``name`` at ``version`` (the newest when None), or None."""


@dataclass(frozen=True)
class Target:
    name: str
    version: str | None = None
    digest: str | None = None


def parse_target(text: str) -> Target:
    """``NAME``, ``NAME@VERSION``, ``NAME@sha256:DIGEST`` (a digest alone is ``@sha256:...``)."""
    name, sep, pin = text.partition("@")
    if sep and not pin:
        raise BadInput(f"{text!r}: nothing after '@'", "use NAME@VERSION or NAME@sha256:DIGEST")
    if pin.startswith("sha256:"):
        if not is_digest(pin):
            raise BadInput(f"{text!r}: expected sha256:<64 hex digits> after '@'")
        return Target(name, None, pin)
    return Target(name, pin or None, None)


def resolve_image(
    settings: Settings,
    target: str,
    *,
    engine: ImageStore,
    ledger: Ledger | None = None,
    allow_untrusted: bool = False,
) -> ResolvedImage:
    """Resolve a command-line target to one pinned image (see the module docstring)."""
    t = parse_target(target)
    if not t.name or named_entry(settings.catalog, t.name) is None:
        if not allow_untrusted:
            what = f"{t.name!r} is not a catalog entry" if t.name else "a bare digest"
            raise BadInput(
                f"{what}: refusing to run an image that is not in the catalog",
                f"catalog: {settings.catalog}; pass --allow-untrusted to run it anyway",
            )
        return resolve_untrusted(engine, target if t.name else str(t.digest))
    if t.digest:
        return _by_digest(settings, engine, t.name, t.digest, target, allow_untrusted)
    if ledger is not None:
        release = ledger.lookup(t.name, t.version)
        if release is not None:
            info = engine.image(f"{release.repository}@{release.manifest_digest}")
            return ResolvedImage(
                name=release.name,
                version=release.version,
                image_id=info.id if info else "",
                manifest_digest=release.manifest_digest,
                registry=release.registry,
                ref=target,
                trusted=True,
                source="ledger",
                repository=release.repository,
                interface=release.interface,
            )
    record = read_build(settings, t.name)
    if record is None:
        raise BadInput(
            f"{t.name} is not built or published",
            f"build it first: gefreg build {t.name}",
        )
    if t.version is not None and record.version != t.version:
        raise BadInput(
            f"{t.name}@{t.version} is not built or published "
            f"(the build of {t.name} is version {record.version})",
            f"run {t.name}@{record.version}, or build that version",
        )
    return ResolvedImage.of_build(record, target)


def _by_digest(
    settings: Settings,
    engine: ImageStore,
    name: str,
    digest: str,
    target: str,
    allow_untrusted: bool,
) -> ResolvedImage:
    info = find_image(engine, digest)
    if info is None:
        raise BadInput(
            f"the engine has no image {digest}",
            f"build it (gefreg build {name}) or give a digest from `docker images --digests`",
        )
    for record in all_builds(settings, name):
        if record.image_id == info.id:
            return ResolvedImage.of_build(
                record,
                target,
                digest if digest != info.id else None,
                repository=_repository_of(info, digest),
            )
    if not allow_untrusted:
        raise BadInput(
            f"{digest[:19]} is not an image gefreg built for {name}",
            "pass --allow-untrusted to run it anyway",
        )
    return _untrusted(info, target, digest)


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


def _repository_of(info: ImageInfo, digest: str) -> str | None:
    for ref in info.repo_digests:
        repo, _, d = ref.partition("@")
        if d == digest:
            return repo
    return None


def _untrusted(info: ImageInfo, ref: str, digest: str | None) -> ResolvedImage:
    name = ref.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0] or info.id[7:19]
    return ResolvedImage(
        name=name,
        version=None,
        image_id=info.id,
        manifest_digest=digest if digest and digest != info.id else None,
        registry=None,
        ref=ref,
        trusted=False,
        source="engine",
        repository=_repository_of(info, digest) if digest else None,
    )


def resolve_untrusted(engine: ImageStore, ref: str) -> ResolvedImage:
    """An image the engine has locally, by any reference; marked untrusted."""
    digest = ref.partition("@")[2] or None
    info = find_image(engine, ref) if is_digest(ref) else engine.image(ref)
    if info is None:
        raise BadInput(
            f"the engine has no image {ref!r}",
            "images are never pulled for untrusted runs; load or build it first",
        )
    return _untrusted(info, ref, digest)


def verify_image(engine: ImageStore, image: ResolvedImage) -> ResolvedImage:
    """``image`` as the engine has it, refusing anything that does not match what resolved.

    A ledger release the engine does not have yet is pulled by digest from its registry; the
    result always carries the image ID the container must be created from.
    """
    info = engine.image(image.image_id) if image.image_id else None
    if info is None and image.manifest_digest and image.repository:
        info = engine.pull(f"{image.repository}@{image.manifest_digest}")
        if image.image_id and info.id != image.image_id:
            raise CheckFailed(
                f"pulled {image.repository}@{image.manifest_digest} but its image ID "
                f"{info.id} is not the resolved {image.image_id}"
            )
        image_id = info.id
    else:
        image_id = image.image_id
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
