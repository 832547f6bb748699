"""`gefreg list`, `show` and `yank` against a real registry, checked with skopeo."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gefreg.registry.client import Manifest, RegistryClient
from gefreg.release import ledger
from gefreg.release.yank import yank
from tests.integration.test_publish import (
    Service,
    entry,
    gefreg,
    registry_digest,
    removing_test_images,
)
from tests.registry_fixtures import LocalRegistry

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _remove_images(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    yield from removing_test_images(tmp_path, request)


def publish(pub: Service, version: str) -> str:
    pub.set_version(version)
    (pub.entry / "run.sh").write_text(f"echo {version} > /data/output/version.txt\n")
    pub.build()
    result = pub.publish("--json")
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["digest"])


def test_list_show_and_yank(tmp_path: Path, registry: LocalRegistry) -> None:
    pub = entry(tmp_path, "pub-browse", registry.address)
    v100, v110 = publish(pub, "1.0.0"), publish(pub, "1.1.0")
    opts = pub.opts()

    listed = gefreg("list", *opts, "--json")
    assert listed.exit_code == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["latest"]["version"], row["latest"]["digest"]) == ("1.1.0", v110)
    assert row["latest"]["scan"].startswith("passed") and row["releases"] == 2

    shown = gefreg("show", *opts, "pub-browse@v1.0.0", "--json")  # `v` is understood
    assert shown.exit_code == 0, shown.stderr
    page = json.loads(shown.stdout)
    assert page["selected"] == "1.0.0" and [v["version"] for v in page["versions"]] == [
        "1.0.0",
        "1.1.0",
    ]
    assert page["registry"]["labels"]["org.opencontainers.image.version"] == "1.0.0"
    # every version with its digest and date; the selected one's ports and resources
    assert all(v["published"][:4].isdigit() for v in page["versions"]), page["versions"]
    assert [v["digest"] for v in page["versions"]] == [v100, v110]
    face = page["interface"]
    assert face["version"] == "1.0.0" and face["inputs"] and face["outputs"]
    assert face["resources"]["memory"] > 0 and face["resources"]["timeout"] > 0
    assert page["registry"]["sbom"] and page["registry"]["scan_report"]
    # the ledger names both artifacts, so a registry cannot swap them
    assert pub.releases()[0]["scan_report_digest"] == page["registry"]["scan_report"]
    assert pub.releases()[0]["sbom_digest"] == page["registry"]["sbom"]
    assert page["registry"]["signature"]["state"] == "unsigned"  # published without a key
    assert page["run"] == "gefreg run pub-browse@1.0.0 --input DIR --output DIR"
    text = gefreg("show", *opts, "pub-browse").stdout
    assert "pub-browse 1.1.0:" in text and "[1, 1.1, latest]" in text
    assert "\n  resources: memory " in text and "\n  input " in text and "\n  output " in text
    assert "\n  sbom: sha256:" in text and "\n  scan report: sha256:" in text

    sbom = gefreg("show", *opts, "pub-browse@1.1.0", "--sbom")
    assert sbom.exit_code == 0 and json.loads(sbom.stdout)["bomFormat"] == "CycloneDX"
    report = gefreg("show", *opts, "pub-browse@1.1.0", "--scan-report")
    assert json.loads(report.stdout)["subject"]["entry"] == "pub-browse"

    typo = gefreg("show", *opts, "pub-brwose")
    assert typo.exit_code == 2 and "did you mean pub-browse?" in typo.stderr
    unknown = gefreg("show", *opts, "pub-browse@1.2.0")
    assert unknown.exit_code == 2 and "published: 1.0.0, 1.1.0" in unknown.stderr

    # Yank 1.1.0: the ledger grows by one line, the floating tags go back to 1.0.0; `1.1`
    # has no other release and stays.
    yanked = gefreg("yank", *opts, "pub-browse@1.1.0", "--reason", "writes the wrong version")
    assert yanked.exit_code == 0, yanked.stderr
    assert "1 -> 1.0.0" in yanked.stdout and "1.1 stays on 1.1.0" in yanked.stdout
    assert [registry_digest(registry.address, pub.name, t) for t in ("1", "latest", "1.1")] == [
        v100,
        v100,
        v110,
    ]
    assert registry_digest(registry.address, pub.name, "1.1.0") == v110  # versions never go
    assert pub.verify().exit_code == 0
    [row] = json.loads(gefreg("list", *opts, "--json").stdout)
    assert row["latest"]["version"] == "1.0.0" and row["yanked"] == 1
    shown = gefreg("show", *opts, "pub-browse@1.1.0")
    assert "YANKED: writes the wrong version" in shown.stdout
    page = json.loads(gefreg("show", *opts, "pub-browse@1.1.0", "--json").stdout)
    assert page["run"] == "gefreg run pub-browse@1.1.0 --allow-yanked --input DIR --output DIR"
    again = gefreg("yank", *opts, "pub-browse@1.1.0", "--reason", "twice")
    assert again.exit_code == 0 and "already yanked" in again.stdout

    # Runs refuse the yanked version unless told, and then the run record says so.
    (tmp_path / "in").mkdir()
    run = ["run", *opts, "-i", str(tmp_path / "in")]
    refused = gefreg(*run, "-o", str(tmp_path / "out-a"), "pub-browse@1.1.0")
    assert refused.exit_code == 1 and "pub-browse 1.1.0 was yanked on " in refused.stderr
    assert "--allow-yanked" in refused.stderr and not (tmp_path / "out-a").exists()
    newest = gefreg(*run, "-o", str(tmp_path / "out-b"), "pub-browse", "--json")
    assert newest.exit_code == 0, newest.stderr
    assert json.loads(newest.stdout)["image"]["version"] == "1.0.0"  # the newest not yanked
    allowed = gefreg(
        *run, "-o", str(tmp_path / "out-c"), "pub-browse@1.1.0", "--allow-yanked", "--json"
    )
    assert allowed.exit_code == 0, allowed.stderr
    image = json.loads(allowed.stdout)["image"]
    assert image["version"] == "1.1.0" and image["yanked"]["reason"] == "writes the wrong version"
    assert (tmp_path / "out-c" / "version.txt").read_text() == "1.1.0\n"

    # The next release of the 1.0 line takes `1` and `latest` forward again.
    v101 = publish(pub, "1.0.1")
    assert registry_digest(registry.address, pub.name, "latest") == v101
    assert pub.verify().exit_code == 0

    # A hand-appended yank that "moves" the version tag 1.0.1 to 1.0.0: verify --repair puts
    # tags where the ledger says, so the line is refused before the registry is touched.
    honest = pub.ledger.read_text()
    forged = {"schema": "gefreg.yank/1", "version": "1.0.1", "reason": "r", "yanked": "t"}
    pub.ledger.write_text(honest + json.dumps({**forged, "floating": {"1.0.1": "1.0.0"}}) + "\n")
    repaired = pub.verify("--repair")
    assert repaired.exit_code == 2, repaired.stdout + repaired.stderr
    assert f"{pub.ledger}:5: floating.1.0.1: '1.0.1' is not a floating tag" in repaired.stderr
    assert registry_digest(registry.address, pub.name, "1.0.1") == v101
    pub.ledger.write_text(honest)


def test_show_refuses_an_artifact_of_another_image(tmp_path: Path, registry: LocalRegistry) -> None:
    pub = entry(tmp_path, "pub-artifact", registry.address)
    v100, v110 = publish(pub, "1.0.0"), publish(pub, "1.1.0")
    # Someone points 1.1.0's scan tag at 1.0.0's scan report.
    from gefreg.registry.client import RegistryClient

    with RegistryClient(registry.address) as client:
        other = client.get_manifest(pub.name, f"{v100.replace(':', '-')}.scan")
        assert other is not None
        client.put_manifest(
            pub.name, f"{v110.replace(':', '-')}.scan", other.body, other.media_type
        )
    # The ledger names the report published with 1.1.0: the swapped tag is not looked at.
    shown = gefreg("show", *pub.opts(), "pub-artifact@1.1.0", "--scan-report")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["subject"]["image_id"] == pub.releases()[1]["image_id"]
    # A ledger from before it named the report: the tag is followed, and its subject checked.
    lines = [json.loads(line) for line in pub.ledger.read_text().splitlines()]
    for line in lines:
        del line["scan_report_digest"]
    pub.ledger.write_text("".join(json.dumps(line) + "\n" for line in lines))
    refused = gefreg("show", *pub.opts(), "pub-artifact@1.1.0", "--scan-report")
    assert refused.exit_code == 1 and "is not the one published with 1.1.0" in refused.stderr
    assert refused.stdout == ""


def test_a_yank_never_undoes_a_concurrent_publish(tmp_path: Path, registry: LocalRegistry) -> None:
    """A publish of 1.0.1 starts while `yank 1.1.0` moves the floating tags back to 1.0.0.
    The yank holds the entry's ledger lock until its tags are moved, so the publish (a real
    one, in another process) moves `latest` forward after it, never before it."""
    pub = entry(tmp_path, "pub-yankrace", registry.address)
    publish(pub, "1.0.0")
    publish(pub, "1.1.0")
    pub.set_version("1.0.1")
    (pub.entry / "run.sh").write_text("echo 1.0.1 > /data/output/version.txt\n")
    pub.build()
    command = [sys.executable, "-m", "gefreg", "publish", *pub.opts(), pub.name, "--json"]
    lock = ledger.lock_path(pub.entry)
    started: list[subprocess.Popen[str]] = []

    class Racing(RegistryClient):
        def get_manifest(self, repo: str, reference: str) -> Manifest | None:
            if not started:  # the yank's first tag move: a publisher comes along now
                started.append(
                    subprocess.Popen(
                        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                    )
                )
                deadline = time.monotonic() + 180
                while started[0].poll() is None and not waits_for(lock):
                    assert time.monotonic() < deadline, "the publisher neither waited nor ended"
                    time.sleep(0.2)
            return super().get_manifest(repo, reference)

    with Racing(registry.address) as client:
        done = yank("pub-yankrace", pub.entry, "1.1.0", "broken", client=client)
    assert done.moved == {"1": "1.0.0", "latest": "1.0.0"}
    out, err = started[0].communicate(timeout=180)
    assert started[0].returncode == 0, err
    v101 = json.loads(out)["digest"]
    assert [registry_digest(registry.address, pub.name, t) for t in ("1", "latest")] == [v101] * 2
    assert pub.verify().exit_code == 0


def waits_for(lock: Path) -> bool:
    """Whether a process waits for the flock on ``lock`` (a ``->`` line of /proc/locks)."""
    inode = f":{lock.stat().st_ino} " if lock.exists() else None
    text = Path("/proc/locks").read_text()
    return inode is not None and any("->" in line and inode in line for line in text.splitlines())
