"""The OCI Distribution (Docker Registry v2) API, as one thread-safe client for any conformant
registry (the embedded CNCF Distribution, Harbor, GHCR, Docker Hub). Requests go through
:class:`gefreg.registry.transport.Transport` (schemes, retries, authentication); this module
says what to ask and checks what comes back: names and digests before a request, every digest
against the bytes after one. Many HEADs are pipelined (:mod:`gefreg.registry.pipelining`) on
plain HTTP. An unexpected answer raises RegistryRejected with the registry's own error codes.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from gefreg.errors import BadInput
from gefreg.hashing import sha256_bytes
from gefreg.model import is_digest
from gefreg.registry.credentials import CredentialSource
from gefreg.registry.errors import (
    DigestMismatch,
    RegistryError,
    RegistryUnavailable,
    error_details,
)
from gefreg.registry.media_types import ACCEPT_MANIFESTS, MANIFEST_TYPES
from gefreg.registry.pipelining import pipelined_heads
from gefreg.registry.transport import MAX_MANIFEST, USER_AGENT, CountedFile, Sent, Transport

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
        self.http = Transport(
            registry,
            timeout=timeout,
            retries=retries,
            credentials=credentials,
            workers=workers,
            backoff=backoff,
        )
        self.endpoint = self.http.endpoint

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.endpoint.url!r})"

    def ping(self) -> None:
        """GET /v2/: the registry answers and accepts us (anonymously or logged in)."""
        resp = self.http.send("GET", self.endpoint.url + "/v2/", need="")
        if resp.status_code == 200:
            return
        if resp.status_code == 404:
            raise RegistryUnavailable(
                f"{self.endpoint.url} answers HTTP but not the registry API (GET /v2/ → 404)",
                self.http.unavailable_hint(),
            )
        raise self.http.rejected(resp, "GET /v2/")

    def blob_exists(self, repo: str, digest: str) -> bool:
        _check_repo(repo)
        _check_digest(digest)
        resp = self.http.send("HEAD", self.http.url(repo, f"blobs/{digest}"), need=f"{repo}:pull")
        if resp.status_code in (200, 307):
            return True
        if resp.status_code == 404:
            return False
        raise self.http.rejected(resp, f"HEAD blob {digest} in {repo}")

    def push_blob(self, repo: str, digest: str, data: bytes | Path, on_bytes: Sent = None) -> None:
        """Upload a blob unless present. Files are streamed from disk, never read whole.

        The registry checks the content against ``digest`` (Distribution answers
        DIGEST_INVALID otherwise); an upload cut off mid-way starts a new upload session.
        ``on_bytes`` hears the bytes of this blob sent so far (each attempt from 0)."""
        _check_repo(repo)
        _check_digest(digest)
        if isinstance(data, bytes) and sha256_bytes(data) != digest:
            raise BadInput(f"push_blob: the bytes given hash to {sha256_bytes(data)}, not {digest}")
        if self.blob_exists(repo, digest):
            return
        size = len(data) if isinstance(data, bytes) else data.stat().st_size
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        for attempt in range(self.http.retries + 1):
            location, params = self._start_upload(repo), {"digest": digest}
            try:  # retried here, with a new upload session each time
                resp = self.http.send(
                    "PUT",
                    location,
                    f"{repo}:push",
                    headers=headers,
                    data=CountedFile.of(data, on_bytes),
                    params=params,
                    retries=0,
                )
            except RegistryUnavailable:
                if attempt == self.http.retries:
                    raise
                time.sleep(self.http.delay(attempt + 1))
                continue
            if resp.status_code in (201, 204):
                reported = resp.headers.get("Docker-Content-Digest")
                if reported and reported != digest:
                    raise DigestMismatch(f"{self.endpoint} stored blob {digest} as {reported}")
                return
            lost = {e.code for e in error_details(resp)} & _UPLOAD_LOST
            if lost and attempt < self.http.retries:
                continue  # the upload session is gone (e.g. a registry restart): start again
            raise self.http.rejected(resp, f"PUT blob {digest} ({size} bytes) to {repo}")

    def mount_blob(self, repo: str, digest: str, source: str) -> bool:
        """Ask the registry to link a blob it holds in ``source`` into ``repo`` (cross-
        repository mount): no upload. False when it cannot, and the caller uploads instead."""
        _check_repo(repo)
        _check_repo(source)
        _check_digest(digest)
        resp = self.http.send(
            "POST",
            self.http.url(repo, "blobs/uploads/"),
            f"{repo}:push",
            headers={"Content-Length": "0"},
            params={"mount": digest, "from": source},
        )
        if resp.status_code == 201:
            return True
        location = resp.headers.get("Location")
        if resp.status_code == 202 and location:  # an upload session we do not need
            with contextlib.suppress(RegistryError):
                self.http.send("DELETE", self.http.absolute(location), f"{repo}:push", retries=0)
        return False

    def get_blob(self, repo: str, digest: str, max_bytes: int | None = None) -> bytes:
        """The blob's bytes, checked against ``digest``; more than ``max_bytes`` is refused."""
        _check_repo(repo)
        _check_digest(digest)
        url = self.http.url(repo, f"blobs/{digest}")
        resp = self.http.send("GET", url, f"{repo}:pull", stream=True)
        if resp.status_code != 200:
            raise self.http.rejected(resp, f"GET blob {digest} from {repo}")
        body = self.http.read_bounded(resp, max_bytes, f"blob {digest}")
        if sha256_bytes(body) != digest:
            raise DigestMismatch(
                f"{self.endpoint} sent blob {digest} of {repo} hashing to {sha256_bytes(body)}"
            )
        return body

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """Store ``body`` under a tag or digest; returns the digest, checked = sha256(body)."""
        _check_repo(repo)
        _check_reference(reference)
        expected = sha256_bytes(body)
        resp = self.http.send(
            "PUT",
            self.http.url(repo, f"manifests/{reference}"),
            f"{repo}:push",
            headers={"Content-Type": media_type},
            data=body,
        )
        if resp.status_code not in (200, 201, 202, 204):
            raise self.http.rejected(resp, f"PUT manifest {repo}:{reference}")
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
        resp = self.http.send(
            method,
            self.http.url(repo, f"manifests/{reference}"),
            f"{repo}:pull",
            headers={"Accept": ACCEPT_MANIFESTS},
            stream=method == "GET",
        )
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self.http.rejected(resp, f"{method} manifest {repo}:{reference}")
        return resp

    def get_manifest(self, repo: str, reference: str) -> Manifest | None:
        """The manifest or index under a tag or digest, exactly as stored; None if unknown."""
        resp = self._manifest_request("GET", repo, reference)
        if resp is None:
            return None
        body = self.http.read_bounded(resp, MAX_MANIFEST, f"a manifest ({repo}:{reference})")
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
        if digest and is_digest(digest):  # anything else: hash the manifest ourselves
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
        if self.http.fast_head_ok and len(rest) > 1:
            results.update(self._pipelined_manifest_heads(repo, rest))
            rest = [ref for ref in rest if ref not in results]  # left: ask the ordinary way
        workers = max(1, min(self.http.workers, len(rest)))
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
        sent = self.http.auth.header(f"{repo}:pull")
        if sent:
            headers["Authorization"] = sent
        answers = pipelined_heads(
            location.hostname or "",
            location.port or 80,
            list(paths),
            headers,
            connections=self.http.workers,
            timeout=self.http.timeout,
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
        url: str | None = self.http.url(repo, "tags/list")
        params = {"n": str(page_size)} if page_size else None
        tags: list[str] = []
        seen: set[str] = set()
        while url:
            resp = self.http.send("GET", url, f"{repo}:pull", params=params)
            if resp.status_code == 404 and not seen:
                return []
            if resp.status_code != 200:
                raise self.http.rejected(resp, f"GET tags of {repo}")
            seen.add(resp.url)
            doc = self.http.json(resp, f"the tag list of {repo}")
            page = doc.get("tags") if isinstance(doc, dict) else None
            tags.extend(str(t) for t in page or [])
            url, params = self.http.next_link(resp), None
            if url in seen:
                raise RegistryUnavailable(f"{self.endpoint} sent a tag page link that loops: {url}")
        return sorted(set(tags))

    def _start_upload(self, repo: str) -> str:
        resp = self.http.send(
            "POST",
            self.http.url(repo, "blobs/uploads/"),
            f"{repo}:push",
            headers={"Content-Length": "0"},
        )
        location = resp.headers.get("Location")
        if resp.status_code != 202 or not location:
            raise self.http.rejected(resp, f"POST blob upload to {repo}")
        return self.http.absolute(location)
