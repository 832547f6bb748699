"""CWL job files for folders: ``{PORT: {class: Directory, path: …}}`` for one run of the tool,
``{PORT: [{class: Directory, path: …}, …]}`` for the scatter workflow — so 5,000 archives are
one command (``gefreg export job archives/*/``).

Paths are made absolute and must be existing folders: a typo among thousands of folders is
reported here, naming it, instead of by the workflow engine hours later.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput
from gefreg.model import PORT_NAME_RE


def job_document(
    folders: Sequence[str], *, port: str | None = None, scatter: bool | None = None
) -> dict[str, Any]:
    """The job for ``folders`` (each ``[PORT=]DIR``; a bare DIR belongs to ``port``).

    ``scatter`` None: arrays when some port has several folders, else one folder per port.
    Several ports in a scatter job must list the same number of folders (element-wise).
    """
    if not folders:
        raise BadInput("no folders given", "gefreg export job [PORT=]DIR... (e.g. archives/*/)")
    if port is not None and not PORT_NAME_RE.match(port):
        raise BadInput(f"--port {port!r} is not a port name")
    by_port: dict[str, list[dict[str, str]]] = {}
    for value in folders:
        name, folder = _split(value, port)
        by_port.setdefault(name, []).append(_directory(folder))
    arrays = scatter if scatter is not None else any(len(v) > 1 for v in by_port.values())
    if not arrays:
        return {name: dirs[0] for name, dirs in by_port.items()} if _single(by_port) else {}
    counts = {name: len(dirs) for name, dirs in by_port.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{n}: {c}" for n, c in counts.items())
        raise BadInput(
            f"ports have different numbers of folders ({listed})",
            "the scatter workflow pairs the i-th folder of every port: give each port as many",
        )
    return dict(by_port)


def _single(by_port: dict[str, list[dict[str, str]]]) -> bool:
    for name, dirs in by_port.items():
        if len(dirs) > 1:
            raise BadInput(
                f"port {name} has {len(dirs)} folders but --single asks for one run",
                "leave out --single to write a scatter job",
            )
    return True


def _split(value: str, port: str | None) -> tuple[str, str]:
    """``PORT=DIR`` (unless the whole value is an existing folder), else ``port`` and DIR."""
    head, sep, rest = value.partition("=")
    if sep and PORT_NAME_RE.match(head) and not Path(value).is_dir():
        name, folder = head, rest
    elif port is None:
        raise BadInput(
            f"{value!r}: which port is it for?",
            "write PORT=DIR, or give --port PORT for bare folders",
        )
    else:
        name, folder = port, value
    if not folder:
        raise BadInput(f"{value!r}: no folder given")
    return name, folder


def _directory(folder: str) -> dict[str, str]:
    path = Path(folder).expanduser()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        raise BadInput(f"{folder} {what}", "give existing input folders")
    return {"class": "Directory", "path": str(path.resolve())}
