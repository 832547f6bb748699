"""The release ledger file: appending, parsing, and what counts as only appended."""

from __future__ import annotations

from pathlib import Path

import pytest

from gefreg.errors import InvalidRecord
from gefreg.release import ledger

DIGEST = "sha256:" + "ab" * 32


def release(version: str) -> ledger.Release:
    return ledger.Release(
        version=version,
        digest=DIGEST,
        repository="127.0.0.1:5000/demo",
        fingerprint="sha256:" + "cd" * 32,
        base_digest=None,
        image_id="sha256:" + "ef" * 32,
        published="2025-01-01T00:00:00Z",
    )


def test_append_read_and_review_agree(tmp_path: Path) -> None:
    ledger.append(tmp_path, release("1.0.0"))
    old = ledger.ledger_path(tmp_path).read_text()
    ledger.append(tmp_path, release("1.1.0"))
    new = ledger.ledger_path(tmp_path).read_text()
    assert [r.version for r in ledger.read(tmp_path)] == ["1.0.0", "1.1.0"]
    assert ledger.only_appended(old, new) and ledger.only_appended("", new)


def test_append_after_a_last_line_without_newline_is_only_appended(tmp_path: Path) -> None:
    """A ledger whose last newline was lost (an editor, a merge): append starts a new line,
    and review accepts what append wrote."""
    path = ledger.ledger_path(tmp_path)
    path.write_text(release("1.0.0").to_line().rstrip("\n"))
    old = path.read_text()
    ledger.append(tmp_path, release("1.1.0"))
    new = path.read_text()
    assert new == old + "\n" + release("1.1.0").to_line()
    assert [r.version for r in ledger.read(tmp_path)] == ["1.0.0", "1.1.0"]
    assert ledger.only_appended(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('{"a":1}\n', '{"a":2}\n'),  # edited
        ('{"a":1}\n{"b":1}\n', '{"a":1}\n'),  # shortened
        ('{"a":1}', '{"a":1,"b":2}\n'),  # last line (no newline) changed
        ('{"a":1}', '{"a":1}2\n'),
    ],
)
def test_edits_are_not_appends(old: str, new: str) -> None:
    assert not ledger.only_appended(old, new)


def test_a_version_twice_is_refused(tmp_path: Path) -> None:
    path = ledger.ledger_path(tmp_path)
    path.write_text(release("1.0.0").to_line() * 2)
    with pytest.raises(InvalidRecord, match="appears twice"):
        ledger.read(tmp_path)


def test_runs_only_trust_releases_in_the_configured_registry(tmp_path: Path) -> None:
    from gefreg.errors import CheckFailed
    from gefreg.release.ledger import CatalogLedger, Release, append
    from gefreg.settings import Settings

    folder = tmp_path / "catalog" / "tool"
    folder.mkdir(parents=True)
    for version, repository in (
        ("1.0.0", "127.0.0.1:5000/tool"),
        ("1.1.0", "evil.example.com/tool"),
    ):
        append(
            folder,
            Release(
                version=version,
                digest="sha256:" + "1" * 64,
                repository=repository,
                fingerprint="sha256:" + "2" * 64,
                base_digest=None,
                image_id="sha256:" + "3" * 64,
                published="2026-01-01T00:00:00Z",
            ),
        )
    settings = Settings(
        catalog=tmp_path / "catalog", registry="127.0.0.1:5000", state_dir=tmp_path / "state"
    )
    ledger = CatalogLedger(settings)
    found = ledger.lookup("tool", "1.0.0")
    assert found is not None and found.repository == "127.0.0.1:5000/tool"
    with pytest.raises(CheckFailed, match=r"gefreg trusts 127\.0\.0\.1:5000/tool"):
        ledger.lookup("tool", None)  # the newest is 1.1.0, in another registry


def test_rebuild_notes_follow_their_release_and_are_not_releases(tmp_path: Path) -> None:
    from gefreg.release.ledger import RebuildNote, parse_lines

    line = release("1.0.0").to_line()
    note = RebuildNote("1.0.0", release("1.0.0").digest, "identical", "2025-01-02", "0.1.0")
    lines = parse_lines(line + note.to_line(), tmp_path / "releases.jsonl")
    assert [r.version for r in lines.releases] == ["1.0.0"] and lines.rebuilds == [note]
    assert note.text == "rebuilt: identical on 2025-01-02 by gefreg 0.1.0"
    for bad in (
        note.to_line() + line,  # before its release
        line + RebuildNote("1.0.0", "sha256:" + "0" * 64, "identical", "d", "x").to_line(),
        line + '{"schema": "gefreg.rebuild/1", "version": "1.0.0"}\n',
    ):
        with pytest.raises(InvalidRecord):
            parse_lines(bad, tmp_path / "releases.jsonl")
