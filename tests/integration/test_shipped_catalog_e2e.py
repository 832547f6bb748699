"""The shipped catalog end to end, as `make demo` runs it: every entry builds on the real
bases, passes scan and its golden tests, is published, verifies, and waveform-metadata runs
pinned by digest and reproduces."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg.catalog.entries import load_all
from gefreg.cli import cli
from tests.integration.conftest import ShippedCatalog

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def gefreg(shipped: ShippedCatalog, *args: str) -> tuple[int, str, str]:
    settings = shipped.settings
    env = {
        "GEFREG_CATALOG": str(settings.catalog),
        "GEFREG_REGISTRY": settings.registry,
        "GEFREG_STATE": str(settings.state_dir),
    }
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


def test_every_shipped_entry_builds_scans_tests_publishes_and_verifies(
    shipped: ShippedCatalog, tmp_path: Path
) -> None:
    entries, records = load_all(shipped.settings.catalog)
    for base in records:
        shipped.base(base.name)
    names = [e.name for e in entries]
    code, out, err = gefreg(shipped, "build", *names, "--json")
    assert code == 0, err
    for name in names:
        code, out, err = gefreg(shipped, "scan", name, "--format", "json")
        assert code == 0, f"{name}: {out}{err}"
        report = json.loads(out)
        assert report["passed"] and report["files"]["sbom"]
        code, out, err = gefreg(shipped, "test", name, "--json")
        assert code == 0, f"{name}: {out}{err}"
        assert json.loads(out)["passed"]
    code, out, err = gefreg(shipped, "publish", *names, "--json")
    assert code == 0, err
    published = {p["entry"]: p for p in json.loads(out)}
    assert {p["status"] for p in published.values()} == {"published"}
    code, out, err = gefreg(shipped, "verify", "--json")
    assert code == 0 and json.loads(out)["ok"], out
    digest = published["fixity-manifest"]["digest"]
    skopeo = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{shipped.settings.registry}/fixity-manifest:1.0.0",
        ],
        capture_output=True,
        check=True,
    )
    import hashlib

    assert "sha256:" + hashlib.sha256(skopeo.stdout).hexdigest() == digest

    # A scientist's run of the pinned version, and its reproduction.
    output = tmp_path / "output"
    record = tmp_path / "run.json"
    archive = shipped.settings.catalog / "waveform-metadata" / "tests" / "archive"
    code, out, err = gefreg(
        shipped,
        "run",
        "waveform-metadata@1.0.0",
        "-i",
        str(archive),
        "-o",
        str(output),
        "--record",
        str(record),
    )
    assert code == 0, err
    run = json.loads(record.read_text())
    assert run["status"] == "succeeded"
    assert run["image"]["manifest_digest"] == published["waveform-metadata"]["digest"]
    metadata = json.loads((output / "metadata.json").read_text())
    assert metadata["archive"]["unreadable"] == 2
    assert {f["file"] for f in metadata["errors"]} == {"not.mseed", "notes.txt"}
    code, out, err = gefreg(shipped, "reproduce", str(record), "--json")
    assert code == 0, err
    assert json.loads(out)["identical"] is True

    # `make demo`'s summary ends with the command a user types to run the published service
    # on a folder of their own: typed in a shell of their own, it does.
    (tmp_path / "reproduce.json").write_text(out)
    demo = shipped.settings.catalog.parent  # laid out as .gefreg/demo: catalog/, state/
    printed = subprocess.run(
        [
            sys.executable,
            "scripts/demo_summary.py",
            str(demo),
            str(tmp_path),
            shipped.settings.registry,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert "rerun:        reproduced: outputs identical" in printed[-3]
    assert printed[-2] == "run it on a folder of your own (miniSEED files):"
    mine, results = tmp_path / "my-waveforms", tmp_path / "my-results"
    mine.mkdir()
    for name in ("test.mseed", "steim2.mseed"):
        shutil.copy(archive / name, mine / name)
    typed = printed[-1].replace("YOUR-FOLDER", str(mine)).replace("RESULTS-FOLDER", str(results))
    argv = shlex.split(typed)
    assert argv[:3] == [".venv/bin/gefreg", "run", "waveform-metadata@1.0.0"]
    own_shell = {k: v for k, v in os.environ.items() if not k.startswith("GEFREG_")}
    own_shell["GEFREG_STATE"] = str(tmp_path / "a-users-state")  # not the demo's
    ran = subprocess.run(argv, cwd=ROOT, env=own_shell, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    described = json.loads((results / "metadata.json").read_text())
    assert described["archive"] == {"files": 2, "readable": 2, "unreadable": 0}
