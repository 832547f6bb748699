"""One run's container, owned from creation to removal: :class:`ContainerRun`.

Entering makes the run's staging folders (:mod:`gefreg.run.staging`: the only folders the
service can write, on a file system of the disk limit's size when the kernel can keep it),
creates the container with them mounted at the output ports, writes the record with status
``incomplete`` and checks that the engine applied the hardening. :meth:`ContainerRun.run`
attaches to the container's output (:mod:`gefreg.run.logs`: captured while it runs, capped),
starts it, waits up to the timeout (then SIGKILL: ``timed-out``) while the disk limit is kept,
and removes it. Leaving — however it is left — hands the service's files back to the caller;
after an exception (Ctrl-C, an engine failure, a hardening mismatch) it first stops the capture
and removes the container with the engine it was given, delivers what the service made (never
lost, never over the user's files), removes what the run made when no container ever existed,
and records the run as ``interrupted`` or ``incomplete`` (then the exception goes on).
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
from gefreg.run.delivery import Delivery, deliver
from gefreg.run.folders import remove_made
from gefreg.run.hardening import applied, mismatches, staged
from gefreg.run.logs import DRAIN_S, LogCapture, LogFacts
from gefreg.run.ownership import hand_back
from gefreg.run.prepare import Prepared
from gefreg.run.record import RunRecord, now, timestamp, write_record
from gefreg.run.request import RunObserver
from gefreg.run.staging import DiskWatch, Staging, create_staging, remove_staging
from gefreg.run.tree_walk import Problem

KILL_GRACE_S = 30.0


@dataclass(frozen=True)
class Ended:
    """How the container ended, as the engine saw it, and what gefreg saw around it."""

    state: ContainerState
    timed_out: bool
    start_error: str | None
    over_disk: bool = False
    logs: tuple[LogFacts, LogFacts] | None = None
    sizes: int | None = None  # the files' sizes added up, when holes took them past the limit


class ContainerRun:
    """The container, staging folders and log capture of one prepared run (see the module)."""

    def __init__(self, engine: ContainerRuntime, prepared: Prepared, observer: RunObserver) -> None:
        self.engine = engine
        self.prepared = prepared
        self.observer = observer
        self.record: RunRecord = prepared.record
        self.spec = prepared.spec
        self.container: str | None = None
        self.staging: Staging | None = None
        self.capture: LogCapture | None = None
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
        limits = p.request.resources
        self.staging = create_staging(p.outputs, p.request.run_id, p.identity, limits.disk)
        self.spec = staged(p.spec, p.request.service, self.staging.folders)
        self.container = self.engine.create_container(self.spec)
        self._update(
            container=dataclasses.replace(self.record.container, id=self.container),
            disk_enforced_by=self.staging.enforced_by,
        )
        write_record(p.record_path, self.record, new=True)
        self.written = True
        state = self.engine.inspect_container(self.container)
        seen = applied(state)
        self._update(applied=seen, environment=dict(e.partition("=")[::2] for e in state.env))
        problems = mismatches(self.spec, seen)
        if problems:
            raise EnvironmentFailure(
                "the engine did not apply the hardening asked for: " + "; ".join(problems),
                "refusing to start the service; check the engine version and its cgroups",
            )

    def run(self) -> Ended:
        """Start the container, wait for it (killing it at the timeout or past the disk
        limit), keep its logs, remove it."""
        assert self.container is not None and self.staging is not None
        engine, container = self.engine, self.container
        limits = self.prepared.request.resources
        self.observer.status(
            f"running {self.prepared.request.service.name} in container {container[:12]} "
            f"(timeout {limits.timeout:g} s, memory {limits.memory // 1024**2} MiB, "
            f"{limits.cpus:g} CPUs, {limits.pids} pids, disk {limits.disk // 1024**2} MiB)"
        )
        on_line = self.observer.output if self.observer.follows else None
        self.capture = LogCapture(self.prepared.logs, limits.logs, on_line)
        self.capture.start(engine.attach_output(container))
        watch = DiskWatch(self.staging, lambda: engine.kill_container(container))
        self._update(started=timestamp(now()))
        self.t0 = deadline = time.monotonic()
        deadline += limits.timeout
        start_error = None
        try:
            engine.start_container(container)
            watch.start()
            code = engine.wait_container(container, limits.timeout)
        except StartFailed as exc:
            start_error, code = exc.message, -1
        self._update(ended=timestamp(now()), duration_s=self._duration())
        if code is None:
            self.observer.status(f"timed out after {limits.timeout:g} s: killing the container")
            engine.kill_container(container)
            engine.wait_container(container, KILL_GRACE_S)
        watch.finish()
        self.capture.finish(max(0.0, deadline - time.monotonic()) + DRAIN_S)
        state = engine.inspect_container(container)
        engine.remove_container(container)
        self.container = None
        sizes, limit = self.staging.sizes(), self.staging.limit
        over = watch.exceeded or sizes > limit or self.staging.full()
        big = sizes if sizes > limit and sizes > self.staging.used() else None  # holes, mostly
        return Ended(state, code is None, start_error, over, self.capture.facts(), sizes=big)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self._release()
            return
        self._say("stopping: ending the log capture, removing the container")
        if self.capture is not None:
            self.capture.stop()
        self._abandon()
        notes: list[str] = []
        with contextlib.suppress(OSError):  # never hide why the run stopped
            self._say("stopping: handing back and delivering what the service made")
            self._release()
            notes = self._deliver_anyway()
            if self.record.container.id is None:  # no container was made: nothing ran
                remove_made(list(self.prepared.made))
        if self.written:
            self._record_stop(exc, notes)

    def deliver(self) -> tuple[Delivery, list[str]]:
        """Move the outputs into the user's folders and remove the staging folders."""
        assert self.staging is not None
        done = deliver(self.staging, self.prepared.request.overwrite)
        notes = remove_staging(self.staging, delivered=not done.problems)
        return done, notes

    def _deliver_anyway(self) -> list[str]:
        """After a failure: what the service made is delivered (or kept), never lost."""
        if self.staging is None:
            return []
        if self.container is not None:  # still there (the engine is gone): it may write on
            return [f"the outputs stay in {next(iter(self.staging.folders.values())).parent}"]
        done, notes = self.deliver()
        self._update(delivery=done)
        return [*done.problems, *notes]

    def _say(self, step: str) -> None:
        """A step of stopping, shown (and timed) like any other: after Ctrl-C the user sees
        what gefreg still does, and how long it took."""
        with contextlib.suppress(Exception):  # an observer never keeps a run from stopping
            self.observer.status(step)

    def _update(self, **changes: object) -> None:
        self.record = dataclasses.replace(self.record, **changes)  # type: ignore[arg-type]

    def _duration(self) -> float | None:
        return None if self.t0 is None else round(time.monotonic() - self.t0, 3)

    def _abandon(self) -> None:
        """Stop and remove the container after an interruption or an engine failure, as far as
        the engine still lets us."""
        if self.container is None:
            return
        with contextlib.suppress(Exception):
            self.engine.kill_container(self.container)
        with contextlib.suppress(Exception):
            self.engine.remove_container(self.container)
            self.container = None

    def _release(self) -> None:
        """Give the service's files back to the caller (set-uid bits cleared)."""
        ids = self.prepared.identity
        if ids.separate and self.staging is not None:
            handed = [
                hand_back(folder, ids.run_uid, ids.uid, ids.gid)
                for folder in self.staging.folders.values()
            ]
            self.unreturned = tuple(p for h in handed for p in h.problems)
            self._update(handed_back=sum(h.count for h in handed))

    def _record_stop(self, exc: BaseException, notes: list[str]) -> None:
        interrupted = isinstance(exc, KeyboardInterrupt)
        record = self.record
        duration = record.duration_s
        if record.started and duration is None:
            duration = self._duration()
        if interrupted:
            error = "interrupted (Ctrl-C): the container was stopped and removed"
        else:
            error = exc.message if isinstance(exc, GefregError) else repr(exc)
        logs = self.capture.facts() if self.capture is not None else record.logs
        self._update(
            status="interrupted" if interrupted else "incomplete",
            ended=record.ended or timestamp(now()),
            duration_s=duration,
            error="; ".join([error, *notes]),
            logs=logs,
        )
        write_record(self.prepared.record_path, self.record)
        if isinstance(exc, GefregError):
            where = f"run record: {self.prepared.record_path}"
            exc.hint = f"{exc.hint}; {where}" if exc.hint else where
