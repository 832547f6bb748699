"""`gefreg publish`, `gefreg verify` and `gefreg run NAME@VERSION` against a real registry.

The registry is CNCF Distribution (Debian's `docker-registry`), which does not enforce tag
immutability: every refusal below is gefreg's own. What the registry holds is checked with an
independent client, skopeo (the sha256 of the raw manifest is the manifest digest). Entries are
FROM-scratch busybox images that build in about a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gefreg.cli import cli
from gefreg.registry.client import RegistryClient
from tests.fake_http import Reply, serving
from tests.helpers import git, git_repository, remove_own_images
from tests.integration.test_build import static_catalog
from tests.registry_fixtures import LocalRegistry, free_port

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
POLICY = """\
# No vulnerability DB can be downloaded on the test machines: secrets and
# misconfigurations still gate the publish.
vulnerability-db-unavailable: warn
"""

if shutil.which("skopeo") is None:  # pragma: no cover - the machine set-up installs it
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but skopeo is not installed (make setup)", pytrace=False)
    pytest.skip("skopeo is not installed", allow_module_level=True)


def gefreg(*args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI in this process, as a user calls it."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)


@dataclass
class Service:
    """One catalog entry published to one registry, with the commands a user would type."""

    catalog: Path
    name: str
    registry: str

    @property
    def entry(self) -> Path:
        return self.catalog / self.name

    @property
    def ledger(self) -> Path:
        return self.entry / "releases.jsonl"

    def opts(self) -> list[str]:
        return ["--catalog", str(self.catalog), "--registry", self.registry]

    def build(self, *extra: str, env: dict[str, str] | None = None) -> str:
        result = gefreg("build", *self.opts(), self.name, "--json", *extra, env=env)
        assert result.exit_code == 0, result.stderr
        return str(json.loads(result.stdout)["image_id"])

    def publish(self, *extra: str) -> Result:
        return gefreg("publish", *self.opts(), self.name, *extra)

    def verify(self, *extra: str) -> Result:
        return gefreg("verify", *self.opts(), *extra)

    def releases(self) -> list[dict[str, Any]]:
        if not self.ledger.exists():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines()]

    def ledger_bytes(self) -> bytes | None:
        return self.ledger.read_bytes() if self.ledger.exists() else None

    def set_version(self, version: str) -> None:
        record = self.entry / "service.yaml"
        lines = [
            f"version: {json.dumps(version)}" if line.startswith("version:") else line
            for line in record.read_text().splitlines()
        ]
        record.write_text("\n".join(lines) + "\n")

    def remote(self, tag: str) -> str | None:
        return registry_digest(self.registry, self.name, tag)


def registry_digest(address: str, name: str, tag: str) -> str | None:
    """The manifest digest of NAME:TAG as skopeo sees it (None: no such tag)."""
    done = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{address}/{name}:{tag}"],
        capture_output=True,
    )
    if done.returncode != 0:
        if b"manifest unknown" in done.stderr:
            return None
        raise AssertionError(f"skopeo failed: {done.stderr.decode(errors='replace')}")
    return "sha256:" + hashlib.sha256(done.stdout).hexdigest()


def remote_tags(address: str, name: str) -> set[str]:
    done = subprocess.run(
        ["skopeo", "list-tags", "--tls-verify=false", f"docker://{address}/{name}"],
        capture_output=True,
        check=True,
    )
    return set(json.loads(done.stdout)["Tags"])


def run_version(pub: Service, version: str, inputs: Path, output: str, *extra: str) -> Result:
    """`gefreg run NAME@VERSION -i INPUTS -o OUTPUT` against the entry's catalog and registry."""
    return gefreg(
        "run", *pub.opts(), f"{pub.name}@{version}", "-i", str(inputs), "-o", output, *extra
    )


def entry(tmp_path: Path, name: str, registry: str, *, big: int = 0) -> Service:
    """A publishable static entry; ``big`` bytes of random data in a shipped file make the
    upload take a while."""
    files = {"busybox": "/bin/busybox", "run.sh": "/opt/run.sh"}
    if big:
        files["blob.bin"] = "/opt/blob.bin"
    catalog = static_catalog(tmp_path, name=name, files=files)
    if big:
        (catalog / name / "blob.bin").write_bytes(os.urandom(big))
    (catalog / "policy.yaml").write_text(POLICY)
    return Service(catalog, name, registry)


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(autouse=True)
def _remove_images(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test here builds in catalogs under its own tmp_path (so in tag namespaces of its
    own) and publishes to this session's registries: exactly those images are removed
    afterwards — never those of another session running the same tests on the same engine."""
    yield from removing_test_images(tmp_path, request)


def removing_test_images(
    tmp_path: Path, request: pytest.FixtureRequest, names: str = "pub-"
) -> Iterator[None]:
    """For an autouse fixture: afterwards, remove the images of the catalogs under ``tmp_path``
    and of the entries named ``names``* in the registries the test uses (asked for now, so
    they are still up when this runs)."""
    published = [
        f"{request.getfixturevalue(name).address}/{names}"
        for name in ("registry", "fresh_registry")
        if name in request.fixturenames
    ]
    yield
    catalogs = [p for p in tmp_path.rglob("catalog") if (p / "bases").is_dir()]
    remove_own_images(catalogs, published)


# --- immutability -----------------------------------------------------------------------------


def test_publish_twice_is_a_no_op(tmp_path: Path, registry: LocalRegistry) -> None:
    pub = entry(tmp_path, "pub-twice", registry.address)
    pub.build()
    first = pub.publish("--json")
    assert first.exit_code == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["status"] == "published" and out["floating"] == ["1", "1.0", "latest"]
    digest = out["digest"]
    assert pub.remote("1.0.0") == digest
    for tag in ("1", "1.0", "latest"):
        assert pub.remote(tag) == digest
    # SBOM and scan report as artifacts under the sha256-<hex>.<kind> tag scheme
    scheme = digest.replace(":", "-")
    assert {f"{scheme}.sbom", f"{scheme}.scan"} <= remote_tags(registry.address, pub.name)
    (line,) = pub.releases()
    assert line["digest"] == digest and line["version"] == "1.0.0"
    assert line["scan"]["vulnerabilities_evaluated"] is False

    again = pub.publish()
    assert again.exit_code == 0, again.stderr
    assert f"pub-twice 1.0.0: unchanged {registry.address}/pub-twice@{digest}" in again.stderr
    assert len(pub.releases()) == 1
    assert pub.remote("1.0.0") == digest


def test_publish_scans_with_the_trivy_options_it_is_given(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    """`publish` takes the options of `scan`: a DB filled elsewhere (--cache-dir with
    --skip-db-update) makes the vulnerability part evaluated, and the ledger says with which."""
    from tests.trivy_db import METADATA, write_empty_db

    pub = entry(tmp_path, "pub-offline-db", registry.address)
    write_empty_db(tmp_path / "trivy")
    pub.build()
    done = pub.publish("--cache-dir", str(tmp_path / "trivy"), "--skip-db-update")
    assert done.exit_code == 0, done.stderr
    (line,) = pub.releases()
    assert line["scan"]["vulnerabilities_evaluated"] is True
    assert line["scan"]["trivy"]["vulnerability_db"]["version"] == METADATA["Version"]


def test_rebuild_without_cache_then_publish_again_is_a_no_op(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    pub = entry(tmp_path, "pub-again", registry.address)
    first_image = pub.build()
    assert pub.publish().exit_code == 0
    before = pub.ledger_bytes()

    assert pub.build("--no-cache") == first_image  # reproducible: the very same image
    again = pub.publish()
    assert again.exit_code == 0, again.stderr
    assert "unchanged" in again.stderr
    assert pub.ledger_bytes() == before


def test_another_image_under_a_published_version_is_refused(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    """Same record and files, other bytes: here the catalog's history was rewritten, which
    moves the source date (the commit time of the record's version) and so the image."""
    pub = entry(tmp_path, "pub-overwrite", registry.address)
    git_repository(pub.catalog, date="2025-01-01T00:00:00Z")
    first_image = pub.build()
    done = pub.publish()
    assert done.exit_code == 0, done.stderr
    published = pub.releases()[0]["digest"]
    before = pub.ledger_bytes()

    git(pub.catalog, "commit", "-q", "--amend", "--no-edit", date="2025-02-01T00:00:00Z")
    rebuilt = pub.build()
    assert rebuilt != first_image
    refused = pub.publish()
    assert refused.exit_code == 1
    message = refused.stderr
    assert published in message and "Published versions never change" in message
    assert f"gefreg diff pub-overwrite@1.0.0 {rebuilt}" in message
    other = message.split("this build is ", 1)[1].split(".", 1)[0]
    assert other.startswith("sha256:") and other != published
    assert pub.remote("1.0.0") == published
    assert pub.ledger_bytes() == before


def test_version_rules_bump_lower_and_prerelease(tmp_path: Path, registry: LocalRegistry) -> None:
    pub = entry(tmp_path, "pub-rules", registry.address)
    pub.build()
    assert pub.publish().exit_code == 0
    v100 = pub.remote("1.0.0")

    (pub.entry / "run.sh").write_text("echo changed from $0\n")
    pub.build()
    unbumped = pub.publish()
    assert unbumped.exit_code == 1
    assert "its version was not bumped" in unbumped.stderr and "bump the version" in unbumped.stderr
    assert len(pub.releases()) == 1 and pub.remote("1.0.0") == v100

    pub.set_version("1.0.2")
    pub.build()
    bumped = pub.publish("--json")
    assert bumped.exit_code == 0, bumped.stderr
    v102 = json.loads(bumped.stdout)["digest"]
    assert json.loads(bumped.stdout)["floating"] == ["1", "1.0", "latest"]
    assert v102 != v100
    assert [r["version"] for r in pub.releases()] == ["1.0.0", "1.0.2"]
    assert {tag: pub.remote(tag) for tag in ("1.0.0", "1.0.2", "1", "1.0", "latest")} == {
        "1.0.0": v100,
        "1.0.2": v102,
        "1": v102,
        "1.0": v102,
        "latest": v102,
    }

    pub.set_version("1.0.1")  # lower than 1.0.2 in the same 1.0 line
    (pub.entry / "run.sh").write_text("echo changed again from $0\n")
    pub.build()
    lower = pub.publish()
    assert lower.exit_code == 1
    assert "1.0.1 is not higher than 1.0.2, the highest release of the 1.0 line" in lower.stderr
    assert pub.remote("1.0.1") is None and len(pub.releases()) == 2

    pub.set_version("0.9.0")  # a new line below the highest release: refused, never permanent
    pub.build()
    below = pub.publish()
    assert below.exit_code == 1 and "would open the new line 0.9 below 1.0.2" in below.stderr
    assert pub.remote("0.9.0") is None and len(pub.releases()) == 2

    pub.set_version("2.0.0-rc.1")
    pub.build()
    pre = pub.publish("--json")
    assert pre.exit_code == 0, pre.stderr
    assert json.loads(pre.stdout)["floating"] == []
    assert pub.remote("2.0.0-rc.1") == json.loads(pre.stdout)["digest"]
    assert pub.remote("latest") == v102 and pub.remote("1") == v102
    assert pub.remote("2") is None and pub.remote("2.0") is None

    pub.set_version("1.0.3")  # a backport to the 1.0 line after 2.0.0-rc.1: allowed
    pub.build()
    backport = pub.publish("--json")
    assert backport.exit_code == 0, backport.stderr
    assert json.loads(backport.stdout)["floating"] == ["1", "1.0", "latest"]
    assert pub.verify().exit_code == 0


def test_concurrent_publishers_of_one_version(tmp_path: Path, registry: LocalRegistry) -> None:
    """Two CI jobs, one catalog folder, each builds the version without a cache (the same
    image: builds are reproducible) and publishes it at once: one publishes, the other finds
    it published; one ledger line."""
    pub = entry(tmp_path, "pub-race", registry.address)
    states = [tmp_path / "state-a", tmp_path / "state-b"]
    images = [pub.build("--no-cache", env={"GEFREG_STATE": str(state)}) for state in states]
    assert images[0] == images[1]
    command = [sys.executable, "-m", "gefreg", "publish", *pub.opts(), pub.name]
    procs = [
        subprocess.Popen(
            command,
            env={**os.environ, "GEFREG_STATE": str(state), "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for state in states
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    outcomes = [(p.returncode, err) for p, err in zip(procs, errors, strict=True)]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    (line,) = pub.releases()
    assert line["image_id"] == images[0]
    said = sorted(err.split(f"{pub.name} 1.0.0: ")[-1].split()[0] for _, err in outcomes)
    assert said == ["published", "unchanged"], outcomes
    assert pub.remote("1.0.0") == line["digest"] == pub.remote("latest")
    assert pub.verify().exit_code == 0


# --- drift: pushes outside gefreg -------------------------------------------------------------


def test_external_overwrite_is_reported_and_repaired(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    pub = entry(tmp_path, "pub-drift", registry.address)
    pub.build()
    assert pub.publish().exit_code == 0
    ledger_digest = pub.releases()[0]["digest"]
    assert pub.verify().exit_code == 0

    intruder = pub.build("--no-cache")  # any other image will do
    for tag in ("1.0.0", "latest"):
        docker("tag", intruder, f"{registry.address}/{pub.name}:{tag}")
        docker("push", f"{registry.address}/{pub.name}:{tag}")
    moved = pub.remote("1.0.0")
    assert moved not in (None, ledger_digest)  # Distribution let the tag move

    found = pub.verify()
    assert found.exit_code == 1
    assert f"pub-drift: drift: {pub.name}:1.0.0 is {moved}, the ledger says {ledger_digest}" in (
        found.stdout
    )
    assert f"pub-drift: floating: {pub.name}:latest is {moved}" in found.stdout
    assert "verify FAILED" in found.stderr

    repaired = pub.verify("--repair")
    assert repaired.exit_code == 0, repaired.stdout + repaired.stderr
    assert "pub-drift: repaired:" in repaired.stdout
    assert pub.remote("1.0.0") == ledger_digest == pub.remote("latest")
    assert pub.verify().exit_code == 0


def test_unknown_version_tag_is_reported_and_not_repairable(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    pub = entry(tmp_path, "pub-unknown", registry.address)
    image = pub.build()
    assert pub.publish().exit_code == 0
    docker("tag", image, f"{registry.address}/{pub.name}:9.9.9")
    docker("push", f"{registry.address}/{pub.name}:9.9.9")

    found = pub.verify("--shallow")
    assert found.exit_code == 1
    assert f"{pub.name}:9.9.9 looks like a version but is not in the ledger" in found.stdout

    # gefreg cannot delete one tag through the registry API (Distribution deletes manifests,
    # with every tag on them, and this one is also 1.0.0's): it says so and keeps failing.
    tried = pub.verify("--repair")
    assert tried.exit_code == 1
    assert "pub-unknown: unknown-tag (not repaired):" in tried.stdout
    assert "delete the tag with the registry's own tools" in tried.stdout
    assert pub.remote("9.9.9") is not None and pub.remote("1.0.0") is not None


# --- the registry fails -----------------------------------------------------------------------


@contextmanager
def killed_during_upload(reg: LocalRegistry, name: str, threshold: int) -> Iterator[dict[str, int]]:
    """SIGKILL the registry as soon as one blob upload of ``name`` holds ``threshold`` bytes
    (Distribution streams an upload into _uploads/ID/data and moves it away once complete,
    so a file seen there is an upload under way)."""
    uploads = reg.storage / "docker" / "registry" / "v2" / "repositories" / name / "_uploads"
    seen: dict[str, int] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for data in uploads.glob("*/data"):
                try:
                    size = data.stat().st_size
                except FileNotFoundError:
                    continue
                if size >= threshold:
                    reg.kill()
                    seen["size"] = size
                    return
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()


def test_registry_killed_mid_upload_then_rerun(
    tmp_path: Path, fresh_registry: LocalRegistry
) -> None:
    size = 24 << 20
    pub = entry(tmp_path, "pub-killed", fresh_registry.address, big=size)
    pub.build()
    with killed_during_upload(fresh_registry, pub.name, 2 << 20) as seen:
        cut = pub.publish()
    assert seen, "the upload finished before the registry could be killed"
    assert cut.exit_code == 3, cut.stderr
    assert "did not answer" in cut.stderr and "Traceback" not in cut.stderr
    assert pub.ledger_bytes() is None

    fresh_registry.start()  # same port, same storage
    assert pub.remote("1.0.0") is None
    done = pub.publish("--json")
    assert done.exit_code == 0, done.stderr
    (line,) = pub.releases()
    assert line["digest"] == json.loads(done.stdout)["digest"] == pub.remote("1.0.0")
    assert pub.verify().exit_code == 0


def test_registry_lost_after_the_version_tag_then_rerun(
    tmp_path: Path, fresh_registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tag is up but the ledger line is not: verify points at the interrupted publish,
    and rerunning it (the same build) completes it."""
    pub = entry(tmp_path, "pub-after-tag", fresh_registry.address)
    pub.build()
    put_manifest = RegistryClient.put_manifest

    def put_then_crash(self: RegistryClient, repo: str, ref: str, body: bytes, media: str) -> str:
        digest = put_manifest(self, repo, ref, body, media)
        if ref == "1.0.0":
            fresh_registry.kill()
        return digest

    monkeypatch.setattr(RegistryClient, "put_manifest", put_then_crash)
    cut = pub.publish()
    monkeypatch.setattr(RegistryClient, "put_manifest", put_manifest)
    assert cut.exit_code == 3, cut.stderr
    assert pub.ledger_bytes() is None

    fresh_registry.start()
    tagged = pub.remote("1.0.0")
    assert tagged is not None and pub.remote("latest") is None
    found = pub.verify()
    assert found.exit_code == 1
    assert f"{pub.name}:1.0.0 looks like a version but is not in the ledger" in found.stdout
    assert "run it again" in found.stdout

    done = pub.publish("--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["digest"] == tagged == pub.releases()[0]["digest"]
    assert pub.remote("latest") == tagged
    assert pub.verify().exit_code == 0


def test_registry_down_at_publish_start(tmp_path: Path) -> None:
    pub = entry(tmp_path, "pub-down", f"127.0.0.1:{free_port()}")
    pub.build()
    down = pub.publish()
    assert down.exit_code == 3
    assert "did not answer GET /v2/" in down.stderr and "Connection refused" in down.stderr
    assert "scanning" not in down.stderr  # found out before the gate's scans and tests
    assert pub.ledger_bytes() is None


def test_registry_answering_500_at_publish_start(tmp_path: Path) -> None:
    with serving(lambda request: Reply(500, body=b"storage on fire")) as fake:
        pub = entry(tmp_path, "pub-500", fake.address)
        pub.build()
        failed = pub.publish()
        puts = fake.count(method="PUT")
    assert failed.exit_code == 3
    assert "HTTP 500" in failed.stderr and "Traceback" not in failed.stderr
    assert "scanning" not in failed.stderr
    assert puts == 0
    assert pub.ledger_bytes() is None


# --- running a published version --------------------------------------------------------------


def test_run_pulls_the_published_version_by_digest(tmp_path: Path, registry: LocalRegistry) -> None:
    pub = entry(tmp_path, "pub-run", registry.address)
    image = pub.build()
    assert pub.publish().exit_code == 0
    digest = pub.releases()[0]["digest"]
    docker("rmi", "-f", "--no-prune", image)  # the image and every tag of it
    gone = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
    assert gone.returncode != 0

    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text("some data\n")
    record_file = str(tmp_path / "run" / "run.json")
    ran = run_version(
        pub, "1.0.0", inputs, str(tmp_path / "out"), "--record", record_file, "--json"
    )
    assert ran.exit_code == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert record["image"]["source"] == "ledger"
    assert record["image"]["manifest_digest"] == digest
    assert record["image"]["image_id"] == image
    stdout = tmp_path / "run" / record["logs"]["stdout"]["path"]
    assert stdout.read_text() == "hello from /opt/run.sh\n"
    pulled = json.loads(docker("image", "inspect", "--format", "{{json .RepoDigests}}", image))
    assert f"{registry.address}/{pub.name}@{digest}" in pulled


def test_a_published_version_runs_with_its_own_interface_after_the_record_moved_on(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    pub = entry(tmp_path, "pub-moved", registry.address)
    pub.build()
    assert pub.publish().exit_code == 0
    assert pub.releases()[0]["interface"]["outputs"] == [{"name": "result", "path": "/data/output"}]
    # Version 1.1.0 renames its output port and is built; 1.0.0 must still run as published.
    record = pub.entry / "service.yaml"
    record.write_text(record.read_text().replace('"name": "result"', '"name": "report"'))
    pub.set_version("1.1.0")
    pub.build()
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text("data\n")
    ran = run_version(pub, "1.0.0", inputs, f"result={tmp_path / 'out'}", "--json")
    assert ran.exit_code == 0, ran.stderr
    assert json.loads(ran.stdout)["image"]["source"] == "ledger"
    old_port = run_version(pub, "1.1.0", inputs, f"result={tmp_path / 'out2'}")
    assert old_port.exit_code == 2 and "report" in old_port.stderr  # 1.1.0 has the new port
