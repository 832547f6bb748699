"""gefreg.release.verify against an in-memory registry: what is reported, what repair does, and how
many requests a large ledger costs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gefreg.release import ledger
from gefreg.release.verify import UNKNOWN_TAG_HINT, verify
from gefreg.release.versions import FLOATING, floating_targets
from tests.fakes import FakeRegistry, manifest_body, sha

REGISTRY = "127.0.0.1:5000"

REPO = "demo"


manifest = manifest_body


def release(version: str, digest: str, image_id: str, **extra: Any) -> ledger.Release:
    return ledger.Release(
        version=version,
        digest=digest,
        repository=f"127.0.0.1:5000/{REPO}",
        fingerprint=sha(version.encode()),
        base_digest=None,
        image_id=image_id,
        published="2025-01-01T00:00:00Z",
        **extra,
    )


def entry_with(tmp_path: Path, releases: dict[str, str]) -> Any:
    folder = tmp_path / "demo"
    folder.mkdir(exist_ok=True)
    lines = [
        release(version, digest, sha(b"image " + version.encode())).to_line()
        for version, digest in releases.items()
    ]
    (folder / ledger.LEDGER_FILE).write_text("".join(lines))
    return SimpleNamespace(name="demo", directory=folder)


def test_a_registry_that_matches_the_ledger_passes(tmp_path: Path) -> None:
    reg = FakeRegistry()
    one = reg.add(manifest("1"), "1.0.0")
    two = reg.add(manifest("2"), "1.1.0", "1", "1.1", "latest")
    result = verify([entry_with(tmp_path, {"1.0.0": one, "1.1.0": two})], reg, registry=REGISTRY)
    assert result.ok and result.issues == ()
    assert result.checked_tags == 5  # two versions and the three floating tags present


def test_drift_missing_floating_and_unknown_tags(tmp_path: Path) -> None:
    reg = FakeRegistry()
    one = reg.add(manifest("1"), "1.0.0")
    two = reg.add(manifest("2"), "1.1.0", "1", "1.1", "latest")
    three = reg.add(manifest("3"))  # 1.2.0: its tags are gone
    other = reg.add(manifest("pushed outside"), "2.0.0")
    entry = entry_with(tmp_path, {"1.0.0": one, "1.1.0": two, "1.2.0": three})
    reg.tags["1.0.0"] = other  # moved by a push outside gefreg
    reg.tags["latest"] = other

    result = verify([entry], reg, registry=REGISTRY, deep=False)
    kinds = {(i.kind, i.tag) for i in result.issues}
    assert kinds == {
        ("drift", "1.0.0"),
        ("missing", "1.2.0"),
        ("floating", "latest"),
        ("floating", "1"),  # 1.2.0 is the newest of 1.x: `1` should point at it
        ("unknown-tag", "2.0.0"),
    }
    assert not result.ok
    unknown = next(i for i in result.issues if i.kind == "unknown-tag")
    assert unknown.hint == UNKNOWN_TAG_HINT

    repaired = verify([entry], reg, registry=REGISTRY, repair=True, deep=False)
    assert {i.tag for i in repaired.issues if i.repaired} == {"1.0.0", "1.2.0", "latest", "1"}
    assert not repaired.ok  # the unknown tag stays: gefreg cannot delete one tag
    assert reg.tags["1.0.0"] == one and reg.tags["1.1"] == two
    assert reg.tags["1.2.0"] == three == reg.tags["latest"] == reg.tags["1"]
    assert {(i.kind, i.tag) for i in verify([entry], reg, registry=REGISTRY).issues} == {
        ("unknown-tag", "2.0.0")
    }


def test_a_drifted_tag_whose_manifest_is_gone_is_not_repaired(tmp_path: Path) -> None:
    reg = FakeRegistry()
    one = reg.add(manifest("1"), "1.0.0")
    entry = entry_with(tmp_path, {"1.0.0": one})
    reg.tags["1.0.0"] = reg.add(manifest("other"))
    del reg.manifests[one]
    result = verify([entry], reg, registry=REGISTRY, repair=True)
    assert not result.ok
    drift = next(i for i in result.issues if i.kind == "drift")
    assert not drift.repaired and drift.hint and "gone from the registry" in drift.hint
    assert any(i.kind == "unreachable" and i.tag == "1.0.0" for i in result.issues)


def test_deep_verify_reports_missing_blobs(tmp_path: Path) -> None:
    reg = FakeRegistry()
    one = reg.add(manifest("1"), "1.0.0")
    layer = json.loads(manifest("1"))["layers"][0]["digest"]
    reg.blobs.discard(layer)
    result = verify([entry_with(tmp_path, {"1.0.0": one})], reg, registry=REGISTRY)
    (issue,) = result.issues
    assert issue.kind == "unreachable" and layer in issue.message and issue.tag == "1.0.0"
    assert verify([entry_with(tmp_path, {"1.0.0": one})], reg, registry=REGISTRY, deep=False).ok


def test_a_large_ledger_costs_one_request_per_tag_and_per_distinct_object(
    tmp_path: Path,
) -> None:
    reg = FakeRegistry()
    body = manifest("shared")
    versions = [f"{i // 100}.{(i // 10) % 10}.{i % 10}" for i in range(1000)]
    digest = reg.add(body, *versions)
    for tag in floating_targets(versions, FLOATING):
        reg.tags[tag] = digest
    result = verify([entry_with(tmp_path, dict.fromkeys(versions, digest))], reg, registry=REGISTRY)
    assert result.ok and result.checked_tags == 1000 + 111
    assert reg.calls == Counter(
        {"list_tags": 1, "head_manifest": 1111, "get_manifest": 1, "blob_exists": 2}
    )


def test_an_entry_never_published_is_checked_for_version_tags(tmp_path: Path) -> None:
    reg = FakeRegistry()
    entry = entry_with(tmp_path, {})
    assert verify([entry], reg, registry=REGISTRY).ok
    reg.add(manifest("cut-off publish"), "1.0.0", "dev")
    result = verify([entry], reg, registry=REGISTRY)
    assert [(i.kind, i.tag) for i in result.issues] == [("unknown-tag", "1.0.0")]
    assert result.issues[0].message.startswith("demo:1.0.0 ")


def test_recorded_floating_tags_respect_a_no_floating_publish(tmp_path: Path) -> None:
    reg = FakeRegistry()
    one = reg.add(manifest("1"), "1.0.0", "1", "1.0", "latest")
    two = reg.add(manifest("2"), "1.1.0")  # published with --no-floating
    folder = tmp_path / "demo"
    folder.mkdir()
    for version, digest, moved in (("1.0.0", one, ["1", "1.0", "latest"]), ("1.1.0", two, [])):
        ledger.append(
            folder,
            release(version, digest, sha(digest.encode()), floating=moved),
        )
    entry = SimpleNamespace(name="demo", directory=folder)
    assert verify(
        [entry], reg, registry=REGISTRY
    ).ok  # `latest` stays on 1.0.0, as the ledger recorded
    reg.tags["latest"] = two
    [issue] = verify([entry], reg, registry=REGISTRY, deep=False).issues
    assert (issue.kind, issue.tag, issue.expected) == ("floating", "latest", one)


def test_a_recorded_floating_tag_that_vanished_is_reported(tmp_path: Path) -> None:
    reg = FakeRegistry()
    one = reg.add(manifest("1"), "1.0.0", "1", "1.0")  # `latest` was deleted
    folder = tmp_path / "demo"
    folder.mkdir()
    ledger.append(
        folder,
        ledger.Release(
            version="1.0.0",
            digest=one,
            repository=f"127.0.0.1:5000/{REPO}",
            fingerprint=sha(b"1"),
            base_digest=None,
            image_id=sha(b"i"),
            published="2025-01-01T00:00:00Z",
            floating=["1", "1.0", "latest"],
        ),
    )
    entry = SimpleNamespace(name="demo", directory=folder)
    [issue] = verify([entry], reg, registry=REGISTRY, deep=False).issues
    assert (issue.kind, issue.tag) == ("floating", "latest")
    assert verify([entry], reg, registry=REGISTRY, repair=True, deep=False).ok
    assert reg.tags["latest"] == one


def test_every_line_must_name_the_configured_registry_and_the_entry(tmp_path: Path) -> None:
    """Issue 11.4: a line naming evil.example.org passed with exit 0; one naming another local
    registry made 13 confusing "gone" issues. Now each is one issue naming file and line, and
    is never looked up."""
    reg = FakeRegistry()
    one = reg.add(manifest("1"), "1.0.0", "1", "1.0", "latest")
    entry = entry_with(tmp_path, {"1.0.0": one})
    path = entry.directory / ledger.LEDGER_FILE
    for n, repository in enumerate(
        ["evil.example.org/demo", "127.0.0.1:5001/demo", "127.0.0.1:5000/other"], start=2
    ):
        line = release(f"1.{n}.0", sha(str(n).encode()), sha(b"x"), floating=[])
        path.write_text(
            path.read_text() + line.to_line().replace("127.0.0.1:5000/demo", repository)
        )
    reg.calls.clear()
    result = verify([entry], reg, registry=REGISTRY)
    assert not result.ok
    foreign = [i for i in result.issues if i.kind == "foreign"]
    assert [i.tag for i in foreign] == ["1.2.0", "1.3.0", "1.4.0"]
    assert [i for i in result.issues if i.kind != "foreign"] == []  # no "gone" noise
    assert foreign[0].message == (
        f"{path}:2: 1.2.0 is recorded in evil.example.org/demo, but demo is published to "
        "127.0.0.1:5000/demo (the configured registry and the entry)"
    )
    assert foreign[2].message.startswith(f"{path}:4: 1.4.0 is recorded in 127.0.0.1:5000/other")
    assert reg.calls["head_manifest"] == 4  # 1.0.0 and its floating tags; no foreign version
