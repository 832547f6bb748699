"""The first hour of a new community, as a user lives it: `pip install gefreg` (the wheel built
from this tree, into a fresh virtualenv), `gefreg init` an empty folder, then new, lint, build,
test --update, publish and run there, every step through the installed `gefreg` command.

The only shortcut: the curated base is built once per test session (mmdebstrap, ~25 s), and its
build state is copied into the new catalog's state, so `gefreg base build` there is a cache hit
that still writes the lock and pushes the base. Trivy's vulnerability DB cannot be downloaded
here; a hand-written one (tests/trivy_db.py) stands in for it, after the production policy has
refused to publish without one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import remove_own_images
from tests.integration.conftest import BuiltBase
from tests.trivy_db import write_empty_db

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`gefreg` installed from a freshly built wheel into a new virtualenv."""
    where = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(where / "dist"), ROOT],
        check=True,
        capture_output=True,
    )
    [wheel] = (where / "dist").glob("gefreg-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], check=True)
    pip = [str(where / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)]
    subprocess.run(pip, check=True, capture_output=True)
    return where / "venv" / "bin" / "gefreg"


@pytest.fixture(autouse=True)
def _remove_images(tmp_path: Path, registry: object) -> Iterator[None]:
    """What the walkthrough built and pulled, and nothing else (the engine is shared)."""
    yield
    address = registry.address  # type: ignore[attr-defined]
    remove_own_images([tmp_path / "ours" / "catalog"], [f"{address}/my-tool"])


class User:
    """Types gefreg commands in one folder, with a clean environment."""

    def __init__(self, gefreg: Path, cwd: Path, env: dict[str, str]) -> None:
        self.gefreg, self.cwd, self.env = gefreg, cwd, env

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.gefreg), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == code, f"gefreg {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc


def clean_env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "DOCKER_HOST", "PIP_FIND_LINKS", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    return {**env, **extra}


def test_from_pip_install_to_a_published_run(
    installed: Path, debian_base: BuiltBase, registry: object, tmp_path: Path
) -> None:
    home = tmp_path / "ours"
    home.mkdir()
    no_db = tmp_path / "trivy-no-db"
    address = registry.address  # type: ignore[attr-defined]
    env = clean_env(
        GEFREG_REGISTRY=address,
        GEFREG_CACHE=str(tmp_path / "cache"),
        TRIVY_CACHE_DIR=str(no_db),
    )
    user = User(installed, home, env)

    # 1. A catalog of our own, from the installed package alone.
    made = user("init")
    assert "created catalog/bases/lock.json" in made.stdout
    assert (home / ".github" / "workflows" / "catalog-review.yml").is_file()
    shutil.copytree(
        debian_base.settings.state_dir / "bases" / "debian-bookworm",
        home / ".gefreg" / "bases" / "debian-bookworm",
    )
    based = user("base", "build", "debian-bookworm")
    assert "debian-bookworm: cached" in based.stderr
    assert debian_base.digest in (home / "catalog" / "bases" / "lock.json").read_text()

    # Signing: a new catalog requires signed releases; a key of our own, trusted by it.
    assert "require-signatures: true" in (home / "catalog" / "trust.yaml").read_text()
    user("key", "generate", str(tmp_path / "keys"))
    user("trust", "add", str(tmp_path / "keys" / "gefreg.pub"), "--id", "ours")
    env = {**env, "GEFREG_SIGNING_KEY": str(tmp_path / "keys" / "gefreg.key")}
    user.env = env

    # 2. A service: the scaffold builds, but lint refuses its placeholders until edited.
    user("new", "my-tool")
    refused = user("lint", "my-tool", code=1)
    assert refused.stdout.count("GR109") == 3
    record = home / "catalog" / "my-tool" / "service.yaml"
    text = re.sub(r"  # placeholder: .*", "", record.read_text())
    text = text.replace("Your Name <you@example.org>", "Ada Lovelace <ada@example.org>")
    text = text.replace("What my-tool does, in one sentence.", "Counts the files it is given.")
    record.write_text(text.replace("license: MIT", "license: Apache-2.0"))
    linted = user("lint", "my-tool")
    assert "lint passed: 1 entry, 0 findings" in linted.stderr

    # 3. Build, record the golden output, test.
    user("build", "my-tool")
    user("test", "my-tool", code=1)  # the scaffold's expected hash is a placeholder too
    updated = user("test", "my-tool", "--update")
    assert "updated" in updated.stdout
    assert "PASS sample" in user("test", "my-tool").stdout

    # 4. Publish: the production policy refuses an image nobody checked for vulnerabilities.
    blocked = user("publish", "my-tool", code=1)
    assert "vulnerabilit" in blocked.stderr
    assert not (home / "catalog" / "my-tool" / "releases.jsonl").exists()
    write_empty_db(tmp_path / "trivy-db")
    user.env = {**env, "TRIVY_CACHE_DIR": str(tmp_path / "trivy-db")}
    published = json.loads(user("publish", "my-tool", "--json").stdout)
    assert (published["status"], published["version"]) == ("published", "0.1.0")
    assert published["signed_by"] == "ours"
    [line] = (home / "catalog" / "my-tool" / "releases.jsonl").read_text().splitlines()
    assert json.loads(line)["digest"] == published["digest"]
    user("verify")

    # 5. Run the published version on a folder of our own, as a scientist would.
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("a\n")
    (data / "sub" / "b.txt").write_text("b\n")
    out = tmp_path / "results"
    user("run", "my-tool@0.1.0", "--input", str(data), "--output", str(out))
    assert (out / "summary.txt").read_text() == "2 files\n"
