"""Output comparison: added, removed, changed (with sizes), and ignores that are never silent."""

from __future__ import annotations

import hashlib

from gefreg.run.compare import compare_outputs, matching_pattern
from gefreg.run.tree_manifest import FileEntry, TreeManifest


def entry(path: str, content: bytes) -> FileEntry:
    return FileEntry(path, len(content), "sha256:" + hashlib.sha256(content).hexdigest())


def manifests(**ports: dict[str, bytes]) -> dict[str, TreeManifest]:
    return {
        port: TreeManifest.of(entry(p, c) for p, c in files.items())
        for port, files in ports.items()
    }


def test_identical_outputs() -> None:
    a = manifests(result={"x": b"1", "sub/y": b"2"})
    c = compare_outputs(a, a, ())
    assert c.identical and c.same == 2 and c.lines() == []


def test_added_removed_changed_with_sizes() -> None:
    before = manifests(result={"keep": b"k", "gone": b"bye", "edit": b"short", "same-size": b"a"})
    after = manifests(result={"keep": b"k", "new": b"hello", "edit": b"longer!", "same-size": b"b"})
    c = compare_outputs(before, after, ())
    assert not c.identical
    assert [(d.change, d.path, d.size_before, d.size_after) for d in c.differences] == [
        ("changed", "result/edit", 5, 7),
        ("removed", "result/gone", 3, None),
        ("added", "result/new", None, 5),
        ("changed", "result/same-size", 1, 1),
    ]
    text = "\n".join(c.lines())
    assert "changed  result/edit (5 → 7 bytes)" in text
    assert "removed  result/gone (3 bytes)" in text
    assert "added    result/new (5 bytes)" in text
    assert "changed  result/same-size (1 bytes, content differs)" in text


def test_ignored_differences_are_listed_with_their_pattern() -> None:
    before = manifests(out={"data": b"d", "stamp": b"1", "logs/a.log": b"x"})
    after = manifests(out={"data": b"d", "stamp": b"2", "logs/a.log": b"y"})
    c = compare_outputs(before, after, ("out/stamp", "out/logs/*.log", "out/stamp"))
    assert c.identical
    assert c.patterns == ("out/stamp", "out/logs/*.log")  # de-duplicated, order kept
    assert [(d.path, d.ignored_by) for d in c.ignored] == [
        ("out/logs/a.log", "out/logs/*.log"),
        ("out/stamp", "out/stamp"),
    ]
    lines = c.lines()
    assert lines[0] == "ignoring (volatile): out/stamp, out/logs/*.log"
    assert "changed  out/stamp (1 bytes, content differs)  [ignored: matches out/stamp]" in lines
    data = c.to_json()
    assert data["identical"] and len(data["ignored_differences"]) == 2


def test_ignore_only_sets_aside_what_matches() -> None:
    before = manifests(out={"stamp": b"1", "result": b"a"})
    after = manifests(out={"stamp": b"2", "result": b"b"})
    c = compare_outputs(before, after, ("out/stamp",))
    assert not c.identical and [d.path for d in c.differences] == ["out/result"]


def test_missing_port_counts_as_removed_files() -> None:
    c = compare_outputs(manifests(a={"x": b"1"}, b={"y": b"2"}), manifests(a={"x": b"1"}), ())
    assert [(d.change, d.path) for d in c.differences] == [("removed", "b/y")]


def test_pattern_matching_is_a_glob_on_port_and_path() -> None:
    assert matching_pattern("out/run/1.log", ["out/*.log"]) == "out/*.log"  # * spans folders
    assert matching_pattern("out/x.LOG", ["out/*.log"]) is None  # case-sensitive
    assert matching_pattern("other/x.log", ["out/*.log"]) is None
