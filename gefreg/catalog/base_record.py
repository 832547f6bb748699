"""The base record schema: CATALOG/bases/NAME/base.yaml → a validated :class:`BaseSpec`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gefreg.errors import InvalidRecord
from gefreg.model import APT_PACKAGE_RE, ENV_KEY_RE, NAME_RE, SCRATCH, BaseSpec
from gefreg.model import BASE_FILE as BASE_FILE  # re-exported: the file this schema reads
from gefreg.validators import check_text, check_url
from gefreg.yamlio import FieldReader

DEFAULT_MIRROR = "http://deb.debian.org/debian"

BASE_REQUIRED = ("name", "description", "suite", "source_date_epoch")
BASE_OPTIONAL = ("variant", "mirror", "packages", "labels", "env")
VARIANTS = ("minbase", "buildd", "important", "required", "standard")
LABEL_KEY_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
SUITE_RE = re.compile(r"^[a-z][a-z0-9-]*\Z")


def parse_base(path: Path, doc: Any) -> BaseSpec:
    """Validate a parsed base record (catalog/bases/NAME/base.yaml)."""
    r = FieldReader(path)
    top = r.mapping(doc, None, "", required=BASE_REQUIRED, optional=BASE_OPTIONAL)
    if top is None:
        raise InvalidRecord(r.problems)
    name = (
        r.string(top, "name", "name", pattern=NAME_RE, expected="a base name")
        if ("name" in top)
        else None
    )
    if name and name != path.parent.name:
        r.fail(top, "name", "name", f"'{name}' differs from its directory '{path.parent.name}'")
    if name == SCRATCH:
        r.fail(top, "name", "name", "'scratch' is built in and cannot be redefined")
    description = (
        r.string(top, "description", "description", check=check_text)
        if ("description" in top)
        else None
    )
    suite = (
        r.string(top, "suite", "suite", pattern=SUITE_RE, expected="a Debian suite like bookworm")
        if "suite" in top
        else None
    )
    variant = (
        r.optional_string(
            top,
            "variant",
            "variant",
            check=lambda v: None if v in VARIANTS else f"expected one of {', '.join(VARIANTS)}",
        )
        or "minbase"
    )
    mirror = r.optional_string(top, "mirror", "mirror", check=check_url) or DEFAULT_MIRROR
    packages: tuple[str, ...] = ()
    if top.get("packages") is not None:
        packages = r.string_list(
            top, "packages", "packages", pattern=APT_PACKAGE_RE, expected="a Debian package name"
        )
    epoch = (
        r.number(top, "source_date_epoch", "source_date_epoch", minimum=0, integer=True)
        if "source_date_epoch" in top
        else None
    )
    labels = _string_map(r, top, "labels", LABEL_KEY_RE, "a label key like org.example.key")
    env = _string_map(r, top, "env", ENV_KEY_RE, "a variable name like LANG")
    r.raise_if_problems()
    assert name and description and suite and epoch is not None
    return BaseSpec(
        name=name,
        description=description,
        suite=suite,
        variant=variant,
        mirror=mirror,
        packages=tuple(sorted(packages)),
        source_date_epoch=int(epoch),
        labels=labels,
        env=env,
    )


def _string_map(
    r: FieldReader, top: Any, key: str, key_re: re.Pattern[str], expected: str
) -> tuple[tuple[str, str], ...]:
    if top.get(key) is None:
        return ()
    node = r.mapping(top, key, key, open_keys=True)
    if node is None:
        return ()
    out = []
    for k in node:
        if not isinstance(k, str) or not key_re.match(k):
            r.fail(node, k, f"{key}.{k}", f"expected {expected}")
            continue
        value = r.string(node, k, f"{key}.{k}", check=check_text)
        if value is not None:
            out.append((k, value))
    return tuple(sorted(out))
