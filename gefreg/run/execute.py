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
read-only, outputs empty unless ``force``. The service never sees the output folders: it
writes into fresh staging folders gefreg owns (:mod:`gefreg.run.staging`, on a file system of
the disk limit's size when the kernel can keep it); afterwards its files are handed back to the
caller (:mod:`gefreg.run.ownership`) and moved into the output folders, a taken name being a
conflict unless ``overwrite`` (:mod:`gefreg.run.delivery`). With ``force`` what was there is
untouched and listed in the record; the runner deletes nothing of the user's.

Ctrl-C stops and removes the container and records ``interrupted`` (then re-raises); an engine
that goes away records ``incomplete`` and raises :class:`EnvironmentFailure` (exit 3).
"""

from __future__ import annotations

import dataclasses

from gefreg.engine.protocols import RunEngine
from gefreg.limits import human_size
from gefreg.model import Resources
from gefreg.run.container import ContainerRun, Ended
from gefreg.run.delivery import Delivery
from gefreg.run.prepare import Prepared, prepare
from gefreg.run.record import write_record
from gefreg.run.request import RunObserver, RunRequest, RunResult
from gefreg.run.tree_manifest import TreeReading, read_trees


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
    return collect(prepared, container, ended, obs)


def collect(
    prepared: Prepared, container: ContainerRun, ended: Ended, obs: RunObserver
) -> RunResult:
    """Hash the outputs (in staging: exactly what the service made) and the inputs again,
    deliver the outputs, decide the verdict and write the final record."""
    assert container.staging is not None
    record = container.record
    if ended.sizes is None:
        obs.status("hashing outputs")
        outputs_read = read_trees(container.staging.folders, progress=obs.progress("outputs"))
    else:  # holes past the disk limit: reading them could take days
        outputs_read = TreeReading({}, {})
    after = outputs_read.manifests
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
    obs.status("moving the outputs into place")
    delivered, notes = container.deliver()
    limits = prepared.request.resources
    status, error = verdict(ended, limits, all(f.unchanged for f in inputs.values()))
    problems = [
        (outputs_read.describe(), "the outputs could not all be hashed: {}"),
        (
            "; ".join(str(p) for p in container.unreturned[:3]),
            "the outputs could not all be handed back: {}",
        ),
        (_conflicts(delivered, prepared), "{}"),
        ("; ".join([*delivered.problems[:3], *notes]), "the outputs could not all be moved: {}"),
    ]
    for found, sentence in problems:
        if found and status == "succeeded":
            status, error = "failed", sentence.format(found)
    state = ended.state
    record = dataclasses.replace(
        record,
        status=status,
        exit_code=state.exit_code,
        oom_killed=state.oom_killed,
        error=error,
        logs=ended.logs or record.logs,
        container=dataclasses.replace(
            record.container, started_at=state.started_at, finished_at=state.finished_at
        ),
        inputs=inputs,
        outputs={
            port: dataclasses.replace(facts, manifest=after.get(port))
            for port, facts in record.outputs.items()
        },
        delivery=delivered,
    )
    write_record(prepared.record_path, record)
    return RunResult(prepared.record_path, record, prepared.before, after)


def _conflicts(delivered: Delivery, prepared: Prepared) -> str | None:
    if not delivered.conflicts:
        return None
    shown = ", ".join(delivered.conflicts[:3])
    more = f" and {len(delivered.conflicts) - 3} more" if len(delivered.conflicts) > 3 else ""
    kept = ", ".join(delivered.kept) or "the staging folder"
    return (
        f"output conflict: {shown}{more} already exist; nothing was overwritten, the new "
        f"outputs are in {kept} (--overwrite replaces existing files)"
    )


def verdict(ended: Ended, limits: Resources, inputs_ok: bool) -> tuple[str, str | None]:
    """The status of an ended run and, unless it succeeded, a sentence saying why."""
    state = ended.state
    if ended.start_error:
        return "failed", ended.start_error
    if ended.timed_out:
        return "timed-out", f"killed after the {limits.timeout:g} s timeout"
    if ended.over_disk:
        error = f"output limit exceeded (disk {human_size(limits.disk)})"
        if ended.sizes is not None:
            error += f": the files' sizes add up to {ended.sizes} bytes; they were not hashed"
        return "failed", error
    if not inputs_ok:
        return "failed", "the inputs changed during the run"
    if state.oom_killed:
        return "failed", f"killed by the memory limit ({limits.memory} bytes): out of memory"
    if state.exit_code == 0:
        return "succeeded", None
    if state.exit_code == 137:
        return "failed", "killed (SIGKILL, exit code 137)"
    if state.exit_code == 153:
        return "failed", f"a file grew past the file size limit ({human_size(limits.disk)})"
    return "failed", f"the service exited with code {state.exit_code}"
