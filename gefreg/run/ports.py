"""``--input``/``--output`` values onto a service's ports: ``[PORT=]DIR``, checked as usage."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gefreg.errors import BadInput
from gefreg.model import PORT_NAME_RE, Port


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
