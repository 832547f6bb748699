"""Pytest plugin: a real OCI registry (CNCF Distribution, Debian's `docker-registry`) for tests.

Fixtures:
  registry        session-wide, started once on a free port with its own storage folder
  fresh_registry  one per test, which the test may ``kill()`` and ``start()`` again

Both yield a :class:`LocalRegistry` (``.address`` "127.0.0.1:PORT", ``.storage``, ``.log``).
Without the binary the tests that use them are skipped, or fail under CI=true.
Helpers: :func:`tiny_image` builds a small valid OCI image (layer tar.gz, config, manifest).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gefreg.registry.media_types import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST

CONFIG = """\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: gefreg-tests-fixed-secret
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(address: str, timeout: float = 0.5) -> bool:
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/v2/")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@dataclass
class LocalRegistry:
    """A docker-registry process on 127.0.0.1:port; storage survives kill/start."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def log(self) -> Path:
        return self.root / "registry.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 20) -> None:
        if self.running:
            return
        binary = _binary()
        self.storage.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(CONFIG.format(storage=json.dumps(str(self.storage)), port=self.port))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not answers(self.address):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"docker-registry did not start on {self.address}:\n{tail}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the registry dies as in a crash (no graceful shutdown)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


MISSING = "docker-registry is not installed (apt-get install docker-registry, or make setup)"
FIXTURES = ("registry", "fresh_registry")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a registry fixture needs the binary: it gets the `registry` marker,
    whether or not its module says so."""
    for item in items:
        if set(FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.registry)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `registry` test without the binary fails under CI=true, else is skipped."""
    if item.get_closest_marker("registry") is not None:
        _binary()


def _binary() -> str:
    found = shutil.which("docker-registry")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {MISSING}", pytrace=False)
    pytest.skip(MISSING)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """One registry for the whole session. Use your own repository names."""
    reg = LocalRegistry(tmp_path_factory.mktemp("registry"))
    reg.start()
    try:
        yield reg
    finally:
        reg.kill()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    """A registry for one test, free to kill and restart (same port, same storage)."""
    reg = LocalRegistry(tmp_path / "fresh-registry")
    reg.root.mkdir()
    reg.start()
    try:
        yield reg
    finally:
        reg.kill()


# ----------------------------------------------------------------------- a tiny OCI image


@dataclass(frozen=True)
class TinyImage:
    layer: bytes  # tar.gz
    config: bytes
    manifest: bytes

    @property
    def layer_digest(self) -> str:
        return sha256(self.layer)

    @property
    def config_digest(self) -> str:
        return sha256(self.config)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def blobs(self) -> list[tuple[str, bytes]]:
        return [(self.layer_digest, self.layer), (self.config_digest, self.config)]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tiny_image(text: str = "hello", filler: int = 0) -> TinyImage:
    """A valid linux/amd64 OCI image with one file, /hello.txt; same text → same digest.
    ``filler`` random bytes in /filler make the layer big enough for the engine to report
    download progress (a layer of a few hundred bytes may show only "Download complete")."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        content = f"{text}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime, info.mode = len(content), 0, 0o644
        tar.addfile(info, io.BytesIO(content))
        if filler:
            info = tarfile.TarInfo("filler")
            info.size, info.mtime, info.mode = filler, 0, 0o644
            tar.addfile(info, io.BytesIO(os.urandom(filler)))
    raw = tar_bytes.getvalue()
    layer = gzip.compress(raw, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(raw)]},
            "history": [{"created_by": "gefreg tests"}],
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(layer), "size": len(layer)}],
        },
        sort_keys=True,
    ).encode()
    return TinyImage(layer, config, manifest)
