"""gefreg export cwl on real releases: the exported tool runs under cwltool and under Toil
(single-machine batch system) and its outputs are byte-identical to `gefreg run` of the same
release on the same inputs (compared as gefreg tree manifests).

One module-scoped registry and catalog: the shipped `fixity-manifest` (static template,
busybox) published once, plus `cx-noshell`, a busybox service that ships no /bin/sh.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gefreg.cli import cli
from gefreg.run.tree_manifest import tree_manifest
from tests.helpers import build_tree, busybox_entry
from tests.registry_fixtures import LocalRegistry

pytestmark = pytest.mark.docker

SHIPPED = Path(__file__).resolve().parents[2] / "catalog"
VENV_BIN = Path(sys.executable).parent
NAME = "fixity-manifest"


@dataclass(frozen=True)
class Published:
    catalog: Path
    registry: LocalRegistry
    env: dict[str, str]
    digest: str

    def opts(self) -> list[str]:
        return ["--catalog", str(self.catalog), "--registry", self.registry.address]

    def gefreg(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=self.env)
        return result.exit_code, result.stdout, result.stderr


def tool_env() -> dict[str, str]:
    """cwltool and Toil from this virtualenv (Toil needs cwl-docker-extract on PATH)."""
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    root = tmp_path_factory.mktemp("export-cwl")
    registry = LocalRegistry(root / "registry")
    registry.root.mkdir()
    registry.start()
    catalog = root / "catalog"
    catalog.mkdir()
    shutil.copytree(SHIPPED / NAME, catalog / NAME)
    shutil.copy(SHIPPED / "policy.yaml", catalog / "policy.yaml")
    noshell = busybox_entry(
        "cx-noshell",
        'echo "$(ls /data/in | wc -l) files" > /data/out/count.txt\n',
        files={"busybox": "/opt/bb", "run.sh": "/opt/run.sh"},
        command=["/opt/bb", "sh", "/opt/run.sh"],
        inputs=[{"name": "data", "path": "/data/in"}],
        outputs=[{"name": "result", "path": "/data/out"}],
    )
    build_tree(catalog, {"bases": {"lock.json": '{"version": 1, "bases": {}}'}, **noshell})
    os.chmod(catalog / "cx-noshell" / "busybox", 0o755)
    env = {"GEFREG_STATE": str(root / "state")}
    pub = Published(catalog, registry, env, "")
    for name in (NAME, "cx-noshell"):
        code, _, err = pub.gefreg("publish", "--build", *pub.opts(), name)
        assert code == 0, err
    line = json.loads((catalog / NAME / "releases.jsonl").read_text().splitlines()[0])
    try:
        yield Published(catalog, registry, env, line["digest"])
    finally:
        registry.kill()
        _remove_images(registry.address)


def _remove_images(address: str) -> None:
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}} {{.ID}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    ids = sorted({i for r, i in (ln.split() for ln in listed) if r.startswith(address + "/")})
    if ids:
        subprocess.run(["docker", "rmi", "-f", *ids], capture_output=True, check=False)


def sample_input(root: Path) -> Path:
    return build_tree(
        root,
        {
            "a.txt": "alpha\n",
            "with space.dat": b"\x00\x01binary\xff",
            "sub": {"deeper": {"b.txt": "beta\n" * 1000}},
        },
    )


def export(pub: Published, tmp_path: Path, *extra: str) -> Path:
    path = tmp_path / ("scatter.cwl" if "--scatter" in extra else "tool.cwl")
    code, _, err = pub.gefreg(
        "export", "cwl", *pub.opts(), f"{NAME}@1.0.0", "-o", str(path), *extra
    )
    assert code == 0, err
    return path


def job(pub: Published, tmp_path: Path, *folders: Path, scatter: bool = False) -> Path:
    path = tmp_path / "job.json"
    args = ["export", "job", "--port", "collection", *map(str, folders), "-o", str(path)]
    code, _, err = pub.gefreg(*args, *(["--scatter"] if scatter else []))
    assert code == 0, err
    return path


def run_engine(argv: list[str], cwd: Path) -> dict[str, Any]:
    result = subprocess.run(
        argv, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return dict(json.loads(result.stdout))


def gefreg_run_root(pub: Published, tmp_path: Path, data: Path) -> str:
    record = tmp_path / "run.json"
    code, _, err = pub.gefreg(
        "run", *pub.opts(), f"{NAME}@1.0.0", "-i", str(data), "-o", str(tmp_path / "gefreg-out"),
        "--record", str(record),
    )  # fmt: skip
    assert code == 0, err
    return str(json.loads(record.read_text())["outputs"]["manifest"]["manifest"]["root"])


def test_the_tool_pins_the_release_and_validates(published: Published, tmp_path: Path) -> None:
    text = export(published, tmp_path).read_text()
    assert f"dockerPull: {published.registry.address}/{NAME}@{published.digest}" in text
    assert f"{NAME}/releases.jsonl#L1" in text
    flow = export(published, tmp_path, "--scatter")
    assert "class: Workflow" in flow.read_text()
    assert "# Job file template (`gefreg export job --port collection DIR -o" in text
    assert "# collection:\n#   - {class: Directory, path: /path/to/collection-1}" in (
        flow.read_text()
    )
    for document in (tmp_path / "tool.cwl", flow):  # every export, as the CLI writes it
        result = subprocess.run(
            [str(VENV_BIN / "cwltool"), "--validate", str(document)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "is valid CWL" in result.stdout + result.stderr
    code, stdout, _ = published.gefreg("export", "cwl", *published.opts(), f"{NAME}@1.0.0")
    assert code == 0 and stdout == text  # standard output without --output


def test_the_export_is_made_from_the_ledger_interface_not_todays_record(
    published: Published, tmp_path: Path
) -> None:
    """The catalog's record moved on after 1.0.0 was published (ports renamed and moved, another
    command): the export of 1.0.0 still describes the published image."""
    record = published.catalog / NAME / "service.yaml"
    before = record.read_text()
    exported = export(published, tmp_path).read_text()
    changed = (
        before.replace("collection", "archive")
        .replace("/data/manifest", "/srv/fixity")
        .replace("{name: manifest,", "{name: fixity,")
    )
    assert changed != before
    record.write_text(changed)
    try:
        code, again, err = published.gefreg("export", "cwl", *published.opts(), f"{NAME}@1.0.0")
    finally:
        record.write_text(before)
    assert code == 0, err
    assert again == exported
    assert "collection:" in again and "/data/manifest" in again
    assert "archive:" not in again and "/srv/fixity" not in again


def test_cwltool_and_toil_outputs_are_byte_identical_to_gefreg_run(
    published: Published, tmp_path: Path
) -> None:
    data = sample_input(tmp_path / "data")
    expected = gefreg_run_root(published, tmp_path, data)
    tool, job_file = export(published, tmp_path), job(published, tmp_path, data)
    out = run_engine(
        [str(VENV_BIN / "cwltool"), "--quiet", "--provenance", str(tmp_path / "prov-cwltool"),
         "--outdir", str(tmp_path / "cwltool"), str(tool), str(job_file)],
        tmp_path,
    )  # fmt: skip
    assert tree_manifest(Path(out["manifest"]["path"])).root == expected
    out = run_engine(
        [str(VENV_BIN / "toil-cwl-runner"), "--batchSystem", "single_machine",
         "--jobStore", f"file:{tmp_path / 'jobstore'}", "--workDir", str(tmp_path),
         "--provenance", str(tmp_path / "prov-toil"),
         "--outdir", str(tmp_path / "toil"), "--logLevel", "WARNING", str(tool), str(job_file)],
        tmp_path,
    )  # fmt: skip
    assert Path(out["manifest"]["path"]).parent == tmp_path / "toil"
    assert tree_manifest(Path(out["manifest"]["path"])).root == expected
    # their provenance ties back to the release: digest → ledger line
    for engine in ("cwltool", "toil"):
        crate = read_crate(published, tmp_path / f"prov-{engine}", tmp_path / f"crate-{engine}")
        assert_ties_to_release(published, crate)
        assert (
            "packed.cwl" in crate
            and published.digest in (tmp_path / f"crate-{engine}" / "packed.cwl").read_text()
        )


def read_crate(pub: Published, source: Path, output: Path) -> dict[str, dict[str, Any]]:
    """`gefreg export crate`, read back with the rocrate library: entities by id."""
    from rocrate.rocrate import ROCrate

    code, out, err = pub.gefreg("export", "crate", *pub.opts(), str(source), "-o", str(output))
    assert code == 0, err
    assert out.strip() == str(output / "ro-crate-metadata.json")
    crate = ROCrate(output)
    root = crate.root_dataset.as_jsonld()
    assert {"@id": "https://w3id.org/ro/wfrun/process/0.5"} in root["conformsTo"]
    return {e.id: e.as_jsonld() for e in crate.get_entities()}


def assert_ties_to_release(pub: Published, entities: dict[str, dict[str, Any]]) -> None:
    import hashlib

    actions = [e for e in entities.values() if e["@type"] == "CreateAction"]
    assert actions
    line = (pub.catalog / NAME / "releases.jsonl").read_bytes().split(b"\n")[0]
    for action in actions:
        image = entities[action["containerImage"]["@id"]]
        assert image["@type"] == "ContainerImage"
        assert image["sha256"] == published_hex(pub)
        app = entities[action["instrument"]["@id"]]
        assert app["identifier"] == f"{pub.registry.address}/{NAME}@{pub.digest}"
        assert app["softwareVersion"] == "1.0.0"
        ledger = entities[app["subjectOf"]["@id"]]
        assert ledger["name"] == f"{NAME}/releases.jsonl line 1"
        assert ledger["sha256"] == hashlib.sha256(line).hexdigest()


def published_hex(pub: Published) -> str:
    return pub.digest.removeprefix("sha256:")


def test_a_run_record_becomes_a_process_run_crate(published: Published, tmp_path: Path) -> None:
    data = sample_input(tmp_path / "data")
    root = gefreg_run_root(published, tmp_path, data)
    entities = read_crate(published, tmp_path / "run.json", tmp_path / "crate")
    assert_ties_to_release(published, entities)
    [action] = [e for e in entities.values() if e["@type"] == "CreateAction"]
    assert action["actionStatus"]["@id"] == "http://schema.org/CompletedActionStatus"
    [result] = [entities[r["@id"]] for r in action["result"]]
    made = {
        entities[p["@id"]]["@id"].rsplit("/", 1)[1]: entities[p["@id"]] for p in result["hasPart"]
    }
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["outputs"]["manifest"]["manifest"]["root"] == root
    for f in record["outputs"]["manifest"]["manifest"]["files"]:
        assert made[f["path"]]["sha256"] == f["sha256"].removeprefix("sha256:")
    assert (tmp_path / "crate" / "run.json").read_bytes() == (tmp_path / "run.json").read_bytes()
    # a provenance folder naming an image the catalog never published: said so, not linked
    code, _, err = published.gefreg(
        "export", "crate", "--registry", "127.0.0.1:9", "--catalog", str(published.catalog),
        str(tmp_path / "run.json"), "-o", str(tmp_path / "crate2"),
    )  # fmt: skip
    assert code == 0 and "not a release of this catalog" in err


def test_exports_are_refused_like_runs(published: Published, tmp_path: Path) -> None:
    # not published: only a build exists
    build_tree(published.catalog, busybox_entry("cx-unpublished", "true\n"))
    os.chmod(published.catalog / "cx-unpublished" / "busybox", 0o755)
    code, _, err = published.gefreg("build", *published.opts(), "cx-unpublished")
    assert code == 0, err
    code, _, err = published.gefreg("export", "cwl", *published.opts(), "cx-unpublished@1.0.0")
    assert code == 2 and "not published" in err
    # a version the ledger does not have, a name outside the catalog, a bare digest
    for target, words in (
        (f"{NAME}@9.9.9", "not built or published"),
        ("nowhere@1.0.0", "not a catalog entry"),
        (f"{NAME}@{published.digest}", "NAME@VERSION"),
    ):
        code, _, err = published.gefreg("export", "cwl", *published.opts(), target)
        assert code == 2 and words in err, err
    # the ledger names a registry other than the configured one: refused as run refuses it
    other = ["--catalog", str(published.catalog), "--registry", "127.0.0.1:9"]
    code, _, err = published.gefreg("export", "cwl", *other, f"{NAME}@1.0.0")
    assert code == 1 and "gefreg trusts 127.0.0.1:9" in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_unsigned_release_is_refused_when_trust_yaml_requires_signatures(
    published: Published, tmp_path: Path
) -> None:
    trust = published.catalog / "trust.yaml"
    trust.write_text("require-signatures: true\nkeys: []\n")
    try:
        code, out, err = published.gefreg("export", "cwl", *published.opts(), f"{NAME}@1.0.0")
    finally:
        trust.unlink()
    assert code == 1 and out == "", err
    assert "is not signed" in err and "requires signatures" in err


def test_a_yanked_release_is_refused(published: Published, tmp_path: Path) -> None:
    ledger = published.catalog / "cx-noshell" / "releases.jsonl"
    before = ledger.read_bytes()
    code, _, err = published.gefreg(
        "yank", *published.opts(), "cx-noshell@1.0.0", "--reason", "wrong results"
    )
    try:
        assert code == 0, err
        code, out, err = published.gefreg("export", "cwl", *published.opts(), "cx-noshell@1.0.0")
        assert code == 1 and out == "" and "was yanked" in err and "wrong results" in err
    finally:
        ledger.write_bytes(before)


def test_an_image_without_a_shell_is_refused_and_the_static_template_ships_one(
    published: Published,
) -> None:
    code, _, err = published.gefreg("export", "cwl", *published.opts(), "cx-noshell@1.0.0")
    assert code == 1 and "has no /bin/sh" in err and "busybox" in err
    listed = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "/bin/sh",
         f"{published.registry.address}/{NAME}@{published.digest}", "-c", "echo shell"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert listed.stdout == "shell\n", listed.stderr


# ----------------------------------------------------------------------------- on Slurm

SLURM_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm.sh"


@pytest.fixture(scope="module")
def slurm() -> None:
    """The one-node cluster of `make slurm` (started here when it is not running; root only)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but not root: scripts/slurm.sh needs root", pytrace=False)
        pytest.skip("a local Slurm cluster needs root (make slurm)")
    result = subprocess.run(
        ["bash", str(SLURM_SCRIPT)], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # `make slurm` is idempotent: run again, it finds everything in place and changes nothing
    again = subprocess.run(
        ["bash", str(SLURM_SCRIPT)], capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Use it:" in again.stdout and "toil-cwl-runner --batchSystem slurm" in again.stdout
    assert "Slurm packages present" in again.stdout and "Slurm answers: node" in again.stdout
    for step in ("Installing", "Creating the munge key", "Starting", "Writing", "Reconfiguring"):
        assert step not in again.stdout, again.stdout


def slurm_job_ids() -> set[int]:
    shown = subprocess.run(
        ["scontrol", "show", "jobs", "--oneliner"], capture_output=True, text=True, check=True
    ).stdout
    return {
        int(line.split()[0].removeprefix("JobId="))
        for line in shown.splitlines()
        if line.startswith("JobId=") and "JobName=toil_job_" in line
    }


def bagit(folder: Path) -> dict[str, str]:
    """What fixity-manifest writes for ``folder``, computed here independently."""
    import hashlib

    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: str(p).encode())
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  data/{p.relative_to(folder)}\n"
        for p in files
    ]
    size = sum(p.stat().st_size for p in files)
    return {
        "manifest-sha256.txt": "".join(lines),
        "bag-info.txt": f"Payload-Oxum: {size}.{len(files)}\n",
    }


def test_scatter_over_8_folders_on_slurm(published: Published, slurm: None, tmp_path: Path) -> None:
    folders = [
        build_tree(tmp_path / "in" / f"station-{i}", {f"s{i}.dat": f"{i}\n" * (i + 1), "x": {}})
        for i in range(8)
    ]
    for i, folder in enumerate(folders):
        (folder / "x" / "n.txt").write_text(f"nested {i}\n")
    before = slurm_job_ids()
    flow = export(published, tmp_path, "--scatter")
    jobs = job(published, tmp_path, *folders, scatter=True)
    out = run_engine(
        [str(VENV_BIN / "toil-cwl-runner"), "--batchSystem", "slurm",
         "--jobStore", f"file:{tmp_path / 'jobstore'}", "--workDir", str(tmp_path),
         "--outdir", str(tmp_path / "results"), "--logLevel", "WARNING",
         str(flow), str(jobs)],
        tmp_path,
    )  # fmt: skip
    results = out["manifest"]
    assert len(results) == 8
    for folder, result in zip(folders, results, strict=True):  # outputs in input order
        made = Path(result["path"])
        assert {p.name: p.read_text() for p in made.iterdir()} == bagit(folder), folder
    assert len(slurm_job_ids() - before) >= 8  # every tool run was a Slurm job
