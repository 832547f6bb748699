"""`gefreg lint`: validate records, render them, run hadolint and gefreg's own rules.

gefreg's rules (IDs GR1xx) check what a curated registry needs beyond hadolint:
GR101 base pinned by digest · GR102 no `latest` · GR103 final USER not root ·
GR104 no ADD of URLs · GR105 labels complete · GR106 GEF ports match the record ·
GR107 pip packages locked with hashes · GR108 (warning) golden tests declared ·
GR109 no placeholder left from `gefreg new` · GR110 (warning) apt packages locked to exact
versions (a build resolves a missing apt.lock).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.catalog import apt_lock
from gefreg.catalog.entries import base_names, load_entry, load_lock, resolve
from gefreg.catalog.pip_lock import lock_problems
from gefreg.catalog.scaffold import placeholders
from gefreg.errors import BadInput, InvalidRecord
from gefreg.fsutil import atomic_write
from gefreg.hashing import HashCache
from gefreg.image.build_plan import BuildPlan, prepare
from gefreg.image.labels import REQUIRED_LABELS, ports_from_labels
from gefreg.model import SCRATCH, Entry
from gefreg.scan.hadolint import Hadolint
from gefreg.settings import Settings

ERROR = "error"
WARNING = "warning"
SEVERITY = {"error": 3, "warning": 2, "info": 1, "style": 0}


@dataclass(frozen=True)
class LintFinding:
    entry: str
    file: str
    line: int | None
    rule: str
    level: str
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        where += f":{self.column}" if self.line and self.column else ""
        return f"{where}: {self.level}: {self.rule}: {self.message}"


@dataclass(frozen=True)
class LintReport:
    entries: tuple[str, ...]
    findings: tuple[LintFinding, ...]
    threshold: str = ERROR

    @property
    def failed(self) -> bool:
        limit = SEVERITY[self.threshold]
        return any(SEVERITY.get(f.level, 3) >= limit for f in self.findings)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": not self.failed,
            "threshold": self.threshold,
            "entries": list(self.entries),
            "findings": [f.__dict__ for f in self.findings],
        }


Violation = tuple[int | None, str, str]  # (line, rule, message)


def project_rules(plan: BuildPlan) -> list[Violation]:
    """gefreg's own rules on a rendered Dockerfile: (line, rule, message) for each violation."""
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(fileobj=io.BytesIO(plan.dockerfile.encode()))
    structure = parser.structure
    labels = _labels(structure)
    if labels is None:  # not LABEL lines as gefreg writes them: let dockerfile-parse read them
        labels = parser.labels
    return _instruction_rules(structure) + _label_rules(plan, labels)


def _instruction_rules(structure: list[dict[str, Any]]) -> list[Violation]:
    """GR101/GR102 pinned bases, GR103 a final USER that is not root, GR104 no ADD of URLs."""
    out: list[Violation] = []
    stages: set[str] = set()
    final_user: tuple[int, str] | None = None
    for ins in structure:
        line, kind, value = ins["startline"] + 1, ins["instruction"], ins["value"]
        if kind == "FROM":
            final_user = None
            out += _base_rules(line, value, stages)
        elif kind == "USER":
            final_user = (line, value.strip())
        elif kind == "ADD" and ("http://" in value or "https://" in value):
            out.append((line, "GR104", "ADD of a URL: fetch on the host and COPY the file"))
    if final_user is None:
        out.append((None, "GR103", "the final stage has no USER: the image would run as root"))
    elif final_user[1].split(":")[0] in ("root", "0"):
        out.append((final_user[0], "GR103", "the final USER is root"))
    return out


def _base_rules(line: int, value: str, stages: set[str]) -> list[Violation]:
    """A FROM line (``stages`` collects the names of earlier build stages)."""
    words = value.split()
    image = words[0]
    if len(words) >= 3 and words[1].lower() == "as":
        stages.add(words[2].lower())
    if image.lower() in stages or image == SCRATCH:
        return []
    out: list[Violation] = []
    if "@sha256:" not in image:
        out.append((line, "GR101", f"base {image} is not pinned by digest"))
    if image.rsplit("/", 1)[-1].split("@")[0].endswith(":latest"):
        out.append((line, "GR102", f"base {image} uses the mutable tag 'latest'"))
    return out


def _label_rules(plan: BuildPlan, labels: dict[str, str]) -> list[Violation]:
    """GR105 every required label is there, GR106 the GEF port labels say what the record says."""
    out: list[Violation] = [
        (None, "GR105", f"label {key} is missing") for key in REQUIRED_LABELS if key not in labels
    ]
    spec = plan.entry.spec
    ports = ports_from_labels(labels)
    for side, record_ports in (("input", spec.inputs), ("output", spec.outputs)):
        got = [(p.get("name"), p.get("path")) for p in ports[side]]
        want = [(p.name, p.path) for p in record_ports]
        if got != want:
            out.append((None, "GR106", f"GEF {side} labels {got} differ from the record {want}"))
    return out


# One `key="value"` pair of a LABEL instruction as gefreg writes them (render.quote_value).
_LABEL_PAIR = re.compile(r'\s*([A-Za-z0-9._-]+)="((?:[^"\\]|\\.)*)"')
_ESCAPED = re.compile(r'\\(["\\$])')


def _labels(structure: list[dict[str, Any]]) -> dict[str, str] | None:
    """The labels of gefreg's own LABEL instructions, read directly: dockerfile-parse's general
    word splitting costs about 1 ms per Dockerfile, most of a lint. None when a LABEL is not in
    gefreg's ``key="value"`` form."""
    labels: dict[str, str] = {}
    for ins in structure:
        if ins["instruction"] != "LABEL":
            continue
        value, at = ins["value"], 0
        while at < len(value.rstrip()):
            match = _LABEL_PAIR.match(value, at)
            if match is None:
                return None
            labels[match.group(1)] = _ESCAPED.sub(r"\1", match.group(2))
            at = match.end()
    return labels


def _lock_findings(entry: Entry, plan: BuildPlan, record: str) -> list[LintFinding]:
    """GR107 pip.lock matches packages.pip; GR110 apt.lock matches packages.apt and the base."""
    out = [
        LintFinding(entry.name, record, None, "GR107", ERROR, message)
        for message in lock_problems(entry)
    ]
    stale = apt_lock.stale(entry, plan.apt_lock, plan.base.digest)
    if stale is not None:
        message = (
            f"{stale}: the next build resolves the versions and writes it; run "
            f"`gefreg lock {entry.name}` and commit it"
        )
        out.append(LintFinding(entry.name, record, None, "GR110", WARNING, message))
    return out


def lint(
    settings: Settings,
    targets: list[str],
    *,
    hadolint: bool = True,
    threshold: str = ERROR,
    progress: Callable[[str], None] | None = None,
) -> LintReport:
    """Lint the given entries (default: the whole catalog); every problem is a finding."""
    root = settings.catalog
    known = base_names(root)
    lock = load_lock(root)
    cache = HashCache(settings.hash_cache)
    findings: list[LintFinding] = []
    names: list[str] = []
    rendered: dict[Path, Entry] = {}
    out_dir = settings.state_dir / "lint"
    out_dir.mkdir(parents=True, exist_ok=True)
    config = root / ".hadolint.yaml"
    linter = Hadolint(config=config if config.is_file() else None) if hadolint else None
    for folder in resolve(root, targets):
        label = folder.name
        names.append(label)
        record = str(folder / "service.yaml")
        for spot in placeholders(folder / "service.yaml"):
            message = f"{spot.field}: {spot.message}"
            findings.append(
                LintFinding(label, record, spot.line, "GR109", ERROR, message, spot.column)
            )
        try:
            entry = load_entry(folder, known)
            plan = prepare(entry, settings, lock=lock, cache=cache)
        except InvalidRecord as exc:
            findings += [
                LintFinding(
                    label,
                    str(p.path),
                    p.line,
                    "record",
                    ERROR,
                    f"{p.field + ': ' if p.field else ''}{p.message}"
                    + (f" (fix: {p.hint})" if p.hint else ""),
                    p.column,
                )
                for p in exc.problems
            ]
            continue
        except BadInput as exc:
            hint = f" (fix: {exc.hint})" if exc.hint else ""
            findings.append(LintFinding(label, record, None, "render", ERROR, exc.message + hint))
            continue
        if progress:
            progress(label)
        for line, rule, message in project_rules(plan):
            findings.append(LintFinding(label, record, line, rule, ERROR, message))
        findings += _lock_findings(entry, plan, record)
        if not entry.spec.tests:
            findings.append(
                LintFinding(
                    label,
                    record,
                    None,
                    "GR108",
                    WARNING,
                    "no golden tests: publish cannot check what the image "
                    "produces (`gefreg new` shows how to declare one)",
                )
            )
        dockerfile = out_dir / f"{label}.Dockerfile"
        _write_if_changed(dockerfile, plan.dockerfile)
        rendered[dockerfile] = entry
        if linter is not None:
            linter.add(dockerfile)
    cache.save()
    if linter is not None:
        for f in linter.results():
            entry = rendered[f.file]
            findings.append(
                LintFinding(entry.name, str(f.file), f.line, f.code, f.level, f.message)
            )
    return LintReport(tuple(names), tuple(findings), threshold)


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    atomic_write(path, text)
