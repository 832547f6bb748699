"""Docker's credential store as gefreg reads it: config.json, helpers, the env override."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from gefreg.errors import BadInput, EnvironmentFailure, ToolMissing
from gefreg.registry.credentials import DockerCredentials


def store(tmp_path: Path, config: dict[str, Any], **env: str) -> DockerCredentials:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return DockerCredentials(config_dir=tmp_path, environ=env)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, script: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    path = folder / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return path


def test_auths_entry(tmp_path: Path) -> None:
    creds = store(tmp_path, {"auths": {"reg.example:5000": {"auth": b64("ada:pa:ss")}}})
    found = creds.lookup("reg.example:5000")
    assert found is not None
    assert (found.username, found.password) == ("ada", "pa:ss")  # only the first ':' splits
    assert found.source == f"auths['reg.example:5000'] in {tmp_path / 'config.json'}"
    assert creds.lookup("other.example") is None


def test_auths_keys_match_like_docker(tmp_path: Path) -> None:
    creds = store(tmp_path, {"auths": {"https://reg.example/v1/": {"auth": b64("ada:pw")}}})
    assert creds.lookup("reg.example") is not None
    hub = store(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": b64("ada:pw")}}})
    assert hub.lookup("registry-1.docker.io") is not None


def test_identity_token_and_missing_file(tmp_path: Path) -> None:
    creds = store(tmp_path, {"auths": {"ghcr.io": {"identitytoken": "idt"}}})
    found = creds.lookup("ghcr.io")
    assert found is not None and found.identity_token == "idt" and found.password is None
    assert DockerCredentials(config_dir=tmp_path / "absent", environ={}).lookup("x") is None


def test_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    found = store(tmp_path, {"auths": {"h": {"auth": b64("ada:topsecret")}}}).lookup("h")
    assert "topsecret" not in repr(found)


def test_env_override_wins(tmp_path: Path) -> None:
    config = {"auths": {"h": {"auth": b64("ada:pw")}}}
    creds = store(tmp_path, config, GEFREG_REGISTRY_USER="ci", GEFREG_REGISTRY_PASSWORD="tok")
    found = creds.lookup("h")
    assert found is not None and (found.username, found.password) == ("ci", "tok")
    assert found.source == "$GEFREG_REGISTRY_USER/$GEFREG_REGISTRY_PASSWORD"
    with pytest.raises(BadInput, match="set both"):
        store(tmp_path, config, GEFREG_REGISTRY_USER="ci").lookup("h")


def test_bad_config_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(BadInput, match="cannot read Docker's credential file"):
        DockerCredentials(config_dir=tmp_path, environ={}).lookup("h")


def test_cred_helper_gets_the_host_on_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper(
        tmp_path,
        monkeypatch,
        "test",
        'read host\necho "{\\"ServerURL\\":\\"$host\\",\\"Username\\":\\"u-$host\\",'
        '\\"Secret\\":\\"s-$1\\"}"\n',
    )
    creds = store(tmp_path, {"credHelpers": {"reg.example": "test"}})
    found = creds.lookup("reg.example")
    assert found is not None and (found.username, found.password) == ("u-reg.example", "s-get")
    assert found.source.startswith("docker-credential-test (credHelpers['reg.example'] in ")


def test_creds_store_not_found_falls_back_to_auths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper(
        tmp_path, monkeypatch, "store", 'echo "credentials not found in native keychain"\nexit 1\n'
    )
    creds = store(tmp_path, {"credsStore": "store", "auths": {"h": {"auth": b64("ada:pw")}}})
    found = creds.lookup("h")
    assert found is not None and found.username == "ada"


def test_helper_identity_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper(tmp_path, monkeypatch, "tok", 'echo \'{"Username":"<token>","Secret":"idt"}\'\n')
    found = store(tmp_path, {"credsStore": "tok"}).lookup("h")
    assert found is not None and found.identity_token == "idt" and found.username is None


def test_helper_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper(tmp_path, monkeypatch, "broken", 'echo "keychain locked" >&2\nexit 3\n')
    with pytest.raises(EnvironmentFailure, match=r"docker-credential-broken get failed.*locked"):
        store(tmp_path, {"credsStore": "broken"}).lookup("h")
    helper(tmp_path, monkeypatch, "garbled", "echo hello\n")
    with pytest.raises(EnvironmentFailure, match=r"not \{Username, Secret\} JSON"):
        store(tmp_path, {"credsStore": "garbled"}).lookup("h")
    with pytest.raises(ToolMissing, match="docker-credential-nowhere"):
        store(tmp_path, {"credsStore": "nowhere"}).lookup("h")
