"""`pip: [rich==13.7.1]`: before, it passed lock, lint and build and then failed at test time
(ModuleNotFoundError: markdown_it). Now `gefreg lock` has pip resolve the whole closure for the
image, the image imports rich's dependencies, and lint finds a lock the record has outgrown.
Real pip against the package index, a real build on the curated python base."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg.catalog.pip_lock import LOCK_FILE, read_pip_lock
from gefreg.cli import cli
from tests.helpers import remove_own_images, service_yaml
from tests.integration.conftest import ShippedCatalog


@pytest.fixture(autouse=True)
def _remove_images(tmp_path: Path) -> Iterator[None]:
    """The images this test built (its catalog's own tag namespace), and nothing else."""
    yield
    remove_own_images([tmp_path / "catalog"])


pytestmark = [pytest.mark.docker, pytest.mark.slow]

SCRIPT = """\
import pathlib, sys
import rich.markdown  # imports markdown_it, which packages.pip does not list
import markdown_it
out = pathlib.Path(sys.argv[2])
(out / "result.txt").write_text(f"markdown-it {markdown_it.__version__}\\n")
"""


def test_lock_resolves_what_the_image_needs(shipped: ShippedCatalog, tmp_path: Path) -> None:
    shipped.base("python-bookworm")  # built and pushed; the lock names its digest
    catalog = tmp_path / "catalog"
    shutil.copytree(shipped.settings.catalog / "bases", catalog / "bases")
    entry = catalog / "rich-tool"
    (entry / "tests" / "in").mkdir(parents=True)
    (entry / "tests" / "in" / "x.txt").write_text("x\n")
    (entry / "main.py").write_text(SCRIPT)
    record = entry / "service.yaml"
    record.write_text(
        service_yaml(
            name="rich-tool",
            template="python",
            base="python-bookworm",
            packages={"pip": ["rich==13.7.1"]},
            files={"main.py": "/opt/main.py"},
            command=["python3", "/opt/main.py", "/data/input", "/data/output"],
            tests=[
                {
                    "name": "imports",
                    "inputs": {"data": "tests/in"},
                    "expect": {"result/result.txt": "sha256:" + "0" * 64},
                }
            ],
        )
    )
    env = {
        "GEFREG_CATALOG": str(catalog),
        "GEFREG_REGISTRY": shipped.settings.registry,
        "GEFREG_STATE": str(tmp_path / "state"),
    }

    def gefreg(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = gefreg("lint", "rich-tool", "--no-hadolint")
    assert code == 1 and "GR107" in out and "needs pip.lock" in out
    code, out, err = gefreg("lock", "rich-tool")
    assert code == 0, err
    locked = {p.name.lower(): p.version for p in read_pip_lock(entry / LOCK_FILE).pins}
    assert locked["rich"] == "13.7.1"
    assert {"markdown-it-py", "mdurl", "pygments"} <= set(locked), locked
    code, out, _ = gefreg("lint", "rich-tool", "--no-hadolint")
    assert code == 0, out
    code, out, err = gefreg("lock", "rich-tool")
    assert code == 0 and out.startswith("unchanged"), err

    code, out, err = gefreg("build", "rich-tool")
    assert code == 0, err
    code, out, err = gefreg("test", "rich-tool", "--update")
    assert code == 0, out + err
    code, out, err = gefreg("test", "rich-tool", "--json")
    assert code == 0 and json.loads(out)["passed"], out + err

    # The record moves on; the lock does not: lint says so before any build.
    record.write_text(record.read_text().replace("rich==13.7.1", "rich==13.7.0"))
    code, out, _ = gefreg("lint", "rich-tool", "--no-hadolint")
    assert code == 1
    assert "pip.lock is stale: packages.pip changed (+rich==13.7.0, -rich==13.7.1)" in out
