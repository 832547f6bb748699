"""Finding and loading catalog records; catalog-wide checks; the base lock.

Layout: ``CATALOG/<name>/service.yaml`` per service, ``CATALOG/bases/<name>/base.yaml`` per
curated base, and ``CATALOG/bases/lock.json`` mapping each base name to its image digest.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from gefreg.errors import BadInput, InvalidRecord, Problem
from gefreg.fsutil import write_json
from gefreg.model import BASE_FILE, DIGEST_RE, NAME_RE, RECORD_FILE, BaseEntry, Entry

# The schemas (and ruamel.yaml behind them) are imported where records are loaded: finding
# entries and ledgers (verify, review, the build cache) needs neither.
BASES_DIR = "bases"
LOCK_FILE = "lock.json"


@dataclass(frozen=True)
class BaseLock:
    """Base name → image digest, as last built; committed so that renders are reproducible."""

    path: Path
    digests: tuple[tuple[str, str], ...]

    def digest(self, name: str) -> str | None:
        return dict(self.digests).get(name)


def base_repository(registry: str, name: str) -> str:
    """Where a base lives in the registry (service Dockerfiles say FROM this@digest)."""
    return f"{registry}/{BASES_DIR}/{name}"


def base_names(root: Path) -> set[str]:
    bases = root / BASES_DIR
    if not bases.is_dir():
        return set()
    return {p.parent.name for p in bases.glob(f"*/{BASE_FILE}")}


def service_record_paths(root: Path) -> list[Path]:
    return sorted(p for p in root.glob(f"*/{RECORD_FILE}") if p.parent.name != BASES_DIR)


def load_entry(path: Path, known_bases: set[str] | None = None) -> Entry:
    record = path / RECORD_FILE if path.is_dir() else path
    if not record.is_file():
        raise BadInput(f"{path}: no {RECORD_FILE} here", "pass a catalog entry folder or name")
    from gefreg.catalog.service_record import parse_service
    from gefreg.yamlio import parse_yaml_file

    spec = parse_yaml_file(record, lambda data: parse_service(record, data, known_bases))
    return Entry(spec=spec, directory=record.parent.resolve(), record_path=record)


def load_base(path: Path) -> BaseEntry:
    record = path / BASE_FILE if path.is_dir() else path
    if not record.is_file():
        raise BadInput(f"{path}: no {BASE_FILE} here", "pass a base folder or name")
    from gefreg.catalog.base_record import parse_base
    from gefreg.yamlio import parse_yaml_file

    spec = parse_yaml_file(record, lambda data: parse_base(record, data))
    return BaseEntry(spec, record.parent.resolve(), record)


def load_lock(root: Path) -> BaseLock:
    path = root / BASES_DIR / LOCK_FILE
    if not path.exists():
        return BaseLock(path, ())
    try:
        data = json.loads(path.read_text())
        bases = data["bases"]
        pairs = tuple(sorted((str(k), str(v["digest"])) for k, v in bases.items()))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidRecord(
            [
                Problem(
                    path,
                    None,
                    None,
                    "bases",
                    f"unreadable lock file: {exc}",
                    "rebuild it with `gefreg base build --all`",
                )
            ]
        ) from None
    for name, digest in pairs:
        if not DIGEST_RE.match(digest):
            raise InvalidRecord(
                [
                    Problem(
                        path,
                        None,
                        None,
                        f"bases.{name}.digest",
                        f"expected sha256:<64 hex>, got {digest!r}",
                    )
                ]
            )
    return BaseLock(path, pairs)


def load_all(root: Path) -> tuple[list[Entry], list[BaseEntry]]:
    """Every record in the catalog; problems from all files are reported together."""
    problems: list[Problem] = []
    bases: list[BaseEntry] = []
    for record in sorted((root / BASES_DIR).glob(f"*/{BASE_FILE}")):
        try:
            bases.append(load_base(record))
        except InvalidRecord as exc:
            problems += exc.problems
    known = base_names(root)
    entries: list[Entry] = []
    for record in service_record_paths(root):
        try:
            entries.append(load_entry(record, known))
        except InvalidRecord as exc:
            problems += exc.problems
    if problems:
        raise InvalidRecord(problems)
    return entries, bases


def named_entry(root: Path, name: str) -> Path | None:
    """The folder of the catalog entry called ``name``, if there is one."""
    folder = root / name
    return folder if NAME_RE.match(name) and (folder / RECORD_FILE).is_file() else None


def find_entry(root: Path, target: str) -> Path | None:
    """The entry folder a command-line target names, without loading the record; None when it
    names none. The one rule every command uses: a name in the catalog, else a folder holding
    a service.yaml, else a service.yaml file. A name wins over a local folder of that name."""
    named = named_entry(root, target)
    if named is not None:
        return named
    path = Path(target)
    if path.name == RECORD_FILE and path.is_file():
        return path.parent
    return path if (path / RECORD_FILE).is_file() else None


def resolve(root: Path, targets: list[str]) -> list[Path]:
    """Command-line targets → entry folders (:func:`find_entry`).

    No targets means the whole catalog, which must hold at least one record: a CI job pointed
    at the wrong folder must not pass by checking nothing."""
    if not targets:
        found = [p.parent for p in service_record_paths(root)]
        if not found:
            raise BadInput(
                f"no service records under {root}",
                "add one with `gefreg new NAME`, or point --catalog (GEFREG_CATALOG) at the "
                "folder that holds NAME/service.yaml",
            )
        return found
    out = []
    for target in targets:
        folder = find_entry(root, target)
        if folder is None:
            raise BadInput(
                f"no catalog entry {target!r}: neither an entry name in {root} nor a folder "
                f"with a {RECORD_FILE}",
                names_hint(root, target),
            )
        out.append(folder)
    return out


def close_names(root: Path, name: str) -> list[str]:
    """Catalog entries whose names are close to ``name`` (a typo), closest first."""
    import difflib

    names = [p.parent.name for p in service_record_paths(root)]
    return difflib.get_close_matches(name, names, n=3, cutoff=0.6)


def names_hint(root: Path, name: str) -> str:
    """'did you mean …?' for a typo, else the entries there are."""
    close = close_names(root, name)
    if close:
        return f"did you mean {' or '.join(close)}?"
    names = ", ".join(p.parent.name for p in service_record_paths(root)) or "none"
    return f"entries: {names}"


def entry_path(root: Path, entry: Entry) -> str:
    """The entry's path relative to the catalog (its name when it lives elsewhere)."""
    try:
        return entry.directory.relative_to(root).as_posix()
    except ValueError:
        return entry.directory.name


def relative(path: Path) -> str:
    """Paths in messages: relative to the working directory when that is shorter."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def write_lock(root: Path, name: str, digest: str) -> bool:
    """Record ``name`` → ``digest`` in the base lock; True when that changed the file."""
    lock = load_lock(root)
    if lock.digest(name) == digest:
        return False
    digests = dict(lock.digests)
    digests[name] = digest
    data = {
        "version": 1,
        "comment": "Written by `gefreg base build`; commit it so renders are reproducible.",
        "bases": {k: {"digest": v} for k, v in sorted(digests.items())},
    }
    write_json(lock.path, data)
    return True
