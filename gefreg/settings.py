"""Where things are: the catalog, the registry, and gefreg's working state.

Each comes from a command-line option, else an environment variable, else a default:
``--catalog``/``GEFREG_CATALOG`` (./catalog), ``--registry``/``GEFREG_REGISTRY``
(127.0.0.1:5000, the embedded registry), ``GEFREG_STATE`` (.gefreg next to the catalog).

``registry`` is always ``HOST[:PORT]``, as it appears in image references. A registry given as
``http://HOST`` or ``https://HOST`` forces that scheme for API calls: pass ``registry_url`` (not
``registry``) to :class:`gefreg.registry.client.RegistryClient`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gefreg.errors import BadInput

DEFAULT_REGISTRY = "127.0.0.1:5000"


@dataclass(frozen=True)
class Settings:
    catalog: Path
    registry: str
    state_dir: Path
    registry_scheme: str | None = None  # "http"/"https" when the user wrote one

    @property
    def registry_url(self) -> str:
        """The registry for RegistryClient: with the scheme the user forced, if any."""
        scheme = self.registry_scheme
        return f"{scheme}://{self.registry}" if scheme else self.registry

    @property
    def image_namespace(self) -> str:
        """Where this catalog's local build tags live: ``gefreg/<folder>-<hash>``, one
        namespace per catalog folder, so building one catalog never re-points the tags of
        another that has an entry of the same name."""
        import hashlib
        import re

        folder = self.catalog.parent.name if self.catalog.name == "catalog" else self.catalog.name
        slug = re.sub(r"[^a-z0-9]+", "-", folder.lower()).strip("-")[:32].strip("-") or "catalog"
        digest = hashlib.sha256(str(self.catalog).encode()).hexdigest()[:8]
        return f"gefreg/{slug}-{digest}"

    @property
    def hash_cache(self) -> Path:
        return self.state_dir / "cache" / "hashes.json"

    @property
    def builds_dir(self) -> Path:
        return self.state_dir / "builds"


def load_settings(catalog: str | None = None, registry: str | None = None) -> Settings:
    root = Path(catalog or os.environ.get("GEFREG_CATALOG") or "catalog")
    if not root.is_dir():
        raise BadInput(
            f"catalog folder {root} does not exist",
            "run gefreg from your catalog repository, or pass --catalog DIR / set GEFREG_CATALOG",
        )
    root = root.resolve()
    reg = registry or os.environ.get("GEFREG_REGISTRY") or DEFAULT_REGISTRY
    scheme = next((s for s in ("http", "https") if reg.lower().startswith(s + "://")), None)
    reg = reg[len(scheme) + 3 :] if scheme else reg
    state = Path(os.environ.get("GEFREG_STATE") or root.parent / ".gefreg").resolve()
    return Settings(catalog=root, registry=reg.rstrip("/"), state_dir=state, registry_scheme=scheme)
