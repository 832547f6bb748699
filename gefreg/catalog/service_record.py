"""The service record schema: YAML in, a validated :class:`ServiceSpec` out, every problem at once.

The reference for each field is in the README ("Catalog record reference").
"""

from __future__ import annotations

import functools
import re
from pathlib import Path, PurePosixPath
from typing import Any

from gefreg.model import (
    APT_PACKAGE_RE,
    DIGEST_RE,
    ENV_KEY_RE,
    NAME_RE,
    PIP_REQUIREMENT_RE,
    PORT_NAME_RE,
    SCRATCH,
    TEMPLATES,
    Port,
    Resources,
    ServiceSpec,
    ServiceTest,
)
from gefreg.model import RECORD_FILE as RECORD_FILE  # re-exported: the schema's file name
from gefreg.validators import (
    check_container_path,
    check_entry_path,
    check_env_value,
    check_maintainer,
    check_port_path,
    check_semver,
    check_spdx,
    check_text,
    check_url,
    inside,
    parse_duration,
    parse_memory,
)
from gefreg.yamlio import FieldReader

MAX_MEMORY = 1024**4  # 1 TiB
MAX_TIMEOUT = 30 * 86400.0
REVISION_RE = re.compile(r"^[A-Za-z0-9._/-]{1,128}$")

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
)

RESERVED_NAMES = ("bases", "templates")
PROVIDED_KEY = "apt-provides"
DISTRIBUTION_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")


class _ServiceReader(FieldReader):
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

    def _packages(
        self, top: Any, template: str | None
    ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        if top.get("packages") is None:
            return (), (), ()
        node = self.mapping(top, "packages", "packages", optional=("apt", "pip", PROVIDED_KEY))
        if node is None:
            return (), (), ()
        apt: tuple[str, ...] = ()
        pip: tuple[str, ...] = ()
        if node.get("apt") is not None:
            apt = self.string_list(
                node,
                "apt",
                "packages.apt",
                pattern=APT_PACKAGE_RE,
                expected="a Debian package name (optionally =version)",
            )
            if template == "static" and apt:
                self.fail(node, "apt", "packages.apt", "the static template installs no packages")
        if node.get("pip") is not None:
            pip = self.string_list(
                node,
                "pip",
                "packages.pip",
                pattern=PIP_REQUIREMENT_RE,
                expected="a pinned requirement like obspy==1.5.1",
                hint="pin every pip package with ==",
            )
            if pip and template != "python":
                self.fail(
                    node,
                    "pip",
                    "packages.pip",
                    "only the python template installs pip packages",
                    "set template: python",
                )
        return apt, pip, self._provided(node, pip)

    def _provided(self, node: Any, pip: tuple[str, ...]) -> tuple[str, ...]:
        """Python distributions the record's Debian packages provide: `gefreg lock` leaves
        them (and what only they need) out of the pip closure."""
        if node.get(PROVIDED_KEY) is None:
            return ()
        field = f"packages.{PROVIDED_KEY}"
        names = self.string_list(
            node,
            PROVIDED_KEY,
            field,
            pattern=DISTRIBUTION_RE,
            expected="a Python distribution name like numpy",
        )
        if names and not pip:
            self.fail(node, PROVIDED_KEY, field, "only means something with packages.pip")
        pinned = {re.sub(r"[-_.]+", "-", p.split("==")[0]).lower() for p in pip}
        for i, name in enumerate(names):
            if re.sub(r"[-_.]+", "-", name).lower() in pinned:
                self.fail(
                    node[PROVIDED_KEY],
                    i,
                    f"{field}[{i}]",
                    f"{name} is pinned in packages.pip: it cannot also come from Debian",
                )
        return names

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
        seen: list[tuple[str, str]] = []
        for side, ports in (("inputs", inputs), ("outputs", outputs)):
            for port in ports:
                p = PurePosixPath(port.path)
                for other_side, other in seen:
                    o = PurePosixPath(other)
                    if p == o or o in p.parents or p in o.parents:
                        self.fail(
                            top,
                            side,
                            side,
                            f"port path {port.path} overlaps {other_side} path {other}",
                            "give every port its own folder",
                        )
                seen.append((side, port.path))

    def _argv(self, top: Any, key: str, allow_empty: bool = True) -> tuple[str, ...]:
        return self.string_list(
            top,
            key,
            key,
            allow_empty=allow_empty,
            check=lambda s: "contains a NUL byte" if "\0" in s else None,
        )

    def _opt_url(self, top: Any, key: str) -> str | None:
        return self.optional_string(top, key, key, expected="an http(s) URL", check=check_url)

    def _files(self, top: Any) -> tuple[tuple[str, str], ...]:
        node = self.mapping(top, "files", "files", open_keys=True)
        if node is None:
            return ()
        out = []
        for src in node:
            if not isinstance(src, str):
                continue  # already reported by mapping(): keys must be strings
            field = f"files.{src}"
            error = check_entry_path(src)
            if error:
                self.fail(
                    node,
                    src,
                    field,
                    error,
                    "ship files from inside the entry directory",
                    at_key=True,
                )
                continue
            target = inside(self.directory, str(src))
            if target is None:
                self.fail(
                    node,
                    src,
                    field,
                    "resolves outside the entry directory (symlink?)",
                    "copy the file into the entry instead of linking to it",
                    at_key=True,
                )
                continue
            if not target.exists():
                self.fail(
                    node,
                    src,
                    field,
                    f"no such file in the entry: {self.directory / src}",
                    at_key=True,
                )
                continue
            dst = self.string(
                node,
                src,
                field,
                check=check_container_path,
                expected="an absolute path in the image",
            )
            if dst:
                out.append((str(src), dst))
        return tuple(sorted(out))

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

    def _user(self, top: Any) -> int | None:
        value = self.number(top, "user", "user", minimum=1, maximum=65534, integer=True)
        return int(value) if value is not None else None

    def _resources(self, top: Any) -> Resources:
        node = self.mapping(
            top, "resources", "resources", optional=("memory", "cpus", "timeout", "pids")
        )
        if node is None:
            return Resources()
        defaults = Resources()
        memory, timeout = defaults.memory, defaults.timeout
        if node.get("memory") is not None:
            raw = node["memory"]
            parsed = parse_memory(str(raw)) if isinstance(raw, str | int) else None
            if not parsed or not 4 * 1024**2 <= parsed <= MAX_MEMORY:
                self.fail(
                    node,
                    "memory",
                    "resources.memory",
                    f"expected a size between 4m and 1t like 512m or 2g, got {raw!r}",
                )
            else:
                memory = parsed
        if node.get("timeout") is not None:
            raw = node["timeout"]
            seconds = parse_duration(str(raw)) if isinstance(raw, str | int | float) else None
            if not seconds or not 0 < seconds <= MAX_TIMEOUT:
                self.fail(
                    node,
                    "timeout",
                    "resources.timeout",
                    f"expected a duration up to 30 days like 90s, 10m or 1h, got {raw!r}",
                )
            else:
                timeout = seconds
        cpus = (
            self.number(node, "cpus", "resources.cpus", minimum=0.01, maximum=1024)
            if node.get("cpus") is not None
            else defaults.cpus
        )
        pids = (
            self.number(node, "pids", "resources.pids", minimum=8, maximum=4194304, integer=True)
            if node.get("pids") is not None
            else defaults.pids
        )
        return Resources(
            memory=memory,
            cpus=cpus or defaults.cpus,
            timeout=timeout,
            pids=int(pids or defaults.pids),
        )

    def _tests(
        self, top: Any, inputs: tuple[Port, ...], outputs: tuple[Port, ...]
    ) -> tuple[ServiceTest, ...]:
        node = top["tests"]
        if not isinstance(node, list):
            self.fail(top, "tests", "tests", "expected a list of tests")
            return ()
        in_names = {p.name for p in inputs}
        out_names = {p.name for p in outputs}
        tests, names = [], set()
        for i in range(len(node)):
            field = f"tests[{i}]"
            item = self.mapping(
                node, i, field, required=("name", "inputs", "expect"), optional=("args",)
            )
            if item is None or not {"name", "inputs", "expect"} <= set(item):
                continue
            name = self.string(
                item, "name", f"{field}.name", pattern=PORT_NAME_RE, expected="a test name"
            )
            if name in names:
                self.fail(item, "name", f"{field}.name", f"duplicate test name {name!r}")
            names.add(name)
            test_inputs = self._test_inputs(item, field, in_names)
            expect = self._test_expect(item, field, out_names)
            args = self._argv(item, "args") if item.get("args") is not None else ()
            if name:
                tests.append(ServiceTest(name, test_inputs, expect, args))
        return tuple(tests)

    def _test_inputs(self, item: Any, field: str, ports: set[str]) -> tuple[tuple[str, str], ...]:
        node = self.mapping(item, "inputs", f"{field}.inputs", open_keys=True)
        if node is None:
            return ()
        for port in ports - set(node):
            self.fail(item, "inputs", f"{field}.inputs", f"no folder for input port {port!r}")
        out = []
        for port in node:
            where = f"{field}.inputs.{port}"
            if port not in ports:
                self.fail(
                    node,
                    port,
                    where,
                    f"unknown input port {port!r}",
                    f"ports: {', '.join(sorted(ports))}",
                )
                continue
            rel = self.string(node, port, where, check=check_entry_path)
            if rel is None:
                continue
            target = inside(self.directory, rel)
            if target is None or not target.is_dir():
                self.fail(node, port, where, f"no such folder in the entry: {rel}")
                continue
            out.append((str(port), rel))
        return tuple(sorted(out))

    def _test_expect(self, item: Any, field: str, ports: set[str]) -> tuple[tuple[str, str], ...]:
        node = self.mapping(item, "expect", f"{field}.expect", open_keys=True)
        if node is None:
            return ()
        if not node:
            self.fail(item, "expect", f"{field}.expect", "expect at least one output file")
        out = []
        for key in node:
            where = f"{field}.expect.{key}"
            port, _, rel = str(key).partition("/")
            if port not in ports or not rel or check_entry_path(rel):
                self.fail(
                    node,
                    key,
                    where,
                    "expected OUTPUT-PORT/relative/path",
                    f"output ports: {', '.join(sorted(ports))}",
                )
                continue
            digest = self.string(
                node,
                key,
                where,
                pattern=DIGEST_RE,
                expected="sha256:<64 hex digits>",
                hint="`gefreg test --update` writes the current hashes",
            )
            if digest:
                out.append((str(key), digest))
        return tuple(sorted(out))

    def _volatile(self, top: Any, outputs: tuple[Port, ...]) -> tuple[str, ...]:
        names = {p.name for p in outputs}
        patterns = self.string_list(top, "volatile", "volatile")
        for i, pattern in enumerate(patterns):
            if pattern.partition("/")[0] not in names:
                self.fail(
                    top["volatile"],
                    i,
                    f"volatile[{i}]",
                    "expected OUTPUT-PORT/glob like metadata/*.log",
                    f"output ports: {', '.join(sorted(names))}",
                )
        return patterns


def parse_service(path: Path, doc: Any, known_bases: set[str] | None = None) -> ServiceSpec:
    """Validate a parsed service record; raises InvalidRecord listing every problem."""
    reader = _ServiceReader(path)
    spec = reader.read(doc, known_bases)
    reader.raise_if_problems()
    assert spec is not None
    return spec
