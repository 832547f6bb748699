"""Golden test bookkeeping without an engine: per-file checks and `--update` rewriting."""

from __future__ import annotations

from pathlib import Path

from gefreg.catalog.entries import load_entry
from gefreg.run.service_tests import check_files, update_expectations
from tests.helpers import make_catalog

OLD = "sha256:" + "0" * 64
NEW = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64

RECORD = f"""\
# A record with comments everywhere; --update must keep them.
name: golden
version: 1.0.0
description: Golden test fixture.
license: MIT
maintainers: ["Ada Example <ada@example.org>"]
base: scratch
template: static
files:
  run.sh: /opt/run.sh   # the script
command: [/bin/busybox, sh, /opt/run.sh]
inputs:
  - {{name: data, path: /data/in}}
outputs:
  - {{name: result, path: /data/out}}
volatile: [result/stamp]
tests:
  # the sample from the field campaign
  - name: sample
    inputs: {{data: tests/input}}
    expect:
      result/sum.txt: "{OLD}"   # checked by hand in 2024
      result/gone.txt: '{OLD}'
  - name: other
    inputs:
      data: tests/input
    expect:
      result/sum.txt: {OLD}
"""


def catalog(tmp_path: Path) -> Path:
    return make_catalog(
        tmp_path / "catalog",
        {"golden": {"service.yaml": RECORD, "run.sh": "true\n", "tests": {"input": {"a": "1"}}}},
    )


def test_check_files_statuses() -> None:
    checks = check_files(
        {"result/a": OLD, "result/b": OLD, "result/c": OLD},
        {"result/a": OLD, "result/b": NEW, "result/new": NEW, "result/stamp": NEW},
        ("result/stamp",),
    )
    assert [(c.key, c.status) for c in checks] == [
        ("result/a", "ok"),
        ("result/b", "changed"),
        ("result/c", "missing"),
        ("result/new", "unexpected"),
        ("result/stamp", "volatile"),
    ]
    assert [c.ok for c in checks] == [True, False, False, False, True]


def test_update_rewrites_hashes_and_keeps_the_rest(tmp_path: Path) -> None:
    record = catalog(tmp_path) / "golden" / "service.yaml"
    changes = update_expectations(
        record, {"sample": {"result/sum.txt": NEW, "result/extra.txt": OTHER}}
    )
    assert [(c.test, c.key, c.old, c.new) for c in changes] == [
        ("sample", "result/gone.txt", OLD, None),
        ("sample", "result/sum.txt", OLD, NEW),
        ("sample", "result/extra.txt", None, OTHER),
    ]
    text = record.read_text()
    expected = RECORD.replace(
        f'      result/sum.txt: "{OLD}"   # checked by hand in 2024\n'
        f"      result/gone.txt: '{OLD}'\n",
        f'      result/sum.txt: "{NEW}"   # checked by hand in 2024\n'
        f"      result/extra.txt: {OTHER}\n",
    )
    assert text == expected
    entry = load_entry(record.parent, {"debian-bookworm"})
    assert dict(entry.spec.tests[0].expect) == {"result/sum.txt": NEW, "result/extra.txt": OTHER}
    assert dict(entry.spec.tests[1].expect) == {"result/sum.txt": OLD}  # untouched


def test_update_without_changes_leaves_the_file_alone(tmp_path: Path) -> None:
    record = catalog(tmp_path) / "golden" / "service.yaml"
    before = record.stat().st_mtime_ns
    assert update_expectations(record, {"other": {"result/sum.txt": OLD}}) == []
    assert record.stat().st_mtime_ns == before and record.read_text() == RECORD
