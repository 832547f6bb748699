"""Re-run a recorded run and say whether it reproduced.

The re-run uses the same image — what the record says about it is only a claim: trust is
re-established from the catalog (:func:`gefreg.release.trust.trust_image`: a release in the
ledger of the configured registry, or a build gefreg made, or with ``allow_untrusted`` the
engine's own image, recorded as untrusted) — the same command, arguments and limits, and the
same inputs — at their recorded paths or given anew, refused
unless their manifests equal the recorded ones. The new outputs go to ``--output DIR`` (one
sub-folder per output port) or next to the new run's own record, and are compared file by file
with the recorded outputs. Patterns the service declared ``volatile`` (carried in the record)
and extra ``--ignore`` patterns are set aside and reported as ignored, never silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.engine.protocols import RunEngine
from gefreg.release.ledger import CatalogLedger
from gefreg.release.trust import trust_image
from gefreg.run.compare import Comparison, compare_outputs
from gefreg.run.execute import run_service
from gefreg.run.ports import assign_ports
from gefreg.run.record import default_record_path, now
from gefreg.run.recorded import read_recorded_run
from gefreg.run.request import RunObserver, RunRequest, RunResult, new_run_id
from gefreg.settings import Settings
from gefreg.words import count


@dataclass(frozen=True)
class ReproduceReport:
    original: Path
    original_id: str
    rerun: RunResult
    comparison: Comparison
    volatile: tuple[str, ...]
    extra_ignores: tuple[str, ...]

    @property
    def identical(self) -> bool:
        return self.rerun.succeeded and self.comparison.identical

    def lines(self) -> list[str]:
        out = []
        if not self.rerun.succeeded:
            out.append(f"the re-run {self.rerun.status}: {self.rerun.error}")
        out += self.comparison.lines()
        verdict = "identical" if self.identical else "DIFFERS"
        out.append(
            f"{verdict}: {count(self.comparison.same, 'file', 'files')} the same, "
            f"{len(self.comparison.differences)} different, "
            f"{len(self.comparison.ignored)} ignored"
        )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "original": str(self.original),
            "original_id": self.original_id,
            "rerun": str(self.rerun.record_path),
            "rerun_status": self.rerun.status,
            "rerun_error": self.rerun.error,
            "volatile": list(self.volatile),
            "extra_ignores": list(self.extra_ignores),
            **self.comparison.to_json(),
        }


def reproduce(
    settings: Settings,
    engine: RunEngine,
    record_path: Path,
    *,
    output: Path | None = None,
    inputs: Sequence[str] = (),
    ignore: Sequence[str] = (),
    allow_untrusted: bool = False,
    allow_yanked: bool = False,
    observer: RunObserver | None = None,
) -> ReproduceReport:
    original = read_recorded_run(record_path)
    service = original.interface
    image = trust_image(
        settings,
        engine,
        original.claim,
        ledger=CatalogLedger(settings),
        allow_untrusted=allow_untrusted,
        allow_yanked=allow_yanked,
    )
    overrides = assign_ports("input", service.inputs, inputs, every_port=False)
    folders = {port: overrides.get(port, Path(path)) for port, (path, _) in original.inputs.items()}
    expected_inputs = {port: manifest for port, (_, manifest) in original.inputs.items()}
    expected_outputs = {port: manifest for port, (_, manifest) in original.outputs.items()}
    run_id = new_run_id()
    new_record = default_record_path(settings.state_dir, service.name, run_id, now())
    base = output if output is not None else new_record.parent / "outputs"
    request = RunRequest(
        image=image,
        service=service,
        inputs=tuple(folders.items()),
        outputs=tuple((p.name, base / p.name) for p in service.outputs),
        args=original.args,
        limits=service.resources,
        record=new_record,
        expect_inputs=tuple(expected_inputs.items()),
        reproduces=original.id,
        run_id=run_id,
    )
    rerun = run_service(request, engine=engine, observer=observer)
    volatile = service.volatile
    comparison = compare_outputs(expected_outputs, rerun.outputs, (*volatile, *ignore))
    return ReproduceReport(record_path, original.id, rerun, comparison, volatile, tuple(ignore))
