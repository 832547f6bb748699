"""The runner against real containers: FROM-scratch busybox services built by the test.

Every container the runner makes carries the label ``org.gefreg.run``; after each test none may
be left (a fixture checks and cleans up).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gefreg.catalog.entries import load_entry
from gefreg.cli import cli
from gefreg.engine import Engine
from gefreg.image.build import build_entry
from gefreg.run.hardening import RUN_LABEL
from gefreg.run.record import STATUSES, read_run_record
from gefreg.settings import Settings
from tests.helpers import busybox_entry, make_catalog, own_run_containers, unmount_under

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
IO = {
    "inputs": [{"name": "data", "path": "/data/in"}],
    "outputs": [{"name": "result", "path": "/data/out"}],
}

COPIER = """\
set -eu
echo "copier starting"
cat /data/in/*.txt | sha256sum > /data/out/sum.txt
mkdir -p /data/out/copy
cp -r /data/in/. /data/out/copy/
echo "args: $*" > /data/out/args.txt
echo "copier done" >&2
"""
CLOCK = """\
# the current time, to the hundredth of a second (busybox date has no %N)
{ date +%s; cut -d ' ' -f 1 /proc/uptime; } > /data/out/stamp
echo fixed > /data/out/fixed.txt
"""
SLEEPER = """\
echo started
sleep 60
"""
ATTACK = r"""
mode=$1
out=/data/out
try() {
  label=$1; shift
  if "$@" 2>/dev/null; then verdict=ALLOWED; else verdict=blocked; fi
  echo "$verdict $label" >> $out/report
}
case "$mode" in
write-outside)
  try root sh -c 'echo x > /escape'
  try etc sh -c 'echo x > /etc/escape'
  try bin sh -c 'echo x > /bin/busybox'
  try input-new sh -c 'echo x > /data/in/escape'
  try input-overwrite sh -c 'echo x > /data/in/a.txt'
  try input-delete rm /data/in/b.txt
  try input-chmod chmod 777 /data/in/a.txt
  try input-mkdir mkdir /data/in/newdir
  try proc sh -c 'echo 1 > /proc/sys/kernel/sysrq'
  try mount mount -t tmpfs none /tmp
  try tmp-exec sh -c 'cp /bin/busybox /tmp/bb && /tmp/bb true'
  try chown-to-root sh -c 'echo x > /data/out/mine && chown 0:0 /data/out/mine'
  ;;
setuid)
  cp /bin/busybox $out/sh && chmod 4755 $out/sh
  ;;
network)
  ls /sys/class/net > $out/interfaces
  try connect-docker-gateway nc -w 2 172.17.0.1 2375 </dev/null
  try connect-public-ip nc -w 2 192.0.2.1 80 </dev/null
  try connect-dns nc -w 2 8.8.8.8 53 </dev/null
  ;;
clobber)
  try see test -e $out/precious.txt
  try delete rm $out/precious.txt
  try rename mv $out/precious.txt $out/moved.txt
  try chmod chmod 666 $out/precious.txt
  try shared-delete rm $out/shared/root.txt
  try theirs-change sh -c "test -e $out/theirs.txt && echo pwned >> $out/theirs.txt"
  echo pwned > $out/precious.txt
  echo new > $out/new.txt
  ;;
forks)
  n=0
  while :; do sleep 100 & n=$((n+1)); echo $n > $out/forks; done
  ;;
bomb)
  set -- /proc/[0-9]*; echo $# >> $out/procs  # before: on a busy machine the loop may not run
  bomb() { bomb | bomb & }
  bomb
  # count processes with shell builtins only (no fork needed): the pids limit must hold
  while :; do set -- /proc/[0-9]*; echo $# >> $out/procs; sleep 0.2; done
  ;;
memory)
  x=$(head -c 200000000 /dev/zero | tr '\0' a)
  echo ${#x} > $out/size
  ;;
forever)
  while :; do :; done
  ;;
spew)
  yes 0123456789012345678901234567890123456789012345678901234567890123456789
  ;;
shout)
  head -c 300000000 /dev/zero
  echo done >&2
  ;;
fill)
  head -c 100000000 /dev/zero > $out/big || echo "write failed" >&2
  ;;
sparse)
  # 200 files of 40 MiB each that take no room: holes
  i=0
  while [ $i -lt 200 ]; do
    /bin/busybox dd if=/dev/zero of=$out/s$i bs=1048576 seek=40 count=0 2>/dev/null || exit 2
    i=$((i+1))
  done
  ;;
links)
  # one 40 MB file under 21 names
  head -c 40000000 /dev/zero > $out/big && mkdir $out/d || exit 2
  i=0
  while [ $i -lt 20 ]; do /bin/busybox ln $out/big $out/d/l$i || exit 2; i=$((i+1)); done
  ;;
limits)
  ulimit -n > $out/nofile
  ulimit -f > $out/fsize
  ;;
deep)
  # a tree deeper than PATH_MAX (cd cannot go there, rename can), a symlink loop, a FIFO,
  # a folder nobody may enter, and set-uid bits
  b=/bin/busybox
  long=$($b printf "%0250d" 0 | $b tr 0 d)
  cd $out
  $b mkdir -p "t/$long/$long/$long" && echo bottom > "t/$long/$long/$long/file.txt" || exit 2
  i=0
  while [ $i -lt 8 ]; do
    $b mv t s && $b mkdir -p "t/$long/$long/$long" && $b mv s "t/$long/$long/$long/s" || exit 3
    i=$((i+1))
  done
  $b ln -s loop loop
  $b mkfifo fifo
  $b mkdir locked && echo x > locked/f && $b chmod 4755 locked/f && $b chmod 000 locked
  ;;
esac
"""
FILLER = "head -c 100000000 /dev/zero > /data/out/big\n"
ATTACK_RESOURCES = {"memory": "32m", "pids": 32, "timeout": "20s", "cpus": 0.5}


@dataclass(frozen=True)
class Services:
    settings: Settings
    image_ids: dict[str, str]

    @property
    def catalog(self) -> Path:
        return self.settings.catalog

    @property
    def env(self) -> dict[str, str]:
        # reproduce re-establishes trust from the catalog: it needs it as much as run does
        return {"GEFREG_STATE": str(self.settings.state_dir), "GEFREG_CATALOG": str(self.catalog)}


def static_service(name: str, script: str, **fields: Any) -> dict[str, Any]:
    return busybox_entry(name, script, **{**IO, **fields})


def build_services(root: Path, entries: dict[str, Any]) -> Services:
    catalog = make_catalog(root / "catalog", entries)
    for name in entries:
        os.chmod(catalog / name / "busybox", 0o755)
    settings = Settings(catalog=catalog, registry="127.0.0.1:1", state_dir=root / "state")
    engine = Engine.connect()
    ids = {
        name: build_entry(settings, load_entry(catalog / name, set()), engine=engine).image_id
        for name in entries
    }
    return Services(settings, ids)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Services:
    from gefreg.engine import engine_answers

    if not engine_answers():
        pytest.skip("no Docker engine")
    entries: dict[str, Any] = {}
    entries.update(static_service("copier", COPIER))
    entries.update(static_service("clock", CLOCK))
    entries.update(static_service("clock-volatile", CLOCK, volatile=["result/stamp"]))
    entries.update(static_service("sleeper", SLEEPER))
    entries.update(static_service("attack", ATTACK, resources=ATTACK_RESOURCES))
    entries.update(static_service("filler", FILLER, resources={"disk": "50m", "timeout": "30s"}))
    return build_services(tmp_path_factory.mktemp("services"), entries)


@pytest.fixture(autouse=True)
def no_containers_left_behind(
    engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    yield
    left = own_run_containers(engine, tmp_path_factory.getbasetemp())
    for container in left:
        engine.remove_container(container)
    mounted = unmount_under(tmp_path_factory.getbasetemp())  # a run's output file system
    assert not left, f"runner containers left behind: {left}"
    assert not mounted, f"left mounted: {mounted}"


def inputs(tmp_path: Path) -> Path:
    """An input folder readable by the unprivileged service user (pytest's tmp is 0700)."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text("alpha\n")
    (folder / "b.txt").write_text("beta\n")
    (folder / "sub" / "c.dat").write_bytes(os.urandom(3000))
    for path in (tmp_path, folder, folder / "sub"):
        os.chmod(path, 0o755)
    return folder


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every regular file's content and mode (by descriptor: trees may be deeper than PATH_MAX)."""
    found = {}
    for top, _, files, fd in os.fwalk(folder):
        for name in files:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                with open(os.open(name, os.O_RDONLY, dir_fd=fd), "rb") as fh:
                    rel = os.path.relpath(os.path.join(top, name), folder)
                    found[rel] = (fh.read(), stat.S_IMODE(st.st_mode))
    return dict(sorted(found.items()))


def gefreg(services: Services, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, ["--help"] if not args else list(args), catch_exceptions=False, env=services.env
    )
    return result.exit_code, result.stdout, result.stderr


def run(
    services: Services,
    name: str,
    tmp_path: Path,
    *extra: str,
    record: Path | None = None,
    out: Path | None = None,
) -> tuple[int, dict[str, Any]]:
    """`gefreg run NAME -i in -o out --record rec/run.json --json ...`: exit code and record."""
    record = record or tmp_path / "rec" / "run.json"
    code, printed, err = gefreg(
        services,
        "run",
        "--catalog",
        str(services.catalog),
        name,
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(out or tmp_path / "out"),
        "--record",
        str(record),
        "--json",
        *extra,
    )
    assert printed.strip(), f"no record printed; exit {code}; stderr:\n{err}"
    return code, json.loads(printed)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- run, record, reproduce -----------------------------------------------------------------


def test_run_record_then_reproduce_identical(
    services: Services, tmp_path: Path, engine: Engine
) -> None:
    folder = inputs(tmp_path)
    before = snapshot(folder)
    code, record = run(services, "copier", tmp_path, "--", "--alpha", "two words")
    assert code == 0, record["error"]
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    assert record["image"]["image_id"] == services.image_ids["copier"]
    assert record["args"] == ["--alpha", "two words"]
    assert (tmp_path / "out" / "args.txt").read_text() == "args: --alpha two words\n"
    # hardening as the engine applied it
    applied = record["applied"]
    assert applied["network_mode"] == "none" and applied["read_only_rootfs"] is True
    assert applied["cap_drop"] == ["ALL"] and applied["security_opt"] == ["no-new-privileges"]
    assert applied["pids_limit"] == 256 and applied["memory"] == applied["memory_swap"] == 2**30
    assert applied["nano_cpus"] == 10**9 and applied["tmpfs"]["/tmp"].startswith("rw,noexec")
    assert {(m["target"], m["read_only"]) for m in applied["mounts"]} == {
        ("/data/in", True),
        ("/data/out", False),
    }
    # logs next to the record, hashed
    rec = tmp_path / "rec"
    assert record["logs"]["stdout"]["path"] == "run.stdout.log"
    stdout = (rec / "run.stdout.log").read_bytes()
    assert stdout == b"copier starting\n" and record["logs"]["stdout"]["sha256"] == sha(stdout)
    assert (rec / "run.stderr.log").read_text() == "copier done\n"
    # manifests of both sides, inputs unchanged
    files = {f["path"]: f for f in record["inputs"]["data"]["manifest"]["files"]}
    assert files["a.txt"] == {"path": "a.txt", "size": 6, "sha256": sha(b"alpha\n")}
    assert record["inputs"]["data"]["unchanged"] is True
    assert record["inputs"]["data"]["root_after"] == record["inputs"]["data"]["manifest"]["root"]
    outputs = {f["path"] for f in record["outputs"]["result"]["manifest"]["files"]}
    assert outputs == {"sum.txt", "args.txt", "copy/a.txt", "copy/b.txt", "copy/sub/c.dat"}
    assert snapshot(folder) == before
    assert record["host"]["cpu_model"] and record["host"]["engine"]["engine"]
    assert record["gefreg_version"] and record["schema"] == "gefreg.run/1"

    code, out, err = gefreg(services, "reproduce", str(rec / "run.json"))
    assert code == 0, err
    assert out.splitlines()[-1] == "identical: 5 files the same, 0 different, 0 ignored"
    rerun_path = Path(err.split("re-run record: ")[1].split()[0])
    assert rerun_path.parent.parent == services.settings.state_dir / "runs"
    rerun = read_run_record(rerun_path)
    assert rerun["reproduces"] == record["id"] and rerun["status"] == "succeeded"
    assert rerun["outputs"]["result"]["path"] == str(rerun_path.parent / "outputs" / "result")


def test_output_files_are_handed_back_to_root(services: Services, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the root-caller path needs root")
    inputs(tmp_path)
    (tmp_path / "out").mkdir(mode=0o750)
    code, record = run(services, "copier", tmp_path)
    assert code == 0
    assert record["run_as"] == "10001:10001" and record["applied"]["user"] == "10001:10001"
    out = tmp_path / "out"
    assert record["handed_back"] == len(list(out.rglob("*"))) == 7  # 5 files, 2 folders
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in out.rglob("*")}
    assert owners == {(0, 0)}
    assert stat.S_IMODE(out.stat().st_mode) == 0o750 and out.stat().st_gid == 0


def test_a_clock_differs_and_the_file_is_named(services: Services, tmp_path: Path) -> None:
    inputs(tmp_path)
    assert run(services, "clock", tmp_path)[0] == 0
    code, out, _ = gefreg(services, "reproduce", str(tmp_path / "rec" / "run.json"))
    assert code == 1
    assert "changed  result/stamp (" in out and "fixed.txt" not in out
    assert out.splitlines()[-1].startswith("DIFFERS: 1 file the same, 1 different, 0 ignored")
    code, out, _ = gefreg(
        services,
        "reproduce",
        str(tmp_path / "rec" / "run.json"),
        "--json",
        "--output",
        str(tmp_path / "again"),
    )
    report = json.loads(out)
    assert code == 1 and not report["identical"]
    assert [(d["path"], d["change"]) for d in report["differences"]] == [
        ("result/stamp", "changed")
    ]
    assert (tmp_path / "again" / "result" / "stamp").is_file()


def test_volatile_files_are_ignored_and_said_so(services: Services, tmp_path: Path) -> None:
    inputs(tmp_path)
    record_file = tmp_path / "rec" / "run.json"
    code, record = run(services, "clock-volatile", tmp_path)
    assert code == 0 and record["volatile"] == ["result/stamp"]
    code, out, _ = gefreg(services, "reproduce", str(record_file))
    assert code == 0
    assert "ignoring (volatile): result/stamp" in out
    assert "changed  result/stamp (" in out and "[ignored: matches result/stamp]" in out
    assert out.splitlines()[-1] == "identical: 1 file the same, 0 different, 1 ignored"
    # --ignore adds patterns the record does not declare
    code, record = run(services, "clock", tmp_path, record=tmp_path / "c.json", out=tmp_path / "o")
    assert code == 0
    code, out, _ = gefreg(services, "reproduce", str(tmp_path / "c.json"), "--ignore", "*/stamp")
    assert code == 0 and "ignoring (volatile): */stamp" in out


def test_reproduce_refuses_changed_inputs_and_accepts_a_true_copy(
    services: Services, tmp_path: Path
) -> None:
    folder = inputs(tmp_path)
    record_file = tmp_path / "rec" / "run.json"
    assert run(services, "copier", tmp_path)[0] == 0
    copy = tmp_path / "copy-of-inputs"
    shutil.copytree(folder, copy)
    os.chmod(copy, 0o755)
    (folder / "a.txt").write_text("ALPHA\n")
    code, _, err = gefreg(services, "reproduce", str(record_file))
    assert code == 2
    assert "the inputs differ from the recorded ones" in err and "changed  data/a.txt" in err
    code, _, err = gefreg(services, "reproduce", str(record_file), "--input", f"data={copy}")
    assert code == 0, err


def test_reproduce_refuses_when_the_image_is_gone(
    tmp_path: Path, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = build_services(tmp_path_factory.mktemp("vanishing"), static_service("vanishing", CLOCK))
    inputs(tmp_path)
    assert run(own, "vanishing", tmp_path)[0] == 0
    engine.remove_image(own.image_ids["vanishing"])
    code, _, err = gefreg(own, "reproduce", str(tmp_path / "rec" / "run.json"))
    assert code == 2 and "does not have the image of vanishing" in err
    # the folders made for the re-run (record, outputs) are gone again: they stayed empty
    assert not (own.settings.state_dir / "runs").exists()


def test_engine_errors_in_the_container_section_are_environment_failures(
    engine: Engine, tmp_path: Path
) -> None:
    from gefreg.errors import EnvironmentFailure

    with pytest.raises(EnvironmentFailure, match="the engine failed while attaching"):
        engine.attach_output("0" * 64)  # NotFound


# --- limits, interruptions and a vanishing engine -------------------------------------------


def test_timeout_kills_and_records(services: Services, tmp_path: Path, engine: Engine) -> None:
    inputs(tmp_path)
    start = time.monotonic()
    code, record = run(services, "sleeper", tmp_path, "--timeout", "2s")
    assert time.monotonic() - start < 15
    assert code == 1
    assert record["status"] == "timed-out" and record["error"] == "killed after the 2 s timeout"
    assert record["limits"]["timeout_s"] == 2 and record["limits"]["from_command_line"] == [
        "timeout"
    ]
    assert 2 <= record["duration_s"] < 5
    assert (tmp_path / "rec" / "run.stdout.log").read_text() == "started\n"  # logs kept
    assert engine.container_ids(f"{RUN_LABEL}={record['id']}") == []  # and the container gone


def start_cli(services: Services, tmp_path: Path, name: str, **env: str) -> subprocess.Popen[str]:
    inputs(tmp_path)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gefreg",
            "run",
            "--catalog",
            str(services.catalog),
            name,
            "-i",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--record",
            str(tmp_path / "run.json"),
        ],
        env={**os.environ, **services.env, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_running(engine: Engine, record: Path, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if record.exists():
            container = json.loads(record.read_text())["container"]["id"]
            if container and engine.inspect_container(container).running:
                return str(container)
        time.sleep(0.1)
    raise AssertionError("the service never started")


def test_ctrl_c_stops_removes_and_records(
    services: Services, tmp_path: Path, engine: Engine
) -> None:
    process = start_cli(services, tmp_path, "sleeper")
    container = wait_until_running(engine, tmp_path / "run.json", process)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    # A run that ignored Ctrl-C would end with the sleeper (60 s, exit 0): the exit code tells.
    # The wait is longer than that so a busy machine (engine, umount) is no failure; stderr
    # shows the stopping steps with their times when they were slow.
    try:
        _, err = process.communicate(timeout=180)
    finally:
        if process.poll() is None:  # never left running (the fixture unmounts what it left)
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert "stopping: ending the log capture, removing the container" in err
    record = read_run_record(tmp_path / "run.json")
    assert record["status"] == "interrupted" and "Ctrl-C" in record["error"]
    assert record["ended"] and record["outputs"]["result"]["manifest"] is None
    assert (tmp_path / "run.stdout.log").read_text() == "started\n"
    assert engine.container_ids(f"{RUN_LABEL}={record['id']}") == []
    with pytest.raises(Exception, match="cannot inspect"):
        engine.inspect_container(container)


class SocketProxy:
    """A unix-socket proxy in front of the real engine, which the test can pull away.

    Once :meth:`close` has returned no connection reaches the engine through it: the listening
    socket is shut down (which also wakes a blocked ``accept``), and a connection accepted
    while closing is dropped, not carried on (that race let a run talk to the engine after the
    "engine" had gone: on a busy machine it waited for the full 60 s sleep)."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path, self.target = path, target
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(16)
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _keep(self, sock: socket.socket) -> bool:
        with self.lock:
            if not self.closed:
                self.sockets.append(sock)
                return True
        sock.close()
        return False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self._keep(client):
                return
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            if not self._keep(upstream):
                continue  # the client was shut down by close()
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        with self.lock:
            self.closed = True
            sockets = list(self.sockets)
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.path.unlink(missing_ok=True)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def test_engine_gone_mid_run_is_incomplete_and_exit_3(
    services: Services, tmp_path: Path, engine: Engine
) -> None:
    sock = Path(tempfile.mkdtemp()) / "docker.sock"
    proxy = SocketProxy(sock)
    process = None
    try:
        process = start_cli(services, tmp_path, "sleeper", DOCKER_HOST=f"unix://{sock}")
        container = wait_until_running(engine, tmp_path / "run.json", process)
        proxy.close()
        _, err = process.communicate(timeout=60)
        assert process.returncode == 3, err
        assert "went away while the container ran" in err and "run record:" in err
        record = read_run_record(tmp_path / "run.json")
        assert record["status"] == "incomplete" and record["exit_code"] is None
        assert "went away" in record["error"] and record["container"]["id"] == container
        assert record["outputs"]["result"]["manifest"] is None
        # the real engine still has the container: the record names it for cleanup
        assert engine.container_ids(f"{RUN_LABEL}={record['id']}") == [container]
        assert "the outputs stay in" in record["error"]  # the container might still write there
        # and its output file system stays mounted (as root): the user removes both
        engine.remove_container(container)
        mounted = [p.name for p in unmount_under(tmp_path)]
        assert mounted == (["mnt"] if os.geteuid() == 0 else [])
    finally:
        proxy.close()
        shutil.rmtree(sock.parent, ignore_errors=True)
        # whatever failed above: the run ended, its container removed, nothing left mounted
        if process is not None and process.poll() is None:
            process.kill()
            process.communicate()
        for left in own_run_containers(engine, tmp_path):
            engine.remove_container(left)
        unmount_under(tmp_path)


# --- usage errors -----------------------------------------------------------------------------


def test_bad_input_exits_2_before_any_container(services: Services, tmp_path: Path) -> None:
    inputs(tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "precious.txt").write_text("mine")
    cases = [
        (["-i", str(tmp_path / "missing"), "-o", str(tmp_path / "o1")], "does not exist"),
        (["-i", str(tmp_path / "in" / "a.txt"), "-o", str(tmp_path / "o2")], "is not a folder"),
        (["-i", str(tmp_path / "in"), "-o", str(tmp_path / "full")], "is not empty"),
        (["-i", str(tmp_path / "in")], "missing --output for port result"),
        (
            ["-i", str(tmp_path / "in"), "-o", "result=/x", "-o", "extra=/y"],
            "unknown port 'extra'",
        ),
        (["-i", str(tmp_path / "in"), "-o", str(tmp_path / "in" / "new")], "overlap"),
        (["-i", str(tmp_path / "in"), "-o", str(tmp_path / "o3"), "--memory", "1k"], "--memory"),
        (["-i", str(tmp_path / "in"), "-o", str(tmp_path / "o4"), "--cpus", "nan"], "--cpus"),
        (["-i", str(tmp_path / "in"), "-o", str(tmp_path / "o5"), "--cpus", "inf"], "--cpus"),
        (["-i", str(tmp_path / "in"), "-o", "/proc/gefreg-x"], "cannot create /proc/gefreg-x"),
        (
            ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "in" / "a.txt" / "x")],
            "in/a.txt is not a folder",
        ),
    ]
    runs = services.settings.state_dir / "runs"
    before = set(runs.glob("*/run.json"))
    for args, message in cases:
        code, _, err = gefreg(services, "run", "--catalog", str(services.catalog), "copier", *args)
        assert code == 2 and message in err, (args, err)
    assert (tmp_path / "full" / "precious.txt").read_text() == "mine"
    assert set(runs.glob("*/run.json")) == before  # no container was made, no record written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("o")]  # nor a folder left


@pytest.mark.parametrize("log", ["run.stdout.log", "run.stderr.log"])
def test_log_files_next_to_the_record_are_never_overwritten(
    services: Services, tmp_path: Path, engine: Engine, log: str
) -> None:
    inputs(tmp_path)
    (tmp_path / "rec").mkdir()
    existing = tmp_path / "rec" / log
    existing.write_text("a log of an earlier run, or anything else\n")
    code, _, err = gefreg(
        services, "run", "--catalog", str(services.catalog), "copier",
        "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
        "--record", str(tmp_path / "rec" / "run.json"),
    )  # fmt: skip
    assert code == 2 and f"a log file already exists at {existing}" in err
    assert existing.read_text() == "a log of an earlier run, or anything else\n"
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == [log]
    assert not (tmp_path / "out").exists()


def test_logs_are_captured_only_into_new_files(
    services: Services, tmp_path: Path, engine: Engine
) -> None:
    from gefreg.errors import BadInput
    from gefreg.image.interface import ServiceInterface
    from gefreg.model import Resources
    from gefreg.run.hardening import container_spec
    from gefreg.run.logs import LogCapture

    image_id = services.image_ids["copier"]
    face = ServiceInterface("copier", "1.0.0", (), (), ("/bin/busybox", "echo", "hello"))
    spec = container_spec(
        face, image_id, args=(), inputs={}, outputs={}, user="10001:10001", limits=Resources(),
        run_id="urn:uuid:00000000-0000-4000-8000-" + os.urandom(6).hex(),
    )  # fmt: skip
    container = engine.create_container(spec)
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    err.write_text("keep me\n")
    try:
        with pytest.raises(BadInput, match="already exists"):
            LogCapture((out, err), 1024)
        assert err.read_text() == "keep me\n"
        capture = LogCapture((out, tmp_path / "err2.log"), 1024)
        capture.start(engine.attach_output(container))
        engine.start_container(container)
        assert engine.wait_container(container, 30) == 0
        capture.finish(10)
        assert out.read_text() == "hello\n" and capture.facts()[0].dropped == 0
    finally:
        engine.remove_container(container)


def test_output_on_a_read_only_file_system_is_refused(services: Services, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    inputs(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode:
        pytest.skip("cannot mount here")
    try:
        code, _, err = gefreg(
            services, "run", "--catalog", str(services.catalog), "copier",
            "-i", str(tmp_path / "in"), "-o", str(ro / "out"),
        )  # fmt: skip
    finally:
        subprocess.run(["umount", str(ro)], check=True)
    assert code == 2 and "read-only file system" in err


@contextlib.contextmanager
def mounted(*command: str) -> Iterator[None]:
    """``mount COMMAND...`` for the block (the last word is the mount point), as root."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    if subprocess.run(["mount", *command]).returncode:
        pytest.skip("cannot mount here")
    try:
        yield
    finally:
        subprocess.run(["umount", command[-1]], check=True)


@pytest.mark.parametrize("kind", ["tmpfs", "bind"])
def test_an_input_holding_a_mount_point_is_refused(
    services: Services, tmp_path: Path, kind: str
) -> None:
    """A file system mounted below an input folder was writable in the container (the engine's
    recursive bind makes only the top mount read-only)."""
    folder = inputs(tmp_path)
    sub = folder / "sub"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (elsewhere / "f.txt").write_text("mounted data\n")
    command = (
        ("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(sub))
        if kind == "tmpfs"
        else ("--bind", str(elsewhere), str(sub))  # the same file system: same st_dev
    )
    with mounted(*command):
        os.chmod(sub, 0o755)
        before = snapshot(folder)
        code, _, err = gefreg(
            services, "run", "--catalog", str(services.catalog), "attack",
            "-i", str(folder), "-o", str(tmp_path / "out"),
            "--record", str(tmp_path / "run.json"), "--", "write-outside",
        )  # fmt: skip
        assert snapshot(folder) == before
    assert code == 2, err
    assert f"input data: {sub} is a mount point inside the input folder" in err
    assert not (tmp_path / "run.json").exists() and not (tmp_path / "out").exists()
    assert (elsewhere / "f.txt").read_text() == "mounted data\n"


def test_inputs_are_bound_non_recursively(
    services: Services, tmp_path: Path, engine: Engine
) -> None:
    """Below the runner's checks: the engine binds inputs non-recursively (BindOptions.
    NonRecursive), so a mount that appears below an input after the checks is not writable —
    not even visible — in the container."""
    from gefreg.image.interface import ServiceInterface
    from gefreg.model import Port, Resources
    from gefreg.run.hardening import applied, container_spec, mismatches
    from gefreg.run.logs import LogCapture

    folder = inputs(tmp_path)
    image_id = services.image_ids["copier"]
    script = "echo pwned > /data/in/sub/planted; ls -A /data/in/sub"
    face = ServiceInterface(
        "copier", "1.0.0", (Port("data", "/data/in"),), (), ("/bin/busybox", "sh", "-c", script)
    )
    spec = container_spec(
        face, image_id, args=(), inputs={"data": folder}, outputs={}, user="0:0",
        limits=Resources(), run_id="urn:uuid:00000000-0000-4000-8000-" + os.urandom(6).hex(),
    )  # fmt: skip
    with mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder / "sub")):
        (folder / "sub" / "secret.txt").write_text("on the nested mount\n")
        container = engine.create_container(spec)
        try:
            seen = applied(engine.inspect_container(container))
            assert seen["mounts"] == [
                {
                    "source": str(folder),
                    "target": "/data/in",
                    "read_only": True,
                    "non_recursive": True,
                }
            ]
            assert not [p for p in mismatches(spec, seen) if p.startswith("mounts")]
            logs = tmp_path / "logs"
            logs.mkdir()
            capture = LogCapture((logs / "out", logs / "err"), 1024**2)
            capture.start(engine.attach_output(container))
            engine.start_container(container)
            assert engine.wait_container(container, 30) == 0  # the exit code of ls
            capture.finish(10)
        finally:
            engine.remove_container(container)
        assert not (folder / "sub" / "planted").exists()
        assert "secret.txt" not in (logs / "out").read_text()  # the mount is not carried in
        assert "Read-only file system" in (logs / "err").read_text()


@pytest.fixture
def own_tag(services: Services, engine: Engine) -> Iterator[str]:
    """The copier image under a tag of this test alone (``gefreg/copier:1.0.0`` is shared with
    every other session that builds the same entry, and moves when one does)."""
    repository = f"gefreg-test/copier-{os.urandom(6).hex()}"
    engine.tag(services.image_ids["copier"], repository, "dev")
    yield f"{repository}:dev"
    engine.remove_image(f"{repository}:dev")


def test_untrusted_images_need_a_flag(services: Services, tmp_path: Path, own_tag: str) -> None:
    inputs(tmp_path)
    ref = own_tag
    base = ["run", "--image", ref, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")]
    code, _, err = gefreg(services, *base)
    assert code == 2 and "--allow-untrusted" in err
    code, _, err = gefreg(services, "run", "--catalog", str(services.catalog), "not-in-catalog")
    assert code == 2 and "not a catalog entry" in err
    code, out, err = gefreg(services, *base, "--allow-untrusted", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["service"]["trusted"] is False and record["image"]["trusted"] is False
    assert record["image"]["image_id"] == services.image_ids["copier"]
    assert record["command"] == ["/bin/busybox", "sh", "/opt/run.sh"]  # from the image


# --- an adversarial service -------------------------------------------------------------------


def attack(
    services: Services,
    tmp_path: Path,
    mode: str,
    *extra: str,
    record: Path | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    folder = inputs(tmp_path)
    before = snapshot(folder)
    start = time.monotonic()
    code, found = run(services, "attack", tmp_path, *extra, "--", mode, record=record, out=out)
    assert time.monotonic() - start < 40
    assert found["status"] in STATUSES and code == (0 if found["status"] == "succeeded" else 1)
    assert found["inputs"]["data"]["unchanged"] is True
    assert snapshot(folder) == before
    assert found["applied"]["pids_limit"] == 32 and found["applied"]["memory"] == 32 * 2**20
    return found


def test_attack_writing_outside_its_output(services: Services, tmp_path: Path) -> None:
    record = attack(services, tmp_path, "write-outside")
    assert record["status"] == "succeeded"
    report = (tmp_path / "out" / "report").read_text().splitlines()
    assert len(report) == 12 and all(line.startswith("blocked ") for line in report), report
    assert not Path("/escape").exists() and not Path("/etc/escape").exists()
    assert (tmp_path / "out" / "mine").stat().st_uid == os.geteuid()


def test_force_never_shows_the_service_what_was_there(services: Services, tmp_path: Path) -> None:
    """Issue 11.6: with --force the service once deleted and renamed root-owned files in a
    world-writable folder, and --force as root failed for ordinary folders. Now the service
    writes into a fresh folder gefreg owns; the new files are moved in afterwards, a name that
    is taken is a conflict (nothing moved, the new outputs kept beside), --overwrite replaces."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("mine\n")
    (out / "shared").mkdir()
    os.chmod(out / "shared", 0o777)
    (out / "shared" / "root.txt").write_text("root's\n")
    (out / "theirs.txt").write_text("belongs to uid 10001\n")
    if os.geteuid() == 0:
        os.chown(out / "theirs.txt", 10001, 10001)
    before = snapshot(out)
    owners_before = {p.name: p.stat().st_uid for p in out.rglob("*")}
    inputs(tmp_path)
    code, _, err = gefreg(
        services, "run", "--catalog", str(services.catalog), "attack",
        "-i", str(tmp_path / "in"), "-o", str(out), "--", "clobber",
    )  # fmt: skip
    assert code == 2 and "is not empty" in err  # refused without --force
    code, record = run(services, "attack", tmp_path, "--force", "--", "clobber")
    assert code == 1 and record["status"] == "failed"
    [kept] = record["delivery"]["kept"]
    assert record["error"] == (
        "output conflict: result/precious.txt already exist; nothing was overwritten, the new "
        f"outputs are in {kept} (--overwrite replaces existing files)"
    )
    assert Path(kept).parent == out and record["delivery"]["conflicts"] == ["result/precious.txt"]
    # what was there is exactly as it was, owners included; the service saw none of it
    assert {k: v for k, v in snapshot(out).items() if not k.startswith("gefreg-run-")} == before
    assert {p.name: p.stat().st_uid for p in out.rglob("*") if kept not in str(p)} == owners_before
    report = (Path(kept) / "report").read_text().splitlines()
    assert report == [
        "blocked see", "blocked delete", "blocked rename", "blocked chmod",
        "blocked shared-delete", "blocked theirs-change",
    ]  # fmt: skip
    assert (Path(kept) / "precious.txt").read_text() == "pwned\n"
    # the manifest says what the service made, the record what was there before
    assert {f["path"] for f in record["outputs"]["result"]["manifest"]["files"]} == {
        "precious.txt", "new.txt", "report",
    }  # fmt: skip
    assert {f["path"] for f in record["outputs"]["result"]["preexisting"]["files"]} == {
        "precious.txt", "shared/root.txt", "theirs.txt",
    }  # fmt: skip
    # told to overwrite: the new precious.txt replaces the old one; nothing else changes
    code, record = run(
        services, "attack", tmp_path, "--force", "--overwrite", "--", "clobber",
        record=tmp_path / "rec2.json",
    )  # fmt: skip
    assert code == 0, record["error"]
    assert record["delivery"]["replaced"] == ["result/precious.txt"]
    assert (out / "precious.txt").read_text() == "pwned\n" and (out / "new.txt").exists()
    assert (out / "shared" / "root.txt").read_text() == "root's\n"
    assert (out / "theirs.txt").read_text() == "belongs to uid 10001\n"
    if os.geteuid() == 0:
        assert (out / "theirs.txt").stat().st_uid == 10001  # never handed to root
        assert (out / "new.txt").stat().st_uid == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".gefreg-run-")]


def test_attack_leaving_a_setuid_program(services: Services, tmp_path: Path) -> None:
    record = attack(services, tmp_path, "setuid")
    assert record["status"] == "succeeded"
    planted = (tmp_path / "out" / "sh").stat()
    assert planted.st_uid == os.geteuid()
    assert not planted.st_mode & (stat.S_ISUID | stat.S_ISGID)


def test_attack_using_the_network(services: Services, tmp_path: Path) -> None:
    record = attack(services, tmp_path, "network")
    assert record["status"] == "succeeded"
    assert (tmp_path / "out" / "interfaces").read_text().split() == ["lo"]
    report = (tmp_path / "out" / "report").read_text().splitlines()
    assert report == [
        "blocked connect-docker-gateway",
        "blocked connect-public-ip",
        "blocked connect-dns",
    ]


def test_attack_forking_without_bound(services: Services, tmp_path: Path) -> None:
    record = attack(services, tmp_path, "forks")
    assert record["status"] == "failed"
    forks = int((tmp_path / "out" / "forks").read_text())
    assert 1 <= forks < 32  # stopped by the pids limit
    assert "can't fork" in (tmp_path / "rec" / "run.stderr.log").read_text()


def test_attack_fork_bomb(services: Services, tmp_path: Path, engine: Engine) -> None:
    record = attack(services, tmp_path, "bomb", "--timeout", "3s")
    assert record["status"] in ("failed", "timed-out")  # out of forks, or killed at 3 s
    assert record["duration_s"] < 3 + 10
    counts = [int(n) for n in (tmp_path / "out" / "procs").read_text().split()]
    assert counts and max(counts) <= 32  # never more processes than the pids limit
    assert engine.answers()


def test_attack_exhausting_memory(services: Services, tmp_path: Path) -> None:
    record = attack(services, tmp_path, "memory")
    assert record["status"] == "failed" and record["oom_killed"] is True
    assert record["exit_code"] == 137 and "memory limit" in record["error"]
    assert not (tmp_path / "out" / "size").exists()


def deep_tree(root: Path, levels: int, name: str = "i" * 200) -> Path:
    """A folder chain deeper than PATH_MAX below ``root`` (made by descriptor), a file at the
    bottom; returns the top folder."""
    top = root / name
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir(name, 0o755, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as fh:
            fh.write("at the bottom\n")
    finally:
        os.close(fd)
    return top


def owners(root: Path) -> set[int]:
    found = set()
    for _, dirs, files, fd in os.fwalk(root):
        for name in (*dirs, *files):
            found.add(os.stat(name, dir_fd=fd, follow_symlinks=False).st_uid)
    return found


def test_attack_deeper_than_path_max(services: Services, tmp_path: Path) -> None:
    """Issue 11.2: an output tree deeper than PATH_MAX once crashed the hand-back (traceback,
    exit 3, record incomplete, entries left to uid 10001). Inputs that deep must work too, and
    reproduce of such a run."""
    folder = inputs(tmp_path)
    deep_tree(folder, 25)  # 25 x 201 characters: over 4096
    record = attack(services, tmp_path, "deep")
    assert record["status"] == "succeeded", record["error"]
    files = {f["path"]: f for f in record["outputs"]["result"]["manifest"]["files"]}
    bottom = [p for p in files if p.endswith("/file.txt")]
    assert len(bottom) == 1 and len(bottom[0]) > 4096
    assert files[bottom[0]]["sha256"] == sha(b"bottom\n")
    assert files["loop"]["kind"] == "symlink" and files["fifo"]["kind"] == "fifo"
    assert "locked/f" in files
    inputs_seen = [f["path"] for f in record["inputs"]["data"]["manifest"]["files"]]
    assert any(p.endswith("/deep.txt") and len(p) > 4096 for p in inputs_seen)
    if os.geteuid() == 0:
        assert owners(tmp_path / "out") == {0}  # nothing left to the service's uid
        locked = os.stat(tmp_path / "out" / "locked" / "f")
        assert not locked.st_mode & stat.S_ISUID
    code, out, err = gefreg(services, "reproduce", str(tmp_path / "rec" / "run.json"))
    assert code == 0, err
    assert out.splitlines()[-1].startswith(f"identical: {len(files)} files the same")


def test_attack_flooding_stdout_is_capped_and_bounded_in_time(
    services: Services, tmp_path: Path
) -> None:
    """Issue 11.5: 1 GB on stdout made a 5-minute run take 6 and left a 1 GB log twice. Logs
    are captured while the service runs, capped per stream, the rest counted; the engine keeps
    none; the timeout covers the whole run."""
    start = time.monotonic()
    record = attack(services, tmp_path, "spew", "--timeout", "3s", "--log-limit", "1m")
    assert time.monotonic() - start < 3 + 15
    assert record["status"] == "timed-out" and record["duration_s"] < 3 + 5
    out = record["logs"]["stdout"]
    assert out["size"] == out["limit"] == 2**20 and out["dropped"] > 0
    assert out["note"].startswith(f"truncated: {out['dropped']} bytes dropped")
    assert (tmp_path / "rec" / "run.stdout.log").stat().st_size == 2**20
    assert record["applied"]["log_driver"] == "none"  # no copy on the engine's side
    assert record["limits"]["logs"] == 2**20 and record["limits"]["from_command_line"] == [
        "timeout", "logs",
    ]  # fmt: skip
    # a service that prints 300 MB and ends: every byte counted, the first 1 MiB kept
    record = attack(
        services, tmp_path, "shout", "--log-limit", "1m", "--timeout", "60s",
        record=tmp_path / "rec2.json", out=tmp_path / "out2",
    )  # fmt: skip
    assert record["status"] == "succeeded", record["error"]
    assert record["logs"]["stdout"]["dropped"] == 300_000_000 - 2**20
    assert record["logs"]["stderr"]["dropped"] == 0 and record["logs"]["stderr"]["size"] == 5


def test_attack_filling_the_disk(services: Services, tmp_path: Path) -> None:
    """Issue 11.5: 3 GB of output succeeded. The outputs' disk is limited (--disk, default
    10g) by the kernel when gefreg can make a file system for them, else by watching."""
    record = attack(services, tmp_path, "fill", "--disk", "50m")
    assert record["status"] == "failed"
    assert record["error"] == "output limit exceeded (disk 50m)"
    assert record["limits"]["disk"] == 50 * 2**20
    assert record["disk_enforced_by"] == ("filesystem" if os.geteuid() == 0 else "watching")
    assert (tmp_path / "out" / "big").stat().st_size <= 55 * 2**20  # stopped near the limit
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".gefreg-run-")]
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()  # nothing left mounted
    # and from the catalog record (resources.disk), without --disk
    record = attack(services, tmp_path, "fill", record=tmp_path / "r3.json", out=tmp_path / "o3")
    assert record["status"] == "succeeded"  # 100 MB is far below the default 10g
    assert (
        record["limits"]["disk"] == 10 * 2**30
        and "disk" not in record["limits"]["from_command_line"]
    )
    code, found = run(
        services, "filler", tmp_path, record=tmp_path / "r4.json", out=tmp_path / "o4"
    )
    assert code == 1 and found["error"] == "output limit exceeded (disk 50m)"
    assert found["limits"]["disk"] == 50 * 2**20 and found["limits"]["from_command_line"] == []


def taken(root: Path) -> int:
    """Bytes the files under ``root`` take on disk (allocated blocks; a hard link counted once)."""
    seen: dict[tuple[int, int], int] = {}
    for _, _, files, fd in os.fwalk(root):
        for name in files:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(seen.values())


def test_attack_multiplying_its_outputs(services: Services, tmp_path: Path) -> None:
    """Issue 11.5: sparse files and hard links take little room under the disk limit, but copied
    out of the run's own file system file by file they took 800 MiB of the user's disk for a
    50m limit, and hashing reads every byte of them (8 GiB of holes: half a minute, and a
    service could make thousands). The files' sizes count against the limit (each file once);
    delivery keeps holes and links."""
    start = time.monotonic()
    record = attack(services, tmp_path, "sparse", "--disk", "50m")
    assert time.monotonic() - start < 20  # the holes were not read
    assert record["status"] == "failed" and record["error"] == (
        "output limit exceeded (disk 50m): the files' sizes add up to 8388608000 bytes; they "
        "were not hashed"
    )
    assert record["outputs"]["result"]["manifest"] is None
    assert len(list((tmp_path / "out").iterdir())) == 200  # delivered, as they are
    assert taken(tmp_path / "out") <= 50 * 2**20  # what the user's disk holds
    # one 40 MB file under 21 names: 40 MB, within the limit, delivered as one file
    record = attack(
        services, tmp_path, "links", "--disk", "50m", record=tmp_path / "l.json",
        out=tmp_path / "links",
    )  # fmt: skip
    assert record["status"] == "succeeded", record["error"]
    files = record["outputs"]["result"]["manifest"]["files"]
    assert len(files) == 21 and {f["sha256"] for f in files} == {sha(bytes(40_000_000))}
    assert taken(tmp_path / "links") <= 50 * 2**20
    big = (tmp_path / "links" / "big").stat()
    assert big.st_nlink == 21 and (tmp_path / "links" / "d" / "l0").stat().st_ino == big.st_ino


def test_ulimits_are_set_and_recorded(services: Services, tmp_path: Path) -> None:
    record = attack(services, tmp_path, "limits", "--disk", "64m")
    assert record["status"] == "succeeded", record["error"]
    assert (tmp_path / "out" / "nofile").read_text().strip() == "4096"
    assert int((tmp_path / "out" / "fsize").read_text()) * 512 == 64 * 2**20  # 512-byte blocks
    assert record["limits"]["ulimits"] == {"nofile": 4096, "fsize": 64 * 2**20}
    assert record["applied"]["ulimits"] == {"nofile": 4096, "fsize": 64 * 2**20}
    # a re-run takes its limits from the run record: the same fsize, so the same outputs
    code, out, err = gefreg(services, "reproduce", str(tmp_path / "rec" / "run.json"), "--json")
    assert code == 0, out + err
    rerun = read_run_record(Path(json.loads(out)["rerun"]))
    assert rerun["limits"]["disk"] == 64 * 2**20 and rerun["limits"]["ulimits"]["fsize"] == 2**26


def test_attack_running_forever(services: Services, tmp_path: Path) -> None:
    record = attack(services, tmp_path, "forever", "--timeout", "2s")
    assert record["status"] == "timed-out" and record["exit_code"] == 137


# --- a caller who is not root -----------------------------------------------------------------


def test_non_root_caller_runs_as_itself(engine: Engine) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to become another user")
    docker_gid = os.stat("/var/run/docker.sock").st_gid
    root = Path(tempfile.mkdtemp(prefix="gefreg-nonroot-"))
    try:
        os.chmod(root, 0o755)
        own = build_services(root / "build", static_service("copier", COPIER))
        for path in root.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(root / "build", 0o755)
        work = root / "work"
        work.mkdir()
        inputs(work)
        os.chown(work, 1234, 1234)
        command = [
            "setpriv", "--reuid=1234", "--regid=1234", f"--groups={docker_gid}",
            sys.executable, "-m", "gefreg", "run", "--catalog", str(own.catalog), "copier",
            "-i", str(work / "in"), "-o", str(work / "out"),
            "--record", str(work / "rec" / "run.json"), "--json",
        ]  # fmt: skip
        done = subprocess.run(
            command, env={**os.environ, **own.env}, cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        assert record["caller"] == {"uid": 1234, "gid": 1234}
        assert record["run_as"] == "1234:1234" and record["handed_back"] is None
        assert {p.stat().st_uid for p in (work / "out").rglob("*")} == {1234}

        # a service that leaves a folder its (non-root) caller cannot read: a failed run
        entry = own.catalog / "copier"
        (entry / "run.sh").write_text("mkdir /data/out/locked\nchmod 0 /data/out/locked\n")
        os.chmod(entry / "busybox", 0o755)
        build_entry(own.settings, load_entry(entry, set()), engine=engine)
        for path in own.settings.state_dir.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        record = run_as_1234(command, own, work, "out2")
        assert record["status"] == "failed"
        assert record["error"] == (
            "the outputs could not all be hashed: result/locked: permission denied"
        )

        # the disk limit without root is watched: the container is stopped once over it
        (entry / "run.sh").write_text(
            "i=0\nwhile [ $i -lt 200 ]; do\n"
            "  head -c 5000000 /dev/zero > /data/out/f$i; i=$((i+1)); sleep 0.05\ndone\n"
        )
        build_entry(own.settings, load_entry(entry, set()), engine=engine)
        for path in own.settings.state_dir.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        record = run_as_1234([*command, "--disk", "50m"], own, work, "out-disk")
        assert record["status"] == "failed" and record["disk_enforced_by"] == "watching"
        assert record["error"] == "output limit exceeded (disk 50m)"
        assert record["duration_s"] < 10  # not the 12 s and 1 GB the service would have taken
        written = sum(f.stat().st_size for f in (work / "out-disk").iterdir())
        assert 50 * 10**6 < written < 80 * 10**6
        assert not [f for f in (work / "out-disk").iterdir() if f.name.startswith(".gefreg-run-")]
        assert {f.stat().st_uid for f in (work / "out-disk").iterdir()} == {1234}

        # an image whose program cannot be executed: the run failed (exit 1), not the engine
        os.chmod(entry / "busybox", 0o644)
        build_entry(own.settings, load_entry(entry, set()), engine=engine)
        for path in own.settings.state_dir.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        record = run_as_1234(command, own, work, "out3")
        assert record["status"] == "failed" and record["exit_code"] is not None
        assert record["error"].startswith("the service could not start:")
        assert "permission denied" in record["error"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_as_1234(command: list[str], own: Services, work: Path, out: str) -> dict[str, Any]:
    """Run ``command`` again into a new output folder and record; expect exit 1."""
    record_file = work / "rec" / f"{out}.json"
    command = [*command]
    command[command.index("-o") + 1] = str(work / out)
    command[command.index("--record") + 1] = str(record_file)
    done = subprocess.run(
        command, env={**os.environ, **own.env}, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 1 and done.stdout, done.stderr
    return dict(json.loads(done.stdout))
