"""Golden tests declared in a record: run the service on sample inputs, compare output hashes.

A test names a folder of the entry for each input port and the sha256 of each expected output
file (``PORT/relative/path: sha256:...``). It runs through the same hardened runner as
``gefreg run``, into a fresh folder under ``<state dir>/tests/``. A test passes when the service
succeeds, every expected file exists with the expected hash, and no other file appears except
ones matching the record's ``volatile`` patterns (reported as ignored). The run record and logs
are kept; the outputs of a passing test are removed, those of a failing test kept for a look.

``update=True`` rewrites the ``expect`` mappings of ``service.yaml`` to what the service
produced (volatile files left out) through ruamel.yaml round-trip, so comments, key order, flow
style and quoting stay as they were; the result is validated before it replaces the file.
Publishing calls :func:`run_tests` and requires ``report.passed``.
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.engine.protocols import ImageStore, RunEngine
from gefreg.errors import BadInput
from gefreg.image.build_record import require_build
from gefreg.image.interface import ServiceInterface
from gefreg.model import Entry, ServiceTest
from gefreg.release.trust import ImageClaim, ResolvedImage, trust_image
from gefreg.run.compare import matching_pattern
from gefreg.run.execute import run_service
from gefreg.run.record import now
from gefreg.run.request import RunObserver, RunRequest
from gefreg.settings import Settings

TESTS_DIR = "tests"


@dataclass(frozen=True)
class FileCheck:
    key: str
    expected: str | None
    actual: str | None
    status: str  # "ok", "changed", "missing", "unexpected" or "volatile" (ignored)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "volatile")

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.key,
            "status": self.status,
            "expected": self.expected,
            "actual": self.actual,
        }


@dataclass(frozen=True)
class TestResult:
    name: str
    passed: bool
    run_status: str
    error: str | None
    files: tuple[FileCheck, ...]
    record: Path
    outputs: Path | None  # kept for a failing test

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "run_status": self.run_status,
            "error": self.error,
            "files": [f.to_json() for f in self.files],
            "record": str(self.record),
            "outputs": str(self.outputs) if self.outputs else None,
        }


@dataclass(frozen=True)
class ExpectChange:
    test: str
    key: str
    old: str | None
    new: str | None

    def describe(self) -> str:
        if self.old is None:
            return f"{self.test}: added   {self.key}: {self.new}"
        if self.new is None:
            return f"{self.test}: removed {self.key} (was {self.old})"
        return f"{self.test}: changed {self.key}: {self.old} → {self.new}"


@dataclass(frozen=True)
class TestReport:
    entry: str
    version: str
    image_id: str
    results: tuple[TestResult, ...]
    changes: tuple[ExpectChange, ...] = ()
    updated: Path | None = None

    @property
    def passed(self) -> bool:
        """Every test passed (vacuously true without tests: check ``declared`` too)."""
        return all(r.passed for r in self.results)

    @property
    def declared(self) -> int:
        return len(self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "version": self.version,
            "image_id": self.image_id,
            "passed": self.passed,
            "tests": [r.to_json() for r in self.results],
            "updated": str(self.updated) if self.updated else None,
            "changes": [
                {"test": c.test, "file": c.key, "old": c.old, "new": c.new} for c in self.changes
            ],
        }


def check_files(
    expected: Mapping[str, str], produced: Mapping[str, str], volatile: tuple[str, ...]
) -> tuple[FileCheck, ...]:
    checks = []
    for key in sorted(expected.keys() | produced.keys()):
        exp, act = expected.get(key), produced.get(key)
        if exp is not None and act is not None:
            status = "ok" if exp == act else "changed"
        elif exp is not None:
            status = "missing"
        else:
            status = "volatile" if matching_pattern(key, volatile) else "unexpected"
        checks.append(FileCheck(key, exp, act, status))
    return tuple(checks)


def _run_one(
    settings: Settings,
    engine: RunEngine,
    entry: Entry,
    image: ResolvedImage,
    test: ServiceTest,
    observer: RunObserver | None,
) -> tuple[TestResult, dict[str, str] | None]:
    spec = entry.spec
    stamp = now().strftime("%Y%m%dT%H%M%S%fZ")
    work = settings.state_dir / TESTS_DIR / f"{entry.name}-{stamp}-{test.name}"
    outputs = work / "outputs"
    request = RunRequest(
        image=image,
        service=ServiceInterface.from_spec(spec),
        inputs=tuple((port, entry.directory / rel) for port, rel in test.inputs),
        outputs=tuple((p.name, outputs / p.name) for p in spec.outputs),
        args=test.args,
        limits=spec.resources,
        record=work / "run.json",
    )
    result = run_service(request, engine=engine, observer=observer)
    produced = {f"{port}/{f.path}": f.sha256 for port, m in result.outputs.items() for f in m.files}
    files = check_files(dict(test.expect), produced, spec.volatile)
    passed = result.succeeded and all(f.ok for f in files)
    if passed:
        shutil.rmtree(outputs, ignore_errors=True)
    fresh = (
        {k: v for k, v in produced.items() if not matching_pattern(k, spec.volatile)}
        if result.succeeded
        else None
    )
    return (
        TestResult(
            test.name,
            passed,
            result.status,
            result.error,
            files,
            result.record_path,
            None if passed else outputs,
        ),
        fresh,
    )


def built_image(
    settings: Settings, entry: Entry, engine: ImageStore, version: str | None = None
) -> ResolvedImage:
    """The entry's current build, which must be of ``version`` (default: the record's),
    as the one trust decision sees it."""
    wanted = version or entry.spec.version
    record = require_build(settings, entry.name)
    if record.version != wanted:
        raise BadInput(
            f"{entry.name}@{wanted} is not built (the build is version {record.version})",
            f"rebuild: gefreg build {entry.name}",
        )
    claim = ImageClaim(entry.name, wanted, record.image_id, ref=f"{entry.name}@{wanted}")
    return trust_image(settings, engine, claim, ledger=None)


def run_tests(
    settings: Settings,
    entry: Entry,
    *,
    engine: RunEngine,
    image: ResolvedImage | None = None,
    update: bool = False,
    observer: RunObserver | None = None,
) -> TestReport:
    """Run every test of ``entry`` against ``image`` (default: the entry's current build)."""
    if image is None:
        image = built_image(settings, entry, engine)
    results = []
    fresh: dict[str, dict[str, str]] = {}
    for test in entry.spec.tests:
        if observer:
            observer.status(f"test {test.name}")
        result, produced = _run_one(settings, engine, entry, image, test, observer)
        results.append(result)
        if produced is not None:
            fresh[test.name] = produced
    changes: list[ExpectChange] = []
    updated = None
    if update and fresh:
        changes = update_expectations(entry.record_path, fresh)
        updated = entry.record_path if changes else None
    return TestReport(
        entry.name,
        entry.spec.version,
        image.image_id,
        tuple(results),
        tuple(changes),
        updated,
    )


def mapping_indent(text: str) -> int:
    """The indent of the first block mapping nested under a top-level key (default 2)."""
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    for line, following in itertools.pairwise(lines):
        if not line.startswith((" ", "-")) and line.rstrip().endswith(":"):
            stripped = following.lstrip(" ")
            if not stripped.startswith("-"):
                return len(following) - len(stripped) or 2
    return 2


def update_expectations(record: Path, fresh: Mapping[str, Mapping[str, str]]) -> list[ExpectChange]:
    """Set each named test's ``expect`` to ``fresh[test]`` in ``record``, keeping the rest of the
    file as written. Returns what changed (nothing is written when nothing changed)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    from gefreg.catalog.entries import base_names
    from gefreg.catalog.service_record import parse_service

    text = record.read_text(encoding="utf-8")
    _, sequence, offset = load_yaml_guess_indent(text)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=mapping_indent(text), sequence=sequence or 2, offset=offset or 0)
    doc = yaml.load(text)
    tests = {str(t.get("name")): t for t in doc.get("tests") or []}
    changes: list[ExpectChange] = []
    for name, produced in fresh.items():
        expect = tests[name]["expect"]
        for key in [k for k in expect if k not in produced]:
            changes.append(ExpectChange(name, str(key), str(expect[key]), None))
            del expect[key]
        for key, digest in produced.items():
            old = expect.get(key)
            if old != digest:
                changes.append(ExpectChange(name, key, None if old is None else str(old), digest))
                expect[key] = digest
    if not changes:
        return []
    parse_service(record, doc, base_names(record.parent.parent))
    out = io.StringIO()
    yaml.dump(doc, out)
    tmp = record.with_name(f".{record.name}.tmp{os.getpid()}")
    tmp.write_text(out.getvalue(), encoding="utf-8")
    os.chmod(tmp, os.stat(record).st_mode & 0o7777)
    os.replace(tmp, record)
    return changes
