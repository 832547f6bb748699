"""Helpers for the GEF instance's tests: a catalog whose ledger lists a release (no registry
needed to admit tasks), token files, and a server configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from gefreg.engine import ImageInfo
from gefreg.image.interface import ServiceInterface
from gefreg.model import Port, Resources
from gefreg.serve.config import ServeConfig
from gefreg.serve.tokens import new_token
from gefreg.settings import Settings
from tests.helpers import demo_entry, make_catalog

REGISTRY = "127.0.0.1:5999"
DIGEST = "sha256:" + "d" * 64
OTHER_DIGEST = "sha256:" + "e" * 64
COMMAND = ["/bin/sh", "/opt/service/run.sh"]


class NoImagesEngine:
    """An engine that has no images yet (admission never needs one for a ledger release)."""

    def image(self, ref: str) -> ImageInfo | None:
        return None

    def repo_digest_refs(self, digest: str) -> list[str]:
        return []


def interface(name: str, version: str = "1.0.0") -> ServiceInterface:
    return ServiceInterface(
        name=name,
        version=version,
        inputs=(Port("data", "/data/input"), Port("notes", "/data/notes", "string", "notes.txt")),
        outputs=(Port("result", "/data/output"),),
        command=tuple(COMMAND),
        resources=Resources(memory=64 * 1024**2, cpus=0.5, timeout=60.0, pids=64),
    )


def release_line(name: str, version: str, digest: str, registry: str = REGISTRY) -> str:
    return (
        json.dumps(
            {
                "version": version,
                "digest": digest,
                "repository": f"{registry}/{name}",
                "fingerprint": "sha256:" + "f" * 64,
                "base_digest": None,
                "image_id": "sha256:" + "1" * 64,
                "published": "2026-01-01T00:00:00Z",
                "scan": {"passed": True, "summary": "scan passed: 0 blocking findings"},
                "sbom_digest": None,
                "gefreg_version": "0.1.0",
                "schema": "gefreg.release/1",
                "floating": ["1", "1.0", "latest"],
                "interface": interface(name, version).to_json(),
            },
            sort_keys=True,
        )
        + "\n"
    )


def published_catalog(root: Path, name: str = "tes-demo") -> Settings:
    """A catalog with ``name`` published at 1.0.0 (digest DIGEST) in REGISTRY's ledger."""
    catalog = make_catalog(root / "catalog", demo_entry(name=name))
    (catalog / name / "releases.jsonl").write_text(release_line(name, "1.0.0", DIGEST))
    return Settings(catalog, REGISTRY, root / "state")


def tokens(path: Path, **kinds: dict[str, Any]) -> dict[str, str]:
    """``{label: token}`` for tokens made with the given options (read_only, owner)."""
    return {label: new_token(path, **options)[0] for label, options in kinds.items()}


def serve_config(settings: Settings, token_file: Path, data: Path, **extra: Any) -> ServeConfig:
    return ServeConfig(
        settings=settings,
        tokens=token_file,
        data_roots=(data.resolve(),),
        home=settings.state_dir / "serve",
        **extra,
    )


def task(**fields: Any) -> dict[str, Any]:
    """A TES task running tes-demo 1.0.0 with defaults overridden by ``fields``."""
    body: dict[str, Any] = {
        "name": "demo",
        "executors": [{"image": "tes-demo@1.0.0", "command": list(COMMAND)}],
    }
    body.update(fields)
    return body


class ServerProcess:
    """``gefreg serve`` as its own process on a free port (killed by the tests, never by name)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        from tests.registry_fixtures import free_port

        self.port = free_port()
        self.args = args
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = False  # once it answered, its port stays (clients hold its URL)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> None:
        """Start and wait until it answers (generous: the machine may be shared and busy). A
        first start whose port another process took meanwhile moves to a new port."""
        for _ in range(3):
            if self._start(timeout):
                return
            if self.started or "address already in use" not in self.log.read_text(errors="replace"):
                break
            from tests.registry_fixtures import free_port

            self.port = free_port()
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"gefreg serve did not start:\n{tail}")

    def _start(self, timeout: float) -> bool:
        command = [sys.executable, "-m", "gefreg", "serve", "--port", str(self.port), *self.args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/ga4gh/tes/v1/service-info", timeout=1):
                    self.started = True
                    return True
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    return False
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is cleaned up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then wait (SIGKILL after 60 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
