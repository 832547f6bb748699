"""An empty Trivy vulnerability DB, written by hand, so the real Trivy runs its vuln scanner.

No vulnerability DB can be downloaded on the test machines. Trivy's DB is a bbolt file
(``CACHE/db/trivy.db``) plus ``CACHE/db/metadata.json``; with ``--skip-db-update`` Trivy uses
whatever is there. An empty bbolt file (the four pages bbolt itself writes for a new database:
two meta pages, an empty freelist, an empty root leaf) is a valid DB with no advisories, so
the vulnerability part of a scan really runs and really reports "no vulnerabilities", and the
DB's version and dates are what ``metadata.json`` says.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

PAGE_SIZE = 4096
MAGIC = 0xED0CDAED
VERSION = 2
META, FREELIST, LEAF = 0x04, 0x10, 0x02

METADATA = {
    "Version": 2,
    "NextUpdate": "2099-01-01T00:00:00Z",
    "UpdatedAt": "2025-01-01T00:00:00Z",
    "DownloadedAt": "2025-01-01T01:00:00Z",
}


def _fnv64a(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _page(page_id: int, flags: int, body: bytes = b"") -> bytes:
    return (struct.pack("<QHHI", page_id, flags, 0, 0) + body).ljust(PAGE_SIZE, b"\0")


def _meta(txid: int) -> bytes:
    # magic, version, page size, flags, root bucket (page 3, sequence 0), freelist page,
    # high-water page id, transaction id; then the FNV-1a checksum of those 56 bytes.
    fields = struct.pack("<IIIIQQQQQ", MAGIC, VERSION, PAGE_SIZE, 0, 3, 0, 2, 4, txid)
    return fields + struct.pack("<Q", _fnv64a(fields))


def write_empty_db(cache_dir: Path, metadata: dict[str, object] | None = None) -> Path:
    """Create ``cache_dir/db/{trivy.db,metadata.json}``; returns the DB folder."""
    folder = cache_dir / "db"
    folder.mkdir(parents=True, exist_ok=True)
    pages = [_page(0, META, _meta(0)), _page(1, META, _meta(1)), _page(2, FREELIST), _page(3, LEAF)]
    (folder / "trivy.db").write_bytes(b"".join(pages))
    (folder / "metadata.json").write_text(json.dumps(metadata or METADATA))
    return folder
