"""One task, start to end: stage the inputs, run each executor through the hardened runner
(one run record each), deliver the outputs, and record every step in the task's log.

States: INITIALIZING while staging, RUNNING from the first executor's start, then COMPLETE,
EXECUTOR_ERROR (a release failed, timed out or was killed by a limit, and ``ignore_error`` was
not set), SYSTEM_ERROR (staging, trust, engine or delivery failed — the reason is in
``system_logs``) or CANCELED. Each executor's release is resolved again right before it runs
(the same trust path as at submission), and must still be the digest that was admitted.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gefreg.engine import Engine
from gefreg.errors import BadInput, CheckFailed, GefregError
from gefreg.run.execute import run_service
from gefreg.run.plan import LimitOverrides, apply_overrides
from gefreg.run.request import RunRequest, new_run_id
from gefreg.serve.config import ServeConfig
from gefreg.serve.delivery import deliver, open_new
from gefreg.serve.releases import trusted_release
from gefreg.serve.staging import Canceled, Stager
from gefreg.serve.store import TaskRow, TaskStore
from gefreg.serve.task_plan import ExecutorPlan, TaskPlan
from gefreg.serve.tes_models import TesState
from gefreg.serve.views import log_notes

log = logging.getLogger("gefreg.serve")


def now() -> str:
    from gefreg.serve.api import now as api_now

    return api_now()


@dataclass
class Control:
    """How a worker hears that its task must stop, and tells who may stop its container."""

    canceled: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)  # the server stops
    run_id: str | None = None

    def stopped(self) -> bool:
        return self.canceled.is_set() or self.stopping.is_set()


@dataclass
class TaskExecution:
    config: ServeConfig
    store: TaskStore
    engine: Engine
    row: TaskRow
    control: Control
    stager: Callable[[Callable[[], bool], int], Stager]

    def __post_init__(self) -> None:
        self.plan = TaskPlan.from_json(self.row.plan)
        self.folder = self.config.tasks_dir / self.row.id
        self.log: dict[str, Any] = {
            "start_time": now(),
            "executors": [],
            "outputs": [],
            "system_logs": list(self.plan.warnings),
            "staged": [],
        }

    def save(self) -> None:
        self.store.update_log(self.row.id, self.log)

    def run(self) -> TesState:
        """Carry the task out; always leaves it in a final state with its reason logged."""
        self.save()
        try:
            state = self._run()
        except Canceled:
            state = TesState.CANCELED
        except GefregError as exc:
            state = TesState.SYSTEM_ERROR
            self.log["system_logs"].append(
                exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
            )
        except Exception as exc:
            log.exception("task %s failed", self.row.id)
            state = TesState.SYSTEM_ERROR
            self.log["system_logs"].append(f"internal error (a bug): {exc!r}")
        if state is not TesState.COMPLETE and self.control.canceled.is_set():
            state = TesState.CANCELED
            self.log["system_logs"].append(
                f"canceled by its owner ({now()}); a running container was stopped and removed"
            )
        elif state is not TesState.COMPLETE and self.control.stopping.is_set():
            state = TesState.SYSTEM_ERROR
            self.log["system_logs"].append(
                "the server was stopped while the task ran; its container was stopped"
            )
        self.log["end_time"] = now()
        return self.store.finish(self.row.id, state, self.log)

    def _run(self) -> TesState:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        limit = self.plan.disk or self.config.max_input_bytes
        staged = self.stager(self.control.stopped, limit).stage(self.plan, self.folder)
        self.log["staged"] = staged.files
        self.save()
        outputs: dict[int, dict[str, Path]] = {}
        failed = False
        for number, executor in enumerate(self.plan.executors):
            if self.control.stopped():
                raise Canceled(self.row.id)
            folders, ok = self._executor(number, executor, staged.folders)
            outputs[number] = folders
            if not ok and not executor.ignore_error:
                failed = True
                break
        if self.control.stopped():
            raise Canceled(self.row.id)
        if failed:
            return TesState.EXECUTOR_ERROR
        delivered = deliver(self.plan.outputs, outputs, self.config.data_roots)
        self.log["outputs"] = delivered.files
        self.log["system_logs"] += [f"output left out: {s}" for s in delivered.skipped]
        return TesState.COMPLETE

    def _executor(
        self, number: int, executor: ExecutorPlan, inputs: dict[str, Path]
    ) -> tuple[dict[str, Path], bool]:
        image, face = trusted_release(self.config.settings, self.engine, executor.image)
        if image.manifest_digest != executor.digest:
            raise CheckFailed(
                f"executors[{number}]: {executor.image} is now {image.manifest_digest}, not the "
                f"admitted {executor.digest}; refusing to run something else"
            )
        base = self.folder / "executors" / str(number)
        outputs = {p.name: base / "outputs" / p.name for p in face.outputs}
        limits, overridden = apply_overrides(
            face.resources,
            LimitOverrides(
                memory=None if self.plan.memory is None else str(self.plan.memory),
                cpus=self.plan.cpus,
                disk=None if self.plan.disk is None else str(self.plan.disk),
            ),
        )
        run_id = new_run_id()
        request = RunRequest(
            image=image,
            service=face,
            inputs=tuple((p.name, inputs[_clean(p.path)]) for p in face.inputs),
            outputs=tuple(outputs.items()),
            args=executor.args,
            limits=limits,
            overridden=overridden,
            record=base / "run.json",
            run_id=run_id,
        )
        entry: dict[str, Any] = {
            "release": f"{face.name} {face.version} {image.repository}@{image.manifest_digest}",
            "run_id": run_id,
            "record": str(base / "run.json"),
            "stdout_log": str(base / "run.stdout.log"),
            "stderr_log": str(base / "run.stderr.log"),
            "started": False,
        }
        self.log["executors"].append(entry)
        self.control.run_id = run_id
        self.save()
        if number == 0:
            self.store.set_state(self.row.id, TesState.RUNNING, only_from=[TesState.INITIALIZING])
        entry.update(started=True, start_time=now())
        self.save()
        try:
            result = run_service(request, engine=self.engine)
        except BadInput as exc:  # something about the staged folders: the server's fault
            raise CheckFailed(f"executors[{number}]: {exc.message}", exc.hint) from None
        finally:
            self.control.run_id = None
            entry["end_time"] = now()
        entry.update(exit_code=result.exit_code, status=result.status, error=result.error)
        if not result.succeeded:
            self.log["system_logs"].append(f"executors[{number}] {result.status}: {result.error}")
        entry["notes"] = log_notes(entry["record"])
        folders = {_clean(p.path): outputs[p.name] for p in face.outputs}
        self._copy_logs(executor, folders, entry)
        self.save()
        return folders, result.succeeded

    def _copy_logs(
        self, executor: ExecutorPlan, folders: dict[str, Path], entry: dict[str, Any]
    ) -> None:
        """``stdout``/``stderr`` of the executor, where it asked for them (in an output port)."""
        for key in ("stdout", "stderr"):
            wanted = getattr(executor, key)
            if not wanted:
                continue
            for port, folder in folders.items():
                if wanted.startswith(port.rstrip("/") + "/"):
                    try:
                        fd = open_new(folder, wanted[len(port.rstrip("/")) + 1 :])
                    except (CheckFailed, OSError) as exc:
                        self.log["system_logs"].append(f"{key} not copied to {wanted}: {exc}")
                        break
                    with os.fdopen(fd, "wb") as out, open(entry[f"{key}_log"], "rb") as src:
                        shutil.copyfileobj(src, out)
                    break


def _clean(path: str) -> str:
    from gefreg.serve.admission import clean_path

    return clean_path(path, "port")
