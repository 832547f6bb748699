"""Which release a pinned image reference ``REGISTRY/NAME@sha256:…`` is, found in the catalog's
own ledger: the configured registry, an entry of the catalog, and a ledger line with exactly
that repository and digest. The reference is data (a TES executor's ``image``, the image a CWL
engine recorded in its provenance), so nothing in it is believed beyond what the ledger says.

One lookup for every caller: the TES server (which then asks the trust decision about the
version it found) and the RO-Crate export (which ties a recorded run back to its ledger line).
"""

from __future__ import annotations

from dataclasses import dataclass

from gefreg.catalog.entries import named_entry
from gefreg.errors import BadInput
from gefreg.model import is_digest
from gefreg.release import ledger
from gefreg.settings import Settings


class NotAPublishedImage(BadInput):
    """The reference names no release of this catalog; the message says which part failed."""


@dataclass(frozen=True)
class PinnedRelease:
    """The entry and ledger release a pinned reference names."""

    name: str
    release: ledger.Release

    @property
    def version(self) -> str:
        return self.release.version


def release_of_reference(settings: Settings, reference: str) -> PinnedRelease:
    """The release ``REGISTRY/NAME@sha256:…`` is; NotAPublishedImage naming what did not match."""
    repository, _, digest = reference.partition("@")
    registry, _, name = repository.rpartition("/")
    if not is_digest(digest):
        raise NotAPublishedImage("expected REGISTRY/NAME@sha256:<64 hex digits>")
    if registry != settings.registry:
        raise NotAPublishedImage(
            f"{registry or 'no registry'} is not the catalog's registry: it publishes releases "
            f"of {settings.registry} only"
        )
    if named_entry(settings.catalog, name) is None:
        raise NotAPublishedImage(f"{name!r} is not a catalog entry")
    for release in ledger.read(settings.catalog / name):
        if release.digest == digest and release.repository == repository:
            return PinnedRelease(name, release)
    raise NotAPublishedImage(f"no release of {name} has the digest {digest}")
