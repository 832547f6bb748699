"""The catalog as a git repository: which commit it is at, when a record's version was
committed, and a record's folder exactly as a commit holds it.

Publish records the commit; `rebuild` takes the record and its files from that commit (never
from the working tree); builds take SOURCE_DATE_EPOCH from the commit that set the version.
Revisions that come from a ledger are untrusted text: only full hexadecimal commit names are
passed to git, so none can be read as an option.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gefreg.errors import BadInput, EnvironmentFailure, ToolMissing

COMMIT_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
# A diff line that sets the record's version (git -G takes a POSIX regular expression).
VERSION_LINE = "^version[[:space:]]*:"


@dataclass(frozen=True)
class Commit:
    sha: str
    time: int  # committer time, seconds since the epoch


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    git = shutil.which("git")
    if git is None:
        raise ToolMissing("git is not installed", "apt-get install git")
    return subprocess.run([git, "-C", str(root), *args], capture_output=True, check=False)


def repository_root(path: Path) -> Path | None:
    """The top of the git work tree holding ``path`` (the nearest folder with a ``.git``, as
    git finds it, also for worktrees and submodules); None when it is in none. No git
    process: every build plan asks."""
    path = path.resolve()
    return next((p for p in (path, *path.parents) if (p / ".git").exists()), None)


def head(root: Path) -> str | None:
    """The commit the work tree is at (None in a repository without commits)."""
    done = _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    sha = done.stdout.decode().strip()
    return sha if done.returncode == 0 and sha else None


def relative(root: Path, path: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


def version_commit(root: Path, record: str, rev: str = "HEAD") -> Commit | None:
    """The newest commit up to ``rev`` that changed the record's ``version:`` line (else the
    newest one that touched the record): when its current version was committed. None when
    no commit has the record."""
    for pick in (["-G", VERSION_LINE], []):
        done = _git(root, "log", "-1", "--format=%H %ct", *pick, rev, "--", record)
        fields = done.stdout.decode().split()
        if done.returncode == 0 and len(fields) == 2:
            return Commit(fields[0], int(fields[1]))
    return None


def dirty(root: Path, paths: list[str]) -> list[str]:
    """Which of ``paths`` (files or folders, relative to ``root``) differ from HEAD."""
    done = _git(root, "status", "--porcelain", "--untracked-files=all", "--", *paths)
    return [line[3:] for line in done.stdout.decode().splitlines() if len(line) > 3]


def check_name(sha: object) -> str:
    """``sha`` if it is a full hexadecimal commit name (a ledger may hold anything there)."""
    if not isinstance(sha, str) or not COMMIT_RE.match(sha):
        raise BadInput(
            f"{sha!r} is not a full commit name",
            "a ledger line's catalog_commit is the 40 (or 64) hex digits publish wrote",
        )
    return sha


def checked_commit(root: Path, sha: str) -> str:
    """``sha`` if it names a commit of the repository; BadInput (malformed) or
    EnvironmentFailure (not in this clone) otherwise."""
    check_name(sha)
    done = _git(root, "cat-file", "-e", f"{sha}^{{commit}}")
    if done.returncode != 0:
        raise EnvironmentFailure(
            f"commit {sha[:12]} is not in the repository at {root}",
            "fetch the catalog's full history (git fetch --unshallow)",
        )
    return sha


def export(root: Path, sha: str, paths: list[str], into: Path) -> list[str]:
    """Write ``paths`` as commit ``sha`` holds them below ``into``; returns the ones the
    commit does not have."""
    missing: list[str] = []
    present: list[str] = []
    for path in paths:
        done = _git(root, "cat-file", "-e", f"{sha}:{path}")
        (present if done.returncode == 0 else missing).append(path)
    if present:
        _extract_archive(root, sha, present, into)
    return missing


def _extract_archive(root: Path, sha: str, paths: list[str], into: Path) -> None:
    """``git archive`` of ``paths`` streamed into ``into`` (a commit may hold big data files:
    never the whole archive in memory), with tarfile's "data" filter: nothing is written
    outside ``into``, no link leads out of it, no device is made."""
    git = shutil.which("git")
    if git is None:
        raise ToolMissing("git is not installed", "apt-get install git")
    argv = [git, "-C", str(root), "archive", "--format=tar", sha, "--", *paths]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                tar.extractall(into, filter="data")
        except tarfile.FilterError as exc:  # a link out of the folder, a device…
            proc.kill()
            raise BadInput(
                f"commit {sha[:12]} holds a file that cannot be taken out safely: {exc}",
                "a catalog entry holds regular files and folders only",
            ) from None
        except (tarfile.TarError, OSError) as exc:  # git stopped early, the disk is full…
            proc.kill()
            raise EnvironmentFailure(f"taking {sha[:12]} out of git failed: {exc}") from None
        error = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise EnvironmentFailure(f"git archive {sha[:12]} failed: {error.strip()}")


def catalog_path(root: Path, catalog: Path, *parts: str) -> str:
    """A path inside the catalog, relative to the repository root."""
    return PurePosixPath(relative(root, catalog), *parts).as_posix()
