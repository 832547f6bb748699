"""Issue 11.1, performed for real: run records that name an image the catalog never published —
a local image swapped in by ID, an image in another registry — are refused by `reproduce`
before anything is pulled or run (exit 1, naming the check); with --allow-untrusted the re-run
is recorded as ``trusted: false``. Trust is re-established from the catalog every time."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gefreg.cli import cli
from gefreg.engine import Engine
from tests.helpers import busybox_entry, make_catalog, own_run_containers
from tests.registry_fixtures import LocalRegistry

pytestmark = pytest.mark.docker

NAME = "tr-copy"
SCRIPT = "cp /data/in/a.txt /data/out/copy.txt\n"
EVIL = "echo pwned > /data/out/copy.txt\n"


def gefreg(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


@dataclass(frozen=True)
class Published:
    root: Path
    env: dict[str, str]
    opts: list[str]
    record: Path  # a successful run of tr-copy@1.0.0, pulled from the catalog's registry
    outside: str  # the ID of a local image gefreg never built or published
    state: Path

    def tampered(self, name: str, **image: Any) -> Path:
        data = json.loads(self.record.read_text())
        data["image"].update(image)
        path = self.root / f"{name}.json"
        path.write_text(json.dumps(data))
        return path

    def runs(self) -> list[Path]:
        return sorted((self.state / "runs").glob("*/run.json"))


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def published(tmp_path: Path, fresh_registry: LocalRegistry) -> Iterator[Published]:
    os.chmod(tmp_path, 0o755)
    catalog = make_catalog(
        tmp_path / "catalog",
        busybox_entry(
            NAME,
            SCRIPT,
            inputs=[{"name": "data", "path": "/data/in"}],
            outputs=[{"name": "result", "path": "/data/out"}],
        ),
    )
    (catalog / "policy.yaml").write_text("vulnerability-db-unavailable: warn\n")
    os.chmod(catalog / NAME / "busybox", 0o755)
    state = tmp_path / "state"
    env = {"GEFREG_STATE": str(state)}
    opts = ["--catalog", str(catalog), "--registry", fresh_registry.address]
    for command in ("build", "publish"):
        code, _, err = gefreg(env, command, *opts, NAME)
        assert code == 0, err
    (tmp_path / "in").mkdir(mode=0o755)
    (tmp_path / "in" / "a.txt").write_text("alpha\n")
    record = tmp_path / "rec" / "run.json"
    code, _, err = gefreg(
        env, "run", *opts, f"{NAME}@1.0.0", "-i", str(tmp_path / "in"),
        "-o", str(tmp_path / "out"), "--record", str(record),
    )  # fmt: skip
    assert code == 0, err
    # an image outside the catalog, with the same layout and another script
    context = tmp_path / "outside"
    context.mkdir()
    (context / "busybox").write_bytes((catalog / NAME / "busybox").read_bytes())
    os.chmod(context / "busybox", 0o755)
    (context / "run.sh").write_text(EVIL)
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY run.sh /opt/run.sh\n"
        "LABEL org.gefreg.test=run-trust\n"
    )
    tag = f"gefreg-test/outside-{os.urandom(6).hex()}:1"
    docker("build", "-q", "-t", tag, str(context))
    outside = docker("image", "inspect", "-f", "{{.Id}}", tag).strip()
    yield Published(tmp_path, env, opts, record, outside, state)
    engine = Engine.connect()
    for container in own_run_containers(engine, tmp_path):
        engine.remove_container(container)
    subprocess.run(["docker", "rmi", "-f", outside], capture_output=True, check=False)


def test_a_swapped_image_id_is_refused_before_anything_runs(
    published: Published, engine: Engine
) -> None:
    before = published.runs()
    swapped = published.tampered(
        "swapped", image_id=published.outside, manifest_digest=None, registry=None,
        repository=None, source="build-record",
    )  # fmt: skip
    code, out, err = gefreg(published.env, "reproduce", *published.opts, str(swapped))
    assert code == 1, out + err
    assert (
        f"{published.outside[:19]} is neither a release of {NAME} 1.0.0 in the ledger of " in err
    ) and f"nor an image gefreg built for {NAME}" in err
    assert "--allow-untrusted" in err
    assert published.runs() == before  # no re-run was started: no record, no container
    assert own_run_containers(engine, published.root) == []
    # the ID swapped but the registry digest kept: the ledger's image ID decides
    kept = published.tampered("kept", image_id=published.outside)
    code, _, err = gefreg(published.env, "reproduce", *published.opts, str(kept))
    assert code == 1 and f"the image ID {published.outside} is not the released image" in err
    assert published.runs() == before
    # allowed: it runs, and the new record says what it is
    code, out, err = gefreg(
        published.env, "reproduce", *published.opts, str(swapped), "--allow-untrusted", "--json"
    )
    report = json.loads(out)
    assert code == 1 and not report["identical"]  # it wrote "pwned"
    rerun = json.loads(Path(report["rerun"]).read_text())
    assert rerun["image"]["trusted"] is False and rerun["service"]["trusted"] is False
    assert rerun["image"]["image_id"] == published.outside and rerun["image"]["source"] == "engine"


def test_an_image_in_another_registry_is_refused_before_it_is_pulled(
    published: Published, registry: LocalRegistry, engine: Engine
) -> None:
    elsewhere = f"{registry.address}/{NAME}"
    docker("tag", published.outside, f"{elsewhere}:evil")
    docker("push", f"{elsewhere}:evil")
    digest = docker("image", "inspect", "-f", "{{index .RepoDigests 0}}", f"{elsewhere}:evil")
    digest = digest.strip().rpartition("@")[2]
    docker("rmi", "-f", published.outside)  # a re-run would have to pull it
    assert engine.image(published.outside) is None
    before = published.runs()
    moved = published.tampered(
        "moved", registry=registry.address, repository=elsewhere, manifest_digest=digest,
        image_id=published.outside,
    )  # fmt: skip
    code, out, err = gefreg(published.env, "reproduce", *published.opts, str(moved))
    assert code == 1, out + err
    assert f"the registry {registry.address} is not the one the catalog published" in err
    assert engine.image(published.outside) is None  # nothing was pulled
    assert engine.image(f"{elsewhere}@{digest}") is None
    assert published.runs() == before
    # allowed, an untrusted image is still never pulled: the engine does not have it
    code, _, err = gefreg(
        published.env, "reproduce", *published.opts, str(moved), "--allow-untrusted"
    )
    assert code == 2 and "never pulled for untrusted runs" in err
    assert engine.image(published.outside) is None
    # the genuine record reproduces
    code, out, err = gefreg(published.env, "reproduce", *published.opts, str(published.record))
    assert code == 0, err
    assert out.splitlines()[-1].startswith("identical: 1 file the same")


@pytest.mark.parametrize("field", ["manifest_digest", "registry", "repository"])
def test_one_swapped_registry_field_is_refused_before_it_is_pulled(
    published: Published, engine: Engine, field: str
) -> None:
    """Each registry field alone is checked against the ledger: an image the attacker pushed
    into the catalog's own repository (same registry, same repository, another digest), or the
    genuine digest said to be in another registry or repository, is refused (exit 1, naming the
    field) before anything is pulled or run."""
    genuine = json.loads(published.record.read_text())["image"]
    repository = genuine["repository"]
    evil = f"{repository}:evil-{os.urandom(4).hex()}"
    docker("tag", published.outside, evil)
    docker("push", evil)
    digest = docker("image", "inspect", "-f", "{{index .RepoDigests 0}}", evil)
    digest = digest.strip().rpartition("@")[2]
    docker("rmi", "-f", published.outside)  # a re-run would have to pull it
    swapped = {
        "manifest_digest": digest,
        "registry": "evil.example.org",
        "repository": f"{repository}-evil",
    }[field]
    before = published.runs()
    tampered = published.tampered(field, **{field: swapped})
    code, out, err = gefreg(published.env, "reproduce", *published.opts, str(tampered))
    assert code == 1, out + err
    what = field.replace("manifest_digest", "manifest digest")
    assert f"{NAME} 1.0.0: the {what} {swapped} is not the one the catalog published" in err
    assert engine.image(f"{repository}@{digest}") is None  # nothing was pulled
    assert engine.image(published.outside) is None
    assert published.runs() == before and own_run_containers(engine, published.root) == []


def test_run_by_digest_of_an_outside_image_is_refused(published: Published) -> None:
    code, _, err = gefreg(
        published.env, "run", *published.opts, f"{NAME}@{published.outside}",
        "-i", str(published.root / "in"), "-o", str(published.root / "o2"),
    )  # fmt: skip
    assert code == 1 and f"is not an image gefreg built for {NAME}" in err
    assert not (published.root / "o2").exists()


def test_a_ledger_interface_mounting_over_bin_is_refused(
    published: Published, engine: Engine
) -> None:
    """Issue 11.3: ports, user and mounts from a ledger line pass the same rules as a record's."""
    catalog = Path(published.opts[1])
    ledger = catalog / NAME / "releases.jsonl"
    line = json.loads(ledger.read_text().splitlines()[0])
    line["interface"]["outputs"][0]["path"] = "/bin"
    line["interface"]["user"] = 0
    ledger.write_text(json.dumps(line) + "\n")
    code, _, err = gefreg(
        published.env, "run", *published.opts, f"{NAME}@1.0.0",
        "-i", str(published.root / "in"), "-o", str(published.root / "o3"),
        "--record", str(published.root / "o3.json"),
    )  # fmt: skip
    assert code == 2, err
    assert f"{ledger}:1: field interface.outputs[0].path: '/bin' would hide a system" in err
    assert f"{ledger}:1: field interface.user: expected a non-root uid" in err
    assert not (published.root / "o3").exists() and not (published.root / "o3.json").exists()
    assert own_run_containers(engine, published.root) == []


def test_image_labels_mounting_over_bin_are_refused(published: Published, engine: Engine) -> None:
    """Issue 11.3, the labels: an image outside the catalog, run with --allow-untrusted, is
    described by its GEF labels only; an output port at /bin is refused like a record's."""
    context = published.root / "outside"
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        "LABEL eudat.gef.service.input.1.name=data eudat.gef.service.input.1.path=/data/in "
        "eudat.gef.service.output.1.name=result eudat.gef.service.output.1.path=/bin "
        "org.gefreg.test=run-trust\n"
        'CMD ["/bin/busybox", "sh", "-c", "echo pwned > /bin/x"]\n'
    )
    tag = f"gefreg-test/labels-{os.urandom(6).hex()}:1"
    docker("build", "-q", "-t", tag, str(context))
    try:
        code, _, err = gefreg(
            published.env, "run", "--image", tag, "--allow-untrusted",
            "-i", str(published.root / "in"), "-o", str(published.root / "o5"),
        )  # fmt: skip
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
    assert code == 2, err
    assert "field GEF label eudat.gef.service.output.1.path: '/bin' would hide a system" in err
    assert not (published.root / "o5").exists()
    assert own_run_containers(engine, published.root) == []


def test_a_run_record_mounting_over_bin_is_refused(published: Published, engine: Engine) -> None:
    data = json.loads(published.record.read_text())
    [index] = [i for i, m in enumerate(data["mounts"]) if m["side"] == "output"]
    data["mounts"][index]["target"] = "/bin"
    tampered = published.root / "bin.json"
    text = json.dumps(data, indent=2)
    tampered.write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if '"target": "/bin"' in t)
    before = published.runs()
    code, _, err = gefreg(published.env, "reproduce", *published.opts, str(tampered))
    assert code == 2, err
    assert f"{tampered}:{line}: field mounts[{index}].target: '/bin' would hide a system" in err
    assert published.runs() == before
    assert own_run_containers(engine, published.root) == []


def test_verify_refuses_ledger_lines_of_another_registry(
    published: Published, registry: LocalRegistry
) -> None:
    """Issue 11.4: `verify` ignored the registry host in ledger lines (evil.example.org passed
    with exit 0; another local registry produced 13 "gone" issues)."""
    catalog = Path(published.opts[1])
    ledger = catalog / NAME / "releases.jsonl"
    genuine = json.loads(ledger.read_text().splitlines()[0])
    lines = [ledger.read_text()]
    for version, where in (("1.1.0", "evil.example.org"), ("1.2.0", registry.address)):
        line = {**genuine, "version": version, "repository": f"{where}/{NAME}", "floating": []}
        lines.append(json.dumps(line) + "\n")
    ledger.write_text("".join(lines))
    code, out, err = gefreg(published.env, "verify", *published.opts, NAME, "--json")
    assert code == 1, err
    issues = json.loads(out)["issues"]
    assert [(i["kind"], i["tag"]) for i in issues] == [("foreign", "1.1.0"), ("foreign", "1.2.0")]
    configured = published.opts[3]
    assert issues[0]["message"] == (
        f"{ledger}:2: 1.1.0 is recorded in evil.example.org/{NAME}, but {NAME} is published to "
        f"{configured}/{NAME} (the configured registry and the entry)"
    )
    assert issues[1]["message"].startswith(f"{ledger}:3: 1.2.0 is recorded in {registry.address}")
