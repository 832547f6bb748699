"""Who is asking: a bearer token from the token file (API), or a web session made by logging
in with one (pages). Anonymous callers may read the catalog and the service-info, nothing else.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from fastapi import HTTPException, Request

from gefreg.serve.tokens import TokenEntry, TokenFile

SESSION_COOKIE = "gefreg_session"
SESSION_SECONDS = 12 * 3600


def unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": 'Bearer realm="gefreg"'})


def bearer(request: Request, tokens: TokenFile) -> TokenEntry:
    """The token of an API request; 401 when there is none or it is not known."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise unauthorized("this endpoint needs a bearer token (Authorization: Bearer TOKEN)")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("expected Authorization: Bearer TOKEN")
    entry = tokens.find(token.strip())
    if entry is None:
        raise unauthorized("unknown token")
    return entry


def writer(entry: TokenEntry) -> TokenEntry:
    if entry.read_only:
        raise HTTPException(403, "this token is read-only: it may list and read tasks only")
    return entry


@dataclass
class _Session:
    entry: TokenEntry
    expires: float


class Sessions:
    """Web log-ins, in memory: the cookie holds a random session id, never the token. A
    restart logs everybody out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}

    def open(self, entry: TokenEntry) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
            self._sessions[sid] = _Session(entry, now + SESSION_SECONDS)
        return sid

    def find(self, sid: str | None) -> TokenEntry | None:
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None or session.expires < time.monotonic():
                return None
            return session.entry

    def close(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._sessions.pop(sid, None)
