"""Checks of single field values, shared by the record schemas, the renderer and the runner.

Each ``check_*`` returns an error message, or None when the value is fine; :func:`overlapping`
is the one port-overlap check. (Sizes and durations: :mod:`gefreg.limits`.)
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from gefreg.model import CONTAINER_PATH_RE, ENTRY_PATH_RE

SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z"
)
MAX_TEXT = 2000


@functools.cache
def _spdx() -> Any:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


def check_spdx(expression: str) -> str | None:
    try:
        info = _spdx().validate(expression, strict=True)
    except Exception as exc:  # the library raises odd types on malformed expressions
        return f"not a valid SPDX license expression: {exc}"
    if info.errors:
        return f"not a valid SPDX license expression: {'; '.join(info.errors)}"
    return None


def check_url(text: str) -> str | None:
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        return f"expected an http(s) URL, got {text!r}"
    return None


def check_maintainer(text: str) -> str | None:
    import email.utils

    name, address = email.utils.parseaddr(text)
    if not name or "@" not in address or any(c in text for c in "\n\r"):
        return f"expected 'Name <email@example.org>', got {text!r}"
    return None


def check_text(text: str) -> str | None:
    if not text.strip():
        return "must not be empty"
    if len(text) > MAX_TEXT:
        return f"too long ({len(text)} characters, at most {MAX_TEXT})"
    bad = [c for c in text if (ord(c) < 32 and c not in "\n\t") or ord(c) == 127]
    if bad:
        return f"contains control character {bad[0]!r}"
    return None


def check_env_value(text: str) -> str | None:
    """Environment values are single lines: a line break could not be written into the image
    as it is in the record."""
    bad = [c for c in text if ord(c) < 32 or ord(c) == 127]
    if bad:
        return f"contains control character {bad[0]!r} (environment values are one line)"
    return None if len(text) <= MAX_TEXT else f"too long ({len(text)} characters)"


def check_semver(text: str) -> str | None:
    if not SEMVER_RE.match(text):
        hint = " (no leading 'v')" if text.startswith("v") else ""
        return f"expected a SemVer 2.0 version like 1.2.3 or 1.2.3-rc.1{hint}, got {text!r}"
    return None


def check_entry_path(text: str) -> str | None:
    """A path relative to the entry directory that cannot climb out of it."""
    if text.startswith("/"):
        return f"must be relative to the entry directory, got absolute path {text!r}"
    if ".." in PurePosixPath(text).parts:
        return f"must stay inside the entry directory, got {text!r}"
    if not ENTRY_PATH_RE.match(text):
        return f"expected a relative path of letters, digits and ._+@-, got {text!r}"
    return None


def check_container_path(text: str) -> str | None:
    if not CONTAINER_PATH_RE.match(text) or ".." in PurePosixPath(text).parts:
        return f"expected an absolute path of letters, digits and ._+@-, got {text!r}"
    return None


# Mounting a port over these would break or subvert the container's own system.
SYSTEM_DIRS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib64",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
)


def check_port_path(path: str) -> str | None:
    """Where a port may be mounted: an absolute path that hides no system folder."""
    error = check_container_path(path)
    if error:
        return error
    clean = path.rstrip("/") or "/"
    if clean == "/" or any(clean == d or clean.startswith(d + "/") for d in SYSTEM_DIRS):
        return f"{path!r} would hide a system directory"
    return None


def overlapping(paths: Sequence[tuple[str, str]]) -> tuple[str, str, str, str] | None:
    """The first two of ``(label, container path)`` where one path is, or contains, the other:
    ``(label_a, path_a, label_b, path_b)`` with b coming later, or None. Ports may not overlap:
    one mount would hide or expose the other (an output inside an input makes it writable)."""
    seen: list[tuple[str, PurePosixPath, str]] = []
    for label, text in paths:
        here = PurePosixPath(text)
        for other_label, other, other_text in seen:
            if here == other or other in here.parents or here in other.parents:
                return other_label, other_text, label, text
        seen.append((label, here, text))
    return None


def inside(directory: Path, relative: str) -> Path | None:
    """The resolved path if ``relative`` (symlinks followed) stays within ``directory``."""
    root = directory.resolve()
    target = (directory / relative).resolve()
    if target == root or root in target.parents:
        return target
    return None
