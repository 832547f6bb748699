"""Image listings and differences, from synthetic `docker save` archives (no engine)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from gefreg.errors import EnvironmentFailure
from gefreg.image.image_diff import _extract, compare, config_changes
from gefreg.image.image_listing import read_archive


def layer(files: Mapping[str, bytes | None], mtime: int = 0) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            if data is None:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data or b""))
    return out.getvalue()


def archive(layers: list[bytes], labels: dict[str, str]) -> list[bytes]:
    """A docker-save archive as a stream of small chunks (as the engine sends it)."""
    config = json.dumps(
        {
            "config": {"Labels": labels},
            "rootfs": {"diff_ids": ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]},
        }
    ).encode()
    names = [f"{n:02d}/layer.tar" for n in range(len(layers))]
    listing = json.dumps([{"Config": "c.json", "Layers": names}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in [*zip(names, layers, strict=True), ("c.json", config)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("manifest.json")
        info.size = len(listing)
        tar.addfile(info, io.BytesIO(listing))
    data = out.getvalue()
    return [data[i : i + 777] for i in range(0, len(data), 777)]


BASE = layer({"etc": None, "etc/os-release": b"debian\n", "tmp": None, "tmp/x": b"x"})


def test_whiteouts_and_opaque_folders_apply_across_layers() -> None:
    top = layer({"etc/.wh.os-release": b"", "tmp/.wh..wh..opq": b"", "tmp/y": b"y"})
    listing = read_archive(archive([BASE, top], {}), "img")
    assert sorted(listing.files()) == ["etc", "tmp", "tmp/y"]


def test_a_changed_file_is_named_with_what_changed() -> None:
    a = read_archive(archive([BASE, layer({"opt": None, "opt/run.sh": b"echo a\n"})], {}), "a")
    b = read_archive(
        archive([BASE, layer({"opt": None, "opt/run.sh": b"echo bb\n", "opt/new": b""})], {}), "b"
    )
    result = compare(a, b)
    assert not result.identical
    changes = {c.path: c for c in result.files}
    assert set(changes) == {"opt/run.sh", "opt/new"}
    assert changes["opt/new"].status == "added"
    assert changes["opt/run.sh"].fields == ("size", "sha256")
    assert result.to_json()["files"][1]["a"]["path"] == "/opt/run.sh"


def test_times_owners_and_config_differences_are_reported() -> None:
    a = read_archive(archive([layer({"opt": None}, mtime=0)], {"v": "1"}), "a")
    b = read_archive(archive([layer({"opt": None}, mtime=5)], {"v": "2"}), "b")
    result = compare(a, b)
    assert [(c.path, c.fields) for c in result.files] == [("opt", ("mtime",))]
    assert ("config.Labels.v", "1", "2") in result.config
    assert [i for i, _, _ in result.layers] == [0]
    assert result.layers[0][1] == a.diff_ids[0] != result.layers[0][2]


def test_config_changes_walk_lists_and_mappings() -> None:
    assert config_changes({"h": [{"c": 1}, {"c": 2}]}, {"h": [{"c": 1}, {"c": 3}]}) == [
        ("h[1].c", 2, 3)
    ]
    assert config_changes({"a": [1]}, {"a": [1, 2]}) == [("a", [1], [1, 2])]


def test_a_whiteout_hides_only_lower_layers_and_many_whiteouts_stay_fast() -> None:
    many = {f"d/f{n}": b"" for n in range(6000)}
    gone = {f"d/.wh.f{n}": b"" for n in range(0, 6000, 2)}
    listing = read_archive(archive([layer({"d": None, **many}), layer(gone)], {}), "img")
    t0 = time.monotonic()
    files = listing.files()
    assert time.monotonic() - t0 < 1  # was a scan of the whole tree per whiteout
    assert len(files) == 1 + 3000 and "d/f1" in files and "d/f0" not in files
    same_layer = layer({"e": None, "e/x": b"x", "e/.wh..wh..opq": b""})
    assert sorted(read_archive(archive([same_layer], {}), "i").files()) == ["e", "e/x"]


def test_hostile_names_are_listed_but_never_written_outside_the_temporary_folder(
    tmp_path: Path,
) -> None:
    """Image content is untrusted: a layer may name ``../x``, an absolute path or a file below
    a file; --content extracts changed files, and must neither write outside its folder nor
    crash."""
    names = {"../../escape": b"a", "/abs/../../escape2": b"b", "f": b"c", "f/below": b"d"}
    a = read_archive(archive([layer(names)], {}), "a")
    assert {"../../escape", "abs/../../escape2", "f", "f/below"} <= set(a.files())
    saved = tmp_path / "a.tar"
    saved.write_bytes(b"".join(archive([layer(names)], {})))
    into = tmp_path / "work" / "a"
    for path in a.files():
        _extract(saved, path, into)
    outside = [p for p in tmp_path.rglob("*") if "work" not in p.parts and p != saved]
    assert outside == []
    assert (into / "f").read_bytes() == b"c"
    assert not (tmp_path.parent / "escape").exists()


@pytest.mark.parametrize(
    "manifest",
    [
        b"{}",
        b"[]",
        b'[{"Config": 5}]',
        b'[{"Config": "c.json", "Layers": ["nope"]}]',
        b'[{"Config": "c.json", "Layers": []}]',  # its config is a list, not an object
        b"\xff",
    ],
)
def test_an_archive_of_any_other_shape_is_an_environment_failure(manifest: bytes) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in (("c.json", b"[1, 2]"), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(EnvironmentFailure, match="is not a docker archive"):
        read_archive([out.getvalue()], "img")
