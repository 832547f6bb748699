"""`gefreg review --base REV`: the check CI runs on a pull request to the catalog.

Compared with REV: changed records are valid; ledgers were only appended to (never edited or
shortened); an entry whose fingerprint changed got a new version; a version not yet published
passes the version rule (:func:`gefreg.release.versions.check_new_version`, the rule publish
applies); published entries are not deleted; a changed trust.yaml is valid and keeps its
revocations (:mod:`gefreg.release.trust_review`). It lists the entries whose image changed, so
CI builds and scans only those.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gefreg.catalog.entries import BASES_DIR, LOCK_FILE, base_names, load_entry, resolve
from gefreg.errors import BadInput, GefregError, InvalidRecord, ToolMissing
from gefreg.hashing import HashCache
from gefreg.image import fingerprint as fp
from gefreg.image.templates import load_template
from gefreg.model import RECORD_FILE, SCRATCH, Entry
from gefreg.release import ledger, versions
from gefreg.release.trust_review import TrustReview, review_trust
from gefreg.settings import Settings


@dataclass(frozen=True)
class EntryReview:
    name: str
    status: str  # added | changed | unchanged-image | deleted
    version: str | None
    base_version: str | None
    image_changed: bool
    problems: tuple[str, ...] = ()
    yanked: tuple[tuple[str, str], ...] = ()  # (version, reason) of the yanks this change adds


@dataclass(frozen=True)
class ReviewReport:
    base: str
    entries: tuple[EntryReview, ...] = field(default_factory=tuple)
    trust: TrustReview | None = None  # the change to trust.yaml, if any

    @property
    def ok(self) -> bool:
        trust_ok = self.trust is None or not self.trust.problems
        return trust_ok and not any(e.problems for e in self.entries)

    @property
    def to_build(self) -> list[str]:
        return [e.name for e in self.entries if e.image_changed and e.status != "deleted"]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "base": self.base,
            "build": self.to_build,
            "entries": [e.__dict__ for e in self.entries],
            "trust": self.trust.to_json() if self.trust else None,
        }


def _git(root: Path, *args: str, binary: bool = False) -> Any:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise ToolMissing("git is not installed", "apt-get install git") from None
    if proc.returncode != 0:
        raise BadInput(
            f"git {' '.join(args)} failed: {proc.stderr.decode().strip()}",
            "is --base a revision of this repository (fetch it in CI: "
            "`git fetch origin main` and use origin/main)?",
        )
    return proc.stdout if binary else proc.stdout.decode()


def _show(root: Path, rev: str, path: str) -> bytes | None:
    proc = subprocess.run(
        ["git", "-C", str(root), "show", f"{rev}:{path}"], capture_output=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else None


def _catalog_path(catalog_rel: str, *parts: str) -> str:
    """A repository path inside the catalog ("." when the catalog is the repository)."""
    return PurePosixPath(catalog_rel, *parts).as_posix()


def changed_entries(root: Path, catalog_rel: str, base: str) -> tuple[set[str], bool]:
    """Names of the top folders of the catalog with any file changed since ``base`` (entries,
    and perhaps other folders: the caller keeps those with a record); and whether bases
    changed."""
    out = _git(root, "diff", "--name-only", "--no-renames", base, "--", catalog_rel)
    out += _git(root, "ls-files", "--others", "--exclude-standard", "--", catalog_rel)
    names, bases_changed = set(), False
    for line in out.splitlines():
        path = PurePosixPath(line)
        if catalog_rel != "." and not path.is_relative_to(catalog_rel):
            continue
        parts = path.relative_to(catalog_rel).parts if catalog_rel != "." else path.parts
        if len(parts) < 2:
            continue
        if parts[0] == BASES_DIR:
            bases_changed = True
        else:
            names.add(parts[0])
    return names, bases_changed


def _old_entry(root: Path, base: str, catalog_rel: str, name: str, into: Path) -> Entry | None:
    if _show(root, base, _catalog_path(catalog_rel, name, RECORD_FILE)) is None:
        return None
    folder = _catalog_path(catalog_rel, name)
    data = _git(root, "archive", "--format=tar", base, folder, binary=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise BadInput(f"{folder} at {base} cannot be unpacked for comparison: {exc}") from None
    return load_entry(into / folder)


def _lock_at(root: Path, base: str, catalog_rel: str) -> dict[str, str]:
    raw = _show(root, base, _catalog_path(catalog_rel, BASES_DIR, LOCK_FILE))
    if raw is None:
        return {}
    return {k: v["digest"] for k, v in json.loads(raw).get("bases", {}).items()}


def _fingerprint(entry: Entry, lock: dict[str, str], cache: HashCache | None) -> fp.Fingerprint:
    template = load_template(entry.spec.template)
    digest = None if entry.spec.base == SCRATCH else lock.get(entry.spec.base)
    return fp.compute(
        entry,
        template_name=template.name,
        template_digest=template.digest,
        base_digest=digest,
        cache=cache,
    )


def _appended_releases(
    name: str, old: list[ledger.Release], new: list[ledger.Release], registry: str
) -> list[str]:
    """Appended ledger lines must name the repository the entry always published to (or, for
    a first release, the configured registry): runs pull from there as trusted."""
    expected = old[-1].repository if old else f"{registry}/{name}"
    return [
        f"{name}/{ledger.LEDGER_FILE}: the new release {r.version} names {r.repository}, not "
        f"{expected}; releases are appended by `gefreg publish` only"
        for r in new[len(old) :]
        if r.repository != expected
    ]


def _appended_floating(
    name: str, path: Path, text: str, kept: int, lines: ledger.LedgerLines
) -> list[str]:
    """The floating tags each appended line says it moved must be the ones `gefreg publish`
    or `gefreg yank` would have moved there: `verify --repair` puts tags where the ledger
    says, so a hand-written line could otherwise roll `latest` back to an old release."""
    from gefreg.release.yank import floating_moves

    numbers = [n for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    problems = []
    for i in range(kept, len(lines.lines)):
        line, before = lines.lines[i], ledger.LedgerLines(lines.lines[:i])
        where = f"{path}:{numbers[i]}: floating"
        if isinstance(line, ledger.Yank):
            moved, _ = floating_moves(before, line.version)
            if line.floating != moved:
                problems.append(
                    f"{where}: the yank of {line.version} says it moved "
                    f"{line.floating or 'no tags'}, but yanking it moves {moved or 'no tags'}; "
                    "yank lines are written by `gefreg yank` only"
                )
        elif isinstance(line, ledger.Release) and line.floating:
            usable = [r.version for r in before.usable()]
            allowed = versions.floating_tags(line.version, usable, versions.FLOATING)
            extra = sorted(set(line.floating) - set(allowed))
            if extra:
                problems.append(
                    f"{where}: {line.version} says it moved {', '.join(extra)}, which publishing "
                    f"it does not move (it moves {', '.join(allowed) or 'no tags'}); releases "
                    "are appended by `gefreg publish` only"
                )
    return problems


def _not_rebuilt(
    name: str, added: list[ledger.Release], notes: list[ledger.RebuildNote]
) -> list[str]:
    """Added releases without a note that a rebuild from their commit was bit-identical."""
    proven = {(n.version, n.digest) for n in notes if n.result == "identical"}
    return [
        f"{name} {r.version} has no 'rebuilt: identical' note: run `gefreg rebuild "
        f"{name}@{r.version} --record` in a clean clone and commit the ledger"
        for r in added
        if (r.version, r.digest) not in proven
    ]


def review(settings: Settings, base: str, *, require_rebuilt: bool = False) -> ReviewReport:
    """``require_rebuilt``: every release the change adds needs a 'rebuilt: identical' note."""
    catalog = settings.catalog
    try:
        root = Path(_git(catalog, "rev-parse", "--show-toplevel").strip())
    except BadInput:
        raise BadInput(
            f"{catalog} is not in a git repository",
            "review compares the catalog with a git revision: run it in a clone of "
            "the catalog repository",
        ) from None
    catalog_rel = catalog.relative_to(root).as_posix()
    _git(root, "rev-parse", "--verify", f"{base}^{{commit}}")
    resolve(catalog, [])  # no service records: CI pointed at the wrong folder, not a pass
    names, bases_changed = changed_entries(root, catalog_rel, base)
    new_lock = _lock_at_worktree(catalog)
    old_lock = _lock_at(root, base, catalog_rel)
    known = base_names(catalog)
    if bases_changed:  # a new base digest changes every entry built on it
        moved = {b for b in set(new_lock) | set(old_lock) if new_lock.get(b) != old_lock.get(b)}
        for record in catalog.glob(f"*/{RECORD_FILE}"):
            try:
                if load_entry(record, known).spec.base in moved:
                    names.add(record.parent.name)
            except GefregError:
                names.add(record.parent.name)
    names = {
        n
        for n in names - {BASES_DIR}
        if (catalog / n / RECORD_FILE).is_file()
        or _show(root, base, _catalog_path(catalog_rel, n, RECORD_FILE)) is not None
    }
    cache = HashCache(settings.hash_cache)
    results = []
    with tempfile.TemporaryDirectory(prefix="gefreg-review-") as tmp:
        for name in sorted(names):
            results.append(
                _review_entry(
                    root,
                    catalog,
                    catalog_rel,
                    base,
                    name,
                    known,
                    old_lock,
                    new_lock,
                    cache,
                    Path(tmp) / name,
                    settings.registry,
                    require_rebuilt,
                )
            )
    cache.save()
    return ReviewReport(base, tuple(results), _trust_change(root, catalog, catalog_rel, base))


def _trust_change(root: Path, catalog: Path, catalog_rel: str, base: str) -> TrustReview | None:
    from gefreg.release.trust_policy import TRUST_FILE

    old = _show(root, base, _catalog_path(catalog_rel, TRUST_FILE))
    path = catalog / TRUST_FILE
    new = path.read_text(encoding="utf-8") if path.is_file() else None
    found = review_trust(old.decode() if old is not None else None, new, path)
    return found if found.changed else None


def _lock_at_worktree(catalog: Path) -> dict[str, str]:
    from gefreg.catalog.entries import load_lock

    return dict(load_lock(catalog).digests)


def _review_entry(
    root: Path,
    catalog: Path,
    catalog_rel: str,
    base: str,
    name: str,
    known: set[str],
    old_lock: dict[str, str],
    new_lock: dict[str, str],
    cache: HashCache,
    tmp: Path,
    registry: str,
    require_rebuilt: bool = False,
) -> EntryReview:
    problems: list[str] = []
    folder = catalog / name
    old_ledger = (
        _show(root, base, _catalog_path(catalog_rel, name, ledger.LEDGER_FILE)) or b""
    ).decode()
    try:
        old = _old_entry(root, base, catalog_rel, name, tmp)
    except GefregError:
        old = None  # the base revision was invalid; judge the new record on its own
    if not (folder / RECORD_FILE).is_file():
        if old_ledger.strip():
            problems.append(f"{name} has published releases and cannot be deleted")
        return EntryReview(
            name, "deleted", None, old.spec.version if old else None, False, tuple(problems)
        )
    try:
        entry = load_entry(folder, known)
    except InvalidRecord as exc:
        problems += [str(p) for p in exc.problems]
        return EntryReview(
            name, "changed", None, old.spec.version if old else None, True, tuple(problems)
        )
    releases, yanked, ledger_problems = _review_ledger(
        name, folder, old_ledger, registry, require_rebuilt
    )
    problems += ledger_problems
    version = entry.spec.version
    now = _fingerprint(entry, new_lock, cache)
    if old is None:
        status, image_changed, old_version = "added", True, None
    else:
        old_version = old.spec.version
        # The base revision's files live in a temporary folder: no point caching their hashes.
        changed = _fingerprint(old, old_lock, None).changed_parts(now)
        image_changed = bool(changed)
        status = "changed" if image_changed else "unchanged-image"
        if image_changed and version == old_version:
            problems.append(
                f"{name}: the image changed ({', '.join(changed)}) but the version is still "
                f"{version}: bump it"
            )
    published = ledger.find(releases, version)
    if published is not None and published.fingerprint != now.digest:
        problems.append(
            f"{name} {version} is already published with another fingerprint: bump the version"
        )
    broken = versions.check_new_version(version, [r.version for r in releases])
    if published is None and broken is not None:
        problems.append(f"{name} {broken.message} (fix: {broken.hint})")
    return EntryReview(name, status, version, old_version, image_changed, tuple(problems), yanked)


def _review_ledger(
    name: str, folder: Path, old_text: str, registry: str, require_rebuilt: bool = False
) -> tuple[list[ledger.Release], tuple[tuple[str, str], ...], list[str]]:
    """The entry's ledger against the base revision's: only appended, every line valid,
    appended releases in the right repository. Returns the releases, the yanks this change
    adds (version, reason) and the problems."""
    path = folder / ledger.LEDGER_FILE
    new_text = path.read_text() if path.exists() else ""
    problems = []
    appended = ledger.only_appended(old_text, new_text)
    if not appended:
        problems.append(
            f"{name}/{ledger.LEDGER_FILE} was edited or shortened: "
            "the ledger may only be appended to"
        )
    try:
        lines = ledger.parse_lines(new_text, path)
        yanked: tuple[tuple[str, str], ...] = ()
        if appended:
            before = ledger.parse_lines(old_text, path)
            problems += _appended_releases(name, before.releases, lines.releases, registry)
            problems += _appended_floating(name, path, new_text, len(before.lines), lines)
            if require_rebuilt:
                added = lines.releases[len(before.releases) :]
                problems += _not_rebuilt(name, added, lines.rebuilds)
            yanked = tuple((v, y.reason) for v, y in lines.yanks.items() if v not in before.yanks)
    except InvalidRecord as exc:
        return [], (), problems + [str(p) for p in exc.problems]
    return lines.releases, yanked, problems
