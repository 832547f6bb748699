"""gefreg review on a real git repository: what CI checks on a catalog pull request."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gefreg.errors import BadInput
from gefreg.release.ledger import Release
from gefreg.release.review import review
from gefreg.settings import Settings
from tests.helpers import demo_entry, make_catalog, service_yaml


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    make_catalog(root / "catalog", {**demo_entry(name="one"), **demo_entry(name="two")})
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qam", "x", "--allow-empty")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "catalog")
    return root


def settings_for(repo: Path) -> Settings:
    return Settings(
        catalog=repo / "catalog", registry="127.0.0.1:5000", state_dir=repo.parent / "state"
    )


def release_line(
    version: str, fingerprint: str = "sha256:" + "1" * 64, repository: str = "r/one"
) -> str:
    return Release(
        version=version,
        digest="sha256:" + "2" * 64,
        repository=repository,
        fingerprint=fingerprint,
        base_digest=None,
        image_id="sha256:" + "3" * 64,
        published="2026-01-01T00:00:00Z",
    ).to_line()


def test_nothing_changed(repo: Path) -> None:
    report = review(settings_for(repo), "HEAD")
    assert report.ok and report.entries == () and report.to_build == []


def test_file_change_without_bump_is_refused(repo: Path) -> None:
    (repo / "catalog" / "one" / "run.sh").write_text("echo changed\n")
    report = review(settings_for(repo), "HEAD")
    [entry] = report.entries
    assert not report.ok and entry.name == "one" and entry.image_changed
    assert "bump it" in entry.problems[0]


def test_file_change_with_bump_passes_and_is_listed_for_build(repo: Path) -> None:
    (repo / "catalog" / "one" / "run.sh").write_text("echo changed\n")
    (repo / "catalog" / "one" / "service.yaml").write_text(
        service_yaml(name="one", version="1.1.0")
    )
    report = review(settings_for(repo), "HEAD")
    assert report.ok and report.to_build == ["one"]


def publish_line(repo: Path, name: str, *versions: str) -> None:
    ledger_file = repo / "catalog" / name / "releases.jsonl"
    ledger_file.write_text("".join(release_line(v, repository=f"r/{name}") for v in versions))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "publish")


def test_a_folder_without_records_is_no_catalog_to_pass(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "catalog" / "bases").mkdir(parents=True)
    (root / "catalog" / "README.md").write_text("not a catalog yet\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "x")
    with pytest.raises(BadInput, match=r"no service records under .*catalog"):
        review(settings_for(root), "HEAD")


def test_review_applies_the_version_rule_of_publish(repo: Path) -> None:
    from gefreg.release.versions import check_new_version

    publish_line(repo, "two", "0.1.0", "1.0.0")
    record = repo / "catalog" / "two" / "service.yaml"
    record.write_text(service_yaml(name="two", version="0.0.9"))
    [entry] = review(settings_for(repo), "HEAD").entries
    broken = check_new_version("0.0.9", ["0.1.0", "1.0.0"])
    assert broken is not None
    assert entry.problems == (f"two {broken.message} (fix: {broken.hint})",)
    # A backport continues a published line: fine, even though 1.0.0 is higher.
    record.write_text(service_yaml(name="two", version="0.1.1"))
    assert review(settings_for(repo), "HEAD").ok
    # A record version going down where nothing was published is no problem.
    (repo / "catalog" / "one" / "service.yaml").write_text(
        service_yaml(name="one", version="0.9.0")
    )
    report = review(settings_for(repo), "HEAD")
    assert report.ok and {e.name for e in report.entries} == {"one", "two"}


def test_change_outside_the_image_needs_no_bump(repo: Path) -> None:
    (repo / "catalog" / "two" / "service.yaml").write_text(
        service_yaml(name="two", resources={"memory": "2g"})
    )
    report = review(settings_for(repo), "HEAD")
    assert report.ok and report.to_build == []
    assert report.entries[0].status == "unchanged-image"


def test_ledger_may_only_grow(repo: Path) -> None:
    ledger_file = repo / "catalog" / "one" / "releases.jsonl"
    ledger_file.write_text(release_line("0.9.0"))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "publish")
    ledger_file.write_text(release_line("0.9.0") + release_line("0.9.1"))
    assert review(settings_for(repo), "HEAD").ok
    ledger_file.write_text(release_line("0.9.5"))
    [entry] = review(settings_for(repo), "HEAD").entries
    assert any("edited or shortened" in p for p in entry.problems)


def test_invalid_record_and_new_entry(repo: Path) -> None:
    make_catalog(
        repo / "catalog", {**demo_entry(name="three"), **demo_entry(name="two", license="Nope")}
    )
    report = review(settings_for(repo), "HEAD")
    by_name = {e.name: e for e in report.entries}
    assert by_name["three"].status == "added" and not by_name["three"].problems
    assert "license" in by_name["two"].problems[0]
    assert json.loads(json.dumps(report.to_json()))["ok"] is False


def test_deleting_a_published_entry_is_refused(repo: Path) -> None:
    (repo / "catalog" / "one" / "releases.jsonl").write_text(release_line("1.0.0"))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "publish")
    git(repo, "rm", "-rq", "catalog/one")
    [entry] = review(settings_for(repo), "HEAD").entries
    assert entry.status == "deleted" and "cannot be deleted" in entry.problems[0]


def test_unknown_base_revision_is_bad_input(repo: Path) -> None:
    from gefreg.errors import BadInput

    with pytest.raises(BadInput) as info:
        review(settings_for(repo), "no-such-rev")
    assert "no-such-rev" in info.value.message and "is --base a revision" in str(info.value.hint)


def test_a_catalog_at_the_repository_root_is_reviewed(tmp_path: Path) -> None:
    root = tmp_path / "catalog-repo"
    make_catalog(root, demo_entry(name="one"))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "catalog")
    (root / "one" / "run.sh").write_text("echo changed\n")
    (root / "README.md").write_text("not an entry\n")
    settings = Settings(catalog=root, registry="127.0.0.1:5000", state_dir=tmp_path / "s")
    [entry] = review(settings, "HEAD").entries
    assert entry.name == "one" and "files/run.sh" in entry.problems[0]


def test_an_appended_release_must_name_the_entrys_repository(repo: Path) -> None:
    ledger_file = repo / "catalog" / "one" / "releases.jsonl"
    ledger_file.write_text(release_line("0.9.0"))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "publish")
    evil = Release(
        version="1.0.0",
        digest="sha256:" + "9" * 64,
        repository="evil.example.com/one",
        fingerprint="sha256:" + "1" * 64,
        base_digest=None,
        image_id="sha256:" + "8" * 64,
        published="2026-01-01T00:00:00Z",
    ).to_line()
    ledger_file.write_text(release_line("0.9.0") + evil)
    [entry] = review(settings_for(repo), "HEAD").entries
    assert any("names evil.example.com/one, not r/one" in p for p in entry.problems)


def test_an_unpackable_base_revision_is_not_a_crash(repo: Path) -> None:
    import os

    os.symlink("/etc/passwd", repo / "catalog" / "one" / "abs-link")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "link")
    (repo / "catalog" / "one" / "run.sh").write_text("echo changed\n")
    [entry] = review(settings_for(repo), "HEAD").entries
    assert entry.name == "one"  # judged on its own: no traceback, no exit 3


def test_trust_yaml_changes_are_reviewed(repo: Path, tmp_path: Path) -> None:
    from datetime import date

    from gefreg.release import keys, trust_policy

    catalog = repo / "catalog"
    pubs = []
    for name in ("a", "b"):
        keys.generate(tmp_path / name, None)
        pubs.append(keys.load_public_key(tmp_path / name / keys.PUBLIC_FILE))
    (catalog / "trust.yaml").write_text("require-signatures: true\nkeys: []\n")
    trust_policy.add_key(catalog, pubs[0], "old")
    added = review(settings_for(repo), "HEAD")
    assert added.ok and added.trust is not None
    assert any("key 'old' added" in note for note in added.trust.notes)

    trust_policy.revoke(catalog, "old", "leaked", date(2026, 11, 30))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "revoke")
    path = catalog / "trust.yaml"
    revoked_text = path.read_text()

    path.write_text(revoked_text.replace("    revoked: {reason: leaked, date: 2026-11-30}\n", ""))
    unrevoked = review(settings_for(repo), "HEAD")
    assert not unrevoked.ok and unrevoked.trust is not None
    assert (
        "key 'old' was revoked (leaked); a revoked key stays listed and revoked"
        in (unrevoked.trust.problems[0])
    )

    path.write_text(revoked_text.replace("require-signatures: true", "require-signatures: maybe"))
    invalid = review(settings_for(repo), "HEAD")
    assert not invalid.ok and "trust.yaml:1:" in invalid.trust.problems[0]  # type: ignore[union-attr]

    path.write_text(revoked_text.replace("require-signatures: true", "require-signatures: false"))
    weakened = review(settings_for(repo), "HEAD")
    assert weakened.ok and "require-signatures turned off" in weakened.trust.notes[0]  # type: ignore[union-attr]


def test_review_shows_the_yanks_a_change_adds_and_refuses_bad_ones(repo: Path) -> None:
    from gefreg.release.ledger import Yank

    FLOAT = ("0", "0.9", "latest")  # where `gefreg yank` moves them: back to 0.9.0
    publish_line(repo, "one", "0.9.0", "0.9.1")  # the record (1.0.0) is not published yet
    ledger_file = repo / "catalog" / "one" / "releases.jsonl"
    published = ledger_file.read_text()
    ledger_file.write_text(
        published
        + Yank(
            "0.9.1", "wrong units", "2026-01-01T00:00:00Z", floating=dict.fromkeys(FLOAT, "0.9.0")
        ).to_line()
    )
    report = review(settings_for(repo), "HEAD")
    [entry] = report.entries
    assert report.ok and entry.yanked == (("0.9.1", "wrong units"),)
    assert entry.status == "unchanged-image" and report.to_build == []
    ledger_file.write_text(published + Yank("2.0.0", "never released", "t").to_line())
    [entry] = review(settings_for(repo), "HEAD").entries
    assert any("yanks 2.0.0, not released before it" in p for p in entry.problems)


def test_a_yanked_version_is_never_reused_or_undercut(repo: Path) -> None:
    from gefreg.release.ledger import Yank

    publish_line(repo, "two", "1.0.0")
    ledger_file = repo / "catalog" / "two" / "releases.jsonl"
    ledger_file.write_text(ledger_file.read_text() + Yank("1.0.0", "broken", "t").to_line())
    (repo / "catalog" / "two" / "service.yaml").write_text(
        service_yaml(name="two", version="0.9.0")
    )
    [entry] = review(settings_for(repo), "HEAD").entries
    assert any("would open the new line 0.9 below 1.0.0" in p for p in entry.problems)


def test_hand_written_floating_tags_are_refused(repo: Path) -> None:
    """verify --repair puts floating tags where the ledger says: a yank line that rolls
    `latest` back past the newest usable release, or a release line claiming tags publishing
    it would not move, must not pass review."""
    import dataclasses

    from gefreg.release.ledger import Yank
    from gefreg.release.versions import FLOATING, floating_tags

    ledger_file = repo / "catalog" / "two" / "releases.jsonl"
    lines: list[str] = []
    done: list[str] = []
    for version in ("0.8.0", "0.9.0", "0.9.1"):  # the record (1.0.0) is not published yet
        line = json.loads(release_line(version, repository="r/two"))
        lines.append(json.dumps({**line, "floating": floating_tags(version, done, FLOATING)}))
        done.append(version)
    ledger_file.write_text("\n".join(lines) + "\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "publish")
    published = ledger_file.read_text()

    honest = Yank(
        "0.9.1",
        "broken",
        "2026-01-01T00:00:00Z",
        floating={"0": "0.9.0", "0.9": "0.9.0", "latest": "0.9.0"},
    )
    ledger_file.write_text(published + honest.to_line())
    report = review(settings_for(repo), "HEAD")
    assert report.ok, report.entries

    rolled_back = dataclasses.replace(honest, floating={"0": "0.8.0", "latest": "0.8.0"})
    ledger_file.write_text(published + rolled_back.to_line())
    [entry] = review(settings_for(repo), "HEAD").entries
    assert f"{ledger_file}:4: floating: the yank of 0.9.1 says it moved" in entry.problems[0]
    assert "yanking it moves {'0': '0.9.0', '0.9': '0.9.0', 'latest': '0.9.0'}" in entry.problems[0]

    claims = json.loads(release_line("0.8.1", repository="r/two"))
    claims["floating"] = ["0", "latest"]  # 0.9.1 holds them: publishing 0.8.1 moves only 0.8
    ledger_file.write_text(published + json.dumps(claims) + "\n")
    [entry] = review(settings_for(repo), "HEAD").entries
    assert f"{ledger_file}:4: floating: 0.8.1 says it moved 0, latest" in entry.problems[0]


def test_new_releases_can_be_required_to_have_rebuilt_identically(repo: Path) -> None:
    from gefreg.release.ledger import RebuildNote

    ledger_file = repo / "catalog" / "one" / "releases.jsonl"
    ledger_file.write_text(release_line("0.9.0"))  # older releases need no note
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "publish")
    with ledger_file.open("a") as fh:
        fh.write(release_line("1.0.0"))

    def rebuilt_problems(**options: bool) -> list[str]:
        [entry] = review(settings_for(repo), "HEAD", **options).entries
        return [p for p in entry.problems if "rebuilt" in p]

    assert rebuilt_problems() == []  # not required unless asked
    assert rebuilt_problems(require_rebuilt=True) == [
        "one 1.0.0 has no 'rebuilt: identical' note: run `gefreg rebuild one@1.0.0 --record` "
        "in a clean clone and commit the ledger"
    ]
    with ledger_file.open("a") as fh:
        fh.write(RebuildNote("1.0.0", "sha256:" + "2" * 64, "identical", "d", "0").to_line())
    assert rebuilt_problems(require_rebuilt=True) == []
