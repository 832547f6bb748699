"""Running a published version after the record moved on, and images described by themselves.

Real containers (FROM-scratch busybox services) and a real registry: ``rv-evolving`` is
published at 1.0.0, then its record becomes 1.1.0 with another output port and command.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gefreg.cli import cli
from gefreg.engine import Engine
from gefreg.image.interface import ServiceInterface
from gefreg.release.ledger import CatalogLedger, TrustedRelease
from gefreg.run.execute import run_service
from gefreg.run.plan import plan_run
from gefreg.settings import Settings
from tests.helpers import build_tree, busybox_entry, make_catalog, own_run_containers
from tests.registry_fixtures import LocalRegistry

pytestmark = pytest.mark.docker

POLICY = "vulnerability-db-unavailable: warn\n"
PREFIX = "rv-"
V1 = {
    "version": "1.0.0",
    "outputs": [{"name": "result", "path": "/data/out"}],
    "resources": {"memory": "64m"},
    "script": 'echo "v1 $*" > /data/out/version.txt\n',
}
V2 = {
    "version": "1.1.0",
    "outputs": [{"name": "report", "path": "/data/report"}],
    "script": 'echo "v2 $*" > /data/report/version.txt\n',
}


def entry_files(name: str, version: dict[str, Any], **fields: Any) -> dict[str, Any]:
    spec = {k: v for k, v in version.items() if k != "script"}
    inputs = [{"name": "data", "path": "/data/in"}]
    return busybox_entry(name, version["script"], inputs=inputs, **{**spec, **fields})


def gefreg(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n")
    for path in (tmp_path, folder):
        os.chmod(path, 0o755)
    return folder


def _rv_images() -> set[str]:
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}} {{.ID}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return {i for r, i in (line.split() for line in listed) if r.rsplit("/", 1)[-1][:3] == PREFIX}


@pytest.fixture(autouse=True)
def _clean(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Remove what this test made: its runner containers and the rv- images that appeared
    during it (the engine is shared with other test sessions)."""
    before = _rv_images()
    yield
    for container in own_run_containers(engine, tmp_path_factory.getbasetemp()):
        engine.remove_container(container)
    ids = _rv_images() - before
    if ids:
        subprocess.run(["docker", "rmi", "-f", *sorted(ids)], capture_output=True)


@dataclasses.dataclass(frozen=True)
class Moved:
    """rv-evolving: 1.0.0 built and published, then the record moved to 1.1.0 and was built."""

    settings: Settings
    env: dict[str, str]
    old_image: str
    new_image: str
    digest: str

    def opts(self) -> list[str]:
        return ["--catalog", str(self.settings.catalog), "--registry", self.settings.registry]


@pytest.fixture
def moved(tmp_path: Path, fresh_registry: LocalRegistry) -> Moved:
    registry = fresh_registry
    name = "rv-evolving"
    catalog = make_catalog(tmp_path / "catalog", entry_files(name, V1))
    (catalog / "policy.yaml").write_text(POLICY)
    os.chmod(catalog / name / "busybox", 0o755)
    settings = Settings(catalog, registry.address, tmp_path / "state")
    env = {"GEFREG_STATE": str(settings.state_dir)}
    opts = ["--catalog", str(catalog), "--registry", registry.address]
    code, out, err = gefreg(env, "build", *opts, name, "--json")
    assert code == 0, err
    old_image = json.loads(out)["image_id"]
    code, out, err = gefreg(env, "publish", *opts, name, "--json")
    assert code == 0, err
    digest = json.loads(out)["digest"]
    build_tree(catalog, entry_files(name, V2))
    code, out, err = gefreg(env, "build", *opts, name, "--json")
    assert code == 0, err
    return Moved(settings, env, old_image, json.loads(out)["image_id"], digest)


def run(moved: Moved, tmp_path: Path, target: str, out: str, *extra: str) -> tuple[int, Any, str]:
    code, stdout, err = gefreg(
        moved.env,
        "run",
        *moved.opts(),
        target,
        "-i",
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / out),
        "--record",
        str(tmp_path / f"{out}.json"),
        "--json",
        *extra,
    )
    return code, json.loads(stdout) if stdout.strip() else None, err


def test_a_published_version_runs_after_the_record_moved_on(moved: Moved, tmp_path: Path) -> None:
    inputs(tmp_path)
    # NAME@1.0.0 (once refused: "the image is version 1.0.0 but the record says 1.1.0")
    code, record, err = run(moved, tmp_path, "rv-evolving@1.0.0", "o1", "--", "x")
    assert code == 0, err
    assert record["image"]["version"] == "1.0.0" and record["image"]["source"] == "ledger"
    assert record["image"]["image_id"] == moved.old_image
    assert record["service"]["interface"] in ("ledger", "image")
    assert [(m["port"], m["target"]) for m in record["mounts"]] == [
        ("data", "/data/in"),
        ("result", "/data/out"),
    ]
    assert (tmp_path / "o1" / "version.txt").read_text() == "v1 x\n"
    # NAME alone is the newest published release, not the newer build
    code, record, err = run(moved, tmp_path, "rv-evolving", "o2")
    assert code == 0, err
    assert record["image"]["version"] == "1.0.0"
    assert (tmp_path / "o2" / "version.txt").read_text() == "v1 \n"
    # the current build, by version: the record describes it
    code, record, err = run(moved, tmp_path, "rv-evolving@1.1.0", "o3")
    assert code == 0, err
    assert record["service"]["interface"] == "record"
    assert record["image"]["image_id"] == moved.new_image
    assert (tmp_path / "o3" / "version.txt").read_text() == "v2 \n"


def test_the_ledgers_interface_wins(moved: Moved, tmp_path: Path, engine: Engine) -> None:
    """A ledger line that stores the interface (publish does, from the record of its version):
    its limits apply, which the image's labels cannot tell."""
    inputs(tmp_path)
    published = ServiceInterface.from_json(
        {
            "name": "rv-evolving",
            "version": "1.0.0",
            "inputs": [{"name": "data", "path": "/data/in"}],
            "outputs": [{"name": "result", "path": "/data/out"}],
            "command": ["/bin/busybox", "sh", "/opt/run.sh"],
            "user": 10001,
            "resources": {"memory": 64 * 2**20, "cpus": 1.0, "timeout": 600.0, "pids": 256},
            "volatile": [],
        }
    )
    catalog = CatalogLedger(moved.settings)

    class WithInterface:
        def lookup(self, name: str, version: str | None) -> TrustedRelease | None:
            found = catalog.lookup(name, version)
            if found is None:
                return None
            return dataclasses.replace(found, interface=published.to_json())

    request = plan_run(
        moved.settings,
        engine,
        target="rv-evolving@1.0.0",
        inputs=[str(tmp_path / "in")],
        outputs=[str(tmp_path / "out")],
        record=tmp_path / "run.json",
        ledger=WithInterface(),
    )
    result = run_service(request, engine=engine)
    assert result.succeeded, result.error
    assert result.record.service.interface == "ledger"
    assert result.record.limits.resources.memory == 64 * 2**20
    assert (tmp_path / "out" / "version.txt").read_text() == "v1 \n"


def test_an_older_build_by_digest_is_described_by_its_labels(moved: Moved, tmp_path: Path) -> None:
    inputs(tmp_path)
    code, record, err = run(moved, tmp_path, f"rv-evolving@{moved.old_image}", "out")
    assert code == 0, err
    assert record["image"]["trusted"] is True and record["image"]["version"] == "1.0.0"
    assert record["service"]["interface"] == "image"
    assert "using the image's own GEF labels" in err
    assert record["limits"]["memory"] == 2**30  # the defaults: the image does not say
    assert record["command"] == ["/bin/busybox", "sh", "/opt/run.sh"]
    assert (tmp_path / "out" / "version.txt").read_text() == "v1 \n"


def test_entrypoint_and_cmd_as_docker_combines_them(tmp_path: Path) -> None:
    """An image with an ENTRYPOINT: the record's command is the whole program line, and exactly
    that runs (the entrypoint is cleared, not prepended a second time)."""
    name = "rv-entry"
    tree = entry_files(name, {**V1, "script": 'echo "ran $*" > /data/out/args.txt\n'})
    catalog = make_catalog(tmp_path / "catalog", tree)
    (catalog / name / "service.yaml").write_text(
        (catalog / name / "service.yaml")
        .read_text()
        .replace('command: ["/bin/busybox", "sh", "/opt/run.sh"]', 'command: ["/opt/run.sh"]')
        + 'entrypoint: ["/bin/busybox", "sh"]\n'
    )
    os.chmod(catalog / name / "busybox", 0o755)
    env = {"GEFREG_STATE": str(tmp_path / "state")}
    code, out, err = gefreg(env, "build", "--catalog", str(catalog), name, "--json")
    assert code == 0, err
    image = json.loads(out)["image_id"]
    inputs(tmp_path)
    code, out, err = gefreg(
        env, "run", "--image", image, "--allow-untrusted",
        "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
        "--record", str(tmp_path / "run.json"), "--json", "--", "one", "two",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads(out)
    assert record["command"] == ["/bin/busybox", "sh", "/opt/run.sh"]
    assert record["entrypoint"] == [] and record["applied"]["entrypoint"] == []
    assert record["service"]["interface"] == "image"
    assert (tmp_path / "out" / "args.txt").read_text() == "ran one two\n"
    # and reproduce runs the same program line again
    code, out, err = gefreg(env, "reproduce", str(tmp_path / "run.json"), "--allow-untrusted")
    assert code == 0, err
