"""Which image a command-line target names. The catalog decides whether it may run: every target
becomes an :class:`~gefreg.release.trust.ImageClaim` for :func:`gefreg.release.trust.
trust_image`, the one trust decision (ledger release of the configured registry, or a build
gefreg made; then the release checks of trust.yaml).

Targets and what they resolve to:

* ``NAME`` → the newest published release in the ledger (the newest that is not a
  pre-release, else the newest pre-release) when the entry has one, else the entry's current
  build record (``.gefreg/builds/NAME/build.json``);
* ``NAME@VERSION`` → that release in the ledger, else the current build record if its version
  matches, else "not built/published";
* ``NAME@sha256:DIGEST`` → an image the engine has with that ID or repository digest; trusted
  only when one of the entry's own build records names that image ID;
* anything not in the catalog (an unknown name, ``--image REF``) → refused unless the caller
  allows untrusted images; then the engine's local image, marked ``trusted: false``.

A release may carry the service interface stored when it was published
(:meth:`gefreg.image.interface.ServiceInterface.to_json`); it travels on the resolved image so
that a published version runs with its own ports and command after the record moved on.
:func:`~gefreg.release.trust.verify_image` then pulls a release by digest when needed and checks
the engine's image against what resolved; the runner starts the container by image ID, so
nothing can move a tag in between.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gefreg.catalog.entries import close_names, named_entry, names_hint
from gefreg.engine.protocols import ImageStore
from gefreg.errors import BadInput
from gefreg.model import is_digest
from gefreg.release.trust import (
    ImageClaim,
    Ledger,
    ResolvedImage,
    UntrustedImage,
    find_image,
    repository_of,
    trust_image,
    untrusted,
)
from gefreg.release.versions import understood
from gefreg.settings import Settings


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
    return Target(name, understood(pin) if pin else None, None)  # `@v1.2.3` is 1.2.3


def resolve_image(
    settings: Settings,
    target: str,
    *,
    engine: ImageStore,
    ledger: Ledger | None = None,
    allow_untrusted: bool = False,
    allow_yanked: bool = False,
) -> ResolvedImage:
    """Resolve a command-line target to one pinned image (see the module docstring)."""
    t = parse_target(target)
    if not t.name or named_entry(settings.catalog, t.name) is None:
        if not allow_untrusted:
            what = f"{t.name!r} is not a catalog entry" if t.name else "a bare digest"
            if t.name and close_names(settings.catalog, t.name):  # a typo: no --allow-untrusted
                raise BadInput(
                    f"{what} (in {settings.catalog})", names_hint(settings.catalog, t.name)
                )
            raise BadInput(
                f"{what}: refusing to run an image that is not in the catalog",
                f"catalog: {settings.catalog}; pass --allow-untrusted to run it anyway",
            )
        return resolve_untrusted(engine, target if t.name else str(t.digest))
    if t.digest:
        return _by_digest(settings, engine, t.name, t.digest, target, allow_untrusted)
    claim = ImageClaim(t.name, t.version, ref=target)
    return trust_image(
        settings,
        engine,
        claim,
        ledger=ledger,
        allow_untrusted=allow_untrusted,
        allow_yanked=allow_yanked,
    )


def _by_digest(
    settings: Settings,
    engine: ImageStore,
    name: str,
    digest: str,
    target: str,
    allow_untrusted: bool,
) -> ResolvedImage:
    """``NAME@sha256:…``: the engine's image with that ID or repository digest, trusted when a
    build record of NAME names its image ID."""
    info = find_image(engine, digest)
    if info is None:
        raise BadInput(
            f"the engine has no image {digest}",
            f"build it (gefreg build {name}) or give a digest from `docker images --digests`",
        )
    claim = ImageClaim(name, image_id=info.id, ref=target)
    try:
        image = trust_image(settings, engine, claim, ledger=None)
    except UntrustedImage as exc:
        if not allow_untrusted:
            raise UntrustedImage(
                f"{digest[:19]} is not an image gefreg built for {name}",
                "pass --allow-untrusted to run it anyway",
            ) from exc
        return untrusted(info, target, digest)
    if digest != info.id:
        image = dataclasses.replace(
            image, manifest_digest=digest, repository=repository_of(info, digest)
        )
    return image


def resolve_untrusted(engine: ImageStore, ref: str) -> ResolvedImage:
    """An image the engine has locally, by any reference; marked untrusted."""
    digest = ref.partition("@")[2] or None
    info = find_image(engine, ref) if is_digest(ref) else engine.image(ref)
    if info is None:
        raise BadInput(
            f"the engine has no image {ref!r}",
            "images are never pulled for untrusted runs; load or build it first",
        )
    return untrusted(info, ref, digest)
