"""Walking by directory descriptor: deeper than PATH_MAX and than the descriptors kept open,
problems as data, nothing followed."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gefreg.run import tree_walk
from gefreg.run.ownership import hand_back
from gefreg.run.tree_manifest import tree_manifest
from gefreg.run.tree_walk import Problem, open_root, walk

NAME = "n" * 200
ROOT = Path(__file__).resolve().parents[2]


def chain(root: Path, levels: int, name: str = NAME) -> str:
    """``levels`` nested folders under ``root`` with a file at every level; returns the relative
    path of the deepest folder."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(levels):
            os.mkdir(name, dir_fd=fd)
            with open(os.open(f"f{level}", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as fh:
                fh.write(str(level))
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    return "/".join([name] * levels)


def entries(root: Path) -> tuple[list[str], list[Problem]]:
    problems: list[Problem] = []
    fd = open_root(root)
    try:
        return sorted(f.rel for f in walk(fd, problems)), problems
    finally:
        os.close(fd)


def test_deeper_than_path_max_and_than_the_open_descriptors(tmp_path: Path) -> None:
    levels = tree_walk.MAX_OPEN * 2 + 5  # folders are closed and reopened through '..'
    deepest = chain(tmp_path, levels)
    assert len(deepest) > 4096 * 4
    before = len(os.listdir("/proc/self/fd"))
    found, problems = entries(tmp_path)
    assert problems == [] and len(os.listdir("/proc/self/fd")) == before  # all closed
    assert deepest in found and f"{deepest}/f{levels - 1}" not in found  # files above it
    assert len([p for p in found if p.rsplit("/", 1)[-1].startswith("f")]) == levels
    manifest = tree_manifest(tmp_path)
    assert manifest.count == levels
    assert max(len(f.path) for f in manifest.files) > 4096 * 4


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.symlink("/etc", tmp_path / "d" / "etc")
    os.symlink("loop", tmp_path / "loop")
    found, problems = entries(tmp_path)
    assert found == ["d", "d/etc", "loop"] and problems == []
    kinds = {f.path: f.kind for f in tree_manifest(tmp_path).files}
    assert kinds == {"d/etc": "symlink", "loop": "symlink"}


def test_unreadable_entries_are_problems() -> None:
    """As a user who may not read them (root reads anything: then as uid 1234 via setpriv)."""
    top = Path(tempfile.mkdtemp(prefix="gefreg-walk-"))  # pytest's own tmp is closed to others
    try:
        _unreadable(top)
    finally:
        for folder in (top / "tree", top / "tree" / "locked"):
            os.chmod(folder, 0o755)
        shutil.rmtree(top)


def _unreadable(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "locked").mkdir(parents=True)
    (tree / "locked" / "x").write_text("x")
    (tree / "secret").write_text("s")
    (tree / "fine").write_text("f")
    os.chmod(tree / "locked", 0)
    os.chmod(tree / "secret", 0)
    for folder in (tmp_path, tree):
        os.chmod(folder, 0o755)
    code = (
        "import sys; from pathlib import Path; from gefreg.run.tree_manifest import read_trees; "
        "r = read_trees({'out': Path(sys.argv[1])}); "
        "print(r.describe()); print([f.path for f in r.manifests['out'].files])"
    )
    command = [sys.executable, "-c", code, str(tree)]
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=1234", "--regid=1234", "--clear-groups", *command]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.splitlines() == [
        "out/locked: permission denied; out/secret: permission denied",
        "['fine']",
    ]


def test_vanished_entries_are_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").write_text("a")
    real = os.stat

    def gone(path: object, *args: object, **kw: object) -> os.stat_result:
        if path == "a" and kw.get("dir_fd") is not None:
            raise FileNotFoundError(2, "No such file", "a")
        return real(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", gone)
    assert entries(tmp_path) == ([], [Problem("a", "vanished while gefreg read it")])


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_hand_back_of_a_deep_tree(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    chain(out, 30)
    for _, dirs, files, fd in os.fwalk(out):
        for name in (*dirs, *files):
            os.chown(name, 10001, 10001, dir_fd=fd, follow_symlinks=False)
    os.chmod(out / "f0", 0o4755)
    done = hand_back(out, 10001, 0, 0)
    assert done.count == 60 and done.problems == ()
    owners = set()
    for _, dirs, files, fd in os.fwalk(out):
        owners |= {os.stat(n, dir_fd=fd, follow_symlinks=False).st_uid for n in (*dirs, *files)}
    assert owners == {0}
    assert not os.stat(out / "f0").st_mode & stat.S_ISUID
