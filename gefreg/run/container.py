"""One run's container, owned from creation to removal: :class:`ContainerRun`.

Entering creates the container (after opening the output folders to the service's group when
it runs as another user), writes the record with status ``incomplete`` and checks that the
engine applied the hardening. :meth:`ContainerRun.run` starts it, waits up to the timeout (then
SIGKILL: ``timed-out``), saves the logs and removes it. Leaving — however it is left — undoes
the folders' permissions and hands the service's files back; after an exception (Ctrl-C, an
engine failure, a hardening mismatch) it first stops and removes the container with the engine
it was given, keeps what logs it can, removes the folders made for the run when no container
was ever made, and records the run as ``interrupted`` or ``incomplete`` (then the exception
goes on).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from types import TracebackType

from gefreg.engine import ContainerState, StartFailed
from gefreg.engine.protocols import ContainerRuntime
from gefreg.errors import EnvironmentFailure, GefregError
from gefreg.run.folders import remove_made
from gefreg.run.hardening import applied, mismatches
from gefreg.run.ownership import Grant, grant_write, hand_back, revoke
from gefreg.run.prepare import Prepared
from gefreg.run.record import LogFacts, RunRecord, now, timestamp, write_record
from gefreg.run.request import RunObserver
from gefreg.run.tree_walk import Problem

KILL_GRACE_S = 30.0
FOLLOW_GRACE_S = 5.0


@dataclass(frozen=True)
class Ended:
    """How the container ended, as the engine saw it."""

    state: ContainerState
    timed_out: bool
    start_error: str | None


class ContainerRun:
    """The container and the output folders' grants of one prepared run (see the module)."""

    def __init__(self, engine: ContainerRuntime, prepared: Prepared, observer: RunObserver) -> None:
        self.engine = engine
        self.prepared = prepared
        self.observer = observer
        self.record: RunRecord = prepared.record
        self.container: str | None = None
        self.grants: list[Grant] = []
        self.written = False
        self.t0: float | None = None
        self.unreturned: tuple[Problem, ...] = ()  # entries that could not be handed back

    def __enter__(self) -> ContainerRun:
        try:
            self._create()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def _create(self) -> None:
        p = self.prepared
        if p.identity.separate:
            self.grants = [grant_write(path, p.identity.run_gid) for path in p.outputs.values()]
        self.container = self.engine.create_container(p.spec)
        self._update(container=dataclasses.replace(self.record.container, id=self.container))
        write_record(p.record_path, self.record, new=True)
        self.written = True
        state = self.engine.inspect_container(self.container)
        seen = applied(state)
        self._update(applied=seen, environment=dict(e.partition("=")[::2] for e in state.env))
        problems = mismatches(p.spec, seen)
        if problems:
            raise EnvironmentFailure(
                "the engine did not apply the hardening asked for: " + "; ".join(problems),
                "refusing to start the service; check the engine version and its cgroups",
            )

    def run(self) -> Ended:
        """Start the container, wait for it (killing it at the timeout), keep its logs, remove
        it."""
        assert self.container is not None
        engine, container = self.engine, self.container
        limits = self.prepared.request.resources
        self.observer.status(
            f"running {self.prepared.request.service.name} in container {container[:12]} "
            f"(timeout {limits.timeout:g} s, memory {limits.memory // 1024**2} MiB, "
            f"{limits.cpus:g} CPUs, {limits.pids} pids)"
        )
        self._update(started=timestamp(now()))
        self.t0 = time.monotonic()
        start_error = None
        followed = None
        try:
            engine.start_container(container)
            if self.observer.follows:
                followed = engine.follow_logs(container, self.observer.output)
            code = engine.wait_container(container, limits.timeout)
        except StartFailed as exc:
            start_error, code = exc.message, -1
        self._update(ended=timestamp(now()), duration_s=self._duration())
        if code is None:
            self.observer.status(f"timed out after {limits.timeout:g} s: killing the container")
            engine.kill_container(container)
            engine.wait_container(container, KILL_GRACE_S)
        if followed is not None:
            followed(FOLLOW_GRACE_S)  # the last lines still on their way
        state = engine.inspect_container(container)
        engine.save_logs(container, *self.prepared.logs)
        engine.remove_container(container)
        self.container = None
        return Ended(state, code is None, start_error)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self._release()
            return
        self._abandon()
        with contextlib.suppress(OSError):  # never hide why the run stopped
            self._release()
            if self.record.container.id is None:  # no container was made: nothing ran
                remove_made(list(self.prepared.made))
        if self.written:
            self._record_stop(exc)

    def _update(self, **changes: object) -> None:
        self.record = dataclasses.replace(self.record, **changes)  # type: ignore[arg-type]

    def _duration(self) -> float | None:
        return None if self.t0 is None else round(time.monotonic() - self.t0, 3)

    def _abandon(self) -> None:
        """Stop and remove the container after an interruption or an engine failure, as far as
        the engine still lets us; keep what logs it can (never over a file that exists)."""
        if self.container is None:
            return
        with contextlib.suppress(Exception):
            self.engine.kill_container(self.container)
        if self.written:
            with contextlib.suppress(Exception):
                self.engine.save_logs(self.container, *self.prepared.logs)
        with contextlib.suppress(Exception):
            self.engine.remove_container(self.container)

    def _release(self) -> None:
        """Undo the output folders' temporary permissions and give the service's files back
        (never an entry that was there before the run)."""
        while self.grants:
            revoke(self.grants.pop())
        ids, keep = self.prepared.identity, self.prepared.keep
        if ids.separate:
            handed = [
                hand_back(path, ids.run_uid, ids.uid, ids.gid, keep.get(port, frozenset()))
                for port, path in self.prepared.outputs.items()
            ]
            self.unreturned = tuple(p for h in handed for p in h.problems)
            self._update(handed_back=sum(h.count for h in handed))

    def _record_stop(self, exc: BaseException) -> None:
        interrupted = isinstance(exc, KeyboardInterrupt)
        record = self.record
        duration = record.duration_s
        if record.started and duration is None:
            duration = self._duration()
        if interrupted:
            error = "interrupted (Ctrl-C): the container was stopped and removed"
        else:
            error = exc.message if isinstance(exc, GefregError) else repr(exc)
        stdout, stderr = self.prepared.logs
        self._update(
            status="interrupted" if interrupted else "incomplete",
            ended=record.ended or timestamp(now()),
            duration_s=duration,
            error=error,
            logs=(LogFacts.of(stdout), LogFacts.of(stderr)),
        )
        write_record(self.prepared.record_path, self.record)
        if isinstance(exc, GefregError):
            exc.hint = (
                f"{exc.hint + '; ' if exc.hint else ''}run record: {self.prepared.record_path}"
            )
