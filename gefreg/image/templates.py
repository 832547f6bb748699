"""Locating the Dockerfile templates and hashing them (the hash goes into every fingerprint)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from gefreg.errors import BadInput, EnvironmentFailure
from gefreg.model import TEMPLATES

SUFFIX = ".Dockerfile.j2"


@dataclass(frozen=True)
class Template:
    name: str
    digest: str
    directory: Path

    @property
    def filename(self) -> str:
        return self.name + SUFFIX


@functools.cache
def templates_dir() -> Path:
    """Templates ship inside the wheel; in a source checkout they sit at the top level."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / ("static" + SUFFIX)).is_file():
            return candidate
    raise EnvironmentFailure(
        "gefreg's Dockerfile templates are missing from the installation",
        "reinstall gefreg (pip install --force-reinstall gefreg)",
    )


@functools.cache
def load_template(name: str) -> Template:
    """A template by name; its digest covers the template and the shared partials it includes."""
    if name not in TEMPLATES:
        raise BadInput(f"unknown template {name!r}", f"use one of: {', '.join(TEMPLATES)}")
    directory = templates_dir()
    digest = hashlib.sha256()
    for path in [directory / (name + SUFFIX), *sorted(directory.glob("_*.j2"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return Template(name, "sha256:" + digest.hexdigest(), directory)
