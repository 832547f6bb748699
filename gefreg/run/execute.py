"""The runner: one pinned image, hardened, against mounted folders, and a record of the run.

:func:`run_service` is the library entry point (``gefreg run``, ``reproduce`` and ``test`` call
it; so can a workflow engine or a server, see :mod:`gefreg.run.request`). A run is three steps:

1. **prepare** (:mod:`gefreg.run.prepare`): check the folders, create the missing output
   folders and the record's folder (any failure is BadInput, before the image is checked or
   pulled), check the image, hash the inputs (streamed, in parallel);
2. **execute** (:class:`gefreg.run.container.ContainerRun`): create the container, write the
   record with status ``incomplete``, check the hardening, start, wait up to the timeout (then
   SIGKILL: ``timed-out``), save the logs, remove the container, hand the outputs back;
3. **collect** (:func:`collect`): hash the outputs, hash the inputs again (they must be
   unchanged) and write the final record: ``succeeded`` only when the service exited 0, the
   outputs were hashed and the inputs were unchanged, otherwise ``failed`` or ``timed-out``.

Hardening and limits: :mod:`gefreg.run.hardening`. Folders: :mod:`gefreg.run.folders` — inputs
read-only, outputs empty unless ``force`` (the runner never deletes or moves anything: with
``force`` the service may add to the folder and overwrite what its user may write, and the
record lists what was there before). When the caller is root the output folders are opened to
the service's uid for the run and every file the service made is handed back to the caller
afterwards, never one that was there before (:mod:`gefreg.run.ownership`).

Ctrl-C stops and removes the container and records ``interrupted`` (then re-raises); an engine
that goes away records ``incomplete`` and raises :class:`EnvironmentFailure` (exit 3).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from gefreg.engine.protocols import RunEngine
from gefreg.model import Resources
from gefreg.run.container import ContainerRun, Ended
from gefreg.run.prepare import Prepared, prepare
from gefreg.run.record import LogFacts, RunRecord, write_record
from gefreg.run.request import RunObserver, RunRequest, RunResult
from gefreg.run.tree_manifest import read_trees
from gefreg.run.tree_walk import Problem


def run_service(
    request: RunRequest, *, engine: RunEngine, observer: RunObserver | None = None
) -> RunResult:
    """Run ``request`` and write its record. Returns for succeeded, failed and timed-out runs;
    raises BadInput before anything starts, EnvironmentFailure when the engine fails, and
    KeyboardInterrupt after recording an interrupted run."""
    obs = observer or RunObserver()
    prepared = prepare(request, engine, obs)
    with ContainerRun(engine, prepared, obs) as container:
        ended = container.run()
    return collect(prepared, container.record, ended, obs, container.unreturned)


def collect(
    prepared: Prepared,
    record: RunRecord,
    ended: Ended,
    obs: RunObserver,
    unreturned: Sequence[Problem] = (),
) -> RunResult:
    """Hash the outputs and the inputs again, decide the verdict and write the final record
    (``unreturned``: outputs that could not be handed back, which fail the run)."""
    obs.status("hashing outputs")
    outputs_read = read_trees(prepared.outputs, progress=obs.progress("outputs"))
    after = outputs_read.manifests
    unreadable = outputs_read.describe()
    obs.status("checking the inputs are unchanged")
    again = read_trees(prepared.inputs, progress=obs.progress("inputs again"))
    inputs = {
        port: dataclasses.replace(
            facts,
            unchanged=port not in again.problems
            and again.manifests[port].root == facts.manifest.root,
            root_after=again.manifests[port].root,
        )
        for port, facts in record.inputs.items()
    }
    outputs = {
        port: dataclasses.replace(facts, manifest=after.get(port))
        for port, facts in record.outputs.items()
    }
    inputs_ok = all(facts.unchanged for facts in inputs.values())
    status, error = verdict(ended, prepared.request.resources, inputs_ok)
    if status == "succeeded" and unreadable:
        status, error = "failed", f"the outputs could not all be hashed: {unreadable}"
    if status == "succeeded" and unreturned:
        listed = "; ".join(str(p) for p in unreturned[:3])
        status, error = "failed", f"the outputs could not all be handed back: {listed}"
    stdout, stderr = prepared.logs
    state = ended.state
    record = dataclasses.replace(
        record,
        status=status,
        exit_code=state.exit_code,
        oom_killed=state.oom_killed,
        error=error,
        logs=(LogFacts.of(stdout), LogFacts.of(stderr)),
        container=dataclasses.replace(
            record.container, started_at=state.started_at, finished_at=state.finished_at
        ),
        inputs=inputs,
        outputs=outputs,
    )
    write_record(prepared.record_path, record)
    return RunResult(prepared.record_path, record, prepared.before, after)


def verdict(ended: Ended, limits: Resources, inputs_ok: bool) -> tuple[str, str | None]:
    """The status of an ended run and, unless it succeeded, a sentence saying why."""
    state = ended.state
    if ended.start_error:
        return "failed", ended.start_error
    if ended.timed_out:
        return "timed-out", f"killed after the {limits.timeout:g} s timeout"
    if not inputs_ok:
        return "failed", "the inputs changed during the run"
    if state.oom_killed:
        return "failed", f"killed by the memory limit ({limits.memory} bytes): out of memory"
    if state.exit_code == 0:
        return "succeeded", None
    if state.exit_code == 137:
        return "failed", "killed (SIGKILL, exit code 137)"
    return "failed", f"the service exited with code {state.exit_code}"
