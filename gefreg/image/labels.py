"""The three label families every catalog image carries, computed from the record alone.

1. GEF service labels (``eudat.gef.service.*``), compatible with the EUDAT GEF label parser.
2. OCI annotations (``org.opencontainers.image.*``).
3. gefreg provenance (``org.gefreg.*``): what review, verify and reproduce check against.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from gefreg import __version__
from gefreg.model import Entry

GEF = "eudat.gef.service."
OCI = "org.opencontainers.image."
GEFREG = "org.gefreg."

# Keys `gefreg lint` insists on; optional keys (source, revision, base.*) appear when known.
REQUIRED_LABELS = (
    GEF + "name",
    GEF + "description",
    GEF + "version",
    OCI + "title",
    OCI + "description",
    OCI + "version",
    OCI + "licenses",
    OCI + "authors",
    OCI + "ref.name",
    GEFREG + "entry",
    GEFREG + "fingerprint",
    GEFREG + "template",
    GEFREG + "template.digest",
    GEFREG + "version",
)
# The record's SOURCE_DATE_EPOCH as RFC 3339, never the clock (see catalog.source_date).
CREATED = OCI + "created"


@dataclass(frozen=True)
class BaseImage:
    """What a record's ``base:`` resolved to; ``digest`` is None for scratch."""

    name: str
    ref: str
    digest: str | None = None


def image_labels(
    entry: Entry,
    *,
    entry_path: str,
    fingerprint: str,
    template: str,
    template_digest: str,
    base: BaseImage,
    created: str,
) -> list[tuple[str, str]]:
    """All labels for one image, in a fixed order (families in turn, ports numbered from 1)."""
    spec = entry.spec
    labels: list[tuple[str, str]] = [
        (GEF + "name", spec.name),
        (GEF + "description", spec.description),
        (GEF + "version", spec.version),
    ]
    for side, ports in (("input", spec.inputs), ("output", spec.outputs)):
        for number, port in enumerate(ports, start=1):
            prefix = f"{GEF}{side}.{number}."
            labels.append((prefix + "name", port.name))
            labels.append((prefix + "path", port.path))
            if port.type:
                labels.append((prefix + "type", port.type))
            if port.filename:
                labels.append((prefix + "filename", port.filename))
    labels += [
        (OCI + "title", spec.name),
        (OCI + "description", spec.description),
        (OCI + "version", spec.version),
        (OCI + "ref.name", spec.version),
        (CREATED, created),
        (OCI + "licenses", spec.license),
        (OCI + "authors", ", ".join(spec.maintainers)),
    ]
    if spec.source:
        labels.append((OCI + "source", spec.source))
        labels.append((OCI + "url", spec.source))
    if spec.documentation:
        labels.append((OCI + "documentation", spec.documentation))
    if spec.revision:
        labels.append((OCI + "revision", spec.revision))
    if base.digest:
        labels.append((OCI + "base.name", base.ref.split("@", 1)[0]))
        labels.append((OCI + "base.digest", base.digest))
    labels += [
        (GEFREG + "entry", entry_path),
        (GEFREG + "fingerprint", fingerprint),
        (GEFREG + "template", template),
        (GEFREG + "template.digest", template_digest),
        (GEFREG + "base", base.name),
        (GEFREG + "version", __version__),
    ]
    return labels


_PORT_KEY = re.compile(r"^eudat\.gef\.service\.(input|output)\.(\d+)\.(name|path|type|filename)\Z")


def numbered_ports(labels: Mapping[str, str]) -> dict[str, list[tuple[int, dict[str, str]]]]:
    """GEF ports from image labels with their label numbers N (``...input.N.path``), in order."""
    sides: dict[str, dict[int, dict[str, str]]] = {"input": {}, "output": {}}
    for key, value in labels.items():
        m = _PORT_KEY.match(key)
        if m:
            sides[m.group(1)].setdefault(int(m.group(2)), {})[m.group(3)] = value
    return {side: [(n, ports[n]) for n in sorted(ports)] for side, ports in sides.items()}


def ports_from_labels(labels: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    """Read GEF ports back from image labels, as GEF's own parser does (for checks and tests)."""
    return {side: [p for _, p in ports] for side, ports in numbered_ports(labels).items()}
