"""How one GEF instance is set up: the catalog and registry it trusts, its data roots, where it
keeps its tasks, and whom it fetches from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gefreg.errors import BadInput
from gefreg.settings import Settings

DEFAULT_MAX_INPUT = 10 * 1024**3
DEFAULT_B2SHARE = ("https://b2share.eudat.eu",)


@dataclass(frozen=True)
class ServeConfig:
    settings: Settings
    tokens: Path
    data_roots: tuple[Path, ...]
    workers: int = 1
    home: Path | None = None  # tasks, staging and the content cache [default: STATE/serve]
    allow_hosts: frozenset[str] = frozenset()
    b2share: tuple[str, ...] = DEFAULT_B2SHARE
    doi_resolver: str = "https://doi.org"
    handle_resolver: str = "https://hdl.handle.net"
    max_input_bytes: int = DEFAULT_MAX_INPUT
    max_unfinished: int = 1000  # tasks one owner may have queued or running (more: 429)
    staging_timeout: float = 3600.0  # seconds a task's downloads may take together
    poll_interval: float = 0.2
    organization: tuple[str, str] = ("gefreg", "https://example.org/gefreg")
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.home or self.settings.state_dir / "serve"

    @property
    def database(self) -> Path:
        return self.folder / "tasks.sqlite"

    @property
    def tasks_dir(self) -> Path:
        return self.folder / "tasks"

    @property
    def cache_dir(self) -> Path:
        return self.folder / "cache"

    @property
    def b2share_hosts(self) -> frozenset[str]:
        from gefreg.serve.urls import origin

        return frozenset(origin(h) for h in self.b2share)


def data_roots(folders: tuple[Path, ...]) -> tuple[Path, ...]:
    """The data roots, resolved; each must be an existing folder, and none may be ``/``."""
    if not folders:
        raise BadInput("give at least one --data-root DIR", "the folders tasks may read and write")
    roots = []
    for folder in folders:
        resolved = folder.resolve()
        if not resolved.is_dir():
            raise BadInput(f"--data-root {folder}: not an existing folder")
        if resolved == Path("/"):
            raise BadInput("--data-root /: the whole machine cannot be a data root")
        roots.append(resolved)
    return tuple(roots)
