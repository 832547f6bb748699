"""Version rules for publishing: SemVer 2.0 order, release lines, floating tags.

THE version rule (:func:`check_new_version`, used by ``publish`` and ``review`` alike): a
release may continue any major.minor line that already has a release, if it is higher than
every release of that line (a backport such as 1.2.5 after 1.3.0 is fine); it may open a new
major.minor line only above the highest release published so far (0.0.9 after 0.1.0 is not).
Yanked releases count: a version never disappears, so it is never reused or undercut.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import semver

from gefreg.errors import BadInput

FLOATING = ("major", "minor", "latest")
_FLOATING_RE = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?")  # 1 or 1.2


def parse(version: str) -> semver.Version:
    return semver.Version.parse(version)


def is_version(text: str) -> bool:
    return semver.Version.is_valid(text)


def understood(text: str) -> str:
    """A version as a user typed it: ``v1.2.3`` (the form of many git tags) is 1.2.3, since
    gefreg versions never carry the ``v``; anything else is returned unchanged."""
    if text[:1] in ("v", "V") and is_version(text[1:]):
        return text[1:]
    return text


def is_floating(text: str) -> bool:
    """`latest`, `1`, `1.2`: tags gefreg moves in the registry, never a version to run."""
    return text == "latest" or _FLOATING_RE.fullmatch(text) is not None


def not_a_version(name: str, typed: str, published: str) -> BadInput:
    """The error for NAME@latest or NAME@1.2, where a run needs an exact version."""
    return BadInput(
        f"{name}@{typed} is a floating tag, not a version: a run is pinned to an exact "
        f"version{published}",
        f"name one: {name}@MAJOR.MINOR.PATCH (`gefreg show {name}` lists them); "
        f"`gefreg run {name}` runs its newest release that is not yanked",
    )


def is_prerelease(version: str) -> bool:
    return parse(version).prerelease is not None


def line_of(version: str) -> tuple[int, int]:
    v = parse(version)
    return v.major, v.minor


def highest(versions: Iterable[str]) -> str | None:
    ordered = sorted(versions, key=parse)
    return ordered[-1] if ordered else None


@dataclass(frozen=True)
class RuleBroken:
    """Why a version may not be published, and what would be allowed instead."""

    message: str
    hint: str


def _line_text(line: tuple[int, int]) -> str:
    return f"{line[0]}.{line[1]}"


def check_new_version(new: str, published: Iterable[str]) -> RuleBroken | None:
    """The one version rule (see the module docstring); None when ``new`` may be published.

    ``published`` are the versions in the ledger (yanked ones included); ``new`` itself among
    them is not a new version and is left to the immutability checks."""
    others = list(published)
    if not others or new in others:
        return None
    line = line_of(new)
    top = highest(others)
    assert top is not None
    same_line = [p for p in others if line_of(p) == line]
    if same_line:
        line_top = highest(same_line)
        assert line_top is not None
        if parse(new) > parse(line_top):
            return None
        return RuleBroken(
            f"{new} is not higher than {line_top}, the highest release of the "
            f"{_line_text(line)} line",
            f"continue the line above it ({parse(line_top).bump_patch()}) or open a new "
            f"line above {top} ({parse(top).bump_minor()})",
        )
    if line > line_of(top):
        return None
    return RuleBroken(
        f"{new} would open the new line {_line_text(line)} below {top}, the highest release: "
        "a new major.minor line may only be opened above every published release",
        f"open a line above {top} ({parse(top).bump_minor()}) or continue a published line "
        f"(e.g. {parse(top).bump_patch()})",
    )


def tags_of(version: str) -> set[str]:
    """Every floating tag ``version`` could ever hold (``1``, ``1.2``, ``latest``): none for a
    pre-release. A ledger line naming any other tag would point an unrelated tag (a version
    tag, a signature tag) at this release."""
    if not is_version(version) or is_prerelease(version):
        return set()
    v = parse(version)
    return {str(v.major), f"{v.major}.{v.minor}", "latest"}


def floating_tags(version: str, published: Iterable[str], wanted: Iterable[str]) -> list[str]:
    """Floating tags (``1``, ``1.2``, ``latest``) that ``version`` may take: only forward, and
    never for a pre-release. ``published`` are the other releases already in the ledger."""
    if is_prerelease(version):
        return []
    v = parse(version)
    final = [p for p in published if not is_prerelease(p)]
    tags = []
    for kind in wanted:
        if kind == "major":
            peers, tag = [p for p in final if parse(p).major == v.major], str(v.major)
        elif kind == "minor":
            peers, tag = (
                [p for p in final if line_of(p) == (v.major, v.minor)],
                f"{v.major}.{v.minor}",
            )
        elif kind == "latest":
            peers, tag = final, "latest"
        else:
            raise ValueError(kind)
        top = highest(peers)
        if top is None or parse(top) < v:
            tags.append(tag)
    return tags


def floating_targets(published: Iterable[str], wanted: Iterable[str]) -> dict[str, str]:
    """Where each floating tag should point given the ledger (for verify and repair): as if
    every final release had been published in version order, each moving its tags forward.
    That is, each tag goes to the highest release it covers (of equal ones, the later).

    One pass over the releases, each parsed once: replaying :func:`floating_tags` for every
    release compared each with all the others (a 1,000-release ledger took 8 s)."""
    kinds = tuple(wanted)
    for kind in kinds:
        if kind not in FLOATING:
            raise ValueError(kind)
    parsed = [(parse(p), p) for p in published]
    final = sorted((item for item in parsed if item[0].prerelease is None), key=lambda i: i[0])
    targets: dict[str, str] = {}
    for v, version in final:  # ascending, so the last release to claim a tag is its highest
        for kind in kinds:
            tag = {"major": str(v.major), "minor": f"{v.major}.{v.minor}", "latest": "latest"}
            targets[tag[kind]] = version
    return targets
