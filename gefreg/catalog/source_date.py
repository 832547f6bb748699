"""SOURCE_DATE_EPOCH of a service image: taken from the record, never from the clock.

In order: the record's ``source_date_epoch`` field; else, when the catalog is a git
repository, the commit time of the record's current version (the newest commit that changed
its ``version:`` line), so editing tests or resources does not move it; else 0
(1970-01-01T00:00:00Z), so a catalog outside git still builds the same image every time.
The epoch becomes the image's ``created`` time and label, and the time of every file in the
layers the service adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gefreg.catalog import git_source
from gefreg.catalog.service_record import MAX_EPOCH
from gefreg.errors import BadInput
from gefreg.model import Entry

DEFAULT = 0


@dataclass(frozen=True)
class SourceDate:
    epoch: int
    origin: str  # "record" | "git" | "default"
    commit: str | None = None  # the commit it came from (origin "git")

    @property
    def created(self) -> str:
        return datetime.fromtimestamp(self.epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def to_json(self) -> dict[str, object]:
        return {"epoch": self.epoch, "origin": self.origin, "commit": self.commit}


def of_entry(entry: Entry) -> SourceDate:
    """The entry's source date as its working tree says (git history up to HEAD)."""
    if entry.spec.source_date_epoch is not None:
        return SourceDate(entry.spec.source_date_epoch, "record")
    root = git_source.repository_root(entry.directory)
    if root is None:
        return SourceDate(DEFAULT, "default")
    return from_git(root, git_source.relative(root, entry.record_path), "HEAD")


def from_git(root: Path, record: str, rev: str) -> SourceDate:
    """The source date of a record without the field, as of revision ``rev``."""
    commit = git_source.version_commit(root, record, rev)
    if commit is None:  # never committed: the same default as outside git
        return SourceDate(DEFAULT, "default")
    if not DEFAULT <= commit.time <= MAX_EPOCH:  # git takes any date a committer gives
        raise BadInput(
            f"{record}: commit {commit.sha[:12]} that set its version is dated {commit.time} "
            "seconds after 1970, beyond 9999-12-31",
            "set source_date_epoch in the record, or commit the version with a real date",
        )
    return SourceDate(commit.time, "git", commit.sha)
