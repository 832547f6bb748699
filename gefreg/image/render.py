"""Catalog record → annotated Dockerfile. A pure function: same inputs, byte-identical output.

Record values are data. Free text (descriptions, maintainers, environment values) only ever
appears inside a quoted, escaped LABEL/ENV value or a JSON exec-form array; values that must
appear bare (package names, paths, variable names) are re-checked against the schema patterns
here, so a record that bypassed validation still cannot add an instruction.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gefreg.errors import BadInput
from gefreg.image.labels import BaseImage, image_labels
from gefreg.image.templates import Template
from gefreg.model import APT_PACKAGE_RE, ENV_KEY_RE, NAME_RE, SCRATCH, SHA256_DIGEST, Entry
from gefreg.validators import check_container_path, check_entry_path

# A FROM reference: scratch, or registry/repository[:tag][@sha256:digest] in safe characters.
BASE_REF_RE = re.compile(
    r"^(?:scratch|[a-z0-9.:-]+(?:/[a-z0-9._-]+)+(?::[A-Za-z0-9._-]+)?"
    rf"(?:@{SHA256_DIGEST})?)\Z"
)
CONTEXT_FILES = "files"
PYTHON_PATH = "/opt/gefreg/python"


def quote_value(value: str) -> str:
    """A double-quoted LABEL/ENV value. Docker unescapes \\\\, \\" and \\$ inside quotes; line
    breaks cannot be written in a value, so they (and every control character) become spaces."""
    out = ['"']
    for ch in value:
        if ch in '\\"$':
            out.append("\\" + ch)
        elif unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(" ")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def exec_form(argv: Sequence[str]) -> str:
    """JSON exec form; ASCII-only so no character can end the line."""
    return json.dumps(list(argv), ensure_ascii=True)


@functools.cache
def _environment(directory: str) -> Any:
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        loader=FileSystemLoader(directory),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.filters["label"] = quote_value
    env.filters["exec"] = exec_form
    return env


@dataclass(frozen=True)
class Rendered:
    dockerfile: str
    labels: tuple[tuple[str, str], ...]


def _check(ok: bool, what: str, value: object, hint: str) -> None:
    if not ok:
        raise BadInput(f"cannot render {what} {value!r} safely into a Dockerfile", hint)


def _checked_context(entry: Entry, base: BaseImage, apt: Sequence[str], epoch: int) -> None:
    spec = entry.spec
    _check(bool(NAME_RE.match(spec.name)), "name", spec.name, "fix the record's name")
    _check(bool(BASE_REF_RE.match(base.ref)), "base reference", base.ref, "fix the base lock")
    for pkg in apt:
        _check(bool(APT_PACKAGE_RE.match(pkg)), "apt package", pkg, "use a Debian package name")
    _check(type(epoch) is int and epoch >= 0, "source date", epoch, "use seconds since 1970")
    for src, dst in spec.files:
        _check(check_entry_path(src) is None, "file", src, "ship files from inside the entry")
        _check(check_container_path(dst) is None, "destination", dst, "use an absolute path")
    if spec.workdir is not None:
        _check(
            check_container_path(spec.workdir) is None,
            "workdir",
            spec.workdir,
            "use an absolute path",
        )
    for key, _ in spec.env:
        _check(bool(ENV_KEY_RE.match(key)), "environment variable", key, "use a name like MY_VAR")
    _check(isinstance(spec.user, int) and spec.user > 0, "user", spec.user, "use a uid above 0")


def render(
    entry: Entry,
    template: Template,
    *,
    base: BaseImage,
    fingerprint: str,
    entry_path: str,
    source_date_epoch: int,
    apt_pins: Sequence[str] | None = None,
) -> Rendered:
    """Render the Dockerfile for ``entry`` (labels of the base image are inherited, not copied).

    ``apt_pins`` are the exact ``name=version`` pairs of the entry's apt lock (the record's
    packages.apt when it has none); ``source_date_epoch`` is every time the image carries."""
    spec = entry.spec
    if (spec.base == SCRATCH) != (base.ref == SCRATCH):
        raise BadInput(f"{entry.record_path}: base {spec.base!r} resolved to {base.ref!r}")
    apt = list(spec.apt if apt_pins is None else apt_pins)
    _checked_context(entry, base, apt, source_date_epoch)
    created = datetime.fromtimestamp(source_date_epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = image_labels(
        entry,
        entry_path=entry_path,
        fingerprint=fingerprint,
        template=template.name,
        template_digest=template.digest,
        base=base,
        created=created,
    )
    env = dict(spec.env)
    env.setdefault("HOME", "/tmp")
    pip = bool(spec.pip)
    if pip:
        env["PYTHONPATH"] = PYTHON_PATH + (":" + env["PYTHONPATH"] if "PYTHONPATH" in env else "")
    context = {
        "base_ref": base.ref,
        "apt": apt,
        "epoch": source_date_epoch,
        "pip": pip,
        "files": [(f"{CONTEXT_FILES}/{src}", dst) for src, dst in spec.files],
        "env": sorted(env.items()),
        "workdir": spec.workdir,
        "user": int(spec.user),
        "entrypoint": list(spec.entrypoint),
        "command": list(spec.command),
        "labels": labels,
    }
    text = _environment(str(template.directory)).get_template(template.filename).render(context)
    return Rendered(text.rstrip("\n") + "\n", tuple(labels))
