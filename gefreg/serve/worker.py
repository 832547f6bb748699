"""The task queue: ``--workers N`` threads take queued tasks (oldest first) and carry them out;
a watcher stops the containers of tasks being cancelled; and a server that starts finds what
its predecessor left.

Recovery at start (before any worker runs): a task that was INITIALIZING or RUNNING when the
server died is SYSTEM_ERROR, with the reason in its system logs, after its containers (found
by the run ids its log holds) are stopped and removed; one that was CANCELING is CANCELED the
same way. Queued tasks simply wait for the workers.

Stopping (Ctrl-C, SIGTERM): workers take no new task, the containers of running tasks are
stopped, and those tasks end as SYSTEM_ERROR saying so; queued tasks stay queued.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

from gefreg.engine import Engine
from gefreg.errors import GefregError
from gefreg.run.delivery import recover_staging
from gefreg.run.hardening import RUN_LABEL
from gefreg.serve import fetch, pids
from gefreg.serve.config import ServeConfig
from gefreg.serve.content_cache import ContentCache
from gefreg.serve.execution import Control, TaskExecution, now
from gefreg.serve.staging import Stager
from gefreg.serve.store import TaskRow, TaskStore
from gefreg.serve.tes_models import TesState
from gefreg.serve.urls import origin

log = logging.getLogger("gefreg.serve")
WATCH_INTERVAL = 0.25


class RunContainers(Protocol):
    """What recovery needs of the engine: find a run's containers, stop and remove them."""

    def container_ids(self, label: str) -> list[str]: ...

    def kill_container(self, container: str) -> None: ...

    def remove_container(self, container: str) -> None: ...


def stop_runs(engine: RunContainers, run_ids: list[str]) -> int:
    """Kill and remove every container of these runs; how many there were."""
    removed = 0
    for run_id in run_ids:
        for container in engine.container_ids(f"{RUN_LABEL}={run_id}"):
            with contextlib.suppress(GefregError):
                engine.kill_container(container)
            engine.remove_container(container)
            removed += 1
    return removed


def recover(store: TaskStore, engine: RunContainers) -> list[str]:
    """Close the tasks a previous server left active (see the module docstring)."""
    closed = []
    for row in store.active():
        runs = [str(e["run_id"]) for e in row.log.get("executors") or [] if e.get("run_id")]
        removed = stop_runs(engine, runs)
        log_ = dict(row.log) or {"executors": [], "outputs": []}
        for executor in log_.get("executors") or []:  # a run's staging left by a killed server
            if executor.get("record"):
                for folder in (Path(executor["record"]).parent / "outputs").glob("*"):
                    recover_staging(folder)
        canceled = row.state is TesState.CANCELING
        reason = (
            f"the server stopped while the task was {row.state.value} (found at restart, "
            f"{now()}); {removed} container(s) removed"
        )
        log_["system_logs"] = [*(log_.get("system_logs") or []), reason]
        log_.setdefault("end_time", now())
        store.finish(row.id, TesState.CANCELED if canceled else TesState.SYSTEM_ERROR, log_)
        closed.append(row.id)
    return closed


class Workers:
    """The scheduler the API talks to (:class:`gefreg.serve.api.Scheduler`)."""

    def __init__(self, config: ServeConfig, store: TaskStore) -> None:
        self.config = config
        self.store = store
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._controls: dict[str, Control] = {}
        self._threads: list[threading.Thread] = []
        self.cache = ContentCache(config.cache_dir)
        trusted = {origin(config.doi_resolver), origin(config.handle_resolver)}
        self.resolvers = pids.Resolvers(
            b2share=config.b2share_hosts,
            doi=config.doi_resolver,
            handle=config.handle_resolver,
            policy=fetch.Policy(config.allow_hosts, frozenset(trusted | config.b2share_hosts)),
        )

    # --- the Scheduler protocol -------------------------------------------------------------

    def submitted(self) -> None:
        self._wake.set()

    def cancel(self, task_id: str) -> None:
        with self._lock:
            control = self._controls.get(task_id)
        if control is not None:
            control.canceled.set()
            self._kill(control)
        else:  # not ours (any more): it ended meanwhile, or a worker is about to take it
            self.store.set_state(task_id, TesState.CANCELED, only_from=[TesState.CANCELING])

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        engine = Engine.connect(timeout=60)
        closed = recover(self.store, engine)
        if closed:
            log.warning("closed %d task(s) left running by a previous server", len(closed))
        for number in range(self.config.workers):
            self._spawn(self._work, f"gefreg-worker-{number}")
        self._spawn(self._watch, "gefreg-cancel-watch")

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            controls = list(self._controls.values())
        for control in controls:
            control.stopping.set()
            self._kill(control)
        for thread in self._threads:
            thread.join(timeout)

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # --- the threads --------------------------------------------------------------------------

    def _work(self) -> None:
        engine = Engine.connect(timeout=60)
        while not self._stop.is_set():
            row = self.store.claim_next()
            if row is None:
                self._wake.wait(self.config.poll_interval)
                self._wake.clear()
                continue
            self._carry_out(engine, row)

    def _carry_out(self, engine: Engine, row: TaskRow) -> None:
        control = Control()
        with self._lock:
            self._controls[row.id] = control
        try:
            TaskExecution(self.config, self.store, engine, row, control, self._stager).run()
        finally:
            with self._lock:
                self._controls.pop(row.id, None)

    def _stager(self, stopped: Any, limit: int) -> Stager:
        roots, seconds = self.config.data_roots, self.config.staging_timeout
        return Stager(self.cache, self.resolvers, limit, roots, stopped, seconds)

    def _watch(self) -> None:
        """Keep killing the containers of cancelled tasks (a container may be created just
        after a cancel arrived), and notice cancels made by another process's API."""
        engine = Engine.connect(timeout=60)
        while not self._stop.wait(WATCH_INTERVAL):
            with self._lock:
                controls = dict(self._controls)
            for task_id, control in controls.items():
                if not control.canceled.is_set():
                    row = self.store.get(task_id)
                    if row is not None and row.state in (TesState.CANCELING, TesState.CANCELED):
                        control.canceled.set()
                if control.canceled.is_set():
                    self._kill(control, engine)

    def _kill(self, control: Control, engine: Engine | None = None) -> None:
        run_id = control.run_id
        if run_id is None:
            return
        try:
            engine = engine or Engine.connect(timeout=30)
            for container in engine.container_ids(f"{RUN_LABEL}={run_id}"):
                engine.kill_container(container)
        except GefregError as exc:
            log.warning("could not stop the container of run %s: %s", run_id, exc)
