"""A Trivy vulnerability DB written by hand, so the real Trivy runs its vulnerability scanner.

No vulnerability DB can be downloaded on the test machines. Trivy's DB is a bbolt file
(``CACHE/db/trivy.db``) plus ``CACHE/db/metadata.json``; with ``--skip-db-update`` Trivy uses
whatever is there. This module writes a small, valid bbolt file: the pages bbolt itself writes
for a new database (two meta pages, an empty freelist, a root leaf), with every bucket stored
inline in the root leaf. It holds the buckets Trivy reads, laid out as in Trivy's own test
fixtures (``integration/testdata/fixtures/db/*.yaml`` in Trivy's repository):

* ``<platform>`` (e.g. ``debian 10``) → ``<source package>`` → ``<vulnerability id>``: the
  advisory (fixed version, or a severity for an unfixed one);
* ``vulnerability`` → ``<vulnerability id>``: title, severity, references;
* ``data-source`` → ``<platform>``: where the advisories came from.

:data:`DEBIAN_BUSTER` carries two real advisories (real CVEs, real fixed versions), copied from
those fixtures: CVE-2019-18224 in libidn2 (CRITICAL, fixed in 2.0.5-1+deb10u1) and
CVE-2019-18276 in bash (LOW, no fix).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

PAGE_SIZE = 4096
MAGIC = 0xED0CDAED
VERSION = 2
META, FREELIST, LEAF = 0x04, 0x10, 0x02
BUCKET_LEAF = 0x01
ROOT_PAGE = 3

METADATA = {
    "Version": 2,
    "NextUpdate": "2099-01-01T00:00:00Z",
    "UpdatedAt": "2025-01-01T00:00:00Z",
    "DownloadedAt": "2025-01-01T01:00:00Z",
}


def value(data: Any) -> bytes:
    """A stored value (JSON); a dict in the content given to :func:`write_db` is a bucket."""
    return json.dumps(data).encode()


DEBIAN_BUSTER: dict[str, Any] = {
    "debian 10": {
        "bash": {"CVE-2019-18276": value({"Severity": 1})},
        "libidn2": {
            "CVE-2019-18224": value(
                {"FixedVersion": "2.0.5-1+deb10u1", "VendorIDs": ["DSA-4613-1"]}
            )
        },
    },
    "data-source": {
        "debian 10": value(
            {
                "ID": "debian",
                "Name": "Debian Security Tracker",
                "URL": "https://salsa.debian.org/security-tracker-team/security-tracker",
            }
        )
    },
    "vulnerability": {
        "CVE-2019-18224": value(
            {
                "Title": "libidn2: heap-based buffer overflow in idn2_to_ascii_4i in lib/lookup.c",
                "Severity": "CRITICAL",
                "VendorSeverity": {"nvd": 4, "redhat": 2},
                "References": ["https://www.debian.org/security/2020/dsa-4613"],
            }
        ),
        "CVE-2019-18276": value(
            {
                "Title": "bash: when effective UID is not equal to its real UID the saved UID "
                "is not dropped",
                "Severity": "HIGH",
                "VendorSeverity": {"debian": 1, "nvd": 3},
                "References": ["https://nvd.nist.gov/vuln/detail/CVE-2019-18276"],
            }
        ),
    },
}


def _fnv64a(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _leaf(page_id: int, items: dict[str, Any]) -> bytes:
    """A leaf page: a dict is a sub-bucket (stored inline in its parent), bytes a value."""
    keys = sorted(items, key=lambda k: k.encode())
    headers, data = b"", b""
    start = 16 + 16 * len(keys)
    for i, key in enumerate(keys):
        item = items[key]
        if isinstance(item, dict):
            flags = BUCKET_LEAF
            body = struct.pack("<QQ", 0, 0) + _leaf(0, item)  # bucket root 0: inline
        else:
            flags, body = 0, bytes(item)
        raw = key.encode()
        headers += struct.pack("<IIII", flags, start + len(data) - 16 * i - 16, len(raw), len(body))
        data += raw + body
    return struct.pack("<QHHI", page_id, LEAF, len(keys), 0) + headers + data


def _meta(txid: int, high_water: int) -> bytes:
    # magic, version, page size, flags, root bucket (page, sequence), freelist page,
    # high-water page id, transaction id; then the FNV-1a checksum of those 56 bytes.
    fields = struct.pack(
        "<IIIIQQQQQ", MAGIC, VERSION, PAGE_SIZE, 0, ROOT_PAGE, 0, 2, high_water, txid
    )
    return fields + struct.pack("<Q", _fnv64a(fields))


def _page(page_id: int, flags: int, body: bytes = b"") -> bytes:
    return (struct.pack("<QHHI", page_id, flags, 0, 0) + body).ljust(PAGE_SIZE, b"\0")


def write_db(
    cache_dir: Path, content: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None
) -> Path:
    """Create ``cache_dir/db/{trivy.db,metadata.json}``; returns the DB folder.

    ``content`` maps bucket names to buckets (dicts); see :data:`DEBIAN_BUSTER`.
    """
    root = _leaf(ROOT_PAGE, content or {})
    pages = max(1, math.ceil(len(root) / PAGE_SIZE))
    root = root[:12] + struct.pack("<I", pages - 1) + root[16:]  # overflow pages, if any
    high_water = ROOT_PAGE + pages
    blob = _page(0, META, _meta(0, high_water)) + _page(1, META, _meta(1, high_water))
    blob += _page(2, FREELIST) + root.ljust(pages * PAGE_SIZE, b"\0")
    folder = cache_dir / "db"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trivy.db").write_bytes(blob)
    (folder / "metadata.json").write_text(json.dumps(metadata or METADATA))
    return folder


def write_empty_db(cache_dir: Path, metadata: dict[str, Any] | None = None) -> Path:
    return write_db(cache_dir, {}, metadata)
