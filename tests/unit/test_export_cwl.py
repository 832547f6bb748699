"""CWL documents and job files from a release (pure functions; cwltool validates them)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from gefreg.errors import BadInput
from gefreg.export.cwl import (
    command_line_tool,
    header,
    input_ref,
    output_folder,
    scatter_workflow,
    to_yaml,
)
from gefreg.export.job import job_document
from gefreg.export.release import ExportRelease, LedgerLine, ledger_line
from gefreg.image.interface import ServiceInterface
from gefreg.model import Port, Resources

DIGEST = "sha256:" + "a1" * 32
FACE = ServiceInterface(
    name="fixity-manifest",
    version="1.0.0",
    inputs=(Port("collection", "/data/collection"),),
    outputs=(Port("manifest", "/data/manifest"),),
    command=("/bin/busybox", "sh", "/opt/fixity/fixity.sh", "/data/collection", "/data/manifest"),
    resources=Resources(memory=128 * 1024**2, cpus=0.5, timeout=119.5, pids=64),
)
LABELS = {
    "org.opencontainers.image.licenses": "GPL-2.0-only AND MIT",
    "org.opencontainers.image.authors": "Rhea Repository <rhea@example.org>, Bo <bo@example.org>",
    "org.opencontainers.image.source": "https://example.org/fixity",
    "org.opencontainers.image.description": "A fixity manifest.",
}
RELEASE = ExportRelease(
    name="fixity-manifest",
    version="1.0.0",
    registry="reg.example.org:5000",
    repository="reg.example.org:5000/fixity-manifest",
    digest=DIGEST,
    interface=FACE,
    labels=LABELS,
    ledger=LedgerLine("fixity-manifest/releases.jsonl", 3, "sha256:" + "0b" * 32),
    fingerprint="sha256:" + "f0" * 32,
)


def test_tool_pins_the_image_by_digest_and_maps_ports_to_their_paths() -> None:
    tool = command_line_tool(RELEASE)
    req = tool["requirements"]
    assert req["DockerRequirement"] == {
        "dockerPull": f"reg.example.org:5000/fixity-manifest@{DIGEST}",
        "dockerOutputDirectory": "/data",
    }
    assert req["InitialWorkDirRequirement"]["listing"] == [
        {"entry": "$(inputs.collection)", "entryname": "/data/collection"}
    ]
    assert tool["inputs"]["collection"]["type"] == "Directory"
    assert tool["outputs"]["manifest"]["outputBinding"] == {"glob": "manifest"}
    assert req["NetworkAccess"] == {"networkAccess": False}
    assert req["ResourceRequirement"] == {
        "coresMin": 0.5,
        "coresMax": 0.5,
        "ramMin": 128,
        "ramMax": 128,
    }
    assert req["ToolTimeLimit"] == {"timelimit": 120}


def test_command_creates_the_output_folders_then_execs_the_ledger_command() -> None:
    argv = command_line_tool(RELEASE)["baseCommand"]
    assert argv[:5] == [
        "/bin/sh",
        "-c",
        'mkdir -p -- "$1" && shift 1 && exec "$@"',
        "gefreg-export",
        "/data/manifest",
    ]
    assert tuple(argv[5:]) == FACE.command
    two = replace(FACE, outputs=(Port("a", "/data/a"), Port("b", "/data/deep/b")))
    argv = command_line_tool(replace(RELEASE, interface=two))["baseCommand"]
    assert argv[2] == 'mkdir -p -- "$1" "$2" && shift 2 && exec "$@"'
    assert argv[4:6] == ["/data/a", "/data/deep/b"]
    outputs = command_line_tool(replace(RELEASE, interface=two))["outputs"]
    assert outputs["b"]["outputBinding"]["glob"] == "deep/b"


def test_record_entrypoint_comes_first_and_an_image_entrypoint_is_refused() -> None:
    with_ep = replace(FACE, entrypoint=("/bin/tool",), command=("--x",))
    argv = command_line_tool(replace(RELEASE, interface=with_ep))["baseCommand"]
    assert argv[5:] == ["/bin/tool", "--x"]
    with pytest.raises(BadInput, match="ENTRYPOINT"):
        command_line_tool(replace(RELEASE, image_entrypoint=("/entry",)))


def test_schema_org_annotations_name_the_release_and_its_ledger_line() -> None:
    tool = command_line_tool(RELEASE)
    assert tool["$namespaces"] == {"s": "https://schema.org/"}
    assert (tool["s:name"], tool["s:softwareVersion"]) == ("fixity-manifest", "1.0.0")
    assert tool["s:license"] == "GPL-2.0-only AND MIT"
    assert tool["s:codeRepository"] == "https://example.org/fixity"
    assert tool["s:author"] == [
        {"s:name": "Rhea Repository", "s:email": "rhea@example.org"},
        {"s:name": "Bo", "s:email": "bo@example.org"},
    ]
    assert tool["s:identifier"] == RELEASE.pinned
    props = {p["s:name"]: p["s:value"] for p in tool["s:additionalProperty"]}
    assert props["gefreg:ledger"] == "fixity-manifest/releases.jsonl#L3"
    assert props["gefreg:ledger-line-sha256"] == "sha256:" + "0b" * 32
    assert tool["doc"] == "A fixity manifest."


def test_hostile_label_text_stays_data() -> None:
    hostile = {"org.opencontainers.image.description": "$(inputs.collection)\n- evil: 1"}
    text = to_yaml(command_line_tool(replace(RELEASE, labels=hostile)), header(RELEASE))
    from ruamel.yaml import YAML

    loaded = YAML(typ="safe").load(text)
    assert loaded["doc"] == hostile["org.opencontainers.image.description"]
    assert "evil" not in loaded


def test_port_names_that_are_not_symbols_use_bracket_references() -> None:
    assert input_ref("archive") == "$(inputs.archive)"
    assert input_ref("my-port.v2") == "$(inputs['my-port.v2'])"


def test_output_ports_need_a_common_folder_below_root() -> None:
    assert output_folder([Port("a", "/data/out")]) == "/data"
    assert output_folder([Port("a", "/w/x/a"), Port("b", "/w/y/b")]) == "/w"
    with pytest.raises(BadInput, match="no common parent"):
        output_folder([Port("a", "/out")])
    with pytest.raises(BadInput, match="no output ports"):
        output_folder([])


def test_scatter_workflow_runs_the_tool_per_element() -> None:
    flow = scatter_workflow(RELEASE)
    assert flow["class"] == "Workflow"
    assert flow["inputs"] == {"collection": {"type": "Directory[]"}}
    assert flow["outputs"]["manifest"] == {
        "type": "Directory[]",
        "outputSource": "fixity-manifest/manifest",
    }
    step = flow["steps"]["fixity-manifest"]
    assert step["scatter"] == ["collection"] and "scatterMethod" not in step
    assert step["run"]["requirements"]["DockerRequirement"]["dockerPull"] == RELEASE.pinned
    two = replace(FACE, inputs=(Port("a", "/in/a"), Port("b", "/in/b")))
    step = scatter_workflow(replace(RELEASE, interface=two))["steps"]["fixity-manifest"]
    assert step["scatter"] == ["a", "b"] and step["scatterMethod"] == "dotproduct"


@pytest.mark.parametrize("scatter", [False, True])
def test_cwltool_validates_the_documents(tmp_path: Path, scatter: bool) -> None:
    cwltool = Path(sys.executable).with_name("cwltool")
    if not cwltool.exists():
        cwltool = Path(shutil.which("cwltool") or "cwltool")
    doc = scatter_workflow(RELEASE) if scatter else command_line_tool(RELEASE)
    path = tmp_path / "tool.cwl"
    path.write_text(to_yaml(doc, header(RELEASE)))
    result = subprocess.run(
        [str(cwltool), "--validate", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "is valid CWL" in result.stdout + result.stderr
    assert "Warning" not in result.stderr


def test_job_file_for_one_run_and_for_a_scatter(tmp_path: Path) -> None:
    folders = []
    for name in ("b", "a", "c"):
        (tmp_path / name).mkdir()
        folders.append(str(tmp_path / name))
    one = job_document(folders[:1], port="collection")
    assert one == {"collection": {"class": "Directory", "path": str(tmp_path / "b")}}
    many = job_document(folders, port="collection")
    assert [d["path"] for d in many["collection"]] == folders  # the order given
    assert job_document(folders[:1], port="collection", scatter=True)["collection"][0]["path"]
    named = job_document([f"x={folders[0]}", f"y={folders[1]}"])
    assert set(named) == {"x", "y"}


def test_job_file_errors_name_the_folder(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(BadInput, match="does not exist"):
        job_document([str(tmp_path / "missing")], port="p")
    with pytest.raises(BadInput, match="which port"):
        job_document([str(tmp_path / "a")])
    with pytest.raises(BadInput, match="different numbers"):
        job_document([f"x={tmp_path / 'a'}", f"x={tmp_path / 'a'}", f"y={tmp_path / 'a'}"])
    with pytest.raises(BadInput, match="no folders"):
        job_document([], port="p")
    with pytest.raises(BadInput, match="--single"):
        job_document([str(tmp_path / "a")] * 2, port="p", scatter=False)


def test_ledger_line_is_found_by_version_with_its_hash(tmp_path: Path) -> None:
    entry = tmp_path / "svc"
    entry.mkdir()
    lines = [json.dumps({"version": v}) for v in ("1.0.0", "1.1.0")]
    (entry / "releases.jsonl").write_text("\n".join(lines) + "\n")
    found = ledger_line(tmp_path, "svc", "1.1.0")
    import hashlib

    assert found == LedgerLine(
        "svc/releases.jsonl", 2, "sha256:" + hashlib.sha256(lines[1].encode()).hexdigest()
    )
    assert ledger_line(tmp_path, "svc", "9.9.9") is None


def _template(text: str) -> tuple[str, dict[str, object]]:
    """The job-file template in a document's header: its command line and its YAML."""
    from ruamel.yaml import YAML

    comments = [line[2:] for line in text.splitlines() if line.startswith("# ")]
    start = next(i for i, line in enumerate(comments) if line.startswith("Job file template"))
    return comments[start], YAML(typ="safe").load("\n".join(comments[start + 1 :]))


@pytest.mark.parametrize("scatter", [False, True])
def test_the_header_carries_a_job_file_template_shaped_like_export_job(
    tmp_path: Path, scatter: bool
) -> None:
    two = replace(FACE, inputs=(Port("a", "/in/a"), Port("b-2", "/in/b")))
    for face in (FACE, two):
        rel = replace(RELEASE, interface=face)
        doc = scatter_workflow(rel) if scatter else command_line_tool(rel)
        command, template = _template(to_yaml(doc, header(rel, scatter)))
        folders = []
        for port in face.inputs:
            (tmp_path / port.name).mkdir(exist_ok=True)
            folders += [f"{port.name}={tmp_path / port.name}"] * (2 if scatter else 1)
        real = job_document(folders, scatter=scatter)
        assert set(template) == set(real) == {p.name for p in face.inputs}
        for name, value in template.items():  # the same shape, placeholder paths
            if scatter:
                assert isinstance(value, list) and len(value) == 2
                assert all(v["class"] == "Directory" for v in value)
            else:
                assert value == {"class": "Directory", "path": f"/path/to/{name}"}
            assert type(value) is type(real[name])
        assert "gefreg export job " in command and ("--scatter" in command) == scatter
    assert "--port collection" in _template(to_yaml({}, header(RELEASE, scatter)))[0]
