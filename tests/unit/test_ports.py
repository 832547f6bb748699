"""--input/--output values onto ports, interfaces from labels, limit overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from gefreg.errors import BadInput
from gefreg.image.interface import ServiceInterface
from gefreg.model import Port, Resources
from gefreg.run.plan import LimitOverrides, apply_overrides
from gefreg.run.ports import assign_ports

ONE = (Port("data", "/data/in"),)
TWO = (Port("a", "/data/a"), Port("b", "/data/b"))


def test_single_port_needs_no_name() -> None:
    assert assign_ports("input", ONE, ["some/dir"]) == {"data": Path("some/dir")}
    assert assign_ports("input", ONE, ["data=some/dir"]) == {"data": Path("some/dir")}


def test_named_ports() -> None:
    got = assign_ports("output", TWO, ["b=/y", "a=/x"])
    assert got == {"a": Path("/x"), "b": Path("/y")}


@pytest.mark.parametrize(
    "ports,values,message",
    [
        (TWO, ["/x", "/y"], "name the port"),
        (TWO, ["a=/x"], "missing --input for port b"),
        (TWO, [], "missing --input for ports a, b"),
        (TWO, ["a=/x", "a=/y", "b=/z"], "port 'a' given twice"),
        (ONE, ["/x", "/y"], "port 'data' given twice"),
        (TWO, ["c=/x", "a=/y", "b=/z"], "unknown port 'c'"),
        ((), ["/x"], "has no input ports"),
        (ONE, ["data="], "no folder given"),
    ],
)
def test_port_usage_errors(ports: tuple[Port, ...], values: list[str], message: str) -> None:
    with pytest.raises(BadInput, match=message) as info:
        assign_ports("input", ports, values)
    assert info.value.exit_code == 2


def test_folder_with_equals_sign_is_a_folder(tmp_path: Path) -> None:
    odd = tmp_path / "x=y"
    odd.mkdir()
    assert assign_ports("input", ONE, [str(odd)]) == {"data": odd}
    # a relative 'x=y' that exists is a folder too, even though 'x' looks like a port name
    assert assign_ports("input", ONE, [f"data={odd}"]) == {"data": odd}


def test_reproduce_input_overrides_are_partial() -> None:
    """reproduce: the ports given replace their recorded folders; the others stay."""
    assert assign_ports("input", TWO, ["b=/new"], every_port=False) == {"b": Path("/new")}
    assert assign_ports("input", ONE, ["/new"], every_port=False) == {"data": Path("/new")}
    assert assign_ports("input", TWO, [], every_port=False) == {}
    with pytest.raises(BadInput, match="name the port"):
        assign_ports("input", TWO, ["/new"], every_port=False)
    with pytest.raises(BadInput, match="no folder given"):  # once taken as the current folder
        assign_ports("input", ONE, ["data="], every_port=False)


def test_interface_from_gef_labels() -> None:
    labels = {
        "eudat.gef.service.version": "2.0.0",
        "eudat.gef.service.input.1.name": "in",
        "eudat.gef.service.input.1.path": "/data/in",
        "eudat.gef.service.output.1.name": "out",
        "eudat.gef.service.output.1.path": "/data/out",
    }
    face = ServiceInterface.from_labels("tool", labels, ["/bin/tool"])
    assert face.inputs == (Port("in", "/data/in"),) and face.outputs == (Port("out", "/data/out"),)
    assert face.version == "2.0.0" and face.command == ("/bin/tool",)
    with pytest.raises(BadInput, match="declares no GEF ports"):
        ServiceInterface.from_labels("tool", {}, [])


def test_limit_overrides() -> None:
    base = Resources(memory=2**30, cpus=1.0, timeout=600.0, pids=256)
    limits, changed = apply_overrides(base, LimitOverrides(memory="64m", timeout="2s", pids=16))
    assert limits == Resources(memory=64 * 2**20, cpus=1.0, timeout=2.0, pids=16)
    assert changed == ("memory", "timeout", "pids")
    assert apply_overrides(base, LimitOverrides()) == (base, ())
    for bad in (
        LimitOverrides(memory="1k"),
        LimitOverrides(cpus=0),
        LimitOverrides(timeout="soon"),
        LimitOverrides(pids=0),
    ):
        with pytest.raises(BadInput):
            apply_overrides(base, bad)


@pytest.mark.parametrize(
    "over,option",
    [
        (LimitOverrides(cpus=float("nan")), "--cpus"),
        (LimitOverrides(cpus=float("inf")), "--cpus"),
        (LimitOverrides(cpus=-1.0), "--cpus"),
        (LimitOverrides(cpus=1e-10), "--cpus"),  # would round to nano_cpus 0: no limit at all
        (LimitOverrides(cpus=1e12), "--cpus"),
        (LimitOverrides(memory="9" * 400), "--memory"),  # float overflow: was a traceback
        (LimitOverrides(memory="99999999t"), "--memory"),
        (LimitOverrides(timeout="9" * 400), "--timeout"),  # inf seconds
        (LimitOverrides(timeout="100000h"), "--timeout"),
        (LimitOverrides(pids=2**63), "--pids"),
    ],
)
def test_limit_overrides_are_finite_and_bounded(over: LimitOverrides, option: str) -> None:
    with pytest.raises(BadInput, match=option) as info:
        apply_overrides(Resources(), over)
    assert info.value.exit_code == 2


def test_limit_overrides_at_the_bounds() -> None:
    limits, _ = apply_overrides(
        Resources(), LimitOverrides(memory="4m", cpus=0.01, timeout="8760h", pids=1)
    )
    assert limits == Resources(memory=4 * 2**20, cpus=0.01, timeout=8760 * 3600.0, pids=1)
