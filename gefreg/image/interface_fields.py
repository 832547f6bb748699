"""Reading the parts of a service interface from untrusted JSON (a ledger line's ``interface``, a
run record): :class:`gefreg.jsonfields.JsonFields` plus ports, uids and limits, each a BadInput
naming the field when malformed. Whether the values obey gefreg's rules is checked afterwards,
for every source alike (:func:`gefreg.image.interface.check_interface`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gefreg import limits
from gefreg.jsonfields import JsonFields
from gefreg.model import Port, Resources


class Fields(JsonFields):
    """:class:`gefreg.jsonfields.JsonFields` plus the parts of a service interface."""

    def uid(self, value: Any, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, "an integer uid", value)
        return value

    def port(self, value: Any, name: str) -> Port:
        data = self.mapping(value, name)
        return Port(
            self.text(self.get(data, "name", name), f"{name}.name"),
            self.text(self.get(data, "path", name), f"{name}.path"),
            self.optional_text(data.get("type"), f"{name}.type"),
            self.optional_text(data.get("filename"), f"{name}.filename"),
        )

    def ports(self, value: Any, name: str) -> tuple[Port, ...]:
        items = self.sequence(value, name)
        return tuple(self.port(item, f"{name}[{i}]") for i, item in enumerate(items))

    def resources(self, data: Mapping[str, Any], name: str, timeout_key: str) -> Resources:
        """Limits, every one in :mod:`gefreg.limits`' bounds; ``disk`` and ``logs`` may be
        missing (written before gefreg had them: the defaults)."""
        keys = {key: key for key in limits.BOUNDS} | {"timeout": timeout_key}
        values: dict[str, Any] = {}
        for key, written in keys.items():
            if written not in data and key in ("disk", "logs"):
                continue
            value = self.get(data, written, name)
            if limits.check(key, value):
                raise self.fail(f"{name}.{written}", limits.BOUNDS[key].expected, value)
            values[key] = int(value) if limits.BOUNDS[key].integer else float(value)
        return dataclasses.replace(Resources(), **values)
