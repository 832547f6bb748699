"""Pure parts of the registry client: addresses, schemes, names, WWW-Authenticate."""

from __future__ import annotations

from pathlib import Path

import pytest

from gefreg.errors import BadInput
from gefreg.registry.auth import Challenge, parse_challenges
from gefreg.registry.client import RegistryClient
from gefreg.registry.transport import parse_registry
from gefreg.settings import load_settings


@pytest.mark.parametrize(
    "given,scheme,host",
    [
        ("127.0.0.1:5000", "http", "127.0.0.1:5000"),
        ("127.8.9.10", "http", "127.8.9.10"),
        ("localhost:5000", "http", "localhost:5000"),
        ("[::1]:5000", "http", "[::1]:5000"),
        ("::1", "http", "[::1]"),
        ("ghcr.io", "https", "ghcr.io"),
        ("harbor.example.org:8443/", "https", "harbor.example.org:8443"),
        ("10.0.0.5:5000", "https", "10.0.0.5:5000"),  # not loopback: TLS, as Docker
        ("http://10.0.0.5:5000", "http", "10.0.0.5:5000"),
        ("https://127.0.0.1:5000", "https", "127.0.0.1:5000"),
    ],
)
def test_scheme_rules(given: str, scheme: str, host: str) -> None:
    endpoint = parse_registry(given)
    assert (endpoint.scheme, endpoint.host) == (scheme, host)


@pytest.mark.parametrize("bad", ["", "http://", "ghcr.io/org", "user@host", "a b"])
def test_bad_addresses(bad: str) -> None:
    with pytest.raises(BadInput):
        parse_registry(bad)


def test_names_and_references_are_checked_before_any_request() -> None:
    client = RegistryClient("127.0.0.1:1", retries=0)
    with pytest.raises(BadInput, match="repository name"):
        client.head_manifest("Upper/Case", "v1")
    with pytest.raises(BadInput, match="tag or digest"):
        client.head_manifest("ok/repo", "../../etc")
    with pytest.raises(BadInput, match="digest"):
        client.blob_exists("ok/repo", "sha256")
    with pytest.raises(BadInput, match="hash to"):
        client.push_blob("ok/repo", "sha256:" + "0" * 64, b"not that")
    # gefreg's one digest form: a blob under another algorithm could not be checked on download
    with pytest.raises(BadInput, match="digest"):
        client.get_blob("ok/repo", "sha512:" + "0" * 128)


def test_bearer_challenge_with_commas_in_quotes() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )
    [challenge] = parse_challenges(header)
    assert challenge == Challenge(
        "bearer",
        {
            "realm": "https://auth.docker.io/token",
            "service": "registry.docker.io",
            "scope": "repository:samalba/my-app:pull,push",
        },
    )


def test_several_challenges_and_escapes() -> None:
    header = 'Basic realm="a \\"quoted\\" realm", Bearer realm=https://t.example/token,scope=x'
    basic, bearer = parse_challenges(header)
    assert basic.scheme == "basic" and basic.realm == 'a "quoted" realm'
    assert bearer.scheme == "bearer" and (bearer.realm, bearer.scope) == (
        "https://t.example/token",
        "x",
    )
    assert parse_challenges("") == []


def test_settings_keep_a_forced_scheme_apart(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    plain = load_settings(str(catalog), "127.0.0.1:5000")
    assert (plain.registry, plain.registry_url) == ("127.0.0.1:5000", "127.0.0.1:5000")
    forced = load_settings(str(catalog), "http://10.0.0.5:5000/")
    assert (forced.registry, forced.registry_url) == ("10.0.0.5:5000", "http://10.0.0.5:5000")
    assert parse_registry(forced.registry_url).scheme == "http"
