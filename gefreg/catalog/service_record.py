"""The service record schema: YAML in, a validated :class:`ServiceSpec` out, every problem at once.

The reference for each field is in the README ("Catalog record reference").
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Any

from gefreg import limits
from gefreg.catalog.record_contents import ContentFields
from gefreg.catalog.record_tests import TestFields
from gefreg.model import (
    ENV_KEY_RE,
    NAME_RE,
    PORT_NAME_RE,
    SCRATCH,
    TEMPLATES,
    Port,
    Resources,
    ServiceSpec,
)
from gefreg.validators import (
    check_container_path,
    check_env_value,
    check_maintainer,
    check_port_path,
    check_semver,
    check_spdx,
    check_text,
    check_url,
    overlapping,
)

REVISION_RE = re.compile(r"^[A-Za-z0-9._/-]{1,128}\Z")

REQUIRED = (
    "name",
    "version",
    "description",
    "license",
    "maintainers",
    "base",
    "template",
    "command",
    "inputs",
    "outputs",
)
OPTIONAL = (
    "source",
    "documentation",
    "revision",
    "packages",
    "files",
    "entrypoint",
    "workdir",
    "env",
    "user",
    "resources",
    "tests",
    "volatile",
    "source_date_epoch",
)
MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z

RESERVED_NAMES = ("bases", "templates")


class _ServiceReader(ContentFields, TestFields):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.directory = path.parent

    def read(self, doc: Any, known_bases: set[str] | None) -> ServiceSpec | None:
        top = self.mapping(doc, None, "", required=REQUIRED, optional=OPTIONAL)
        if top is None:
            return None
        get = functools.partial(self._field, top)
        name = get(
            "name",
            lambda: self.string(
                top,
                "name",
                "name",
                pattern=NAME_RE,
                expected="a name of lowercase letters, digits and '-' (at most 63)",
            ),
        )
        if name and name != self.directory.name:
            self.fail(
                top,
                "name",
                "name",
                f"'{name}' differs from its directory '{self.directory.name}'",
                f"rename the directory or set name: {self.directory.name}",
            )
        if name in RESERVED_NAMES:
            self.fail(top, "name", "name", f"'{name}' is reserved for the catalog's own folders")
        template = get(
            "template",
            lambda: self.string(
                top,
                "template",
                "template",
                expected=f"one of {', '.join(TEMPLATES)}",
                check=lambda t: None if t in TEMPLATES else f"unknown template {t!r}",
                hint=f"use one of: {', '.join(TEMPLATES)}",
            ),
        )
        base = get("base", lambda: self._base(top, known_bases))
        self._template_fits_base(top, template, base)
        apt, pip, provided = self._packages(top, template)
        inputs = get("inputs", lambda: self._ports(top, "inputs"), ())
        outputs = get("outputs", lambda: self._ports(top, "outputs"), ())
        self._ports_disjoint(top, inputs, outputs)
        spec = dict(
            name=name,
            version=get(
                "version",
                lambda: self.string(
                    top, "version", "version", check=check_semver, hint="see https://semver.org"
                ),
            ),
            description=get(
                "description",
                lambda: self.string(top, "description", "description", check=check_text),
            ),
            license=get(
                "license",
                lambda: self.string(
                    top,
                    "license",
                    "license",
                    check=check_spdx,
                    hint="use an SPDX identifier such as MIT or LGPL-3.0-or-later",
                ),
            ),
            maintainers=get(
                "maintainers",
                lambda: self.string_list(
                    top, "maintainers", "maintainers", allow_empty=False, check=check_maintainer
                ),
            ),
            base=base,
            template=template,
            command=get("command", lambda: self._argv(top, "command", allow_empty=False)),
            inputs=inputs,
            outputs=outputs,
            source=self._opt_url(top, "source"),
            documentation=self._opt_url(top, "documentation"),
            revision=self.optional_string(
                top,
                "revision",
                "revision",
                pattern=REVISION_RE,
                expected="a source revision (commit or tag)",
            ),
            apt=apt,
            pip=pip,
            apt_provides=provided,
            files=get("files", lambda: self._files(top), ()),
            entrypoint=get("entrypoint", lambda: self._argv(top, "entrypoint"), ()),
            workdir=self.optional_string(top, "workdir", "workdir", check=check_container_path),
            env=get("env", lambda: self._env(top), ()),
            user=get("user", lambda: self._user(top), None),
            resources=get("resources", lambda: self._resources(top), Resources()),
            tests=get("tests", lambda: self._tests(top, inputs, outputs), ()),
            volatile=get("volatile", lambda: self._volatile(top, outputs), ()),
            source_date_epoch=get("source_date_epoch", lambda: self._epoch(top), None),
        )
        if self.problems:
            return None
        if spec["user"] is None:
            del spec["user"]
        return ServiceSpec(**spec)

    def _field(self, top: Any, key: str, read: Any, default: Any = None) -> Any:
        if key not in top or (top[key] is None and key not in REQUIRED):
            return default
        return read()

    def _base(self, top: Any, known: set[str] | None) -> str | None:
        value = self.string(
            top, "base", "base", expected="a curated base name or 'scratch'", pattern=NAME_RE
        )
        if value and value != SCRATCH and known is not None and value not in known:
            choices = ", ".join(sorted(known | {SCRATCH}))
            self.fail(
                top,
                "base",
                "base",
                f"unknown base {value!r}",
                f"use one of: {choices}, or add catalog/bases/{value}/base.yaml",
            )
        return value

    def _template_fits_base(self, top: Any, template: str | None, base: str | None) -> None:
        if template is None or base is None:
            return
        if template == "static" and base != SCRATCH:
            self.fail(
                top,
                "base",
                "base",
                "the static template builds FROM scratch",
                "set base: scratch or choose the debian/python template",
            )
        if template != "static" and base == SCRATCH:
            self.fail(
                top,
                "base",
                "base",
                f"the {template} template needs a Debian base",
                "use template: static for scratch images",
            )

    def _ports(self, top: Any, side: str) -> tuple[Port, ...]:
        node = top[side]
        if not isinstance(node, list):
            self.fail(top, side, side, "expected a list of ports like {name: x, path: /data/x}")
            return ()
        ports, names = [], set()
        for i in range(len(node)):
            field = f"{side}[{i}]"
            optional = ("type", "filename", "description") if side == "inputs" else ("description",)
            item = self.mapping(node, i, field, required=("name", "path"), optional=optional)
            if item is None or "name" not in item or "path" not in item:
                continue
            name = self.string(
                item,
                "name",
                f"{field}.name",
                pattern=PORT_NAME_RE,
                expected="a port name of letters, digits and _.-",
            )
            path = self.string(item, "path", f"{field}.path", check=check_port_path)
            kind = self.optional_string(
                item,
                "type",
                f"{field}.type",
                expected="url or string",
                check=lambda t: None if t in ("url", "string") else "expected url or string",
            )
            filename = self.optional_string(
                item, "filename", f"{field}.filename", pattern=PORT_NAME_RE, expected="a file name"
            )
            description = self.optional_string(
                item, "description", f"{field}.description", check=check_text
            )
            if name in names:
                self.fail(item, "name", f"{field}.name", f"duplicate port name {name!r}")
            names.add(name)
            if name and path:
                ports.append(Port(name, path, kind, filename, description))
        return tuple(ports)

    def _ports_disjoint(
        self, top: Any, inputs: tuple[Port, ...], outputs: tuple[Port, ...]
    ) -> None:
        labelled = [("inputs", p.path) for p in inputs] + [("outputs", p.path) for p in outputs]
        found = overlapping(labelled)
        if found:
            side_a, a, side_b, b = found
            self.fail(
                top,
                side_b,
                side_b,
                f"port path {b} overlaps {side_a} path {a}",
                "give every port its own folder",
            )

    def _opt_url(self, top: Any, key: str) -> str | None:
        return self.optional_string(top, key, key, expected="an http(s) URL", check=check_url)

    def _env(self, top: Any) -> tuple[tuple[str, str], ...]:
        node = self.mapping(top, "env", "env", open_keys=True)
        if node is None:
            return ()
        out = []
        for key in node:
            if not isinstance(key, str) or not ENV_KEY_RE.match(key):
                self.fail(node, key, f"env.{key}", "expected a variable name like MY_VAR")
                continue
            value = self.string(node, key, f"env.{key}", check=check_env_value)
            if value is not None:
                out.append((key, value))
        return tuple(sorted(out))

    def _epoch(self, top: Any) -> int | None:
        value = self.number(
            top, "source_date_epoch", "source_date_epoch", maximum=MAX_EPOCH, integer=True
        )
        return int(value) if value is not None else None

    def _user(self, top: Any) -> int | None:
        value = self.number(top, "user", "user", minimum=1, maximum=65534, integer=True)
        return int(value) if value is not None else None

    def _resources(self, top: Any) -> Resources:
        keys = tuple(limits.BOUNDS)
        node = self.mapping(top, "resources", "resources", optional=keys)
        if node is None:
            return Resources()
        values: dict[str, Any] = {}
        for key in keys:
            if node.get(key) is None:
                continue
            try:
                values[key] = limits.parse(key, node[key])
            except limits.LimitError as exc:
                self.fail(node, key, f"resources.{key}", str(exc))
        return dataclasses.replace(Resources(), **values)


def parse_service(path: Path, doc: Any, known_bases: set[str] | None = None) -> ServiceSpec:
    """Validate a parsed service record; raises InvalidRecord listing every problem."""
    reader = _ServiceReader(path)
    spec = reader.read(doc, known_bases)
    reader.raise_if_problems()
    assert spec is not None
    return spec
