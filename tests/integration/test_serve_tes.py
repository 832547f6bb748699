"""The GEF instance for real: `gefreg serve` as its own process, the independent py-tes client,
releases published to the session's real registry, containers in the real engine.

`fixity-manifest` (shipped) and `tes-sleeper` (sleeps, then writes a file) are built and
published once per session (tests/serve_fixtures.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import tes

from gefreg.engine import Engine
from gefreg.run.hardening import RUN_LABEL
from tests.serve_fixtures import CHATTY, Instance, gefreg
from tests.serve_helpers import ServerProcess

pytestmark = pytest.mark.docker

FINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}


@pytest.fixture
def instance(tes_instance: Instance) -> Instance:
    return tes_instance


@pytest.fixture(scope="module")
def server(tes_instance: Instance) -> Iterator[ServerProcess]:
    proc = tes_instance.server("main")
    proc.start()
    yield proc
    proc.stop()


def fixity_task(instance: Instance, out: str, name: str = "fixity") -> tes.Task:
    return tes.Task(
        name=name,
        inputs=[
            tes.Input(
                url=(instance.data / "collection").as_uri(),
                path="/data/collection",
                type="DIRECTORY",
            )
        ],
        outputs=[
            tes.Output(
                url=(instance.data / out).as_uri(), path="/data/manifest", type="DIRECTORY"
            )
        ],
        executors=[
            tes.Executor(
                image="fixity-manifest@1.0.0",
                command=["/bin/busybox", "sh", "/opt/fixity/fixity.sh", "/data/collection",
                         "/data/manifest"],
            )
        ],
    )  # fmt: skip


def sleeper_task(seconds: int) -> tes.Task:
    return tes.Task(
        name="sleeper",
        executors=[
            tes.Executor(
                image="tes-sleeper@1.0.0",
                command=["/bin/busybox", "sh", "/opt/run.sh", str(seconds)],
            )
        ],
    )


def wait_state(client: tes.HTTPClient, task_id: str, states: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = client.get_task(task_id, "MINIMAL").state
        if state in states:
            return str(state)
        assert time.monotonic() < deadline, f"{task_id} still {state}"
        time.sleep(0.2)


def files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def fetch_records(server: ServerProcess, token: str, task_id: str) -> list[dict[str, Any]]:
    r = requests.get(
        f"{server.url}/ga4gh/tes/v1/tasks/{task_id}/record",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    r.raise_for_status()
    records: list[dict[str, Any]] = r.json()
    return records


def test_py_tes_runs_a_release_and_its_outputs_equal_gefreg_runs(
    instance: Instance, server: ServerProcess
) -> None:
    client = instance.client(server)
    info = client.get_service_info()
    assert info.type["artifact"] == "tes" and info.type["version"] == "1.1.0"
    task_id = client.create_task(fixity_task(instance, "manifest-tes"))
    assert wait_state(client, task_id, FINAL) == "COMPLETE", client.get_task(task_id, "FULL")
    full = client.get_task(task_id, "FULL")
    log = full.logs[0]
    assert [e.exit_code for e in log.logs] == [0]
    delivered = {o.path: int(o.size_bytes) for o in log.outputs}
    assert "/data/manifest/manifest-sha256.txt" in delivered

    code, _out, err = gefreg(
        instance.env,
        "run", "fixity-manifest@1.0.0", "--catalog", str(instance.catalog),
        "--registry", instance.registry,
        "-i", str(instance.data / "collection"), "-o", str(instance.root / "manifest-cli"),
        "--record", str(instance.root / "cli-run.json"),
    )  # fmt: skip
    assert code == 0, err
    assert files(instance.data / "manifest-tes") == files(instance.root / "manifest-cli")
    assert files(instance.data / "manifest-tes")  # not two empty folders

    [record] = fetch_records(server, instance.tokens["writer"], task_id)
    assert record["status"] == "succeeded"
    assert record["image"]["manifest_digest"] == instance.digests["fixity-manifest"]
    assert record["hardening"]["network"] == "none"
    assert log.metadata["run_record.0"].endswith(f"/tasks/{task_id}/record?executor=0")
    # the same inputs, the same image: the run records agree on what went in
    cli = json.loads((instance.root / "cli-run.json").read_text())
    assert (
        record["inputs"]["collection"]["manifest"]["root"]
        == (cli["inputs"]["collection"]["manifest"]["root"])
    )


def test_each_executor_runs_its_release_and_has_its_own_run_record(
    instance: Instance, server: ServerProcess
) -> None:
    """Two executors, two releases: each gets the inputs on its ports, writes its outputs,
    and has a run record of its own (linked from the task, and by number)."""
    client = instance.client(server)
    job = fixity_task(instance, "two-manifest", name="two")
    job.inputs.append(tes.Input(content="copied\n", path="/data/in/note.txt"))
    job.outputs.append(
        tes.Output(url=(instance.data / "two-copy").as_uri(), path="/data/out", type="DIRECTORY")
    )
    job.executors.insert(0, tes.Executor(image="tes-hostile@1.0.0", command=[]))
    task_id = client.create_task(job)
    assert wait_state(client, task_id, FINAL) == "COMPLETE", client.get_task(task_id, "FULL")
    log = client.get_task(task_id, "FULL").logs[0]
    assert [e.exit_code for e in log.logs] == [0, 0]
    assert files(instance.data / "two-copy") == {"note.txt": b"copied\n"}
    assert "manifest-sha256.txt" in files(instance.data / "two-manifest")
    records = fetch_records(server, instance.tokens["writer"], task_id)
    assert [r["image"]["manifest_digest"] for r in records] == [
        instance.digests["tes-hostile"],
        instance.digests["fixity-manifest"],
    ]
    assert len({r["id"] for r in records}) == 2
    for number, record in enumerate(records):
        link = log.metadata[f"run_record.{number}"]
        assert link.endswith(f"/tasks/{task_id}/record?executor={number}")
        one = requests.get(
            server.url + link,
            headers={"Authorization": f"Bearer {instance.tokens['writer']}"},
            timeout=10,
        )
        assert one.json()["id"] == record["id"]


def test_cancel_stops_the_container(instance: Instance, server: ServerProcess) -> None:
    client = instance.client(server)
    task_id = client.create_task(sleeper_task(120))
    wait_state(client, task_id, {"RUNNING"})
    deadline = time.monotonic() + 30
    while not (records := fetch_records(server, instance.tokens["writer"], task_id)):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    run_id = records[0]["id"]
    assert records[0]["args"] == ["120"]  # what the executor added to the release's command
    engine = Engine.connect()
    while not engine.container_ids(f"{RUN_LABEL}={run_id}"):
        assert time.monotonic() < deadline, "the container never appeared"
        time.sleep(0.1)
    started = time.monotonic()
    client.cancel_task(task_id)
    assert wait_state(client, task_id, FINAL, timeout=60) == "CANCELED"
    assert time.monotonic() - started < 30  # not the 120 s the service wanted
    assert engine.container_ids(f"{RUN_LABEL}={run_id}") == []
    logs = client.get_task(task_id, "FULL").logs[0].system_logs
    assert any("canceled by its owner" in line for line in logs), logs


def test_workers_run_that_many_tasks_side_by_side(
    instance: Instance, server: ServerProcess
) -> None:
    """The module's server has --workers 2: two sleepers run at once, a third waits."""
    client = instance.client(server)
    ids = [client.create_task(sleeper_task(120)) for _ in range(3)]
    try:
        deadline = time.monotonic() + 60
        while (states := [client.get_task(i, "MINIMAL").state for i in ids])[:2] != [
            "RUNNING",
            "RUNNING",
        ]:
            assert time.monotonic() < deadline, states
            time.sleep(0.2)
        time.sleep(1)  # a free worker would have taken the third by now
        assert client.get_task(ids[2], "MINIMAL").state == "QUEUED"
    finally:
        for task_id in reversed(ids):
            client.cancel_task(task_id)
    assert {wait_state(client, i, FINAL, timeout=60) for i in ids} == {"CANCELED"}


def test_refusals_through_py_tes(instance: Instance, server: ServerProcess) -> None:
    client = instance.client(server)
    outsider = tes.Task(executors=[tes.Executor(image="busybox:latest", command=["true"])])
    with pytest.raises(requests.HTTPError) as caught:
        client.create_task(outsider)
    assert caught.value.response.status_code == 400
    assert "not a pinned catalog release" in caught.value.response.json()["msg"]
    etc = fixity_task(instance, "never")
    etc.inputs[0].url = "file:///etc"
    with pytest.raises(requests.HTTPError) as caught:
        client.create_task(etc)
    assert caught.value.response.status_code == 403
    anonymous = tes.HTTPClient(server.url, timeout=10)
    with pytest.raises(requests.HTTPError) as caught:
        anonymous.create_task(fixity_task(instance, "never"))
    assert caught.value.response.status_code == 401
    with pytest.raises(requests.HTTPError) as caught:
        instance.client(server, "reader").create_task(fixity_task(instance, "never"))
    assert caught.value.response.status_code == 403
    assert not (instance.data / "never").exists()
    assert instance.client(server, "reader").list_tasks().tasks is not None
    # a body without Content-Length (chunked) is counted as it arrives: 413 past 8 MiB
    chunks = (b"[" * 65536 for _ in range(200))  # 13 MiB, never all sent
    huge = requests.post(f"{server.url}/ga4gh/tes/v1/tasks", data=chunks, timeout=30)
    assert huge.status_code == 413, huge.text[:200]


def test_a_server_killed_mid_task_recovers(instance: Instance) -> None:
    proc = instance.server("crash", workers=1)
    proc.start()
    try:
        client = instance.client(proc)
        sleeping = client.create_task(sleeper_task(300))
        queued = [client.create_task(fixity_task(instance, f"after-crash-{i}")) for i in range(2)]
        wait_state(client, sleeping, {"RUNNING"})
        deadline = time.monotonic() + 30
        while not (records := fetch_records(proc, instance.tokens["writer"], sleeping)):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        run_id = records[0]["id"]
        engine = Engine.connect()
        while not engine.container_ids(f"{RUN_LABEL}={run_id}"):
            assert time.monotonic() < deadline, "the container never appeared"
            time.sleep(0.1)
        proc.kill()  # SIGKILL: no clean-up of any kind
        assert engine.container_ids(f"{RUN_LABEL}={run_id}")  # the orphan is still there
        proc.start()
        full = client.get_task(sleeping, "FULL")
        assert full.state == "SYSTEM_ERROR"
        assert any("server stopped" in line for line in full.logs[0].system_logs)
        assert engine.container_ids(f"{RUN_LABEL}={run_id}") == []
        for task_id in queued:
            assert wait_state(client, task_id, FINAL) == "COMPLETE"
        assert files(instance.data / "after-crash-0") == files(instance.data / "after-crash-1")
    finally:
        proc.stop()


def test_stopping_the_server_ends_running_tasks_and_keeps_queued_ones(instance: Instance) -> None:
    import sqlite3

    proc = instance.server("stop", workers=1)
    proc.start()
    try:
        client = instance.client(proc)
        sleeping = client.create_task(sleeper_task(300))
        queued = client.create_task(fixity_task(instance, "after-stop"))
        wait_state(client, sleeping, {"RUNNING"})
        deadline = time.monotonic() + 30
        while not (records := fetch_records(proc, instance.tokens["writer"], sleeping)):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        run_id = records[0]["id"]
        engine = Engine.connect()
        while not engine.container_ids(f"{RUN_LABEL}={run_id}"):
            assert time.monotonic() < deadline, "the container never appeared"
            time.sleep(0.1)
        started = time.monotonic()
        proc.stop()  # SIGTERM, as Ctrl-C or systemd would
        assert time.monotonic() - started < 30
        assert engine.container_ids(f"{RUN_LABEL}={run_id}") == []
        database = instance.root / "home-stop" / "tasks.sqlite"
        with sqlite3.connect(database) as db:
            states = dict(db.execute("SELECT id, state FROM tasks"))
        assert states == {sleeping: "SYSTEM_ERROR", queued: "QUEUED"}
        proc.start()
        full = client.get_task(sleeping, "FULL")
        assert any("server was stopped" in line for line in full.logs[0].system_logs)
        assert wait_state(client, queued, FINAL) == "COMPLETE"
    finally:
        proc.stop()


def test_executor_logs_carry_the_runs_own_cap(instance: Instance, server: ServerProcess) -> None:
    client = instance.client(server)
    task_id = client.create_task(
        tes.Task(executors=[tes.Executor(image="tes-chatty@1.0.0", command=[])])
    )
    assert wait_state(client, task_id, FINAL) == "COMPLETE"
    [log] = client.get_task(task_id, "FULL").logs[0].logs
    kept, _, note = log.stdout.partition("\n[gefreg: ")
    assert kept == "chatter\n" * 128  # 1 KiB: what the runner kept
    assert f"truncated: {CHATTY - 1024} bytes dropped" in note
    assert "stdout" not in client.get_task(task_id, "BASIC").logs[0].logs[0].as_dict()
