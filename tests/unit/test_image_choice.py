"""Image resolution without an engine: a fake engine answers image lookups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gefreg.errors import BadInput, CheckFailed
from gefreg.release.ledger import TrustedRelease
from gefreg.release.trust import ResolvedImage, UntrustedImage, verify_image
from gefreg.run.image_choice import Target, parse_target, resolve_image
from gefreg.settings import Settings
from tests.fakes import FakeEngine, image_info
from tests.helpers import demo_entry, make_catalog, write_build

ID_A = "sha256:" + "a" * 64
ID_B = "sha256:" + "b" * 64
DIGEST = "sha256:" + "d" * 64


info = image_info


def settings_with_build(tmp_path: Path, version: str = "1.0.0", image_id: str = ID_A) -> Settings:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(name="demo"))
    settings = Settings(catalog, "127.0.0.1:1", tmp_path / "state")
    write_build(settings.state_dir, "demo", image_id, version=version)
    return settings


def resolve(settings: Settings, target: str, engine: FakeEngine, **kw: Any) -> ResolvedImage:
    return resolve_image(settings, target, engine=engine, **kw)


def test_parse_target() -> None:
    assert parse_target("demo") == Target("demo")
    assert parse_target("demo@1.2.3") == Target("demo", "1.2.3")
    assert parse_target(f"demo@{DIGEST}") == Target("demo", None, DIGEST)
    assert parse_target(f"@{DIGEST}") == Target("", None, DIGEST)
    for bad in ("demo@", "demo@sha256:xyz"):
        with pytest.raises(BadInput):
            parse_target(bad)


def test_name_and_version_from_the_build_record(tmp_path: Path) -> None:
    settings = settings_with_build(tmp_path)
    engine = FakeEngine(info(ID_A))
    got = resolve(settings, "demo", engine)
    assert (got.name, got.version, got.image_id, got.trusted) == ("demo", "1.0.0", ID_A, True)
    assert got.source == "build-record" and got.manifest_digest is None
    assert resolve(settings, "demo@1.0.0", engine) == ResolvedImage(
        "demo", "1.0.0", ID_A, None, None, "demo@1.0.0", True, "build-record"
    )
    with pytest.raises(BadInput, match=r"demo@2.0.0 is not built or published"):
        resolve(settings, "demo@2.0.0", engine)


def test_unbuilt_entry(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(name="demo"))
    settings = Settings(catalog, "127.0.0.1:1", tmp_path / "state")
    with pytest.raises(BadInput, match="not built or published") as exc:
        resolve(settings, "demo", FakeEngine())
    assert "gefreg build demo" in str(exc.value.hint)


def test_untrusted_is_refused_unless_allowed(tmp_path: Path) -> None:
    settings = settings_with_build(tmp_path)
    engine = FakeEngine(info(ID_B, tags=("other/tool:dev",)))
    with pytest.raises(BadInput, match="not a catalog entry") as exc:
        resolve(settings, "other/tool:dev", engine)
    assert "--allow-untrusted" in str(exc.value.hint)
    got = resolve(settings, "other/tool:dev", engine, allow_untrusted=True)
    assert got.trusted is False and got.image_id == ID_B and got.source == "engine"
    with pytest.raises(BadInput, match="has no image"):
        resolve(settings, "nothing:here", engine, allow_untrusted=True)


def test_digest_is_trusted_only_when_gefreg_built_it(tmp_path: Path) -> None:
    settings = settings_with_build(tmp_path)
    engine = FakeEngine(info(ID_A, digests=(f"reg/demo@{DIGEST}",)), info(ID_B))
    by_id = resolve(settings, f"demo@{ID_A}", engine)
    assert by_id.trusted and by_id.image_id == ID_A and by_id.manifest_digest is None
    by_digest = resolve(settings, f"demo@{DIGEST}", engine)
    assert by_digest.trusted and by_digest.image_id == ID_A
    assert (by_digest.manifest_digest, by_digest.repository) == (DIGEST, "reg/demo")
    with pytest.raises(UntrustedImage, match="not an image gefreg built for demo"):
        resolve(settings, f"demo@{ID_B}", engine)
    assert not resolve(settings, f"demo@{ID_B}", engine, allow_untrusted=True).trusted


def test_ledger_plugs_in(tmp_path: Path) -> None:
    settings = settings_with_build(tmp_path)

    class Ledger:
        def lookup(self, name: str, version: str | None) -> TrustedRelease | None:
            return TrustedRelease(name, "1.0.0", "reg:5000", "reg:5000/demo", DIGEST)

    engine = FakeEngine(info(ID_A, digests=(f"reg:5000/demo@{DIGEST}",)))
    got = resolve(settings, "demo@1.0.0", engine, ledger=Ledger())
    assert got.source == "ledger" and got.manifest_digest == DIGEST and got.registry == "reg:5000"
    assert verify_image(engine, got).image_id == ID_A


def test_verify_refuses_mismatches() -> None:
    engine = FakeEngine(info(ID_A, digests=("reg/demo@" + DIGEST,)))
    ok = ResolvedImage("demo", "1", ID_A, DIGEST, "reg", "demo", True, "ledger", "reg/demo")
    assert verify_image(engine, ok) == ok
    wrong_digest = ResolvedImage(
        "demo", "1", ID_A, "sha256:" + "e" * 64, "reg", "demo", True, "ledger", "reg/demo"
    )
    with pytest.raises(CheckFailed, match="does not carry the digest"):
        verify_image(engine, wrong_digest)
    missing = ResolvedImage("demo", "1", ID_B, None, None, "demo", True, "build-record")
    with pytest.raises(BadInput, match="does not have the image"):
        verify_image(engine, missing)


def test_damaged_build_records(tmp_path: Path) -> None:
    """A damaged current record is an error naming it; damaged earlier (by-key) records are
    skipped: they trust nothing, and a JSON array there was once a TypeError traceback."""
    settings = settings_with_build(tmp_path)
    by_key = settings.builds_dir / "demo" / "by-key"
    by_key.mkdir()
    (by_key / "a.json").write_text("[1]")
    (by_key / "b.json").write_text('{"version": "0.9.0"}')
    write_build(settings.state_dir, "demo", ID_B, version="0.9.0", cache_key=ID_B)
    engine = FakeEngine(info(ID_A), info(ID_B))
    assert resolve(settings, f"demo@{ID_B}", engine).version == "0.9.0"
    for text in ("[1]", '{"version": "1.0.0"}', '{"version": 1, "image_id": "x"}'):
        (settings.builds_dir / "demo" / "build.json").write_text(text)
        with pytest.raises(BadInput, match="the build record of demo") as exc:
            resolve(settings, "demo", engine)
        assert "gefreg build demo" in str(exc.value.hint)
        assert resolve(settings, f"demo@{ID_B}", engine).trusted  # by digest: skipped
