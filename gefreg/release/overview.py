"""What the catalog has published: the rows of `gefreg list` and the page of `gefreg show`.

Everything comes from the release ledgers (committed, reviewed) and the records; the registry
is asked only for what lives there — an image's labels, its SBOM and scan report — and what
it answers is checked against the ledger (the artifact's ``subject`` must be the release's
digest; blobs are checked against their digests by the client).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gefreg.catalog.entries import named_entry, names_hint, service_record_paths
from gefreg.errors import BadInput, CheckFailed, GefregError
from gefreg.image.interface import ServiceInterface
from gefreg.model import ServiceSpec, is_digest
from gefreg.release import ledger, versions
from gefreg.release.verify import floating_targets
from gefreg.settings import Settings

ARTIFACT_KINDS = {
    "sbom": "application/vnd.cyclonedx+json",
    "scan": "application/vnd.gefreg.scan.v1+json",
}
MAX_ARTIFACT = 256 * 1024**2


@dataclass(frozen=True)
class VersionInfo:
    """One release as `list` and `show` present it."""

    version: str
    digest: str
    repository: str
    published: str
    scan: str  # the scan verdict in words ("passed: …"), or "" when the ledger has none
    floating: tuple[str, ...] = ()
    yanked: ledger.Yank | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "digest": self.digest,
            "repository": self.repository,
            "published": self.published,
            "scan": self.scan,
            "floating": list(self.floating),
            "yanked": None
            if self.yanked is None
            else {"reason": self.yanked.reason, "date": self.yanked.yanked},
        }


@dataclass(frozen=True)
class EntryRow:
    """A line of `gefreg list`."""

    name: str
    record_version: str | None
    description: str | None
    latest: VersionInfo | None
    releases: int
    yanked: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "record_version": self.record_version,
            "description": self.description,
            "latest": self.latest.to_json() if self.latest else None,
            "releases": self.releases,
            "yanked": self.yanked,
        }


def scan_words(release: ledger.Release) -> str:
    scan = release.scan if isinstance(release.scan, dict) else {}
    summary = scan.get("summary")
    if isinstance(summary, str) and summary:
        # "scan passed: NAME: 0 blocking findings, …" → "passed: 0 blocking findings, …"
        verdict, _, rest = summary.removeprefix("scan ").partition(": ")
        return f"{verdict}: {rest.partition(': ')[2] or rest}" if rest else summary
    if "passed" in scan:
        return "passed" if scan["passed"] else "failed"
    return ""


def version_infos(lines: ledger.LedgerLines) -> list[VersionInfo]:
    """Every release in ledger order, with its floating tags and its yank, if any."""
    tags: dict[str, list[str]] = {}
    for tag, version in floating_targets(lines).items():
        tags.setdefault(version, []).append(tag)
    yanks = lines.yanks
    return [
        VersionInfo(
            r.version,
            r.digest,
            r.repository,
            r.published,
            scan_words(r),
            tuple(sorted(tags.get(r.version, ()))),
            yanks.get(r.version),
        )
        for r in lines.releases
    ]


def newest(lines: ledger.LedgerLines) -> ledger.Release | None:
    """The release `NAME` means without a version: the newest that is not yanked and not a
    pre-release, else the newest pre-release that is not yanked."""
    usable = lines.usable()
    final = [r.version for r in usable if not versions.is_prerelease(r.version)]
    top = versions.highest(final or [r.version for r in usable])
    return ledger.find(usable, top) if top else None


def _record(folder: Path) -> ServiceSpec | None:
    from gefreg.catalog.entries import load_entry

    try:
        return load_entry(folder).spec
    except GefregError:
        return None  # `gefreg lint` says why; a listing still shows the ledger


def rows(settings: Settings) -> list[EntryRow]:
    """Every catalog entry with its newest usable release (`gefreg list`)."""
    out = []
    for record in service_record_paths(settings.catalog):
        folder = record.parent
        lines = ledger.read_lines(folder)
        spec = _record(folder)
        top = newest(lines)
        info = next((i for i in version_infos(lines) if top and i.version == top.version), None)
        out.append(
            EntryRow(
                folder.name,
                spec.version if spec else None,
                spec.description if spec else None,
                info,
                len(lines.releases),
                len(lines.yanks),
            )
        )
    return out


@dataclass(frozen=True)
class EntryPage:
    """Everything `gefreg show NAME[@VERSION]` tells, without the registry's part."""

    name: str
    spec: ServiceSpec | None
    versions: tuple[VersionInfo, ...]
    selected: VersionInfo | None  # the version asked for, or the newest usable one
    release: ledger.Release | None
    interface: ServiceInterface | None  # of the selected release (or of the record)
    registry: dict[str, Any] = field(default_factory=dict)  # labels, artifacts, signature

    def to_json(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "name": self.name,
            "record": None
            if spec is None
            else {
                "version": spec.version,
                "description": spec.description,
                "license": spec.license,
                "maintainers": list(spec.maintainers),
                "source": spec.source,
                "documentation": spec.documentation,
            },
            "versions": [v.to_json() for v in self.versions],
            "selected": self.selected.version if self.selected else None,
            "interface": self.interface.to_json() if self.interface else None,
            "run": self.run_command(),
            "registry": self.registry,
        }

    def run_command(self) -> str | None:
        if self.interface is None:
            return None
        target = self.name + (f"@{self.selected.version}" if self.selected else "")
        words = ["gefreg run", target]
        if self.selected is not None and self.selected.yanked is not None:
            words.append("--allow-yanked")
        for flag, ports in (
            ("--input", self.interface.inputs),
            ("--output", self.interface.outputs),
        ):
            many = len(ports) > 1
            words += [f"{flag} {p.name + '=' if many else ''}DIR" for p in ports]
        return " ".join(words)


def entry_folder(settings: Settings, name: str) -> Path:
    folder = named_entry(settings.catalog, name)
    if folder is None:
        raise BadInput(
            f"no catalog entry {name!r} in {settings.catalog}", names_hint(settings.catalog, name)
        )
    return folder


def page(settings: Settings, name: str, version: str | None) -> EntryPage:
    """The entry and its releases; ``version`` (as typed: ``v1.2.3`` is understood) selects one."""
    folder = entry_folder(settings, name)
    lines = ledger.read_lines(folder)
    infos = version_infos(lines)
    spec = _record(folder)
    if version is not None:
        wanted = versions.understood(version)
        release = ledger.find(lines.releases, wanted)
        if release is None:
            raise BadInput(
                f"{name} has no published version {version}", published_hint(lines, spec)
            )
    else:
        release = newest(lines)
    selected = next((i for i in infos if release and i.version == release.version), None)
    return EntryPage(name, spec, tuple(infos), selected, release, _interface(release, spec))


def published_hint(lines: ledger.LedgerLines, spec: ServiceSpec | None) -> str:
    text = lines.published_text()
    if spec is not None and spec.version not in {r.version for r in lines.releases}:
        text += f"; the record is at {spec.version} (not published)"
    return text


def _interface(release: ledger.Release | None, spec: ServiceSpec | None) -> ServiceInterface | None:
    if release is not None and release.interface is not None:
        try:
            return ServiceInterface.from_json(release.interface, f"{release.version}: interface")
        except BadInput:
            return None
    if spec is not None and (release is None or release.version == spec.version):
        return ServiceInterface.from_spec(spec)
    return None


# --- the registry's part -------------------------------------------------------------------


def _repo(release: ledger.Release) -> str:
    return release.repository.split("/", 1)[1]


def artifact_tag(digest: str, kind: str) -> str:
    return f"{digest.replace(':', '-')}.{kind}"


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    """``data`` as a JSON object; anything else from the registry is refused, not a crash."""
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise CheckFailed(f"{what} in the registry is not a JSON object", "run `gefreg verify`")
    return doc


def labels(client: Any, release: ledger.Release) -> dict[str, str]:
    """The labels of the published image, from its config blob in the registry."""
    manifest = client.get_manifest(_repo(release), release.digest)
    if manifest is None:
        raise CheckFailed(
            f"{release.repository}@{release.digest} is gone from the registry",
            "run `gefreg verify` to see what else is missing",
        )
    config = _json_object(manifest.body, f"the manifest of {release.version}").get("config")
    digest, size = (
        (config.get("digest"), config.get("size")) if isinstance(config, dict) else (0, 0)
    )
    if not (isinstance(digest, str) and isinstance(size, int)):
        return {}
    blob = client.get_blob(_repo(release), digest, max_bytes=size)
    found = _json_object(blob, f"the image config of {release.version}").get("config") or {}
    found = found.get("Labels") if isinstance(found, dict) else None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def artifact_digest(client: Any, release: ledger.Release, kind: str) -> str | None:
    """The manifest digest of the release's SBOM or scan report in the registry, if any: the
    one its ledger line names (releases published before it named the scan report: the one
    under the ``sha256-<hex>.scan`` tag, if its subject is this release)."""
    recorded = release.sbom_digest if kind == "sbom" else release.scan_report_digest
    if recorded:
        return recorded
    return client.head_manifest(_repo(release), artifact_tag(release.digest, kind))  # type: ignore[no-any-return]


def fetch_artifact(client: Any, release: ledger.Release, kind: str) -> bytes:
    """The SBOM (``sbom``) or scan report (``scan``) stored with the release, checked to be
    about this very image, of the kind asked for, of a plausible size and JSON, before a
    byte of it is returned."""
    repo = _repo(release)
    reference = artifact_digest(client, release, kind)
    manifest = client.get_manifest(repo, reference) if reference else None
    what = "SBOM" if kind == "sbom" else "scan report"
    if manifest is None:
        raise CheckFailed(
            f"the registry holds no {what} for {release.repository}@{release.digest}",
            "releases published with gefreg carry both; `gefreg verify` checks the rest",
        )
    digest, size = _artifact_layer(manifest, release, kind, what)
    data = client.get_blob(repo, digest, max_bytes=size)
    if len(data) != size:
        raise CheckFailed(f"the {what} of {release.version} is not the size its manifest says")
    _json_object(data, f"the {what} of {release.version}")
    return data  # type: ignore[no-any-return]


def _artifact_layer(
    manifest: Any, release: ledger.Release, kind: str, what: str
) -> tuple[str, int]:
    """The digest and size of the artifact's one layer, once the manifest is known to be an
    artifact of this kind about this very release."""
    doc = _json_object(manifest.body, f"the {what} manifest of {release.version}")
    subject = doc.get("subject")
    subject = subject.get("digest") if isinstance(subject, dict) else None
    layers = doc.get("layers")
    layer = layers[0] if isinstance(layers, list) and len(layers) == 1 else None
    media = ARTIFACT_KINDS[kind]
    if (
        subject != release.digest
        or doc.get("artifactType") != media
        or not isinstance(layer, dict)
        or layer.get("mediaType") != media
    ):
        raise CheckFailed(
            f"the {what} under {_repo(release)}@{manifest.digest} is not the one published "
            f"with {release.version} (its subject is {subject!r}, its type "
            f"{doc.get('artifactType')!r})",
            "refusing to show it; run `gefreg verify`",
        )
    digest, size = layer.get("digest"), layer.get("size")
    if not isinstance(digest, str) or not is_digest(digest):
        raise CheckFailed(f"the {what} of {release.version} names no valid blob digest")
    if not isinstance(size, int) or not 0 < size <= MAX_ARTIFACT:
        raise CheckFailed(f"the {what} of {release.version} claims an implausible size")
    return digest, size


def registry_part(
    settings: Settings, client: Any, name: str, release: ledger.Release
) -> dict[str, Any]:
    """Labels, artifact digests and signature status of a release, from the registry."""
    part: dict[str, Any] = {
        "labels": labels(client, release),
        "sbom": artifact_digest(client, release, "sbom"),
        "scan_report": artifact_digest(client, release, "scan"),
    }
    part["signature"] = signature(settings, client, name, release)
    return part


def signature(
    settings: Settings, client: Any, name: str, release: ledger.Release
) -> dict[str, Any]:
    """The signing status of the release against CATALOG/trust.yaml (verified, unsigned or
    invalid, with the key and the failed checks), as `verify` judges it."""
    from gefreg.release.signature_check import release_signature

    status = release_signature(settings, client, name, release)
    return {**status.to_json(), "describe": status.describe()}
