"""Pytest plugin: a catalog with releases published to a real registry of its own, for the
GEF instance's integration tests (the TES API, the web catalog and the static site).

``tes-sleeper`` sleeps (seconds as its argument) then writes a file; ``fixity-manifest`` is
the shipped entry; ``tes-hostile`` has a description that tries to be HTML (and copies its
input to its output); ``tes-chatty`` prints more than its log limit. Each is built and
published once per session."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tes
from click.testing import CliRunner

from gefreg.cli import cli
from tests.helpers import build_tree, busybox_entry, make_catalog, remove_own_images
from tests.registry_fixtures import LocalRegistry
from tests.serve_helpers import ServerProcess, tokens

SHIPPED = Path(__file__).resolve().parents[1] / "catalog"
SLEEPER = 'sleep "${1:-60}"\necho done > /data/out/done.txt\n'
HOSTILE = '<script>alert("catalog")</script> & <b>bold</b> "quoted" \u2014 a description'
OWN_IMAGES = ("tes-sleeper", "tes-hostile", "tes-chatty")
CHATTY = 5000  # bytes tes-chatty prints; it may keep 1 KiB of them (resources.logs)


def gefreg(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


@dataclass
class Instance:
    root: Path
    catalog: Path
    registry: str
    env: dict[str, str]
    data: Path
    token_file: Path
    tokens: dict[str, str]
    digests: dict[str, str]

    def server(self, name: str, workers: int = 2, *extra: str) -> ServerProcess:
        home = self.root / f"home-{name}"
        args = [
            "--tokens", str(self.token_file), "--data-root", str(self.data),
            "--workers", str(workers), "--home", str(home),
            "--catalog", str(self.catalog), "--registry", self.registry, *extra,
        ]  # fmt: skip
        return ServerProcess(args, self.env, self.root / f"serve-{name}.log")

    def client(self, server: ServerProcess, who: str = "writer") -> tes.HTTPClient:
        return tes.HTTPClient(server.url, token=self.tokens[who], timeout=30)

    def opts(self) -> list[str]:
        return ["--catalog", str(self.catalog), "--registry", self.registry]

    def run_ids(self) -> list[str]:
        """Every run id the servers of this instance recorded."""
        import sqlite3

        found = []
        for database in self.root.glob("home-*/tasks.sqlite"):
            with sqlite3.connect(database) as db:
                for (log,) in db.execute("SELECT log FROM tasks"):
                    found += [e["run_id"] for e in json.loads(log).get("executors") or []]
        return found


def open_up(path: Path) -> None:
    for current, _dirs, files in os.walk(path):
        os.chmod(current, 0o755)
        for name in files:
            os.chmod(os.path.join(current, name), 0o644)


def _catalog(root: Path) -> Path:
    entries = busybox_entry(
        "tes-sleeper",
        SLEEPER,
        inputs=[{"name": "data", "path": "/data/in"}],
        outputs=[{"name": "out", "path": "/data/out"}],
        resources={"memory": "64m", "timeout": "5m"},
    )
    entries |= busybox_entry(
        "tes-hostile",
        "cp -r /data/in/. /data/out/\n",
        description=HOSTILE,
        source="https://example.org/hostile?a=<b>",
        inputs=[{"name": "data", "path": "/data/in"}],
        outputs=[{"name": "out", "path": "/data/out"}],
    )
    entries |= busybox_entry(
        "tes-chatty",
        f"yes chatter | head -c {CHATTY}\necho done > /data/out/ok.txt\n",
        inputs=[{"name": "data", "path": "/data/in"}],
        outputs=[{"name": "out", "path": "/data/out"}],
        resources={"logs": "1k"},
    )
    catalog = make_catalog(root / "catalog", entries)
    for name in OWN_IMAGES:
        os.chmod(catalog / name / "busybox", 0o755)
    shutil.copytree(SHIPPED / "fixity-manifest", catalog / "fixity-manifest")
    (catalog / "policy.yaml").write_text("vulnerability-db-unavailable: warn\n")
    return catalog


@pytest.fixture(scope="session")
def tes_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    from gefreg.engine import engine_answers

    if not engine_answers():
        pytest.skip("no Docker engine")  # the docker marker turns this into a failure in CI
    root = tmp_path_factory.mktemp("tes")
    os.chmod(root, 0o755)
    # Its own registry: the shipped fixity-manifest is published here too, and the session
    # registry belongs to the tests that publish the shipped catalog themselves.
    registry = LocalRegistry(root / "registry")
    registry.root.mkdir()
    registry.start()
    try:
        yield from _instance(root, registry)
    finally:
        registry.kill()


def _instance(root: Path, registry: LocalRegistry) -> Iterator[Instance]:
    from gefreg.engine import Engine
    from gefreg.run.hardening import RUN_LABEL

    catalog = _catalog(root)
    env = {"GEFREG_STATE": str(root / "state")}
    opts = ["--catalog", str(catalog), "--registry", registry.address]
    digests = {}
    for name in ("fixity-manifest", *OWN_IMAGES):
        code, out, err = gefreg(env, "build", *opts, name, "--json")
        assert code == 0, err
        code, out, err = gefreg(env, "publish", *opts, name, "--json")
        assert code == 0, err
        published = json.loads(out)
        digests[name] = (published[0] if isinstance(published, list) else published)["digest"]
    collection = {"a.txt": "alpha\n", "sub": {"b.txt": "beta\n"}}
    data = build_tree(root / "data", {"collection": collection})
    open_up(data)
    token_file = root / "tokens.jsonl"
    made = tokens(token_file, writer={}, reader={"read_only": True})
    instance = Instance(root, catalog, registry.address, env, data, token_file, made, digests)
    yield instance
    engine = Engine.connect()
    for run_id in instance.run_ids():
        for container in engine.container_ids(f"{RUN_LABEL}={run_id}"):
            engine.remove_container(container)
    # what this instance built (its catalog's namespace) and pulled (from its own registry)
    remove_own_images([catalog], [f"{registry.address}/"])
