"""catalog/trust.yaml: validation with file:line errors, editing that keeps comments, and
what each key may sign."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gefreg.errors import BadInput, InvalidRecord
from gefreg.release import keys, trust_policy


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> keys.PublicKey:
    folder = tmp_path_factory.mktemp("k")
    keys.generate(folder, None)
    return keys.load_public_key(folder / keys.PUBLIC_FILE)


@pytest.fixture(scope="module")
def pub2(tmp_path_factory: pytest.TempPathFactory) -> keys.PublicKey:
    folder = tmp_path_factory.mktemp("k2")
    keys.generate(folder, None)
    return keys.load_public_key(folder / keys.PUBLIC_FILE)


def indented(pem: str) -> str:
    return "".join(f"      {line}\n" for line in pem.splitlines())


def test_missing_file_means_no_keys_and_no_requirement(tmp_path: Path) -> None:
    policy = trust_policy.load(tmp_path)
    assert not policy.exists and not policy.require_signatures and policy.keys == ()


def test_problems_name_file_line_and_field(tmp_path: Path, pub: keys.PublicKey) -> None:
    (tmp_path / "trust.yaml").write_text(
        "require-signatures: yes please\n"
        "keys:\n"
        "  - id: Curators!\n"
        "    public-key: |\n" + indented(pub.pem) + "  - id: second\n"
        "    public-key: not a key\n"
        "    expires: someday\n"
        "    revoked: {date: 2026-01-01}\n"
        "    colour: blue\n"
    )
    with pytest.raises(InvalidRecord) as caught:
        trust_policy.load(tmp_path)
    text = str(caught.value)
    path = tmp_path / "trust.yaml"
    assert f"{path}:1:" in text and "require-signatures: expected true or false" in text
    assert f"{path}:3:" in text and "keys[0].id" in text
    assert "keys[1].public-key: not a PEM public key" in text
    assert "keys[1].expires: expected a date" in text
    assert "keys[1].revoked.reason: required key is missing" in text
    assert "keys[1].colour: unknown key" in text


def test_same_key_under_two_ids_is_refused(tmp_path: Path, pub: keys.PublicKey) -> None:
    (tmp_path / "trust.yaml").write_text(
        "require-signatures: true\nkeys:\n"
        "  - id: a\n    public-key: |\n"
        + indented(pub.pem)
        + "  - id: b\n    public-key: |\n"
        + indented(pub.pem)
    )
    with pytest.raises(InvalidRecord, match="already listed as 'a'"):
        trust_policy.load(tmp_path)


def test_add_and_revoke_keep_the_file_valid_and_its_comments(
    tmp_path: Path, pub: keys.PublicKey, pub2: keys.PublicKey
) -> None:
    (tmp_path / "trust.yaml").write_text("# our keys\nrequire-signatures: true\nkeys: []\n")
    policy = trust_policy.add_key(tmp_path, pub, "curators-2026", ("seis-*",), date(2027, 1, 1))
    assert policy.require_signatures
    (key,) = policy.keys
    assert (key.id, key.entries, key.expires) == ("curators-2026", ("seis-*",), date(2027, 1, 1))
    assert key.public_key == pub
    with pytest.raises(BadInput, match="already listed"):
        trust_policy.add_key(tmp_path, pub2, "curators-2026")
    with pytest.raises(BadInput, match="already listed as 'curators-2026'"):
        trust_policy.add_key(tmp_path, pub, "other")
    trust_policy.add_key(tmp_path, pub2, "ci")
    revoked = trust_policy.revoke(tmp_path, "curators-2026", "laptop stolen", date(2026, 11, 30))
    assert revoked.key("curators-2026").revoked == trust_policy.Revocation(  # type: ignore[union-attr]
        "laptop stolen", date(2026, 11, 30)
    )
    text = (tmp_path / "trust.yaml").read_text()
    assert text.startswith("# our keys\n") and "-----BEGIN PUBLIC KEY-----" in text
    assert trust_policy.load(tmp_path) == revoked
    with pytest.raises(BadInput, match="already revoked"):
        trust_policy.revoke(tmp_path, "curators-2026", "again", date(2026, 12, 1))
    with pytest.raises(BadInput, match="no key with id 'nobody'") as unknown:
        trust_policy.revoke(tmp_path, "nobody", "x", date(2026, 12, 1))
    assert unknown.value.hint == "known keys: curators-2026, ci"


def test_add_creates_a_file_that_does_not_require_signatures(
    tmp_path: Path, pub: keys.PublicKey
) -> None:
    policy = trust_policy.add_key(tmp_path, pub, "first")
    assert policy.exists and not policy.require_signatures
    assert policy.keys[0].entries == ("*",)


def test_what_a_key_may_sign(pub: keys.PublicKey) -> None:
    today = date(2026, 11, 30)
    key = trust_policy.TrustedKey("k", pub, ("seis-*", "fixity-manifest"), date(2026, 12, 31))
    assert key.refusal("seis-picker", today) is None
    assert key.refusal("fixity-manifest", today) is None
    assert "not trusted for netcdf-summary" in str(key.refusal("netcdf-summary", today))
    assert "expired on 2026-12-31" in str(key.refusal("seis-picker", date(2027, 1, 1)))
    gone = trust_policy.TrustedKey("k", pub, ("*",), None, trust_policy.Revocation("stolen"))
    assert gone.refusal("anything", today) == "key 'k' was revoked: stolen"
