"""Bearer tokens for the GEF instance, kept in a file that holds only their hashes.

One JSON object per line: ``{"id", "sha256", "owner", "read_only", "created"}``. A token is
``gefreg_`` followed by 43 URL-safe characters (256 random bits); because it is that random, a
plain SHA-256 is the right hash (a slow password hash protects guessable secrets, not these),
and it lets the server find a token in constant time. The token itself is shown once, when it
is made, and stored nowhere.

``owner`` groups tokens: tasks belong to the owner of the token that created them, and every
token of that owner (read-only ones too) sees them. By default each token is its own owner.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from gefreg.errors import BadInput, InvalidRecord, Problem

PREFIX = "gefreg_"
OWNER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


@dataclass(frozen=True)
class TokenEntry:
    """What the file knows about one token (never the token)."""

    id: str
    sha256: str
    owner: str
    read_only: bool
    created: str

    def to_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")) + "\n"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def check_owner(owner: str) -> str:
    if not owner or len(owner) > 64 or not set(owner) <= OWNER_CHARS:
        raise BadInput(
            f"--owner {owner!r}: expected 1 to 64 letters, digits or . _ @ -",
            "for example --owner alice@example.org",
        )
    return owner


def new_token(
    path: Path, *, read_only: bool = False, owner: str | None = None
) -> tuple[str, TokenEntry]:
    """Append a new token's entry to ``path`` (created with mode 0600) and return the token."""
    existing = read_tokens(path) if path.exists() else []
    taken = {e.id for e in existing}
    token_id = secrets.token_hex(4)
    while token_id in taken:
        token_id = secrets.token_hex(4)
    token = PREFIX + secrets.token_urlsafe(32)
    entry = TokenEntry(
        id=token_id,
        sha256=token_hash(token),
        owner=check_owner(owner) if owner is not None else token_id,
        read_only=read_only,
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise BadInput(f"cannot write the token file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        if fh.tell() > 0 and not path.read_bytes().endswith(b"\n"):
            fh.write("\n")
        fh.write(entry.to_line())
        fh.flush()
        os.fsync(fh.fileno())
    return token, entry


def _entry(data: object, path: Path, number: int) -> TokenEntry:
    fields = ("id", "sha256", "owner", "read_only", "created")
    if not isinstance(data, dict) or set(data) != set(fields):
        raise ValueError(f"expected an object with exactly the keys {', '.join(fields)}")
    entry = TokenEntry(**data)
    if not isinstance(entry.sha256, str) or len(entry.sha256) != 64:
        raise ValueError("sha256: expected 64 hex digits")
    int(entry.sha256, 16)
    if not isinstance(entry.read_only, bool):
        raise ValueError("read_only: expected true or false")
    if not isinstance(entry.owner, str) or not isinstance(entry.id, str):
        raise ValueError("id and owner: expected text")
    check_owner(entry.owner)
    return entry


def read_tokens(path: Path) -> list[TokenEntry]:
    """Every entry of the file; any malformed line is an error naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(
            f"token file {path} does not exist",
            f"make a token first: gefreg token new --tokens {path}",
        ) from None
    except OSError as exc:
        raise BadInput(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    entries, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(_entry(json.loads(line), path, number))
        except (ValueError, TypeError, BadInput) as exc:
            problems.append(
                Problem(path, number, None, "", f"not a token entry: {exc}", "gefreg token new")
            )
    if problems:
        raise InvalidRecord(problems)
    return entries


class TokenFile:
    """The server's view of the token file, re-read when it changes (so a token added with
    ``gefreg token new`` works at once, and a deleted line stops working)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._by_hash: dict[str, TokenEntry] = {}
        self._reload()

    def _reload(self) -> None:
        st = self.path.stat()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        entries = read_tokens(self.path)
        self._by_hash = {e.sha256: e for e in entries}
        self._stamp = stamp

    def known(self, entry: TokenEntry) -> bool:
        """Whether ``entry`` is still in the file (a web session ends when its line goes)."""
        with self._lock:
            with contextlib.suppress(OSError, BadInput):
                self._reload()
            return self._by_hash.get(entry.sha256) == entry

    def find(self, token: str) -> TokenEntry | None:
        """The entry of ``token``, or None. A file that became unreadable keeps the last good
        view (and the server logs nothing secret)."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        with self._lock:
            with contextlib.suppress(OSError, BadInput):
                self._reload()
            digest = token_hash(token)
            entry = self._by_hash.get(digest)
        if entry is None or not hmac.compare_digest(entry.sha256, digest):
            return None
        return entry
