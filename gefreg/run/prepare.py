"""Everything a run does before its container exists: check the folders, make the missing
ones, check the image, hash the inputs, and draft the record (status ``incomplete``).

Any refusal here is :class:`BadInput` (or the image check's CheckFailed) before a container is
made; the folders made for the run are removed again, while empty, when it stops here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gefreg.engine import ContainerSpec
from gefreg.engine.protocols import RunEngine
from gefreg.errors import BadInput
from gefreg.release.trust import ResolvedImage, verify_image
from gefreg.run.compare import compare_outputs
from gefreg.run.folders import (
    check_disjoint,
    check_inputs,
    check_outputs,
    check_readable_by,
    make_folders,
    remove_made,
)
from gefreg.run.hardening import HARDENED, container_spec
from gefreg.run.logs import LogFacts
from gefreg.run.ownership import Identity
from gefreg.run.record import (
    ContainerFacts,
    InputFacts,
    LimitFacts,
    MountFacts,
    OutputFacts,
    RunRecord,
    ServiceFacts,
    check_new_files,
    host_facts,
    log_paths,
    now,
    timestamp,
)
from gefreg.run.request import RunObserver, RunRequest
from gefreg.run.tree_manifest import TreeManifest, tree_manifests


@dataclass(frozen=True)
class Prepared:
    """A run ready to start: checked folders, the verified image, the input manifests, the
    container spec and the draft record."""

    request: RunRequest
    inputs: Mapping[str, Path]
    outputs: Mapping[str, Path]
    record_path: Path
    identity: Identity
    made: tuple[Path, ...]  # folders this run created (removed again while empty on failure)
    before: Mapping[str, TreeManifest]  # the inputs, hashed before the run
    spec: ContainerSpec
    record: RunRecord

    @property
    def logs(self) -> tuple[Path, Path]:
        return log_paths(self.record_path)


def prepare(request: RunRequest, engine: RunEngine, observer: RunObserver) -> Prepared:
    """Check and make the folders, then look at the image and the inputs (see the module)."""
    service = request.service
    inputs = check_inputs(dict(request.inputs))
    outputs = check_outputs(dict(request.outputs), request.force)
    record_path = request.record.absolute()
    check_new_files(record_path)
    check_disjoint(inputs, outputs, record_path.resolve())
    identity = Identity.of_caller(service.user)
    if identity.separate:
        check_readable_by(inputs, identity.run_uid, identity.run_gid)
    if request.image.trusted and service.origin == "image":
        observer.status(
            f"{service.name} {request.image.version}: the ledger and the record do not describe "
            "this version; using the image's own GEF labels (ports), command and user, and "
            "default limits"
        )
    # the folders before the image: one that cannot be made is refused before any pull
    folders = {f"output {port}": path for port, path in outputs.items()}
    made = make_folders({**folders, "the run record's folder": record_path.parent})
    try:
        image = _checked_image(request.image, engine, observer)
        preexisting = {p: f for p, f in outputs.items() if any(f.iterdir())}
        observer.status("hashing inputs")
        before = tree_manifests(inputs, progress=observer.progress("inputs"))
        check_expected_inputs(before, dict(request.expect_inputs))
        existing = tree_manifests(preexisting) if preexisting else {}
        host = host_facts(engine.facts())
    except BaseException:
        remove_made(made)  # only the folders this run made, and only while still empty
        raise
    spec = container_spec(
        service,
        image.image_id,
        args=request.args,
        inputs=inputs,
        outputs=outputs,
        user=identity.user,
        limits=request.resources,
        run_id=request.run_id,
    )
    record = draft_record(
        request, image, spec, identity, (inputs, outputs), (before, existing), host, record_path
    )
    return Prepared(
        request, inputs, outputs, record_path, identity, tuple(made), before, spec, record
    )


def _checked_image(image: ResolvedImage, engine: RunEngine, observer: RunObserver) -> ResolvedImage:
    shown = image.image_id[:19] or f"{image.repository}@{image.manifest_digest} (pulling)"
    observer.status(f"checking image {shown}")
    return verify_image(engine, image)


def check_expected_inputs(
    seen: Mapping[str, TreeManifest], expected: Mapping[str, TreeManifest]
) -> None:
    """Refuse inputs whose manifests differ from ``expected`` (reproduce), listing the files."""
    if not expected:
        return
    comparison = compare_outputs(expected, seen, ())
    if not comparison.identical:
        raise BadInput(
            "the inputs differ from the recorded ones:\n"
            + "\n".join("  " + line for line in comparison.lines()[:20]),
            "give the recorded inputs (--input PORT=DIR), unchanged",
        )


def draft_record(
    request: RunRequest,
    image: ResolvedImage,
    spec: ContainerSpec,
    identity: Identity,
    folders: tuple[Mapping[str, Path], Mapping[str, Path]],
    manifests: tuple[Mapping[str, TreeManifest], Mapping[str, TreeManifest]],
    host: Mapping[str, object],
    record_path: Path,
) -> RunRecord:
    """The record as written when the container exists and has not started (``incomplete``)."""
    service = request.service
    targets = {p.name: p.path for p in (*service.inputs, *service.outputs)}
    inputs, outputs = folders
    before, existing = manifests
    stdout, stderr = log_paths(record_path)
    return RunRecord(
        id=request.run_id,
        status="incomplete",
        service=ServiceFacts(
            service.name, service.version, image.trusted, service.user, service.origin
        ),
        image=image,
        entrypoint=service.entrypoint,
        command=service.command,
        args=tuple(request.args),
        container=ContainerFacts(str(spec.name), spec.labels),
        mounts=tuple(
            MountFacts(
                "input" if m.read_only else "output", port, str(m.source), m.target, m.read_only
            )
            for m, port in zip(spec.mounts, [*inputs, *outputs], strict=True)
        ),
        hardening=HARDENED,
        limits=LimitFacts(request.resources, request.overridden),
        caller=(identity.uid, identity.gid),
        run_as=identity.user,
        created=timestamp(now()),
        logs=(
            LogFacts(stdout.name, limit=request.resources.logs),
            LogFacts(stderr.name, limit=request.resources.logs),
        ),
        inputs={
            port: InputFacts(str(path), targets[port], before[port])
            for port, path in inputs.items()
        },
        outputs={
            port: OutputFacts(str(path), targets[port], None, existing.get(port))
            for port, path in outputs.items()
        },
        volatile=service.volatile,
        host=dict(host),
        reproduces=request.reproduces,
    )
