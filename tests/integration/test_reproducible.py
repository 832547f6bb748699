"""Reproducible images, `gefreg rebuild` and `gefreg diff` against the real engine and a real
registry. Entries are FROM-scratch busybox images in a git catalog (they build in a second);
the shipped entries' reproducibility is tested in test_reproducible_shipped.py."""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gefreg.cli import cli
from tests.helpers import git, git_repository
from tests.integration.test_build import static_catalog
from tests.integration.test_publish import POLICY, removing_test_images
from tests.registry_fixtures import LocalRegistry

pytestmark = pytest.mark.docker


def gefreg(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


class Published:
    """A git catalog with one static entry, built and published to ``registry``."""

    def __init__(self, tmp_path: Path, name: str, registry: str) -> None:
        self.name = name
        self.catalog = static_catalog(tmp_path, name=name)
        (self.catalog / "policy.yaml").write_text(POLICY)
        self.commit = git_repository(self.catalog)
        self.opts = ["--catalog", str(self.catalog), "--registry", registry]

    def run(self, *args: str) -> Result:
        return gefreg(*args, *self.opts)

    def build(self, *extra: str) -> dict[str, object]:
        done = self.run("build", self.name, "--json", *extra)
        assert done.exit_code == 0, done.stderr
        return dict(json.loads(done.stdout))

    def publish(self) -> dict[str, object]:
        done = self.run("publish", self.name, "--json")
        assert done.exit_code == 0, done.stderr
        return dict(json.loads(done.stdout))

    def ledger(self) -> list[dict[str, object]]:
        text = (self.catalog / self.name / "releases.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(autouse=True)
def _remove_images(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    """Only this test's images: its catalogs' tag namespaces and its registry's rep-* (images
    are reproducible, so another session's are the very same images under its own tags)."""
    yield from removing_test_images(tmp_path, request, names="rep-")


def test_static_entry_builds_the_same_image_every_time(tmp_path: Path) -> None:
    catalog = static_catalog(tmp_path, name="rep-twice")
    opts = ["--catalog", str(catalog), "--registry", "127.0.0.1:1"]
    first = json.loads(gefreg("build", "rep-twice", "--no-cache", "--json", *opts).stdout)
    second = json.loads(gefreg("build", "rep-twice", "--no-cache", "--json", *opts).stdout)
    assert first["image_id"] == second["image_id"]
    assert first["manifest_digest"] == second["manifest_digest"]
    assert first["engine_image_id"] != second["engine_image_id"]  # the engine's own differ
    assert first["source_date"] == {"epoch": 0, "origin": "default", "commit": None}
    created = subprocess.run(
        ["docker", "inspect", "--format", "{{.Created}}", first["image_id"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert created == "1970-01-01T00:00:00Z"


def test_publish_then_rebuild_is_bit_identical_and_can_be_recorded(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    pub = Published(tmp_path, "rep-proof", registry.address)
    built = pub.build()
    published = pub.publish()
    (line,) = pub.ledger()
    assert line["catalog_commit"] == pub.commit
    assert published["digest"] == built["manifest_digest"]  # the build knew the digest

    # The working tree moves on: the rebuild still takes the published commit.
    (pub.catalog / pub.name / "run.sh").write_text("echo changed later\n")
    done = pub.run("rebuild", f"{pub.name}@1.0.0", "--record", "--json")
    assert done.exit_code == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert result["identical"] is True
    assert result["source"] == f"commit {pub.commit}"
    assert result["rebuilt"] == {"digest": line["digest"], "image_id": line["image_id"]}
    assert result["source_date"]["origin"] == "git"
    assert result["recorded"].startswith("rebuilt: identical on ")
    leftover = subprocess.run(  # the engine's own build is not left behind (1.2 GB for some)
        ["docker", "image", "inspect", result["engine_image_removed"]], capture_output=True
    )
    assert result["engine_image_removed"].startswith("sha256:") and leftover.returncode != 0
    note = pub.ledger()[-1]
    assert note["schema"] == "gefreg.rebuild/1" and note["digest"] == line["digest"]
    assert pub.run("verify").exit_code == 0  # the note does not confuse the ledger readers


def test_rebuild_that_differs_exits_1_and_names_the_file(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    """The ledger's commit is tampered with: its record is the published one, but a shipped
    file differs. The fingerprint check says the commit does not hold the inputs (exit 3);
    an image built from the changed file, compared with `diff`, names that file (exit 1)."""
    pub = Published(tmp_path, "rep-diff", registry.address)
    pub.build()
    pub.publish()
    (pub.catalog / pub.name / "run.sh").write_text("echo hello from a changed file\n")
    changed = pub.build()

    done = pub.run("diff", f"{pub.name}@1.0.0", str(changed["image_id"]), "--json")
    assert done.exit_code == 1, done.stderr
    report = json.loads(done.stdout)
    files = {f["path"]: f for f in report["files"]}
    assert set(files) == {"/opt/run.sh"}
    assert "sha256" in files["/opt/run.sh"]["fields"] and "size" in files["/opt/run.sh"]["fields"]
    text = pub.run("diff", f"{pub.name}@1.0.0", str(changed["image_id"])).stdout
    assert "changed  /opt/run.sh: size" in text
    assert any(c["key"] == "config.Labels.org.gefreg.fingerprint" for c in report["config"])

    git(pub.catalog, "commit", "-qam", "change run.sh")
    line = pub.ledger()[0]
    ledger = pub.catalog / pub.name / "releases.jsonl"
    line["catalog_commit"] = git(pub.catalog, "rev-parse", "HEAD")  # a hostile ledger edit
    ledger.write_text(json.dumps(line) + "\n")
    done = pub.run("rebuild", f"{pub.name}@1.0.0")
    assert done.exit_code == 3, done.stderr
    assert "does not hold what rep-diff 1.0.0 was built from" in done.stderr


def test_diff_of_identical_images_exits_0_and_content_uses_diffoscope(tmp_path: Path) -> None:
    catalog = static_catalog(tmp_path, name="rep-same")
    opts = ["--catalog", str(catalog), "--registry", "127.0.0.1:1"]
    built = json.loads(gefreg("build", "rep-same", "--json", *opts).stdout)
    first, tag = built["image_id"], built["tags"][0]  # the catalog's NAMESPACE/rep-same:1.0.0
    done = gefreg("diff", first, tag, *opts)
    assert done.exit_code == 0 and "identical" in done.stdout
    (catalog / "rep-same" / "run.sh").write_text("echo hello from $0, changed\n")
    second = json.loads(gefreg("build", "rep-same", "--json", *opts).stdout)["image_id"]
    done = gefreg("diff", first, second, "--content", *opts)
    assert done.exit_code == 1
    assert "changed  /opt/run.sh" in done.stdout
    assert "--- a/opt/run.sh" in done.stdout  # diffoscope's own text
    assert "+echo hello from $0, changed" in done.stdout


def test_rebuild_says_which_input_is_gone(tmp_path: Path, registry: LocalRegistry) -> None:
    pub = Published(tmp_path, "rep-gone", registry.address)
    pub.build()
    pub.publish()
    ledger = pub.catalog / pub.name / "releases.jsonl"
    line = pub.ledger()[0]
    for field, value, said in (
        ("catalog_commit", "f" * 40, f"commit {'f' * 12} is not in the repository"),
        ("gefreg_version", "0.0.1", "was built by gefreg 0.0.1"),
    ):
        ledger.write_text(json.dumps({**line, field: value}) + "\n")
        done = pub.run("rebuild", f"{pub.name}@1.0.0")
        assert done.exit_code == 3, done.stderr
        assert said in done.stderr
    for hostile in ("--output=/tmp/x", "../../etc", "f" * 40 + "\n", 5, ["f" * 40]):
        ledger.write_text(json.dumps({**line, "catalog_commit": hostile}) + "\n")
        done = pub.run("rebuild", f"{pub.name}@1.0.0")
        assert done.exit_code == 2 and "not a full commit name" in done.stderr, hostile


def test_a_catalog_outside_git_is_rebuilt_from_its_working_tree_while_unchanged(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    catalog = static_catalog(tmp_path, name="rep-nogit")
    (catalog / "policy.yaml").write_text(POLICY)
    opts = ["--catalog", str(catalog), "--registry", registry.address]
    assert gefreg("build", "rep-nogit", *opts).exit_code == 0
    assert gefreg("publish", "rep-nogit", *opts).exit_code == 0
    done = gefreg("rebuild", "rep-nogit@1.0.0", "--json", *opts)
    assert done.exit_code == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["identical"] and result["source"] == "working tree"
    assert result["source_date"] == {"epoch": 0, "origin": "default", "commit": None}
    (catalog / "rep-nogit" / "run.sh").write_text("echo moved on\n")
    done = gefreg("rebuild", "rep-nogit@1.0.0", *opts)
    assert (
        done.exit_code == 3 and "does not hold what rep-nogit 1.0.0 was built from" in done.stderr
    )


def test_rebuild_of_a_release_that_is_not_what_its_commit_builds_exits_1_with_the_file(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    """The ledger says 1.0.0 is an image its commit does not build (here: the image of 1.0.1,
    whose run.sh differs; say, one pushed from an unrecorded build). The rebuild from 1.0.0's
    commit is bit-identical to nothing the ledger names: exit 1, and the difference, pulled
    from the registry by the ledger's digest, names the file."""
    pub = Published(tmp_path, "rep-other", registry.address)
    pub.build()
    pub.publish()
    record = pub.catalog / pub.name / "service.yaml"
    record.write_text(record.read_text().replace('version: "1.0.0"', 'version: "1.0.1"'))
    (pub.catalog / pub.name / "run.sh").write_text("echo not what 1.0.0 was built from\n")
    git(pub.catalog, "commit", "-qam", "1.0.1")
    pub.build()
    pub.publish()
    first, second = pub.ledger()
    assert first["digest"] != second["digest"]
    ledger = pub.catalog / pub.name / "releases.jsonl"
    forged = {**first, "digest": second["digest"], "image_id": second["image_id"]}
    ledger.write_text(json.dumps(forged) + "\n" + json.dumps(second) + "\n")
    subprocess.run(  # the rebuild must pull the published image to explain the difference
        ["docker", "rmi", f"{registry.address}/rep-other@{second['digest']}"],
        capture_output=True,
        check=False,
    )

    done = pub.run("rebuild", f"{pub.name}@1.0.0", "--json")
    assert done.exit_code == 1, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert result["identical"] is False
    assert result["rebuilt"] == {"digest": first["digest"], "image_id": first["image_id"]}
    files = {f["path"] for f in result["difference"]["files"]}
    assert files == {"/opt/run.sh"}
    text = pub.run("rebuild", f"{pub.name}@1.0.0")
    assert text.exit_code == 1
    assert "DIFFERENT" in text.stdout and "changed  /opt/run.sh: size" in text.stdout
    assert "did not rebuild bit for bit" in text.stderr

    # A ledger line naming another registry is not followed to explain the difference.
    elsewhere = {**forged, "repository": "evil.example:5000/rep-other"}
    ledger.write_text(json.dumps(elsewhere) + "\n" + json.dumps(second) + "\n")
    done = pub.run("rebuild", f"{pub.name}@1.0.0", "--json")
    assert done.exit_code == 1 and json.loads(done.stdout)["difference"] is None


@pytest.mark.parametrize("target", ["../rep-x@1.0.0", "rep-x@../../1.0.0", "rep-x", "@1.0.0"])
def test_rebuild_refuses_a_target_that_is_no_catalog_name(tmp_path: Path, target: str) -> None:
    catalog = static_catalog(tmp_path, name="rep-x")
    done = gefreg("rebuild", target, "--catalog", str(catalog), "--registry", "127.0.0.1:1")
    assert done.exit_code == 2, done.stderr
    assert "NAME@VERSION" in done.stderr


def _loaded(tmp_path: Path, tag: str, files: dict[str, bytes], label: str) -> str:
    """An image the engine loads from a hand-made `docker save` archive (what a hostile
    registry or tarball can hand a user): its names and labels are whatever it says."""
    import hashlib
    import io
    import tarfile

    def tar_of(members: list[tuple[str, bytes]]) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return out.getvalue()

    layer = tar_of(list(files.items()))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"note": label}},
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()],
            },
        }
    ).encode()
    name = hashlib.sha256(config).hexdigest() + ".json"
    listing = json.dumps([{"Config": name, "RepoTags": [tag], "Layers": ["l/layer.tar"]}])
    archive = tmp_path / f"{tag.replace(':', '-').replace('/', '-')}.tar"
    archive.write_bytes(
        tar_of([("l/layer.tar", layer), (name, config), ("manifest.json", listing.encode())])
    )
    subprocess.run(["docker", "load", "-i", str(archive)], check=True, capture_output=True)
    return tag


def test_diff_of_hostile_images_shows_names_escaped_and_writes_nothing_outside(
    tmp_path: Path,
) -> None:
    """File names and labels with terminal control sequences are shown, never obeyed; a layer
    naming ``../../x`` (the engine loads it, then cannot export it) is exit 3 with the
    engine's words, not a traceback; --content leaves no temporary folder behind."""
    tag = f"rep-hostile-{uuid.uuid4().hex[:12]}"
    evil = "\x1b]0;owned\x07\x1b[2J"
    a = _loaded(tmp_path, f"{tag}:a", {f"x{evil}y": b"a", "d/f": b"1"}, evil)
    b = _loaded(tmp_path, f"{tag}:b", {f"x{evil}y": b"bb", "d/f": b"1"}, "plain")
    gone = _loaded(tmp_path, f"{tag}:c", {"../../escape": b"x"}, "plain")
    try:
        before = set(Path(tempfile.gettempdir()).glob("gefreg-diff-*"))
        done = gefreg("diff", a, b, "--content")
        assert done.exit_code == 1, done.stderr
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout
        assert "changed  /x\\x1b]0;owned\\x07\\x1b[2Jy: size 1 -> 2" in done.stdout
        assert "config.Labels.note: \\x1b]0;owned\\x07\\x1b[2J -> plain" in done.stdout
        assert "+00000000: 6262" in done.stdout  # diffoscope explained the escaped name's file
        report = json.loads(gefreg("diff", a, b, "--json").stdout)
        assert [f["path"] for f in report["files"]] == [f"/x{evil}y"]  # JSON keeps it exact
        assert set(Path(tempfile.gettempdir()).glob("gefreg-diff-*")) == before
        for extra in ([], ["--content"]):
            done = gefreg("diff", a, gone, *extra)
            assert done.exit_code == 3, done.stderr
            assert f"the engine failed while exporting {gone}" in done.stderr
        assert not (Path("/var/lib/docker/overlay2") / "escape").exists()
    finally:
        subprocess.run(["docker", "rmi", a, b, gone], capture_output=True, check=False)
