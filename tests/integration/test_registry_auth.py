"""Authentication against scripted registries: the Bearer token flow (Docker's token
specification) and HTTP Basic, with credentials from Docker's config, a credential helper and
the environment."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gefreg.errors import EXIT_ENVIRONMENT
from gefreg.registry.client import RegistryClient
from gefreg.registry.errors import AuthRefused
from gefreg.registry.media_types import OCI_MANIFEST
from tests.bearer_registry import (
    DIGEST,
    MANIFEST,
    PASSWORD,
    USER,
    BearerRegistry,
    auths,
    docker_config,
)
from tests.fake_http import Reply, Request, basic, serving


def test_bearer_flow_with_docker_config_auths(tmp_path: Path) -> None:
    registry = BearerRegistry()
    with serving(registry) as fake:
        registry.fake = fake
        creds = docker_config(tmp_path / "docker", auths(fake.address))
        client = RegistryClient(fake.address, credentials=creds)
        assert client.head_manifest("demo/app", "v1") == DIGEST
        assert client.head_manifest("demo/app", "v2") == DIGEST  # the cached token
        [token_request] = [r for r in fake.requests if r.path == "/token"]
        assert token_request.headers["Authorization"] == basic(USER, PASSWORD)
        assert token_request.param("service") == "fake-registry"
        assert token_request.query["scope"] == ["repository:demo/app:pull"]
        assert fake.count("/v2/") == 3  # one 401, then two answered requests

        # Pushing needs another scope: one more token, then cached too.
        client.put_manifest("demo/app", "v1", MANIFEST, OCI_MANIFEST)
        client.put_manifest("demo/app", "v2", MANIFEST, OCI_MANIFEST)
        scopes = [r.query.get("scope") for r in fake.requests if r.path == "/token"]
        assert scopes == [["repository:demo/app:pull"], ["repository:demo/app:pull,push"]]
        client.ping()  # /v2/ challenges without a scope
        assert fake.requests[-2].path == "/token" and "scope" not in fake.requests[-2].query


def test_anonymous_bearer_flow(tmp_path: Path) -> None:
    registry = BearerRegistry(anonymous=True)
    with serving(registry) as fake:
        registry.fake = fake
        client = RegistryClient(fake.address, credentials=docker_config(tmp_path, {}))
        assert client.head_manifest("demo/app", "v1") == DIGEST
        [token_request] = [r for r in fake.requests if r.path == "/token"]
        assert "Authorization" not in token_request.headers


def test_refused_token_names_the_credential_source(tmp_path: Path) -> None:
    registry = BearerRegistry()
    with serving(registry) as fake:
        registry.fake = fake
        creds = docker_config(tmp_path / "docker", auths(fake.address, password="wrong"))
        with pytest.raises(AuthRefused) as caught:
            RegistryClient(fake.address, credentials=creds).head_manifest("demo/app", "v1")
    message = str(caught.value)
    assert caught.value.exit_code == EXIT_ENVIRONMENT
    assert f"the token service {fake.url}/token refused user 'alice'" in message
    assert f"auths['{fake.address}'] in {tmp_path / 'docker' / 'config.json'}" in message
    assert "incorrect username or password" in message
    assert "docker login" in (caught.value.hint or "")


def test_no_credentials_says_where_it_looked(tmp_path: Path) -> None:
    registry = BearerRegistry()
    with serving(registry) as fake:
        registry.fake = fake
        creds = docker_config(tmp_path / "docker", {})
        with pytest.raises(AuthRefused) as caught:
            RegistryClient(fake.address, credentials=creds).head_manifest("demo/app", "v1")
    assert "refused no credentials (looked in $GEFREG_REGISTRY_USER" in str(caught.value)
    assert str(tmp_path / "docker" / "config.json") in str(caught.value)


def test_a_token_the_registry_refuses_is_final(tmp_path: Path) -> None:
    registry = BearerRegistry(refuse_tokens=True)
    with serving(registry) as fake:
        registry.fake = fake
        creds = docker_config(tmp_path / "docker", auths(fake.address))
        with pytest.raises(AuthRefused) as caught:
            RegistryClient(fake.address, credentials=creds).head_manifest("demo/app", "v1")
        assert fake.count("/token") == 1  # no loop of token requests
    assert "refused the token" in str(caught.value) and "user 'alice'" in str(caught.value)


def test_identity_token_uses_the_oauth2_refresh_grant(tmp_path: Path) -> None:
    registry = BearerRegistry()
    with serving(registry) as fake:
        registry.fake = fake
        config = {"auths": {fake.address: {"identitytoken": "idt"}}}
        client = RegistryClient(fake.address, credentials=docker_config(tmp_path, config))
        assert client.head_manifest("demo/app", "v1") == DIGEST
        [token_request] = [r for r in fake.requests if r.path == "/token"]
        assert token_request.method == "POST"
        assert b"grant_type=refresh_token" in token_request.body


def write_helper(folder: Path, name: str, script: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    helper = folder / f"docker-credential-{name}"
    helper.write_text("#!/bin/sh\n" + script)
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    return helper


def test_credential_helper_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = BearerRegistry()
    with serving(registry) as fake:
        registry.fake = fake
        # The helper answers only for the exact server URL Docker would pass on stdin.
        answer = json.dumps({"ServerURL": fake.address, "Username": USER, "Secret": PASSWORD})
        write_helper(
            tmp_path / "bin",
            "test",
            f'read host\n[ "$1" = get ] && [ "$host" = "{fake.address}" ] || '
            '{ echo "credentials not found in native keychain"; exit 1; }\n'
            f"echo '{answer}'\n",
        )
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
        creds = docker_config(tmp_path / "docker", {"credHelpers": {fake.address: "test"}})
        assert RegistryClient(fake.address, credentials=creds).head_manifest("demo/x", "v1")
        [token_request] = [r for r in fake.requests if r.path == "/token"]
        assert token_request.headers["Authorization"] == basic(USER, PASSWORD)


def test_docker_config_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default credential source: $DOCKER_CONFIG, overridden by GEFREG_REGISTRY_*."""
    registry = BearerRegistry()
    with serving(registry) as fake:
        registry.fake = fake
        (tmp_path / "docker").mkdir()
        (tmp_path / "docker" / "config.json").write_text(json.dumps(auths(fake.address)))
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
        monkeypatch.delenv("GEFREG_REGISTRY_USER", raising=False)
        monkeypatch.delenv("GEFREG_REGISTRY_PASSWORD", raising=False)
        assert RegistryClient(fake.address).head_manifest("demo/app", "v1") == DIGEST

        monkeypatch.setenv("GEFREG_REGISTRY_USER", USER)
        monkeypatch.setenv("GEFREG_REGISTRY_PASSWORD", "wrong")
        with pytest.raises(AuthRefused) as caught:
            RegistryClient(fake.address).head_manifest("demo/app", "v1")
    assert "from $GEFREG_REGISTRY_USER/$GEFREG_REGISTRY_PASSWORD" in str(caught.value)


def basic_registry(request: Request) -> Reply:
    if request.headers.get("Authorization") != basic(USER, PASSWORD):
        return Reply(401, {"WWW-Authenticate": 'Basic realm="fake"'}, b"")
    return Reply(200, {"Docker-Content-Digest": DIGEST})


def test_basic_auth(tmp_path: Path) -> None:
    with serving(basic_registry) as fake:
        creds = docker_config(tmp_path / "ok", auths(fake.address))
        client = RegistryClient(fake.address, credentials=creds)
        assert client.head_manifest("demo/app", "v1") == DIGEST
        assert client.head_manifest("demo/app", "v2") == DIGEST
        sent = [r.headers.get("Authorization") is not None for r in fake.requests]
        assert sent == [False, True, True]  # anonymous, challenged, then basic up front

        creds = docker_config(tmp_path / "bad", auths(fake.address, password="nope"))
        with pytest.raises(AuthRefused) as caught:
            RegistryClient(fake.address, credentials=creds).head_manifest("demo/app", "v1")
        assert "refused the username/password from auths[" in str(caught.value)

        with pytest.raises(AuthRefused) as caught:
            RegistryClient(fake.address, credentials=docker_config(tmp_path / "none", {})).ping()
        assert "asks for a login (HTTP Basic) and no username/password was found" in str(
            caught.value
        )
