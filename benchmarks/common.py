"""Shared helpers for the benchmarks: timing commands and printing a small table."""

from __future__ import annotations

import compileall
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"

# A CLI process should start the way an installed gefreg does, from compiled bytecode (pip
# compiles at install time). An editable install under PYTHONDONTWRITEBYTECODE=1 would
# otherwise recompile every gefreg module in every process and time that instead.
compileall.compile_dir(ROOT / "gefreg", quiet=1)


def best_of(runs: int, action: Callable[[], object]) -> float:
    """Median wall time over ``runs`` runs (seconds)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command(argv: Sequence[str], **kw: object) -> Callable[[], object]:
    def run() -> object:
        return subprocess.run(list(argv), check=True, capture_output=True, **kw)  # type: ignore[call-overload]

    return run


def report(
    title: str,
    rows: list[tuple[str, float]],
    ratio_of: tuple[str, str] | None = None,
    unit: str = "s",
) -> float | None:
    print(f"\n## {title}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value:9.3f} {unit}")
    if ratio_of:
        values = dict(rows)
        ratio = values[ratio_of[0]] / values[ratio_of[1]]
        print(f"  ratio {ratio_of[0]} / {ratio_of[1]} = {ratio:.2f}x")
        return ratio
    return None


def raw_head_floor(address: str, repo: str, tags: list[str], workers: int, digest: str) -> None:
    """The physical floor of "what does each tag point at": raw http.client HEADs, one
    kept-alive connection per thread, nothing else."""
    import http.client
    import threading

    from gefreg.registry.media_types import ACCEPT_MANIFESTS

    host, _, port = address.rpartition(":")
    found: list[str] = []
    lock = threading.Lock()

    def run(chunk: list[str]) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        got = []
        for tag in chunk:
            conn.request(
                "HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT_MANIFESTS}
            )
            resp = conn.getresponse()
            resp.read()
            got.append(resp.getheader("Docker-Content-Digest") or "")
        conn.close()
        with lock:
            found.extend(got)

    threads = [threading.Thread(target=run, args=(tags[i::workers],)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(found)) == [digest] and len(found) == len(tags)


def skopeo_loop(address: str, repo: str, tags: list[str]) -> None:
    """What a script without gefreg does: one `skopeo inspect` per tag."""
    for tag in tags:
        subprocess.run(
            [
                "skopeo",
                "inspect",
                "--raw",
                "--tls-verify=false",
                f"docker://{address}/{repo}:{tag}",
            ],
            check=True,
            capture_output=True,
        )
