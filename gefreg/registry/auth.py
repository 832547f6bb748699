"""Registry authentication: ``WWW-Authenticate`` challenges and the bearer-token cache.

A registry answers 401 with a challenge. ``Basic realm=...`` wants the user's password on every
request; ``Bearer realm=URL,service=S,scope=SCOPE`` wants a token from URL (the Docker token
specification): ``GET URL?service=S&scope=SCOPE`` with basic credentials if any (anonymous
otherwise), or ``POST`` an OAuth2 refresh-token grant when the user has an identity token.
Tokens are cached per (realm, service, scope) until shortly before they expire.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlencode

from gefreg.registry.credentials import Credentials, CredentialSource
from gefreg.registry.errors import AuthRefused, RegistryUnavailable, rejected, summary

if TYPE_CHECKING:
    import requests

# RFC 7235: a scheme, then comma-separated auth-params `name=token` or `name="quoted string"`.
_PARAM = re.compile(
    r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?\s*,?'
)
DEFAULT_TOKEN_LIFE = 60.0  # seconds, when the token service does not say (the spec's default)
EARLY = 10.0  # refresh this many seconds before a token expires


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic", ...
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scope(self) -> str:
        return self.params.get("scope", "")

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.realm, self.service, self.scope)


def parse_challenges(header: str) -> list[Challenge]:
    """All challenges in a ``WWW-Authenticate`` value (quoted values may contain commas)."""
    found: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while pos < len(header):
        match = _PARAM.match(header, pos)
        if not match or match.end() == pos:
            break
        pos = match.end()
        name, value = match.group(1), match.group(2)
        if value is None:
            found.append((name.lower(), {}))
        elif found:
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            found[-1][1][name.lower()] = value
    return [Challenge(scheme, params) for scheme, params in found]


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float

    def fresh(self, now: float | None = None) -> bool:
        return (now if now is not None else time.monotonic()) < self.expires_at - EARLY


class TokenCache:
    """Bearer tokens per challenge (realm, service, scope), and which scope a request needs.

    A request "need" is the repository and whether it writes; the first 401 for a need teaches
    which scope the registry wants, so later requests send the right token up front.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], Token] = {}
        self._scopes: dict[str, tuple[str, str, str]] = {}

    def for_need(self, need: str) -> Token | None:
        with self._lock:
            key = self._scopes.get(need)
            token = self._tokens.get(key) if key is not None else None
        return token if token is not None and token.fresh() else None

    def get(self, challenge: Challenge) -> Token | None:
        with self._lock:
            token = self._tokens.get(challenge.key)
        return token if token is not None and token.fresh() else None

    def put(self, need: str, challenge: Challenge, token: Token) -> None:
        with self._lock:
            self._tokens[challenge.key] = token
            self._scopes[need] = challenge.key

    def remember(self, need: str, challenge: Challenge) -> None:
        with self._lock:
            self._scopes[need] = challenge.key

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)


class Fetch(Protocol):
    """The client's retrying request function (no authentication of its own)."""

    def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        auth: tuple[str, str] | None = None,
    ) -> requests.Response: ...


class Authenticator:
    """Answers one registry's 401 challenges; thread-safe.

    Credentials are looked up once, at the first challenge: an anonymous registry never
    triggers a credential helper.
    """

    def __init__(self, host: str, source: CredentialSource, fetch: Fetch) -> None:
        self.host = host
        self.source = source
        self._fetch = fetch
        self._creds: Credentials | None = None
        self._loaded = False
        self._lock = threading.Lock()
        self._use_basic = False
        self.tokens = TokenCache()

    def header(self, need: str) -> str | None:
        """The Authorization value to send up front for a request ``need`` ("repo:pull")."""
        if self._use_basic:
            creds = self.credentials()
            if creds is not None and creds.username is not None:
                pair = f"{creds.username}:{creds.password or ''}".encode()
                return "Basic " + base64.b64encode(pair).decode()
        token = self.tokens.for_need(need)
        return f"Bearer {token.value}" if token else None

    def answer(
        self,
        resp: requests.Response,
        need: str,
        sent: str | None,
        fetched: set[tuple[str, str, str]],
    ) -> None:
        """Prepare the retry of a request that got 401, or raise AuthRefused.

        ``sent`` is the Authorization value the request carried; ``fetched`` the challenges
        a token was fetched for during this request (a fresh token refused is final).
        """
        header = resp.headers.get("WWW-Authenticate", "")
        challenges = parse_challenges(header)
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        if bearer is not None:
            if bearer.key in fetched:
                raise self.refused(
                    f"{self.host} refused the token {bearer.realm} issued for scope "
                    f"{bearer.scope or '(none)'} with {self.credential_text()}: {summary(resp)}"
                )
            cached = self.tokens.get(bearer)
            if cached is not None and f"Bearer {cached.value}" != sent:
                self.tokens.remember(need, bearer)
                return
            self.tokens.put(need, bearer, self.fetch_token(bearer))
            fetched.add(bearer.key)
            return
        if any(c.scheme == "basic" for c in challenges):
            creds = self.credentials()
            if creds is None or creds.username is None:
                raise self.refused(
                    f"{self.host} asks for a login (HTTP Basic) and no username/password was "
                    f"found in {self.source.describe()}"
                )
            if sent is not None and sent.startswith("Basic "):
                raise self.refused(
                    f"{self.host} refused the username/password from {creds.source}: "
                    f"{summary(resp)}"
                )
            self._use_basic = True
            return
        raise self.refused(
            f"{self.host} answered 401 without a challenge gefreg understands "
            f"(WWW-Authenticate: {header!r}): {summary(resp)}"
        )

    def fetch_token(self, challenge: Challenge) -> Token:
        """A token from the challenge's realm: OAuth2 refresh grant with an identity token,
        else GET with basic credentials (or anonymously)."""
        creds = self.credentials()
        scopes = challenge.scope.split()
        if creds is not None and creds.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "service": challenge.service,
                "client_id": "gefreg",
                "scope": " ".join(scopes),
            }
            resp = self._fetch(
                "POST",
                challenge.realm,
                data=urlencode(form).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        else:
            query = [("service", challenge.service)] if challenge.service else []
            query += [("scope", s) for s in scopes]
            separator = "&" if "?" in challenge.realm else "?"
            url = challenge.realm + (separator + urlencode(query) if query else "")
            basic = creds is not None and creds.username is not None
            auth = (creds.username or "", creds.password or "") if creds and basic else None
            resp = self._fetch("GET", url, auth=auth)
        if resp.status_code in (401, 403):
            raise self.refused(
                f"the token service {challenge.realm} refused {self.credential_text()} for "
                f"scope {challenge.scope or '(none)'}: {summary(resp)}"
            )
        if resp.status_code != 200:
            raise rejected(self.host, resp, f"a token from {challenge.realm}")
        try:
            doc = json.loads(resp.content)
        except ValueError:
            doc = None
        value = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise RegistryUnavailable(
                f"the token service {challenge.realm} answered without a token: "
                f"{resp.content[:80]!r}"
            )
        life = doc.get("expires_in") if isinstance(doc, dict) else None
        seconds = float(life) if isinstance(life, int | float) and life > 0 else DEFAULT_TOKEN_LIFE
        return Token(value, time.monotonic() + seconds)

    def credentials(self) -> Credentials | None:
        with self._lock:
            if not self._loaded:
                self._creds = self.source.lookup(self.host)
                self._loaded = True
            return self._creds

    def credential_text(self) -> str:
        """Which credentials were tried, for messages."""
        creds = self.credentials() if self._loaded else None
        if creds is None:
            return f"no credentials (looked in {self.source.describe()})"
        who = f"user {creds.username!r}" if creds.username else "an identity token"
        return f"{who} from {creds.source}"

    def refused(self, message: str) -> AuthRefused:
        return AuthRefused(
            message,
            f"log in with `docker login {self.host}`, or set GEFREG_REGISTRY_USER and "
            "GEFREG_REGISTRY_PASSWORD",
        )
