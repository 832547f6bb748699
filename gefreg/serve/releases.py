"""Which image a TES executor may name: a release in the ledger of the configured registry, and
nothing else.

``NAME@VERSION`` or ``REGISTRY/NAME@sha256:DIGEST``; the second must be the configured
registry and a digest the ledger of NAME lists. Either way the decision is made by the one
path ``gefreg run NAME@VERSION`` takes (:func:`gefreg.run.image_choice.resolve_image` with the
catalog's ledger, which asks :func:`gefreg.release.trust.trust_image`, the one trust decision:
it also checks the signature as the catalog's trust.yaml demands), and only an answer that came
from the ledger counts: a local build is not a release. The server asks again right before each
run, so a release yanked, a key revoked or a ledger changed after submission is noticed.
"""

from __future__ import annotations

import re

from gefreg.catalog.entries import named_entry
from gefreg.engine import Engine
from gefreg.errors import BadInput, CheckFailed
from gefreg.image.interface import ServiceInterface
from gefreg.release import ledger
from gefreg.release.pinned import NotAPublishedImage, release_of_reference
from gefreg.release.trust import ResolvedImage, UntrustedImage, YankedRelease
from gefreg.run.image_choice import resolve_image
from gefreg.run.plan import choose_interface
from gefreg.settings import Settings

VERSION_RE = re.compile(r"^[0-9A-Za-z.+-]{1,128}\Z")
HINT = "name a catalog release: NAME@VERSION or REGISTRY/NAME@sha256:DIGEST (see the web catalog)"


class NotARelease(BadInput):
    """The image is not a release of this catalog (HTTP 400 with the reason)."""


def _version_of_digest(settings: Settings, text: str) -> tuple[str, str]:
    """``REGISTRY/NAME@sha256:…`` → (NAME, VERSION), by the catalog's one lookup."""
    try:
        found = release_of_reference(settings, text)
    except NotAPublishedImage as exc:
        raise NotARelease(f"image {text!r}: {exc.message}", HINT) from None
    return found.name, found.version


def parse_release(settings: Settings, text: str) -> tuple[str, str]:
    """(NAME, VERSION) that ``text`` names, or NotARelease saying why it is none."""
    if "@" not in text:
        raise NotARelease(
            f"image {text!r}: not a pinned catalog release (tags and bare names never run here)",
            HINT,
        )
    if "/" in text:
        return _version_of_digest(settings, text)
    name, _, version = text.partition("@")
    if version.startswith("sha256:"):
        raise NotARelease(
            f"image {text!r}: a digest needs its registry: REGISTRY/NAME@sha256:…", HINT
        )
    if named_entry(settings.catalog, name) is None:
        raise NotARelease(f"image {text!r}: {name!r} is not a catalog entry", HINT)
    if not VERSION_RE.match(version):
        raise NotARelease(f"image {text!r}: {version!r} is not a version", HINT)
    return name, version


def _api_hint(exc: BadInput | CheckFailed) -> str | None:
    """The trust decision's hint, unless it names command-line options an API caller has not."""
    if isinstance(exc, YankedRelease):
        return "use a release that is not yanked (the web catalog lists them)"
    if isinstance(exc, UntrustedImage) or (exc.hint and "--allow-" in exc.hint):
        return HINT
    return exc.hint


def trusted_release(
    settings: Settings, engine: Engine, text: str
) -> tuple[ResolvedImage, ServiceInterface]:
    """The release ``text`` names and the interface it runs with; NotARelease otherwise."""
    name, version = parse_release(settings, text)
    published = [r.version for r in ledger.read_lines(settings.catalog / name).releases]
    if version not in published:
        raise NotARelease(
            f"image {text!r}: {name} {version} is not a published release "
            f"(published: {', '.join(published) or 'none'})",
            HINT,
        )
    try:
        image = resolve_image(
            settings, f"{name}@{version}", engine=engine, ledger=ledger.CatalogLedger(settings)
        )
    except (BadInput, CheckFailed) as exc:
        raise NotARelease(f"image {text!r}: {exc.message}", _api_hint(exc)) from None
    if image.source != "ledger" or not image.trusted:
        raise NotARelease(
            f"image {text!r}: {name} {version} is not published (a local build never runs here)",
            HINT,
        )
    try:
        image, interface = choose_interface(settings, engine, image)
    except (BadInput, CheckFailed) as exc:
        raise NotARelease(f"image {text!r}: {exc.message}", exc.hint) from None
    return image, interface
