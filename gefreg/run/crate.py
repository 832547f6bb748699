"""A run record as a Workflow Run RO-Crate ``CreateAction`` (Process Run Crate profile).

:func:`to_create_action` writes the JSON-LD entities:

====================================  =========================================================
run record                            RO-Crate / schema.org
====================================  =========================================================
``id`` (urn:uuid)                     ``CreateAction`` ``@id``
``service.name``, ``.version``        ``instrument`` → ``SoftwareApplication`` (name,
                                      softwareVersion)
``image.*``                           ``containerImage`` → ``ContainerImage`` (additionalType
                                      DockerImage, registry, name, tag, sha256)
``command`` + ``args``                ``description`` (the command line, informational)
``environment``                       ``environment`` → ``PropertyValue`` (name, value)
``inputs.PORT``                       ``object`` → ``Dataset`` per port, ``hasPart`` → ``File``
                                      (contentSize, sha256)
``outputs.PORT``                      ``result`` → ``Dataset`` per port, same shape
``started`` / ``ended``               ``startTime`` / ``endTime``
``status``                            ``actionStatus``: succeeded → CompletedActionStatus,
                                      failed / timed-out / interrupted / incomplete →
                                      FailedActionStatus
``error``                             ``error``
``host``, ``limits``, ``hardening``,  no standard term: kept as gefreg-specific properties
``applied``, ``gefreg_version``
====================================  =========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ACTION_STATUS = {
    "succeeded": "http://schema.org/CompletedActionStatus",
    "failed": "http://schema.org/FailedActionStatus",
    "timed-out": "http://schema.org/FailedActionStatus",
    "interrupted": "http://schema.org/FailedActionStatus",
    "incomplete": "http://schema.org/FailedActionStatus",
}


def to_create_action(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The record as RO-Crate JSON-LD entities: the CreateAction first, then what it links to.

    Put them in a crate's ``@graph`` (with the workflow-run context) and list the action under
    the root dataset's ``mentions``.
    """
    service = record["service"]
    image = record["image"]
    app_id = f"#service-{service['name']}-{service.get('version') or 'unversioned'}"
    image_id = "#image-" + str(image["image_id"]).removeprefix("sha256:")[:16]
    action: dict[str, Any] = {
        "@id": record["id"],
        "@type": "CreateAction",
        "name": f"Run of {service['name']} {service.get('version') or ''}".strip(),
        "description": " ".join([*record["command"], *record["args"]]),
        "instrument": {"@id": app_id},
        "containerImage": {"@id": image_id},
        "actionStatus": {"@id": ACTION_STATUS[record["status"]]},
        "object": [],
        "result": [],
        "environment": [],
    }
    if record.get("started"):
        action["startTime"] = record["started"]
    if record.get("ended"):
        action["endTime"] = record["ended"]
    if record.get("error"):
        action["error"] = record["error"]
    entities: list[dict[str, Any]] = [
        action,
        {
            "@id": app_id,
            "@type": "SoftwareApplication",
            "name": service["name"],
            **({"softwareVersion": service["version"]} if service.get("version") else {}),
        },
    ]
    container: dict[str, Any] = {
        "@id": image_id,
        "@type": "ContainerImage",
        "additionalType": {"@id": "https://w3id.org/ro/terms/workflow-run#DockerImage"},
        "name": image.get("repository") or service["name"],
        "registry": image.get("registry") or "local",
        "sha256": str(image.get("manifest_digest") or image["image_id"]).removeprefix("sha256:"),
    }
    if service.get("version"):
        container["tag"] = service["version"]
    entities.append(container)
    for key, value in sorted((record.get("environment") or {}).items()):
        pv_id = f"#env-{key}"
        action["environment"].append({"@id": pv_id})
        entities.append({"@id": pv_id, "@type": "PropertyValue", "name": key, "value": value})
    for side, prop in (("inputs", "object"), ("outputs", "result")):
        for port, data in sorted((record.get(side) or {}).items()):
            if not data or not data.get("manifest"):
                continue
            base = f"{side}/{port}/"
            parts = []
            for f in data["manifest"]["files"]:
                file_id = base + f["path"]
                parts.append({"@id": file_id})
                entities.append(
                    {
                        "@id": file_id,
                        "@type": "File",
                        "contentSize": f["size"],
                        "sha256": f["sha256"].removeprefix("sha256:"),
                    }
                )
            action[prop].append({"@id": base})
            entities.append(
                {
                    "@id": base,
                    "@type": "Dataset",
                    "name": f"{side[:-1]} port {port}",
                    "alternateName": data.get("target"),
                    "hasPart": parts,
                }
            )
    return entities
