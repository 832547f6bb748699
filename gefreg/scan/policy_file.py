"""Reading scan policies: ``CATALOG/policy.yaml``, an entry's own ``policy.yaml`` on top (or
``--policy FILE``), each checked field by field with file, line and fix; the files overlay one
another key by key into one :class:`gefreg.scan.policy.Policy` (see its module for the format).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from gefreg.errors import InvalidRecord
from gefreg.scan.findings import HADOLINT_SEVERITY, FindingClass
from gefreg.scan.policy import (
    DB_UNAVAILABLE_KEY,
    EXCEPTIONS_KEY,
    IGNORE_UNFIXED_KEY,
    THRESHOLD_KEY,
    THRESHOLD_WORDS,
    TOP_KEYS,
    DbUnavailable,
    Policy,
    PolicyException,
    PolicySource,
    Threshold,
)
from gefreg.yamlio import FieldReader, load_yaml

POLICY_FILE = "policy.yaml"


@dataclass(frozen=True)
class _Layer:
    """What one policy file sets; unset fields leave the layer below in force."""

    thresholds: tuple[tuple[FindingClass, Threshold], ...] = ()
    ignore_unfixed: bool | None = None
    db_unavailable: DbUnavailable | None = None
    exceptions: tuple[PolicyException, ...] = ()


def _threshold_words(kind: FindingClass) -> dict[str, Threshold]:
    """The words a threshold may be written with; the Dockerfile class also takes hadolint's."""
    words = dict(THRESHOLD_WORDS)
    if kind is FindingClass.DOCKERFILE:
        words.update(HADOLINT_SEVERITY)
    return words


def _threshold_check(words: dict[str, Threshold]) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        return None if text.strip().lower() in words else f"unknown threshold {text!r}"

    return check


def _read_layer(path: Path) -> _Layer:
    doc = load_yaml(path)
    if doc is None:
        return _Layer()
    reader = FieldReader(path)
    node = reader.mapping(doc, None, "", optional=TOP_KEYS)
    if node is None:
        reader.raise_if_problems()
        return _Layer()
    thresholds: list[tuple[FindingClass, Threshold]] = []
    if node.get(THRESHOLD_KEY) is not None:
        names = [k.value for k in FindingClass]
        levels = reader.mapping(node, THRESHOLD_KEY, THRESHOLD_KEY, optional=names)
        for kind in FindingClass:
            if levels is None or kind.value not in levels:
                continue
            words = _threshold_words(kind)
            text = reader.string(
                levels,
                kind.value,
                f"{THRESHOLD_KEY}.{kind.value}",
                expected="a threshold",
                check=_threshold_check(words),
                hint="one of: " + ", ".join(words),
            )
            if text is not None:
                thresholds.append((kind, words[text.strip().lower()]))
    ignore_unfixed = None
    if node.get(IGNORE_UNFIXED_KEY) is not None:
        value = node[IGNORE_UNFIXED_KEY]
        if isinstance(value, bool):
            ignore_unfixed = value
        else:
            reader.fail(
                node,
                IGNORE_UNFIXED_KEY,
                IGNORE_UNFIXED_KEY,
                f"expected true or false, got {value!r}",
            )
    db_unavailable = None
    if node.get(DB_UNAVAILABLE_KEY) is not None:
        choices = [c.value for c in DbUnavailable]
        text = reader.string(
            node,
            DB_UNAVAILABLE_KEY,
            DB_UNAVAILABLE_KEY,
            expected="block or warn",
            check=lambda t: None if t in choices else f"expected block or warn, got {t!r}",
        )
        db_unavailable = DbUnavailable(text) if text is not None else None
    exceptions = _read_exceptions(reader, node) if node.get(EXCEPTIONS_KEY) is not None else ()
    reader.raise_if_problems()
    return _Layer(tuple(thresholds), ignore_unfixed, db_unavailable, exceptions)


def _read_date(reader: FieldReader, parent: Any, key: str, field_name: str) -> date | None:
    value = parent[key]
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    reader.fail(
        parent,
        key,
        field_name,
        f"expected a date, got {value!r}",
        "write the day as YYYY-MM-DD, e.g. 2025-06-30",
    )
    return None


def _read_exceptions(reader: FieldReader, node: Any) -> tuple[PolicyException, ...]:
    items = node[EXCEPTIONS_KEY]
    if not isinstance(items, list):
        reader.fail(
            node,
            EXCEPTIONS_KEY,
            EXCEPTIONS_KEY,
            "expected a list of exceptions",
            "each item: id, reason, expires, and optionally package or path",
        )
        return ()
    out = []
    for i in range(len(items)):
        where = f"{EXCEPTIONS_KEY}[{i}]"
        item = reader.mapping(
            items, i, where, required=("id", "reason", "expires"), optional=("package", "path")
        )
        if item is None or not all(k in item for k in ("id", "reason", "expires")):
            continue

        def nonblank(text: str) -> str | None:
            return None if text.strip() else "must not be empty"

        ident = reader.string(item, "id", f"{where}.id", check=nonblank)
        reason = reader.string(
            item,
            "reason",
            f"{where}.reason",
            check=nonblank,
            hint="say why the finding is acceptable, for the next reviewer",
        )
        expires = _read_date(reader, item, "expires", f"{where}.expires")
        package = reader.optional_string(item, "package", f"{where}.package", check=nonblank)
        path = reader.optional_string(item, "path", f"{where}.path", check=nonblank)
        line = item.lc.line + 1 if hasattr(item, "lc") else None
        if ident is not None and reason is not None and expires is not None:
            source = f"{reader.path}:{line}" if line else str(reader.path)
            out.append(
                PolicyException(
                    ident.strip(),
                    reason.strip(),
                    expires,
                    package=package,
                    path=path,
                    source=source,
                )
            )
    return tuple(out)


def _file_sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def load_policy(paths: Sequence[Path]) -> Policy:
    """The defaults, overlaid by each file in order: later files override settings key by key
    and add their exceptions. Problems from every file are reported together (exit 2)."""
    policy = Policy()
    thresholds = dict(policy.thresholds)
    problems = []
    sources = []
    for path in paths:
        try:
            layer = _read_layer(path)
        except InvalidRecord as exc:
            problems += exc.problems
            continue
        sources.append(PolicySource(path, _file_sha256(path)))
        thresholds.update(layer.thresholds)
        policy = replace(
            policy,
            ignore_unfixed=policy.ignore_unfixed
            if layer.ignore_unfixed is None
            else layer.ignore_unfixed,
            db_unavailable=layer.db_unavailable or policy.db_unavailable,
            exceptions=policy.exceptions + layer.exceptions,
        )
    if problems:
        raise InvalidRecord(problems)
    return replace(policy, thresholds=tuple(thresholds.items()), sources=tuple(sources))


def policy_files(catalog: Path | None, policy: Path | None, entry_dir: Path | None) -> list[Path]:
    """``--policy FILE`` (else ``CATALOG/policy.yaml`` if present), then the entry's own."""
    files = []
    if policy is not None:
        files.append(policy)
    elif catalog is not None and (catalog / POLICY_FILE).is_file():
        files.append(catalog / POLICY_FILE)
    if entry_dir is not None and (entry_dir / POLICY_FILE).is_file():
        files.append(entry_dir / POLICY_FILE)
    return files
