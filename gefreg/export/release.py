"""What an export is made from: one trusted release, resolved exactly as ``gefreg run`` resolves
``NAME@VERSION`` (:func:`gefreg.run.image_choice.resolve_image` with the catalog's ledger, which
asks :func:`gefreg.release.trust.trust_image`, the one trust decision: a release of the
configured registry, not yanked, signed as ``trust.yaml`` demands; and
:func:`gefreg.run.plan.choose_interface` for its ports and command, checked like a record's),
never by a second path.

Only a published release can be exported: a CWL runner on another machine pulls the image by
its manifest digest from the catalog's registry, so an image that exists only in this engine
has nothing to pull. The image's config is read from that registry (labels for the schema.org
annotations, its ENTRYPOINT) without pulling the image. The ledger line the release came from
is named with its number and sha256, so a run elsewhere can be tied back to it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gefreg.engine import Engine
from gefreg.errors import BadInput, CheckFailed
from gefreg.image.interface import ServiceInterface
from gefreg.registry.client import RegistryClient
from gefreg.release.ledger import LEDGER_FILE, CatalogLedger
from gefreg.run.image_choice import parse_target, resolve_image
from gefreg.run.plan import choose_interface
from gefreg.settings import Settings

TEMPLATE_LABEL = "org.gefreg.template"
SHELL = "/bin/sh"


@dataclass(frozen=True)
class LedgerLine:
    """Where a release is written down: ``path`` relative to the catalog, 1-based ``number``,
    and the sha256 of the line's bytes (without its line break)."""

    path: str
    number: int
    sha256: str


@dataclass(frozen=True)
class ExportRelease:
    """Everything an export needs to know about one published version."""

    name: str
    version: str
    registry: str
    repository: str  # REGISTRY/NAME
    digest: str  # the manifest digest
    interface: ServiceInterface
    labels: Mapping[str, str] = field(default_factory=dict)
    image_entrypoint: tuple[str, ...] = ()
    ledger: LedgerLine | None = None
    fingerprint: str | None = None
    signed_by: str | None = None  # the trusted key whose signature was verified

    @property
    def pinned(self) -> str:
        """``REGISTRY/NAME@sha256:…``: what every node pulls."""
        return f"{self.repository}@{self.digest}"


def resolve_release(
    settings: Settings,
    engine: Engine,
    target: str,
    client: RegistryClient | None = None,
) -> ExportRelease:
    """The release ``target`` (``NAME@VERSION`` or ``NAME``) names, through the run path."""
    if "@" in target and parse_target(target).digest:
        raise BadInput(
            f"{target}: export a published version, NAME@VERSION",
            "a digest names an image, not a release: exports need the release's ledger line",
        )
    image = resolve_image(settings, target, engine=engine, ledger=CatalogLedger(settings))
    repository, digest = image.repository, image.manifest_digest
    if image.source != "ledger" or not digest or not repository:
        raise BadInput(
            f"{image.name} {image.version or ''} is built but not published".replace("  ", " "),
            "a CWL runner pulls the image by digest from the registry: "
            f"gefreg publish {image.name}",
        )
    repo = repository.split("/", 1)[1] if "/" in repository else repository
    own = client is None
    client = client or RegistryClient(settings.registry_url)
    try:
        image, face = choose_interface(settings, engine, image)
        config = image_config(client, repo, digest)
        labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
        if not has_shell(client, repo, digest, labels):
            raise CheckFailed(
                f"{image.name}@{image.version} has no {SHELL}: the wrapper that creates its "
                "output folders, and Toil (which runs every command through sh), need one",
                "ship busybox at /bin/busybox (the static template then links /bin/sh) and "
                "publish a new version",
            )
    finally:
        if own:
            client.close()
    settings_line = ledger_line(settings.catalog, image.name, str(image.version))
    return ExportRelease(
        name=image.name,
        version=str(image.version),
        registry=str(image.registry),
        repository=repository,
        digest=digest,
        interface=face,
        labels=labels,
        image_entrypoint=tuple(str(a) for a in config.get("Entrypoint") or ()),
        ledger=settings_line,
        fingerprint=_ledger_fingerprint(settings, image.name, str(image.version))
        or labels.get("org.gefreg.fingerprint"),
        signed_by=_verified_key(image.signature),
    )


def _ledger_fingerprint(settings: Settings, name: str, version: str) -> str | None:
    found = CatalogLedger(settings).lookup(name, version)
    return found.fingerprint if found is not None else None


def _verified_key(signature: Mapping[str, Any] | None) -> str | None:
    """The key whose signature the trust decision verified, if any."""
    if signature and signature.get("state") == "verified" and signature.get("key_id"):
        return str(signature["key_id"])
    return None


def image_config(client: RegistryClient, repo: str, digest: str) -> dict[str, Any]:
    """The runtime config (``config`` of the image config blob) of ``repo@digest``."""
    manifest = _image_manifest(client, repo, digest)
    blob = json.loads(client.get_blob(repo, manifest["config"]["digest"]))
    config = blob.get("config") if isinstance(blob, dict) else None
    return dict(config) if isinstance(config, dict) else {}


def has_shell(client: RegistryClient, repo: str, digest: str, labels: Mapping[str, str]) -> bool:
    """Whether the image has ``/bin/sh``. Images of the debian and python templates get it from
    their base; a ``FROM scratch`` (static) image has it only when shipped, so its layers (small,
    by construction) are listed."""
    if labels.get(TEMPLATE_LABEL) != "static":
        return True
    manifest = _image_manifest(client, repo, digest)
    for layer in manifest.get("layers") or []:
        data = client.get_blob(repo, layer["digest"])
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            if any(m.name.lstrip("./") == SHELL[1:] for m in tar.getmembers()):
                return True
    return False


def _image_manifest(client: RegistryClient, repo: str, digest: str) -> dict[str, Any]:
    found = client.get_manifest(repo, digest)
    if found is None:
        raise CheckFailed(
            f"the registry {client.endpoint} has no {repo}@{digest}",
            "the ledger names a release the registry lost: gefreg verify, then publish again",
        )
    data = found.json()
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise CheckFailed(f"{repo}@{digest} is not a single-platform image manifest")
    return data


def ledger_line(catalog: Path, name: str, version: str) -> LedgerLine | None:
    """The line of ``CATALOG/NAME/releases.jsonl`` that published ``version``."""
    path = catalog / name / LEDGER_FILE
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("version") == version:
            digest = "sha256:" + hashlib.sha256(line).hexdigest()
            return LedgerLine(f"{name}/{LEDGER_FILE}", number, digest)
    return None
