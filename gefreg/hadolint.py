"""hadolint on rendered Dockerfiles: many files per call, calls spread over the CPU cores."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gefreg.errors import ToolFailed
from gefreg.tools import find_tool, run_tool

# Checked on every rendered Dockerfile: hadolint's own label-schema rules double-check ours.
# (Licenses are left to gefreg: hadolint's `spdx` format rejects compound expressions.)
LABEL_SCHEMA = (
    "org.opencontainers.image.version:semver",
    "org.opencontainers.image.title:text",
    "org.opencontainers.image.description:text",
    "eudat.gef.service.version:semver",
    "org.gefreg.fingerprint:text",
)
LEVELS = ("error", "warning", "info", "style")


@dataclass(frozen=True)
class HadolintFinding:
    file: Path
    line: int
    code: str
    level: str
    message: str


def run_hadolint(files: list[Path], *, config: Path | None = None) -> list[HadolintFinding]:
    if not files:
        return []
    binary = find_tool("hadolint")
    argv = [binary, "--format", "json", "--no-fail", "--no-color"]
    if config is not None:
        argv += ["--config", str(config)]
    for label in LABEL_SCHEMA:
        argv += ["--require-label", label]
    workers = min(os.cpu_count() or 1, max(1, len(files) // 50), 4)
    chunks = [files[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outputs = list(pool.map(lambda chunk: run_tool([*argv, *map(str, chunk)]), chunks))
    findings = []
    for proc in outputs:
        try:
            items = json.loads(proc.stdout or b"[]")
        except ValueError:
            raise ToolFailed("hadolint printed something that is not JSON",
                             "check `hadolint --version` (2.x is needed)") from None
        for item in items:
            findings.append(HadolintFinding(Path(item["file"]), int(item.get("line") or 0),
                                            item["code"], item["level"], item["message"]))
    return sorted(findings, key=lambda f: (str(f.file), f.line, f.code))
