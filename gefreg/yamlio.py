"""YAML loading that keeps line numbers, and a field reader that collects every problem at once.

Every YAML file gefreg reads (service and base records, policies, the base lock) goes through
:class:`FieldReader`, so all of them report ``file:line:column: field: message (fix: hint)``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from gefreg.errors import BadInput, InvalidRecord, Problem

T = TypeVar("T")


def load_yaml(path: Path) -> Any:
    """Parse a YAML file in round-trip mode (keeps positions); syntax errors become Problems."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InvalidRecord(
            [Problem(path, None, None, "", f"not UTF-8 text ({exc.reason})", "save as UTF-8")]
        ) from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        what = exc.problem or exc.context or "invalid YAML"
        raise InvalidRecord(
            [Problem(path, line, column, "", f"YAML syntax error: {what}", "fix the YAML syntax")]
        ) from None
    except YAMLError as exc:
        raise InvalidRecord([Problem(path, None, None, "", f"YAML error: {exc}")]) from None


def parse_yaml_file(path: Path, parse: Callable[[Any], T]) -> T:
    """``parse`` applied to a YAML file, read fast and, only when something is wrong, read
    again with positions.

    Round-trip loading (which keeps line numbers) costs about ten times as much as libyaml's
    safe loader, and a catalog of 1,000 records is mostly valid. So the file is first read
    with the safe loader; when that fails, or ``parse`` finds a problem (InvalidRecord), it is
    read again through :func:`load_yaml` and parsed again, so that every message still names
    its line and column. (Where the two loaders differ, e.g. merge-key order, both read paths
    of one command see the same loader.)
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="safe", pure=False).load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError, ValueError):
        return parse(load_yaml(path))  # raises the error, with its position
    try:
        return parse(data)
    except InvalidRecord:
        return parse(load_yaml(path))


def _position(node: Any, key: Any = None, at_key: bool = False) -> tuple[int | None, int | None]:
    """1-based (line, column) of ``node[key]`` (its value, or the key itself) or of ``node``."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None, None
    try:
        if at_key and key is not None:
            line, col = lc.key(key)
        elif key is None:
            line, col = lc.line, lc.col
        elif isinstance(key, int):
            line, col = lc.item(key)
        else:
            line, col = lc.value(key)
    except (KeyError, IndexError, TypeError, AttributeError):
        try:
            line, col = lc.key(key)
        except Exception:
            line, col = lc.line, lc.col
    return line + 1, col + 1


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(shown)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


class FieldReader:
    """Reads typed fields out of a parsed YAML document, recording a Problem for each mistake."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def fail(
        self,
        node: Any,
        key: Any,
        field: str,
        message: str,
        hint: str | None = None,
        *,
        at_key: bool = False,
    ) -> None:
        line, col = _position(node, key, at_key)
        self.problems.append(Problem(self.path, line, col, field, message, hint))

    def raise_if_problems(self) -> None:
        if self.problems:
            raise InvalidRecord(self.problems)

    def mapping(
        self,
        parent: Any,
        key: Any,
        field: str,
        *,
        required: Iterable[str] = (),
        optional: Iterable[str] = (),
        open_keys: bool = False,
    ) -> dict[str, Any] | None:
        """A mapping with known keys: reports unknown keys (with a suggestion) and missing ones."""
        node = parent if key is None else parent[key]
        if not isinstance(node, dict):
            self.fail(
                parent, key, field or "(document)", f"expected a mapping, got {_describe(node)}"
            )
            return None
        required = list(required)
        known = required + list(optional)
        for k in node:
            if not isinstance(k, str):
                self.fail(node, k, field or "(document)", f"keys must be strings, got {k!r}")
            elif not open_keys and k not in known:
                close = difflib.get_close_matches(k, known, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
                self.fail(node, k, _join(field, k), "unknown key", hint, at_key=True)
        for k in required:
            if k not in node:
                self.fail(node, None, _join(field, k), "required key is missing")
        return node

    def string(
        self,
        parent: Any,
        key: Any,
        field: str,
        *,
        pattern: re.Pattern[str] | None = None,
        expected: str = "a string",
        hint: str | None = None,
        check: Callable[[str], str | None] | None = None,
    ) -> str | None:
        """A string, optionally matching ``pattern`` or passing ``check`` (returns an error)."""
        value = parent[key]
        if not isinstance(value, str):
            hint_text = hint
            if isinstance(value, int | float) and not isinstance(value, bool):
                hint_text = "quote the value so YAML reads it as text"
            self.fail(parent, key, field, f"expected {expected}, got {_describe(value)}", hint_text)
            return None
        if pattern is not None and not pattern.match(value):
            self.fail(parent, key, field, f"expected {expected}, got {_describe(value)}", hint)
            return None
        if check is not None:
            error = check(value)
            if error:
                self.fail(parent, key, field, error, hint)
                return None
        return str(value)

    def optional_string(self, parent: Any, key: str, field: str, **kw: Any) -> str | None:
        if key not in parent or parent[key] is None:
            return None
        return self.string(parent, key, field, **kw)

    def string_list(
        self, parent: Any, key: Any, field: str, *, allow_empty: bool = True, **kw: Any
    ) -> tuple[str, ...]:
        node = parent[key]
        if not isinstance(node, list):
            self.fail(parent, key, field, f"expected a list of strings, got {_describe(node)}")
            return ()
        if not node and not allow_empty:
            self.fail(parent, key, field, "must not be empty")
        out = []
        for i in range(len(node)):
            item = self.string(node, i, f"{field}[{i}]", **kw)
            if item is not None:
                out.append(item)
        return tuple(out)

    def number(
        self,
        parent: Any,
        key: Any,
        field: str,
        *,
        minimum: float = 0,
        maximum: float = float("inf"),
        integer: bool = False,
    ) -> float | None:
        value = parent[key]
        ok_type = int if integer else int | float
        if isinstance(value, bool) or not isinstance(value, ok_type) or not math.isfinite(value):
            kind = "an integer" if integer else "a number"
            self.fail(parent, key, field, f"expected {kind}, got {_describe(value)}")
            return None
        if not minimum <= value <= maximum:
            bound = (
                f"at least {minimum:g}"
                if maximum == float("inf")
                else (f"between {minimum:g} and {maximum:g}")
            )
            self.fail(parent, key, field, f"must be {bound}, got {value}")
            return None
        return float(value)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key
