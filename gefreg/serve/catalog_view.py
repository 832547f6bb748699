"""What the web catalog shows, gathered from the catalog, its ledgers and the registry.

Entries come from their records; versions from the ledger (newest first); what only the
registry knows — image size, labels, the SBOM, the scan report's counts — is fetched by
digest and checked against it, so it is as immutable as the ledger line that names it and is
cached for the life of the process. When the registry cannot answer, the page says so instead
of guessing. Everything here is data for the templates: nothing is trusted for running.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.catalog.entries import base_names, load_entry, service_record_paths
from gefreg.errors import CheckFailed, GefregError
from gefreg.image.interface import ServiceInterface
from gefreg.model import Port
from gefreg.registry.client import RegistryClient
from gefreg.release import ledger, overview, versions
from gefreg.settings import Settings

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")


@dataclass(frozen=True)
class RegistryFacts:
    """What the registry holds for one release (None where it could not say)."""

    size: int | None = None
    labels: tuple[tuple[str, str], ...] = ()
    severities: tuple[tuple[str, int], ...] | None = None
    outcomes: tuple[tuple[str, int], ...] | None = None
    sbom: bytes | None = None
    cwl: str | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Command:
    tool: str
    text: str


@dataclass(frozen=True)
class VersionView:
    name: str
    version: str
    digest: str
    repository: str
    published: str
    scan: Mapping[str, Any]
    sbom_digest: str | None
    floating: tuple[str, ...]
    interface: ServiceInterface | None
    facts: RegistryFacts
    signature: str
    yanked: str | None = None
    commands: tuple[Command, ...] = ()

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class EntryView:
    name: str
    description: str
    license: str
    maintainers: tuple[str, ...]
    source: str | None
    documentation: str | None
    record_version: str
    template: str
    versions: tuple[VersionView, ...] = ()
    history: tuple[Mapping[str, Any], ...] = ()
    problem: str | None = None
    newest: str | None = None  # what NAME means without a version (not yanked)

    @property
    def latest(self) -> VersionView | None:
        return next((v for v in self.versions if v.version == self.newest), None)

    @property
    def search_text(self) -> str:
        words = [self.name, self.description, self.license, *self.maintainers]
        if self.latest and self.latest.interface:
            words += [
                p.name for p in (*self.latest.interface.inputs, *self.latest.interface.outputs)
            ]
        return " ".join(words).lower()


class FactsSource:
    """Registry facts by digest, fetched once per process (they never change for a digest)."""

    def __init__(self, settings: Settings, cwl: Callable[[str, str], str | None] | None = None):
        self.settings = settings
        self.cwl = cwl
        self._lock = threading.Lock()
        self._known: dict[str, RegistryFacts] = {}

    def facts(self, release: ledger.Release, name: str) -> RegistryFacts:
        with self._lock:
            if release.digest in self._known:
                return self._known[release.digest]
        found = self._fetch(release, name)
        if not found.problems:
            with self._lock:
                self._known[release.digest] = found
        return found

    def _fetch(self, release: ledger.Release, name: str) -> RegistryFacts:
        problems: list[str] = []
        values: dict[str, Any] = {}
        try:
            with RegistryClient(self.settings.registry_url, timeout=10, retries=1) as client:
                values.update(_image_facts(client, release))
                values.update(_scan_counts(_optional_artifact(client, release, "scan")))
                if release.sbom_digest:
                    values["sbom"] = _optional_artifact(client, release, "sbom")
        except (GefregError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"the registry did not answer for {release.digest}: {exc}")
        if self.cwl is not None:
            values["cwl"] = self.cwl(name, release.version)
        return RegistryFacts(**values, problems=tuple(problems))


class SignatureSource:
    """A release's signature status in words, from the signing check (``release_signature``).
    Unlike the registry facts it can change (a key revoked or expiring in trust.yaml, a new
    signature), so answers are kept ``ttl`` seconds, and not at all when trust.yaml changed."""

    def __init__(self, settings: Settings, ttl: float = 60.0) -> None:
        self.settings = settings
        self.ttl = ttl
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str, float], tuple[float, str]] = {}

    def _stamp(self) -> float:
        try:
            return (self.settings.catalog / "trust.yaml").stat().st_mtime
        except OSError:
            return 0.0

    def __call__(self, name: str, release: ledger.Release) -> str:
        key = (name, release.digest, self._stamp())
        now = time.monotonic()
        with self._lock:
            found = self._known.get(key)
            if found is not None and found[0] > now:
                return found[1]
        text = self.describe(name, release)
        with self._lock:
            self._known[key] = (now + self.ttl, text)
        return text

    def describe(self, name: str, release: ledger.Release) -> str:
        from gefreg.release import trust_policy
        from gefreg.release.signature_check import release_signature

        policy = trust_policy.load(self.settings.catalog)
        try:
            with RegistryClient(self.settings.registry_url, timeout=10, retries=1) as client:
                status = release_signature(self.settings, client, name, release)
        except GefregError as exc:
            return f"unknown (the registry did not answer: {exc.message})"
        text = status.describe()
        if not status.verified and policy.require_signatures:
            text += " — this catalog requires signatures, so it does not run"
        elif not policy.exists and not status.verified:
            text += " (the catalog has no trust.yaml)"
        return text


def _image_facts(client: RegistryClient, release: ledger.Release) -> dict[str, Any]:
    """Size (config and layers, as stored) and labels of the published image."""
    repo = release.repository.split("/", 1)[1]
    found = client.get_manifest(repo, release.digest)
    if found is None:
        raise ValueError("the image manifest is gone from the registry")
    manifest = found.json()
    size = int(manifest["config"]["size"]) + sum(int(x["size"]) for x in manifest["layers"])
    labels = overview.labels(client, release)
    return {"size": size, "labels": tuple(sorted(labels.items()))}


def _optional_artifact(client: RegistryClient, release: ledger.Release, kind: str) -> bytes | None:
    """The release's SBOM or scan report (checked to be about this image), None when the
    registry holds none."""
    try:
        return overview.fetch_artifact(client, release, kind)
    except CheckFailed:
        return None


def _scan_counts(report: bytes | None) -> dict[str, Any]:
    if report is None:
        return {}
    verdict = json.loads(report).get("verdict") or {}
    severities: Counter[str] = Counter()
    outcomes: dict[str, int] = {}
    for key, label in (
        ("blocking", "blocking"),
        ("below_threshold", "below threshold"),
        ("suppressed", "excepted"),
    ):
        items = verdict.get(key) or []
        outcomes[label] = len(items)
        severities.update(str((d.get("finding") or {}).get("severity", "UNKNOWN")) for d in items)
    return {
        "severities": tuple((s, severities.get(s, 0)) for s in SEVERITIES),
        "outcomes": tuple(outcomes.items()),
    }


def _order(lines: ledger.LedgerLines) -> list[ledger.Release]:
    """Newest version first (SemVer order)."""

    def key(r: ledger.Release) -> Any:
        try:
            return (1, versions.parse(r.version))
        except ValueError:
            return (0, r.version)

    return sorted(lines.releases, key=key, reverse=True)


def _interface(release: ledger.Release) -> ServiceInterface | None:
    if release.interface is None:
        return None
    with contextlib.suppress(GefregError):
        return ServiceInterface.from_json(release.interface, f"ledger {release.version}")
    return None


def _history(entry_dir: Path) -> tuple[Mapping[str, Any], ...]:
    out = []
    with contextlib.suppress(OSError):
        for number, line in enumerate(ledger.ledger_path(entry_dir).read_text().splitlines(), 1):
            with contextlib.suppress(ValueError):
                data = json.loads(line)
                if isinstance(data, dict):
                    out.append({"line": number, **data})
    return tuple(out)


@dataclass
class CatalogView:
    """Builds the views of a catalog (``signature`` answers a release's signature status)."""

    settings: Settings
    facts: FactsSource
    signature: Callable[[str, ledger.Release], str]

    def entries(self) -> list[EntryView]:
        known = base_names(self.settings.catalog)
        return [self.entry(p.parent, known) for p in service_record_paths(self.settings.catalog)]

    def entry(self, folder: Path, known: set[str] | None = None) -> EntryView:
        try:
            spec = load_entry(
                folder, known if known is not None else base_names(folder.parent)
            ).spec
        except GefregError as exc:
            return EntryView(folder.name, "", "", (), None, None, "", "", problem=exc.message)
        try:
            lines = ledger.read_lines(folder)
            problem = None
        except GefregError as exc:
            lines, problem = ledger.LedgerLines(()), exc.message
        yanks = lines.yanks
        views = tuple(self.version(spec.name, r, yanks.get(r.version)) for r in _order(lines))
        newest = overview.newest(lines)
        return EntryView(
            name=spec.name,
            description=spec.description,
            license=spec.license,
            maintainers=spec.maintainers,
            source=spec.source,
            documentation=spec.documentation,
            record_version=spec.version,
            template=spec.template,
            versions=views,
            history=_history(folder),
            problem=problem,
            newest=newest.version if newest else None,
        )

    def version(
        self, name: str, release: ledger.Release, yank: ledger.Yank | None = None
    ) -> VersionView:
        view = VersionView(
            name=name,
            version=release.version,
            digest=release.digest,
            repository=release.repository,
            published=release.published,
            scan=dict(release.scan or {}),
            sbom_digest=release.sbom_digest,
            floating=tuple(release.floating or ()),
            interface=_interface(release),
            facts=self.facts.facts(release, name),
            signature=self.signature(name, release),
            yanked=f"{yank.reason} (yanked {yank.yanked})" if yank else None,
        )
        return VersionView(**{**view.__dict__, "commands": commands(view)})


def _docker_size(size: int) -> str:
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _port_args(ports: tuple[Port, ...], flag: str) -> list[str]:
    return [f"{flag} {p.name}=./{p.name}" for p in ports]


def commands(view: VersionView) -> tuple[Command, ...]:
    """How to run the version: gefreg, docker (hardened like gefreg), cwltool and Toil."""
    face = view.interface
    if face is None:
        return (Command("gefreg", f"gefreg run {view.name}@{view.version}"),)
    ins, outs = face.inputs, face.outputs
    gefreg = " ".join(
        [f"gefreg run {view.name}@{view.version}", *_port_args(ins, "-i"), *_port_args(outs, "-o")]
    )
    limits = face.resources
    docker = [
        "docker run --rm --network none --read-only",
        "--tmpfs /tmp:rw,noexec,nosuid,nodev,size=64m --cap-drop ALL",
        "--security-opt no-new-privileges",
        f"--user {face.user}:{face.user} --pids-limit {limits.pids}",
        f"--memory {_docker_size(limits.memory)} --cpus {limits.cpus:g}",
        *[f'-v "$PWD/{p.name}:{p.path}:ro"' for p in ins],
        *[f'-v "$PWD/{p.name}:{p.path}"' for p in outs],
        view.pinned,
    ]
    # gefreg, cwltool and Toil make the output folders; for docker they must exist already and
    # take the files of the service's (non-root) user
    folders = " ".join(f"./{p.name}" for p in outs)
    prepare = f"mkdir -p {folders} && chmod 0777 {folders}  # written by uid {face.user}\n"
    cwl = f"{view.name}.cwl"
    export = f"gefreg export cwl {view.name}@{view.version} -o {cwl}"
    job = " ".join(["gefreg export job", *(f"{p.name}=./{p.name}" for p in ins), "-o job.yml"])
    return (
        Command("gefreg", gefreg),
        Command("docker", (prepare if outs else "") + " \\\n  ".join(docker)),
        Command("cwltool", f"{export}\n{job}\ncwltool {cwl} job.yml"),
        Command("Toil", f"{export}\n{job}\ntoil-cwl-runner --jobStore ./jobstore {cwl} job.yml"),
    )
