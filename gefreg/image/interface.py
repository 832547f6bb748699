"""What a service needs from whoever runs it: its ports, command, user, limits and volatile
outputs — and the rules every interface obeys, whatever it was read from.

Where an interface comes from (``origin``, written into the run record as
``service.interface``):

* ``ledger`` — the interface the release ledger stored when the version was published
  (:meth:`ServiceInterface.to_json` / :meth:`ServiceInterface.from_json`);
* ``record`` — the catalog record (:meth:`ServiceInterface.from_spec`), for an image of the
  record's own version;
* ``image`` — the image itself (:meth:`ServiceInterface.from_image`): ports from its GEF labels,
  the command as Docker combines ``Entrypoint`` and ``Cmd``, its ``User``, default limits — for
  untrusted images and for catalog images of another version that the ledger has no interface
  for;
* ``run-record`` — a run record (:func:`gefreg.run.recorded.interface_from_record`), so
  ``reproduce`` runs what the record says ran.

Labels, ledger lines and run records are as untrusted as the images and files they come from,
so each interface read from them passes :func:`check_interface` — the same rules the catalog
record's schema applies (port names once per side; port paths absolute, free of ``..``, hiding
no system folder, none inside another; a non-root user; limits within :mod:`gefreg.limits`):
an output port at ``/bin`` in a ledger line is exit 2 naming the file, line and field, never a
mount.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gefreg import limits
from gefreg.errors import BadInput
from gefreg.image.interface_fields import Fields
from gefreg.image.labels import numbered_ports
from gefreg.model import DEFAULT_UID, PORT_NAME_RE, Port, Resources, ServiceSpec
from gefreg.validators import check_port_path, overlapping


@dataclass(frozen=True)
class ServiceInterface:
    """``command`` is what replaces the image's ``Cmd``. ``entrypoint`` None keeps the image's
    ``ENTRYPOINT`` (catalog records: their ``command`` follows it); a tuple replaces it (the
    empty tuple clears it, so ``command`` is the whole program line)."""

    name: str
    version: str | None
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    command: tuple[str, ...]
    user: int = DEFAULT_UID
    resources: Resources = field(default_factory=Resources)
    volatile: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    origin: str = field(default="record", compare=False)

    @classmethod
    def from_spec(cls, spec: ServiceSpec) -> ServiceInterface:
        return cls(
            name=spec.name,
            version=spec.version,
            inputs=spec.inputs,
            outputs=spec.outputs,
            command=spec.command,
            user=spec.user,
            resources=spec.resources,
            volatile=spec.volatile,
            origin="record",
        )

    @classmethod
    def from_labels(
        cls, name: str, labels: Mapping[str, str], command: Sequence[str]
    ) -> ServiceInterface:
        """An interface read from an image's GEF labels (ports); limits are the defaults."""
        sides = numbered_ports(labels)
        keys: dict[str, str] = {}  # the label of each port field, for messages
        ports: dict[str, tuple[Port, ...]] = {}
        for side, found in sides.items():
            usable = [(n, p) for n, p in found if p.get("name") and p.get("path")]
            for i, (n, _) in enumerate(usable):
                for part in ("name", "path"):
                    keys[f"{side}s[{i}].{part}"] = f"eudat.gef.service.{side}.{n}.{part}"
            ports[side] = tuple(
                Port(p["name"], p["path"], p.get("type"), p.get("filename")) for _, p in usable
            )
        if not ports["input"] and not ports["output"]:
            raise BadInput(
                f"image {name} declares no GEF ports (eudat.gef.service.input.N.* labels)",
                "only images with GEF port labels can be run; add the service to the catalog",
            )
        face = cls(
            name=name,
            version=labels.get("eudat.gef.service.version"),
            inputs=ports["input"],
            outputs=ports["output"],
            command=tuple(command),
            origin="image",
        )
        return check_interface(
            face,
            f"image {name}",
            field_name=lambda f: f"GEF label {keys.get(f, f)}",
            hint="gefreg mounts ports only where a catalog record could",
        )

    @classmethod
    def from_image(cls, name: str, config: Mapping[str, Any]) -> ServiceInterface:
        """An interface from an image's config (``docker inspect`` ``Config``): ports from its
        GEF labels, the command as Docker combines ``Entrypoint`` and ``Cmd`` (run with the
        entrypoint cleared, so exactly that runs), the uid of its ``User`` (never root: a
        missing, named or root user becomes the default uid) and default limits."""
        entrypoint = _argv(config.get("Entrypoint"))
        cmd = _argv(config.get("Cmd"))
        command = (*entrypoint, *cmd)
        if not command:
            raise BadInput(
                f"image {name} has neither an ENTRYPOINT nor a CMD: nothing to run",
                "add the service to the catalog, or give it a command",
            )
        face = cls.from_labels(name, config.get("Labels") or {}, command)
        return dataclasses.replace(face, user=image_uid(config.get("User")), entrypoint=())

    def to_json(self) -> dict[str, Any]:
        """JSON-safe (what the release ledger stores); :meth:`from_json` reads it back."""
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "inputs": [_port_json(p) for p in self.inputs],
            "outputs": [_port_json(p) for p in self.outputs],
            "command": list(self.command),
            "user": self.user,
            "resources": dataclasses.asdict(self.resources),
            "volatile": list(self.volatile),
        }
        if self.entrypoint is not None:
            data["entrypoint"] = list(self.entrypoint)
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "interface", prefix: str = "") -> ServiceInterface:
        """The inverse of :meth:`to_json`, checked by :func:`check_interface`; anything
        malformed is BadInput naming ``where`` and the field (``prefix`` + its name)."""
        f = Fields(where)
        top = f.mapping(data, prefix.rstrip("."))
        resources = f.mapping(f.get(top, "resources", prefix.rstrip(".")), f"{prefix}resources")
        entrypoint = top.get("entrypoint")
        face = cls(
            name=f.text(f.get(top, "name", prefix.rstrip(".")), f"{prefix}name"),
            version=f.optional_text(top.get("version"), f"{prefix}version"),
            inputs=f.ports(f.get(top, "inputs", prefix.rstrip(".")), f"{prefix}inputs"),
            outputs=f.ports(f.get(top, "outputs", prefix.rstrip(".")), f"{prefix}outputs"),
            command=f.strings(f.get(top, "command", prefix.rstrip(".")), f"{prefix}command"),
            user=f.uid(top.get("user", DEFAULT_UID), f"{prefix}user"),
            resources=f.resources(resources, f"{prefix}resources", timeout_key="timeout"),
            volatile=f.strings(top.get("volatile") or [], f"{prefix}volatile"),
            entrypoint=None if entrypoint is None else f.strings(entrypoint, f"{prefix}entrypoint"),
            origin="ledger",
        )
        return check_interface(face, where, field_name=lambda name: prefix + name)


def _argv(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # the shell form is stored as a list by the engine; be lenient
        return (value,)
    return tuple(str(v) for v in value)


def image_uid(user: Any) -> int:
    """The uid of an image's ``User`` (``uid``, ``uid:gid``); the default uid for a missing,
    named or root user (names cannot be looked up without the image's /etc/passwd)."""
    uid = str(user or "").partition(":")[0].strip()
    if uid.isdigit() and 0 < int(uid) <= 65534:
        return int(uid)
    return DEFAULT_UID


def _port_json(port: Port) -> dict[str, Any]:
    data = {"name": port.name, "path": port.path}
    if port.type:
        data["type"] = port.type
    if port.filename:
        data["filename"] = port.filename
    return data


class InvalidInterface(BadInput):
    """An interface (from labels, a ledger line, a run record) that breaks gefreg's rules."""


def violations(face: ServiceInterface) -> list[tuple[str, str]]:
    """Every rule ``face`` breaks, as ``(field, message)`` with fields named as in
    :meth:`ServiceInterface.to_json` (``outputs[0].path``, ``user``, ``resources.memory``)."""
    found: list[tuple[str, str]] = []
    paths: list[tuple[str, str]] = []
    for side, ports in (("inputs", face.inputs), ("outputs", face.outputs)):
        seen: set[str] = set()
        for i, port in enumerate(ports):
            if not PORT_NAME_RE.match(port.name):
                found.append((f"{side}[{i}].name", f"{port.name!r} is not a port name"))
            elif port.name in seen:
                found.append((f"{side}[{i}].name", f"port {port.name!r} appears twice"))
            seen.add(port.name)
            problem = check_port_path(port.path)
            if problem:
                found.append((f"{side}[{i}].path", problem))
            else:
                paths.append((f"{side}[{i}].path", port.path))
    overlap = overlapping(paths)
    if overlap:
        first, a, second, b = overlap
        found.append((second, f"port path {b} overlaps {first} ({a})"))
    if not 1 <= face.user <= 65534:
        found.append(("user", f"expected a non-root uid from 1 to 65534, found {face.user}"))
    for key in limits.BOUNDS:
        problem = limits.check(key, getattr(face.resources, key))
        if problem:
            found.append((f"resources.{key}", problem))
    return found


def check_interface(
    face: ServiceInterface,
    where: str,
    *,
    field_name: Callable[[str], str] = str,
    line: Callable[[str], str] | None = None,
    hint: str = "the file was edited or damaged: gefreg mounts ports only where a catalog "
    "record could; use the original",
) -> ServiceInterface:
    """``face`` when it obeys the rules (see the module docstring), else InvalidInterface (exit
    2) listing every broken rule as ``WHERE[:LINE]: field FIELD: message``; ``field_name``
    renames fields to the source's own (``mounts[3].target``), ``line`` locates them."""
    found = violations(face)
    if not found:
        return face
    lines = []
    for name, message in found:
        own = field_name(name)
        lines.append(f"{line(own) if line else where}: field {own}: {message}")
    raise InvalidInterface(
        "\n".join(lines) if len(lines) == 1 else "\n  ".join([f"{len(lines)} problems:", *lines]),
        hint,
    )
