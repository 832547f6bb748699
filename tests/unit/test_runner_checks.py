"""Runner checks that need no engine: folders, overlaps, ownership hand-back, applied flags."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from gefreg.engine import BindMount, ContainerSpec, ContainerState
from gefreg.errors import BadInput
from gefreg.image.interface import ServiceInterface
from gefreg.model import Port, Resources
from gefreg.run import folders
from gefreg.run.folders import (
    check_disjoint,
    check_inputs,
    check_outputs,
    first_mount_point,
    mount_points,
)
from gefreg.run.hardening import applied, container_spec, mismatches
from gefreg.run.ownership import (
    first_unreadable,
    hand_back,
)

ROOT = os.geteuid() == 0


def test_inputs_must_be_existing_folders(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match="does not exist"):
        check_inputs({"in": tmp_path / "nope"})
    with pytest.raises(BadInput, match="is not a folder"):
        check_inputs({"in": tmp_path / "file"})
    assert check_inputs({"in": tmp_path}) == {"in": tmp_path.resolve()}


def test_outputs_must_be_empty_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("user data")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match="is not empty") as info:
        check_outputs({"out": tmp_path / "full"}, force=False)
    assert "--force" in str(info.value.hint)
    assert check_outputs({"out": tmp_path / "full"}, force=True)
    assert (tmp_path / "full" / "keep.txt").read_text() == "user data"
    with pytest.raises(BadInput, match="not a folder"):
        check_outputs({"out": tmp_path / "file"}, force=True)
    assert check_outputs({"out": tmp_path / "new" / "deeper"}, force=False)
    assert not (tmp_path / "new").exists()  # checked, not created


@pytest.mark.skipif(not ROOT, reason="mounting a read-only tmpfs needs root")
def test_output_on_read_only_file_system(tmp_path: Path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(BadInput, match="read-only file system"):
            check_outputs({"out": target / "out"}, force=False)
        with pytest.raises(BadInput, match="read-only file system"):
            check_outputs({"out": target}, force=False)
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_read_only_detection_without_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeStat:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda _: FakeStat())
    with pytest.raises(BadInput, match="read-only"):
        check_outputs({"out": tmp_path / "x"}, force=False)


def test_overlapping_folders_are_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "a" / "b"
    with pytest.raises(BadInput, match="overlap"):
        check_disjoint({"in": a}, {"out": b}, tmp_path / "run.json")
    with pytest.raises(BadInput, match="overlap"):
        check_disjoint({"in": b}, {"out": a}, tmp_path / "run.json")
    with pytest.raises(BadInput, match="overlap"):
        check_disjoint({}, {"x": a, "y": a}, tmp_path / "run.json")
    with pytest.raises(BadInput, match=r"record .* would be inside output"):
        check_disjoint({"in": tmp_path / "in"}, {"out": a}, a / "run.json")
    check_disjoint({"x": a, "y": a}, {"out": tmp_path / "o"}, tmp_path / "r.json")  # inputs may


@pytest.mark.skipif(not ROOT, reason="chown needs root")
def test_hand_back(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o755)
    outside = tmp_path / "outside.txt"
    outside.write_text("host file")
    os.chown(outside, 10001, 10001)
    # what a service running as 10001 leaves behind
    (out / "sub").mkdir()
    (out / "sub" / "r.txt").write_text("result")
    (out / "suid").write_text("#!/bin/sh")
    (out / "root.txt").write_text("not the service's")
    os.symlink(outside, out / "link-out")
    for p in (out / "sub", out / "sub" / "r.txt", out / "suid"):
        os.chown(p, 10001, 10001)
    os.chmod(out / "suid", 0o4755)
    os.chown(out / "link-out", 10001, 10001, follow_symlinks=False)
    changed = hand_back(out, 10001, 0, 0)
    assert changed.count == 4 and changed.problems == ()
    for p in (out / "sub", out / "sub" / "r.txt", out / "suid"):
        assert (os.stat(p).st_uid, os.stat(p).st_gid) == (0, 0)
    assert os.lstat(out / "link-out").st_uid == 0
    assert os.stat(outside).st_uid == 10001  # the link's target was not touched
    assert not os.stat(out / "suid").st_mode & (stat.S_ISUID | stat.S_ISGID)


def test_first_unreadable(tmp_path: Path) -> None:
    tree = tmp_path / "in"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("x")
    os.chmod(tree, 0o755)
    assert first_unreadable(tree, 10001, 10001) is None
    os.chmod(tree / "sub" / "f", 0o600)
    assert first_unreadable(tree, 10001, 10001) == tree / "sub" / "f"
    os.chmod(tree / "sub", 0o700)
    assert first_unreadable(tree, 10001, 10001) == tree / "sub"
    os.chmod(tree, 0o700)
    assert first_unreadable(tree, 10001, 10001) == tree
    assert first_unreadable(tree, os.stat(tree).st_uid, 0) is None


def _spec(limits: Resources) -> ContainerSpec:
    face = ServiceInterface(
        "demo", "1.0.0", (Port("in", "/data/in"),), (Port("out", "/data/out"),), ("/bin/tool",)
    )
    return container_spec(
        face,
        "sha256:" + "a" * 64,
        args=("--x",),
        inputs={"in": Path("/host/in")},
        outputs={"out": Path("/host/out")},
        user="10001:10001",
        limits=limits,
        run_id="urn:uuid:12345678-aaaa-4bbb-8ccc-000000000000",
    )


def test_container_spec_and_applied_check() -> None:
    limits = Resources(memory=2**26, cpus=0.5, timeout=5, pids=32)
    spec = _spec(limits)
    assert spec.command == ("/bin/tool", "--x")
    assert spec.mounts == (
        BindMount(Path("/host/in"), "/data/in", True, True),
        BindMount(Path("/host/out"), "/data/out", False),
    )
    assert spec.network == "none" and spec.read_only and spec.cap_drop == ("ALL",)
    assert spec.nano_cpus == 500_000_000 and spec.pids == 32
    host_config = {
        "NetworkMode": "none",
        "ReadonlyRootfs": True,
        "Tmpfs": {"/tmp": "rw,noexec,nosuid,nodev,size=64m"},
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "Privileged": False,
        "PidsLimit": 32,
        "Memory": 2**26,
        "MemorySwap": 2**26,
        "NanoCpus": 500_000_000,
        "Ulimits": [
            {"Name": "nofile", "Soft": 4096, "Hard": 4096},
            {"Name": "fsize", "Soft": 10 * 2**30, "Hard": 10 * 2**30},
        ],
        "LogConfig": {"Type": "none", "Config": {}},
        "Mounts": [
            {
                "Source": "/host/in",
                "Target": "/data/in",
                "ReadOnly": True,
                "BindOptions": {"NonRecursive": True},
            },
            {"Source": "/host/out", "Target": "/data/out", "ReadOnly": False},
        ],
    }
    state = ContainerState(
        "c", False, 0, False, "", "", "", host_config, "10001:10001", (), (), (), ""
    )
    assert mismatches(spec, applied(state)) == []
    weak = dict(host_config, NetworkMode="bridge", PidsLimit=None, CapAdd=["NET_RAW"])
    weak.update(Ulimits=[], LogConfig={"Type": "json-file"})
    state = ContainerState("c", False, 0, False, "", "", "", weak, "0", (), (), (), "")
    problems = "\n".join(mismatches(spec, applied(state)))
    for word in ("network_mode", "pids_limit", "cap_add", "user", "ulimits", "log_driver"):
        assert word in problems


def test_mount_table_is_read_with_its_escapes(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(
        "22 1 0:21 / / rw,relatime - ext4 /dev/vda1 rw\n"
        "40 22 0:35 / /data/in/with\\040space rw - tmpfs tmpfs rw\n"
        "41 22 0:36 / /data/in/back\\134slash rw - tmpfs tmpfs rw\n"
    )
    assert mount_points(table) == [
        Path("/"),
        Path("/data/in/with space"),
        Path("/data/in/back\\slash"),
    ]
    assert mount_points(tmp_path / "none") is None
    mounts = mount_points(table)
    assert first_mount_point(Path("/data/in"), mounts) == Path("/data/in/back\\slash")
    assert first_mount_point(Path("/data/in/with space"), mounts) is None  # itself: fine
    assert first_mount_point(Path("/data/other"), mounts) is None


@pytest.mark.skipif(not ROOT, reason="mounting a tmpfs needs root")
def test_without_a_mount_table_another_device_is_a_mount(tmp_path: Path) -> None:
    deeper = tmp_path / "in" / "sub" / "deeper"
    deeper.mkdir(parents=True)
    assert first_mount_point(tmp_path / "in", None) is None
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(deeper)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        assert first_mount_point(tmp_path / "in", None) == deeper
        assert first_mount_point(tmp_path / "in", mount_points()) == deeper
    finally:
        subprocess.run(["umount", str(deeper)], check=True)


def test_inputs_holding_a_mount_point_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    inside = (tmp_path / "in" / "sub").resolve()
    monkeypatch.setattr(folders, "mount_points", lambda: [Path("/"), inside])
    with pytest.raises(BadInput, match=f"input data: {inside} is a mount point inside"):
        check_inputs({"data": tmp_path / "in"})
    assert check_inputs({"data": tmp_path / "in" / "sub"}) == {"data": inside}


def test_inputs_must_be_bound_non_recursively() -> None:
    spec = _spec(Resources())
    seen = {
        "mounts": [
            {"source": "/host/in", "target": "/data/in", "read_only": True},
            {"source": "/host/out", "target": "/data/out", "read_only": False},
        ]
    }
    assert any(p.startswith("mounts:") for p in mismatches(spec, seen))
