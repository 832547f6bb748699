"""A published release as CWL v1.2: a ``CommandLineTool``, or a ``Workflow`` that scatters it
over many input folders. Pure functions of an :class:`~gefreg.export.release.ExportRelease`.

How the image's fixed port paths meet CWL:

* each input port is a ``Directory`` input staged at the port's absolute path
  (``InitialWorkDirRequirement`` with an absolute ``entryname``, allowed with a container);
* the output ports live in the CWL output directory: ``dockerOutputDirectory`` is the folder
  that holds them (``/data`` for ``/data/output``), and each output port is a ``Directory``
  output globbed by its path below it;
* CWL runners create no empty folders in the output directory (cwltool makes directory
  literals, Toil 9.6 fails on them), but the services expect their output folders to exist, as
  ``gefreg run`` mounts them: the command is wrapped in ``/bin/sh -c 'mkdir -p -- "$1" && shift
  && exec "$@"'`` with the output paths as arguments, so the service's own argv runs unchanged
  (``exec``: same process, same arguments). Toil runs every command through ``sh`` anyway.

Everything else comes from the release: the image by digest (``REGISTRY/NAME@sha256:…``, never
a tag), ``ResourceRequirement`` and ``ToolTimeLimit`` from its limits, ``NetworkAccess: false``,
and schema.org annotations from the image's labels and the ledger line.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Mapping, Sequence
from io import StringIO
from typing import Any

from gefreg.errors import BadInput
from gefreg.export.release import ExportRelease
from gefreg.model import Port

CWL_VERSION = "v1.2"
SCHEMA_ORG = "https://schema.org/"
MIB = 1024 * 1024
_SYMBOL = re.compile(r"^\w+\Z")
_PERSON = re.compile(r"\s*([^<,][^<]*?)\s*<([^<>@\s]+@[^<>\s]+)>\s*,?")


def input_ref(port: str) -> str:
    """A CWL parameter reference to input ``port`` (bracket form for names with - or .)."""
    return f"$(inputs.{port})" if _SYMBOL.match(port) else f"$(inputs['{port}'])"


def output_folder(outputs: Sequence[Port]) -> str:
    """The CWL output directory: the deepest folder that holds every output port."""
    if not outputs:
        raise BadInput("the service has no output ports: a CWL tool needs at least one")
    parents = [posixpath.dirname(p.path.rstrip("/")) for p in outputs]
    common = posixpath.commonpath(parents)
    if common == "/":
        listed = ", ".join(p.path for p in outputs)
        raise BadInput(
            f"output ports {listed} have no common parent folder below /",
            "CWL mounts one output directory: put the output ports in one folder, e.g. "
            "/data/output (a record change, so a new version)",
        )
    return common


def wrapped_command(rel: ExportRelease) -> list[str]:
    """``/bin/sh -c 'mkdir -p -- OUT… && shift N && exec "$@"' gefreg OUT… ARGV…``."""
    face = rel.interface
    if rel.image_entrypoint and face.entrypoint is None:
        raise BadInput(
            f"{rel.name}@{rel.version} has an ENTRYPOINT ({' '.join(rel.image_entrypoint)}): "
            "CWL runners append the command to it and cannot clear it",
            "give the record `entrypoint: []` and put the program into `command` (new version)",
        )
    argv = [*(face.entrypoint or ()), *face.command]
    outs = [p.path for p in face.outputs]
    count = len(outs)
    quoted = " ".join(f'"${i}"' for i in range(1, count + 1))
    script = f'mkdir -p -- {quoted} && shift {count} && exec "$@"'
    return ["/bin/sh", "-c", script, "gefreg-export", *outs, *argv]


def schema_annotations(rel: ExportRelease) -> dict[str, Any]:
    """schema.org terms (prefix ``s:``) from the image's OCI labels and the release."""
    labels = rel.labels
    notes: dict[str, Any] = {"s:name": rel.name, "s:softwareVersion": rel.version}
    if labels.get("org.opencontainers.image.licenses"):
        notes["s:license"] = labels["org.opencontainers.image.licenses"]
    authors = [
        {"s:name": name, "s:email": email}
        for name, email in _PERSON.findall(labels.get("org.opencontainers.image.authors", ""))
    ]
    if authors:
        notes["s:author"] = authors
    if labels.get("org.opencontainers.image.source"):
        notes["s:codeRepository"] = labels["org.opencontainers.image.source"]
    if labels.get("org.opencontainers.image.documentation"):
        notes["s:softwareHelp"] = labels["org.opencontainers.image.documentation"]
    notes["s:identifier"] = rel.pinned
    props = [("gefreg:release", f"{rel.name}@{rel.version}"), ("gefreg:image", rel.pinned)]
    if rel.ledger is not None:
        props.append(("gefreg:ledger", f"{rel.ledger.path}#L{rel.ledger.number}"))
        props.append(("gefreg:ledger-line-sha256", rel.ledger.sha256))
    if rel.fingerprint:
        props.append(("gefreg:fingerprint", rel.fingerprint))
    if rel.signed_by:
        props.append(("gefreg:signed-by", rel.signed_by))
    notes["s:additionalProperty"] = [{"s:name": k, "s:value": v} for k, v in props]
    return notes


def _requirements(rel: ExportRelease, outdir: str) -> dict[str, Any]:
    face = rel.interface
    limits = face.resources
    listing = [{"entry": input_ref(p.name), "entryname": p.path} for p in face.inputs]
    requirements: dict[str, Any] = {
        "DockerRequirement": {"dockerPull": rel.pinned, "dockerOutputDirectory": outdir},
        "NetworkAccess": {"networkAccess": False},
        "ResourceRequirement": {
            "coresMin": _number(limits.cpus),
            "coresMax": _number(limits.cpus),
            "ramMin": math.ceil(limits.memory / MIB),
            "ramMax": math.ceil(limits.memory / MIB),
        },
        "ToolTimeLimit": {"timelimit": math.ceil(limits.timeout)},
    }
    if listing:
        requirements["InitialWorkDirRequirement"] = {"listing": listing}
    return requirements


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def command_line_tool(rel: ExportRelease, *, standalone: bool = True) -> dict[str, Any]:
    """The release as a CWL ``CommandLineTool`` (``standalone``: a whole document)."""
    face = rel.interface
    outdir = output_folder(face.outputs)
    tool: dict[str, Any] = {}
    if standalone:
        tool |= {"cwlVersion": CWL_VERSION, "$namespaces": {"s": SCHEMA_ORG}}
    tool |= {
        "class": "CommandLineTool",
        "label": f"{rel.name} {rel.version}",
        "doc": rel.labels.get("org.opencontainers.image.description")
        or f"{rel.name} {rel.version} from the gefreg catalog",
        "requirements": _requirements(rel, outdir),
        "baseCommand": wrapped_command(rel),
        "inputs": {
            p.name: {
                "type": "Directory",
                "loadListing": "no_listing",
                "doc": f"input port at {p.path}",
            }
            for p in face.inputs
        },
        "outputs": {
            p.name: {
                "type": "Directory",
                "doc": f"output port at {p.path}",
                "outputBinding": {"glob": posixpath.relpath(p.path.rstrip("/"), outdir)},
            }
            for p in face.outputs
        },
    }
    if standalone:
        tool |= schema_annotations(rel)
    return tool


def scatter_workflow(rel: ExportRelease) -> dict[str, Any]:
    """A ``Workflow`` running the tool once per element of its input arrays (several input
    ports: element-wise, ``dotproduct``); each output is an array in the same order."""
    face = rel.interface
    if not face.inputs:
        raise BadInput(f"{rel.name}@{rel.version} has no input ports: nothing to scatter over")
    step = rel.name
    names = [p.name for p in face.inputs]
    run: dict[str, Any] = {
        "run": command_line_tool(rel, standalone=False),
        "in": {n: n for n in names},
        "scatter": names,
        "out": [p.name for p in face.outputs],
    }
    if len(names) > 1:
        run["scatterMethod"] = "dotproduct"
    return {
        "cwlVersion": CWL_VERSION,
        "$namespaces": {"s": SCHEMA_ORG},
        "class": "Workflow",
        "label": f"{rel.name} {rel.version}, once per input folder",
        "doc": f"Scatter {rel.name} {rel.version} over arrays of input folders "
        "(job file: gefreg export job DIR...).",
        "requirements": {"ScatterFeatureRequirement": {}},
        "inputs": {n: {"type": "Directory[]"} for n in names},
        "outputs": {
            p.name: {"type": "Directory[]", "outputSource": f"{step}/{p.name}"}
            for p in face.outputs
        },
        "steps": {step: run},
        **schema_annotations(rel),
    }


def to_yaml(doc: Mapping[str, Any], header: Sequence[str] = ()) -> str:
    """YAML text of a CWL document, keys in the order given, with ``#`` header lines."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    out = StringIO()
    yaml.dump(dict(doc), out)
    lines = ["#!/usr/bin/env cwl-runner", *(f"# {h}".rstrip() for h in header)]
    return "\n".join(lines) + "\n" + out.getvalue()


def header(rel: ExportRelease, scatter: bool = False) -> list[str]:
    """Comment lines naming where the document came from, then a template of its job file."""
    lines = [f"Generated by gefreg export from {rel.name} {rel.version}: {rel.pinned}"]
    if rel.ledger is not None:
        lines.append(f"Ledger: {rel.ledger.path} line {rel.ledger.number} ({rel.ledger.sha256})")
    return [*lines, "", *job_template(rel, scatter)]


def job_template(rel: ExportRelease, scatter: bool) -> list[str]:
    """The job file the document takes, with placeholder folders (YAML once un-commented), and
    the `gefreg export job` command that writes it for real folders."""
    ports = [p.name for p in rel.interface.inputs]
    if not ports:
        return ["Job file: none needed, the service has no input ports ({} will do)"]
    if len(ports) == 1:
        args = f"--port {ports[0]} " + ("--scatter DIR..." if scatter else "DIR")
    else:
        args = " ".join(f"{n}=DIR" for n in ports) + (" ... --scatter" if scatter else "")
    lines = [f"Job file template (`gefreg export job {args} -o job.yml` writes it):"]
    for name in ports:
        if scatter:
            lines.append(f"{name}:")
            lines += [f"  - {{class: Directory, path: /path/to/{name}-{i}}}" for i in (1, 2)]
        else:
            lines.append(f"{name}: {{class: Directory, path: /path/to/{name}}}")
    return lines
