"""Crates tie images back to releases only through the catalog's own ledger (input is data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gefreg.errors import BadInput
from gefreg.export.crate import container_runs, release_of_image, write_crate
from gefreg.settings import Settings

DIGEST = "sha256:" + "c3" * 32
OTHER = "sha256:" + "d4" * 32


def catalog(tmp_path: Path) -> Settings:
    entry = tmp_path / "catalog" / "svc"
    entry.mkdir(parents=True)
    common = {
        "repository": "reg.example:5000/svc",
        "fingerprint": "sha256:" + "00" * 32,
        "base_digest": None,
        "image_id": DIGEST,
        "published": "2026-01-01T00:00:00Z",
    }
    lines = [
        {"version": "1.0.0", "digest": OTHER, **common},
        {"version": "1.2.0", "digest": DIGEST, **common},
    ]
    (entry / "releases.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (entry / "service.yaml").write_text("name: svc\n")
    return Settings(tmp_path / "catalog", "reg.example:5000", tmp_path / "state")


def test_an_image_is_a_release_only_with_matching_registry_repository_and_digest(
    tmp_path: Path,
) -> None:
    settings = catalog(tmp_path)
    link = release_of_image(settings, f"reg.example:5000/svc@{DIGEST}")
    assert link is not None and (link.name, link.version) == ("svc", "1.2.0")
    assert link.ledger is not None and link.ledger.number == 2
    for ref in (
        f"evil.example/svc@{DIGEST}",  # another registry
        f"reg.example:5000/other@{DIGEST}",  # another repository
        "reg.example:5000/svc@sha256:" + "ee" * 32,  # a digest the ledger does not have
        "reg.example:5000/svc:1.2.0",  # a tag is no release
        f"reg.example:5000/../svc@{DIGEST}",
    ):
        assert release_of_image(settings, ref) is None, ref
    assert release_of_image(None, f"reg.example:5000/svc@{DIGEST}") is None


def test_container_runs_are_read_from_prov_json() -> None:
    prov = {
        "agent": {
            "id:a": {"cwlprov:image": f"reg/svc@{DIGEST}"},
            "id:engine": {"prov:label": "cwltool"},
            "id:odd": ["not", "a", "mapping"],
        },
        "wasAssociatedWith": {
            "_:1": {"prov:activity": "id:run1", "prov:agent": "id:a"},
            "_:2": {"prov:activity": "id:run2", "prov:agent": "id:a"},
            "_:3": {"prov:activity": "id:run2", "prov:agent": "id:engine"},
            "_:4": "garbage",
        },
    }
    assert container_runs(prov) == [
        ("id:run1", f"reg/svc@{DIGEST}"),
        ("id:run2", f"reg/svc@{DIGEST}"),
    ]


def test_write_crate_refuses_what_it_cannot_read_and_never_replaces(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(BadInput, match="not a CWLProv"):
        write_crate(tmp_path / "folder", tmp_path / "out", None)
    (tmp_path / "run.json").write_text('{"schema": "something-else"}')
    with pytest.raises(BadInput, match=r"gefreg\.run/1"):
        write_crate(tmp_path / "run.json", tmp_path / "out", None)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ro-crate-metadata.json").write_text("{}")
    with pytest.raises(BadInput, match="already holds"):
        write_crate(tmp_path / "run.json", tmp_path / "out", None)
    prov = tmp_path / "prov" / "metadata" / "provenance"
    prov.mkdir(parents=True)
    (prov / "primary.cwlprov.json").write_text('{"agent": {}}')
    with pytest.raises(BadInput, match="no container execution"):
        write_crate(tmp_path / "prov", tmp_path / "out2", None)
