"""What a service record puts into the image: Debian and pip packages (and the Python
distributions Debian provides, which `gefreg lock` leaves out), and the entry's files with
where they go. Read as part of :mod:`gefreg.catalog.service_record`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gefreg.model import APT_PACKAGE_RE, PIP_REQUIREMENT_RE
from gefreg.validators import check_container_path, check_entry_path, inside
from gefreg.yamlio import FieldReader

PROVIDED_KEY = "apt-provides"
DISTRIBUTION_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?\Z")


class ContentFields(FieldReader):
    """Reads ``packages`` and ``files`` of a record."""

    directory: Path  # the entry folder shipped files must be in

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
