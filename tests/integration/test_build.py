"""Builds for real: the Debian base through mmdebstrap, services through the engine."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg.catalog.entries import load_base, load_entry
from gefreg.cli import cli
from gefreg.engine import BuildEvent, Engine
from gefreg.errors import BadInput, BuildFailed
from gefreg.image import bases
from gefreg.image.build import build_entry
from gefreg.image.build_plan import prepare
from gefreg.image.build_record import read_build
from gefreg.settings import Settings
from tests.helpers import busybox_entry, demo_entry, label_text, make_catalog
from tests.integration.conftest import BuiltBase

pytestmark = pytest.mark.docker


def static_catalog(tmp_path: Path, name: str = "hello", **overrides: object) -> Path:
    """A catalog with one FROM-scratch entry running busybox: it builds in about a second."""
    tree = busybox_entry(name, "echo hello from $0\n", **overrides)
    catalog = make_catalog(tmp_path / "catalog", tree)
    os.chmod(catalog / name / "busybox", 0o755)
    return catalog


def make_settings(catalog: Path, tmp_path: Path, registry: str = "127.0.0.1:1") -> Settings:
    return Settings(catalog=catalog, registry=registry, state_dir=tmp_path / "state")


def cli_run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


def run_image(image: str, *args: str) -> str:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image, *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


# --- fast: FROM scratch + busybox -----------------------------------------------------------


def test_static_build_cache_hit_and_rebuild_on_one_byte(tmp_path: Path, engine: Engine) -> None:
    catalog = static_catalog(tmp_path)
    settings = make_settings(catalog, tmp_path)
    entry = load_entry(catalog / "hello", set())
    first = build_entry(settings, entry, engine=engine)
    assert not first.cached
    assert run_image(first.image_id).strip() == "hello from /opt/run.sh"

    start = time.perf_counter()
    again = build_entry(settings, load_entry(catalog / "hello", set()), engine=engine)
    assert again.cached and again.image_id == first.image_id
    assert time.perf_counter() - start < 1.0

    (catalog / "hello" / "run.sh").write_text("echo hellO from $0\n")
    changed = build_entry(settings, load_entry(catalog / "hello", set()), engine=engine)
    assert not changed.cached and changed.image_id != first.image_id
    assert run_image(changed.image_id).strip() == "hellO from /opt/run.sh"
    assert changed.record.fingerprint != first.record.fingerprint


def test_build_record_says_what_was_built(tmp_path: Path, engine: Engine) -> None:
    catalog = static_catalog(tmp_path)
    settings = make_settings(catalog, tmp_path)
    result = build_entry(settings, load_entry(catalog / "hello", set()), engine=engine)
    record = read_build(settings, "hello")
    assert record == result.record
    assert (record.entry, record.version) == ("hello", "1.0.0")
    assert record.base["name"] == "scratch" and record.template["name"] == "static"
    assert record.gefreg_version and record.engine["api"] and record.started
    assert record.log is not None and Path(record.log).is_file()
    info = engine.image(record.image_id)
    assert info is not None and set(record.tags) <= set(info.repo_tags)
    assert info.labels["org.gefreg.fingerprint"] == record.fingerprint
    assert "org.opencontainers.image.created" in info.labels


def test_record_values_reach_labels_verbatim_and_never_instructions(
    tmp_path: Path, engine: Engine
) -> None:
    nasty = 'Quotes " and \\ backslash, $HOME ${PATH} `id` {{ 7*7 }}\nRUN echo pwned\\'
    catalog = static_catalog(
        tmp_path,
        description=nasty,
        maintainers=['Eve "$USER" <eve@example.org>'],
        env={"GREETING": 'say "hi" $HOME\\'},
    )
    settings = make_settings(catalog, tmp_path)
    result = build_entry(settings, load_entry(catalog / "hello", set()), engine=engine)
    info = engine.image(result.image_id)
    assert info is not None
    assert info.labels["org.opencontainers.image.description"] == label_text(nasty)
    assert info.labels["eudat.gef.service.description"] == label_text(nasty)
    assert info.labels["org.opencontainers.image.authors"] == 'Eve "$USER" <eve@example.org>'
    env = run_image(result.image_id, "/bin/busybox", "env")
    assert 'GREETING=say "hi" $HOME\\' in env
    log = Path(str(result.record.log)).read_text()
    steps = [
        line.split(" : ", 1)[1].split()[0] for line in log.splitlines() if line.startswith("Step ")
    ]
    # COPY busybox as /bin/sh (the static template's shell), as /bin/busybox, then the script;
    # one LABEL: `created` is rendered (the source date), not added by the build
    assert steps == ["FROM", "COPY", "COPY", "COPY", "ENV", "USER", "CMD", "LABEL"]


def test_interrupted_build_leaves_no_record_and_no_tag(tmp_path: Path, engine: Engine) -> None:
    catalog = static_catalog(tmp_path, name="interrupted")
    settings = make_settings(catalog, tmp_path)

    def interrupt(event: BuildEvent) -> None:
        if event.step and "USER" in event.step:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_entry(
            settings,
            load_entry(catalog / "interrupted", set()),
            engine=engine,
            no_cache=True,
            on_event=interrupt,
        )
    assert read_build(settings, "interrupted") is None
    assert engine.image(f"{settings.image_namespace}/interrupted:1.0.0") is None


def test_file_changed_between_render_and_build_is_detected(tmp_path: Path) -> None:
    from gefreg.image.build import assemble_context

    catalog = static_catalog(tmp_path)
    settings = make_settings(catalog, tmp_path)
    plan = prepare(load_entry(catalog / "hello", set()), settings)
    (catalog / "hello" / "run.sh").write_text("echo changed under our feet\n")
    with pytest.raises(BadInput, match="changed while gefreg was building"):
        assemble_context(plan, tmp_path / "context")


def test_engine_unreachable_exits_3_with_how_to_start_it(tmp_path: Path) -> None:
    catalog = static_catalog(tmp_path)
    code, _, err = cli_run(
        "build",
        "--catalog",
        str(catalog),
        "hello",
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"},
    )
    assert code == 3
    assert "Docker engine does not answer" in err and "make setup" in err


# --- the real Debian base ---------------------------------------------------------------------


@pytest.mark.slow
def test_base_built_twice_has_the_same_digest(debian_base: BuiltBase, tmp_path: Path) -> None:
    settings = Settings(
        catalog=debian_base.settings.catalog, registry="127.0.0.1:1", state_dir=tmp_path / "state"
    )
    record = load_base(settings.catalog / "bases" / "debian-bookworm")
    again = bases.build(settings, record, no_cache=True)
    assert not again.cached
    assert again.digest == debian_base.digest
    assert again.image_id == debian_base.built.image_id
    lock = json.loads((settings.catalog / "bases" / "lock.json").read_text())
    assert lock["bases"]["debian-bookworm"]["digest"] == debian_base.digest


@pytest.mark.slow
def test_service_from_the_base_runs_and_failing_run_exits_1(
    debian_base: BuiltBase, tmp_path: Path, engine: Engine
) -> None:
    lock = {"debian-bookworm": debian_base.digest}
    catalog = make_catalog(
        tmp_path / "catalog",
        {
            **demo_entry(name="greeter", command=["/bin/sh", "/opt/service/run.sh"]),
            **demo_entry(name="broken", packages={"apt": ["gefreg-no-such-package"]}),
        },
        lock=lock,
    )
    registry = debian_base.settings.registry
    code, out, err = cli_run(
        "build",
        "--catalog",
        str(catalog),
        "--registry",
        registry,
        "greeter",
        "--json",
        env={"GEFREG_STATE": str(tmp_path / "s")},
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["base"]["digest"] == debian_base.digest
    assert run_image(record["image_id"]).strip() == "hello"
    info = engine.image(record["image_id"])
    assert info is not None
    assert info.labels["org.opencontainers.image.base.digest"] == debian_base.digest
    assert info.labels["org.gefreg.base"] == "debian-bookworm"  # inherited from the base

    code, _, err = cli_run(
        "build",
        "--catalog",
        str(catalog),
        "--registry",
        registry,
        "broken",
        env={"GEFREG_STATE": str(tmp_path / "s")},
    )
    # apt is asked first, on the base, which versions to lock: it names the missing package
    assert code == 1
    assert "apt cannot install gefreg-no-such-package on debian-bookworm" in err
    assert "Unable to locate package gefreg-no-such-package" in err
    assert "fix packages.apt in" in err
    assert "Traceback" not in err
    assert not (catalog / "broken" / "apt.lock").exists()


def test_build_failed_error_names_step_and_tail() -> None:
    exc = BuildFailed("returned a non-zero code: 1", "step 2/5: RUN false", ["a", "b"])
    assert exc.exit_code == 1 and "step 2/5: RUN false" in exc.message and "| b" in exc.message


def test_cli_cache_hit_fast_path_notices_every_kind_of_change(tmp_path: Path) -> None:
    catalog = static_catalog(
        tmp_path, files={"busybox": "/bin/busybox", "run.sh": "/opt/run.sh", "data/": "/opt/data/"}
    )
    (catalog / "hello" / "data").mkdir()
    (catalog / "hello" / "data" / "a.txt").write_text("a")
    env = {"GEFREG_STATE": str(tmp_path / "state")}

    def build() -> dict[str, object]:
        code, out, err = cli_run("build", "--catalog", str(catalog), "hello", "--json", env=env)
        assert code == 0, err
        return dict(json.loads(out))

    first = build()
    assert first["cached"] is False
    assert build()["cached"] is True  # answered from file metadata
    os.utime(catalog / "hello" / "run.sh")  # touched, same content: still a hit
    touched = build()
    assert touched["cached"] is True and touched["image_id"] == first["image_id"]
    (catalog / "hello" / "data" / "b.txt").write_text("b")  # a new file in a shipped folder
    added = build()
    assert added["cached"] is False and added["image_id"] != first["image_id"]
    assert build()["cached"] is True
    removed = ["docker", "rmi", "-f", "--no-prune", str(added["image_id"])]  # parents: shared
    subprocess.run(removed, check=True, capture_output=True)
    assert build()["cached"] is False  # the image is gone: rebuilt, not claimed


def test_fast_path_never_answers_for_another_catalog_or_a_hidden_edit(tmp_path: Path) -> None:
    first = static_catalog(tmp_path / "one")
    second = static_catalog(tmp_path / "two")
    (second / "hello" / "run.sh").write_text("echo the other catalog\n")
    env = {"GEFREG_STATE": str(tmp_path / "state")}  # one state folder for both catalogs

    def build(catalog: Path, target: str = "hello") -> dict[str, object]:
        code, out, err = cli_run("build", "--catalog", str(catalog), target, "--json", env=env)
        assert code == 0, err
        return dict(json.loads(out))

    one = build(first)
    two = build(second)
    assert two["cached"] is False and two["image_id"] != one["image_id"]
    assert build(second)["cached"] is True
    # Same size, mtime put back: only the ctime tells the file was edited.
    script = second / "hello" / "run.sh"
    stat = script.stat()
    script.write_text("echo the other catalo?\n")
    os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert script.stat().st_size == stat.st_size
    assert build(second)["cached"] is False
