"""The runner's story without Docker: run_service against the typed fake engine, including the
unhappy endings (start failure, timeout, Ctrl-C, unhashable outputs, a hardening mismatch, an
engine that goes away)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gefreg.engine import ContainerSpec, EngineUnavailable
from gefreg.errors import BadInput, EnvironmentFailure
from gefreg.image.interface import ServiceInterface
from gefreg.model import Port, Resources
from gefreg.release.trust import ResolvedImage
from gefreg.run.execute import run_service
from gefreg.run.record import read_run_record
from gefreg.run.request import RunRequest
from tests.fakes import FakeEngine, image_info

IMAGE_ID = "sha256:" + "c" * 64
ROOT = os.geteuid() == 0
SERVICE_UID = 10001


def output_source(spec: ContainerSpec) -> Path:
    return next(m.source for m in spec.mounts if not m.read_only)


def writes(files: dict[str, bytes], code: int = 0) -> object:
    """A fake service writing ``files`` into its output, as the service's uid would."""

    def service(spec: ContainerSpec) -> int:
        out = output_source(spec)
        for name, data in files.items():
            path = out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if ROOT:
                for made in {path, path.parent} - {out}:
                    os.chown(made, SERVICE_UID, SERVICE_UID)
        return code

    return service


def request(tmp_path: Path, **changes: object) -> RunRequest:
    os.chmod(tmp_path, 0o755)
    data = tmp_path / "in"
    data.mkdir(exist_ok=True)
    (data / "a.txt").write_text("alpha\n")
    os.chmod(data, 0o755)
    face = ServiceInterface(
        "demo",
        "1.0.0",
        (Port("data", "/data/in"),),
        (Port("result", "/data/out"),),
        ("/bin/tool",),
        resources=Resources(memory=2**26, cpus=0.5, timeout=5.0, pids=32),
    )
    image = ResolvedImage("demo", "1.0.0", IMAGE_ID, None, None, "demo", True, "build-record")
    fields: dict[str, object] = {
        "image": image,
        "service": face,
        "inputs": (("data", data),),
        "outputs": (("result", tmp_path / "out"),),
        "record": tmp_path / "rec" / "run.json",
    }
    fields.update(changes)
    return RunRequest(**fields)  # type: ignore[arg-type]


def engine_with(service: object = None) -> FakeEngine:
    return FakeEngine(image_info(IMAGE_ID), service=service)  # type: ignore[arg-type]


def test_a_run_that_succeeds(tmp_path: Path) -> None:
    engine = engine_with(writes({"r.txt": b"result\n", "sub/s.txt": b"s"}))
    engine.stdout = b"hello\n"
    result = run_service(request(tmp_path, args=("--x",)), engine=engine)
    assert result.succeeded and result.exit_code == 0 and result.error is None
    assert engine.calls == ["create", "inspect", "attach", "start", "wait", "inspect", "remove"]
    assert engine.containers == {}
    on_disk = read_run_record(tmp_path / "rec" / "run.json")
    assert on_disk == json.loads(json.dumps(result.record.to_json()))
    assert on_disk["status"] == "succeeded" and on_disk["args"] == ["--x"]
    assert {f["path"] for f in on_disk["outputs"]["result"]["manifest"]["files"]} == {
        "r.txt",
        "sub/s.txt",
    }
    assert on_disk["inputs"]["data"]["unchanged"] is True
    assert on_disk["applied"]["network_mode"] == "none"
    assert on_disk["logs"]["stdout"]["size"] == 6
    assert (tmp_path / "rec" / "run.stdout.log").read_bytes() == b"hello\n"
    if ROOT:
        assert on_disk["handed_back"] == 3  # r.txt, sub, sub/s.txt
        assert {p.stat().st_uid for p in (tmp_path / "out").rglob("*")} == {0}
        assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_start_failure_is_a_failed_run(tmp_path: Path) -> None:
    engine = engine_with()
    engine.start_error = "exec: /bin/tool: permission denied"
    result = run_service(request(tmp_path), engine=engine)
    assert result.status == "failed"
    assert result.error == "the service could not start: exec: /bin/tool: permission denied"
    assert "wait" not in engine.calls and engine.calls[-1] == "remove"
    assert read_run_record(result.record_path)["status"] == "failed"


def test_timeout_kills_and_records(tmp_path: Path) -> None:
    engine = engine_with(lambda spec: None)  # never ends
    result = run_service(request(tmp_path), engine=engine)
    assert result.status == "timed-out" and result.error == "killed after the 5 s timeout"
    assert result.exit_code == 137
    assert engine.calls == [
        "create", "inspect", "attach", "start", "wait", "kill", "wait", "inspect", "remove",
    ]  # fmt: skip
    assert engine.containers == {}


def test_ctrl_c_stops_removes_and_records(tmp_path: Path) -> None:
    engine = engine_with()
    engine.interrupt_on_wait = True
    req = request(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_service(req, engine=engine)
    assert engine.calls[-2:] == ["kill", "remove"] and engine.containers == {}
    record = read_run_record(req.record)
    assert record["status"] == "interrupted" and "Ctrl-C" in record["error"]
    assert record["ended"] and record["outputs"]["result"]["manifest"] is None
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755  # grant undone


def test_unhashable_outputs_fail_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An output that cannot be read is data: the run ends failed with the reason, the record
    lists what could be hashed, and nothing is raised."""
    from gefreg.hashing import sha256_regular as real
    from gefreg.run import tree_manifest

    def unreadable(name: str, progress: object = None, *, dir_fd: int | None = None) -> object:
        if name == "locked.bin":
            raise PermissionError(13, "Permission denied", name)
        return real(name, progress, dir_fd=dir_fd)  # type: ignore[arg-type]

    monkeypatch.setattr(tree_manifest, "sha256_regular", unreadable)
    service = writes({"ok.txt": b"1", "sub/locked.bin": b"2"})
    result = run_service(request(tmp_path), engine=engine_with(service))
    assert result.status == "failed"
    assert result.error == (
        "the outputs could not all be hashed: result/sub/locked.bin: permission denied"
    )
    files = read_run_record(result.record_path)["outputs"]["result"]["manifest"]["files"]
    assert [f["path"] for f in files] == ["ok.txt"]


def test_a_hardening_mismatch_refuses_to_start(tmp_path: Path) -> None:
    engine = engine_with()
    engine.tamper = {"NetworkMode": "bridge", "CapAdd": ["NET_RAW"]}
    req = request(tmp_path)
    with pytest.raises(EnvironmentFailure, match="did not apply the hardening") as info:
        run_service(req, engine=engine)
    assert "network_mode: asked 'none', engine has 'bridge'" in info.value.message
    assert f"run record: {req.record.absolute()}" in str(info.value.hint)
    assert "start" not in engine.calls and engine.calls[-1] == "remove"
    record = read_run_record(req.record)
    assert record["status"] == "incomplete" and "hardening" in record["error"]


def test_an_engine_that_goes_away_leaves_an_incomplete_record(tmp_path: Path) -> None:
    def gone(spec: ContainerSpec) -> int:
        raise EngineUnavailable("the Docker engine went away while the container ran")

    req = request(tmp_path)
    with pytest.raises(EngineUnavailable):
        run_service(req, engine=engine_with(gone))
    record = read_run_record(req.record)
    assert record["status"] == "incomplete" and "went away" in record["error"]
    assert record["container"]["id"] and record["exit_code"] is None


def test_out_of_memory(tmp_path: Path) -> None:
    engine = engine_with(lambda spec: 137)
    engine.oom = True
    result = run_service(request(tmp_path), engine=engine)
    assert result.status == "failed" and result.record.oom_killed is True
    assert result.error == f"killed by the memory limit ({2**26} bytes): out of memory"


def test_bad_folders_are_refused_before_any_container(tmp_path: Path) -> None:
    engine = engine_with()
    with pytest.raises(BadInput, match="overlap"):
        run_service(request(tmp_path, outputs=(("result", tmp_path / "in" / "o"),)), engine=engine)
    assert engine.calls == [] and not (tmp_path / "rec").exists()


def test_a_followed_run_hears_every_line_as_written(tmp_path: Path) -> None:
    from gefreg.run.request import RunObserver

    class Listener(RunObserver):
        follows = True

        def __init__(self) -> None:
            self.lines: list[tuple[str, str]] = []

        def output(self, stream: str, line: str) -> None:
            self.lines.append((stream, line))

    engine = engine_with(writes({"r.txt": b"r"}, code=1))
    engine.stdout, engine.stderr = b"one\ntwo\n", b"Traceback: boom\n"
    listener = Listener()
    result = run_service(request(tmp_path), engine=engine, observer=listener)
    assert result.status == "failed"
    assert listener.lines == [("stdout", "one"), ("stdout", "two"), ("stderr", "Traceback: boom")]
    assert engine.calls.index("attach") == engine.calls.index("start") - 1
    assert (tmp_path / "rec" / "run.stderr.log").read_bytes() == b"Traceback: boom\n"  # still saved
