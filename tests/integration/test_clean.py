"""Local image hygiene: each catalog builds into its own tag namespace, and `gefreg clean`
removes gefreg's own stale tags, stopped run containers and state — nothing else. Against the
real engine (shared with other work: everything here has names of its own)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg.cli import cli
from gefreg.engine import Engine
from gefreg.image.build_record import kept_builds
from gefreg.run.cleanup import clean, plan_clean
from gefreg.run.hardening import RUN_LABEL, SERVICE_LABEL
from gefreg.settings import Settings
from tests.helpers import busybox_entry, make_catalog
from tests.registry_fixtures import LocalRegistry

pytestmark = pytest.mark.docker

NAME = f"cln-{os.urandom(3).hex()}"


def catalog(root: Path, script: str, *names: str) -> Settings:
    tree: dict[str, object] = {}
    for name in names:
        tree.update(busybox_entry(name, script))
    folder = make_catalog(root / "catalog", tree)  # type: ignore[arg-type]
    for name in names:
        os.chmod(folder / name / "busybox", 0o755)
    return Settings(catalog=folder.resolve(), registry="127.0.0.1:1", state_dir=root / "state")


def gefreg(settings: Settings, *args: str) -> tuple[int, str, str]:
    env = {"GEFREG_STATE": str(settings.state_dir), "GEFREG_REGISTRY": settings.registry}
    result = CliRunner().invoke(
        cli, [*args, "--catalog", str(settings.catalog)], catch_exceptions=False, env=env
    )
    return result.exit_code, result.stdout, result.stderr


def build(settings: Settings, *names: str) -> dict[str, str]:
    code, out, err = gefreg(settings, "build", *names, "--json")
    assert code == 0, err
    data = json.loads(out)
    records = data if isinstance(data, list) else [data]
    return {r["entry"]: r["image_id"] for r in records}


@pytest.fixture
def two_catalogs(tmp_path: Path, engine: Engine) -> Iterator[tuple[Settings, Settings]]:
    a = catalog(tmp_path / "a", "echo from a > /data/output/x\n", NAME, f"{NAME}-gone")
    b = catalog(tmp_path / "b", "echo from b > /data/output/x\n", NAME)
    yield a, b
    for settings in (a, b):
        for image in engine.tagged_images(settings.image_namespace + "/"):
            engine.remove_image(image.id)


def test_catalogs_never_repoint_each_others_tags(
    two_catalogs: tuple[Settings, Settings], engine: Engine
) -> None:
    a, b = two_catalogs
    assert a.image_namespace != b.image_namespace
    image_a = build(a, NAME)[NAME]
    image_b = build(b, NAME)[NAME]
    assert image_a != image_b
    assert engine.image(f"{a.image_namespace}/{NAME}:1.0.0").id == image_a  # type: ignore[union-attr]
    assert engine.image(f"{b.image_namespace}/{NAME}:1.0.0").id == image_b  # type: ignore[union-attr]


def test_clean_removes_only_what_gefreg_made_and_no_longer_needs(
    two_catalogs: tuple[Settings, Settings], engine: Engine
) -> None:
    a, b = two_catalogs
    first = build(a, NAME, f"{NAME}-gone")
    image_b = build(b, NAME)[NAME]
    (a.catalog / NAME / "run.sh").write_text("echo changed > /data/output/x\n")
    second = build(a, NAME)[NAME]
    assert second != first[NAME]
    shutil.rmtree(a.catalog / f"{NAME}-gone")
    # A run that was killed left its container behind.
    container = subprocess.run(
        [
            "docker",
            "create",
            "--label",
            f"{RUN_LABEL}=test-{NAME}",
            "--label",
            f"{SERVICE_LABEL}={NAME}",
            second,
            "/bin/busybox",
            "true",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(["docker", "start", "-a", container], check=True, capture_output=True)
    # Something gefreg did not tag, in the same engine, on the same image.
    foreign = f"gefreg-test/{NAME}:mine"
    engine.tag(first[NAME], f"gefreg-test/{NAME}", "mine")
    try:
        code, out, err = gefreg(a, "clean", "--dry-run")
        assert code == 0, err
        ns = a.image_namespace
        assert f"would remove tag {ns}/{NAME}-gone:1.0.0 (its entry left the catalog" in out
        assert f"would remove tag {ns}/{NAME}:build-" in out and "not the current build" in out
        assert "builds/" + f"{NAME}-gone (build records of an entry that left)" in out
        assert "container" not in out  # it stopped seconds ago: a live run may still own it
        assert engine.image(f"{ns}/{NAME}-gone:1.0.0") is not None  # a dry run changes nothing

        plan = plan_clean(a, engine, min_age=timedelta(0))
        assert [c.ref for c in plan.containers] == [container]
        removed = clean(a, engine, plan)
        assert all(r.error is None for r in removed), removed
        assert engine.image(f"{ns}/{NAME}-gone:1.0.0") is None
        assert engine.image(first[NAME]) is not None  # still tagged by someone else
        assert engine.image(foreign) is not None
        current = engine.image(f"{ns}/{NAME}:1.0.0")
        assert current is not None and current.id == second
        assert engine.image(f"{b.image_namespace}/{NAME}:1.0.0").id == image_b  # type: ignore[union-attr]
        assert not (a.state_dir / "builds" / f"{NAME}-gone").exists()
        assert (a.state_dir / "builds" / NAME / "build.json").is_file()
        gone = subprocess.run(["docker", "inspect", container], capture_output=True)
        assert gone.returncode != 0
        code, out, err = gefreg(a, "clean")
        assert code == 0 and out == "" and "0 tags, 0 containers, 0 state files" in err
    finally:
        engine.remove_image(foreign)
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


def stopped_run(image: str, service: str) -> str:
    """A container as a killed `gefreg run` of ``service`` leaves it: labelled, exited."""
    labels = ["--label", f"{RUN_LABEL}=test-{os.urandom(3).hex()}", "--label"]
    created = subprocess.run(
        ["docker", "create", *labels, f"{SERVICE_LABEL}={service}", image, "/bin/busybox", "true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(["docker", "start", "-a", created], check=True, capture_output=True)
    return created


def test_clean_leaves_what_another_catalog_or_the_user_owns(
    two_catalogs: tuple[Settings, Settings], engine: Engine, registry: LocalRegistry
) -> None:
    """Attacks on `never anything gefreg did not create`: a killed run of the other catalog's
    service of the same name; a user's files in the state folder (GEFREG_STATE may be any
    folder); an old build whose image is also a release pulled by digest (the engine keeps it
    when its last tag goes, so clean must neither claim the space nor drop its record)."""
    a, b = two_catalogs
    first = build(a, NAME)[NAME]
    image_b = build(b, NAME)[NAME]
    (a.catalog / NAME / "run.sh").write_text("echo changed > /data/output/x\n")
    build(a, NAME)
    theirs = stopped_run(image_b, NAME)
    (a.state_dir / "builds" / "notes").mkdir(parents=True)
    (a.state_dir / "builds" / "notes" / "todo.txt").write_text("mine\n")
    (a.state_dir / "lint").mkdir(exist_ok=True)
    (a.state_dir / "lint" / "mine.Dockerfile").write_text("FROM scratch\n")
    # The old build, pushed and known to the engine by digest too, like a pulled release.
    remote = f"{registry.address}/{NAME}"
    engine.tag(first, remote, "pushed")
    pushed = subprocess.run(
        ["docker", "push", f"{remote}:pushed"], check=True, capture_output=True, text=True
    ).stdout
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed).group(1)  # type: ignore[union-attr]
    subprocess.run(["docker", "rmi", f"{remote}:pushed"], check=True, capture_output=True)
    subprocess.run(["docker", "pull", f"{remote}@{digest}"], check=True, capture_output=True)
    pulled = engine.image(first)
    assert pulled is not None and pulled.repo_digests
    try:
        code, out, err = gefreg(a, "clean", "--dry-run")
        assert code == 0, err
        assert "kept state" in out and "notes: holds files gefreg did not write" in out
        assert f"{a.image_namespace}/{NAME}:build-" in out and "frees" not in out
        plan = plan_clean(a, engine, min_age=timedelta(0))
        assert plan.containers == () and plan.doomed_images == frozenset()
        removed = clean(a, engine, plan)
        assert [r.what for r in removed if r.kind == "tag"], removed
        assert subprocess.run(["docker", "inspect", theirs], capture_output=True).returncode == 0
        assert (a.state_dir / "builds" / "notes" / "todo.txt").read_text() == "mine\n"
        assert (a.state_dir / "lint" / "mine.Dockerfile").is_file()
        assert engine.image(first) is not None  # still there, by digest
        assert any(
            record.image_id == first for _, record in kept_builds(a, NAME) if record is not None
        )
    finally:
        subprocess.run(["docker", "rm", "-f", theirs], capture_output=True)
        left = engine.image(first)
        for ref in left.repo_digests if left is not None else ():
            engine.remove_image(ref)
