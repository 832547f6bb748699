"""`gefreg registry serve|status|stop` for real: a detached docker-registry on a free port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg.cli import cli
from gefreg.registry import processes, server_launch
from gefreg.registry import server as regserver
from gefreg.registry.client import RegistryClient
from gefreg.registry.media_types import OCI_MANIFEST
from tests.registry_fixtures import LocalRegistry, free_port, tiny_image

pytestmark = pytest.mark.registry  # Debian's docker-registry (CNCF Distribution)


@dataclass
class Place:
    data: Path
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def gefreg(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Place]:
    """A data folder and a free port; whatever was started there is stopped afterwards."""
    monkeypatch.delenv(regserver.ENV_DATA, raising=False)
    spot = Place(tmp_path / "registry-data", free_port())
    try:
        yield spot
    finally:
        regserver.stop(spot.data)


def serve(place: Place, *extra: str) -> tuple[int, str]:
    return gefreg("registry", "serve", "--port", str(place.port), "--data", str(place.data), *extra)


def test_serve_status_stop(place: Place) -> None:
    code, out = serve(place)
    assert code == 0, out
    assert f"registry serving on {place.address} (binary, pid " in out
    # gefreg would use 127.0.0.1:5000 ($GEFREG_REGISTRY is unset): it says how to point it here
    assert f"\n  export GEFREG_REGISTRY={place.address}\n" in out
    status = regserver.status(place.data)
    assert status.running and status.answers and status.healthy
    assert status.pid is not None and os.getsid(status.pid) == status.pid  # its own session
    config = (place.data / "config.yml").read_text()
    assert f'addr: "{place.address}"' in config and "enabled: true" in config

    image = tiny_image("served")  # it really is a registry, storing under the data folder
    with RegistryClient(place.address) as client:
        for digest, data in image.blobs():
            client.push_blob("cli/test", digest, data)
        client.put_manifest("cli/test", "1.0", image.manifest, OCI_MANIFEST)
    assert (place.data / "storage" / "docker" / "registry" / "v2" / "repositories" / "cli").is_dir()

    result = CliRunner().invoke(
        cli,
        ["registry", "serve", "--port", str(place.port), "--data", str(place.data)],
        env={"GEFREG_REGISTRY": place.address},
    )
    out = result.stdout
    assert result.exit_code == 0 and f"already serving on {place.address} (pid {status.pid})" in out
    assert "export GEFREG_REGISTRY" not in out  # gefreg already uses it

    code, out = gefreg("registry", "status", "--data", str(place.data))
    assert code == 0 and "answers /v2/, healthy" in out, out
    code, out = gefreg("registry", "status", "--data", str(place.data), "--json")
    report = json.loads(out)
    assert report["running"] and report["address"] == place.address
    assert report["storage"] == str(place.data / "storage") and report["backend"] == "binary"

    code, out = gefreg("registry", "stop", "--data", str(place.data))
    assert code == 0 and f"registry on {place.address} stopped" in out, out
    assert processes.answers(place.address) is None
    code, out = gefreg("registry", "status", "--data", str(place.data))
    assert code == 1 and "registry not running" in out, out
    code, out = gefreg("registry", "stop", "--data", str(place.data))
    assert code == 0 and "registry not running" in out, out


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_the_server_collects_garbage_less_often_unless_told(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    assert serve(place)[0] == 0
    pid = regserver.status(place.data).pid
    assert pid is not None and environ_of(pid)["GOGC"] == server_launch.GOGC
    regserver.stop(place.data)
    monkeypatch.setenv("GOGC", "150")  # the user's own setting wins
    assert serve(place)[0] == 0
    pid = regserver.status(place.data).pid
    assert pid is not None and environ_of(pid)["GOGC"] == "150"


def test_data_folder_from_the_environment(place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(regserver.ENV_DATA, str(place.data))
    code, out = gefreg("registry", "serve", "--port", str(place.port))
    assert code == 0 and str(place.data / "storage") in out, out
    assert regserver.status().running


def test_default_data_folder_is_the_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv(regserver.ENV_DATA, raising=False)
    expected = Path(platformdirs.user_data_dir("gefreg")) / "registry"
    assert regserver.data_dir() == expected


def test_a_port_taken_by_another_program_is_exit_3(place: Place) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", place.port))
        busy.listen()
        code, out = serve(place)
    assert code == 3
    assert f"port {place.port} on 127.0.0.1 is already in use by another program" in out
    assert "hint: choose another port" in out


def test_a_port_taken_by_another_registry_is_exit_3(place: Place, registry: LocalRegistry) -> None:
    place.port = registry.port
    code, out = serve(place)
    assert code == 3 and "already in use by another registry" in out, out


def test_same_data_on_another_port_is_exit_3(place: Place) -> None:
    code, out = serve(place)
    assert code == 0, out
    code, out = gefreg("registry", "serve", "--port", str(free_port()), "--data", str(place.data))
    assert code == 3 and f"already serves on {place.address}" in out, out


def test_a_crashed_registry_is_reported_and_served_again(place: Place) -> None:
    code, out = serve(place)
    assert code == 0, out
    image = tiny_image("survives")
    with RegistryClient(place.address) as client:
        for digest, data in image.blobs():
            client.push_blob("cli/crash", digest, data)
        client.put_manifest("cli/crash", "1.0", image.manifest, OCI_MANIFEST)
    pid = regserver.status(place.data).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while regserver.status(place.data).running and time.monotonic() < deadline:
        time.sleep(0.02)

    code, out = gefreg("registry", "status", "--data", str(place.data))
    assert code == 1 and "stopped without `gefreg registry stop`" in out, out
    code, out = serve(place)
    assert code == 0 and "registry serving on" in out, out
    with RegistryClient(place.address) as client:
        assert client.head_manifest("cli/crash", "1.0") == image.digest  # storage kept


def test_a_registry_that_dies_at_start_shows_its_log(
    place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin" / "docker-registry"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'configuration error: storage is broken' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    code, out = serve(place)
    assert code == 3
    assert "the registry exited while starting" in out and "storage is broken" in out
    assert not (place.data / "state.json").exists()


@pytest.mark.docker
def test_missing_registry_image_is_exit_3_with_a_hint(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(server_launch.ENV_IMAGE, "gefreg-test/no-such-registry-image:0")
    code, out = serve(place, "--backend", "docker")
    assert (
        code == 3 and "cannot run the registry image gefreg-test/no-such-registry-image:0" in out
    ), out
    assert "apt-get install docker-registry" in out


def test_a_health_port_taken_meanwhile_is_picked_again(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = iter([taken])
        real = processes.free_port
        monkeypatch.setattr(regserver, "free_port", lambda: next(ports, None) or real())
        code, out = serve(place)
    assert code == 0, out
    log = (place.data / "registry.log").read_text()
    assert f"127.0.0.1:{taken}: bind: address already in use" in log
    assert regserver.status(place.data).healthy


STANDIN = "gefreg-test/registry-standin:2"
STANDIN_DOCKERFILE = """\
FROM scratch
COPY ld-linux-x86-64.so.2 /lib64/ld-linux-x86-64.so.2
COPY libc.so.6 /lib/x86_64-linux-gnu/libc.so.6
COPY docker-registry /bin/registry
EXPOSE 5000
ENTRYPOINT ["/bin/registry", "serve"]
CMD ["/etc/docker/registry/config.yml"]
"""


@pytest.fixture
def standin_image(tmp_path: Path) -> Iterator[str]:
    """An image with registry:2's interface, built from Debian's docker-registry binary
    (registry:2 itself cannot be pulled on these machines)."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed")
    context = tmp_path / "standin"
    context.mkdir()
    for source in (binary, "/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"):
        shutil.copy(Path(source).resolve(), context / Path(source).name)
    (context / "Dockerfile").write_text(STANDIN_DOCKERFILE)
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    build = subprocess.run(
        ["docker", "build", "-q", "-t", STANDIN, str(context)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    try:
        yield STANDIN
    finally:
        subprocess.run(["docker", "rmi", "-f", STANDIN], capture_output=True, check=False)


@pytest.mark.docker
def test_docker_backend_runs_the_registry_image(
    place: Place, standin_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(server_launch.ENV_IMAGE, standin_image)
    code, out = serve(place, "--backend", "docker")
    assert code == 0, out
    assert f"registry serving on {place.address} (docker, container " in out
    status = regserver.status(place.data)
    assert status.backend == "docker" and status.container and status.answers and status.healthy
    inspected = subprocess.run(
        ["docker", "inspect", "--format", "{{json .Config.Env}}", status.container],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"GOGC={server_launch.GOGC}" in json.loads(inspected.stdout)

    image = tiny_image("in a container")
    with RegistryClient(place.address) as client:
        for digest, data in image.blobs():
            client.push_blob("cli/docker", digest, data)
        client.put_manifest("cli/docker", "1.0", image.manifest, OCI_MANIFEST)
    assert (place.data / "storage" / "docker" / "registry" / "v2" / "repositories").is_dir()

    code, out = serve(place, "--backend", "docker")
    assert code == 0 and "already serving" in out, out
    code, out = gefreg("registry", "stop", "--data", str(place.data))
    assert code == 0 and "stopped" in out, out
    from gefreg.engine.registry_container import registry_container_running

    assert not registry_container_running(status.container)
    assert processes.answers(place.address) is None
