"""The GEF instance and signed releases (catalog/trust.yaml): a release signed by a trusted
key runs and its page says who signed it; once the catalog requires signatures, an unsigned
release is refused at submission (400, naming the check) and its page says it will not run."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import busybox_entry, make_catalog
from tests.integration.test_publish import removing_test_images
from tests.registry_fixtures import LocalRegistry
from tests.serve_fixtures import gefreg, open_up
from tests.serve_helpers import ServerProcess, tokens

pytestmark = pytest.mark.docker

NAME = "tes-signed"
PASSWORD = {"GEFREG_SIGNING_PASSWORD": "tes signing test"}


@pytest.fixture(autouse=True)
def _remove_images(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    """The images this test built and published, and only these (the engine is shared)."""
    yield from removing_test_images(tmp_path, request, NAME)


def test_signed_releases_run_unsigned_ones_are_refused_once_signatures_are_required(
    fresh_registry: LocalRegistry, tmp_path: Path
) -> None:
    os.chmod(tmp_path, 0o755)
    entry = busybox_entry(
        NAME,
        'sleep "${1:-0}"\ncp -r /data/in/. /data/out/\n',  # an argument: seconds to wait first
        inputs=[{"name": "data", "path": "/data/in"}],
        outputs=[{"name": "out", "path": "/data/out"}],
    )
    catalog = make_catalog(tmp_path / "catalog", entry)
    os.chmod(catalog / NAME / "busybox", 0o755)
    (catalog / "policy.yaml").write_text("vulnerability-db-unavailable: warn\n")
    env = {"GEFREG_STATE": str(tmp_path / "state"), **PASSWORD}
    opts = ["--catalog", str(catalog), "--registry", fresh_registry.address]

    def run(*args: str) -> str:
        code, out, err = gefreg(env, *args)
        assert code == 0, err
        return out

    run("key", "generate", str(tmp_path / "keys"))
    run("trust", "add", str(tmp_path / "keys" / "gefreg.pub"), "--id", "curators", *opts)
    run("build", *opts, NAME)
    signed = run(
        "publish", *opts, NAME, "--sign-key", str(tmp_path / "keys" / "gefreg.key"), "--json"
    )
    digests = {"1.0.0": json.loads(signed)["digest"]}
    record = catalog / NAME / "service.yaml"
    record.write_text(record.read_text().replace('"1.0.0"', '"1.0.1"'))
    run("build", *opts, NAME)
    run("publish", *opts, NAME)  # unsigned: allowed while signatures are not required
    trust = catalog / "trust.yaml"
    trust.write_text(
        trust.read_text().replace("require-signatures: false", "require-signatures: true")
    )

    data = tmp_path / "data"
    (data / "in").mkdir(parents=True)
    (data / "in" / "x.txt").write_text("x\n")
    open_up(data)
    made = tokens(tmp_path / "tokens.jsonl", writer={})
    args = ["--tokens", str(tmp_path / "tokens.jsonl"), "--data-root", str(data), *opts,
            "--home", str(tmp_path / "home")]  # fmt: skip
    server = ServerProcess(args, env, tmp_path / "serve.log")
    server.start()
    try:
        headers = {"Authorization": f"Bearer {made['writer']}"}
        api = f"{server.url}/ga4gh/tes/v1/tasks"

        def task(version: str, out: str = "", wait: int = 0) -> dict[str, object]:
            folder = {"type": "DIRECTORY"}
            command = ["/bin/busybox", "sh", "/opt/run.sh", str(wait)] if wait else []
            destination = (data / (out or version)).as_uri()
            return {
                "executors": [{"image": f"{NAME}@{version}", "command": command}],
                "inputs": [{"url": (data / "in").as_uri(), "path": "/data/in", **folder}],
                "outputs": [{"url": destination, "path": "/data/out", **folder}],
            }

        def state_of(task_id: str) -> str:
            answer = requests.get(f"{api}/{task_id}", headers=headers, timeout=10)
            return str(answer.json()["state"])

        refused = requests.post(api, json=task("1.0.1"), headers=headers, timeout=30)
        assert refused.status_code == 400, refused.text
        assert (
            "is not signed" in refused.json()["msg"]
            and "requires signatures" in refused.json()["msg"]
        )
        accepted = requests.post(api, json=task("1.0.0"), headers=headers, timeout=30)
        assert accepted.status_code == 200, accepted.text
        task_id = accepted.json()["id"]
        deadline = time.monotonic() + 60
        while True:
            state = requests.get(f"{api}/{task_id}", headers=headers, timeout=10).json()["state"]
            if state not in ("QUEUED", "INITIALIZING", "RUNNING"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert state == "COMPLETE"
        assert (data / "1.0.0" / "x.txt").read_text() == "x\n"
        signed = requests.get(f"{server.url}/entries/{NAME}/1.0.0/", timeout=30).text
        assert "signed by curators" in signed
        unsigned = requests.get(f"{server.url}/entries/{NAME}/1.0.1/", timeout=30).text
        assert "unsigned — this catalog requires signatures" in unsigned
        records = requests.get(f"{api}/{task_id}/record", headers=headers, timeout=10).json()
        assert records[0]["image"]["manifest_digest"] == digests["1.0.0"]

        # a task queued before the yank does not run after it (one worker, kept busy): the
        # trust decision is made again right before the run
        busy = requests.post(api, json=task("1.0.0", "busy", 60), headers=headers, timeout=30)
        queued = requests.post(api, json=task("1.0.0", "queued"), headers=headers, timeout=30)
        busy_id, queued_id = busy.json()["id"], queued.json()["id"]
        while state_of(busy_id) != "RUNNING":
            assert time.monotonic() < deadline + 60
            time.sleep(0.2)
        assert state_of(queued_id) == "QUEUED"
        # a yanked release no longer runs, and the catalog says why
        run("yank", *opts, f"{NAME}@1.0.0", "--reason", "wrong results for empty folders")
        requests.post(f"{api}/{busy_id}:cancel", headers=headers, timeout=10)
        while state_of(queued_id) in ("QUEUED", "INITIALIZING", "RUNNING"):
            assert time.monotonic() < deadline + 120
            time.sleep(0.2)
        late = requests.get(f"{api}/{queued_id}?view=FULL", headers=headers, timeout=10).json()
        assert late["state"] == "SYSTEM_ERROR", late
        assert any("was yanked" in line for line in late["logs"][0]["system_logs"]), late
        assert not (data / "queued").exists()
        yanked = requests.post(api, json=task("1.0.0"), headers=headers, timeout=30)
        assert yanked.status_code == 400
        assert "was yanked" in yanked.json()["msg"] and "empty folders" in yanked.json()["msg"]
        page = requests.get(f"{server.url}/entries/{NAME}/", timeout=30).text
        assert "yes: wrong results for empty folders" in page
        assert "<strong>yanked</strong> 1.0.0" in page  # the ledger history shows the yank line
    finally:
        server.stop()
