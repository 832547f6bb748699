"""HTTP(S) requests the server makes for a task: every hop of a redirect is checked against the
host policy (:func:`gefreg.serve.urls.check_host`), bodies are streamed, and failures are
errors that say which URL and why."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests
import urllib3

from gefreg import __version__
from gefreg.errors import BadInput, CheckFailed, EnvironmentFailure
from gefreg.serve.urls import check_host

MAX_REDIRECTS = 5
TIMEOUT = (10, 60)
USER_AGENT = f"gefreg/{__version__} (GEF instance staging)"


class Gone(CheckFailed):
    """The record or file was withdrawn (HTTP 410) or does not exist (404)."""


@dataclass(frozen=True)
class Policy:
    allowed: frozenset[str] = frozenset()
    trusted: frozenset[str] = frozenset()  # configured resolvers: not policed

    def check(self, url: str) -> None:
        from gefreg.serve.urls import origin

        if origin(url) not in self.trusted:
            check_host(url, self.allowed)


@contextlib.contextmanager
def get(url: str, policy: Policy, *, accept: str | None = None) -> Iterator[requests.Response]:
    """A streamed GET of ``url`` after following at most five redirects, each checked."""
    session = requests.Session()
    session.trust_env = False
    headers = {"User-Agent": USER_AGENT}
    if accept:
        headers["Accept"] = accept
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            policy.check(current)
            try:
                resp = session.get(
                    current, headers=headers, stream=True, timeout=TIMEOUT, allow_redirects=False
                )
            except requests.RequestException as exc:
                raise EnvironmentFailure(f"GET {current}: {exc}") from None
            if resp.is_redirect and resp.headers.get("location"):
                current = urljoin(current, resp.headers["location"])
                resp.close()
                continue
            with resp:
                _raise_for(resp, current)
                yield resp
            return
        raise BadInput(f"GET {url}: more than {MAX_REDIRECTS} redirects")
    finally:
        session.close()


def body(resp: requests.Response, size: int) -> Iterator[bytes]:
    """The body of ``resp`` as it arrives: each read returns what the socket has (at most
    ``size`` bytes) instead of waiting for ``size`` bytes, so whoever consumes it can stop
    between reads. (requests' ``iter_content`` waits for a whole chunk: a body trickling in
    a byte at a time held a cancel off until a mebibyte had come.)"""
    try:
        while data := resp.raw.read1(size, decode_content=True):
            yield data
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        raise EnvironmentFailure(f"GET {resp.url}: {exc}") from None


def _raise_for(resp: requests.Response, url: str) -> None:
    if resp.status_code == 410:
        raise Gone(f"GET {url}: the record was withdrawn (410 Gone)")
    if resp.status_code == 404:
        raise Gone(f"GET {url}: not found (404)")
    if resp.status_code >= 400:
        raise EnvironmentFailure(f"GET {url}: {resp.status_code} {resp.reason}")


def get_json(url: str, policy: Policy, *, accept: str = "application/json") -> Any:
    """A JSON document (at most 16 MiB)."""
    with get(url, policy, accept=accept) as resp:
        document = b""
        for chunk in body(resp, 1024 * 1024):
            document += chunk
            if len(document) > 16 * 1024**2:
                raise BadInput(f"GET {url}: the document is larger than 16 MiB")
        try:
            return json.loads(document)
        except ValueError:
            raise BadInput(f"GET {url}: not a JSON document") from None
