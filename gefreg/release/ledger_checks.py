"""What makes a ledger line valid beyond its JSON shape, line by line in order: a release
(a SemVer version, a sha256 digest, released once, only floating tags its version can hold),
a yank (of a release before it, once, with a reason, moving floating tags only to usable
releases) and a rebuild note (of exactly a release's digest, after it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gefreg.errors import Problem
from gefreg.model import DIGEST_RE

if TYPE_CHECKING:
    from gefreg.release.ledger import RebuildNote, Release, Yank

MAX_REASON = 500


def release_problems(release: Release, path: Path, number: int, seen: set[str]) -> list[Problem]:
    from gefreg.release import versions

    problems = []
    if not versions.is_version(release.version):
        problems.append(Problem(path, number, None, "version", "not a SemVer version"))
    if not DIGEST_RE.match(release.digest):
        problems.append(Problem(path, number, None, "digest", "not a sha256 digest"))
    if release.version in seen:
        problems.append(Problem(path, number, None, "version", f"{release.version} appears twice"))
    allowed = versions.tags_of(release.version)
    for tag in release.floating or ():
        if tag not in allowed:
            problems.append(
                Problem(
                    path,
                    number,
                    None,
                    "floating",
                    f"{release.version} cannot hold the tag {tag!r}",
                    f"a release moves only {', '.join(sorted(allowed)) or 'no tags'}",
                )
            )
    return problems


def yank_problems(
    yank: Yank, path: Path, number: int, published: set[str], yanked: set[str]
) -> list[Problem]:
    problems = []
    if yank.version not in published:
        problems.append(
            Problem(path, number, None, "version", f"yanks {yank.version}, not released before it")
        )
    if yank.version in yanked:
        problems.append(Problem(path, number, None, "version", f"{yank.version} is yanked twice"))
    if reason_problem(yank.reason):
        problems.append(Problem(path, number, None, "reason", str(reason_problem(yank.reason))))
    from gefreg.release import versions

    for tag, version in yank.floating.items():
        if tag not in versions.tags_of(yank.version) & versions.tags_of(version):
            problems.append(
                Problem(
                    path,
                    number,
                    None,
                    f"floating.{tag}",
                    f"{tag!r} is not a floating tag of both {yank.version} and {version}",
                    "a yank moves only the floating tags (1, 1.2, latest) of the yanked release",
                )
            )
        elif version not in published or version in yanked or version == yank.version:
            problems.append(
                Problem(
                    path,
                    number,
                    None,
                    f"floating.{tag}",
                    f"moves {tag} to {version}, which is not a usable release",
                )
            )
    return problems


def reason_problem(reason: str) -> str | None:
    """Why ``reason`` cannot explain a yank (it is shown wherever the version appears)."""
    if not reason.strip():
        return "a yank needs a reason"
    if len(reason) > MAX_REASON:
        return f"the reason is too long ({len(reason)} characters, at most {MAX_REASON})"
    if any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in reason):
        return "the reason must be one line of text (no control characters)"
    return None


def rebuild_problems(
    note: RebuildNote, path: Path, number: int, released: dict[str, str]
) -> list[Problem]:
    """``released``: version -> digest of the releases before this line."""
    if released.get(note.version) == note.digest:
        return []
    message = f"a rebuild of {note.version} {note.digest}, not released before it"
    return [Problem(path, number, None, "digest", message)]
