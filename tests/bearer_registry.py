"""A scripted registry whose Bearer token service lives at /token on the same server (Docker's
token specification), and Docker config files that log in to it. Shared by the auth tests and
the pipelining tests."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from gefreg.registry.credentials import DockerCredentials
from gefreg.registry.media_types import OCI_MANIFEST
from tests.fake_http import FakeServer, Reply, Request, basic
from tests.registry_fixtures import sha256, tiny_image

MANIFEST = tiny_image("auth").manifest
DIGEST = sha256(MANIFEST)
USER, PASSWORD = "alice", "s3cret"


class BearerRegistry:
    """A registry whose token service lives at /token on the same server."""

    def __init__(self, *, anonymous: bool = False, refuse_tokens: bool = False) -> None:
        self.anonymous = anonymous
        self.refuse_tokens = refuse_tokens
        self.fake: FakeServer | None = None

    def realm(self) -> str:
        assert self.fake is not None
        return f"{self.fake.url}/token"

    def __call__(self, request: Request) -> Reply:
        if request.path == "/token":
            return self.token(request)
        auth = request.headers.get("Authorization", "")
        parts = request.path.split("/")
        if request.path == "/v2/":
            scope = ""
        else:
            repo = "/".join(parts[2:-2])
            actions = "pull" if request.method in ("GET", "HEAD") else "pull,push"
            scope = f"repository:{repo}:{actions}"
        if self.refuse_tokens or auth != f"Bearer tok[{scope}]":
            challenge = f'Bearer realm="{self.realm()}",service="fake-registry"'
            if scope:
                challenge += f',scope="{scope}"'
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            return Reply(401, {"WWW-Authenticate": challenge}, body)
        if request.method == "PUT":
            return Reply(201, {"Docker-Content-Digest": sha256(request.body)})
        return Reply(200, {"Docker-Content-Digest": DIGEST, "Content-Type": OCI_MANIFEST}, b"{}")

    def token(self, request: Request) -> Reply:
        auth = request.headers.get("Authorization")
        if request.method == "POST":
            form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
            ok = form.get("grant_type") == "refresh_token" and form.get("refresh_token") == "idt"
            scopes = form.get("scope", "").split()
        else:
            ok = auth == basic(USER, PASSWORD) or (self.anonymous and auth is None)
            scopes = request.query.get("scope", [])
        if not ok:
            return Reply(401, body=b'{"details":"incorrect username or password"}')
        token = f"tok[{' '.join(scopes)}]"
        return Reply(
            200,
            {"Content-Type": "application/json"},
            json.dumps({"token": token, "expires_in": 300}).encode(),
        )


def docker_config(folder: Path, config: dict[str, Any]) -> DockerCredentials:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return DockerCredentials(config_dir=folder, environ={})


def auths(address: str, user: str = USER, password: str = PASSWORD) -> dict[str, Any]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"auths": {address: {"auth": token}}}
