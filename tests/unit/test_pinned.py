"""A pinned reference is a release only by the catalog's ledger: the one lookup the TES server
and the RO-Crate export share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gefreg.export.crate import release_of_image
from gefreg.release.pinned import NotAPublishedImage, release_of_reference
from gefreg.serve.releases import NotARelease, parse_release
from gefreg.settings import Settings

REGISTRY = "reg.example:5000"
DIGEST = "sha256:" + "c3" * 32
OTHER = "sha256:" + "d4" * 32


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    entry = tmp_path / "catalog" / "svc"
    entry.mkdir(parents=True)
    common = {
        "fingerprint": "sha256:" + "00" * 32,
        "base_digest": None,
        "image_id": DIGEST,
        "published": "2026-01-01T00:00:00Z",
    }
    lines = [
        {"version": "1.0.0", "digest": OTHER, "repository": f"{REGISTRY}/svc", **common},
        {"version": "1.2.0", "digest": DIGEST, "repository": f"{REGISTRY}/svc", **common},
    ]
    (entry / "releases.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (entry / "service.yaml").write_text("name: svc\n")
    (tmp_path / "catalog" / "loose").mkdir()  # a folder without a record is no entry
    return Settings(tmp_path / "catalog", REGISTRY, tmp_path / "state")


def test_the_ledger_line_with_that_repository_and_digest(settings: Settings) -> None:
    found = release_of_reference(settings, f"{REGISTRY}/svc@{DIGEST}")
    assert (found.name, found.version, found.release.digest) == ("svc", "1.2.0", DIGEST)
    assert release_of_reference(settings, f"{REGISTRY}/svc@{OTHER}").version == "1.0.0"


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        (f"{REGISTRY}/svc:1.2.0", "expected REGISTRY/NAME@sha256:"),
        (f"{REGISTRY}/svc@sha256:abc", "expected REGISTRY/NAME@sha256:"),
        (f"evil.example/svc@{DIGEST}", f"publishes releases of {REGISTRY} only"),
        (f"svc@{DIGEST}", "no registry is not the catalog's registry"),
        (f"{REGISTRY}/other@{DIGEST}", "'other' is not a catalog entry"),
        (f"{REGISTRY}/loose@{DIGEST}", "'loose' is not a catalog entry"),
        (f"{REGISTRY}/../svc@{DIGEST}", f"{REGISTRY}/.. is not the catalog's registry"),
        (f"{REGISTRY}/svc@sha256:{'ee' * 32}", "no release of svc has the digest sha256:eeee"),
    ],
)
def test_anything_else_is_refused_saying_what_did_not_match(
    settings: Settings, reference: str, reason: str
) -> None:
    with pytest.raises(NotAPublishedImage) as caught:
        release_of_reference(settings, reference)
    assert reason in caught.value.message and caught.value.exit_code == 2
    # both callers answer from this lookup: the crate does not link it, the server refuses it
    assert release_of_image(settings, reference) is None
    if "/" in reference and "@" in reference:
        with pytest.raises(NotARelease) as refused:
            parse_release(settings, reference)
        assert refused.value.message == f"image {reference!r}: {caught.value.message}"


def test_both_callers_find_the_same_release(settings: Settings) -> None:
    reference = f"{REGISTRY}/svc@{DIGEST}"
    link = release_of_image(settings, reference)
    assert link is not None and (link.name, link.version) == parse_release(settings, reference)
    assert link.ledger is not None and link.ledger.number == 2
