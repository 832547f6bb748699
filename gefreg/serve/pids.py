"""From a persistent identifier to the files to stage, with the checksums the record gives.

* B2SHARE record (``https://HOST/records/ID`` or ``…/api/records/ID`` on a configured host):
  ``GET /api/records/ID`` → ``files[{bucket, key, size, checksum: "md5:<hex>"}]``, content at
  ``/api/files/BUCKET/KEY``. A withdrawn record answers 410.
* DOI (``doi:10.…``, ``https://doi.org/10.…``): the DataCite JSON from the resolver (content
  negotiation). When its landing page (``url``) is a B2SHARE record, that record's files (with
  their checksums); otherwise its ``contentUrl`` files.
* Handle (``hdl:PREFIX/SUFFIX``): the Handle API's ``URL`` value (and ``CHECKSUM``, when it has
  one), then as that URL says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gefreg.errors import BadInput
from gefreg.serve import urls
from gefreg.serve.fetch import Policy, get_json

DATACITE_JSON = "application/vnd.datacite.datacite+json"
HEX_MD5 = re.compile(r"^[0-9a-fA-F]{32}\Z")
HEX_SHA256 = re.compile(r"^[0-9a-fA-F]{64}\Z")


@dataclass(frozen=True)
class RemoteFile:
    url: str
    name: str  # relative path inside a DIRECTORY input
    checksum: str | None = None  # "md5:<hex>" / "sha256:<hex>"
    size: int | None = None


@dataclass(frozen=True)
class Resolvers:
    b2share: frozenset[str]  # origins (scheme://host[:port]) of B2SHARE instances
    doi: str
    handle: str
    policy: Policy


def _name(key: Any, where: str) -> str:
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise BadInput(f"{where}: a file without a usable name")
    parts = key.split("/")
    if any(p in ("", ".", "..") or any(ord(c) < 32 for c in p) for p in parts):
        raise BadInput(f"{where}: the file name {key[:200]!r} is not a safe relative path")
    return key


def _checksum(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    algo, _, hexd = value.partition(":")
    if not hexd:
        algo, hexd = ("md5" if HEX_MD5.match(value) else "sha256"), value
    if (algo, bool(HEX_MD5.match(hexd))) == ("md5", True) or (
        algo == "sha256" and HEX_SHA256.match(hexd)
    ):
        return f"{algo}:{hexd.lower()}"
    return None


def b2share_files(record_url: str, record: str, resolvers: Resolvers) -> list[RemoteFile]:
    base = urls.origin(record_url)
    data = get_json(f"{base}/api/records/{quote(record)}", resolvers.policy)
    files = data.get("files") if isinstance(data, Mapping) else None
    if not isinstance(files, list) or not files:
        raise BadInput(f"B2SHARE record {record} at {base} lists no files")
    out = []
    for item in files:
        if not isinstance(item, Mapping):
            raise BadInput(f"B2SHARE record {record}: a file entry is not an object")
        key = _name(item.get("key"), f"B2SHARE record {record}")
        bucket = item.get("bucket")
        if not isinstance(bucket, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", bucket):
            raise BadInput(f"B2SHARE record {record}: file {key}: no valid bucket")
        size = item.get("size")
        out.append(
            RemoteFile(
                url=f"{base}/api/files/{bucket}/{quote(key)}",
                name=key,
                checksum=_checksum(item.get("checksum")),
                size=size if isinstance(size, int) and size >= 0 else None,
            )
        )
    return out


def _b2share_record(url: str, resolvers: Resolvers) -> str | None:
    try:
        source = urls.classify(url, resolvers.b2share)
    except BadInput:
        return None
    return source.record if source.kind == "b2share" else None


def doi_files(doi: str, resolvers: Resolvers) -> list[RemoteFile]:
    if not doi.startswith("10.") or "/" not in doi:
        raise BadInput(f"doi:{doi}: not a DOI (10.PREFIX/SUFFIX)")
    meta = get_json(
        f"{resolvers.doi.rstrip('/')}/{quote(doi)}", resolvers.policy, accept=DATACITE_JSON
    )
    if not isinstance(meta, Mapping):
        raise BadInput(f"doi:{doi}: the resolver's answer is not DataCite JSON")
    landing = meta.get("url")
    if isinstance(landing, str):
        record = _b2share_record(landing, resolvers)
        if record is not None:
            return b2share_files(landing, record, resolvers)
    content = meta.get("contentUrl")
    found = [content] if isinstance(content, str) else content if isinstance(content, list) else []
    files = [
        RemoteFile(u, _name(u.rstrip("/").rsplit("/", 1)[-1], f"doi:{doi}"))
        for u in found
        if isinstance(u, str) and u.lower().startswith(("http://", "https://"))
    ]
    if not files:
        raise BadInput(
            f"doi:{doi}: its record names no files to fetch (no contentUrl, and its landing page "
            f"{landing!r} is not a record of a configured B2SHARE)"
        )
    return files


def handle_files(handle: str, resolvers: Resolvers) -> list[RemoteFile]:
    data = get_json(f"{resolvers.handle.rstrip('/')}/api/handles/{quote(handle)}", resolvers.policy)
    values = data.get("values") if isinstance(data, Mapping) else None
    if not isinstance(values, list):
        raise BadInput(f"hdl:{handle}: the Handle API's answer has no values")
    by_type: dict[str, str] = {}
    for value in values:
        if isinstance(value, Mapping) and isinstance(value.get("data"), Mapping):
            text = value["data"].get("value")
            if isinstance(value.get("type"), str) and isinstance(text, str):
                by_type.setdefault(value["type"].upper(), text)
    target = by_type.get("URL")
    if not target or not target.lower().startswith(("http://", "https://")):
        raise BadInput(f"hdl:{handle}: no http(s) URL in the handle record")
    record = _b2share_record(target, resolvers)
    if record is not None:
        return b2share_files(target, record, resolvers)
    name = _name(target.rstrip("/").rsplit("/", 1)[-1], f"hdl:{handle}")
    return [RemoteFile(target, name, _checksum(by_type.get("CHECKSUM")))]


def remote_files(
    kind: str, target: str, record: str | None, resolvers: Resolvers
) -> list[RemoteFile]:
    """The files an ``http``/``b2share``/``doi``/``hdl`` input stands for."""
    if kind == "b2share" and record is not None:
        return b2share_files(target, record, resolvers)
    if kind == "doi":
        return doi_files(target, resolvers)
    if kind == "hdl":
        return handle_files(target, resolvers)
    name = target.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "download"
    return [RemoteFile(target, name)]
