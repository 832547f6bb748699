"""Errors a registry causes. All are environment failures (exit 3)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gefreg.errors import EnvironmentFailure

if TYPE_CHECKING:
    import requests


class RegistryError(EnvironmentFailure):
    """Base of the errors a registry causes."""


class RegistryUnavailable(RegistryError):
    """The registry does not answer, or not with HTTP/JSON, even after retries."""


class AuthRefused(RegistryError):
    """The registry or its token service refused the credentials (or their absence)."""


class DigestMismatch(RegistryError):
    """Content does not hash to the digest the registry names."""


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of a registry's ``{"errors": [{"code", "message", "detail"}]}`` answer."""

    code: str
    message: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}" if self.message else self.code
        return f"{text} ({self.detail})" if self.detail else text


class RegistryRejected(RegistryError):
    """The registry answered with an error we did not expect (a 4xx); ``errors`` has its JSON."""

    def __init__(
        self, message: str, status: int, errors: tuple[ErrorDetail, ...], hint: str | None = None
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.errors = errors

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.errors)


def error_details(resp: requests.Response) -> tuple[ErrorDetail, ...]:
    """The registry's error list, if the body is one."""
    try:
        items = json.loads(resp.content).get("errors") or []
        return tuple(
            ErrorDetail(
                str(e.get("code", "")),
                str(e.get("message", "")),
                json.dumps(e["detail"]) if e.get("detail") else "",
            )
            for e in items[:5]
            if isinstance(e, dict)
        )
    except (ValueError, AttributeError, TypeError):
        return ()


def summary(resp: requests.Response) -> str:
    """The error list as text, else the start of the body."""
    errors = error_details(resp)
    if errors:
        return "; ".join(str(e) for e in errors)
    text = resp.content[:120].decode(errors="replace").strip()
    return repr(text) if text else "(empty body)"


def rejected(registry: str, resp: requests.Response, what: str) -> RegistryRejected:
    return RegistryRejected(
        f"{registry} refused {what}: HTTP {resp.status_code}: {summary(resp)}",
        resp.status_code,
        error_details(resp),
    )
