"""Comparing two sets of port manifests: what was added, removed or changed, and what was
ignored on purpose.

Files are named ``PORT/relative/path``. An ignore pattern is a glob on that name
(``fnmatch``: ``*`` also matches ``/``), e.g. ``result/stamp`` or ``logs/*.log``. Differences in
ignored files are never dropped silently: they are listed separately with the pattern that
matched, and every report says which patterns were in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from gefreg.run.tree_manifest import FileEntry, TreeManifest


@dataclass(frozen=True)
class Difference:
    path: str
    change: str  # "added", "removed" or "changed"
    size_before: int | None
    size_after: int | None
    sha256_before: str | None = None
    sha256_after: str | None = None
    ignored_by: str | None = None

    def describe(self) -> str:
        if self.change == "added":
            text = f"added    {self.path} ({self.size_after} bytes)"
        elif self.change == "removed":
            text = f"removed  {self.path} ({self.size_before} bytes)"
        else:
            sizes = (
                f"{self.size_before} bytes, content differs"
                if self.size_before == self.size_after
                else f"{self.size_before} → {self.size_after} bytes"
            )
            text = f"changed  {self.path} ({sizes})"
        if self.ignored_by:
            text += f"  [ignored: matches {self.ignored_by}]"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change": self.change,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "sha256_before": self.sha256_before,
            "sha256_after": self.sha256_after,
            "ignored_by": self.ignored_by,
        }


@dataclass(frozen=True)
class Comparison:
    differences: tuple[Difference, ...]
    ignored: tuple[Difference, ...]
    patterns: tuple[str, ...]
    same: int

    @property
    def identical(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "same_files": self.same,
            "ignore_patterns": list(self.patterns),
            "differences": [d.to_json() for d in self.differences],
            "ignored_differences": [d.to_json() for d in self.ignored],
        }

    def lines(self) -> list[str]:
        """A readable report: differences first, then what was ignored and why."""
        out = [d.describe() for d in self.differences]
        if self.patterns:
            out.append(f"ignoring (volatile): {', '.join(self.patterns)}")
        out += [d.describe() for d in self.ignored]
        return out


def matching_pattern(path: str, patterns: Iterable[str]) -> str | None:
    for pattern in patterns:
        if fnmatchcase(path, pattern):
            return pattern
    return None


def _named(manifests: Mapping[str, TreeManifest]) -> dict[str, FileEntry]:
    return {f"{port}/{f.path}": f for port, m in manifests.items() for f in m.files}


def compare_outputs(
    expected: Mapping[str, TreeManifest],
    actual: Mapping[str, TreeManifest],
    ignore: Iterable[str],
) -> Comparison:
    """Differences from ``expected`` to ``actual``, with ``ignore`` patterns set aside."""
    patterns = tuple(dict.fromkeys(ignore))
    before, after = _named(expected), _named(actual)
    found: list[Difference] = []
    same = 0
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old is not None and new is not None:
            if (old.sha256, old.size, old.kind) == (new.sha256, new.size, new.kind):
                same += 1
                continue
            change = "changed"
        else:
            change = "removed" if new is None else "added"
        found.append(
            Difference(
                path,
                change,
                old.size if old else None,
                new.size if new else None,
                old.sha256 if old else None,
                new.sha256 if new else None,
                matching_pattern(path, patterns),
            )
        )
    return Comparison(
        differences=tuple(d for d in found if d.ignored_by is None),
        ignored=tuple(d for d in found if d.ignored_by is not None),
        patterns=patterns,
        same=same,
    )
