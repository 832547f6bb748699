"""Tree manifests: content hashes, root hash definition, no symlink following, no blocking."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from gefreg.errors import BadInput
from gefreg.hashing import CHUNK, NotARegularFile, sha256_regular
from gefreg.run.tree_manifest import (
    FileEntry,
    TreeManifest,
    manifest_root,
    tree_manifest,
    tree_manifests,
)
from tests.helpers import build_tree


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_manifest_lists_every_file_with_size_and_hash(tmp_path: Path) -> None:
    build_tree(tmp_path, {"a.txt": "alpha", "sub": {"b.bin": b"\x00\x01", "deep": {"c": ""}}})
    (tmp_path / "empty-dir").mkdir()
    m = tree_manifest(tmp_path)
    assert [(f.path, f.size, f.sha256) for f in m.files] == [
        ("a.txt", 5, sha(b"alpha")),
        ("sub/b.bin", 2, sha(b"\x00\x01")),
        ("sub/deep/c", 0, sha(b"")),
    ]
    assert m.count == 3 and m.bytes == 7


def test_root_hash_is_sha256_over_sorted_lines(tmp_path: Path) -> None:
    build_tree(tmp_path, {"b": "2", "a": "1", "A": "0"})
    m = tree_manifest(tmp_path)
    lines = b"".join(
        f"{name}\0{1}\0{sha(content.encode())}\n".encode()
        for name, content in sorted({"b": "2", "a": "1", "A": "0"}.items())
    )
    assert m.root == sha(lines)
    assert [f.path for f in m.files] == ["A", "a", "b"]  # bytewise order


def test_root_changes_with_content_name_or_size_and_not_with_order(tmp_path: Path) -> None:
    build_tree(tmp_path / "x", {"f": "data", "g": "more"})
    base = tree_manifest(tmp_path / "x")
    assert manifest_root(reversed(base.files)) == base.root
    (tmp_path / "x" / "f").write_text("datA")
    assert tree_manifest(tmp_path / "x").root != base.root
    (tmp_path / "x" / "f").write_text("data")
    assert tree_manifest(tmp_path / "x").root == base.root
    (tmp_path / "x" / "f").rename(tmp_path / "x" / "f2")
    assert tree_manifest(tmp_path / "x").root != base.root


def test_symlinks_are_recorded_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("not yours")
    tree = build_tree(tmp_path / "tree", {"real": "r"})
    os.symlink(secret, tree / "link-to-file")
    os.symlink(tmp_path, tree / "link-to-dir")
    m = tree_manifest(tree)
    entries = {f.path: f for f in m.files}
    link = entries["link-to-file"]
    assert link.kind == "symlink" and link.target == str(secret)
    assert link.sha256 == sha(b"symlink\0" + str(secret).encode())
    assert link.size == len(str(secret))
    assert "link-to-dir/outside.txt" not in entries  # not descended into
    assert entries["link-to-dir"].kind == "symlink"


def test_fifo_is_recorded_by_kind_and_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")  # opening it for reading would block forever
    (tmp_path / "f").write_text("x")
    m = tree_manifest(tmp_path)
    pipe = {f.path: f for f in m.files}["pipe"]
    assert pipe.kind == "fifo" and pipe.size == 0
    assert pipe.line() == b"pipe\x000\x00" + pipe.sha256.encode() + b"\x00fifo\n"


def test_sha256_regular_refuses_links_and_fifos(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * (CHUNK * 2 + 3))
    os.symlink(tmp_path / "f", tmp_path / "l")
    os.mkfifo(tmp_path / "p")
    assert sha256_regular(tmp_path / "f") == (sha(b"x" * (CHUNK * 2 + 3)), CHUNK * 2 + 3)
    with pytest.raises(NotARegularFile):
        sha256_regular(tmp_path / "l")
    with pytest.raises(NotARegularFile):
        sha256_regular(tmp_path / "p")


def test_parallel_and_serial_agree_and_progress_adds_up(tmp_path: Path) -> None:
    sizes = [0, 1, 10, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK]
    for i, size in enumerate(sizes * 3):
        (tmp_path / f"f{i:02d}").write_bytes(os.urandom(size))
    seen: list[tuple[int, int]] = []
    parallel = tree_manifest(tmp_path, workers=4, progress=lambda d, t: seen.append((d, t)))
    serial = tree_manifest(tmp_path, workers=1)
    assert parallel == serial
    total = sum(sizes) * 3
    assert seen[0] == (0, total) and max(d for d, _ in seen) == total


def test_a_file_with_many_names_is_read_once(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK)
    (tmp_path / "one").write_bytes(data)
    (tmp_path / "sub").mkdir()
    for i in range(50):
        os.link(tmp_path / "one", tmp_path / "sub" / f"n{i}")
    (tmp_path / "other").write_bytes(b"x")
    seen: list[tuple[int, int]] = []
    manifest = tree_manifest(tmp_path, workers=2, progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, len(data) + 1) and max(d for d, _ in seen) == len(data) + 1
    entries = {f.path: f for f in manifest.files}
    assert len(entries) == 52 and entries["sub/n49"] == FileEntry("sub/n49", len(data), sha(data))
    assert entries["one"].sha256 == sha(data) and entries["other"].sha256 == sha(b"x")


def test_several_trees_on_one_pool(tmp_path: Path) -> None:
    build_tree(tmp_path / "a", {"x": "1"})
    build_tree(tmp_path / "b", {"x": "2", "y": "3"})
    both = tree_manifests({"a": tmp_path / "a", "b": tmp_path / "b"})
    assert both["a"] == tree_manifest(tmp_path / "a")
    assert both["b"].count == 2


def test_non_utf8_names_survive_json(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.txt")
    (tmp_path / name).write_text("latin-1 name")
    m = tree_manifest(tmp_path)
    import json

    again = TreeManifest.from_json(json.loads(json.dumps(m.to_json())))
    assert again == m and again.files[0].line().startswith(b"caf\xe9.txt\0")


def test_from_json_refuses_a_tampered_manifest(tmp_path: Path) -> None:
    build_tree(tmp_path, {"a": "1"})
    data = tree_manifest(tmp_path).to_json()
    data["files"][0]["sha256"] = sha(b"2")
    with pytest.raises(BadInput, match="does not match its files"):
        TreeManifest.from_json(data)
    with pytest.raises(BadInput, match="not a manifest"):
        TreeManifest.from_json({"files": [{"path": "a"}], "root": "x"})


def test_unreadable_file_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs must be read whole: what cannot be read is BadInput naming it. (Root reads
    anything, so the refusal is simulated; tests/unit/test_tree_walk.py reads as another user.)"""
    from gefreg.hashing import sha256_regular as real
    from gefreg.run import tree_manifest as module

    def refused(name: str, progress: object = None, *, dir_fd: int | None = None) -> object:
        if name == "a":
            raise PermissionError(13, "Permission denied", name)
        return real(name, progress, dir_fd=dir_fd)  # type: ignore[arg-type]

    build_tree(tmp_path, {"a": "1", "b": "2"})
    monkeypatch.setattr(module, "sha256_regular", refused)
    with pytest.raises(BadInput, match="cannot read every file: a: permission denied"):
        tree_manifest(tmp_path)


def test_file_entry_json_round_trip() -> None:
    entry = FileEntry("l", 3, sha(b"x"), "symlink", "abc")
    assert FileEntry.from_json(entry.to_json()) == entry
    assert FileEntry.from_json(FileEntry("f", 1, sha(b"x")).to_json()).kind == "file"
