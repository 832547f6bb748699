"""``gefreg site``: the catalog pages as a static site, for any web server (as the
BioContainers registry is published).

Layout: ``index.html``, ``entries/NAME/index.html``, ``entries/NAME/VERSION/index.html`` with
``sbom.json`` and ``NAME.cwl`` beside it when the registry has them, and ``static/``. Pages
hold no time of writing and files are written in a fixed order with fixed permissions, so the
same catalog, ledgers and registry content give byte-identical sites. Files the site wrote
before and no longer needs are removed; nothing else in the folder is touched, and a folder
holding other files is refused unless it is an earlier site.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from gefreg.engine import Engine
from gefreg.errors import BadInput, GefregError
from gefreg.fsutil import atomic_write
from gefreg.serve import pages
from gefreg.serve.catalog_view import CatalogView, FactsSource, SignatureSource
from gefreg.settings import Settings

MARKER = ".gefreg-site"


@dataclass(frozen=True)
class SiteReport:
    folder: Path
    entries: int
    versions: int
    files: int
    removed: int
    problems: tuple[str, ...]


def cwl_text(settings: Settings, engine: Engine, name: str, version: str) -> str | None:
    """The release as a CWL tool (``gefreg export cwl``), or None when it cannot be one."""
    from gefreg.export.cwl import command_line_tool, header, to_yaml
    from gefreg.export.release import resolve_release

    try:
        release = resolve_release(settings, engine, f"{name}@{version}")
    except GefregError:
        return None
    return to_yaml(command_line_tool(release), header(release))


def _check_folder(folder: Path) -> set[str]:
    """What an earlier site wrote there (from its marker); refuses a folder of other files."""
    marker = folder / MARKER
    if marker.is_file():
        return set(marker.read_text().splitlines())
    if folder.exists() and any(folder.iterdir()):
        raise BadInput(
            f"{folder} is not empty and holds no earlier site ({MARKER} is missing)",
            "give an empty or new folder; gefreg never deletes files it did not write",
        )
    return set()


def site_files(view: CatalogView) -> tuple[dict[str, bytes], int, int, list[str]]:
    """Every file of the site (relative path → bytes), entries, versions and problems."""
    files: dict[str, bytes] = {}
    entries = view.entries()
    files["index.html"] = pages.index_page(entries).encode()
    versions, problems = 0, []
    for entry in entries:
        if entry.problem:
            problems.append(f"{entry.name}: {entry.problem}")
        files[f"entries/{entry.name}/index.html"] = pages.entry_page(entry).encode()
        for version in entry.versions:
            versions += 1
            base = f"entries/{entry.name}/{version.version}"
            files[f"{base}/index.html"] = pages.version_page(version).encode()
            if version.facts.sbom is not None:
                files[f"{base}/sbom.json"] = version.facts.sbom
            if version.facts.cwl is not None:
                files[f"{base}/{entry.name}.cwl"] = version.facts.cwl.encode()
            problems += [f"{entry.name} {version.version}: {p}" for p in version.facts.problems]
    for name in pages.STATIC_FILES:
        files[f"static/{name}"] = pages.static_file(name)
    return files, len(entries), versions, problems


def write_site(settings: Settings, engine: Engine | None, folder: Path) -> SiteReport:
    earlier = _check_folder(folder)
    cwl = None if engine is None else (lambda n, v: cwl_text(settings, engine, n, v))
    view = CatalogView(settings, FactsSource(settings, cwl), SignatureSource(settings))
    files, entries, versions, problems = site_files(view)
    for rel in sorted(files):
        path = folder / rel
        if path.is_file() and path.read_bytes() == files[rel]:
            continue
        atomic_write(path, files[rel])
    removed = 0
    for rel in sorted(earlier - set(files), reverse=True):
        with contextlib.suppress(FileNotFoundError):
            (folder / rel).unlink()
            removed += 1
        for parent in (folder / rel).parents:
            if parent == folder:
                break
            with contextlib.suppress(OSError):
                parent.rmdir()
    atomic_write(folder / MARKER, "".join(f"{rel}\n" for rel in sorted(files)))
    for current, dirs, _ in os.walk(folder):
        for d in dirs:
            os.chmod(Path(current) / d, 0o755)
    return SiteReport(folder, entries, versions, len(files), removed, tuple(problems))
