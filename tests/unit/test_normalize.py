"""Layer and config normalization: what makes an engine's build the same bytes every time."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from gefreg.image import normalize, oci
from gefreg.image.normalize import BaseLayers, load_stream, normalize_layer, normalize_saved
from gefreg.registry.media_types import OCI_LAYER_GZIP

EPOCH = 1735689600
PYC_TIMESTAMP = b"\xa7\x0d\x0d\x0a" + (0).to_bytes(4, "little")
PYC_HASHED = b"\xa7\x0d\x0d\x0a" + (3).to_bytes(4, "little")


def entry(name: str, data: bytes | None = None, **fields: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    if data is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = len(data)
        info.mode = 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data or b""


def layer_tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def sample(mtime: int, owner: str, reverse: bool) -> list[tuple[tarfile.TarInfo, bytes]]:
    """The same layer as two different builds leave it: other times, owner names, order."""
    pyc = PYC_TIMESTAMP + (mtime).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"code"
    items = [
        entry("opt", mtime=mtime, uname=owner),
        entry("opt/app", mtime=mtime),
        entry("opt/app/z.sh", b"echo z\n", mtime=mtime, uname=owner, mode=0o755),
        entry("opt/app/a.txt", b"a\n", mtime=mtime + 7),
        entry("opt/app/__pycache__", mtime=mtime),
        entry("opt/app/__pycache__/m.cpython-311.pyc", pyc, mtime=mtime),
        entry("var/log/dpkg.log", f"{mtime} install\n".encode(), mtime=mtime),
        entry(
            "usr/bin/ping",
            b"\x7fELF",
            mtime=mtime,
            pax_headers={"SCHILY.xattr.security.capability": "cap", "atime": str(mtime)},
        ),
    ]
    return list(reversed(items)) if reverse else items


def normalized(tmp_path: Path, data: bytes, name: str) -> tuple[oci.Blob, str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as source:
        blob, diff_id, removed, _ = normalize_layer(source, tmp_path / name, EPOCH)
    assert removed == ["var/log/dpkg.log"]
    return blob, diff_id, gzip.decompress((tmp_path / name).read_bytes())


def test_two_builds_of_the_same_layer_normalize_to_the_same_blob(tmp_path: Path) -> None:
    one = normalized(tmp_path, layer_tar(sample(1796000000, "root", False)), "one")
    two = normalized(tmp_path, layer_tar(sample(1796009999, "", True)), "two")
    assert one[:2] == two[:2]
    assert one[0].digest.startswith("sha256:") and one[1].startswith("sha256:")
    with tarfile.open(fileobj=io.BytesIO(one[2])) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert "var/log/dpkg.log" not in names
        assert {m.mtime for m in members} == {EPOCH}
        assert {m.uname for m in members} == {""}
        ping = tar.getmember("usr/bin/ping")
        assert ping.pax_headers == {"SCHILY.xattr.security.capability": "cap"}
        pyc = tar.extractfile("opt/app/__pycache__/m.cpython-311.pyc").read()  # type: ignore[union-attr]
        assert int.from_bytes(pyc[8:12], "little") == EPOCH  # matches its source's time


def test_hash_checked_pyc_is_left_alone_and_timestamp_pyc_gets_the_epoch() -> None:
    hashed = PYC_HASHED + b"12345678" + b"code"
    assert normalize.set_pyc_time(hashed, EPOCH) == hashed
    stamped = PYC_TIMESTAMP + (99).to_bytes(4, "little") + (4).to_bytes(4, "little") + b"code"
    assert normalize.set_pyc_time(stamped, EPOCH)[8:12] == EPOCH.to_bytes(4, "little")
    assert normalize.set_pyc_time(b"short", EPOCH) == b"short"


def test_hard_links_are_repointed_at_the_first_name_in_order(tmp_path: Path) -> None:
    target, data = entry("usr/bin/zz", b"binary")
    link = tarfile.TarInfo("usr/bin/aa")
    link.type, link.linkname = tarfile.LNKTYPE, "usr/bin/zz"
    _, _, out = normalized(
        tmp_path,
        layer_tar(
            [
                entry("usr"),
                entry("usr/bin"),
                (target, data),
                (link, b""),
                entry("var/log/dpkg.log", b"x"),
            ]
        ),
        "links",
    )
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        first, second = tar.getmember("usr/bin/aa"), tar.getmember("usr/bin/zz")
        assert first.isreg() and tar.extractfile(first).read() == b"binary"  # type: ignore[union-attr]
        assert second.islnk() and second.linkname == "usr/bin/aa"
        tar.extractall(tmp_path / "out", filter="data")  # extractable: the link follows
    assert (tmp_path / "out/usr/bin/zz").read_bytes() == b"binary"


RAW_CONFIG: dict[str, Any] = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2026-11-30T03:23:09.123Z",
    "docker_version": "20.10.24",
    "container": "abc",
    "container_config": {"Hostname": "abc"},
    "config": {
        "Hostname": "",
        "Env": ["PATH=/bin", "HOME=/tmp"],
        "Cmd": ["/bin/sh"],
        "User": "10001:10001",
        "Labels": {"a": "b"},
        "WorkingDir": "",
    },
    "rootfs": {"type": "layers", "diff_ids": ["sha256:base", "sha256:old"]},
    "history": [
        {"created": "2025-01-01T00:00:00Z", "created_by": "gefreg base build"},
        {"created": "2026-11-30T03:23:09Z", "created_by": "/bin/sh -c apt-get", "author": "x"},
        {"created": "2026-11-30T03:23:10Z", "created_by": "LABEL a=b", "empty_layer": True},
    ],
}


def test_config_keeps_runtime_settings_and_the_base_history_only() -> None:
    config = json.loads(
        normalize.service_config(RAW_CONFIG, EPOCH, ["sha256:base", "sha256:new"], base_history=1)
    )
    assert set(config) == {"architecture", "os", "created", "config", "rootfs", "history"}
    assert config["created"] == "2025-01-01T00:00:00Z"
    assert config["config"] == {
        "Env": ["PATH=/bin", "HOME=/tmp"],
        "Cmd": ["/bin/sh"],
        "User": "10001:10001",
        "Labels": {"a": "b"},
    }
    assert config["rootfs"]["diff_ids"] == ["sha256:base", "sha256:new"]
    assert config["history"] == [
        RAW_CONFIG["history"][0],
        {"created": "2025-01-01T00:00:00Z", "created_by": "/bin/sh -c apt-get"},
        {"created": "2025-01-01T00:00:00Z", "created_by": "LABEL a=b", "empty_layer": True},
    ]


def saved_archive(path: Path, layers: list[bytes], config: dict[str, Any]) -> Path:
    """A `docker save` archive as the engine writes it (layer folders in hash order)."""
    names = [f"{i:064x}/layer.tar" for i in range(len(layers))]
    config_bytes = json.dumps(config).encode()
    listing = json.dumps([{"Config": "c.json", "RepoTags": None, "Layers": names}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in [*zip(names, layers, strict=True), ("c.json", config_bytes)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("manifest.json")
        info.size = len(listing)
        tar.addfile(info, io.BytesIO(listing))
    return path


def test_saved_image_normalizes_above_its_base_and_loads_as_an_archive(tmp_path: Path) -> None:
    base_layer = layer_tar([entry("etc"), entry("etc/os-release", b"debian\n")])
    service = layer_tar(sample(1796000000, "root", False))
    base_diff = "sha256:" + hashlib.sha256(base_layer).hexdigest()
    config = {**RAW_CONFIG, "rootfs": {"type": "layers", "diff_ids": [base_diff, "sha256:x"]}}
    saved = saved_archive(tmp_path / "saved.tar", [base_layer, service], config)
    base = BaseLayers(
        (oci.Blob("sha256:" + "b" * 64, 10, OCI_LAYER_GZIP),),
        (base_diff,),
        1,
    )
    image = normalize_saved(saved, tmp_path / "work", EPOCH, base)
    assert image.diff_ids[0] == base_diff and len(image.layers) == 2
    assert image.layers[0] == base.blobs[0]  # the base keeps its published blob
    manifest = json.loads(image.manifest)
    assert manifest["config"]["digest"] == image.image_id
    assert [d["digest"] for d in manifest["layers"]] == [b.digest for b in image.layers]
    assert image.removed == ("var/log/dpkg.log",)

    archive = b"".join(load_stream(saved, image, base_count=1))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        listing = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert listing[0]["Layers"] == ["0/layer.tar", "1/layer.tar"]
        assert tar.extractfile("0/layer.tar").read() == base_layer  # type: ignore[union-attr]
        config_name = image.image_id.removeprefix("sha256:") + ".json"
        assert tar.extractfile(config_name).read() == image.config  # type: ignore[union-attr]
