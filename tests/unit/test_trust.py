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


# --- yanked releases, typos and versions: the same one decision ------------------------------


def ledger_with_yank(settings: Settings) -> None:
    from gefreg.release.ledger import Release, Yank

    lines = [
        Release(v, d, f"{REGISTRY}/demo", "sha256:" + "1" * 64, None, i, "2026-01-01T00:00:00Z")
        for v, d, i in (("1.0.0", DIGEST, RELEASED), ("1.1.0", EVIL_DIGEST, OUTSIDE))
    ]
    text = "".join(r.to_line() for r in lines)
    text += Yank("1.1.0", "wrong units", "2026-02-01T00:00:00Z").to_line()
    (settings.catalog / "demo" / "releases.jsonl").write_text(text)


def decide_with_ledger(settings: Settings, target: str, **kw: bool) -> trust.ResolvedImage:
    from gefreg.release.ledger import CatalogLedger
    from gefreg.run.image_choice import resolve_image

    return resolve_image(settings, target, engine=engine(), ledger=CatalogLedger(settings), **kw)


def test_a_yanked_release_is_refused_unless_allowed_and_then_recorded(
    settings: Settings,
) -> None:
    ledger_with_yank(settings)
    assert decide_with_ledger(settings, "demo").version == "1.0.0"  # the newest not yanked
    with pytest.raises(trust.YankedRelease) as refused:
        decide_with_ledger(settings, "demo@1.1.0")
    assert refused.value.exit_code == 1
    assert refused.value.message == "demo 1.1.0 was yanked on 2026-02-01: wrong units"
    assert refused.value.hint and "run demo (its newest release not yanked: 1.0.0)" in (
        refused.value.hint
    )
    with pytest.raises(trust.YankedRelease):  # --allow-untrusted is not --allow-yanked
        decide_with_ledger(settings, "demo@1.1.0", allow_untrusted=True)
    image = decide_with_ledger(settings, "demo@1.1.0", allow_yanked=True)
    assert image.version == "1.1.0" and image.source == "ledger"
    assert image.to_json()["yanked"] == {"reason": "wrong units", "yanked": "2026-02-01T00:00:00Z"}
    assert "yanked" not in decide_with_ledger(settings, "demo@1.0.0").to_json()


def test_every_release_yanked_is_said_so(settings: Settings) -> None:
    from gefreg.release.ledger import Yank

    ledger_with_yank(settings)
    path = settings.catalog / "demo" / "releases.jsonl"
    path.write_text(path.read_text() + Yank("1.0.0", "also wrong", "t").to_line())
    with pytest.raises(trust.YankedRelease, match=r"demo 1\.1\.0 was yanked") as refused:
        decide_with_ledger(settings, "demo")
    assert refused.value.hint == "pass --allow-yanked to run it anyway (the run record says so)"


def test_a_typo_gets_did_you_mean_and_never_allow_untrusted(settings: Settings) -> None:
    for target in ("dmeo", "demo-", "dem@1.0.0"):
        with pytest.raises(BadInput) as typo:
            decide_with_ledger(settings, target)
        assert typo.value.hint == "did you mean demo?"
        assert "--allow-untrusted" not in str(typo.value) + str(typo.value.hint)
    with pytest.raises(BadInput) as far:
        decide_with_ledger(settings, "something-else")
    assert far.value.hint and "--allow-untrusted" in far.value.hint  # not a typo of anything
    with pytest.raises(BadInput) as typo:  # the one decision says the same
        trust_image(settings, engine(), ImageClaim("dmeo"), ledger=Ledger())
    assert typo.value.hint == "did you mean demo?"


def test_versions_as_typed_and_versions_that_are_not(settings: Settings) -> None:
    ledger_with_yank(settings)
    assert decide_with_ledger(settings, "demo@v1.0.0").version == "1.0.0"  # `v` understood
    with pytest.raises(BadInput) as unknown:
        decide_with_ledger(settings, "demo@1.2.0")
    assert "demo@1.2.0 is not built or published; published: 1.0.0, 1.1.0 (yanked)" in (
        unknown.value.message
    )
    for floating in ("latest", "1", "1.0"):  # registry tags, explained, never guessed
        with pytest.raises(BadInput) as tag:
            decide_with_ledger(settings, f"demo@{floating}")
        assert tag.value.message == (
            f"demo@{floating} is a floating tag, not a version: a run is pinned to an exact "
            "version; published: 1.0.0, 1.1.0 (yanked)"
        )
        assert tag.value.hint and "gefreg run demo` runs its newest release" in tag.value.hint
