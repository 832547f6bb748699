"""The catalog's trust policy, ``CATALOG/trust.yaml``: which keys may sign which entries.

    require-signatures: true        # unsigned releases are refused
    keys:
      - id: curators-2026
        entries: ["*"]              # globs over entry names (default: every entry)
        expires: 2027-12-31         # optional: refused after this day
        public-key: |
          -----BEGIN PUBLIC KEY-----
          ...
      - id: laptop-2025
        revoked: {reason: laptop stolen, date: 2026-03-01}
        public-key: ...

The file is committed and goes through `gefreg review` like any record. A missing file means
"no keys, signatures not required" (catalogs from before signing keep running). It is read
fresh by every check: trust comes from the catalog, never from what the registry says.
"""

from __future__ import annotations

import fnmatch
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput
from gefreg.fsutil import atomic_write
from gefreg.release.keys import PublicKey
from gefreg.yamlio import FieldReader, load_yaml

TRUST_FILE = "trust.yaml"
KEY_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
KEY_ID_HINT = "lower-case letters, digits, '.', '_' and '-', e.g. curators-2026"
INITIAL_TEXT = """\
# Which keys may sign this catalog's releases (see `gefreg trust --help`). Every run, test,
# reproduce and verify checks a release's signature and provenance against this file.
# Changes go through `gefreg review` like any other catalog change.
require-signatures: {require}
keys: []
"""


@dataclass(frozen=True)
class Revocation:
    reason: str
    day: date | None = None


@dataclass(frozen=True)
class TrustedKey:
    id: str
    public_key: PublicKey
    entries: tuple[str, ...] = ("*",)
    expires: date | None = None
    revoked: Revocation | None = None
    line: int | None = None

    def covers(self, entry: str) -> bool:
        return any(fnmatch.fnmatchcase(entry, glob) for glob in self.entries)

    def refusal(self, entry: str, today: date) -> str | None:
        """Why a signature by this key is not accepted for ``entry`` today (None: accepted)."""
        if self.revoked is not None:
            when = f" on {self.revoked.day.isoformat()}" if self.revoked.day else ""
            return f"key {self.id!r} was revoked{when}: {self.revoked.reason}"
        if self.expires is not None and today > self.expires:
            return f"key {self.id!r} expired on {self.expires.isoformat()}"
        if not self.covers(entry):
            return (
                f"key {self.id!r} is not trusted for {entry} "
                f"(it may sign: {', '.join(self.entries)})"
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fingerprint": self.public_key.fingerprint,
            "entries": list(self.entries),
            "expires": self.expires.isoformat() if self.expires else None,
            "revoked": (
                {"reason": self.revoked.reason, "date": _iso(self.revoked.day)}
                if self.revoked
                else None
            ),
        }


@dataclass(frozen=True)
class TrustPolicy:
    path: Path
    require_signatures: bool = False
    keys: tuple[TrustedKey, ...] = ()
    exists: bool = True

    def key(self, key_id: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.id == key_id), None)

    def usable_for(self, entry: str, today: date) -> list[TrustedKey]:
        return [k for k in self.keys if k.refusal(entry, today) is None]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "exists": self.exists,
            "require_signatures": self.require_signatures,
            "keys": [k.to_json() for k in self.keys],
        }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def trust_path(catalog: Path) -> Path:
    return catalog / TRUST_FILE


def load(catalog: Path) -> TrustPolicy:
    path = trust_path(catalog)
    if not path.exists():
        return TrustPolicy(path, require_signatures=False, keys=(), exists=False)
    return parse(load_yaml(path), path)


def parse(doc: Any, path: Path) -> TrustPolicy:
    """A parsed trust.yaml → TrustPolicy; every problem is reported with file:line (exit 2)."""
    reader = FieldReader(path)
    node = reader.mapping(doc, None, "", required=("require-signatures",), optional=("keys",))
    if node is None:
        reader.raise_if_problems()
    assert node is not None
    require = node.get("require-signatures")
    if "require-signatures" in node and not isinstance(require, bool):
        reader.fail(node, "require-signatures", "require-signatures", "expected true or false")
    keys: list[TrustedKey] = []
    items = node.get("keys")
    if items is None:
        items = []
    if not isinstance(items, list):
        reader.fail(node, "keys", "keys", "expected a list of keys", "keys: [] when there are none")
        items = []
    for i in range(len(items)):
        key = _read_key(reader, items, i)
        if key is not None:
            keys.append(key)
    _duplicates(reader, items, keys)
    reader.raise_if_problems()
    return TrustPolicy(path, bool(require), tuple(keys))


def _read_key(reader: FieldReader, items: list[Any], i: int) -> TrustedKey | None:
    where = f"keys[{i}]"
    item = reader.mapping(
        items,
        i,
        where,
        required=("id", "public-key"),
        optional=("entries", "expires", "revoked"),
    )
    if item is None or not all(k in item for k in ("id", "public-key")):
        return None
    ident = reader.string(
        item, "id", f"{where}.id", pattern=KEY_ID_RE, expected="a key id", hint=KEY_ID_HINT
    )
    pem = reader.string(item, "public-key", f"{where}.public-key", expected="a PEM public key")
    public = None
    if pem is not None:
        try:
            public = PublicKey.from_pem(pem)
        except BadInput as exc:
            reader.fail(item, "public-key", f"{where}.public-key", exc.message, exc.hint)
    entries: tuple[str, ...] = ("*",)
    if item.get("entries") is not None:
        entries = reader.string_list(item, "entries", f"{where}.entries", allow_empty=False)
    expires = _date(reader, item, "expires", f"{where}.expires") if "expires" in item else None
    revoked = _revocation(reader, item, where) if item.get("revoked") is not None else None
    if ident is None or public is None or not entries:
        return None
    line = item.lc.line + 1 if hasattr(item, "lc") else None
    return TrustedKey(ident, public, entries, expires, revoked, line)


def _revocation(reader: FieldReader, item: Any, where: str) -> Revocation | None:
    node = reader.mapping(
        item, "revoked", f"{where}.revoked", required=("reason",), optional=("date",)
    )
    if node is None or "reason" not in node:
        return None
    reason = reader.string(
        node,
        "reason",
        f"{where}.revoked.reason",
        check=lambda t: None if t.strip() else "must not be empty",
        hint="say why, for the next reviewer",
    )
    day = _date(reader, node, "date", f"{where}.revoked.date") if "date" in node else None
    return Revocation(reason.strip(), day) if reason is not None else None


def _date(reader: FieldReader, parent: Any, key: str, field: str) -> date | None:
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
    reader.fail(parent, key, field, f"expected a date, got {value!r}", "write it as YYYY-MM-DD")
    return None


def _duplicates(reader: FieldReader, items: list[Any], keys: list[TrustedKey]) -> None:
    """One id per key and one id per key material: a second id for the same key would let a
    revocation be sidestepped."""
    by_id: dict[str, TrustedKey] = {}
    by_print: dict[str, TrustedKey] = {}
    for key in keys:
        index = next(
            i for i, it in enumerate(items) if isinstance(it, dict) and it.get("id") == key.id
        )
        if key.id in by_id:
            reader.fail(items, index, f"keys[{index}].id", f"the id {key.id!r} appears twice")
        seen = by_print.get(key.public_key.fingerprint)
        if seen is not None and seen.id != key.id:
            reader.fail(
                items,
                index,
                f"keys[{index}].public-key",
                f"the same public key is already listed as {seen.id!r}",
                "one id per key: revoke or edit the existing entry instead",
            )
        by_id.setdefault(key.id, key)
        by_print.setdefault(key.public_key.fingerprint, key)


# ---------------------------------------------------------------------------- editing the file


def _round_trip(path: Path, require_when_new: bool) -> tuple[Any, Any]:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    text = (
        path.read_text(encoding="utf-8")
        if path.exists()
        else INITIAL_TEXT.format(require=str(require_when_new).lower())
    )
    return yaml, yaml.load(text)


def _save(yaml: Any, doc: Any, path: Path) -> TrustPolicy:
    out = io.StringIO()
    yaml.dump(doc, out)
    text = out.getvalue()
    from ruamel.yaml import YAML

    policy = parse(YAML(typ="rt").load(text), path)  # never write a file we would refuse
    atomic_write(path, text)
    return policy


def add_key(
    catalog: Path,
    public: PublicKey,
    key_id: str,
    entries: tuple[str, ...] = (),
    expires: date | None = None,
) -> TrustPolicy:
    """Append a key to trust.yaml (created when missing, with require-signatures: false)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import LiteralScalarString

    if not KEY_ID_RE.match(key_id):
        raise BadInput(f"{key_id!r} is not a valid key id", KEY_ID_HINT)
    path = trust_path(catalog)
    current = load(catalog)
    if current.key(key_id) is not None:
        raise BadInput(
            f"{path}: a key with id {key_id!r} is already listed",
            "choose a new id for a new key (e.g. with the year); keys are never replaced",
        )
    same = next((k for k in current.keys if k.public_key.fingerprint == public.fingerprint), None)
    if same is not None:
        raise BadInput(f"{path}: this public key is already listed as {same.id!r}")
    yaml, doc = _round_trip(path, require_when_new=False)
    if doc.get("keys") is None:
        doc["keys"] = CommentedSeq()
    item = CommentedMap()
    item["id"] = key_id
    item["entries"] = CommentedSeq(entries or ("*",))
    item["entries"].fa.set_flow_style()
    if expires is not None:
        item["expires"] = expires
    item["public-key"] = LiteralScalarString(public.pem)
    doc["keys"].append(item)
    return _save(yaml, doc, path)


def revoke(catalog: Path, key_id: str, reason: str, today: date) -> TrustPolicy:
    """Mark a key revoked (it stays listed, so its signatures are refused by name)."""
    from ruamel.yaml.comments import CommentedMap

    path = trust_path(catalog)
    current = load(catalog)
    key = current.key(key_id)
    if key is None:
        known = ", ".join(k.id for k in current.keys) or "none"
        raise BadInput(f"{path}: no key with id {key_id!r}", f"known keys: {known}")
    if not reason.strip():
        raise BadInput("a revocation needs a reason", "--reason 'laptop stolen'")
    if key.revoked is not None:
        raise BadInput(f"{key_id!r} is already revoked: {key.revoked.reason}")
    yaml, doc = _round_trip(path, require_when_new=False)
    for item in doc["keys"]:
        if item.get("id") == key_id:
            mark = CommentedMap()
            mark["reason"] = reason.strip()
            mark["date"] = today
            mark.fa.set_flow_style()
            item["revoked"] = mark
    return _save(yaml, doc, path)
