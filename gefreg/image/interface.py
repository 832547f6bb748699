"""What a service needs from whoever runs it: its ports, command, user, limits and volatile
outputs — and how ``--input``/``--output`` values map onto the ports.

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
* ``run-record`` — a run record (:func:`interface_from_record`), so ``reproduce`` needs nothing
  but the record and the image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gefreg.errors import BadInput
from gefreg.image.labels import ports_from_labels
from gefreg.jsonfields import JsonFields
from gefreg.model import DEFAULT_UID, PORT_NAME_RE, Port, Resources, ServiceSpec
from gefreg.validators import check_port_path


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
        sides = ports_from_labels(dict(labels))
        ports = {
            side: tuple(
                Port(p["name"], p["path"], p.get("type"), p.get("filename"))
                for p in sides[side]
                if p.get("name") and p.get("path")
            )
            for side in ("input", "output")
        }
        if not ports["input"] and not ports["output"]:
            raise BadInput(
                f"image {name} declares no GEF ports (eudat.gef.service.input.N.* labels)",
                "only images with GEF port labels can be run; add the service to the catalog",
            )
        _check_label_ports(name, [*ports["input"], *ports["output"]])
        return cls(
            name=name,
            version=labels.get("eudat.gef.service.version"),
            inputs=ports["input"],
            outputs=ports["output"],
            command=tuple(command),
            origin="image",
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
        return _replace(face, user=image_uid(config.get("User")), entrypoint=())

    def to_json(self) -> dict[str, Any]:
        """JSON-safe (what the release ledger stores); :meth:`from_json` reads it back."""
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "inputs": [_port_json(p) for p in self.inputs],
            "outputs": [_port_json(p) for p in self.outputs],
            "command": list(self.command),
            "user": self.user,
            "resources": {
                "memory": self.resources.memory,
                "cpus": self.resources.cpus,
                "timeout": self.resources.timeout,
                "pids": self.resources.pids,
            },
            "volatile": list(self.volatile),
        }
        if self.entrypoint is not None:
            data["entrypoint"] = list(self.entrypoint)
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "interface") -> ServiceInterface:
        """The inverse of :meth:`to_json`; anything malformed is BadInput naming the field."""
        f = Fields(where)
        top = f.mapping(data, "")
        resources = f.mapping(f.get(top, "resources"), "resources")
        entrypoint = top.get("entrypoint")
        return cls(
            name=f.text(f.get(top, "name"), "name"),
            version=f.optional_text(top.get("version"), "version"),
            inputs=f.ports(f.get(top, "inputs"), "inputs"),
            outputs=f.ports(f.get(top, "outputs"), "outputs"),
            command=f.strings(f.get(top, "command"), "command"),
            user=f.uid(top.get("user", DEFAULT_UID), "user"),
            resources=f.resources(resources, "resources", timeout_key="timeout"),
            volatile=f.strings(top.get("volatile") or [], "volatile"),
            entrypoint=None if entrypoint is None else f.strings(entrypoint, "entrypoint"),
            origin="ledger",
        )


def _replace(face: ServiceInterface, **changes: Any) -> ServiceInterface:
    import dataclasses

    return dataclasses.replace(face, **changes)


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


# Limits a record or ledger may carry; beyond these a value is a mistake, not a service's need.
MAX_CPUS = 1024.0
MAX_MEMORY = 2**50  # 1 PiB
MAX_TIMEOUT = 366 * 24 * 3600.0  # a year
MAX_PIDS = 4_194_304  # Linux PID_MAX_LIMIT
MIN_MEMORY = 4 * 1024**2
MIN_CPUS = 0.01


class Fields(JsonFields):
    """:class:`gefreg.jsonfields.JsonFields` plus the parts of a service interface."""

    def uid(self, value: Any, name: str) -> int:
        return self.integer(value, name, 1, 65534)

    def port(self, value: Any, name: str) -> Port:
        data = self.mapping(value, name)
        port_name = self.text(self.get(data, "name", name), f"{name}.name")
        if not PORT_NAME_RE.match(port_name):
            raise self.fail(f"{name}.name", "a port name", port_name)
        path = self.text(self.get(data, "path", name), f"{name}.path")
        if not path.startswith("/"):
            raise self.fail(f"{name}.path", "an absolute container path", path)
        return Port(
            port_name,
            path,
            self.optional_text(data.get("type"), f"{name}.type"),
            self.optional_text(data.get("filename"), f"{name}.filename"),
        )

    def ports(self, value: Any, name: str) -> tuple[Port, ...]:
        ports = tuple(
            self.port(item, f"{name}[{i}]") for i, item in enumerate(self.sequence(value, name))
        )
        names = [p.name for p in ports]
        for port_name in names:
            if names.count(port_name) > 1:
                raise self.fail(name, "distinct port names", port_name)
        return ports

    def resources(self, data: Mapping[str, Any], name: str, timeout_key: str) -> Resources:
        return Resources(
            memory=self.integer(
                self.get(data, "memory", name), f"{name}.memory", MIN_MEMORY, MAX_MEMORY
            ),
            cpus=self.number(self.get(data, "cpus", name), f"{name}.cpus", MIN_CPUS, MAX_CPUS),
            timeout=self.number(
                self.get(data, timeout_key, name), f"{name}.{timeout_key}", 0.001, MAX_TIMEOUT
            ),
            pids=self.integer(self.get(data, "pids", name), f"{name}.pids", 1, MAX_PIDS),
        )


def _check_label_ports(image: str, ports: Sequence[Port]) -> None:
    """Labels of an image are as untrusted as the image: the same rules as a record's ports."""
    seen: list[PurePosixPath] = []
    for port in ports:
        problem = None if PORT_NAME_RE.match(port.name) else f"port name {port.name!r} is invalid"
        problem = problem or check_port_path(port.path)
        here = PurePosixPath(port.path)
        for other in seen:
            if here == other or other in here.parents or here in other.parents:
                problem = problem or f"port path {port.path} overlaps {other}"
        if problem:
            raise BadInput(
                f"image {image}: GEF label {problem}",
                "gefreg mounts ports only where a catalog record could",
            )
        seen.append(here)


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


def assign_ports(
    side: str, ports: Sequence[Port], values: Sequence[str], *, every_port: bool = True
) -> dict[str, Path]:
    """Map ``--input``/``--output`` values onto the service's ports.

    ``side`` is "input" or "output". ``PORT=`` may be left out when the service has exactly one
    port on that side. Unknown, repeated or extra ports are usage errors, and so is a missing
    port unless ``every_port`` is False (``reproduce``: the recorded folder stands in).
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
    if missing and every_port:
        raise BadInput(
            f"missing {option} for port{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            f"give {option} PORT=DIR for each of: {listed}",
        )
    return out


def interface_from_record(record: Mapping[str, Any], where: str = "run record") -> ServiceInterface:
    """The interface a run record was made with (ports from its mounts). Every field it reads is
    checked: a malformed record is BadInput naming the field, never a KeyError."""
    f = Fields(where)
    top = f.mapping(record, "")
    service = f.mapping(f.get(top, "service"), "service")
    limits = f.mapping(f.get(top, "limits"), "limits")
    ports: dict[str, list[Port]] = {"input": [], "output": []}
    for i, item in enumerate(f.sequence(f.get(top, "mounts"), "mounts")):
        name = f"mounts[{i}]"
        mount = f.mapping(item, name)
        side = f.get(mount, "side", name)
        if side not in ports:
            raise f.fail(f"{name}.side", "'input' or 'output'", side)
        port = f.text(f.get(mount, "port", name), f"{name}.port")
        target = f.text(f.get(mount, "target", name), f"{name}.target")
        if not PORT_NAME_RE.match(port) or any(p.name == port for p in ports[side]):
            raise f.fail(f"{name}.port", "a port name, once per side", port)
        if not target.startswith("/"):
            raise f.fail(f"{name}.target", "an absolute container path", target)
        ports[side].append(Port(port, target))
    entrypoint = top.get("entrypoint")
    return ServiceInterface(
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
