"""SOURCE_DATE_EPOCH comes from the record: its field, else git history, else 0; never the clock."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gefreg.catalog import source_date
from gefreg.catalog.entries import load_entry
from gefreg.errors import BadInput
from tests.helpers import demo_entry, git, git_repository, make_catalog

JAN = "2025-01-01T00:00:00Z"  # 1735689600
FEB = "2025-02-01T00:00:00Z"  # 1738368000
MAR = "2025-03-01T00:00:00Z"  # 1740787200

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def record(catalog: Path) -> Path:
    return catalog / "demo-service" / "service.yaml"


def date_of(catalog: Path) -> source_date.SourceDate:
    return source_date.of_entry(load_entry(catalog / "demo-service", {"debian-bookworm"}))


def test_outside_git_the_date_is_0(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "c", demo_entry())
    assert date_of(catalog) == source_date.SourceDate(0, "default")
    assert date_of(catalog).created == "1970-01-01T00:00:00Z"


def test_the_field_wins_over_git(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "c", demo_entry(source_date_epoch=1700000000))
    git_repository(catalog, date=JAN)
    assert date_of(catalog) == source_date.SourceDate(1700000000, "record")


def test_git_gives_the_commit_time_of_the_records_version(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "c", demo_entry())
    first = git_repository(catalog, date=JAN)
    assert date_of(catalog) == source_date.SourceDate(1735689600, "git", first)

    # editing what is not the version (tests, resources, a shipped file) keeps the date
    text = record(catalog).read_text()
    record(catalog).write_text(text + 'resources: {"memory": "64m"}\n')
    (catalog / "demo-service" / "run.sh").write_text("echo changed\n")
    git(catalog, "commit", "-qam", "resources", date=FEB)
    assert date_of(catalog).epoch == 1735689600

    # uncommitted: still the committed version's date; committing the bump moves it
    record(catalog).write_text(record(catalog).read_text().replace('"1.0.0"', '"1.1.0"'))
    assert date_of(catalog).epoch == 1735689600
    bump = git(catalog, "commit", "-qam", "bump", date=MAR) or git(catalog, "rev-parse", "HEAD")
    assert date_of(catalog) == source_date.SourceDate(1740787200, "git", bump)

    # a rebuild asks for the date as of an older commit
    relative = "demo-service/service.yaml"
    assert source_date.from_git(catalog, relative, first).epoch == 1735689600


def test_a_record_never_committed_gets_the_default(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "c", {})
    git_repository(catalog, date=JAN)
    make_catalog(tmp_path / "c", demo_entry())  # added after the commit, untracked
    assert date_of(catalog) == source_date.SourceDate(0, "default")


def test_a_commit_dated_beyond_year_9999_is_bad_input_not_a_traceback(tmp_path: Path) -> None:
    """git records any date a committer gives; the image's time could not be written."""
    catalog = make_catalog(tmp_path / "c", demo_entry())
    git_repository(catalog, date="@99999999999999 +0000")
    with pytest.raises(BadInput, match="beyond 9999-12-31"):
        date_of(catalog)
