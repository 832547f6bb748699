"""The TES API without an engine: admission, auth, views, pages, cancel of queued tasks.
Tasks stay queued (no workers); releases come from a ledger line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gefreg.serve.app import create_app
from tests.serve_helpers import (
    COMMAND,
    DIGEST,
    OTHER_DIGEST,
    REGISTRY,
    NoImagesEngine,
    published_catalog,
    serve_config,
    task,
    tokens,
)

API = "/ga4gh/tes/v1"


class Env:
    def __init__(self, tmp_path: Path, **extra: Any) -> None:
        self.settings = published_catalog(tmp_path)
        self.data = tmp_path / "data"
        (self.data / "in").mkdir(parents=True)
        (self.data / "in" / "a.txt").write_text("alpha\n")
        self.token_file = tmp_path / "tokens.jsonl"
        self.tokens = tokens(
            self.token_file,
            writer={},
            reader={"read_only": True},
            other={"owner": "someone-else"},
        )
        config = serve_config(self.settings, self.token_file, self.data, **extra)
        app = create_app(config, start_workers=False, engine_factory=NoImagesEngine)  # type: ignore[arg-type]
        self.client = TestClient(app)

    def headers(self, who: str = "writer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def create(self, body: dict[str, Any], who: str = "writer") -> Any:
        return self.client.post(f"{API}/tasks", json=body, headers=self.headers(who))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    with e.client:
        yield e


def test_service_info_is_public_and_says_tes_1_1(env: Env) -> None:
    r = env.client.get(f"{API}/service-info")
    assert r.status_code == 200
    info = r.json()
    assert info["type"] == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}
    assert info["storage"] == [env.data.resolve().as_uri()]
    assert {"id", "name", "organization", "version"} <= set(info)


def test_no_token_is_401_and_a_read_only_token_cannot_create(env: Env) -> None:
    r = env.client.post(f"{API}/tasks", json=task())
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert env.client.get(f"{API}/tasks").status_code == 401
    bad = {"Authorization": "Bearer gefreg_not-a-token"}
    assert env.client.get(f"{API}/tasks", headers=bad).status_code == 401
    r = env.create(task(), who="reader")
    assert r.status_code == 403 and "read-only" in r.json()["msg"]
    assert env.client.get(f"{API}/tasks", headers=env.headers("reader")).status_code == 200


def test_a_release_is_admitted_and_shown_in_each_view(env: Env) -> None:
    body = task(
        inputs=[
            {"url": (env.data / "in").as_uri(), "path": "/data/input", "type": "DIRECTORY"},
            {"content": "hello", "path": "/data/notes"},
        ],
        outputs=[{"url": (env.data / "out").as_uri(), "path": "/data/output", "type": "DIRECTORY"}],
        tags={"project": "p1"},
    )
    r = env.create(body)
    assert r.status_code == 200, r.text
    task_id = r.json()["id"]
    minimal = env.client.get(f"{API}/tasks/{task_id}", headers=env.headers()).json()
    assert minimal == {"id": task_id, "state": "QUEUED"}
    basic = env.client.get(
        f"{API}/tasks/{task_id}", params={"view": "BASIC"}, headers=env.headers()
    ).json()
    assert basic["executors"][0]["image"] == "tes-demo@1.0.0"
    assert "content" not in basic["inputs"][1] and basic["tags"] == {"project": "p1"}
    full = env.client.get(
        f"{API}/tasks/{task_id}", params={"view": "FULL"}, headers=env.headers()
    ).json()
    assert full["inputs"][1]["content"] == "hello" and full["creation_time"]
    plan = env.client.app.state.gefreg.store.get(task_id).plan  # type: ignore[attr-defined]
    assert plan["inputs"][0]["in_place"] is True  # a data-root folder filling a port
    assert plan["inputs"][1]["rel"] == "notes.txt"  # the port's GEF filename
    assert plan["executors"][0]["digest"] == DIGEST


def test_digest_references_must_be_ledger_releases_of_the_configured_registry(env: Env) -> None:
    ok = env.create(task(executors=[{"image": f"{REGISTRY}/tes-demo@{DIGEST}", "command": []}]))
    assert ok.status_code == 200, ok.text
    for image, reason in (
        ("tes-demo", "not a pinned catalog release"),
        ("tes-demo:1.0.0", "not a pinned catalog release"),
        ("busybox@1.0.0", "not a catalog entry"),
        ("tes-demo@9.9.9", "tes-demo 9.9.9"),
        (f"{REGISTRY}/tes-demo@{OTHER_DIGEST}", "no release of tes-demo has the digest"),
        (f"evil.example.org/tes-demo@{DIGEST}", f"releases of {REGISTRY} only"),
        (f"tes-demo@{DIGEST}", "a digest needs its registry"),
        # lookalikes of the release: each names something else, and is refused as such
        ("t\u0435s-demo@1.0.0", "not a catalog entry"),  # a Cyrillic e
        ("TES-demo@1.0.0", "not a catalog entry"),
        ("tes-demo@1.0.0\n", "is not a version"),
        ("tes-demo@1.0.0 ", "is not a version"),
        ("tes-demo@v1.0.0", "not a published release"),
        ("tes-demo@1.0", "not a published release"),
        ("tes-demo@latest", "not a published release"),
        ("../tes-demo@1.0.0", "sha256:<64 hex digits>"),
        ("policy.yaml@1.0.0", "not a catalog entry"),
        (f"localhost:5999/tes-demo@{DIGEST}", f"releases of {REGISTRY} only"),
        (f"{REGISTRY}/library/tes-demo@{DIGEST}", f"releases of {REGISTRY} only"),
        (f"{REGISTRY}/tes-demo:1.0.0@{DIGEST}", "not a catalog entry"),
        (f"{REGISTRY}/tes-demo@{DIGEST.upper()}", "sha256:<64 hex digits>"),
        (f"{REGISTRY}/tes-demo@{DIGEST}\n", "sha256:<64 hex digits>"),
    ):
        r = env.create(task(executors=[{"image": image, "command": []}]))
        assert r.status_code == 400, (image, r.text)
        assert reason in r.json()["msg"], (image, r.json())


def test_commands_add_arguments_only_after_the_releases_command(env: Env) -> None:
    good = task(executors=[{"image": "tes-demo@1.0.0", "command": [*COMMAND, "--fast"]}])
    assert env.create(good).status_code == 200
    plan = env.client.app.state.gefreg.store.page  # type: ignore[attr-defined]
    assert plan
    for executor, field in (
        ({"command": ["/bin/sh", "-c", "cat /etc/shadow"]}, "command"),
        ({"command": [], "env": {"A": "1"}}, "env"),
        ({"command": [], "workdir": "/tmp"}, "workdir"),
        ({"command": [], "stdin": "/data/input/a"}, "stdin"),
        ({"command": [], "stdout": "/tmp/out.log"}, "stdout"),
    ):
        r = env.create(task(executors=[{"image": "tes-demo@1.0.0", **executor}]))
        assert r.status_code == 400 and f".{field}" in r.json()["msg"], r.text
    r = env.create(task(volumes=["/vol/a"]))
    assert r.status_code == 400 and "volumes" in r.json()["msg"]


def test_local_data_outside_the_data_roots_is_forbidden(env: Env, tmp_path: Path) -> None:
    (env.data / "escape").symlink_to("/etc")
    for url in ("file:///etc", "/etc/passwd", (env.data / "escape").as_uri(), "file://host/x"):
        r = env.create(task(inputs=[{"url": url, "path": "/data/input/x"}]))
        assert r.status_code in (400, 403), r.text
        if url != "file://host/x":
            assert r.status_code == 403 and "not under a data root" in r.json()["msg"]
    r = env.create(
        task(outputs=[{"url": "file:///tmp/out", "path": "/data/output", "type": "DIRECTORY"}])
    )
    assert r.status_code == 403
    r = env.create(
        task(outputs=[{"url": (env.data / "escape" / "new").as_uri(), "path": "/data/output/a"}])
    )
    assert r.status_code == 403 and "not under a data root" in r.json()["msg"], r.text
    (env.data / "taken.txt").write_text("mine")
    r = env.create(
        task(outputs=[{"url": (env.data / "taken.txt").as_uri(), "path": "/data/output/a"}])
    )
    assert r.status_code == 400 and "never overwrite" in r.json()["msg"]
    r = env.create(
        task(outputs=[{"url": (env.data / "taken.txt" / "x").as_uri(), "path": "/data/output/a"}])
    )
    assert r.status_code == 400 and "taken.txt is not a folder" in r.json()["msg"], r.text
    for url in (f"{env.data.as_uri()}/in/../../etc", f"{env.data.as_uri()}/%2e%2e/x"):
        r = env.create(task(inputs=[{"url": url, "path": "/data/input/x"}]))
        assert r.status_code == 403 and "not under a data root" in r.json()["msg"], r.text
    r = env.create(task(outputs=[{"url": "s3://bucket/x", "path": "/data/output/a"}]))
    assert r.status_code == 400


def test_paths_must_be_inside_the_releases_ports(env: Env) -> None:
    cases = [
        {"inputs": [{"content": "x", "path": "/etc/x"}]},
        {"inputs": [{"content": "x", "path": "/data/input/../../etc/x"}]},
        {"inputs": [{"content": "x", "path": "/data/input"}]},  # a file cannot be the folder
        {"inputs": [{"url": "ftp://example.org/x", "path": "/data/input/x"}]},
        {"outputs": [{"url": (env.data / "o").as_uri(), "path": "/data/input/x"}]},
        {"outputs": [{"url": (env.data / "o").as_uri(), "path": "/data/output/*.txt"}]},
        {"inputs": [{"url": "http://127.0.0.1:1/x", "path": "/data/input/x"}]},  # own network
    ]
    for fields in cases:
        r = env.create(task(**fields))
        assert r.status_code in (400, 403), (fields, r.text)


def test_resources_become_limits_within_bounds(env: Env) -> None:
    ok = env.create(task(resources={"cpu_cores": 2, "ram_gb": 0.5, "disk_gb": 1}))
    assert ok.status_code == 200
    plan = env.client.app.state.gefreg.store.get(ok.json()["id"]).plan  # type: ignore[attr-defined]
    assert (plan["cpus"], plan["memory"], plan["disk"]) == (2.0, 512 * 1024**2, 1024**3)
    for resources in ({"cpu_cores": 0}, {"ram_gb": 0.0001}, {"disk_gb": -1}):
        assert env.create(task(resources=resources)).status_code == 400
    strict = {"backend_parameters": {"VmSize": "x"}, "backend_parameters_strict": True}
    assert env.create(task(resources=strict)).status_code == 400
    lax = env.create(task(resources={"backend_parameters": {"VmSize": "x"}}))
    doc = env.client.get(
        f"{API}/tasks/{lax.json()['id']}", params={"view": "FULL"}, headers=env.headers()
    ).json()
    assert "backend_parameters" not in doc["resources"]  # unsupported keys are not stored


def test_list_filters_and_pages(env: Env) -> None:
    ids = [env.create(task(name=f"run-{i}", tags={"n": str(i % 2)})).json()["id"] for i in range(5)]
    seen, token = [], None
    while True:
        params: dict[str, Any] = {"page_size": 2}
        if token:
            params["page_token"] = token
        page = env.client.get(f"{API}/tasks", params=params, headers=env.headers()).json()
        seen += [t["id"] for t in page["tasks"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == list(reversed(ids))  # newest first, each once
    r = env.client.get(
        f"{API}/tasks", params={"tag_key": "n", "tag_value": "1"}, headers=env.headers()
    )
    assert [t["id"] for t in r.json()["tasks"]] == [ids[3], ids[1]]
    r = env.client.get(f"{API}/tasks", params={"name_prefix": "run-4"}, headers=env.headers())
    assert [t["id"] for t in r.json()["tasks"]] == [ids[4]]
    r = env.client.get(f"{API}/tasks", params={"state": "RUNNING"}, headers=env.headers())
    assert r.json()["tasks"] == []
    many: dict[str, Any] = {"tag_key": ["n"] * 1500}  # fits in a request line
    for params in ({"page_size": 0}, {"page_size": 5000}, {"page_token": "x"}, {"view": "X"}, many):
        assert (
            env.client.get(f"{API}/tasks", params=params, headers=env.headers()).status_code == 400
        )


def test_owners_see_only_their_tasks_and_cancel_queued_ones(env: Env) -> None:
    task_id = env.create(task()).json()["id"]
    assert env.client.get(f"{API}/tasks/{task_id}", headers=env.headers("other")).status_code == 404
    listed = env.client.get(f"{API}/tasks", headers=env.headers("other")).json()
    assert listed["tasks"] == []
    r = env.client.post(f"{API}/tasks/{task_id}:cancel", headers=env.headers("other"))
    assert r.status_code == 404
    r = env.client.post(f"{API}/tasks/{task_id}:cancel", headers=env.headers("reader"))
    assert r.status_code in (403, 404)
    r = env.client.post(f"{API}/tasks/{task_id}:cancel", headers=env.headers())
    assert r.status_code == 200 and r.json() == {}
    state = env.client.get(f"{API}/tasks/{task_id}", headers=env.headers()).json()["state"]
    assert state == "CANCELED"


def test_bad_bodies_are_400_and_huge_ones_413(env: Env) -> None:
    r = env.client.post(f"{API}/tasks", content=b"{not json", headers=env.headers())
    assert r.status_code == 400
    r = env.create({"executors": [{"image": "tes-demo@1.0.0"}]})
    assert r.status_code == 400 and "command" in r.json()["msg"]
    big = {"executors": [], "description": "x" * (9 * 1024 * 1024)}
    assert env.create(big).status_code == 413


def _chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_chunked_body_is_held_to_the_same_cap(env: Env) -> None:
    """No Content-Length (chunked transfer): counted as it arrives, refused past the cap —
    anonymous or not — and a small chunked task is still accepted."""
    big = json.dumps({"executors": [], "description": "x" * (9 * 1024 * 1024)}).encode()
    for headers in ({}, env.headers()):
        r = env.client.post(f"{API}/tasks", content=_chunks(big), headers=headers)
        assert r.status_code == 413 and "larger than" in r.json()["msg"], r.text[:200]
    small = json.dumps(task()).encode()
    headers = {**env.headers(), "Content-Type": "application/json"}
    r = env.client.post(f"{API}/tasks", content=_chunks(small, 16), headers=headers)
    assert r.status_code == 200 and r.json()["id"].startswith("task-"), r.text


def test_the_token_file_holds_hashes_only(env: Env) -> None:
    text = env.token_file.read_text()
    for value in env.tokens.values():
        assert value not in text
    assert oct(os.stat(env.token_file).st_mode & 0o777) == "0o600"


def test_a_full_list_carries_a_bounded_part_of_each_log(env: Env, tmp_path: Path) -> None:
    """GET /tasks?view=FULL cuts each executor log at 64 KiB and says where the rest is; the
    task itself carries it whole (up to 64 MiB); the runner's note comes along either way."""
    task_id = env.create(task()).json()["id"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "out.log").write_bytes(b"o" * 100_000)
    (run / "err.log").write_bytes(b"e" * 10)
    entry = {
        "started": True, "exit_code": 0, "record": str(run / "missing.json"),
        "stdout_log": str(run / "out.log"), "stderr_log": str(run / "err.log"),
        "notes": {"stdout": "truncated: 5 bytes dropped", "stderr": None},
    }  # fmt: skip
    env.client.app.state.gefreg.store.update_log(task_id, {"executors": [entry]})  # type: ignore[attr-defined]
    listed = env.client.get(f"{API}/tasks", params={"view": "FULL"}, headers=env.headers())
    [shown] = [t for t in listed.json()["tasks"] if t["id"] == task_id]
    log = shown["logs"][0]["logs"][0]
    assert log["stdout"].startswith("o" * 65536 + "\n[gefreg: 34464 more bytes not shown; GET")
    assert log["stdout"].endswith("[gefreg: truncated: 5 bytes dropped]\n")
    assert log["stderr"] == "e" * 10
    one = env.client.get(f"{API}/tasks/{task_id}", params={"view": "FULL"}, headers=env.headers())
    whole = one.json()["logs"][0]["logs"][0]["stdout"]
    assert whole == "o" * 100_000 + "\n[gefreg: truncated: 5 bytes dropped]\n"


def test_an_owner_may_have_only_so_many_unfinished_tasks(tmp_path: Path) -> None:
    """--max-unfinished: past it a writer is told 429 (why, and what to do); other owners are
    not held up; a task that ends makes room."""
    env = Env(tmp_path, max_unfinished=2)
    with env.client:
        first, _ = (env.create(task()).json()["id"] for _ in range(2))
        refused = env.create(task())
        assert refused.status_code == 429, refused.text
        assert "2 tasks queued or running" in refused.json()["msg"]
        assert env.create(task(), who="other").status_code == 200
        env.client.post(f"{API}/tasks/{first}:cancel", headers=env.headers())
        assert env.create(task()).status_code == 200
