"""A run record read back, every field checked: what ``reproduce`` re-runs.

A record is a file anyone may have edited, so each field is read through
:class:`gefreg.image.interface_fields.Fields` (a malformed one is BadInput naming the file,
line and field), the interface it describes must pass
:func:`gefreg.image.interface.check_interface` like any other (a mount at ``/bin`` is refused,
not mounted), and its ``image`` is only a claim for :func:`gefreg.release.trust.trust_image`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput
from gefreg.image.interface import ServiceInterface, check_interface
from gefreg.image.interface_fields import Fields
from gefreg.model import DEFAULT_UID, Port
from gefreg.release.trust import ImageClaim
from gefreg.run.record import read_run_record
from gefreg.run.tree_manifest import TreeManifest


@dataclass(frozen=True)
class RecordedRun:
    """The parts of a successful run record a re-run needs."""

    id: str
    claim: ImageClaim
    interface: ServiceInterface
    args: tuple[str, ...]
    inputs: Mapping[str, tuple[str, TreeManifest]]  # port -> (host folder, manifest)
    outputs: Mapping[str, tuple[str, TreeManifest]]


def read_recorded_run(path: Path) -> RecordedRun:
    """The run recorded at ``path``; BadInput naming the field when anything is off."""
    record = read_run_record(path)
    where = str(path)
    if record["status"] != "succeeded":
        raise BadInput(
            f"{path}: the recorded run {record['status']}; only a successful run can be reproduced"
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    f = Fields(where, text=text)
    claim = recorded_claim(record, f)
    face = interface_from_record(record, where, text)
    if face.name != claim.name:
        raise f.fail("service.name", f"the image's name {claim.name!r}", face.name)
    return RecordedRun(
        f.text(record["id"], "id"),
        claim,
        face,
        f.strings(record["args"], "args"),
        recorded_ports(record, "inputs", [p.name for p in face.inputs], f),
        recorded_ports(record, "outputs", [p.name for p in face.outputs], f),
    )


def recorded_claim(record: Mapping[str, Any], f: Fields) -> ImageClaim:
    """What the record's ``image`` claims, every field checked (BadInput naming the field).
    Its ``trusted`` is not part of the claim: trust is re-established from the catalog."""
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
    record: Mapping[str, Any], side: str, ports: Sequence[str], f: Fields
) -> dict[str, tuple[str, TreeManifest]]:
    """``{port: (path, manifest)}`` of the record's ``inputs`` or ``outputs``, which must name
    exactly the ports of its mounts; every field checked."""
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
            TreeManifest.from_json(f.get(entry, "manifest", name), f"{f.at(name)}: {name}"),
        )
    return out


def interface_from_record(
    record: Mapping[str, Any], where: str = "run record", text: str | None = None
) -> ServiceInterface:
    """The interface a run record was made with (ports from its mounts). Every field it reads
    is checked, and the interface must pass :func:`check_interface`: BadInput naming the field
    (and its line, given the record's ``text``), never a KeyError, never a mount at /bin."""
    f = Fields(where, text=text)
    top = f.mapping(record, "")
    service = f.mapping(f.get(top, "service"), "service")
    limits = f.mapping(f.get(top, "limits"), "limits")
    ports: dict[str, list[Port]] = {"input": [], "output": []}
    names: dict[str, str] = {"user": "service.user"}  # interface field -> record field
    for i, item in enumerate(f.sequence(f.get(top, "mounts"), "mounts")):
        name = f"mounts[{i}]"
        mount = f.mapping(item, name)
        side = f.get(mount, "side", name)
        if side not in ports:
            raise f.fail(f"{name}.side", "'input' or 'output'", side)
        port = f.text(f.get(mount, "port", name), f"{name}.port")
        target = f.text(f.get(mount, "target", name), f"{name}.target")
        index = len(ports[side])
        names[f"{side}s[{index}].name"] = f"{name}.port"
        names[f"{side}s[{index}].path"] = f"{name}.target"
        ports[side].append(Port(port, target))
    entrypoint = top.get("entrypoint")
    face = ServiceInterface(
        name=f.text(f.get(service, "name", "service"), "service.name"),
        version=f.optional_text(service.get("version"), "service.version"),
        inputs=tuple(ports["input"]),
        outputs=tuple(ports["output"]),
        command=f.strings(f.get(top, "command"), "command"),
        user=f.uid(service.get("user", DEFAULT_UID), "service.user"),
        resources=f.resources(limits, "limits", timeout_key="timeout_s"),
        volatile=f.strings(top.get("volatile") or [], "volatile"),
        entrypoint=None if entrypoint is None else f.strings(entrypoint, "entrypoint"),
        origin="run-record",
    )

    def own(field: str) -> str:
        if field.startswith("resources."):
            key = field.removeprefix("resources.")
            return "limits." + ("timeout_s" if key == "timeout" else key)
        return names.get(field, field)

    return check_interface(face, where, field_name=own, line=f.at)
