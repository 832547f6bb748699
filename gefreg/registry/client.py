"""A client for the OCI Distribution (Docker Registry v2) HTTP API.

Works with any conformant registry: the embedded CNCF Distribution, Harbor, GHCR, Docker Hub.
One ``requests.Session`` keeps connections alive; an ``HTTPAdapter`` sized for ``workers``
parallel connections serves :meth:`RegistryClient.head_manifests`, which pipelines its HEADs
(:mod:`gefreg.registry.pipelining`) when the registry speaks plain HTTP. The client is thread-safe.

Transport: plain HTTP for ``localhost``, ``127.0.0.0/8`` and ``::1`` (as Docker does), HTTPS
otherwise; ``http://HOST`` or ``https://HOST`` forces a scheme.

Failures: connection errors, time-outs, 429/5xx and answers that are not HTTP are retried
``retries`` times with exponential back-off, then raise :class:`RegistryUnavailable`. A 401 runs
the Basic or Bearer-token handshake (:mod:`gefreg.registry.auth`) with credentials found the
way Docker finds them (:mod:`gefreg.registry.credentials`); a login that does not work raises
:class:`AuthRefused` naming where the credentials came from. Any other unexpected answer raises
:class:`RegistryRejected` carrying the registry's ``errors[].code/message``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
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
from gefreg.hashing import sha256_bytes
from gefreg.model import is_digest
from gefreg.registry.auth import Authenticator
from gefreg.registry.credentials import CredentialSource, DockerCredentials
from gefreg.registry.errors import (
    AuthRefused,
    DigestMismatch,
    ErrorDetail,
    RegistryError,
    RegistryRejected,
    RegistryUnavailable,
    error_details,
    rejected,
    summary,
)
from gefreg.registry.pipelining import pipelined_heads

__all__ = [
    "ACCEPT_MANIFESTS",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "AuthRefused",
    "CredentialSource",
    "DigestMismatch",
    "Endpoint",
    "ErrorDetail",
    "Manifest",
    "RegistryClient",
    "RegistryError",
    "RegistryRejected",
    "RegistryUnavailable",
    "parse_registry",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_TYPES)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF = 5.0
MAX_RETRY_AFTER = 10.0
USER_AGENT = f"gefreg/{__version__}"
_REPO = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_UPLOAD_LOST = frozenset({"BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"})


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


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


def _check_repo(repo: str) -> None:
    if not _REPO.fullmatch(repo):
        raise BadInput(
            f"not a valid repository name: {repo!r}",
            "lower-case letters, digits and . _ - separators, parts joined by /",
        )


def _check_digest(digest: str) -> None:
    if not is_digest(digest):
        raise BadInput(f"not a valid digest: {digest!r}", "expected sha256:<64 hex digits>")


def _check_reference(reference: str) -> None:
    if not (_TAG.fullmatch(reference) or is_digest(reference)):
        raise BadInput(f"not a valid tag or digest: {reference!r}")


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


class RegistryClient:
    """Talks to one registry. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        registry: str,
        *,
        timeout: float = 30,
        retries: int = 3,
        credentials: CredentialSource | None = None,
        workers: int = 16,
        backoff: float = 0.25,
    ) -> None:
        self.endpoint = parse_registry(registry)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.workers = max(1, workers)
        self.backoff = backoff
        self.auth = Authenticator(
            self.endpoint.host, credentials or DockerCredentials(), self._attempts
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
        self._fast_head_ok = self.endpoint.scheme == "http" and not self._session.proxies

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.endpoint.url!r})"

    # ----------------------------------------------------------------- the API

    def ping(self) -> None:
        """GET /v2/: the registry answers and accepts us (anonymously or logged in)."""
        resp = self._send("GET", self.endpoint.url + "/v2/", need="")
        if resp.status_code == 200:
            return
        if resp.status_code == 404:
            raise RegistryUnavailable(
                f"{self.endpoint.url} answers HTTP but not the registry API (GET /v2/ → 404)",
                self._unavailable_hint(),
            )
        raise self._rejected(resp, "GET /v2/")

    def blob_exists(self, repo: str, digest: str) -> bool:
        _check_repo(repo)
        _check_digest(digest)
        resp = self._send("HEAD", self._url(repo, f"blobs/{digest}"), need=f"{repo}:pull")
        if resp.status_code in (200, 307):
            return True
        if resp.status_code == 404:
            return False
        raise self._rejected(resp, f"HEAD blob {digest} in {repo}")

    def push_blob(self, repo: str, digest: str, data: bytes | Path) -> None:
        """Upload a blob unless present. Files are streamed from disk, never read whole.

        The registry checks the content against ``digest`` (Distribution answers
        DIGEST_INVALID otherwise); an upload cut off mid-way starts a new upload session.
        """
        _check_repo(repo)
        _check_digest(digest)
        if (
            isinstance(data, bytes)
            and digest.startswith("sha256:")
            and (sha256_bytes(data) != digest)
        ):
            raise BadInput(f"push_blob: the bytes given hash to {sha256_bytes(data)}, not {digest}")
        if self.blob_exists(repo, digest):
            return
        size = len(data) if isinstance(data, bytes) else data.stat().st_size
        need = f"{repo}:push"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        for attempt in range(self.retries + 1):
            location = self._start_upload(repo)
            try:
                resp = self._send(
                    "PUT",
                    location,
                    need,
                    headers=headers,
                    data=data,
                    params={"digest": digest},
                    retries=0,
                )
            except RegistryUnavailable:
                if attempt == self.retries:
                    raise
                time.sleep(self._delay(attempt + 1))
                continue
            if resp.status_code in (201, 204):
                reported = resp.headers.get("Docker-Content-Digest")
                if reported and reported != digest:
                    raise DigestMismatch(f"{self.endpoint} stored blob {digest} as {reported}")
                return
            lost = {e.code for e in error_details(resp)} & _UPLOAD_LOST
            if lost and attempt < self.retries:
                continue  # the upload session is gone (e.g. a registry restart): start again
            raise self._rejected(resp, f"PUT blob {digest} ({size} bytes) to {repo}")

    def mount_blob(self, repo: str, digest: str, source: str) -> bool:
        """Ask the registry to link a blob it holds in ``source`` into ``repo`` (cross-
        repository mount): no upload. False when it cannot, and the caller uploads instead."""
        _check_repo(repo)
        _check_repo(source)
        _check_digest(digest)
        resp = self._send(
            "POST",
            self._url(repo, "blobs/uploads/"),
            f"{repo}:push",
            headers={"Content-Length": "0"},
            params={"mount": digest, "from": source},
        )
        if resp.status_code == 201:
            return True
        location = resp.headers.get("Location")
        if resp.status_code == 202 and location:  # an upload session we do not need
            with contextlib.suppress(RegistryError):
                self._send(
                    "DELETE", urljoin(self.endpoint.url + "/", location), f"{repo}:push", retries=0
                )
        return False

    def get_blob(self, repo: str, digest: str) -> bytes:
        """The blob's bytes, checked against ``digest``."""
        _check_repo(repo)
        _check_digest(digest)
        resp = self._send("GET", self._url(repo, f"blobs/{digest}"), need=f"{repo}:pull")
        if resp.status_code != 200:
            raise self._rejected(resp, f"GET blob {digest} from {repo}")
        body = resp.content
        if sha256_bytes(body) != digest:
            raise DigestMismatch(
                f"{self.endpoint} sent blob {digest} of {repo} with content "
                f"hashing to {sha256_bytes(body)}"
            )
        return body

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """Store ``body`` under a tag or digest; returns the digest, checked = sha256(body)."""
        _check_repo(repo)
        _check_reference(reference)
        expected = sha256_bytes(body)
        resp = self._send(
            "PUT",
            self._url(repo, f"manifests/{reference}"),
            f"{repo}:push",
            headers={"Content-Type": media_type},
            data=body,
        )
        if resp.status_code not in (200, 201, 202, 204):
            raise self._rejected(resp, f"PUT manifest {repo}:{reference}")
        reported = resp.headers.get("Docker-Content-Digest") or expected
        if reported != expected:
            raise DigestMismatch(
                f"{self.endpoint} stored manifest {repo}:{reference} as "
                f"{reported}, but its bytes hash to {expected}"
            )
        return expected

    def _manifest_request(self, method: str, repo: str, reference: str) -> requests.Response | None:
        """GET or HEAD a manifest by tag or digest; None when the registry does not know it."""
        _check_repo(repo)
        _check_reference(reference)
        resp = self._send(
            method,
            self._url(repo, f"manifests/{reference}"),
            f"{repo}:pull",
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._rejected(resp, f"{method} manifest {repo}:{reference}")
        return resp

    def get_manifest(self, repo: str, reference: str) -> Manifest | None:
        """The manifest or index under a tag or digest, exactly as stored; None if unknown."""
        resp = self._manifest_request("GET", repo, reference)
        if resp is None:
            return None
        body = resp.content
        digest = sha256_bytes(body)
        claimed = reference if is_digest(reference) else resp.headers.get("Docker-Content-Digest")
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise DigestMismatch(
                f"{self.endpoint} sent manifest {repo}:{reference} as {claimed}"
                f", but its bytes hash to {digest}"
            )
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in MANIFEST_TYPES:
            with contextlib.suppress(ValueError, AttributeError):
                media_type = str(json.loads(body).get("mediaType") or media_type)
        return Manifest(digest, media_type, body)

    def head_manifest(self, repo: str, reference: str) -> str | None:
        """The digest a tag (or digest) points at, or None if unknown."""
        resp = self._manifest_request("HEAD", repo, reference)
        if resp is None:
            return None
        digest = resp.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        found = self.get_manifest(repo, reference)  # a registry that does not say: hash it
        return found.digest if found else None

    def head_manifests(self, repo: str, references: list[str]) -> dict[str, str | None]:
        """:meth:`head_manifest` for many references, ``workers`` at a time."""
        refs = list(dict.fromkeys(references))
        if not refs:
            return {}
        # The first one alone: it runs any auth handshake once instead of once per thread.
        results = {refs[0]: self.head_manifest(repo, refs[0])}
        rest = refs[1:]
        if self._fast_head_ok and len(rest) > 1:
            results.update(self._pipelined_manifest_heads(repo, rest))
            rest = [ref for ref in rest if ref not in results]  # left: ask the ordinary way
        workers = max(1, min(self.workers, len(rest)))
        # One share per thread, each looping on its own kept-alive connection: less
        # scheduling per request than one pool task per reference.
        shares = [rest[i::workers] for i in range(workers)]

        def run(share: list[str]) -> dict[str, str | None]:
            return {ref: self.head_manifest(repo, ref) for ref in share}

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for part in pool.map(run, shares):
                results.update(part)
        return {ref: results[ref] for ref in refs}

    def _pipelined_manifest_heads(self, repo: str, refs: list[str]) -> dict[str, str | None]:
        """The digests :mod:`gefreg.registry.pipelining` could settle: 200 with a digest, or 404.
        Anything else (401, 5xx, no answer) is left out for the ordinary path to handle."""
        _check_repo(repo)
        for ref in refs:
            _check_reference(ref)
        paths = {f"/v2/{repo}/manifests/{ref}": ref for ref in refs}
        location = urlsplit(self.endpoint.url)
        headers = {"Host": self.endpoint.host, "User-Agent": USER_AGENT, "Accept": ACCEPT_MANIFESTS}
        sent = self.auth.header(f"{repo}:pull")
        if sent:
            headers["Authorization"] = sent
        answers = pipelined_heads(
            location.hostname or "",
            location.port or 80,
            list(paths),
            headers,
            connections=self.workers,
            timeout=self.timeout,
        )
        settled: dict[str, str | None] = {}
        for path, answer in answers.items():
            digest = answer.headers.get("docker-content-digest")
            if answer.status == 200 and digest:
                settled[paths[path]] = digest
            elif answer.status == 404:
                settled[paths[path]] = None
        return settled

    def list_tags(self, repo: str, *, page_size: int | None = None) -> list[str]:
        """All tags of ``repo`` (sorted; [] if the repository is unknown), following the
        ``Link: <...>; rel="next"`` pages. ``page_size`` asks for ``n`` tags per page."""
        _check_repo(repo)
        url: str | None = self._url(repo, "tags/list")
        params = {"n": str(page_size)} if page_size else None
        tags: list[str] = []
        seen: set[str] = set()
        while url:
            resp = self._send("GET", url, f"{repo}:pull", params=params)
            if resp.status_code == 404 and not seen:
                return []
            if resp.status_code != 200:
                raise self._rejected(resp, f"GET tags of {repo}")
            seen.add(resp.url)
            doc = self._json(resp, f"the tag list of {repo}")
            page = doc.get("tags") if isinstance(doc, dict) else None
            tags.extend(str(t) for t in page or [])
            url, params = self._next_link(resp), None
            if url in seen:
                raise RegistryUnavailable(f"{self.endpoint} sent a tag page link that loops: {url}")
        return sorted(set(tags))

    def referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[dict[str, Any]] | None:
        """Descriptors of the manifests whose ``subject`` is ``digest`` (OCI 1.1 referrers
        API); None when the registry does not support the API (404, or not an image index)."""
        _check_repo(repo)
        _check_digest(digest)
        url: str | None = self._url(repo, f"referrers/{digest}")
        params = {"artifactType": artifact_type} if artifact_type else None
        found: list[dict[str, Any]] = []
        filtered = False
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            resp = self._send(
                "GET", url, f"{repo}:pull", headers={"Accept": OCI_INDEX}, params=params
            )
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise self._rejected(resp, f"GET referrers of {repo}@{digest}")
            try:
                doc = json.loads(resp.content)
            except ValueError:
                return None
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
            if (
                not isinstance(doc, dict)
                or not isinstance(doc.get("manifests"), list)
                or ((doc.get("mediaType") or ctype) != OCI_INDEX)
            ):
                return None
            found += [m for m in doc["manifests"] if isinstance(m, dict)]
            filtered |= "artifactType" in resp.headers.get("OCI-Filters-Applied", "")
            url, params = self._next_link(resp), None
        if artifact_type and not filtered:
            found = [m for m in found if m.get("artifactType") == artifact_type]
        return found

    # ----------------------------------------------------------------- plumbing

    def _url(self, repo: str, rest: str) -> str:
        return f"{self.endpoint.url}/v2/{repo}/{rest}"

    def _next_link(self, resp: requests.Response) -> str | None:
        link = resp.links.get("next", {}).get("url")
        return urljoin(resp.url, link) if link else None

    def _json(self, resp: requests.Response, what: str) -> Any:
        try:
            return json.loads(resp.content)
        except ValueError:
            raise RegistryUnavailable(
                f"{self.endpoint} answered {what} with something that "
                f"is not JSON: {resp.content[:80]!r}"
            ) from None

    def _start_upload(self, repo: str) -> str:
        resp = self._send(
            "POST",
            self._url(repo, "blobs/uploads/"),
            f"{repo}:push",
            headers={"Content-Length": "0"},
        )
        location = resp.headers.get("Location")
        if resp.status_code != 202 or not location:
            raise self._rejected(resp, f"POST blob upload to {repo}")
        return urljoin(self.endpoint.url + "/", location)

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

    def _delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        return float(min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF) * random.uniform(0.8, 1.2))

    def _path(self, url: str) -> str:
        parts = urlsplit(url)
        return parts.path if parts.netloc == self.endpoint.host else url.split("?", 1)[0]

    def _unavailable_hint(self) -> str:
        if is_loopback(self.endpoint.host):
            return (
                "start the embedded registry: gefreg registry serve (or point --registry / "
                "$GEFREG_REGISTRY at a running one)"
            )
        return "check the address (--registry / $GEFREG_REGISTRY), the network and any proxy"

    def _attempts(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | Path | None = None,
        params: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        retries: int | None = None,
    ) -> requests.Response:
        """One request with bounded retries on transport failures, 429 and 5xx."""
        tries = (self.retries if retries is None else retries) + 1
        last, retry_after = "", None
        for attempt in range(tries):
            if attempt:
                time.sleep(self._delay(attempt, retry_after))
            retry_after = None
            try:
                if (
                    method == "HEAD"
                    and self._fast_head_ok
                    and params is None
                    and url.startswith(self.endpoint.url + "/")
                ):
                    resp = self._head_from_pool(url, headers)
                else:
                    # A file is streamed from disk, bytes are sent as they are.
                    path = data if isinstance(data, Path) else None
                    body = None if isinstance(data, Path) else data
                    with open(path, "rb") if path else contextlib.nullcontext(body) as stream:
                        resp = self._session.request(
                            method,
                            url,
                            headers=headers,
                            data=stream,
                            params=params,
                            auth=auth,
                            timeout=self.timeout,
                        )
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
            self._unavailable_hint(),
        )

    def _send(
        self,
        method: str,
        url: str,
        need: str,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | Path | None = None,
        params: dict[str, str] | None = None,
        retries: int | None = None,
    ) -> requests.Response:
        """A request with authentication: answers 401 challenges, at most twice."""
        fetched: set[tuple[str, str, str]] = set()
        for _round in range(3):
            sent = self.auth.header(need)
            merged = dict(headers or {})
            if sent:
                merged["Authorization"] = sent
            resp = self._attempts(
                method, url, headers=merged, data=data, params=params, retries=retries
            )
            if resp.status_code != 401:
                return resp
            self.auth.answer(resp, need, sent, fetched)
        raise self.auth.refused(
            f"{self.endpoint} kept answering 401 to {method} {self._path(url)} "
            f"with {self.auth.credential_text()}"
        )

    def _rejected(self, resp: requests.Response, what: str) -> RegistryRejected:
        return rejected(str(self.endpoint), resp, what)
