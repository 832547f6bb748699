"""Record validation: every problem at once, each with file, line, column and field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gefreg.catalog.entries import load_all, load_entry
from gefreg.errors import InvalidRecord
from tests.helpers import build_tree, demo_entry, make_catalog, service_yaml


def problems_of(path: Path, known: set[str] | None = None) -> list[str]:
    with pytest.raises(InvalidRecord) as info:
        load_entry(path, known)
    return [str(p) for p in info.value.problems]


def test_valid_record_loads(catalog: Path) -> None:
    entry = load_entry(catalog / "demo-service", {"debian-bookworm"})
    assert entry.spec.name == "demo-service"
    assert entry.spec.files == (("run.sh", "/opt/service/run.sh"),)
    assert entry.spec.resources.memory == 1024**3
    assert entry.spec.inputs[0].path == "/data/input"


def test_all_problems_reported_at_once_with_lines(tmp_path: Path) -> None:
    text = """\
name: demo-service
version: "1.0"
description: A service.
license: Not-A-License
maintainers: ["nobody"]
base: debian-bookworm
template: debain
command: [/bin/true]
inputs: [{name: data, path: /data/in}]
outputs: [{name: out, path: /etc/out}]
colour: blue
"""
    entry = build_tree(tmp_path / "demo-service", {"service.yaml": text})
    problems = problems_of(entry, {"debian-bookworm"})
    record = str(entry / "service.yaml")
    joined = "\n".join(problems)
    assert f"{record}:2:10: version: expected a SemVer 2.0 version" in joined
    assert f"{record}:4:10: license: not a valid SPDX license expression" in joined
    assert f"{record}:5:15: maintainers[0]: expected 'Name <email@example.org>'" in joined
    assert f"{record}:7:11: template: unknown template 'debain'" in joined
    assert f"{record}:10:29: outputs[0].path: '/etc/out' would hide a system directory" in joined
    assert f"{record}:11:1: colour: unknown key" in joined
    assert len(problems) == 6


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    entry = build_tree(
        tmp_path / "demo-service",
        {"service.yaml": service_yaml() + "descripton: typo\n", "run.sh": ""},
    )
    [problem] = problems_of(entry, {"debian-bookworm"})
    assert "descripton: unknown key (fix: did you mean 'description'?)" in problem


def test_missing_required_and_wrong_types(tmp_path: Path) -> None:
    entry = build_tree(
        tmp_path / "demo-service",
        {
            "service.yaml": service_yaml(version=None, command="echo hi", user=0),
            "run.sh": "",
        },
    )
    joined = "\n".join(problems_of(entry, {"debian-bookworm"}))
    assert "version: required key is missing" in joined
    assert "command: expected a list of strings" in joined
    assert "user: must be between 1 and 65534, got 0" in joined


def test_number_where_text_expected_suggests_quotes(tmp_path: Path) -> None:
    entry = build_tree(
        tmp_path / "demo-service",
        {
            "service.yaml": service_yaml().replace('version: "1.0.0"', "version: 1.5"),
            "run.sh": "",
        },
    )
    [problem] = problems_of(entry, {"debian-bookworm"})
    assert "version: expected a string, got a number (1.5) (fix: quote the value" in problem


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    entry = build_tree(tmp_path / "demo-service", {"service.yaml": "name: x\nversion: [1\n"})
    [problem] = problems_of(entry)
    assert ":3:1: YAML syntax error" in problem or ":2:" in problem


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    entry = build_tree(
        tmp_path / "demo-service",
        {"service.yaml": service_yaml() + 'name: "demo-service"\n', "run.sh": ""},
    )
    [problem] = problems_of(entry)
    assert "duplicate" in problem.lower()


def test_name_must_match_directory(tmp_path: Path) -> None:
    entry = build_tree(tmp_path / "other", {"service.yaml": service_yaml(), "run.sh": ""})
    [problem] = problems_of(entry, {"debian-bookworm"})
    assert "differs from its directory 'other'" in problem


@pytest.mark.parametrize("source", ["../secret", "/etc/passwd", "a/../../b"])
def test_files_outside_the_entry_are_rejected(tmp_path: Path, source: str) -> None:
    entry = build_tree(
        tmp_path / "demo-service", {"service.yaml": service_yaml(files={source: "/opt/x"})}
    )
    [problem] = problems_of(entry, {"debian-bookworm"})
    assert f"files.{source}:" in problem
    assert "entry directory" in problem


def test_symlink_escaping_the_entry_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("top secret")
    entry = build_tree(
        tmp_path / "demo-service", {"service.yaml": service_yaml(files={"link.txt": "/opt/x"})}
    )
    os.symlink(tmp_path / "secret.txt", entry / "link.txt")
    [problem] = problems_of(entry, {"debian-bookworm"})
    assert "resolves outside the entry directory" in problem


def test_missing_shipped_file(tmp_path: Path) -> None:
    entry = build_tree(tmp_path / "demo-service", {"service.yaml": service_yaml()})
    [problem] = problems_of(entry, {"debian-bookworm"})
    assert "files.run.sh: no such file in the entry" in problem


def test_unknown_base_lists_the_known_ones(tmp_path: Path) -> None:
    entry = build_tree(
        tmp_path / "demo-service", {"service.yaml": service_yaml(base="alpine"), "run.sh": ""}
    )
    [problem] = problems_of(entry, {"debian-bookworm"})
    assert "unknown base 'alpine'" in problem and "debian-bookworm" in problem


def test_template_must_fit_the_base(tmp_path: Path) -> None:
    entry = build_tree(
        tmp_path / "demo-service", {"service.yaml": service_yaml(template="static"), "run.sh": ""}
    )
    [problem] = problems_of(entry, {"debian-bookworm"})
    assert "the static template builds FROM scratch" in problem


def test_pip_packages_must_be_pinned(tmp_path: Path) -> None:
    entry = build_tree(
        tmp_path / "demo-service",
        {
            "service.yaml": service_yaml(template="python", packages={"pip": ["obspy>=1"]}),
            "run.sh": "",
        },
    )
    [problem] = problems_of(entry, {"debian-bookworm"})
    assert "packages.pip[0]: expected a pinned requirement like obspy==1.5.1" in problem


def test_overlapping_ports_are_rejected(tmp_path: Path) -> None:
    entry = build_tree(
        tmp_path / "demo-service",
        {
            "service.yaml": service_yaml(outputs=[{"name": "r", "path": "/data/input/out"}]),
            "run.sh": "",
        },
    )
    [problem] = problems_of(entry, {"debian-bookworm"})
    assert "overlaps inputs path /data/input" in problem


def test_resources_are_parsed(tmp_path: Path) -> None:
    entry = build_tree(
        tmp_path / "demo-service",
        {
            "service.yaml": service_yaml(
                resources={"memory": "512m", "cpus": 0.5, "timeout": "90s", "pids": 64}
            ),
            "run.sh": "",
        },
    )
    spec = load_entry(entry, {"debian-bookworm"}).spec
    assert (spec.resources.memory, spec.resources.cpus) == (512 * 1024**2, 0.5)
    assert (spec.resources.timeout, spec.resources.pids) == (90.0, 64)


def test_tests_refer_to_real_ports_and_folders(tmp_path: Path) -> None:
    tests = [
        {
            "name": "sample",
            "inputs": {"data": "tests/in", "nope": "x"},
            "expect": {"result/out.txt": "sha256:" + "0" * 64, "bad": "md5:1"},
        }
    ]
    entry = build_tree(
        tmp_path / "demo-service",
        {"service.yaml": service_yaml(tests=tests), "run.sh": "", "tests": {"in": {"a": "1"}}},
    )
    joined = "\n".join(problems_of(entry, {"debian-bookworm"}))
    assert "tests[0].inputs.nope: unknown input port 'nope'" in joined
    assert "tests[0].expect.bad: expected OUTPUT-PORT/relative/path" in joined


def test_catalog_reports_problems_of_every_file(tmp_path: Path) -> None:
    root = make_catalog(
        tmp_path / "catalog",
        {
            **demo_entry(name="one", version="x"),
            **demo_entry(name="two", license="nope"),
        },
    )
    with pytest.raises(InvalidRecord) as info:
        load_all(root)
    files = {p.path.parent.name for p in info.value.problems}
    assert files == {"one", "two"}


def test_a_near_miss_path_is_rejected_at_once(tmp_path: Path) -> None:
    """A path with one bad character at the end once made the pattern backtrack for minutes."""
    import time

    from gefreg.validators import check_container_path

    start = time.perf_counter()
    assert check_container_path("/data/collection_of_seismic_waveforms_and_more ") is not None
    assert check_container_path("/" + "a/" * 40 + " ") is not None
    assert time.perf_counter() - start < 0.5
    for good in ("/", "/data", "/data/", "/opt/service/run.sh"):
        assert check_container_path(good) is None
    for bad in ("", "data", "//x", "/a//b", "/data/../etc"):
        assert check_container_path(bad) is not None


def test_odd_values_are_problems_not_crashes(tmp_path: Path) -> None:
    text = (
        service_yaml(resources={"cpus": 1}).replace(
            'resources: {"cpus": 1}', "resources: {cpus: .nan, timeout: 99999h, memory: 2t}"
        )
        + 'env: {GREETING: "two\\nlines"}\n'
    )
    text = text.replace('files: {"run.sh": "/opt/service/run.sh"}', "files: {5: /opt/x}")
    entry = build_tree(tmp_path / "demo-service", {"service.yaml": text, "run.sh": ""})
    joined = "\n".join(problems_of(entry, {"debian-bookworm"}))
    assert "resources.cpus: expected a number from 0.01 to 1024 like 0.5 or 2, found nan" in joined
    assert "resources.timeout: expected a duration up to a year" in joined
    assert "resources.memory: expected a size from 4m to 1t" in joined
    assert "env.GREETING: contains control character '\\n'" in joined
    assert "keys must be strings" in joined


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"template": "python", "packages": {"pip": ["rich==13.7.1\n"]}}, "pinned requirement"),
        ({"packages": {"apt": ["curl\n"]}}, "a Debian package name"),
        ({"name": "demo-service\n"}, "name"),
        ({"version": "1.0.0\n"}, "SemVer"),
    ],
)
def test_a_final_line_break_is_not_part_of_a_valid_value(
    tmp_path: Path, fields: dict[str, object], message: str
) -> None:
    """`$` matches before a final line break: "curl\\n" passed as a package and broke the
    Dockerfile's RUN line; pins with a line break went to pip as they were."""
    text = service_yaml(**fields)
    catalog = make_catalog(tmp_path / "catalog", {"demo-service": {"service.yaml": text}})
    with pytest.raises(InvalidRecord, match=message):
        load_entry(catalog / "demo-service")
