"""`gefreg init`: a catalog repository of one's own, started from an installed gefreg.

It writes the two curated bases and an empty base lock, the scan policy with the production
defaults, a trust.yaml that requires signed releases, a README for the catalog, a
``.gitignore`` for gefreg's state and the CI workflows, which install a pinned gefreg from the
package index. Nothing that exists is overwritten: a README or ``.gitignore`` already there is
kept as it is, and when the catalog folder or a workflow is already there, nothing is written
at all.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from gefreg import __version__
from gefreg.catalog.entries import BASES_DIR, LOCK_FILE
from gefreg.errors import BadInput, EnvironmentFailure
from gefreg.fsutil import atomic_write, write_json
from gefreg.model import BASE_FILE

CATALOG_DIR = "catalog"
CURATED_BASES = ("debian-bookworm", "python-bookworm")
VERSION_MARK = "@GEFREG_VERSION@"
SKELETON = Path(__file__).resolve().parent / "skeleton"
EMPTY_LOCK = {
    "version": 1,
    "comment": "Written by `gefreg base build`; commit it so renders are reproducible.",
    "bases": {},
}


KEPT_IF_PRESENT = ("README.md", ".gitignore")


@dataclass(frozen=True)
class NewCatalog:
    directory: Path
    catalog: Path
    files: tuple[Path, ...]
    kept: tuple[Path, ...] = ()


@functools.cache
def curated_bases_dir() -> Path:
    """The curated base records: inside the wheel, or the shipped catalog of a checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (SKELETON / BASES_DIR, package.parent / CATALOG_DIR / BASES_DIR):
        if all((candidate / name / BASE_FILE).is_file() for name in CURATED_BASES):
            return candidate
    raise EnvironmentFailure(
        "gefreg's curated base records are missing from the installation",
        "reinstall gefreg (pip install --force-reinstall gefreg)",
    )


def _contents() -> dict[str, str]:
    """Repository path → text of every file ``init`` writes (the lock is added as JSON)."""
    bases = curated_bases_dir()
    out = {
        f"{CATALOG_DIR}/{BASES_DIR}/{name}/{BASE_FILE}": (bases / name / BASE_FILE).read_text()
        for name in CURATED_BASES
    }
    out[f"{CATALOG_DIR}/policy.yaml"] = (SKELETON / "policy.yaml").read_text()
    out[f"{CATALOG_DIR}/trust.yaml"] = (SKELETON / "trust.yaml").read_text()
    out["README.md"] = (SKELETON / "README.md").read_text()
    out[".gitignore"] = (SKELETON / "gitignore").read_text()
    for workflow in sorted((SKELETON / "workflows").glob("*.yml")):
        text = workflow.read_text().replace(VERSION_MARK, __version__)
        out[f".github/workflows/{workflow.name}"] = text
    return out


def _taken(directory: Path, rel: str) -> str | None:
    """How ``rel`` under ``directory`` is already taken: it exists (a dangling link too), or
    one of the folders on its way is a symbolic link (writing through it would put files
    somewhere else, or fail half-way). None when init may write it."""
    parts = rel.split("/")
    for depth in range(1, len(parts)):
        folder = "/".join(parts[:depth])
        if (directory / folder).is_symlink():
            return f"{folder} (a symbolic link)"
    return rel if os.path.lexists(directory / rel) else None


def init_catalog(directory: Path) -> NewCatalog:
    """Write a new catalog repository into ``directory`` (created when missing)."""
    if directory.exists() and not directory.is_dir():
        raise BadInput(f"{directory} is a file, not a folder", "name a folder for the catalog")
    contents = _contents()
    lock = f"{CATALOG_DIR}/{BASES_DIR}/{LOCK_FILE}"
    kept = [rel for rel in KEPT_IF_PRESENT if os.path.lexists(directory / rel)]
    taken = [t for rel in [*contents, lock] if rel not in kept and (t := _taken(directory, rel))]
    if os.path.lexists(directory / CATALOG_DIR):
        taken.insert(0, CATALOG_DIR + "/")
    if taken:
        raise BadInput(
            f"{directory} already holds {', '.join(dict.fromkeys(taken[:4]))}"
            + (f" and {len(taken) - 4} more" if len(taken) > 4 else ""),
            "init writes into a new or empty folder and never overwrites: "
            "choose another folder; nothing was changed",
        )
    written = []
    for rel, text in contents.items():
        if rel not in kept:
            written.append(atomic_write(directory / rel, text))
    written.append(write_json(directory / lock, EMPTY_LOCK))
    return NewCatalog(
        directory,
        directory / CATALOG_DIR,
        tuple(sorted(written)),
        tuple(directory / rel for rel in kept),
    )
