"""Which interface a run uses: the ledger's, the record's, or the image's own (no engine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gefreg.engine import ImageInfo
from gefreg.errors import BadInput, CheckFailed
from gefreg.image.interface import ServiceInterface
from gefreg.model import DEFAULT_UID, Port, Resources
from gefreg.release.ledger import TrustedRelease
from gefreg.release.trust import ResolvedImage
from gefreg.run.plan import choose_interface, plan_run
from gefreg.settings import Settings
from tests.fakes import FakeEngine
from tests.helpers import demo_entry, make_catalog, write_build

ID_OLD = "sha256:" + "a" * 64
ID_NEW = "sha256:" + "b" * 64
DIGEST = "sha256:" + "d" * 64
OLD_LABELS = {
    "eudat.gef.service.version": "1.0.0",
    "eudat.gef.service.input.1.name": "data",
    "eudat.gef.service.input.1.path": "/data/old-in",
    "eudat.gef.service.output.1.name": "result",
    "eudat.gef.service.output.1.path": "/data/old-out",
    "eudat.gef.service.output.1.type": "text/plain",
}


def old_image(**config: Any) -> tuple[ImageInfo, dict[str, Any]]:
    info = ImageInfo(ID_OLD, (), (f"reg:5000/demo@{DIGEST}",), OLD_LABELS, "", 0)
    return info, {"Labels": OLD_LABELS, "Cmd": ["/bin/old"], "User": "4242:4242", **config}


def settings_at(tmp_path: Path, version: str = "1.1.0") -> Settings:
    """A catalog whose record says ``version``, built at that version; an older build of 1.0.0
    is in the by-key folder."""
    entry = demo_entry(
        name="demo",
        version=version,
        inputs=[{"name": "data", "path": "/data/in"}],
        outputs=[{"name": "report", "path": "/data/report"}],
        resources={"memory": "64m"},
    )
    catalog = make_catalog(tmp_path / "catalog", entry)
    settings = Settings(catalog, "127.0.0.1:1", tmp_path / "state")
    write_build(settings.state_dir, "demo", ID_NEW, version=version)
    write_build(settings.state_dir, "demo", ID_OLD, version="1.0.0", cache_key=ID_OLD)
    return settings


def old_interface() -> ServiceInterface:
    return ServiceInterface(
        "demo",
        "1.0.0",
        (Port("data", "/data/old-in"),),
        (Port("result", "/data/old-out", "text/plain", "out.txt"),),
        ("/bin/old", "--flag"),
        user=2000,
        resources=Resources(memory=2**26, cpus=0.5, timeout=30.0, pids=64),
        volatile=("result/stamp",),
    )


class Ledger:
    def __init__(self, interface: dict[str, Any] | None) -> None:
        self.interface = interface

    def lookup(self, name: str, version: str | None) -> TrustedRelease | None:
        if version not in (None, "1.0.0"):
            return None
        return TrustedRelease(name, "1.0.0", "reg:5000", "reg:5000/demo", DIGEST, self.interface)


def test_interface_json_round_trip() -> None:
    face = old_interface()
    data = face.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["outputs"] == [
        {"name": "result", "path": "/data/old-out", "type": "text/plain", "filename": "out.txt"}
    ]
    assert data["resources"] == {
        "memory": 2**26, "cpus": 0.5, "timeout": 30.0, "pids": 64, "disk": 10 * 2**30,
        "logs": 10 * 2**20,
    }  # fmt: skip
    assert "entrypoint" not in data  # the image's entrypoint is kept
    back = ServiceInterface.from_json(data)
    assert back == face and back.origin == "ledger"
    cleared = ServiceInterface.from_json({**data, "entrypoint": []})
    assert cleared.entrypoint == ()


@pytest.mark.parametrize(
    "change,field",
    [
        ({"name": None}, "field name: expected a non-empty string"),
        ({"inputs": "data"}, "field inputs: expected a list"),
        ({"inputs": [{"name": "data"}]}, r"field inputs\[0\].path is missing"),
        ({"outputs": [{"name": "x y", "path": "/o"}]}, r"field outputs\[0\].name"),
        ({"command": ["/bin/x", 3]}, r"field command\[1\]: expected a string"),
        ({"user": 0}, "field user: expected a non-root uid from 1 to 65534, found 0"),
        ({"resources": {"memory": 2**26, "cpus": 0.5, "timeout": 30}}, "resources.pids"),
        (
            {"resources": {"memory": 2**26, "cpus": float("nan"), "timeout": 30, "pids": 8}},
            "field resources.cpus: expected a number from",
        ),
    ],
)
def test_interface_json_is_checked(change: dict[str, Any], field: str) -> None:
    data = {**old_interface().to_json(), **change}
    with pytest.raises(BadInput, match=field):
        ServiceInterface.from_json(data, "ledger line 3")
    with pytest.raises(BadInput, match="ledger: field the top level: expected an object"):
        ServiceInterface.from_json([], "ledger")


def test_published_version_runs_with_the_ledgers_interface(tmp_path: Path) -> None:
    """The record moved on to 1.1.0; NAME@1.0.0 still runs, as it was published."""
    settings = settings_at(tmp_path)
    engine = FakeEngine(old_image())
    ledger = Ledger(old_interface().to_json())
    for target in ("demo@1.0.0", "demo"):  # NAME alone: the newest published release
        request = plan_run(
            settings,
            engine,
            target=target,
            inputs=["in/"],
            outputs=["out/"],
            ledger=ledger,
        )
        assert request.image.version == "1.0.0" and request.image.source == "ledger"
        assert request.service == old_interface() and request.service.origin == "ledger"
        assert request.outputs == (("result", Path("out/")),)
        assert request.limits == Resources(memory=2**26, cpus=0.5, timeout=30.0, pids=64)
    assert engine.pulled == []


def test_the_ledgers_interface_must_describe_the_release(tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    other = {**old_interface().to_json(), "version": "0.9.0"}
    with pytest.raises(CheckFailed, match=r"describes demo@0\.9\.0"):
        plan_run(
            settings,
            FakeEngine(old_image()),
            target="demo@1.0.0",
            inputs=["in/"],
            outputs=["out/"],
            ledger=Ledger(other),
        )


def test_record_of_the_same_version(tmp_path: Path) -> None:
    settings = settings_at(tmp_path, version="1.0.0")
    image = ResolvedImage("demo", "1.0.0", ID_NEW, None, None, "demo", True, "build-record")
    face = choose_interface(settings, FakeEngine(), image)[1]
    assert face.origin == "record" and face.outputs == (Port("report", "/data/report"),)
    assert face.resources.memory == 64 * 2**20
    # a ledger release without a stored interface, of the record's version: the record
    release = ResolvedImage(
        "demo", "1.0.0", ID_OLD, DIGEST, "reg:5000", "demo", True, "ledger", "reg:5000/demo"
    )
    assert choose_interface(settings, FakeEngine(), release)[1].origin == "record"


def test_other_versions_fall_back_to_the_images_labels(tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    engine = FakeEngine(old_image(Entrypoint=["/bin/sh", "-c"], Cmd=["/bin/old --x"]))
    # by digest: an older build of the entry, trusted through its by-key build record
    request = plan_run(
        settings,
        engine,
        target=f"demo@{ID_OLD}",
        inputs=["in/"],
        outputs=["out/"],
    )
    face = request.service
    assert request.image.trusted and request.image.version == "1.0.0"
    assert face.origin == "image" and face.version == "1.0.0"
    assert face.inputs == (Port("data", "/data/old-in"),)
    assert face.outputs == (Port("result", "/data/old-out", "text/plain"),)
    assert face.command == ("/bin/sh", "-c", "/bin/old --x") and face.entrypoint == ()
    assert face.user == 4242 and face.resources == Resources()


def test_a_release_without_interface_is_pulled_to_read_its_labels(tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    engine = FakeEngine(old_image())
    engine.local.clear()  # published, not pulled yet
    request = plan_run(
        settings,
        engine,
        target="demo@1.0.0",
        inputs=["in/"],
        outputs=["out/"],
        ledger=Ledger(None),
    )
    assert engine.pulled == [f"reg:5000/demo@{DIGEST}"]
    assert request.image.image_id == ID_OLD and request.service.origin == "image"
    assert request.service.command == ("/bin/old",)


@pytest.mark.parametrize(
    "user,uid",
    [("", DEFAULT_UID), ("0", DEFAULT_UID), ("root", DEFAULT_UID), ("77:88", 77), ("5", 5)],
)
def test_image_user(user: str, uid: int) -> None:
    face = ServiceInterface.from_image("x", {"Labels": OLD_LABELS, "Cmd": ["/x"], "User": user})
    assert face.user == uid


def test_an_image_without_a_command_is_refused() -> None:
    with pytest.raises(BadInput, match="neither an ENTRYPOINT nor a CMD"):
        ServiceInterface.from_image("x", {"Labels": OLD_LABELS})


def test_untrusted_images_use_their_own_interface(tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    _, config = old_image(Entrypoint=["/bin/tool"], Cmd=None)
    engine = FakeEngine((ImageInfo(ID_OLD, ("x/tool:dev",), (), {}, "", 0), config))
    image, face = choose_interface(
        settings,
        engine,
        ResolvedImage("tool", None, ID_OLD, None, None, "x/tool:dev", False, "engine"),
    )
    assert image.image_id == ID_OLD and face.origin == "image"
    assert face.command == ("/bin/tool",) and face.entrypoint == ()


def test_ports_from_untrusted_labels_follow_the_record_rules() -> None:
    from gefreg.errors import BadInput
    from gefreg.image.interface import ServiceInterface

    good = {"eudat.gef.service.input.1.name": "in", "eudat.gef.service.input.1.path": "/data/in"}
    assert ServiceInterface.from_labels("img", good, ["true"]).inputs[0].path == "/data/in"
    for path in ("/", "/etc", "/usr/lib/x", "relative", "/data/../etc"):
        labels = {
            **good,
            "eudat.gef.service.output.1.name": "out",
            "eudat.gef.service.output.1.path": path,
        }
        with pytest.raises(BadInput, match="GEF label"):
            ServiceInterface.from_labels("img", labels, ["true"])
    nested = {
        **good,
        "eudat.gef.service.output.1.name": "out",
        "eudat.gef.service.output.1.path": "/data/in/out",
    }
    with pytest.raises(BadInput, match="overlaps"):
        ServiceInterface.from_labels("img", nested, ["true"])
