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
from gefreg.errors import BadInput
from gefreg.image.interface import Fields, assign_ports, interface_from_record
from gefreg.release.ledger import CatalogLedger
from gefreg.release.trust import ImageClaim, trust_image
from gefreg.run.compare import Comparison, compare_outputs
from gefreg.run.execute import run_service
from gefreg.run.record import default_record_path, now, read_run_record
from gefreg.run.request import RunObserver, RunRequest, RunResult, new_run_id
from gefreg.run.tree_manifest import TreeManifest
from gefreg.settings import Settings


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
            f"{verdict}: {self.comparison.same} files the same, "
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


def recorded_claim(record: dict[str, Any], where: str) -> ImageClaim:
    """What the record's ``image`` claims, every field checked (BadInput naming the field).
    Its ``trusted`` is not part of the claim: trust is re-established from the catalog."""
    f = Fields(where)
    data = f.mapping(f.get(record, "image"), "image")
    image_id = f.digest(f.get(data, "image_id", "image"), "image.image_id")
    digest = data.get("manifest_digest")
    if digest is not None:
        f.digest(digest, "image.manifest_digest")
    name = f.text(f.get(data, "name", "image"), "image.name")
    texts = {
        key: f.optional_text(data.get(key), f"image.{key}")
        for key in ("version", "registry", "repository", "ref", "source")
    }
    if not isinstance(data.get("trusted"), bool):
        raise f.fail("image.trusted", "true or false", data.get("trusted"))
    return ImageClaim(
        name,
        texts["version"],
        image_id,
        digest,
        texts["registry"],
        texts["repository"],
        texts["ref"] or name,
    )


def recorded_ports(
    record: dict[str, Any], side: str, ports: Sequence[str], where: str
) -> dict[str, tuple[str, TreeManifest]]:
    """``{port: (path, manifest)}`` of the record's ``inputs`` or ``outputs``, which must name
    exactly the ports of its mounts; every field checked."""
    f = Fields(where)
    data = f.mapping(f.get(record, side), side)
    if sorted(data) != sorted(ports):
        raise f.fail(side, f"one entry per {side[:-1]} port ({', '.join(ports)})", sorted(data))
    out = {}
    for port in ports:
        name = f"{side}.{port}"
        entry = f.mapping(data[port], name)
        path = f.text(f.get(entry, "path", name), f"{name}.path")
        out[port] = (
            path,
            TreeManifest.from_json(f.get(entry, "manifest", name), f"{where}: {name}"),
        )
    return out


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
    original = read_run_record(record_path)
    where = str(record_path)
    if original["status"] != "succeeded":
        raise BadInput(
            f"{record_path}: the recorded run {original['status']}; only a successful run can "
            "be reproduced"
        )
    f = Fields(where)
    original_id = f.text(original["id"], "id")
    args = f.strings(original["args"], "args")
    claim = recorded_claim(original, where)
    service = interface_from_record(original, where)
    if service.name != claim.name:
        raise f.fail("service.name", f"the image's name {claim.name!r}", service.name)
    recorded_inputs = recorded_ports(original, "inputs", [p.name for p in service.inputs], where)
    recorded_outputs = recorded_ports(original, "outputs", [p.name for p in service.outputs], where)
    image = trust_image(
        settings,
        engine,
        claim,
        ledger=CatalogLedger(settings),
        allow_untrusted=allow_untrusted,
        allow_yanked=allow_yanked,
    )
    overrides = assign_ports("input", service.inputs, inputs, every_port=False)
    folders = {port: overrides.get(port, Path(path)) for port, (path, _) in recorded_inputs.items()}
    expected_inputs = {port: manifest for port, (_, manifest) in recorded_inputs.items()}
    expected_outputs = {port: manifest for port, (_, manifest) in recorded_outputs.items()}
    run_id = new_run_id()
    new_record = default_record_path(settings.state_dir, service.name, run_id, now())
    base = output if output is not None else new_record.parent / "outputs"
    request = RunRequest(
        image=image,
        service=service,
        inputs=tuple(folders.items()),
        outputs=tuple((p.name, base / p.name) for p in service.outputs),
        args=args,
        limits=service.resources,
        record=new_record,
        expect_inputs=tuple(expected_inputs.items()),
        reproduces=original_id,
        run_id=run_id,
    )
    rerun = run_service(request, engine=engine, observer=observer)
    volatile = service.volatile
    comparison = compare_outputs(expected_outputs, rerun.outputs, (*volatile, *ignore))
    return ReproduceReport(record_path, original_id, rerun, comparison, volatile, tuple(ignore))
