"""Version rules: floating tags for publish (one release) and for verify (the whole ledger)."""

from __future__ import annotations

import random
import time

import pytest

from gefreg.release import versions


def replayed(published: list[str], wanted: tuple[str, ...]) -> dict[str, str]:
    """What publishing every release in version order leaves the floating tags pointing at."""
    final = [p for p in published if not versions.is_prerelease(p)]
    targets: dict[str, str] = {}
    for version in sorted(final, key=versions.parse):
        lower = [p for p in final if versions.parse(p) < versions.parse(version)]
        for tag in versions.floating_tags(version, lower, wanted):
            targets[tag] = version
    return targets


def test_floating_targets_of_a_small_ledger() -> None:
    published = ["1.0.0", "1.1.0", "1.0.5", "2.0.0-rc.1", "0.9.0", "1.2.0-beta"]
    assert versions.floating_targets(published, versions.FLOATING) == {
        "0": "0.9.0",
        "0.9": "0.9.0",
        "latest": "1.1.0",
        "1": "1.1.0",
        "1.0": "1.0.5",
        "1.1": "1.1.0",
    }
    assert versions.floating_targets(published, ("latest",)) == {"latest": "1.1.0"}
    assert versions.floating_targets([], versions.FLOATING) == {}
    with pytest.raises(ValueError):
        versions.floating_targets(published, ("nightly",))


@pytest.mark.parametrize("seed", range(20))
def test_floating_targets_equal_replaying_every_publish(seed: int) -> None:
    rng = random.Random(seed)
    published = list(
        {
            f"{rng.randint(0, 3)}.{rng.randint(0, 3)}.{rng.randint(0, 3)}"
            + rng.choice(["", "", "", "-rc.1", "-alpha", "+build.7", "+build.8"])
            for _ in range(rng.randint(0, 40))
        }
    )
    rng.shuffle(published)
    for wanted in (versions.FLOATING, ("latest",), ("minor", "major"), ()):
        assert versions.floating_targets(published, wanted) == replayed(published, wanted)


def test_floating_targets_of_1000_releases_is_fast() -> None:
    published = [f"{i // 100}.{(i // 10) % 10}.{i % 10}" for i in range(1000)]
    start = time.perf_counter()
    targets = versions.floating_targets(published, versions.FLOATING)
    assert time.perf_counter() - start < 0.5  # it took 8 s when every release was replayed
    assert len(targets) == 10 + 100 + 1 and targets["latest"] == "9.9.9"


@pytest.mark.parametrize(
    ("new", "published", "allowed"),
    [
        ("0.1.0", [], True),
        ("0.0.9", ["0.1.0"], False),  # the case that was published for ever, then reviewed down
        ("1.2.5", ["1.2.4", "1.3.0"], True),  # a backport continues its line
        ("1.2.4", ["1.2.4", "1.3.0"], True),  # already published: immutability decides
        ("1.2.3", ["1.2.4", "1.3.0"], False),  # not above its own line
        ("1.1.0", ["1.0.0", "1.2.0"], False),  # a new line below the highest release
        ("1.4.0", ["1.0.0", "1.3.2"], True),
        ("2.0.0", ["1.3.2"], True),
        ("1.0.0", ["1.0.0-rc.1"], True),  # the final release after its release candidate
        ("1.1.0-rc.1", ["1.0.0"], True),
        ("1.0.0-rc.2", ["1.0.0"], False),
        ("1.0.0+build.2", ["1.0.0+build.1"], False),  # build metadata does not order
    ],
)
def test_the_one_version_rule(new: str, published: list[str], allowed: bool) -> None:
    broken = versions.check_new_version(new, published)
    assert (broken is None) == allowed, broken


def test_the_rule_says_what_would_be_allowed() -> None:
    broken = versions.check_new_version("0.0.9", ["0.1.0"])
    assert broken is not None
    assert broken.message == (
        "0.0.9 would open the new line 0.0 below 0.1.0, the highest release: a new major.minor "
        "line may only be opened above every published release"
    )
    assert "0.2.0" in broken.hint and "0.1.1" in broken.hint
    same_line = versions.check_new_version("1.2.3", ["1.2.4", "1.3.0"])
    assert same_line is not None and "the highest release of the 1.2 line" in same_line.message
    assert "1.2.5" in same_line.hint
