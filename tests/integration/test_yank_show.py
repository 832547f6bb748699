"""`gefreg list`, `show` and `yank` against a real registry, checked with skopeo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gefreg.registry.client import RegistryClient
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
    assert page["registry"]["sbom"] and page["registry"]["scan_report"]
    assert page["registry"]["signature"]["state"] == "unsigned"  # published without a key
    assert page["run"] == "gefreg run pub-browse@1.0.0 --input DIR --output DIR"
    text = gefreg("show", *opts, "pub-browse").stdout
    assert "pub-browse 1.1.0:" in text and "[1, 1.1, latest]" in text

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

    with RegistryClient(registry.address) as client:
        other = client.get_manifest(pub.name, f"{v100.replace(':', '-')}.scan")
        assert other is not None
        client.put_manifest(
            pub.name, f"{v110.replace(':', '-')}.scan", other.body, other.media_type
        )
    refused = gefreg("show", *pub.opts(), "pub-artifact@1.1.0", "--scan-report")
    assert refused.exit_code == 1 and "is not the one published with 1.1.0" in refused.stderr
    assert refused.stdout == ""
