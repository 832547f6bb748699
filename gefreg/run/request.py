"""The runner's library interface: what a run is asked to do (:class:`RunRequest`), what it
reports while it works (:class:`RunObserver`) and what it returns (:class:`RunResult`).

A long-lived caller (a workflow engine, a GA4GH TES server, a portal) builds a request — usually
with :func:`gefreg.run.plan.plan_run`, which resolves and trusts the image and maps folders onto
ports — and hands it to :func:`gefreg.run.execute.run_service` with an engine connection it
keeps::

    request = plan_run(settings, engine, target="fixity-manifest@1.0.0",
                       inputs=["data/"], outputs=["out/"], ledger=CatalogLedger(settings))
    result = run_service(request, engine=engine, observer=MyObserver())
    result.succeeded, result.record_path, result.record.to_json()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gefreg.image.interface import ServiceInterface
from gefreg.model import Resources
from gefreg.release.trust import ResolvedImage
from gefreg.run.tree_manifest import TreeManifest

if TYPE_CHECKING:
    from gefreg.run.record import RunRecord


def new_run_id() -> str:
    import uuid

    return f"urn:uuid:{uuid.uuid4()}"


@dataclass(frozen=True)
class RunRequest:
    """One run, fully decided: the image, the interface, the folders, the limits, the record.

    ``inputs``/``outputs`` map port names to host folders; ``limits`` None means the
    interface's own; ``overridden`` names the limits the caller changed (recorded);
    ``force`` lets outputs go into folders that hold files already (the service never sees
    them; the new files are moved in afterwards, refusing to replace anything unless
    ``overwrite``); ``expect_inputs`` refuses inputs whose manifests differ (reproduce);
    ``reproduces`` is the id of the run this one re-runs. ``record`` is where the run record
    goes (its logs go next to it); none of the three files may exist yet.
    """

    image: ResolvedImage
    service: ServiceInterface
    inputs: tuple[tuple[str, Path], ...]
    outputs: tuple[tuple[str, Path], ...]
    record: Path
    args: tuple[str, ...] = ()
    limits: Resources | None = None
    overridden: tuple[str, ...] = ()
    force: bool = False
    overwrite: bool = False
    expect_inputs: tuple[tuple[str, TreeManifest], ...] = ()
    reproduces: str | None = None
    run_id: str = field(default_factory=new_run_id)

    @property
    def resources(self) -> Resources:
        return self.limits or self.service.resources


@dataclass(frozen=True)
class RunResult:
    """A run that ended (succeeded, failed or timed out) and the record written for it."""

    record_path: Path
    record: RunRecord
    inputs: Mapping[str, TreeManifest] = field(default_factory=dict)
    outputs: Mapping[str, TreeManifest] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def exit_code(self) -> int | None:
        return self.record.exit_code

    @property
    def error(self) -> str | None:
        return self.record.error


class RunObserver:
    """Hears about a run's progress; the library never prints. Override what you need."""

    follows = False  # True: hear every line the service writes, while it runs (`run --follow`)

    def output(self, stream: str, line: str) -> None:
        """A line the service wrote to ``stream`` ("stdout" or "stderr"), as it wrote it
        (only when ``follows``; from engine threads). The saved logs are the record."""

    def status(self, text: str) -> None:
        """A step started (checking, hashing, running, ...)."""

    def hashing(self, what: str, done: int, total: int) -> None:
        """Bytes hashed so far (called from worker threads)."""

    def progress(self, what: str) -> Callable[[int, int], None]:
        """A ``(done, total)`` callback for hashing ``what``."""
        return lambda done, total: self.hashing(what, done, total)
