"""Reading untrusted JSON (build records, run records, ledger interfaces) field by field.

Every JSON file gefreg reads back was written by gefreg, but it sits on disk where anyone can
edit or damage it. :class:`JsonFields` turns a wrong type or a missing key into a BadInput
that names the file and the field (``image.image_id``) and says how to recover, never a
KeyError or TypeError. (YAML written by people goes through :class:`gefreg.yamlio.FieldReader`
instead, which also knows line numbers.)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from gefreg.errors import BadInput
from gefreg.model import is_digest

DAMAGED = "the record was edited or damaged; use the original"


class JsonFields:
    """Typed reads of one JSON document; ``where`` names it in every message, with the line of
    the field when the document's ``text`` is given."""

    def __init__(self, where: str, hint: str = DAMAGED, text: str | None = None) -> None:
        self.where = where
        self.hint = hint
        self.source = text

    def at(self, name: str) -> str:
        """``where``, with ``:LINE`` of field ``name`` (``mounts[2].target``) when known."""
        line = line_of_field(self.source, name) if self.source is not None and name else None
        return f"{self.where}:{line}" if line else self.where

    def fail(self, name: str, expected: str, value: Any) -> BadInput:
        field_name = name or "the top level"
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return BadInput(
            f"{self.at(name)}: field {field_name}: expected {expected}, found {shown}", self.hint
        )

    def get(self, data: Mapping[str, Any], name: str, prefix: str = "") -> Any:
        full = f"{prefix}.{name}" if prefix else name
        if name not in data:
            raise BadInput(f"{self.at(prefix)}: field {full} is missing", self.hint)
        return data[name]

    def mapping(self, value: Any, name: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(name, "an object", value)
        return value

    def sequence(self, value: Any, name: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(name, "a list", value)
        return value

    def text(self, value: Any, name: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(name, "a non-empty string", value)
        return value

    def optional_text(self, value: Any, name: str) -> str | None:
        return None if value is None else self.text(value, name)

    def digest(self, value: Any, name: str) -> str:
        if not is_digest(value):
            raise self.fail(name, "sha256:<64 hex digits>", value)
        return str(value)

    def strings(self, value: Any, name: str) -> tuple[str, ...]:
        items = self.sequence(value, name)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise self.fail(f"{name}[{i}]", "a string", item)
        return tuple(items)

    def text_map(self, value: Any, name: str, *, nullable: bool = False) -> dict[str, Any]:
        """An object whose values are strings (or null when ``nullable``)."""
        data = self.mapping(value, name)
        for key, item in data.items():
            if not isinstance(item, str) and not (nullable and item is None):
                raise self.fail(f"{name}.{key}", "a string", item)
        return dict(data)

    def number(self, value: Any, name: str, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, "a number", value)
        if not math.isfinite(value) or not low <= value <= high:
            raise self.fail(name, f"a number from {low:g} to {high:g}", value)
        return float(value)

    def integer(self, value: Any, name: str, low: int, high: int) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(name, f"an integer from {low} to {high}", value)
        return value


_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
_decoder = json.JSONDecoder()


def line_of_field(text: str, name: str) -> int | None:
    """The line of ``text`` (a JSON document) where field ``name`` (``mounts[2].target``,
    ``limits.cpus``) starts, or None when it is not there. Only asked after a problem was found,
    so it may take its time."""
    try:
        pos = _skip_space(text, 0)
        for index, key in _TOKEN.findall(name):
            found = _enter_array(text, pos, int(index)) if index else _enter_object(text, pos, key)
            if found is None:
                return None
            pos = found
    except (ValueError, IndexError):
        return None
    return text.count("\n", 0, pos) + 1


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _after_value(text: str, pos: int) -> int:
    """Past the value at ``pos`` and a following comma."""
    _, pos = _decoder.raw_decode(text, pos)
    pos = _skip_space(text, pos)
    return _skip_space(text, pos + 1) if text[pos] == "," else pos


def _enter_object(text: str, pos: int, wanted: str) -> int | None:
    if text[pos] != "{":
        return None
    pos = _skip_space(text, pos + 1)
    while text[pos] == '"':
        key, pos = _decoder.raw_decode(text, pos)
        pos = _skip_space(text, pos)
        if text[pos] != ":":
            return None
        pos = _skip_space(text, pos + 1)
        if key == wanted:
            return pos
        pos = _after_value(text, pos)
    return None


def _enter_array(text: str, pos: int, wanted: int) -> int | None:
    if text[pos] != "[":
        return None
    pos = _skip_space(text, pos + 1)
    for _ in range(wanted):
        if text[pos] == "]":
            return None
        pos = _after_value(text, pos)
    return None if text[pos] == "]" else pos
