"""HTTP to one registry: addresses and schemes, retries with back-off, authentication.

Plain HTTP for ``localhost``, ``127.0.0.0/8`` and ``::1`` (as Docker does), HTTPS otherwise;
``http://HOST`` or ``https://HOST`` forces a scheme. One ``requests.Session`` keeps connections
alive; its ``HTTPAdapter`` is sized for ``workers`` parallel connections.

Failures: connection errors, time-outs, 429/5xx and answers that are not HTTP are retried
``retries`` times with exponential back-off, then raise :class:`RegistryUnavailable`. A 401 runs
the Basic or Bearer-token handshake (:mod:`gefreg.registry.auth`) with credentials found the
way Docker finds them (:mod:`gefreg.registry.credentials`); a login that does not work raises
:class:`AuthRefused` naming where the credentials came from. What the answers mean is the API
client's business (:mod:`gefreg.registry.client`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from gefreg import __version__
from gefreg.errors import BadInput
from gefreg.registry.auth import Authenticator
from gefreg.registry.credentials import CredentialSource, DockerCredentials
from gefreg.registry.errors import (
    DigestMismatch,
    RegistryRejected,
    RegistryUnavailable,
    rejected,
    summary,
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF = 5.0
MAX_MANIFEST = 4 * 1024**2  # what CNCF Distribution accepts: no manifest is larger
MAX_RETRY_AFTER = 10.0
USER_AGENT = f"gefreg/{__version__}"


Sent = Callable[[int], None] | None  # hears the bytes of an upload sent so far


class CountedFile:
    """A file to upload that reports the bytes sent so far (each attempt starts at 0)."""

    def __init__(self, path: Path, size: int, on_bytes: Callable[[int], None]) -> None:
        self.path, self.size, self.on_bytes = path, size, on_bytes

    @classmethod
    def of(cls, data: bytes | Path, on_bytes: Sent) -> bytes | Path | CountedFile:
        """``data`` as it is, or a file that reports its bytes when someone listens."""
        if on_bytes is None or not isinstance(data, Path):
            return data
        return cls(data, data.stat().st_size, on_bytes)

    def open(self) -> _CountingReader:
        self.on_bytes(0)
        return _CountingReader(open(self.path, "rb"), self.size, self.on_bytes)


class _CountingReader:
    """What requests streams: ``read`` in blocks, ``__len__`` for the Content-Length."""

    def __init__(self, fh: Any, size: int, on_bytes: Callable[[int], None]) -> None:
        self.fh, self.size, self.on_bytes, self.sent = fh, size, on_bytes, 0

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        chunk: bytes = self.fh.read(n)
        self.sent += len(chunk)
        if chunk:
            self.on_bytes(self.sent)
        return chunk

    def __enter__(self) -> _CountingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


@dataclass(frozen=True)
class Endpoint:
    scheme: str  # "http" | "https"
    host: str  # host[:port], IPv6 in brackets

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def __str__(self) -> str:
        return self.host


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1, with or without a port (``[::1]:5000``)."""
    name = host
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def parse_registry(registry: str) -> Endpoint:
    """``HOST[:PORT]`` or ``http(s)://HOST[:PORT]`` → scheme and host."""
    text = registry.strip()
    scheme = None
    for candidate in ("http", "https"):
        if text.lower().startswith(candidate + "://"):
            scheme, text = candidate, text[len(candidate) + 3 :]
    text = text.rstrip("/")
    if not text or re.search(r"[\s/?#@]", text):
        raise BadInput(
            f"not a registry address: {registry!r}",
            "write HOST[:PORT], e.g. 127.0.0.1:5000 or ghcr.io, optionally with "
            "http:// or https:// in front",
        )
    if text.count(":") > 1 and not text.startswith("["):
        text = f"[{text}]"  # a bare IPv6 address
    return Endpoint(scheme or ("http" if is_loopback(text) else "https"), text)


def _reason(exc: requests.RequestException | urllib3.exceptions.HTTPError) -> str:
    """The root cause of a transport failure, without urllib3's wrapping."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno:
        return errno.group(1).strip()
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError):
        return "timed out"
    if "RemoteDisconnected" in text:
        return "the connection closed without an answer"
    if "BadStatusLine" in text or "InvalidChunkLength" in text:
        return f"the answer is not valid HTTP ({type(exc).__name__})"
    return f"{type(exc).__name__}: {text[:200]}"


class Transport:
    """Requests to one registry with retries and authentication. Thread-safe."""

    def __init__(
        self,
        registry: str,
        *,
        timeout: float,
        retries: int,
        credentials: CredentialSource | None,
        workers: int,
        backoff: float,
    ) -> None:
        self.endpoint = parse_registry(registry)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.workers = max(1, workers)
        self.backoff = backoff
        self.auth = Authenticator(
            self.endpoint.host, credentials or DockerCredentials(), self.attempts
        )
        self._session = requests.Session()
        self._adapter = HTTPAdapter(
            pool_connections=4, pool_maxsize=max(self.workers, 10), max_retries=0
        )
        self._session.mount("http://", self._adapter)
        self._session.mount("https://", self._adapter)
        self._session.headers["User-Agent"] = USER_AGENT
        # Proxies and CA bundle are read once, not per request; ~/.netrc is never used.
        self._session.trust_env = False
        self._session.proxies.update(requests.utils.get_environ_proxies(self.endpoint.url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self._session.verify = bundle
        # HEADs to a plain-HTTP registry without proxy (the local one, where a HEAD takes well
        # under a millisecond) skip the Session layer, which would double the client's CPU.
        self.fast_head_ok = self.endpoint.scheme == "http" and not self._session.proxies

    def close(self) -> None:
        self._session.close()

    def url(self, repo: str, rest: str) -> str:
        return f"{self.endpoint.url}/v2/{repo}/{rest}"

    def absolute(self, location: str) -> str:
        """A ``Location`` the registry answered, as a full URL."""
        return urljoin(self.endpoint.url + "/", location)

    def next_link(self, resp: requests.Response) -> str | None:
        link = resp.links.get("next", {}).get("url")
        return urljoin(resp.url, link) if link else None

    def json(self, resp: requests.Response, what: str) -> Any:
        try:
            return json.loads(resp.content)
        except ValueError:
            raise RegistryUnavailable(
                f"{self.endpoint} answered {what} with something that "
                f"is not JSON: {resp.content[:80]!r}"
            ) from None

    def read_bounded(self, resp: requests.Response, limit: int | None, what: str) -> bytes:
        """A streamed answer's body, at most ``limit`` bytes (None: any); more is a registry
        fault, and is not read into memory."""
        chunks, size = [], 0
        with resp:
            for chunk in resp.iter_content(64 * 1024):
                size += len(chunk)
                if limit is not None and size > limit:
                    raise DigestMismatch(
                        f"{self.endpoint} sent more than the {limit} bytes {what} has; "
                        "stopped reading"
                    )
                chunks.append(chunk)
        return b"".join(chunks)

    def rejected(self, resp: requests.Response, what: str) -> RegistryRejected:
        return rejected(str(self.endpoint), resp, what)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        return float(min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF) * random.uniform(0.8, 1.2))

    def unavailable_hint(self) -> str:
        if is_loopback(self.endpoint.host):
            return (
                "start the embedded registry: gefreg registry serve (or point --registry / "
                "$GEFREG_REGISTRY at a running one)"
            )
        return "check the address (--registry / $GEFREG_REGISTRY), the network and any proxy"

    def send(
        self,
        method: str,
        url: str,
        need: str,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | Path | CountedFile | None = None,
        params: dict[str, str] | None = None,
        retries: int | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """A request with authentication (``need``: the scope, e.g. ``repo:pull``): answers
        401 challenges, at most twice. ``stream``: the body is read by the caller (who bounds
        it), not at once."""
        fetched: set[tuple[str, str, str]] = set()
        for _round in range(3):
            sent = self.auth.header(need)
            merged = dict(headers or {})
            if sent:
                merged["Authorization"] = sent
            resp = self.attempts(
                method,
                url,
                headers=merged,
                data=data,
                params=params,
                retries=retries,
                stream=stream,
            )
            if resp.status_code != 401:
                return resp
            self.auth.answer(resp, need, sent, fetched)
        raise self.auth.refused(
            f"{self.endpoint} kept answering 401 to {method} {self._path(url)} "
            f"with {self.auth.credential_text()}"
        )

    def attempts(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | Path | CountedFile | None = None,
        params: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        retries: int | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One request with bounded retries on transport failures, 429 and 5xx."""
        tries = (self.retries if retries is None else retries) + 1
        last, retry_after = "", None
        for attempt in range(tries):
            if attempt:
                time.sleep(self.delay(attempt, retry_after))
            retry_after = None
            try:
                resp = self._request(method, url, headers, data, params, auth, stream)
            except requests.exceptions.SSLError as exc:
                raise RegistryUnavailable(
                    f"TLS with {urlsplit(url).netloc} failed: {exc}",
                    f"if this registry speaks plain HTTP, write http://{self.endpoint.host}",
                ) from None
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                last = _reason(exc)
                continue
            if resp.status_code in RETRY_STATUSES:
                last = f"HTTP {resp.status_code}: {summary(resp)}"
                header = resp.headers.get("Retry-After", "")
                retry_after = float(header) if header.isdigit() else None
                continue
            return resp
        raise RegistryUnavailable(
            f"{self.endpoint.url} did not answer {method} {self._path(url)} "
            f"({tries} {'try' if tries == 1 else 'tries'}): {last[:300]}",
            self.unavailable_hint(),
        )

    def _request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None,
        data: bytes | Path | CountedFile | None,
        params: dict[str, str] | None,
        auth: tuple[str, str] | None,
        stream: bool = False,
    ) -> requests.Response:
        if (
            method == "HEAD"
            and self.fast_head_ok
            and params is None
            and url.startswith(self.endpoint.url + "/")
        ):
            return self._head_from_pool(url, headers)
        # A file is streamed from disk (afresh for every attempt), bytes are sent as they are.
        opened: Any
        if isinstance(data, CountedFile):
            opened = data.open()
        elif isinstance(data, Path):
            opened = open(data, "rb")  # noqa: SIM115
        else:
            opened = contextlib.nullcontext(data)
        with opened as body:
            return self._session.request(
                method,
                url,
                headers=headers,
                data=body,
                params=params,
                auth=auth,
                timeout=self.timeout,
                stream=stream,
            )

    def _head_from_pool(self, url: str, headers: dict[str, str] | None) -> requests.Response:
        """HEAD through the Session's own urllib3 pool (same kept-alive connections), as a
        requests.Response. Only for plain HTTP: no TLS, proxy, cookies or redirects involved."""
        parts = urlsplit(url)
        pool = self._adapter.poolmanager.connection_from_url(url)
        raw = pool.urlopen(
            "HEAD",
            parts.path + (f"?{parts.query}" if parts.query else ""),
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            retries=False,
            redirect=False,
            timeout=urllib3.Timeout(self.timeout),
            preload_content=True,
        )
        resp = requests.Response()
        resp.status_code = raw.status
        resp.headers = CaseInsensitiveDict(raw.headers)
        resp.reason = raw.reason or ""
        resp.url = url
        resp.raw = raw
        return resp

    def _path(self, url: str) -> str:
        parts = urlsplit(url)
        return parts.path if parts.netloc == self.endpoint.host else url.split("?", 1)[0]
