"""`gefreg verify`: does the registry still hold exactly what the ledger says?

For every entry: every ledger line names the configured registry and the entry (a line naming
anything else is one issue, naming the file and line, and is not followed); each ledger
version's tag points at the ledger digest; no version-looking
tag exists that the ledger does not know; floating tags point where the ledger says; the
manifest and every blob it references are reachable; each release's signature and
attestations pass trust.yaml (an unsigned release fails only when trust.yaml requires
signatures). Requests run in parallel over kept-alive connections. ``repair`` puts drifted
tags back on the ledger digest (the old manifest is still in the registry by digest).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from gefreg.registry.client import Manifest
from gefreg.release import ledger, versions
from gefreg.release.trust_policy import TrustPolicy
from gefreg.validators import SEMVER_RE

# Distribution (and the OCI API in general) deletes manifests, not tags: deleting by digest
# would remove every tag on that manifest, ledger versions included. So gefreg only reports.
UNKNOWN_TAG_HINT = (
    "if a `gefreg publish` of this version was cut off, run it again (it completes when the "
    "tag holds the same build); otherwise delete the tag with the registry's own tools: "
    "gefreg never adopts a version it did not publish, and the registry API cannot delete "
    "one tag (it deletes a manifest with every tag on it)"
)
GONE_HINT = (
    "the ledger's manifest is gone from the registry, so the tag cannot be put back: "
    "restore the registry's storage from a backup"
)


@dataclass(frozen=True)
class Issue:
    entry: str
    kind: str  # drift | missing | unknown-tag | floating | unreachable | foreign
    tag: str
    message: str
    expected: str | None = None
    actual: str | None = None
    repaired: bool = False
    hint: str | None = None  # what to do when --repair cannot fix it
    blocking: bool = True  # False: reported, but verify still passes (an allowed unsigned release)


@dataclass(frozen=True)
class Verification:
    entries: tuple[str, ...]
    checked_tags: int
    issues: tuple[Issue, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(i.repaired or not i.blocking for i in self.issues)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": list(self.entries),
            "checked_tags": self.checked_tags,
            "issues": [i.__dict__ for i in self.issues],
        }


class RegistryView(Protocol):
    """What verify reads of a registry (and writes, with ``repair``): implemented by
    :class:`gefreg.registry.client.RegistryClient`."""

    def list_tags(self, repo: str) -> list[str]: ...

    def head_manifests(self, repo: str, references: list[str]) -> dict[str, str | None]: ...

    def get_manifest(self, repo: str, reference: str) -> Manifest | None: ...

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str: ...

    def blob_exists(self, repo: str, digest: str) -> bool: ...


class LedgerOwner(Protocol):
    """What verify needs of an entry: its name and the folder holding its ledger. Records are
    not loaded (nor validated) for this, which keeps a verify of many entries fast."""

    @property
    def name(self) -> str: ...

    @property
    def directory(self) -> Path: ...


@dataclass(frozen=True)
class LedgerFolder:
    name: str
    directory: Path


def floating_targets(lines: ledger.LedgerLines) -> dict[str, str]:
    """Where each floating tag must point: at the last release or yank that moved it, as
    recorded; for ledgers written before that was recorded, where the version rules put it
    among the releases that are not yanked (a tag no such release can take stays where the
    releases put it: the registry API cannot delete one tag)."""
    releases = lines.releases
    if any(r.floating is None for r in releases):
        every = versions.floating_targets([r.version for r in releases], versions.FLOATING)
        usable = versions.floating_targets([r.version for r in lines.usable()], versions.FLOATING)
        return {**every, **usable}
    targets: dict[str, str] = {}
    for line in lines.lines:
        if isinstance(line, ledger.Yank):
            targets.update(line.floating)
        elif isinstance(line, ledger.Release):
            targets.update(dict.fromkeys(line.floating or (), line.version))
    return targets


FOREIGN_HINT = (
    "ledgers are written by `gefreg publish` for the configured registry only: restore the line "
    "from the catalog's history (git log -p releases.jsonl), or verify with --registry set to "
    "the registry the catalog publishes to"
)


def own_lines(
    entry: LedgerOwner, lines: ledger.LedgerLines, registry: str
) -> tuple[ledger.LedgerLines, list[Issue]]:
    """The ledger's lines about ``REGISTRY/NAME`` — the configured registry and this entry —
    and one issue per release line naming anything else (file and line): such a line is never
    checked against the registry, never followed."""
    expected = f"{registry}/{entry.name}"
    path = ledger.ledger_path(entry.directory)
    issues, kept = [], []
    foreign: set[str] = set()
    for line in lines.lines:
        if isinstance(line, ledger.Release) and line.repository != expected:
            foreign.add(line.version)
            issues.append(
                Issue(
                    entry.name,
                    "foreign",
                    line.version,
                    f"{path}:{ledger.line_of(path, line.version)}: {line.version} is recorded in "
                    f"{line.repository}, but {entry.name} is published to {expected} (the "
                    "configured registry and the entry)",
                    expected,
                    line.repository,
                    hint=FOREIGN_HINT,
                )
            )
        elif not (isinstance(line, ledger.Yank) and line.version in foreign):
            kept.append(line)
    return ledger.LedgerLines(tuple(kept)), issues


def verify_entry(
    entry: LedgerOwner,
    client: RegistryView,
    *,
    registry: str,
    repair: bool = False,
    deep: bool = True,
    trust: TrustPolicy | None = None,
) -> tuple[int, list[Issue]]:
    lines, foreign = own_lines(entry, ledger.read_lines(entry.directory), registry)
    releases = lines.releases
    # An entry never published is checked too: a version tag in its repository (the entry's
    # name, as `gefreg publish` names it) was pushed outside gefreg, or is a cut-off publish.
    repo = f"{registry}/{entry.name}".split("/", 1)[1]  # the repository path in the registry
    tags = set(client.list_tags(repo))
    expected = {r.version: r.digest for r in releases}
    by_version = {r.version: r for r in releases}
    recorded = all(r.floating is not None for r in releases)
    for tag, version in floating_targets(lines).items():
        # Recorded floating tags must exist; for older ledgers only the ones present are known.
        if recorded or tag in tags:
            expected[tag] = by_version[version].digest
    heads = client.head_manifests(repo, sorted(expected))
    yanked = {by_version[v].digest: v for v in lines.yanks}
    issues: list[Issue] = list(foreign)
    for tag, want in sorted(expected.items()):
        got = heads.get(tag)
        kind = "floating" if tag not in by_version else ("missing" if got is None else "drift")
        if got == want:
            continue
        what = "gone" if got is None else got
        if got in yanked and kind == "floating":
            what += f" (the yanked {yanked[got]})"
        issue = Issue(
            entry.name, kind, tag, f"{repo}:{tag} is {what}, the ledger says {want}", want, got
        )
        if repair:
            manifest = client.get_manifest(repo, want)
            if manifest is not None:
                client.put_manifest(repo, tag, manifest.body, manifest.media_type)
                issue = dataclasses.replace(issue, repaired=True)
            else:
                issue = dataclasses.replace(issue, hint=GONE_HINT)
        issues.append(issue)
    for tag in sorted(tags - set(expected)):
        if SEMVER_RE.match(tag):
            issues.append(
                Issue(
                    entry.name,
                    "unknown-tag",
                    tag,
                    f"{repo}:{tag} looks like a version but is not in the ledger "
                    "(pushed outside gefreg?)",
                    hint=UNKNOWN_TAG_HINT,
                )
            )
    if deep:
        issues += _unreachable(entry, client, repo, releases)
    if trust is not None:
        issues += signature_issues(entry.name, repo, releases, client, trust, date.today())
    return len(expected), issues


def signature_issues(
    name: str,
    repo: str,
    releases: list[ledger.Release],
    client: Any,
    trust: TrustPolicy,
    today: date,
) -> list[Issue]:
    """Each release's signature and attestations, judged by trust.yaml. Without a trust.yaml
    (and no ledger line saying it was signed) there is nothing to judge them by."""
    from gefreg.release.attachments import tag_for
    from gefreg.release.signature_check import INVALID, UNSIGNED, Subject, release_status

    if not trust.exists and not any(r.signed_by for r in releases):
        return []
    tags = {r.version: tag_for(r.digest, "sig") for r in releases}
    present = client.head_manifests(repo, sorted(set(tags.values())))

    def status(release: ledger.Release) -> Any:
        subject = Subject(
            name,
            release.version,
            release.repository,
            release.digest,
            release.fingerprint,
            release.signed_by,
        )
        if present.get(tags[release.version]) is None and not release.signed_by:
            return None  # unsigned: nothing to fetch
        return release_status(client, trust, subject, today)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(status, releases))
    issues = []
    for release, found in zip(releases, statuses, strict=True):
        state = UNSIGNED if found is None else found.state
        if state == UNSIGNED:
            issues.append(
                Issue(
                    name,
                    "unsigned",
                    release.version,
                    f"{repo}:{release.version} ({release.digest}) is not signed"
                    + (" and trust.yaml requires signatures" if trust.require_signatures else ""),
                    hint=f"gefreg sign {name}@{release.version} --sign-key FILE",
                    blocking=trust.require_signatures,
                )
            )
        elif state == INVALID:
            issues.append(
                Issue(
                    name,
                    "signature",
                    release.version,
                    f"{repo}:{release.version}: " + "; ".join(str(f) for f in found.failures),
                    hint="re-sign with a trusted key (gefreg sign), or find out who replaced "
                    "the signature",
                )
            )
    return issues


def _unreachable(
    entry: LedgerOwner, client: RegistryView, repo: str, releases: list[ledger.Release]
) -> list[Issue]:
    """Every blob of every ledger manifest must be present (checked in parallel). Each
    distinct manifest is fetched once and each distinct blob checked once: releases often
    share them (a rebuild-free version bump, a shared base layer)."""
    issues: list[Issue] = []
    blobs: dict[str, str] = {}
    digests = list(dict.fromkeys(r.digest for r in releases))
    with ThreadPoolExecutor(max_workers=8) as pool:
        fetched = dict(
            zip(digests, pool.map(lambda d: client.get_manifest(repo, d), digests), strict=True)
        )
    for release in releases:
        if fetched[release.digest] is None:
            issues.append(
                Issue(
                    entry.name,
                    "unreachable",
                    release.version,
                    f"{repo}@{release.digest} is gone from the registry",
                )
            )
    versions_of = {r.digest: r.version for r in releases}  # a version that names the digest
    for digest, manifest in fetched.items():
        if manifest is None:
            continue
        body = json.loads(manifest.body)
        for desc in [body.get("config", {}), *body.get("layers", [])]:
            if desc.get("digest"):
                blobs.setdefault(desc["digest"], versions_of[digest])
    with ThreadPoolExecutor(max_workers=8) as pool:
        present = dict(
            zip(blobs, pool.map(lambda d: client.blob_exists(repo, d), blobs), strict=True)
        )
    for digest, ok in present.items():
        if not ok:
            issues.append(
                Issue(
                    entry.name,
                    "unreachable",
                    blobs[digest],
                    f"blob {digest} of {repo}:{blobs[digest]} is missing",
                )
            )
    return issues


def verify(
    entries: Sequence[LedgerOwner],
    client: RegistryView,
    *,
    registry: str,
    repair: bool = False,
    deep: bool = True,
    trust: TrustPolicy | None = None,
) -> Verification:
    """Check ``client`` (the registry ``registry``, ``HOST[:PORT][/PATH]``) against the ledgers
    of ``entries`` (see the module docstring)."""
    checked, issues = 0, []
    for entry in entries:
        n, found = verify_entry(
            entry, client, registry=registry, repair=repair, deep=deep, trust=trust
        )
        checked += n
        issues += found
    return Verification(tuple(e.name for e in entries), checked, tuple(issues))
