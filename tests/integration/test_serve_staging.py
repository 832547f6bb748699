"""Staging inputs from the web and from persistent identifiers, against a stand-in on loopback
that speaks B2SHARE, DataCite (DOI content negotiation) and the Handle API: files land where
the task said with their checksums checked, a wrong checksum or a withdrawn record fails the
task before anything runs, a redirect into the instance's own network is refused, and files
whose checksum is known are fetched once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tes

from tests.serve_fixtures import Instance
from tests.serve_helpers import ServerProcess
from tests.standin_pids import FILES, StandIn, md5, sha256

pytestmark = pytest.mark.docker

FINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture(scope="module")
def staging_server(tes_instance: Instance, standin: StandIn) -> Iterator[ServerProcess]:
    proc = tes_instance.server(
        "staging",
        2,
        "--allow-host", "127.0.0.1",
        "--b2share", standin.url,
        "--doi-resolver", f"{standin.url}/doi",
        "--handle-resolver", standin.url,
    )  # fmt: skip
    proc.start()
    yield proc
    proc.stop()


def copier(inputs: list[tes.Input], out: Path) -> tes.Task:
    """tes-hostile copies /data/in to /data/out: the outputs show what was staged."""
    return tes.Task(
        name="staging",
        inputs=inputs,
        outputs=[tes.Output(url=out.as_uri(), path="/data/out", type="DIRECTORY")],
        executors=[tes.Executor(image="tes-hostile@1.0.0", command=[])],
    )


def finish(client: tes.HTTPClient, task_id: str) -> tes.Task:
    deadline = time.monotonic() + 120
    while (task := client.get_task(task_id, "FULL")).state not in FINAL:
        assert time.monotonic() < deadline, task.state
        time.sleep(0.2)
    return task


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_inputs_from_the_web_and_from_identifiers_are_staged_and_checked(
    tes_instance: Instance, staging_server: ServerProcess, standin: StandIn
) -> None:
    client = tes_instance.client(staging_server)
    data = FILES["data.txt"]
    inputs = [
        tes.Input(
            url=f"{standin.url}/redirect/data#sha256={sha256(data)}", path="/data/in/web.txt"
        ),
        tes.Input(content="literal text\n", path="/data/in/literal.txt"),
        tes.Input(url=f"{standin.url}/records/rec1", path="/data/in/b2share", type="DIRECTORY"),
        tes.Input(url="doi:10.5555/rec1", path="/data/in/by-doi", type="DIRECTORY"),
        tes.Input(url="https://doi.org/10.5555/plain", path="/data/in/doi-content.txt"),
        tes.Input(url="hdl:21.T5555/plain", path="/data/in/by-handle.txt"),
    ]
    out = tes_instance.data / "staged-out"
    task = finish(client, client.create_task(copier(inputs, out)))
    assert task.state == "COMPLETE", task.logs[0].system_logs
    assert files(out) == {
        "web.txt": data,
        "literal.txt": b"literal text\n",
        "b2share/a.txt": FILES["a.txt"],
        "b2share/sub/b.txt": FILES["sub/b.txt"],
        "by-doi/a.txt": FILES["a.txt"],
        "by-doi/sub/b.txt": FILES["sub/b.txt"],
        "doi-content.txt": data,
        "by-handle.txt": data,
    }
    staged = [v for k, v in task.logs[0].metadata.items() if k.startswith("staged.")]
    assert any(
        v.startswith(f"/data/in/web.txt: {len(data)} bytes, sha256:{sha256(data)}") for v in staged
    )
    assert len(staged) == 8
    # every file of rec1 was fetched once although two inputs named the record
    assert standin.hits["/api/files/bucket-rec1/a.txt"] == 1


def test_known_checksums_are_served_from_the_cache(
    tes_instance: Instance, staging_server: ServerProcess, standin: StandIn
) -> None:
    client = tes_instance.client(staging_server)
    before = standin.hits["/api/files/bucket-rec1/a.txt"]
    inputs = [
        tes.Input(url=f"{standin.url}/api/records/rec1", path="/data/in/again", type="DIRECTORY")
    ]
    out = tes_instance.data / "cached-out"
    job = copier(inputs, out)
    job.executors[0].stderr = "/data/out/logs/stderr.txt"  # the captured log, into a port
    task = finish(client, client.create_task(job))
    assert task.state == "COMPLETE"
    assert (out / "logs" / "stderr.txt").is_file()
    assert standin.hits["/api/files/bucket-rec1/a.txt"] == before  # the cache had it (by MD5)
    assert all(
        v.endswith(", cached") for k, v in task.logs[0].metadata.items() if k.startswith("staged.")
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("{base}/records/badsum", "checksum mismatch: expected md5:"),
        ("{base}/files/data.txt#md5=" + md5(b"not it"), "checksum mismatch"),
        ("{base}/records/gone", "withdrawn (410 Gone)"),
        ("doi:10.5555/unknown", "not found (404)"),
        ("{base}/redirect/metadata-service", "the instance's own network"),
    ],
)
def test_bad_inputs_fail_the_task_before_anything_runs(
    tes_instance: Instance, staging_server: ServerProcess, standin: StandIn, url: str, why: str
) -> None:
    client = tes_instance.client(staging_server)
    kind = "DIRECTORY" if "records" in url or url.startswith("doi") else "FILE"
    path = "/data/in/x" if kind == "DIRECTORY" else "/data/in/x.txt"
    inputs = [tes.Input(url=url.format(base=standin.url), path=path, type=kind)]
    out = tes_instance.data / f"never-{abs(hash(url))}"
    task = finish(client, client.create_task(copier(inputs, out)))
    assert task.state == "SYSTEM_ERROR"
    assert any(why in line for line in task.logs[0].system_logs), task.logs[0].system_logs
    assert task.logs[0].logs in (None, [])  # no executor started
    assert not out.exists()
