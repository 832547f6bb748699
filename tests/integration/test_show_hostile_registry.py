"""`gefreg show NAME@VERSION --sbom/--scan-report` against a registry that lies: artifacts of
another image or kind, malformed manifests, a 1 GiB blob behind a small manifest, a digest
header that is not a digest, a forged scan report under the artifact tag. Every one is refused
(exit 1 a check said no, exit 3 the registry misbehaved), nothing reaches stdout, and the
client stops reading where the manifest's size ends.

The registry is a real HTTP server on loopback (tests/fake_http.py) answering the registry API
with hostile content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gefreg.cli import cli
from gefreg.registry.media_types import OCI_MANIFEST
from gefreg.release.ledger import Release
from gefreg.release.overview import ARTIFACT_KINDS
from tests.fake_http import Reply, Request, serving
from tests.helpers import demo_entry, make_catalog

SCAN = ARTIFACT_KINDS["scan"]
GIB = 1024**3


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class Hostile:
    """A registry holding one image and its scan report; tests then make it lie."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}  # tag or digest -> body
        self.streamed: dict[str, int] = {}  # blob digest -> bytes sent of an endless blob
        self.head_digest: str | None = None  # what HEAD says in Docker-Content-Digest
        config = self.blob(canonical({"config": {"Labels": {"a": "b"}}}))
        self.image = self.manifest(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": []}
        )
        self.report = b'{"subject": {"entry": "demo"}, "verdict": "passed"}'

    def blob(self, data: bytes) -> dict[str, Any]:
        self.blobs[digest(data)] = data
        return {"mediaType": "application/octet-stream", "digest": digest(data), "size": len(data)}

    def manifest(self, doc: dict[str, Any] | list[Any], *tags: str) -> str:
        body = json.dumps(doc).encode()
        for ref in (digest(body), *tags):
            self.manifests[ref] = body
        return digest(body)

    def artifact(self, report: bytes, **changes: Any) -> str:
        """A scan-report artifact of the image under its tag (``changes`` replace fields)."""
        layer = {**self.blob(report), "mediaType": SCAN}
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SCAN,
            "config": self.blob(b"{}"),
            "layers": [layer],
            "subject": {"mediaType": OCI_MANIFEST, "digest": self.image, "size": 1},
            **changes,
        }
        return self.manifest(doc, self.image.replace(":", "-") + ".scan")

    def endless(self, claimed: int) -> str:
        """A blob digest the registry answers with ``claimed`` bytes of zeros, sent on until
        the client hangs up (how far it got is in ``streamed``)."""
        name = digest(b"endless%d" % claimed)
        self.streamed[name] = 0
        return name

    def __call__(self, request: Request) -> Reply:
        path = request.path.removeprefix("/v2/")
        if path == "":
            return Reply(200, {}, b"{}")
        kind, _, ref = path.removeprefix("demo/").partition("/")
        if kind == "manifests" and ref in self.manifests:
            body = self.manifests[ref]
            said = self.head_digest or digest(body)
            headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": said}
            return Reply(200, {**headers, "Content-Length": str(len(body))}, body)
        if kind == "blobs" and ref in self.streamed:
            return Reply(200, {"Content-Length": str(GIB)}, self._zeros(ref))
        if kind == "blobs" and ref in self.blobs:
            return Reply(200, {}, self.blobs[ref])
        return Reply(404, {}, b'{"errors": [{"code": "MANIFEST_UNKNOWN"}]}')

    def _zeros(self, name: str) -> Iterator[bytes]:
        chunk = bytes(1024**2)
        while self.streamed[name] < GIB:
            self.streamed[name] += len(chunk)
            yield chunk


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[Hostile, list[str]]]:
    reg = Hostile()
    with serving(reg) as server:
        catalog = make_catalog(tmp_path / "catalog", demo_entry(name="demo"))
        release = Release(
            version="1.0.0",
            digest=reg.image,
            repository=f"{server.address}/demo",
            fingerprint="sha256:" + "1" * 64,
            base_digest=None,
            image_id="sha256:" + "2" * 64,
            published="2026-01-01T00:00:00Z",
        )
        (catalog / "demo" / "releases.jsonl").write_text(release.to_line())
        yield reg, ["--catalog", str(catalog), "--registry", server.address]


def show(opts: list[str], *args: str) -> Result:
    env = {"GEFREG_STATE": str(Path(opts[1]).parent / "state")}
    return CliRunner().invoke(cli, ["show", *opts, *args], env=env, catch_exceptions=False)


def test_an_honest_report_is_shown(hostile: tuple[Hostile, list[str]]) -> None:
    reg, opts = hostile
    reg.artifact(reg.report)
    shown = show(opts, "demo@1.0.0", "--scan-report")
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout_bytes == reg.report


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject": {"digest": "sha256:" + "9" * 64}}, "is not the one published with 1.0.0"),
        ({"subject": "sha256:abc"}, "its subject is None"),
        ({"artifactType": "text/plain"}, "its type 'text/plain'"),
        ({"layers": "everything"}, "is not the one published with 1.0.0"),
        ({"layers": [1, 2]}, "is not the one published with 1.0.0"),
        ({"layers": [{"mediaType": "text/plain", "digest": "x", "size": 1}]}, "is not the one"),
        ({"layers": [{"mediaType": SCAN, "digest": "../../x", "size": 1}]}, "no valid blob"),
        ({"layers": [{"mediaType": SCAN, "digest": "sha256:" + "0" * 64, "size": GIB}]}, "size"),
    ],
)
def test_a_lying_artifact_manifest_is_refused(
    hostile: tuple[Hostile, list[str]], changes: dict[str, Any], message: str
) -> None:
    reg, opts = hostile
    reg.artifact(reg.report, **changes)
    refused = show(opts, "demo@1.0.0", "--scan-report")
    assert refused.exit_code == 1, refused.stderr
    assert message in refused.stderr and refused.stdout == ""


def test_a_manifest_that_is_not_an_object_is_refused(hostile: tuple[Hostile, list[str]]) -> None:
    reg, opts = hostile
    reg.manifest(["not", "a", "manifest"], reg.image.replace(":", "-") + ".scan")
    refused = show(opts, "demo@1.0.0", "--scan-report")
    assert refused.exit_code == 1 and "is not a JSON object" in refused.stderr


def test_a_report_that_is_not_json_never_reaches_the_terminal(
    hostile: tuple[Hostile, list[str]],
) -> None:
    reg, opts = hostile
    reg.artifact(b"\x1b]0;owned\x07\x1b[2J everything is fine")
    refused = show(opts, "demo@1.0.0", "--scan-report")
    assert refused.exit_code == 1 and "is not a JSON object" in refused.stderr
    assert refused.stdout_bytes == b""


def test_a_huge_blob_behind_a_small_manifest_is_cut_off(
    hostile: tuple[Hostile, list[str]],
) -> None:
    """The manifest says 51 bytes; the registry starts sending 1 GiB. The client stops after
    the first chunk past the size, not after reading a gigabyte into memory."""
    reg, opts = hostile
    huge = reg.endless(len(reg.report))
    reg.artifact(
        reg.report,
        layers=[{"mediaType": SCAN, "digest": huge, "size": len(reg.report)}],
    )
    refused = show(opts, "demo@1.0.0", "--scan-report")
    assert refused.exit_code == 3, refused.stderr
    assert f"sent more than the {len(reg.report)} bytes blob {huge} has" in refused.stderr
    assert refused.stdout == "" and reg.streamed[huge] < 64 * 1024**2


def test_a_digest_header_that_is_no_digest_is_not_believed(
    hostile: tuple[Hostile, list[str]],
) -> None:
    """A HEAD answering `Docker-Content-Digest: ../../x` must not become a reference gefreg
    asks for (nor a usage error): the manifest is fetched and hashed instead."""
    reg, opts = hostile
    reg.artifact(reg.report)
    reg.head_digest = "../../x"
    shown = show(opts, "demo@1.0.0", "--scan-report")
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout_bytes == reg.report


def test_the_ledger_names_the_scan_report_so_a_forged_one_is_ignored(
    hostile: tuple[Hostile, list[str]],
) -> None:
    """The scan report published with the release is named in its ledger line: a forged one
    under the tag, with the right subject, is not what `show` prints."""
    reg, opts = hostile
    published = reg.artifact(reg.report)
    reg.artifact(b'{"verdict": "passed", "forged": true}')  # takes the tag
    ledger = Path(opts[1]) / "demo" / "releases.jsonl"
    line = json.loads(ledger.read_text())
    ledger.write_text(json.dumps({**line, "scan_report_digest": published}) + "\n")
    shown = show(opts, "demo@1.0.0", "--scan-report")
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout_bytes == reg.report
