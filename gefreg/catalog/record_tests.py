"""The golden tests of a service record (``tests``: input folders of the entry per input port,
the sha256 of each expected output file) and the output files that may differ between runs
(``volatile``). Read as part of :mod:`gefreg.catalog.service_record`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gefreg.model import DIGEST_RE, PORT_NAME_RE, Port, ServiceTest
from gefreg.validators import check_entry_path, inside
from gefreg.yamlio import FieldReader


class TestFields(FieldReader):
    """Reads ``tests`` and ``volatile`` (and exec-form argument lists) of a record."""

    directory: Path  # the entry folder test inputs must be in

    def _argv(self, top: Any, key: str, allow_empty: bool = True) -> tuple[str, ...]:
        return self.string_list(
            top,
            key,
            key,
            allow_empty=allow_empty,
            check=lambda s: "contains a NUL byte" if "\0" in s else None,
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
