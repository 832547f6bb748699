"""Provenance across engines, as Workflow Run RO-Crates (Process Run Crate profile 0.5, RO-Crate
1.1), written with the ``rocrate`` library.

Two sources, one shape — a ``CreateAction`` per run of a service, whose ``instrument`` is the
service (``SoftwareApplication``) and whose ``containerImage`` is the image by digest:

* a gefreg run record (``gefreg.run/1``): the action of
  :func:`gefreg.run.crate.to_create_action`; its inputs and outputs are the folders on the
  host where the run found and left them (``file://`` identifiers: the files are not copied),
  each file with its size and sha256. The record and its two logs are copied into the crate.
* a CWLProv research object, as ``cwltool --provenance DIR`` and ``toil-cwl-runner
  --provenance DIR`` write it: one action per container execution the PROV document records
  (its ``cwlprov:image`` is the exported ``REGISTRY/NAME@sha256:…``); the packed workflow
  (which carries the same digest and the ``s:`` annotations of the export) is copied in.

Either way each image is tied back to the release it is: the digest is looked up in the
catalog's ledger of the configured registry (never taken from the input), and when it matches,
the service entity names the release and the ledger line (path, line number, sha256 of the
line). An image that is no release of this catalog is reported, not linked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gefreg.errors import BadInput
from gefreg.export.release import LedgerLine, ledger_line
from gefreg.model import DIGEST_RE
from gefreg.release.pinned import NotAPublishedImage, release_of_reference
from gefreg.run.crate import to_create_action
from gefreg.run.record import log_paths, read_run_record
from gefreg.settings import Settings

PROCESS_PROFILE = "https://w3id.org/ro/wfrun/process/0.5"
WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
DOCKER_IMAGE = "https://w3id.org/ro/terms/workflow-run#DockerImage"
CRATE_VERSION = "1.1"
PROV_FILE = Path("metadata/provenance/primary.cwlprov.json")
PACKED = Path("workflow/packed.cwl")


@dataclass(frozen=True)
class ReleaseLink:
    """An image that is a release of the catalog, and the ledger line that says so."""

    name: str
    version: str
    pinned: str
    ledger: LedgerLine | None


@dataclass(frozen=True)
class CrateReport:
    """What was written: the crate's folder, its actions, and each image's release (or None)."""

    folder: Path
    source: str  # "run-record" or "cwlprov"
    actions: int
    images: dict[str, ReleaseLink | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "crate": str(self.folder / "ro-crate-metadata.json"),
            "source": self.source,
            "actions": self.actions,
            "images": {
                ref: None
                if link is None
                else {
                    "release": f"{link.name}@{link.version}",
                    "ledger": None
                    if link.ledger is None
                    else {
                        "path": link.ledger.path,
                        "line": link.ledger.number,
                        "sha256": link.ledger.sha256,
                    },
                }
                for ref, link in self.images.items()
            },
        }


def release_of_image(settings: Settings | None, ref: str) -> ReleaseLink | None:
    """The catalog release that ``REGISTRY/NAME@sha256:…`` is (the catalog's one lookup,
    :func:`gefreg.release.pinned.release_of_reference`), with its ledger line; None when it is
    none (the crate says so instead of linking it)."""
    if settings is None:
        return None
    try:
        found = release_of_reference(settings, ref)
    except NotAPublishedImage:
        return None
    line = ledger_line(settings.catalog, found.name, found.version)
    return ReleaseLink(found.name, found.version, ref, line)


def write_crate(source: Path, output: Path, settings: Settings | None) -> CrateReport:
    """A crate in ``output`` (created; must not hold a crate yet) from a run record file or a
    CWLProv folder."""
    if (output / "ro-crate-metadata.json").exists():
        raise BadInput(
            f"{output} already holds an RO-Crate", "choose another --output; nothing is replaced"
        )
    if source.is_dir():
        if not (source / PROV_FILE).is_file():
            raise BadInput(
                f"{source} is a folder but not a CWLProv research object (no {PROV_FILE})",
                "give a gefreg run record (run.json) or a cwltool/toil --provenance folder",
            )
        return _from_cwlprov(source, output, settings)
    return _from_run_record(source, output, settings)


def _new_crate() -> Any:
    from rocrate.rocrate import ROCrate

    crate = ROCrate(version=CRATE_VERSION)
    crate.metadata.extra_contexts.append(WFRUN_CONTEXT)
    crate.root_dataset["conformsTo"] = [{"@id": PROCESS_PROFILE}]
    _add(
        crate,
        PROCESS_PROFILE,
        {"@type": "CreativeWork", "name": "Process Run Crate", "version": "0.5"},
    )
    return crate


def _add(crate: Any, identifier: str, properties: Mapping[str, Any]) -> Any:
    from rocrate.model.contextentity import ContextEntity

    return crate.add(ContextEntity(crate, identifier, properties=dict(properties)))


def _link_release(crate: Any, app_id: str, link: ReleaseLink | None) -> None:
    """The service entity names its release and ledger line (when the image is one)."""
    app = crate.get(app_id)
    if app is None or link is None:
        return
    app["identifier"] = link.pinned
    app["softwareVersion"] = link.version
    if link.ledger is not None:
        ledger_id = f"#ledger-{link.name}-{link.version}"
        _add(
            crate,
            ledger_id,
            {
                "@type": "CreativeWork",
                "name": f"{link.ledger.path} line {link.ledger.number}",
                "description": f"the gefreg release ledger line that published {link.name} "
                f"{link.version} as {link.pinned}",
                "sha256": link.ledger.sha256.removeprefix("sha256:"),
            },
        )
        app["subjectOf"] = {"@id": ledger_id}


def _from_run_record(path: Path, output: Path, settings: Settings | None) -> CrateReport:
    record = read_run_record(path)
    crate = _new_crate()
    entities = _host_identifiers(record, to_create_action(record))
    for entity in entities:
        _add(crate, entity["@id"], {k: v for k, v in entity.items() if k != "@id"})
    action_id, app_id = entities[0]["@id"], entities[0]["instrument"]["@id"]
    copied = [crate.add_file(path, "run.json", properties={"name": "gefreg run record"})]
    for log in log_paths(path):
        if log.is_file():
            copied.append(crate.add_file(log, log.name, properties={"name": log.name}))
    crate.get(action_id)["subjectOf"] = [{"@id": f.id} for f in copied]
    ports = [e["@id"] for e in entities if e["@type"] == "Dataset"]  # files: through hasPart
    crate.root_dataset["hasPart"] = [{"@id": f.id} for f in copied] + [{"@id": i} for i in ports]
    crate.root_dataset["mentions"] = [{"@id": action_id}]
    crate.root_dataset["name"] = entities[0]["name"]
    image = record["image"]
    ref = None
    if image.get("repository") and image.get("manifest_digest"):
        ref = f"{image['repository']}@{image['manifest_digest']}"
    link = release_of_image(settings, ref) if ref else None
    _link_release(crate, app_id, link)
    crate.write(output)
    return CrateReport(output, "run-record", 1, {ref or str(image.get("image_id")): link})


def _host_identifiers(
    record: Mapping[str, Any], entities: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Input and output data live on the host, not in the crate: ``file://`` identifiers of
    where the run found and left them, in place of the record's crate-relative ones."""
    renamed: dict[str, str] = {}
    for side in ("inputs", "outputs"):
        for port, data in (record.get(side) or {}).items():
            if data and data.get("path"):
                folder = "file://" + quote(str(Path(str(data["path"])).resolve())).rstrip("/") + "/"
                renamed[f"{side}/{port}/"] = folder
    out = []
    for entity in entities:
        new = json.loads(json.dumps(entity))
        new["@id"] = _rename(new["@id"], renamed)
        for key in ("object", "result", "hasPart"):
            if isinstance(new.get(key), list):
                new[key] = [{"@id": _rename(ref["@id"], renamed)} for ref in new[key]]
        out.append(new)
    return out


def _rename(identifier: str, renamed: Mapping[str, str]) -> str:
    for old, new in renamed.items():
        if identifier.startswith(old):
            return new + quote(identifier[len(old) :])
    return identifier


# ---------------------------------------------------------------------------- CWLProv


def container_runs(prov: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(activity, image)`` for every container execution a PROV-JSON document records."""
    agents = prov.get("agent") or {}
    runs = []
    for relation in (prov.get("wasAssociatedWith") or {}).values():
        if not isinstance(relation, dict):
            continue
        agent = agents.get(relation.get("prov:agent")) or {}
        image = agent.get("cwlprov:image") if isinstance(agent, dict) else None
        if isinstance(image, str) and relation.get("prov:activity"):
            runs.append((str(relation["prov:activity"]), image))
    return sorted(set(runs))


def _from_cwlprov(folder: Path, output: Path, settings: Settings | None) -> CrateReport:
    try:
        prov = json.loads((folder / PROV_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"{folder / PROV_FILE}: not a PROV-JSON document ({exc})") from None
    if not isinstance(prov, dict):
        raise BadInput(f"{folder / PROV_FILE}: not a PROV-JSON document")
    runs = container_runs(prov)
    if not runs:
        raise BadInput(f"{folder}: the provenance records no container execution")
    crate = _new_crate()
    engine = _engine_label(prov)
    activities = prov.get("activity") or {}
    started = _relation_times(prov, "wasStartedBy")
    ended = _relation_times(prov, "wasEndedBy")
    workflow = None
    if (folder / PACKED).is_file():
        workflow = crate.add_file(
            folder / PACKED,
            "packed.cwl",
            properties={
                "name": "the CWL run (packed)",
                "encodingFormat": "https://w3id.org/cwl/v1.2/",
            },
        )
    images: dict[str, ReleaseLink | None] = {}
    actions = []
    for activity, image in runs:
        link = images.setdefault(image, release_of_image(settings, image))
        app_id, image_id = _image_entities(crate, image, link)
        found = activities.get(activity)
        info: dict[str, Any] = found if isinstance(found, dict) else {}
        action_id = "#" + activity.removeprefix("id:")
        props: dict[str, Any] = {
            "@type": "CreateAction",
            "name": str(info.get("prov:label") or f"Run of {image}"),
            "description": f"container execution recorded by {engine}",
            "instrument": {"@id": app_id},
            "containerImage": {"@id": image_id},
        }
        start = info.get("prov:startTime") or started.get(activity)
        if start:
            props["startTime"] = str(start)
        if ended.get(activity):
            props["endTime"] = ended[activity]
        if workflow is not None:
            props["subjectOf"] = {"@id": workflow.id}
        _add(crate, action_id, props)
        actions.append({"@id": action_id})
    crate.root_dataset["mentions"] = actions
    crate.root_dataset["name"] = f"CWL run recorded by {engine}"
    crate.write(output)
    return CrateReport(output, "cwlprov", len(actions), images)


def _relation_times(prov: Mapping[str, Any], relation: str) -> dict[str, str]:
    """Activity → time of its start/end relation (the last one given)."""
    times: dict[str, str] = {}
    for item in (prov.get(relation) or {}).values():
        if isinstance(item, dict) and item.get("prov:activity") and item.get("prov:time"):
            times[str(item["prov:activity"])] = str(item["prov:time"])
    return times


def _engine_label(prov: Mapping[str, Any]) -> str:
    for agent in (prov.get("agent") or {}).values():
        types = agent.get("prov:type") if isinstance(agent, dict) else None
        names = (
            [t.get("$") for t in types if isinstance(t, dict)] if isinstance(types, list) else []
        )
        if "wfprov:WorkflowEngine" in names:
            return str(agent.get("prov:label") or "a CWL engine")
    return "a CWL engine"


def _image_entities(crate: Any, image: str, link: ReleaseLink | None) -> tuple[str, str]:
    repository, _, digest = image.partition("@")
    registry, _, name = repository.rpartition("/")
    app_id = f"#service-{link.name}-{link.version}" if link else f"#service-{name or image}"
    image_id = "#image-" + (digest.removeprefix("sha256:")[:16] or name)
    if crate.get(app_id) is None:
        app: dict[str, Any] = {"@type": "SoftwareApplication", "name": link.name if link else name}
        if link is None:
            app["description"] = "not a release of this catalog (no ledger line has this digest)"
        _add(crate, app_id, app)
        _link_release(crate, app_id, link)
    if crate.get(image_id) is None:
        props: dict[str, Any] = {
            "@type": "ContainerImage",
            "additionalType": {"@id": DOCKER_IMAGE},
            "name": name,
            "registry": registry,
        }
        if DIGEST_RE.match(digest):
            props["sha256"] = digest.removeprefix("sha256:")
        if link is not None:
            props["tag"] = link.version
        _add(crate, image_id, props)
    return app_id, image_id
