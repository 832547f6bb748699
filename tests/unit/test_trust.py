"""The one trust decision (gefreg.release.trust) without an engine: what a claim may name, what
is refused, and that a refusal comes before anything is pulled."""

from __future__ import annotations

from pathlib import Path

import pytest

from gefreg.errors import BadInput, CheckFailed
from gefreg.release import trust
from gefreg.release.ledger import TrustedRelease
from gefreg.release.trust import ImageClaim, UntrustedImage, trust_image, verify_image
from gefreg.settings import Settings
from tests.fakes import FakeEngine, image_info
from tests.helpers import demo_entry, make_catalog, write_build

REGISTRY = "reg:5000"
RELEASED = "sha256:" + "a" * 64
BUILT = "sha256:" + "b" * 64
OUTSIDE = "sha256:" + "e" * 64
DIGEST = "sha256:" + "d" * 64
EVIL_DIGEST = "sha256:" + "f" * 64


class Ledger:
    """demo 1.0.0 published in reg:5000 as RELEASED."""

    def lookup(self, name: str, version: str | None) -> TrustedRelease | None:
        if name != "demo" or version not in (None, "1.0.0"):
            return None
        return TrustedRelease(
            "demo", "1.0.0", REGISTRY, f"{REGISTRY}/demo", DIGEST,
            image_id=RELEASED, where="catalog/demo/releases.jsonl:1",
        )  # fmt: skip


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(name="demo"))
    state = tmp_path / "state"
    write_build(state, "demo", BUILT, version="1.1.0")
    return Settings(catalog, REGISTRY, state)


def engine() -> FakeEngine:
    engine = FakeEngine(
        image_info(RELEASED, digests=(f"{REGISTRY}/demo@{DIGEST}",)),
        image_info(BUILT),
        image_info(OUTSIDE, tags=("evil/tool:1",)),
    )
    engine.local.discard(RELEASED)  # published, not pulled yet
    return engine


def decide(settings: Settings, claim: ImageClaim, **kw: bool) -> trust.ResolvedImage:
    return trust_image(settings, engine(), claim, ledger=Ledger(), **kw)


def test_a_release_as_the_ledger_has_it(settings: Settings) -> None:
    claim = ImageClaim("demo", "1.0.0", RELEASED, DIGEST, REGISTRY, f"{REGISTRY}/demo")
    image = decide(settings, claim)
    assert (image.source, image.trusted, image.manifest_digest) == ("ledger", True, DIGEST)
    assert image.image_id == "" and image.released_id == RELEASED  # not pulled: not local
    assert decide(settings, ImageClaim("demo", "1.0.0")).source == "ledger"


@pytest.mark.parametrize(
    "claim,check",
    [
        (ImageClaim("demo", "1.0.0", RELEASED, DIGEST, "evil:5000", f"{REGISTRY}/demo"),
         "the registry evil:5000 is not the one the catalog published"),
        (ImageClaim("demo", "1.0.0", RELEASED, DIGEST, REGISTRY, "evil:5000/demo"),
         "the repository evil:5000/demo is not"),
        (ImageClaim("demo", "1.0.0", RELEASED, EVIL_DIGEST, REGISTRY, f"{REGISTRY}/demo"),
         f"the manifest digest {EVIL_DIGEST} is not"),
        (ImageClaim("demo", "1.0.0", OUTSIDE, DIGEST, REGISTRY, f"{REGISTRY}/demo"),
         f"the image ID {OUTSIDE} is not the released image"),
        (ImageClaim("demo", "1.0.0", OUTSIDE),
         "is neither a release of demo 1.0.0 in the ledger of reg:5000 nor an image gefreg built"),
        (ImageClaim("demo", "2.0.0", BUILT, EVIL_DIGEST, "evil:5000", "evil:5000/demo"),
         "evil:5000/demo is not a release in the ledger of the configured registry"),
        (ImageClaim("nothere", None, OUTSIDE), "'nothere' is not a catalog entry"),
    ],
)  # fmt: skip
def test_refused_naming_the_check_before_any_pull(
    settings: Settings, claim: ImageClaim, check: str
) -> None:
    fake = engine()
    with pytest.raises(UntrustedImage, match=check) as info:
        trust_image(settings, fake, claim, ledger=Ledger())
    assert info.value.exit_code == 1 and "--allow-untrusted" in str(info.value.hint)
    assert fake.pulled == []


def test_allow_untrusted_runs_the_local_image_marked_untrusted(settings: Settings) -> None:
    fake = engine()
    claim = ImageClaim("demo", "1.0.0", OUTSIDE, DIGEST, "evil:5000", "evil:5000/demo")
    image = trust_image(settings, fake, claim, ledger=Ledger(), allow_untrusted=True)
    assert (image.trusted, image.source, image.image_id) == (False, "engine", OUTSIDE)
    assert fake.pulled == []  # an untrusted image is never pulled
    gone = ImageClaim("demo", "1.0.0", "sha256:" + "9" * 64)
    with pytest.raises(BadInput, match="the engine has no image") as info:
        trust_image(settings, fake, gone, ledger=Ledger(), allow_untrusted=True)
    assert "never pulled for untrusted runs" in str(info.value.hint)


def test_a_build_gefreg_made(settings: Settings, tmp_path: Path) -> None:
    image = decide(settings, ImageClaim("demo", "1.1.0", BUILT))
    assert (image.source, image.trusted, image.image_id) == ("build-record", True, BUILT)
    assert decide(settings, ImageClaim("demo", "1.1.0")).image_id == BUILT  # the current build
    write_build(
        settings.state_dir, "demo", OUTSIDE, version="0.9.0", cache_key="sha256:" + "1" * 64
    )
    assert decide(settings, ImageClaim("demo", None, OUTSIDE)).version == "0.9.0"  # an earlier one
    with pytest.raises(UntrustedImage):
        decide(settings, ImageClaim("demo", "1.1.0", OUTSIDE))  # not of that version
    with pytest.raises(BadInput, match=r"demo@3\.0\.0 is not built or published"):
        decide(settings, ImageClaim("demo", "3.0.0"))


def test_the_release_checks_run_for_releases_only(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def refuse(settings: Settings, release: TrustedRelease) -> None:
        asked.append(release.version)
        raise CheckFailed("signature: demo 1.0.0 is not signed and trust.yaml requires it")

    monkeypatch.setattr("gefreg.release.signature_check.check_release", refuse)
    with pytest.raises(CheckFailed, match="not signed"):
        decide(settings, ImageClaim("demo", "1.0.0"))
    assert decide(settings, ImageClaim("demo", "1.1.0", BUILT)).source == "build-record"
    assert asked == ["1.0.0"]


def test_the_pulled_image_must_be_the_released_one(settings: Settings) -> None:
    fake = engine()
    image = trust_image(settings, fake, ImageClaim("demo", "1.0.0"), ledger=Ledger())
    assert verify_image(fake, image).image_id == RELEASED
    assert fake.pulled == [f"{REGISTRY}/demo@{DIGEST}"]
    # the registry serves another image under that digest than the ledger says was published
    fake = engine()
    fake.images[OUTSIDE] = (image_info(OUTSIDE, digests=(f"{REGISTRY}/demo@{DIGEST}",)), {})
    del fake.images[RELEASED]
    fake.local.discard(OUTSIDE)
    image = trust_image(settings, fake, ImageClaim("demo", "1.0.0"), ledger=Ledger())
    with pytest.raises(UntrustedImage, match=f"was published as {RELEASED}"):
        verify_image(fake, image)
