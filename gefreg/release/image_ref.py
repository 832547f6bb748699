"""Image references as users write them: NAME@VERSION of the catalog, or anything the engine
knows (a reference, a reference by digest, an image ID)."""

from __future__ import annotations

from gefreg.engine import Engine
from gefreg.errors import BadInput
from gefreg.model import NAME_RE
from gefreg.release.ledger import CatalogLedger
from gefreg.settings import Settings
from gefreg.validators import SEMVER_RE


def local_image(settings: Settings, engine: Engine, text: str) -> str:
    """A reference the engine has for ``text``: a published NAME@VERSION becomes the ledger's
    image by digest (pulled when the engine lacks it); anything else is used as given."""
    name, sep, version = text.partition("@")
    if not (sep and NAME_RE.match(name) and SEMVER_RE.match(version)):
        return text
    release = CatalogLedger(settings).lookup(name, version)
    if release is None:
        raise BadInput(
            f"{name} {version} is not published in {settings.catalog}",
            "name a version from the entry's releases.jsonl, or an image reference or ID",
        )
    ref = f"{release.repository}@{release.manifest_digest}"
    if engine.image(ref) is None:
        engine.pull(ref)
    return ref
