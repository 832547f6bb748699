"""Command-line targets → entry folders: one rule for every command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gefreg.catalog.entries import find_entry, named_entry, resolve
from gefreg.errors import BadInput
from tests.helpers import build_tree, demo_entry, make_catalog


def test_a_name_a_folder_or_a_record_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(name="demo"))
    elsewhere = build_tree(tmp_path / "work", demo_entry(name="mine"))
    monkeypatch.chdir(tmp_path)
    assert find_entry(catalog, "demo") == catalog / "demo"
    assert find_entry(catalog, str(elsewhere / "mine")) == elsewhere / "mine"
    assert find_entry(catalog, "work/mine/service.yaml") == Path("work/mine")
    for image_ref in ("alpine:3", "gefreg/demo:1.0.0", "sha256:" + "a" * 64, "demo@1.0.0"):
        assert find_entry(catalog, image_ref) is None
    assert find_entry(catalog, "work") is None  # a folder without a record names nothing
    assert find_entry(catalog, "work/mine/run.sh") is None


def test_a_catalog_name_wins_over_a_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(name="demo"))
    build_tree(tmp_path / "here", demo_entry(name="demo"))
    monkeypatch.chdir(tmp_path / "here")
    assert os.path.isdir("demo")
    assert find_entry(catalog, "demo") == catalog / "demo"
    assert find_entry(catalog, "./demo") == Path("demo")


def test_names_are_never_paths(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(name="demo"))
    build_tree(tmp_path, {"secret": {"service.yaml": "x"}})
    assert named_entry(catalog, "../secret") is None and named_entry(catalog, "demo")


def test_resolve_names_what_is_wrong(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(name="demo"))
    assert resolve(catalog, []) == [catalog / "demo"]
    with pytest.raises(BadInput, match="no catalog entry 'nope'") as exc:
        resolve(catalog, ["demo", "nope"])
    assert exc.value.hint == "entries: demo"
