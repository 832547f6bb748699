"""The catalog's git history as rebuild reads it: commit names from a ledger are untrusted."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gefreg.catalog import git_source
from gefreg.errors import BadInput, EnvironmentFailure
from tests.helpers import git_repository

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


@pytest.mark.parametrize(
    "hostile",
    [
        "--upload-pack=touch /tmp/pwned",
        "--output=/tmp/x",
        "../../etc",
        "HEAD",
        "main",
        "f" * 40 + "\n",
        "F" * 40,
        "f" * 39,
        "f" * 40 + ":service.yaml",
        "",
        5,
        None,
        ["f" * 40],
    ],
)
def test_only_a_full_commit_name_reaches_git(tmp_path: Path, hostile: object) -> None:
    (tmp_path / "a").write_text("a\n")
    git_repository(tmp_path)
    with pytest.raises(BadInput, match="is not a full commit name"):
        git_source.checked_commit(tmp_path, hostile)  # type: ignore[arg-type]


def test_a_commit_not_in_the_clone_is_an_environment_failure(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a\n")
    sha = git_repository(tmp_path)
    assert git_source.checked_commit(tmp_path, sha) == sha
    with pytest.raises(EnvironmentFailure, match="is not in the repository"):
        git_source.checked_commit(tmp_path, "0" * 40)


def test_export_never_writes_outside_its_folder(tmp_path: Path) -> None:
    """A committed entry whose file is a link out of the catalog is refused, not followed."""
    repo = tmp_path / "repo"
    (repo / "svc").mkdir(parents=True)
    (repo / "svc" / "service.yaml").write_text("name: svc\n")
    os.symlink("/etc/passwd", repo / "svc" / "run.sh")
    sha = git_repository(repo)
    into = tmp_path / "out"
    into.mkdir()
    with pytest.raises(BadInput, match="cannot be taken out safely"):
        git_source.export(repo, sha, ["svc"], into)
    assert not (into / "svc" / "run.sh").exists()
    assert git_source.export(repo, sha, ["gone"], into) == ["gone"]
