"""The GEF instance's parts that need no server: tokens, URLs, the content cache, delivery."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from gefreg.cli import cli
from gefreg.errors import BadInput, CheckFailed, InvalidRecord
from gefreg.serve import urls
from gefreg.serve.content_cache import ContentCache, SizeLimit
from gefreg.serve.delivery import deliver, open_new
from gefreg.serve.task_plan import OutputPlan
from gefreg.serve.tokens import TokenFile, new_token, read_tokens, token_hash


def test_token_new_prints_the_token_last_and_stores_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "tokens.jsonl"
    result = CliRunner().invoke(cli, ["token", "new", "--tokens", str(path), "--read-only"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    [entry] = read_tokens(path)
    assert entry.read_only and entry.sha256 == token_hash(token)
    assert token not in path.read_text()
    again = CliRunner().invoke(cli, ["token", "new", "--tokens", str(path), "--owner", "alice"])
    assert again.exit_code == 0
    assert [e.owner for e in read_tokens(path)][1] == "alice"


def test_a_running_server_sees_new_and_deleted_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens.jsonl"
    first, _ = new_token(path)
    tokens = TokenFile(path)
    assert tokens.find(first) is not None
    second, entry = new_token(path)
    assert tokens.find(second) == entry
    path.write_text(path.read_text().splitlines()[1] + "\n")  # revoke the first
    assert tokens.find(first) is None and tokens.find(second) is not None
    assert tokens.find("gefreg_guess") is None and tokens.find("") is None


def test_a_broken_token_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens.jsonl"
    new_token(path)
    with open(path, "a") as fh:
        fh.write('{"id": "x", "sha256": "nothex"}\n')
    with pytest.raises(InvalidRecord) as caught:
        read_tokens(path)
    assert f"{path}:2" in caught.value.message
    with pytest.raises(BadInput):
        new_token(path, owner="no spaces please")


def test_urls_are_classified_and_checksums_read_from_the_fragment() -> None:
    b2 = frozenset({"https://b2share.example.org"})
    assert urls.classify("file:///srv/data/x").target == "/srv/data/x"
    assert urls.classify("/srv/data/with%20space").target == "/srv/data/with%20space"
    assert urls.classify("file:///srv/a%20b").target == "/srv/a b"
    src = urls.classify("https://example.org/f.nc#sha256=" + "A" * 64)
    assert (src.kind, src.target, src.checksum) == (
        "http",
        "https://example.org/f.nc",
        "sha256:" + "a" * 64,
    )
    assert urls.classify("https://doi.org/10.1234/abc").kind == "doi"
    assert urls.classify("doi:10.1234/abc").target == "10.1234/abc"
    assert urls.classify("hdl:21.T1/xyz").kind == "hdl"
    record = urls.classify("https://b2share.example.org/records/abc123", b2)
    assert (record.kind, record.record) == ("b2share", "abc123")
    assert urls.classify("https://elsewhere.org/records/abc123", b2).kind == "http"
    for bad in ("s3://bucket/x", "ftp://h/x", "https://example.org/x#md5=zz", "file://h/x"):
        with pytest.raises(BadInput):
            urls.classify(bad)


def test_private_addresses_need_the_operators_permission() -> None:
    for url in (
        "http://127.0.0.1/x",
        "http://localhost:8080/x",
        "http://[::1]/x",
        "http://10.1.2.3/",
    ):
        with pytest.raises(urls.Forbidden):
            urls.check_host(url, frozenset())
    urls.check_host("http://127.0.0.1:9/x", frozenset({"127.0.0.1"}))
    with pytest.raises(urls.Forbidden):
        urls.check_host("http://169.254.169.254/latest/meta-data", frozenset({"127.0.0.1"}))


def test_the_content_cache_checks_and_reuses(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path / "cache")
    first = cache.add([b"hello ", b"world"], limit=100, what="x")
    assert not first.hit and first.size == 11 and oct(first.path.stat().st_mode & 0o777) == "0o444"
    hit = cache.find(f"md5:{first.md5}", 11)
    assert hit is not None and hit.path == first.path and hit.hit
    assert cache.find(f"sha256:{first.sha256}", 12) is None  # the record's size must match too
    with pytest.raises(CheckFailed, match="checksum mismatch"):
        cache.add([b"other"], expect=f"sha256:{first.sha256}", limit=100, what="x")
    with pytest.raises(SizeLimit):
        cache.add([b"x" * 50, b"x" * 60], limit=100, what="x")
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_delivery_never_overwrites_nor_follows_a_containers_links(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    (run / "sub" / "a.txt").write_text("a")
    (run / "b.csv").write_text("b")
    (run / "link").symlink_to("/etc/passwd")
    (run / "evil").symlink_to(tmp_path)

    def plan(
        index: int, path: str, dest: Path, kind: str, rel: str, prefix: str | None = None
    ) -> OutputPlan:
        return OutputPlan(index, dest.as_uri(), str(dest), path, kind, "/out", 0, rel, prefix)

    outputs = (
        plan(0, "/out", root / "all", "DIRECTORY", ""),
        plan(1, "/out/b.csv", root / "one.csv", "FILE", "b.csv"),
        plan(2, "/out/*/*.txt", root / "globbed", "DIRECTORY", "*/*.txt", "/out"),
    )
    done = deliver(outputs, {0: {"/out": run}}, (root,))
    paths = sorted(f["path"] for f in done.files)
    assert paths == ["/out/b.csv", "/out/b.csv", "/out/sub/a.txt", "/out/sub/a.txt"]
    assert (root / "globbed" / "sub" / "a.txt").read_text() == "a"
    assert not (root / "all" / "link").exists() and any("link" in s for s in done.skipped)
    with pytest.raises(CheckFailed, match="never overwrite"):
        deliver(outputs[1:2], {0: {"/out": run}}, (root,))
    with pytest.raises(CheckFailed):
        os.close(open_new(run, "evil/planted.txt"))
    assert not (tmp_path / "planted.txt").exists()
    fd = open_new(run, "new/dir/file.txt")
    os.close(fd)
    assert (run / "new" / "dir" / "file.txt").is_file()
    assert json.dumps(done.files)  # TES tesOutputFileLog objects


def test_catalog_pages_escape_records_and_link_only_to_the_web() -> None:
    from gefreg.serve import pages
    from gefreg.serve.catalog_view import EntryView

    hostile = EntryView(
        name="x",
        description='<img src=x onerror="alert(1)">',
        license="MIT",
        maintainers=("<b>Eve</b> <eve@example.org>",),
        source="javascript:alert(1)",
        documentation="https://docs.example.org/?a=<b>",
        record_version="1.0.0",
        template="static",
    )
    html = pages.entry_page(hostile) + pages.index_page([hostile], query="img")
    assert "<img" not in html and "<b>Eve" not in html and "&lt;img" in html
    assert 'href="javascript:' not in html and "javascript:alert(1)" in html  # shown as text
    assert 'href="https://docs.example.org/?a=&lt;b&gt;"' in html
    assert pages.index_page([hostile], query="nothing-matches").count(" hidden>") == 1
    assert pages.filesize(1536) == "1.5 KiB" and pages.filesize(12) == "12 bytes"


class Containers:
    """Containers by run id, as the engine's label filter finds them."""

    def __init__(self, runs: dict[str, list[str]]) -> None:
        self.runs = runs
        self.killed: list[str] = []
        self.removed: list[str] = []

    def container_ids(self, label: str) -> list[str]:
        run = label.partition("=")[2]
        return [c for c in self.runs.get(run, []) if c not in self.removed]

    def kill_container(self, container: str) -> None:
        self.killed.append(container)

    def remove_container(self, container: str) -> None:
        self.removed.append(container)


def test_a_restarted_server_closes_what_its_predecessor_left(tmp_path: Path) -> None:
    from gefreg.serve.store import TaskStore
    from gefreg.serve.tes_models import TesState
    from gefreg.serve.worker import recover

    store = TaskStore(tmp_path / "tasks.sqlite")
    for name in ("running", "canceling", "queued"):
        store.create(name, owner="o", name=name, created="t", document={}, plan={}, tags={})
    for name, run in (("running", "run-1"), ("canceling", "run-2")):
        assert store.claim_next() is not None
        store.update_log(name, {"executors": [{"run_id": run, "started": True}]})
    store.set_state("running", TesState.RUNNING)
    store.set_state("canceling", TesState.CANCELING)
    engine = Containers({"run-1": ["c1"], "run-2": ["c2"], "other": ["c3"]})
    assert recover(store, engine) == ["running", "canceling"]
    assert sorted(engine.removed) == ["c1", "c2"]  # never another run's container
    states = {n: store.get(n).state for n in ("running", "canceling", "queued")}  # type: ignore[union-attr]
    assert states == {
        "running": TesState.SYSTEM_ERROR,
        "canceling": TesState.CANCELED,
        "queued": TesState.QUEUED,
    }
    log = store.get("running").log  # type: ignore[union-attr]
    assert "server stopped while the task was RUNNING" in log["system_logs"][0]
    assert log["end_time"]
    assert recover(store, engine) == []  # nothing left to close


def test_a_task_cancelled_while_a_worker_finishes_ends_canceled(tmp_path: Path) -> None:
    from gefreg.serve.store import TaskStore
    from gefreg.serve.tes_models import TesState

    store = TaskStore(tmp_path / "tasks.sqlite")
    store.create("t", owner="o", name="", created="t", document={}, plan={}, tags={})
    assert store.claim_next() is not None
    assert store.set_state("t", TesState.CANCELING, only_from=[TesState.INITIALIZING])
    assert store.finish("t", TesState.COMPLETE, {}) is TesState.CANCELED


def test_local_inputs_are_staged_only_while_they_resolve_as_admitted(tmp_path: Path) -> None:
    """Between admission and the run a folder on an input's path became a link to a folder
    outside the data roots: neither the mount nor the copy follows it."""
    from typing import Any, cast

    from gefreg.serve.staging import Stager
    from gefreg.serve.task_plan import InputPlan, TaskPlan

    root, secret = tmp_path / "data", tmp_path / "secret"
    (root / "in").mkdir(parents=True)
    (root / "in" / "a.txt").write_text("alpha\n")
    secret.mkdir()
    (secret / "a.txt").write_text("not for tasks\n")
    admitted = (root / "in").resolve()
    common: dict[str, Any] = {"index": 0, "kind": "file", "port": "/data/input"}
    common["url"] = admitted.as_uri()
    plans = {
        "mounted": InputPlan(path="/data/input", type="DIRECTORY", rel="", target=str(admitted),
                             in_place=True, **common),
        "copied": InputPlan(path="/data/input/in", type="DIRECTORY", rel="in",
                            target=str(admitted), **common),
        "file": InputPlan(path="/data/input/a.txt", type="FILE", rel="a.txt",
                          target=str(admitted / "a.txt"), **common),
    }  # fmt: skip
    stager = Stager(ContentCache(tmp_path / "cache"), cast(Any, None), 10**6, (root.resolve(),))

    def stage(name: str) -> Any:
        plan = TaskPlan(executors=(), inputs=(plans[name],), input_ports=("/data/input",))
        return stager.stage(plan, tmp_path / "tasks" / name)

    assert stage("mounted").folders["/data/input"] == admitted
    assert stage("file").files[0]["size"] == 6
    (root / "in").rename(root / "was-in")
    (root / "in").symlink_to(secret)
    for name in plans:
        with pytest.raises(CheckFailed, match="no longer what was admitted"):
            stage(name)
    cached = [p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert cached and b"not for tasks\n" not in cached


def test_serve_hands_its_options_to_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--host/--port reach uvicorn; --tokens, --data-root (repeated) and --workers the app;
    bad values are usage errors (exit 2) before anything listens."""
    from typing import Any

    import uvicorn

    from tests.serve_helpers import published_catalog

    settings = published_catalog(tmp_path)
    token_file = tmp_path / "tokens.jsonl"
    new_token(token_file)
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        root.mkdir()
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    base = ["serve", "--tokens", str(token_file), "--catalog", str(settings.catalog),
            "--registry", settings.registry, "--home", str(tmp_path / "home")]  # fmt: skip
    result = CliRunner().invoke(
        cli,
        [*base, "--host", "0.0.0.0", "--port", "8765", "--workers", "3",
         "--max-unfinished", "5", "--staging-timeout", "90s",
         "--data-root", str(roots[0]), "--data-root", str(roots[1])],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("0.0.0.0", 8765)
    config = served["app"].state.gefreg.config
    assert config.workers == 3 and config.tokens == token_file.resolve()
    assert config.max_unfinished == 5 and config.staging_timeout == 90
    assert config.data_roots == tuple(r.resolve() for r in roots)
    served.clear()
    for bad in (
        ["--data-root", str(roots[0]), "--workers", "0"],
        ["--data-root", str(roots[0]), "--port", "70000"],
        ["--data-root", str(roots[0]), "--staging-timeout", "soon"],
        ["--data-root", str(tmp_path / "missing")],
        [],  # no data root
    ):
        result = CliRunner().invoke(cli, [*base, *bad])
        assert result.exit_code == 2, (bad, result.output)
    no_tokens = [a if a != str(token_file) else str(tmp_path / "none.jsonl") for a in base]
    result = CliRunner().invoke(cli, [*no_tokens, "--data-root", str(roots[0])])
    assert result.exit_code == 2 and "none.jsonl" in result.output
    assert served == {}  # nothing was served


def test_a_cancel_stops_a_download_that_trickles_in(tmp_path: Path) -> None:
    """A web input that sends one byte at a time (against a real HTTP server on loopback):
    the stager stops within a read of the cancel, not after a whole chunk has come, and says
    canceled, not 'cannot store'; uncancelled, it stops when its time for downloads is up."""
    import time
    from collections.abc import Iterator

    from gefreg.serve import fetch, pids
    from gefreg.serve.staging import Canceled, Stager
    from gefreg.serve.task_plan import InputPlan, TaskPlan
    from tests.fake_http import Reply, serving

    def trickle() -> Iterator[bytes]:
        for _ in range(600):
            time.sleep(0.1)
            yield b"x"

    policy = fetch.Policy(allowed=frozenset({"127.0.0.1"}))
    resolvers = pids.Resolvers(frozenset(), "", "", policy)
    with serving(lambda _: Reply(200, {"Content-Length": str(10**6)}, trickle())) as server:
        url = f"{server.url}/slow.bin"
        item = InputPlan(index=0, kind="http", path="/data/input/slow.bin", type="FILE",
                         port="/data/input", rel="slow.bin", url=url, target=url)  # fmt: skip
        started = time.monotonic()
        stager = Stager(ContentCache(tmp_path / "cache"), resolvers, 10**9, (tmp_path,),
                        lambda: time.monotonic() > started + 1)  # fmt: skip
        plan = TaskPlan(executors=(), inputs=(item,), input_ports=("/data/input",))
        with pytest.raises(Canceled):
            stager.stage(plan, tmp_path / "task")
        assert time.monotonic() - started < 5  # not the minute the whole trickle takes
        # nobody cancels: the server's time for downloads runs out instead
        started = time.monotonic()
        stager = Stager(ContentCache(tmp_path / "cache"), resolvers, 10**9, (tmp_path,),
                        time_limit=1)  # fmt: skip
        with pytest.raises(CheckFailed, match="took longer than 1 s"):
            stager.stage(plan, tmp_path / "task2")
        assert time.monotonic() - started < 5
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
