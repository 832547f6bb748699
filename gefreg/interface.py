"""What a service needs from whoever runs it: its ports, command, user, limits and volatile
outputs — and how ``--input``/``--output`` values map onto the ports.

For catalog images this comes from the record (:meth:`ServiceInterface.from_spec`); for an
untrusted image from its GEF labels (:meth:`ServiceInterface.from_labels`); for a re-run from the
run record itself, so ``reproduce`` needs nothing but the record and the image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput
from gefreg.labels import ports_from_labels
from gefreg.model import DEFAULT_UID, PORT_NAME_RE, Port, Resources, ServiceSpec


@dataclass(frozen=True)
class ServiceInterface:
    name: str
    version: str | None
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    command: tuple[str, ...]
    user: int = DEFAULT_UID
    resources: Resources = field(default_factory=Resources)
    volatile: tuple[str, ...] = ()

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
        )

    @classmethod
    def from_labels(
        cls, name: str, labels: Mapping[str, str], command: Sequence[str]
    ) -> ServiceInterface:
        """An interface read from an image's GEF labels (ports); limits are the defaults."""
        sides = ports_from_labels(dict(labels))
        ports = {
            side: tuple(
                Port(p["name"], p["path"]) for p in sides[side] if p.get("name") and p.get("path")
            )
            for side in ("input", "output")
        }
        if not ports["input"] and not ports["output"]:
            raise BadInput(
                f"image {name} declares no GEF ports (eudat.gef.service.input.N.* labels)",
                "only images with GEF port labels can be run; add the service to the catalog",
            )
        return cls(
            name=name,
            version=labels.get("eudat.gef.service.version"),
            inputs=ports["input"],
            outputs=ports["output"],
            command=tuple(command),
        )


def split_port_value(value: str, names: set[str]) -> tuple[str | None, str]:
    """``PORT=DIR`` when the part before '=' is one of ``names``, else ``(None, value)``.

    A prefix that looks like a port name but is not one is an error unless the whole value is
    an existing folder (folder names may contain '=').
    """
    port, sep, rest = value.partition("=")
    if sep and port in names:
        return port, rest
    if sep and PORT_NAME_RE.match(port) and not Path(value).is_dir():
        raise BadInput(
            f"unknown port {port!r} in {value!r}",
            f"ports: {', '.join(sorted(names)) or 'none'}",
        )
    return None, value


def assign_ports(side: str, ports: Sequence[Port], values: Sequence[str]) -> dict[str, Path]:
    """Map ``--input``/``--output`` values onto the service's ports; every port exactly once.

    ``side`` is "input" or "output". ``PORT=`` may be left out when the service has exactly one
    port on that side. Missing, unknown, repeated or extra ports are usage errors.
    """
    names = {p.name for p in ports}
    option = f"--{side}"
    listed = ", ".join(p.name for p in ports) or "none"
    if values and not ports:
        raise BadInput(f"the service has no {side} ports, but {option} was given")
    out: dict[str, Path] = {}
    for value in values:
        port, folder = split_port_value(value, names)
        if port is None:
            if len(ports) != 1:
                raise BadInput(
                    f"{option} {value!r}: name the port, the service has {len(ports)} {side} ports",
                    f"use {option} PORT=DIR with PORT one of: {listed}",
                )
            port = ports[0].name
        if not folder:
            raise BadInput(f"{option} {value!r}: no folder given")
        if port in out:
            raise BadInput(f"{option}: port {port!r} given twice")
        out[port] = Path(folder)
    missing = [p.name for p in ports if p.name not in out]
    if missing:
        raise BadInput(
            f"missing {option} for port{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            f"give {option} PORT=DIR for each of: {listed}",
        )
    return out


def interface_from_record(record: Mapping[str, Any]) -> ServiceInterface:
    """The interface a run record was made with (ports from its mounts)."""
    service = record["service"]
    limits = record["limits"]
    ports: dict[str, list[Port]] = {"input": [], "output": []}
    for mount in record["mounts"]:
        ports[mount["side"]].append(Port(mount["port"], mount["target"]))
    return ServiceInterface(
        name=str(service["name"]),
        version=service.get("version"),
        inputs=tuple(ports["input"]),
        outputs=tuple(ports["output"]),
        command=tuple(record["command"]),
        user=int(service.get("user", DEFAULT_UID)),
        resources=Resources(
            memory=int(limits["memory"]),
            cpus=float(limits["cpus"]),
            timeout=float(limits["timeout_s"]),
            pids=int(limits["pids"]),
        ),
        volatile=tuple(record.get("volatile") or ()),
    )
