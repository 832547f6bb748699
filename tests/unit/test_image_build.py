"""A build whose cached step vanished mid-build (a concurrent `docker rmi`) is run again once;
any other failure stands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gefreg.engine import BuildEvent
from gefreg.errors import BuildFailed
from gefreg.image.build import _build

VANISHED = 'unable to find image "sha256:3b1b1df4c7f07ba560b41b674aefdfcdec45e489c75676dd4aea677"'


class Builds:
    """An engine whose builds fail with the given messages, then succeed."""

    def __init__(self, *failures: str) -> None:
        self.failures = list(failures)
        self.calls = 0

    def build(
        self,
        context: Path,
        *,
        labels: dict[str, str],
        no_cache: bool,
        on_event: Callable[[BuildEvent], None] | None,
        log: Path,
    ) -> str:
        self.calls += 1
        if self.failures:
            raise BuildFailed(self.failures.pop(0), "step 2/9: COPY", [], log)
        return "sha256:" + "a" * 64


def build(engine: Builds, tmp_path: Path) -> str:
    fake: Any = engine
    return _build(fake, tmp_path, {}, False, None, tmp_path / "build.log")


def test_a_vanished_cache_entry_is_built_again_once(tmp_path: Path) -> None:
    engine = Builds(VANISHED)
    assert build(engine, tmp_path) == "sha256:" + "a" * 64 and engine.calls == 2
    with pytest.raises(BuildFailed, match="unable to find image"):
        build(Builds(VANISHED, VANISHED), tmp_path)


def test_any_other_failure_stands(tmp_path: Path) -> None:
    engine = Builds("The command '/bin/sh -c false' returned a non-zero code: 1")
    with pytest.raises(BuildFailed, match="non-zero code"):
        build(engine, tmp_path)
    assert engine.calls == 1
