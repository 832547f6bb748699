"""What signing costs: the signature + provenance check every run of a published release makes,
and signing at publish, against a real registry (CNCF Distribution), side by side with the
plain tool fetching the same objects (skopeo: the .sig and .att manifests) and with raw HTTP
GETs of everything the check reads (the floor).

    .venv/bin/python benchmarks/bench_signing.py [--runs 20]
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import best_of, command, report
from gefreg.registry import processes
from gefreg.registry import server as regserver
from gefreg.registry.client import RegistryClient
from gefreg.registry.media_types import OCI_MANIFEST
from gefreg.release import keys, ledger, signing, trust_policy
from gefreg.release.attachments import tag_for
from gefreg.release.signature_check import VERIFIED, check_release
from gefreg.settings import Settings
from tests.registry_fixtures import tiny_image

NAME = "bench-signing"


def setup(address: str, root: Path) -> tuple[Settings, ledger.Release, keys.SigningKey]:
    image = tiny_image("signing benchmark")
    with RegistryClient(address) as client:
        for digest, data in image.blobs():
            client.push_blob(NAME, digest, data)
        client.put_manifest(NAME, "1.0.0", image.manifest, OCI_MANIFEST)
    catalog = root / "catalog"
    (catalog / NAME).mkdir(parents=True)
    keys.generate(root / "key", None)
    key = keys.load_signing_key(root / "key" / keys.PRIVATE_FILE)
    (catalog / "trust.yaml").write_text("require-signatures: true\nkeys: []\n")
    trust_policy.add_key(catalog, key.public, "bench")
    release = ledger.Release(
        version="1.0.0",
        digest=image.digest,
        repository=f"{address}/{NAME}",
        fingerprint="sha256:" + "1" * 64,
        base_digest=None,
        image_id=image.config_digest,
        published="2026-01-01T00:00:00Z",
        scan={"passed": True},
        gefreg_version="bench",
        signed_by="bench",
    )
    ledger.append(catalog / NAME, release)
    return Settings(catalog, address, root / "state"), release, key


def raw_gets(address: str, paths: list[str]) -> None:
    """The floor: one kept-alive connection, a GET of each object the check reads."""
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    accept = {"Accept": OCI_MANIFEST}
    for path in paths:
        conn.request("GET", path, headers=accept)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, (path, resp.status)
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("skopeo") is None:
        sys.exit("skopeo is not installed: apt-get install skopeo")
    with tempfile.TemporaryDirectory() as tmp:
        served = regserver.serve(processes.free_port(), Path(tmp) / "registry")
        address = served.status.address or ""
        try:
            settings, release, key = setup(address, Path(tmp))
            policy = trust_policy.load(settings.catalog)
            with RegistryClient(address) as client:
                t_sign = best_of(
                    1,
                    lambda: signing.sign_release(client, policy, NAME, release, key, date.today()),
                )
                sig = client.get_manifest(NAME, tag_for(release.digest, "sig"))
                att = client.get_manifest(NAME, tag_for(release.digest, "att"))
            assert sig is not None and att is not None
            blobs = [d["digest"] for m in (sig, att) for d in m.json()["layers"]]
            paths = [
                f"/v2/{NAME}/manifests/{tag_for(release.digest, s)}" for s in ("sig", "att")
            ] + [f"/v2/{NAME}/blobs/{b}" for b in blobs]
            trusted = ledger.CatalogLedger(settings).lookup(NAME, "1.0.0")
            assert trusted is not None
            assert check_release(settings, trusted).state == VERIFIED
            t_check = best_of(args.runs, lambda: check_release(settings, trusted))
            skopeo = [
                "skopeo",
                "inspect",
                "--raw",
                "--tls-verify=false",
            ]
            t_skopeo = best_of(
                args.runs,
                lambda: [
                    command([*skopeo, f"docker://{address}/{NAME}:{tag_for(release.digest, s)}"])()
                    for s in ("sig", "att")
                ],
            )
            t_floor = best_of(args.runs, lambda: raw_gets(address, paths))
        finally:
            regserver.stop(Path(tmp) / "registry")
    report(
        f"check one signed release ({len(paths)} registry reads), median of {args.runs}",
        [
            ("check_release: signature + provenance + scan verdict", t_check),
            ("skopeo inspect --raw of the .sig and .att manifests", t_skopeo),
            (f"floor: {len(paths)} raw GETs on one connection", t_floor),
            ("sign_release at publish (signature + 2 attestations)", t_sign),
        ],
        ratio_of=(
            "skopeo inspect --raw of the .sig and .att manifests",
            "check_release: signature + provenance + scan verdict",
        ),
    )


if __name__ == "__main__":
    main()
