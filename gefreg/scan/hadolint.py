"""hadolint on rendered Dockerfiles: many files per call, calls spread over the CPU cores."""

from __future__ import annotations

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gefreg.errors import ToolFailed
from gefreg.subprocesses import find_tool, run_tool

# Checked on every rendered Dockerfile: hadolint's own label-schema rules double-check ours.
# (Licenses are left to gefreg: hadolint's `spdx` format rejects compound expressions.)
LABEL_SCHEMA = (
    "org.opencontainers.image.version:semver",
    "org.opencontainers.image.title:text",
    "org.opencontainers.image.description:text",
    "eudat.gef.service.version:semver",
    "org.gefreg.fingerprint:text",
)


@dataclass(frozen=True)
class HadolintFinding:
    file: Path
    line: int
    code: str
    level: str
    message: str


class Hadolint:
    """Runs hadolint on batches of files while the caller keeps rendering more.

    Each call checks many files (start-up dominates hadolint's cost on small files), and
    batches run in background threads so hadolint uses the cores Python leaves idle.
    """

    def __init__(self, *, config: Path | None = None, batch: int = 100) -> None:
        self.argv = [find_tool("hadolint"), "--format", "json", "--no-fail", "--no-color"]
        if config is not None:
            self.argv += ["--config", str(config)]
        for label in LABEL_SCHEMA:
            self.argv += ["--require-label", label]
        self.batch = batch
        self._pending: list[Path] = []
        self._pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
        self._futures: list[Future[list[HadolintFinding]]] = []

    def add(self, path: Path) -> None:
        self._pending.append(path)
        if len(self._pending) >= self.batch:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            files, self._pending = self._pending, []
            self._futures.append(self._pool.submit(self._run, files))

    def _run(self, files: list[Path]) -> list[HadolintFinding]:
        proc = run_tool([*self.argv, *map(str, files)])
        try:
            items = json.loads(proc.stdout or b"[]")
        except ValueError:
            raise ToolFailed(
                "hadolint printed something that is not JSON",
                "check `hadolint --version` (2.x is needed)",
            ) from None
        return [
            HadolintFinding(
                Path(i["file"]), int(i.get("line") or 0), i["code"], i["level"], i["message"]
            )
            for i in items
        ]

    def results(self) -> list[HadolintFinding]:
        self._flush()
        try:
            findings = [f for future in self._futures for f in future.result()]
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        return sorted(findings, key=lambda f: (str(f.file), f.line, f.code))


def run_hadolint(files: list[Path], *, config: Path | None = None) -> list[HadolintFinding]:
    linter = Hadolint(config=config, batch=max(1, len(files) // (os.cpu_count() or 1) + 1))
    for path in files:
        linter.add(path)
    return linter.results()
