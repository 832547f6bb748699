"""One error hierarchy; the exit code of every command comes from here.

0 success · 1 a check said no · 2 bad input or usage · 3 environment or tool failure ·
130 interrupted (Ctrl-C). The CLI maps any :class:`GefregError` to its ``exit_code`` in one
place (``cli.Group.invoke``); anything else is a bug and exits 3 (``cli.main``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130


class GefregError(Exception):
    """Base of every error gefreg reports to a user; carries a hint on how to fix it."""

    exit_code = EXIT_ENVIRONMENT

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class CheckFailed(GefregError):
    """A check said no: a policy gate, an immutability rule, a result that did not reproduce."""

    exit_code = EXIT_CHECK_FAILED


class BadInput(GefregError):
    """The user gave something gefreg cannot use: an invalid record, a missing file, bad flags."""

    exit_code = EXIT_BAD_INPUT


class EnvironmentFailure(GefregError):
    """Something outside gefreg failed: engine unreachable, registry down, scanner missing."""

    exit_code = EXIT_ENVIRONMENT


class InputsUnavailable(EnvironmentFailure):
    """What a build needs is gone: a locked package version no longer in the archive, a base
    or a commit that cannot be found. Exit 3: the environment, not the record, changed."""


class ToolMissing(EnvironmentFailure):
    """A required external program is not installed."""


class ToolFailed(EnvironmentFailure):
    """An external program ran and failed in a way that is not a verdict."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of one file, located as precisely as we can."""

    path: Path
    line: int | None
    column: int | None
    field: str
    message: str
    hint: str | None = None

    def location(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        text = (
            f"{self.location()}: {self.field}: {self.message}"
            if self.field
            else (f"{self.location()}: {self.message}")
        )
        if self.hint:
            text += f" (fix: {self.hint})"
        return text


class InvalidRecord(BadInput):
    """A catalog record (or policy, base, lock file) failed validation; lists every problem."""

    def __init__(self, problems: list[Problem]) -> None:
        problems = sorted(problems, key=lambda p: (str(p.path), p.line or 0, p.column or 0))
        self.problems = problems
        count = len(problems)
        lines = "\n".join(f"  {p}" for p in problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} {noun} found:\n{lines}")


class BuildFailed(CheckFailed):
    """A Dockerfile step failed: the build said no. Carries the failing step and its output."""

    def __init__(self, message: str, step: str | None, tail: list[str], log: Path | None = None):
        self.step = step
        self.tail = tail
        self.log = log
        text = message
        if step:
            text = f"build failed at {step}\n  {message}"
        if tail:
            text += "\n  last lines of its output:\n" + "\n".join(f"    | {t}" for t in tail)
        super().__init__(text, f"full log: {log}" if log else None)
