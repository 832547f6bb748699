"""The scan result cache, scanner versions, and how Trivy's failures are read."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gefreg.errors import BadInput, EnvironmentFailure, ToolFailed
from gefreg.scan.cache import (
    RECORD,
    TRIVY_REPORT,
    CachedScan,
    ScanCache,
    cache_key,
    valid_until,
)
from gefreg.scan.findings import Finding, FindingClass, Severity
from gefreg.scan.tool_versions import tool_version
from gefreg.scan.trivy import UnknownImage, is_db_failure, trivy_error, trivy_failure
from gefreg.scan.trivy_options import (
    DbInfo,
    ScannerInfo,
    TrivyOptions,
    VulnerabilityScan,
    scanner_info,
    trivy_version,
)
from gefreg.scan.trivy_report import ImageMeta
from gefreg.subprocesses import find_tool

IMAGE = "sha256:" + "ab" * 32
DB = DbInfo(2, "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", "2025-01-01T01:00:00Z")
NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)

# Trivy 0.76's stderr, as captured on a machine without network access.
DB_FAILURE = b"""\
2026-11-26T02:42:34Z\tINFO\t[vulndb] Need to update DB
2026-11-26T02:42:34Z\tFATAL\tFatal error\trun error: init error: DB error: failed to download \
vulnerability DB: OCI artifact error: failed to download artifact from \
mirror.gcr.io/aquasec/trivy-db:2: OCI repository error: 1 error occurred:
\t* Get "https://mirror.gcr.io/v2/": dial tcp: lookup mirror.gcr.io: no such host

"""
NO_IMAGE = b"""\
2026-11-26T02:43:16Z\tFATAL\tFatal error\trun error: image scan error: scan error: unable to \
initialize a scan service: unable to initialize artifact: unable to initialize container image: \
unable to find the specified image "nosuch:1" in ["docker"]: 1 error occurred:
\t* docker error: unable to inspect the image (nosuch:1): Error response from daemon: no such \
image: nosuch:1: No such image: nosuch:1
"""
NO_ENGINE = b"""\
2026-11-26T02:43:17Z\tFATAL\tFatal error\trun error: image scan error: scan error: unable to \
initialize a scan service: unable to initialize artifact: unable to initialize container image: \
unable to find the specified image "img:1" in ["docker"]: 1 error occurred:
\t* docker error: unable to inspect the image (img:1): failed to connect to the docker API at \
unix:///tmp/nope.sock; check if the path is correct and if the daemon is running
"""


def record(folder: Path, until: datetime | None, key: str = "k1") -> CachedScan:
    return CachedScan(
        key=key,
        folder=folder,
        scanned_at=NOW,
        valid_until=until,
        image=ImageMeta("img:1", IMAGE),
        scanner=ScannerInfo("0.76.0", DB),
        hadolint=None,
        vulnerabilities=VulnerabilityScan(True),
        findings=(
            Finding(FindingClass.SECRET, "private-key", Severity.HIGH, "key", "/k", path="/k"),
        ),
        commands=("trivy image ...",),
    )


def test_key_changes_with_everything_that_changes_scanner_output() -> None:
    base = cache_key(IMAGE, ScannerInfo("0.76.0", DB), TrivyOptions().key(), None, None)
    assert base == cache_key(IMAGE, ScannerInfo("0.76.0", DB), TrivyOptions().key(), None, None)
    newer_db = DbInfo(2, "2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z", "")
    variants = [
        cache_key("sha256:" + "cd" * 32, ScannerInfo("0.76.0", DB), {}, None, None),
        cache_key(IMAGE, ScannerInfo("0.77.0", DB), TrivyOptions().key(), None, None),
        cache_key(IMAGE, ScannerInfo("0.76.0", newer_db), TrivyOptions().key(), None, None),
        cache_key(IMAGE, ScannerInfo("0.76.0", None), TrivyOptions().key(), None, None),
        cache_key(
            IMAGE, ScannerInfo("0.76.0", DB), TrivyOptions(skip_db_update=True).key(), None, None
        ),
        cache_key(IMAGE, ScannerInfo("0.76.0", DB), TrivyOptions().key(), "sha256:fp", "2.15"),
    ]
    assert base not in variants and len(set(variants)) == len(variants)


def test_put_then_get_round_trips(tmp_path: Path) -> None:
    cache = ScanCache(tmp_path / "scans")
    workspace = cache.workspace()
    (workspace / TRIVY_REPORT).write_text("{}")
    stored = cache.put(workspace, record(workspace, NOW + timedelta(hours=1)))
    assert not workspace.exists() and stored.folder == cache.folder(IMAGE, "k1")
    got = cache.get(IMAGE, "k1", now=NOW)
    assert got is not None and got.findings == stored.findings and got.scanner == stored.scanner
    assert cache.get(IMAGE, "other", now=NOW) is None
    assert cache.get(IMAGE, "k1", now=NOW + timedelta(hours=2)) is None  # past valid_until
    again = cache.workspace()
    (again / TRIVY_REPORT).write_text("{}")
    cache.put(again, record(again, None))  # a second result under the same key replaces it
    assert cache.get(IMAGE, "k1", now=NOW + timedelta(days=9)) is not None


def test_damaged_records_are_ignored(tmp_path: Path) -> None:
    cache = ScanCache(tmp_path / "scans")
    workspace = cache.workspace()
    (workspace / TRIVY_REPORT).write_text("{}")
    stored = cache.put(workspace, record(workspace, None))
    (stored.folder / RECORD).write_text("{not json")
    assert cache.get(IMAGE, "k1") is None
    (stored.folder / RECORD).write_text(json.dumps({"format": 1, "key": "k1"}))
    assert cache.get(IMAGE, "k1") is None


def test_validity_follows_the_db() -> None:
    no_db = VulnerabilityScan(False, "no DB", "fix")
    info = ScannerInfo("0.76.0", DB)
    assert valid_until(NOW, info, no_db, False) == NOW + timedelta(hours=1)
    assert valid_until(NOW, info, VulnerabilityScan(True), False) == datetime(
        2025, 1, 2, tzinfo=UTC
    )
    assert valid_until(NOW, info, VulnerabilityScan(True), True) is None


def test_trivy_error_is_its_fatal_line_with_details() -> None:
    error = trivy_error(DB_FAILURE)
    assert error.startswith("run error: init error: DB error: failed to download vulnerability DB")
    assert error.endswith(
        'Get "https://mirror.gcr.io/v2/": dial tcp: lookup mirror.gcr.io: no such host'
    )
    assert "INFO" not in error and "2026-11-26" not in error
    assert is_db_failure(error)


@pytest.mark.parametrize(
    ("stderr", "kind", "text"),
    [
        (NO_IMAGE, UnknownImage, "is not known to the local Docker engine"),
        (NO_ENGINE, EnvironmentFailure, "could not reach the Docker engine"),
        (b"\tFATAL\tFatal error\tsomething else broke\n", ToolFailed, "something else broke"),
    ],
)
def test_trivy_failures_become_gefreg_errors(stderr: bytes, kind: type, text: str) -> None:
    error = trivy_failure("img:1", trivy_error(stderr), "trivy image img:1")
    assert type(error) is kind and text in str(error)
    assert issubclass(UnknownImage, BadInput)  # exit 2
    assert not is_db_failure(trivy_error(stderr))


def test_options_are_passed_through() -> None:
    options = TrivyOptions(
        cache_dir=Path("/c"),
        db_repositories=("mirror.example/trivy-db:2", "second/db:2"),
        skip_db_update=True,
        offline_scan=True,
        timeout="1h30m",
    )
    assert options.args() == [
        "--cache-dir",
        "/c",
        "--db-repository",
        "mirror.example/trivy-db:2",
        "--db-repository",
        "second/db:2",
        "--skip-db-update",
        "--offline-scan",
        "--timeout",
        "1h30m",
    ]
    assert options.seconds() == 5400 + 30
    with pytest.raises(BadInput):
        TrivyOptions(timeout="5 minutes")


def test_tool_versions_are_asked_once_per_binary(tmp_path: Path) -> None:
    binary = tmp_path / "fake-scanner"
    calls = tmp_path / "calls"
    binary.write_text(f"#!/bin/sh\necho x >> {calls}\necho 'Fake Scanner 1.2.3'\n")
    binary.chmod(0o755)
    memo = tmp_path / "tools.json"

    def parse(out: bytes) -> str:
        return out.decode().split()[-1]

    assert tool_version(str(binary), ["--version"], parse, memo) == "1.2.3"
    assert tool_version(str(binary), ["--version"], parse, memo) == "1.2.3"
    assert calls.read_text().count("x") == 1
    binary.write_text(f"#!/bin/sh\necho x >> {calls}\necho 'Fake Scanner 1.2.4'\n")  # upgraded
    assert tool_version(str(binary), ["--version"], parse, memo) == "1.2.4"
    assert calls.read_text().count("x") == 2


def test_scanner_info_agrees_with_trivy_version(tmp_path: Path) -> None:
    from tests.trivy_db import METADATA, write_db

    options = TrivyOptions(cache_dir=tmp_path / "cache")
    assert scanner_info(options, "any").db is None
    write_db(tmp_path / "cache", {})
    info = scanner_info(options, trivy_version(tmp_path / "tools.json"))
    out = subprocess.run(
        [find_tool("trivy"), "version", "--format", "json", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True,
        check=True,
    )
    reported = json.loads(out.stdout)
    assert info.version == reported["Version"]
    assert info.db is not None
    assert (
        {
            "Version": info.db.version,
            "NextUpdate": info.db.next_update,
            "UpdatedAt": info.db.updated_at,
            "DownloadedAt": info.db.downloaded_at,
        }
        == reported["VulnerabilityDB"]
        == METADATA
    )


def test_the_cache_folder_is_always_spelled_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIVY_CACHE_DIR", "/somewhere/trivy")
    assert TrivyOptions().resolved().args()[:2] == ["--cache-dir", "/somewhere/trivy"]
    monkeypatch.delenv("TRIVY_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    if sys.platform != "darwin":
        assert TrivyOptions().resolved().cache_dir == Path("/xdg/trivy")
    assert TrivyOptions(cache_dir=Path("/c")).resolved().cache_dir == Path("/c")
