"""`gefreg yank NAME@VERSION --reason TEXT`: a release that must no longer be used.

Versions never disappear: a yank appends a line to the ledger (the decision, with its reason,
committed and reviewed like a release), then moves the floating tags that pointed at the
yanked release back to the highest release that is not yanked. The ledger line comes first,
and the tags move while the entry's ledger lock is still held (a publish waiting for it moves
them forward after us, never before us); if moving a tag fails, `gefreg verify` reports it and
`--repair` finishes the job from the ledger. A floating tag that no other release can take
(the only release of its line) stays: the registry API cannot delete one tag, and the next
release of that line moves it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gefreg import __version__
from gefreg.errors import BadInput, EnvironmentFailure
from gefreg.release import ledger, ledger_checks, versions
from gefreg.release.verify import floating_targets


@dataclass(frozen=True)
class Yanked:
    entry: str
    version: str
    reason: str
    status: str  # "yanked" | "already yanked"
    yanked: str
    moved: dict[str, str] = field(default_factory=dict)  # floating tag → version it now names
    stuck: tuple[str, ...] = ()  # floating tags still on the yanked release

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "version": self.version,
            "reason": self.reason,
            "status": self.status,
            "yanked": self.yanked,
            "floating": self.moved,
            "stuck": list(self.stuck),
        }


def yank(
    name: str,
    entry_dir: Path,
    version: str,
    reason: str,
    *,
    client: Any,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Yanked:
    """Yank ``version`` of the entry in ``entry_dir``; a second yank is a no-op."""
    problem = ledger_checks.reason_problem(reason)
    if problem:
        raise BadInput(f"--reason: {problem}", "say in one line why it must not be used")
    with ledger.locked(entry_dir):
        lines = ledger.read_lines(entry_dir)
        release = ledger.find(lines.releases, version)
        if release is None:
            raise BadInput(
                f"{name} {version} was never published: nothing to yank",
                lines.published_text(),
            )
        earlier = lines.yanks.get(version)
        if earlier is not None:
            return Yanked(name, version, earlier.reason, "already yanked", earlier.yanked)
        moved, stuck = floating_moves(lines, version)
        client.ping()  # a registry that is down fails now, before the ledger changes
        stamp = now().strftime("%Y-%m-%dT%H:%M:%SZ")
        ledger.append(entry_dir, ledger.Yank(version, reason, stamp, __version__, moved))
        # Still under the entry's lock: a publish waiting for it moves the tags forward
        # after us, never before (it would be undone by this older view of the ledger).
        _move_tags(client, release, lines, moved)
    return Yanked(name, version, reason, "yanked", stamp, moved, stuck)


def floating_moves(
    lines: ledger.LedgerLines, version: str
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Where yanking ``version`` after ``lines`` moves the floating tags that point at it
    (tag → version), and the tags no other release can take. Review replays this to check
    the ``floating`` of a yank line that reaches it."""
    pointing = sorted(tag for tag, v in floating_targets(lines).items() if v == version)
    # Where those tags go: as if the releases still in use had been published alone.
    usable = [r.version for r in lines.usable() if r.version != version]
    candidates = versions.floating_targets(usable, versions.FLOATING)
    moved = {tag: candidates[tag] for tag in pointing if tag in candidates}
    return moved, tuple(tag for tag in pointing if tag not in moved)


def _move_tags(
    client: Any, yanked: ledger.Release, lines: ledger.LedgerLines, moved: dict[str, str]
) -> None:
    repo = yanked.repository.split("/", 1)[1]
    by_version = {r.version: r for r in lines.releases}
    for tag, version in sorted(moved.items()):
        target = by_version[version]
        manifest = client.get_manifest(repo, target.digest)
        if manifest is None:
            raise EnvironmentFailure(
                f"{yanked.version} is yanked in the ledger, but {repo}@{target.digest} "
                f"({version}), where the tag {tag} should go back to, is gone from the registry",
                f"restore it, then `gefreg verify --repair {yanked.repository.rsplit('/', 1)[-1]}`",
            )
        client.put_manifest(repo, tag, manifest.body, manifest.media_type)
