"""gefreg yank: a ledger line, never a removal; floating tags go back; verify, review and publish
know about it. Against the in-memory registry of test_verify."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gefreg.errors import BadInput, EnvironmentFailure, InvalidRecord
from gefreg.release import ledger
from gefreg.release.verify import LedgerFolder, floating_targets, verify
from gefreg.release.yank import yank
from tests.fakes import FakeRegistry
from tests.fakes import manifest_body as manifest
from tests.unit.test_verify import release

REGISTRY = "127.0.0.1:5000"

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def published(tmp_path: Path, reg: FakeRegistry, *versions: str) -> Path:
    """A ledger of releases published in this order, each moving its floating tags as publish
    does, with the registry holding exactly that."""
    from gefreg.release.versions import FLOATING, floating_tags

    folder = tmp_path / "demo"
    folder.mkdir(exist_ok=True)
    done: list[str] = []
    for version in versions:
        moved = floating_tags(version, done, FLOATING)
        digest = reg.add(manifest(version), version, *moved)
        ledger.append(folder, release(version, digest, "sha256:" + "9" * 64, floating=moved))
        done.append(version)
    return folder


def do_yank(folder: Path, reg: FakeRegistry, version: str, reason: str = "wrong units"):  # type: ignore[no-untyped-def]
    return yank("demo", folder, version, reason, client=reg, now=lambda: NOW)


def test_yank_appends_a_line_and_moves_floating_tags_back(tmp_path: Path) -> None:
    reg = FakeRegistry()
    folder = published(tmp_path, reg, "1.1.0", "1.2.0", "1.2.1")
    before = (folder / ledger.LEDGER_FILE).read_text()
    result = do_yank(folder, reg, "1.2.1")
    after = (folder / ledger.LEDGER_FILE).read_text()
    assert after.startswith(before) and ledger.only_appended(before, after)
    line = json.loads(after.splitlines()[-1])
    assert line == {
        "schema": "gefreg.yank/1",
        "version": "1.2.1",
        "reason": "wrong units",
        "yanked": "2026-03-01T12:00:00Z",
        "gefreg_version": line["gefreg_version"],
        "floating": {"1": "1.2.0", "1.2": "1.2.0", "latest": "1.2.0"},
    }
    assert result.moved == line["floating"] and result.stuck == ()
    v120 = reg.tags["1.2.0"]
    assert reg.tags["1"] == reg.tags["1.2"] == reg.tags["latest"] == v120
    assert reg.tags["1.2.1"] != v120  # the version itself stays, by digest and by tag
    assert verify([ledger_owner(folder)], reg, registry=REGISTRY).ok
    again = do_yank(folder, reg, "1.2.1", "another reason")
    assert again.status == "already yanked" and again.reason == "wrong units"
    assert (folder / ledger.LEDGER_FILE).read_text() == after


def ledger_owner(folder: Path) -> LedgerFolder:
    return LedgerFolder("demo", folder)


def test_a_tag_no_other_release_can_take_stays(tmp_path: Path) -> None:
    reg = FakeRegistry()
    folder = published(tmp_path, reg, "1.0.0", "1.1.0")
    result = do_yank(folder, reg, "1.1.0")
    assert result.moved == {"1": "1.0.0", "latest": "1.0.0"} and result.stuck == ("1.1",)
    assert reg.tags["1.1"] == reg.tags["1.1.0"]
    assert verify([ledger_owner(folder)], reg, registry=REGISTRY).ok


def test_verify_puts_a_floating_tag_back_when_it_drifts_onto_a_yanked_release(
    tmp_path: Path,
) -> None:
    reg = FakeRegistry()
    folder = published(tmp_path, reg, "1.0.0", "1.1.0")
    do_yank(folder, reg, "1.1.0")
    reg.tags["latest"] = reg.tags["1.1.0"]  # someone pushes it back by hand
    [issue] = verify([ledger_owner(folder)], reg, registry=REGISTRY, deep=False).issues
    assert issue.kind == "floating" and "(the yanked 1.1.0)" in issue.message
    assert verify([ledger_owner(folder)], reg, registry=REGISTRY, repair=True).ok is True
    assert reg.tags["latest"] == reg.tags["1.0.0"]


def test_floating_targets_of_an_old_ledger_skip_yanked_releases(tmp_path: Path) -> None:
    lines = ledger.LedgerLines(
        (
            release("1.0.0", "sha256:" + "1" * 64, "sha256:" + "9" * 64),  # floating unknown
            release("1.1.0", "sha256:" + "2" * 64, "sha256:" + "9" * 64),
            ledger.Yank("1.1.0", "broken", "2026-01-01T00:00:00Z"),
        )
    )
    assert floating_targets(lines) == {
        "1": "1.0.0",
        "1.0": "1.0.0",
        "1.1": "1.1.0",
        "latest": "1.0.0",
    }


def test_unknown_versions_and_bad_reasons_are_refused(tmp_path: Path) -> None:
    reg = FakeRegistry()
    folder = published(tmp_path, reg, "1.0.0", "1.1.0")
    with pytest.raises(BadInput, match="never published") as exc:
        do_yank(folder, reg, "1.0.9")
    assert exc.value.hint == "published: 1.0.0, 1.1.0"
    for reason in ("", "  ", "two\nlines", "x" * 501):
        with pytest.raises(BadInput, match="--reason"):
            do_yank(folder, reg, "1.0.0", reason)
    assert ledger.read_lines(folder).yanks == {}
    assert reg.calls["ping"] == 0  # refused from the ledger alone, registry up or down


def test_a_registry_that_is_down_fails_the_yank_before_the_ledger_changes(
    tmp_path: Path,
) -> None:
    class Down(FakeRegistry):
        def ping(self) -> None:
            raise EnvironmentFailure("http://127.0.0.1:1 did not answer GET /v2/")

    reg = Down()
    folder = published(tmp_path, reg, "1.0.0", "1.1.0")
    before = (folder / "releases.jsonl").read_text()
    with pytest.raises(EnvironmentFailure):
        do_yank(folder, reg, "1.1.0")
    assert (folder / "releases.jsonl").read_text() == before
    with pytest.raises(BadInput, match="never published"):  # said without the registry
        do_yank(folder, reg, "1.0.9")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"version": "9.9.9", "reason": "r", "yanked": "t"}, "not released before it"),
        ({"version": "1.0.0", "reason": " ", "yanked": "t"}, "a yank needs a reason"),
        ({"version": "1.0.0", "reason": "r", "yanked": 7}, "needs version, reason and yanked"),
        (
            {"version": "1.0.0", "reason": "r", "yanked": "t", "floating": {"1": "1.0.0"}},
            "moves 1 to 1.0.0, which is not a usable release",
        ),
        # verify --repair puts tags where the ledger says: a yank must not name a version tag
        # (or any tag that is not a floating tag of both releases).
        (
            {"version": "1.1.0", "reason": "r", "yanked": "t", "floating": {"1.1.0": "1.0.0"}},
            "'1.1.0' is not a floating tag of both 1.1.0 and 1.0.0",
        ),
        (
            {"version": "1.1.0", "reason": "r", "yanked": "t", "floating": {"1.1": "1.0.0"}},
            "'1.1' is not a floating tag of both 1.1.0 and 1.0.0",
        ),
        (
            {
                "version": "1.1.0",
                "reason": "r",
                "yanked": "t",
                "floating": {"latest": "1.2.0-rc.1"},
            },
            "'latest' is not a floating tag of both 1.1.0 and 1.2.0-rc.1",
        ),
    ],
)
def test_hostile_yank_lines_are_refused(
    tmp_path: Path, line: dict[str, object], message: str
) -> None:
    text = "".join(
        release(v, "sha256:" + "1" * 64, "sha256:" + "9" * 64).to_line()
        for v in ("1.0.0", "1.1.0", "1.2.0-rc.1")
    )
    text += json.dumps({"schema": ledger.YANK_SCHEMA, **line}) + "\n"
    with pytest.raises(InvalidRecord, match=re.escape(message)) as exc:
        ledger.parse_lines(text, tmp_path / "releases.jsonl")
    assert f"{tmp_path / 'releases.jsonl'}:4" in str(exc.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"version": "latest"}, "version: not a SemVer version"),
        ({"version": 1}, "needs version, digest, repository and published as text"),
        ({"floating": "latest"}, "floating must be a list of tags"),
        ({"floating": ["2.0.0"]}, "floating: 2.0.0 cannot hold the tag '2.0.0'"),
        ({"floating": ["1"]}, "floating: 2.0.0 cannot hold the tag '1'"),
        ({"version": "2.1.0-rc.1", "floating": ["latest"]}, "cannot hold the tag 'latest'"),
    ],
)
def test_hostile_release_lines_are_refused(
    tmp_path: Path, line: dict[str, object], message: str
) -> None:
    """A release line's floating tags are where verify --repair moves tags: only the tags its
    own version may hold. A version that is not SemVer is an error, not a crash later."""
    first = release("1.0.0", "sha256:" + "1" * 64, "sha256:" + "9" * 64)
    data = json.loads(release("2.0.0", "sha256:" + "2" * 64, "sha256:" + "8" * 64).to_line())
    text = first.to_line() + json.dumps({**data, **line}) + "\n"
    with pytest.raises(InvalidRecord, match=re.escape(message)) as exc:
        ledger.parse_lines(text, tmp_path / "releases.jsonl")
    assert f"{tmp_path / 'releases.jsonl'}:2" in str(exc.value)


def test_a_version_is_yanked_only_once(tmp_path: Path) -> None:
    text = release("1.0.0", "sha256:" + "1" * 64, "sha256:" + "9" * 64).to_line()
    text += 2 * ledger.Yank("1.0.0", "r", "t").to_line()
    with pytest.raises(InvalidRecord, match="yanked twice"):
        ledger.parse_lines(text, tmp_path / "releases.jsonl")
