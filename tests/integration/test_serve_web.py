"""The web catalog: the static site (`gefreg site`) and the live pages (`gefreg serve`) from a
catalog whose releases are in the session's real registry; then a real browser (Debian's
chromium driven by Playwright) searches, opens pages, copies a command and checks
accessibility with axe."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from markupsafe import escape

from tests.serve_fixtures import HOSTILE, Instance, gefreg
from tests.serve_helpers import ServerProcess

pytestmark = pytest.mark.docker

CHROMIUM = Path("/usr/bin/chromium")


def tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def web(tes_instance: Instance) -> Iterator[ServerProcess]:
    proc = tes_instance.server("web")
    proc.start()
    yield proc
    proc.stop()


def test_the_static_site_is_complete_escaped_and_byte_identical(
    tes_instance: Instance, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        code, out, err = gefreg(tes_instance.env, "site", *tes_instance.opts(), "-o", str(folder))
        assert code == 0, err
        assert "warning" not in err, err
    assert tree(first) == tree(second)
    files = tree(first)
    fixity = "entries/fixity-manifest/1.0.0"
    for name in ("index.html", f"{fixity}/index.html", f"{fixity}/sbom.json", "static/gefreg.js"):
        assert name in files, sorted(files)
    assert json.loads(files[f"{fixity}/sbom.json"])["bomFormat"] == "CycloneDX"
    assert b"cwlVersion: v1.2" in files[f"{fixity}/fixity-manifest.cwl"]
    page = files[f"{fixity}/index.html"].decode()
    digest = tes_instance.digests["fixity-manifest"]
    assert f"{tes_instance.registry}/fixity-manifest@{digest}" in page
    assert "org.gefreg.fingerprint" in page and "KiB" in page  # labels and size, from the registry
    ledger = (tes_instance.catalog / "fixity-manifest" / "releases.jsonl").read_text()
    assert json.loads(ledger.splitlines()[0])["published"] in page  # the date
    entry = files["entries/fixity-manifest/index.html"].decode()
    for shown in (
        "<code>/data/collection</code>",
        "<code>/data/manifest</code>",  # ports
        "<dt>time limit</dt><dd>120 s</dd>",
        "<dt>processes</dt><dd>64</dd>",
    ):
        assert shown in entry, shown  # fmt: skip
    assert (
        "gefreg run fixity-manifest@1.0.0 -i collection=./collection -o manifest=./manifest" in page
    )
    hostile = files["entries/tes-hostile/index.html"].decode()
    assert "<script>alert" not in hostile and "&lt;script&gt;alert" in hostile
    assert str(escape(HOSTILE)) in hostile  # shown as text, whole
    # again into the same folder: nothing changes; a folder of other files is refused
    code, out, err = gefreg(
        tes_instance.env, "site", *tes_instance.opts(), "-o", str(first), "--json"
    )
    assert code == 0 and json.loads(out)["removed"] == 0 and tree(first) == files
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    code, _, err = gefreg(tes_instance.env, "site", *tes_instance.opts(), "-o", str(other))
    assert code == 2 and "not empty" in err and (other / "mine.txt").read_text() == "keep me"


def test_the_live_pages_and_the_task_list(tes_instance: Instance, web: ServerProcess) -> None:
    index = requests.get(f"{web.url}/?q=fixity", timeout=10)
    assert (
        index.status_code == 200
        and "default-src 'self'" in index.headers["content-security-policy"]
    )
    items = re.findall(
        r'<li data-search="[^"]*"( hidden)?>\s*<h2><a href="entries/([^/]+)/', index.text
    )
    assert {name: bool(hidden) for hidden, name in items} == {
        "fixity-manifest": False,
        "tes-chatty": True,
        "tes-hostile": True,
        "tes-sleeper": True,
    }
    version = requests.get(f"{web.url}/entries/fixity-manifest/1.0.0/", timeout=10)
    assert version.status_code == 200 and "Findings by severity" in version.text
    sbom = requests.get(f"{web.url}/entries/fixity-manifest/1.0.0/sbom.json", timeout=10)
    assert sbom.json()["bomFormat"] == "CycloneDX"
    cwl = requests.get(f"{web.url}/entries/fixity-manifest/1.0.0/fixity-manifest.cwl", timeout=10)
    assert cwl.status_code == 200 and tes_instance.digests["fixity-manifest"] in cwl.text
    assert requests.get(f"{web.url}/entries/nope/", timeout=10).status_code == 404
    assert requests.get(f"{web.url}/entries/fixity-manifest/9.9.9/", timeout=10).status_code == 404

    session = requests.Session()
    assert session.get(f"{web.url}/tasks", timeout=10).url.endswith("/login")
    denied = session.post(f"{web.url}/login", data={"token": "gefreg_wrong"}, timeout=10)
    assert denied.status_code == 401
    headers = {"Authorization": f"Bearer {tes_instance.tokens['writer']}"}
    body = {
        "name": "from-the-web-test",
        "executors": [{"image": "tes-sleeper@1.0.0", "command": []}],
    }
    created = requests.post(f"{web.url}/ga4gh/tes/v1/tasks", json=body, headers=headers, timeout=10)
    task_id = created.json()["id"]
    logged_in = session.post(
        f"{web.url}/login", data={"token": tes_instance.tokens["writer"]}, timeout=10
    )
    assert logged_in.status_code == 200 and task_id in logged_in.text
    cookie = next(c for c in session.cookies)
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert tes_instance.tokens["writer"] not in str(cookie.value)
    detail = session.get(f"{web.url}/tasks/{task_id}", timeout=10)
    assert detail.status_code == 200 and "tes-sleeper@1.0.0" in detail.text
    session.post(f"{web.url}/logout", timeout=10)
    assert session.get(f"{web.url}/tasks", timeout=10).url.endswith("/login")
    requests.post(f"{web.url}/ga4gh/tes/v1/tasks/{task_id}:cancel", headers=headers, timeout=10)


def _browser_args() -> list[str]:
    return ["--no-sandbox"] if os.geteuid() == 0 else []


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but /usr/bin/chromium is missing; run `make setup`")
        pytest.skip("no /usr/bin/chromium (make setup installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=_browser_args())
        yield launched
        launched.close()


def _serious(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_a_real_browser_searches_copies_and_finds_no_serious_violations(
    web: ServerProcess, browser: Any, tes_instance: Instance
) -> None:
    context = browser.new_context(base_url=web.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/")
    assert _serious(page) == []
    page.get_by_label("Search services").fill("fixity")
    assert page.locator("#entries li:visible").count() == 1
    assert page.locator("#count").inner_text() == "1 of 4 shown"
    page.get_by_role("link", name="fixity-manifest").click()
    page.wait_for_url("**/entries/fixity-manifest/**")
    assert _serious(page) == []
    page.get_by_role("button", name="Copy the gefreg command").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.locator("code[data-tool=gefreg]").inner_text()
    assert copied.startswith("gefreg run fixity-manifest@1.0.0 -i collection=")
    page.get_by_role("link", name="1.0.0", exact=True).first.click()
    page.wait_for_url("**/entries/fixity-manifest/1.0.0/**")
    assert tes_instance.digests["fixity-manifest"] in page.content()
    assert _serious(page) == []
    page.goto("/login")
    assert _serious(page) == []
    assert errors == []
    context.close()


def test_the_catalog_works_without_javascript(web: ServerProcess, browser: Any) -> None:
    context = browser.new_context(base_url=web.url, java_script_enabled=False)
    page = context.new_page()
    page.goto("/")
    page.get_by_label("Search services").fill("sleeper")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**q=sleeper**")
    visible = page.locator("#entries li:visible h2 a")
    assert visible.all_inner_texts() == ["tes-sleeper"]
    context.close()


def test_the_static_site_in_the_browser(
    tes_instance: Instance, browser: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "site"
    code, _, err = gefreg(
        tes_instance.env, "site", *tes_instance.opts(), "-o", str(folder), "--no-cwl"
    )
    assert code == 0, err
    page = browser.new_page()
    page.goto((folder / "index.html").as_uri())
    page.get_by_label("Search services").fill("hostile")
    assert page.locator("#entries li:visible h2 a").all_inner_texts() == ["tes-hostile"]
    page.get_by_role("link", name="tes-hostile").click()
    assert page.locator("h1").inner_text() == "tes-hostile"
    assert page.evaluate("document.querySelectorAll('script').length") == 1  # only ours
    page.close()
    shutil.rmtree(folder)


def _page_commands(page: str) -> dict[str, str]:
    import html

    found = re.findall(r'<code id="cmd-\d+" data-tool="([^"]+)">(.*?)</code>', page, re.S)
    return {tool: html.unescape(text) for tool, text in found}


def test_the_pages_commands_run_as_written(tes_instance: Instance, tmp_path: Path) -> None:
    """Each command an entry page offers, pasted into a shell in a folder holding the input
    port's folder, as the page says: all four write the same manifest."""
    import subprocess
    import sys

    site = tmp_path / "site"
    code, _, err = gefreg(tes_instance.env, "site", *tes_instance.opts(), "-o", str(site))
    assert code == 0, err
    commands = _page_commands((site / "entries/fixity-manifest/index.html").read_text())
    assert set(commands) == {"gefreg", "docker", "cwltool", "Toil"}
    venv = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        **tes_instance.env,
        "PATH": f"{venv}{os.pathsep}{os.environ.get('PATH', '')}",
        "GEFREG_CATALOG": str(tes_instance.catalog),
        "GEFREG_REGISTRY": tes_instance.registry,
    }
    made = {}
    for tool, command in commands.items():
        work = tmp_path / tool
        shutil.copytree(tes_instance.data / "collection", work / "collection")
        done = subprocess.run(
            ["bash", "-euc", command], cwd=work, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{tool}:\n{command}\n{done.stderr[-3000:]}"
        made[tool] = tree(work / "manifest")
    assert made["gefreg"] and "manifest-sha256.txt" in made["gefreg"]
    assert all(files == made["gefreg"] for files in made.values()), {
        tool: sorted(files) for tool, files in made.items()
    }
