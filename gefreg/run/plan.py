"""From command-line words to a :class:`RunRequest`: resolve the image, find its interface,
apply limit overrides, and map folders onto ports. Nothing runs here."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gefreg import limits as bounds
from gefreg.catalog.entries import base_names, load_entry
from gefreg.engine.protocols import ImageStore
from gefreg.errors import BadInput, CheckFailed
from gefreg.image.interface import ServiceInterface
from gefreg.model import Resources
from gefreg.release.trust import Ledger, ResolvedImage, verify_image
from gefreg.run.image_choice import resolve_image, resolve_untrusted
from gefreg.run.ports import assign_ports
from gefreg.run.record import default_record_path, now
from gefreg.run.request import RunRequest, new_run_id
from gefreg.settings import Settings


@dataclass(frozen=True)
class LimitOverrides:
    """Limits given on the command line (as typed); None keeps the interface's value."""

    memory: str | None = None
    cpus: float | str | None = None
    timeout: str | None = None
    pids: int | str | None = None
    disk: str | None = None
    logs: str | None = None


OPTIONS = {"logs": "--log-limit"}  # the command-line option of a limit, when not --NAME


def apply_overrides(base: Resources, over: LimitOverrides) -> tuple[Resources, tuple[str, ...]]:
    """``base`` with the command line's limits; each must be within :mod:`gefreg.limits`'
    bounds, the same a record, a ledger line and a run record must keep, else BadInput naming
    the option."""
    changes: dict[str, float | int] = {}
    for key in bounds.BOUNDS:
        given = getattr(over, key)
        if given is None:
            continue
        try:
            changes[key] = bounds.parse(key, given)
        except bounds.LimitError as exc:
            raise BadInput(f"{OPTIONS.get(key, '--' + key)} {given!r}: {exc}") from None
    return dataclasses.replace(base, **changes), tuple(changes)  # type: ignore[arg-type]


def choose_interface(
    settings: Settings, engine: ImageStore, image: ResolvedImage
) -> tuple[ResolvedImage, ServiceInterface]:
    """The interface to run ``image`` with, from the first source that describes it:

    1. the ledger's stored interface, when the image is a ledger release that has one;
    2. the catalog record, when its version is the image's;
    3. the image itself (:meth:`ServiceInterface.from_image`: GEF labels, Entrypoint + Cmd,
       User, default limits) — for untrusted images, and for a catalog image of another version
       (by digest, an older build, a release published before the ledger stored interfaces).
       The run record says so (``service.interface: image``).

    Returns the image too: reading a ledger release's own config needs the image, which is
    then pulled by digest from the trusted registry (as the runner would) and carries its ID.
    """
    if image.trusted:
        if image.source == "ledger" and image.interface is not None:
            face = ServiceInterface.from_json(
                image.interface,
                image.interface_source or f"the ledger's interface of {image.name}",
                prefix="interface.",
            )
            if (face.name, face.version) != (image.name, image.version):
                raise CheckFailed(
                    f"the ledger's interface of {image.name}@{image.version} describes "
                    f"{face.name}@{face.version}",
                    "the ledger was edited; check it with gefreg verify",
                )
            return image, face
        entry = load_entry(settings.catalog / image.name, base_names(settings.catalog))
        if entry.spec.version == image.version:
            return image, ServiceInterface.from_spec(entry.spec)
        if not image.image_id and image.manifest_digest and image.repository:
            image = verify_image(engine, image)
    config = engine.image_config(image.image_id) if image.image_id else None
    if config is None:
        raise BadInput(
            f"the engine does not have the image of {image.name} ({image.image_id[:19]})",
            f"build it again (gefreg build {image.name}) or load it",
        )
    return image, ServiceInterface.from_image(image.name, config)


def plan_run(
    settings: Settings,
    engine: ImageStore,
    *,
    target: str | None,
    image_ref: str | None = None,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    args: Sequence[str] = (),
    limits: LimitOverrides | None = None,
    record: Path | None = None,
    force: bool = False,
    overwrite: bool = False,
    allow_untrusted: bool = False,
    allow_yanked: bool = False,
    ledger: Ledger | None = None,
) -> RunRequest:
    """Everything ``gefreg run`` decides before it runs anything."""
    if (target is None) == (image_ref is None):
        raise BadInput("give a catalog NAME[@VERSION] or --image REF (exactly one)")
    if image_ref is not None:
        if not allow_untrusted:
            raise BadInput(
                f"--image {image_ref}: refusing an image that is not in the catalog",
                "pass --allow-untrusted to run it anyway",
            )
        image = resolve_untrusted(engine, image_ref)
    else:
        assert target is not None
        image = resolve_image(
            settings,
            target,
            engine=engine,
            ledger=ledger,
            allow_untrusted=allow_untrusted,
            allow_yanked=allow_yanked,
        )
    image, service = choose_interface(settings, engine, image)
    resources, overridden = apply_overrides(service.resources, limits or LimitOverrides())
    run_id = new_run_id()
    return RunRequest(
        image=image,
        service=service,
        inputs=tuple(assign_ports("input", service.inputs, inputs).items()),
        outputs=tuple(assign_ports("output", service.outputs, outputs).items()),
        args=tuple(args),
        limits=resources,
        overridden=overridden,
        record=record or default_record_path(settings.state_dir, service.name, run_id, now()),
        force=force,
        overwrite=overwrite,
        run_id=run_id,
    )
