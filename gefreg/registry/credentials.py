"""Registry credentials, found the way Docker finds them.

Order for a registry host:

1. ``GEFREG_REGISTRY_USER`` + ``GEFREG_REGISTRY_PASSWORD`` (an override for CI);
2. ``credHelpers[host]`` in Docker's ``config.json`` (``$DOCKER_CONFIG`` or ``~/.docker``):
   runs ``docker-credential-<name> get`` with the host on stdin;
3. ``credsStore``: the same, with the default helper;
4. ``auths[host]``: ``auth`` (base64 ``user:password``) or ``identitytoken``.

A helper answering "not found" falls through to ``auths``. Keys of ``auths`` match like Docker's:
``https://host/v1/`` and ``host`` are the same registry; Docker Hub is
``https://index.docker.io/v1/``. Nothing is looked up until a registry asks for credentials.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gefreg.errors import BadInput, EnvironmentFailure
from gefreg.subprocesses import find_tool, run_tool

ENV_USER = "GEFREG_REGISTRY_USER"
ENV_PASSWORD = "GEFREG_REGISTRY_PASSWORD"
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
TOKEN_USER = "<token>"  # a helper's Username when Secret is an identity token


@dataclass(frozen=True)
class Credentials:
    """What to send to a registry or its token service, and where it came from."""

    source: str
    username: str | None = None
    password: str | None = None
    identity_token: str | None = None

    def __repr__(self) -> str:  # never show secrets in tracebacks or logs
        return f"Credentials(source={self.source!r}, username={self.username!r})"


class CredentialSource(Protocol):
    """Anything that can find credentials for a registry host."""

    def lookup(self, host: str) -> Credentials | None: ...

    def describe(self) -> str:
        """Where this source looks, for error messages ("no credentials in ...")."""
        ...


def hostname(key: str) -> str:
    """Docker's ConvertToHostname: ``https://host:5000/v1/`` → ``host:5000``."""
    return key.split("://", 1)[-1].split("/", 1)[0]


def config_key(host: str) -> str:
    """The key Docker stores a host's credentials under."""
    return DOCKER_HUB_KEY if host in DOCKER_HUB_HOSTS else host


class DockerCredentials:
    """Docker's credential store (config.json, credential helpers) plus gefreg's env override."""

    def __init__(
        self, config_dir: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        self.environ = os.environ if environ is None else environ
        default = self.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
        self.config_path = (config_dir or Path(default)) / "config.json"

    def describe(self) -> str:
        return f"${ENV_USER}/${ENV_PASSWORD} and {self.config_path}"

    def lookup(self, host: str) -> Credentials | None:
        from_env = self._from_env()
        if from_env is not None:
            return from_env
        config = self._config()
        key = config_key(host)
        helpers = config.get("credHelpers")
        helper = helpers.get(key) if isinstance(helpers, dict) else None
        store = config.get("credsStore")
        if isinstance(helper, str) and helper:
            found = self._from_helper(helper, key, f"credHelpers[{key!r}]")
        elif isinstance(store, str) and store:
            found = self._from_helper(store, key, "credsStore")
        else:
            found = None
        return found if found is not None else self._from_auths(config, host)

    def _from_env(self) -> Credentials | None:
        user, password = self.environ.get(ENV_USER), self.environ.get(ENV_PASSWORD)
        if not user and not password:
            return None
        if not user or password is None:
            raise BadInput(f"set both ${ENV_USER} and ${ENV_PASSWORD}, or neither")
        return Credentials(f"${ENV_USER}/${ENV_PASSWORD}", user, password)

    def _config(self) -> dict[str, Any]:
        try:
            data = json.loads(self.config_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise BadInput(
                f"cannot read Docker's credential file {self.config_path}: {exc}",
                "fix the JSON, or point $DOCKER_CONFIG at another folder",
            ) from None
        return data if isinstance(data, dict) else {}

    def _from_auths(self, config: dict[str, Any], host: str) -> Credentials | None:
        auths = config.get("auths")
        if not isinstance(auths, dict):
            return None
        key = config_key(host)
        match = next((k for k in auths if k == key), None) or next(
            (k for k in auths if hostname(k) == hostname(key)), None
        )
        entry = auths.get(match) if match is not None else None
        if not isinstance(entry, dict):
            return None
        source = f"auths[{match!r}] in {self.config_path}"
        if entry.get("identitytoken"):
            return Credentials(source, entry.get("username"), None, str(entry["identitytoken"]))
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, TypeError):
                raise BadInput(
                    f"{source}: 'auth' is not base64 of user:password",
                    f"run `docker login {host}` again",
                ) from None
            return Credentials(source, user, password)
        if entry.get("username") and entry.get("password") is not None:
            return Credentials(source, str(entry["username"]), str(entry["password"]))
        return None

    def _from_helper(self, name: str, key: str, via: str) -> Credentials | None:
        program = f"docker-credential-{name}"
        source = f"{program} ({via} in {self.config_path})"
        path = find_tool(program)
        proc = run_tool([path, "get"], input_bytes=key.encode(), ok_codes=range(256), timeout=60)
        out = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0:
            if "not found" in out.lower() or "not found" in proc.stderr.decode().lower():
                return None
            detail = (out or proc.stderr.decode(errors="replace").strip())[:300]
            raise EnvironmentFailure(
                f"{program} get failed (exit {proc.returncode}): {detail}",
                f"check the helper, or remove {via} from {self.config_path}",
            )
        try:
            answer = json.loads(out)
            user, secret = str(answer["Username"]), str(answer["Secret"])
        except (ValueError, KeyError, TypeError):
            raise EnvironmentFailure(
                f"{program} get answered something that is not {{Username, Secret}} JSON"
            ) from None
        if user == TOKEN_USER:
            return Credentials(source, None, None, secret)
        return Credentials(source, user, secret)
