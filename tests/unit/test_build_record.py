"""The build record: one type, one reader; a damaged record names its file and field."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gefreg.errors import BadInput
from gefreg.image.build_record import (
    BuildRecord,
    all_builds,
    quick_hit,
    read_build,
    record_path,
    require_build,
    save_build,
    snapshot,
)
from gefreg.settings import Settings
from tests.helpers import FAKE_DIGEST, demo_entry, make_catalog, write_build

ID_A = "sha256:" + "a" * 64
ID_B = "sha256:" + "b" * 64


def settings(tmp_path: Path) -> Settings:
    return Settings(tmp_path / "catalog", "127.0.0.1:1", tmp_path / "state")


def test_a_written_record_reads_back_equal(tmp_path: Path) -> None:
    s = settings(tmp_path)
    record = BuildRecord(
        "demo",
        "1.2.0",
        ID_A,
        ("gefreg/demo:1.2.0",),
        FAKE_DIGEST,
        cache_key=ID_B,
        base={"name": "scratch", "ref": "scratch", "digest": None},
        duration_s=1.5,
        context_bytes=10,
        inputs={"/x": [1, 2, 3, 4], "/gone": None},
    )
    save_build(s, record)
    assert read_build(s, "demo") == record
    assert all_builds(s, "demo") == [record, record]  # current, then the copy by cache key


def test_no_record_is_none_and_require_says_how_to_build(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert read_build(s, "demo") is None and all_builds(s, "demo") == []
    with pytest.raises(BadInput, match="demo has no built image yet") as exc:
        require_build(s, "demo")
    assert exc.value.hint == "build it first: gefreg build demo"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"image_id": "latest"}, "field image_id: expected sha256:<64 hex digits>"),
        ({"version": 1}, "field version: expected a non-empty string, found 1"),
        ({"tags": ["a", 2]}, "field tags[1]: expected a string"),
        ({"fingerprint": None}, "field fingerprint: expected sha256"),
        ({"entry": "other"}, "field entry: expected 'demo', found 'other'"),
        ({"duration_s": "fast"}, "field duration_s: expected a number"),
        ({"inputs": {"/x": "big"}}, "field inputs./x: expected a list of whole numbers"),
        ({"base": {"digest": 7}}, "field base.digest: expected a string"),
    ],
)
def test_a_damaged_field_is_named(tmp_path: Path, change: dict[str, object], field: str) -> None:
    s = settings(tmp_path)
    path = write_build(s.state_dir, "demo", ID_A)
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(BadInput) as exc:
        read_build(s, "demo")
    assert f"the build record of demo ({path}): {field}" in exc.value.message
    assert exc.value.hint == "build it again: gefreg build demo"


@pytest.mark.parametrize("text", ["", "[1]", "{not json", "\xff"])
def test_an_unreadable_record_is_an_error_not_a_traceback(tmp_path: Path, text: str) -> None:
    s = settings(tmp_path)
    path = record_path(s, "demo")
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(BadInput, match=r"the build record of demo \("):
        read_build(s, "demo")


def test_damaged_earlier_builds_are_skipped(tmp_path: Path) -> None:
    s = settings(tmp_path)
    write_build(s.state_dir, "demo", ID_A)
    by_key = s.builds_dir / "demo" / "by-key"
    by_key.mkdir()
    (by_key / "a.json").write_text("[1]")
    (by_key / "b.json").write_text('{"version": "0.9.0"}')
    write_build(s.state_dir, "demo", ID_B, version="0.9.0", cache_key=ID_B)
    assert [(r.version, r.image_id) for r in all_builds(s, "demo")] == [
        ("1.0.0", ID_A),
        ("0.9.0", ID_B),
    ]


def test_an_entry_name_never_becomes_a_path(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not an entry name"):
        read_build(settings(tmp_path), "../../etc")


def test_quick_hit_needs_the_same_folder_version_registry_and_inputs(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(name="demo"))
    s = settings(tmp_path)
    folder = catalog / "demo"
    record = BuildRecord(
        "demo",
        "1.0.0",
        ID_A,
        (),
        FAKE_DIGEST,
        registry=s.registry,
        gefreg_version=__import__("gefreg").__version__,
        record=str(folder / "service.yaml"),
        directory=str(folder.resolve()),
        inputs=snapshot([folder / "service.yaml"]),
        source_date={"epoch": 0, "origin": "default", "commit": None},
    )
    save_build(s, record)
    assert quick_hit(s, folder) == record
    assert quick_hit(Settings(catalog, "elsewhere:5000", s.state_dir), folder) is None
    # a source date git gave moves with commits, which touch no input file: git is asked
    moved = dataclasses.replace(record, source_date={"epoch": 5, "origin": "git"})
    save_build(s, moved)
    assert quick_hit(s, folder) is None  # outside git the date is 0 now
    save_build(s, record)
    (folder / "service.yaml").write_text((folder / "service.yaml").read_text() + "\n")
    assert quick_hit(s, folder) is None
    record_path(s, "demo").write_text("{")
    assert quick_hit(s, folder) is None  # damaged: not a hit, and the build rewrites it
