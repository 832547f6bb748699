"""What a TES ``url`` points at, and whether this server may fetch it.

Kinds: ``file`` (``file:///PATH`` or a bare absolute path: must lie under a data root),
``http`` (``http(s)://``), ``b2share`` (a record page or API URL on a configured B2SHARE host),
``doi`` (``doi:10.…`` or a doi.org URL) and ``hdl`` (``hdl:PREFIX/SUFFIX`` or an
hdl.handle.net URL). A checksum may ride in the fragment, as package indexes do:
``…#sha256=<hex>`` or ``…#md5=<hex>``; the staged file must match it.

Fetching is a request the server makes on a user's behalf, so a URL whose host resolves to a
loopback, private, link-local or otherwise reserved address is refused unless the operator
allowed that host (``--allow-host``): a task must not reach the instance's own network.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gefreg.errors import BadInput

CHECKSUM_RE = re.compile(r"^(sha256|md5)=([0-9a-fA-F]+)\Z")
CHECKSUM_LENGTH = {"sha256": 64, "md5": 32}
DOI_HOSTS = frozenset({"doi.org", "dx.doi.org"})
HANDLE_HOSTS = frozenset({"hdl.handle.net"})
B2SHARE_RECORD_RE = re.compile(r"^/(?:api/)?records/([A-Za-z0-9._-]{1,128})/?\Z")


class Forbidden(BadInput):
    """The request names something this server may not touch (HTTP 403)."""


@dataclass(frozen=True)
class Source:
    """A classified URL: ``target`` is the path (file), the URL without its fragment (http,
    b2share: the record id in ``record``), the DOI or the handle."""

    kind: str
    target: str
    checksum: str | None = None  # "sha256:<hex>" or "md5:<hex>"
    record: str | None = None
    host: str | None = None


def _checksum(fragment: str, url: str) -> str | None:
    if not fragment:
        return None
    m = CHECKSUM_RE.match(fragment)
    if not m or len(m.group(2)) != CHECKSUM_LENGTH[m.group(1)]:
        raise BadInput(
            f"url {url!r}: the fragment {fragment!r} is not a checksum",
            "write #sha256=<64 hex digits> or #md5=<32 hex digits>, or leave it out",
        )
    return f"{m.group(1)}:{m.group(2).lower()}"


def _file_path(url: str) -> str:
    if url.startswith("/"):
        return url
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise BadInput(f"url {url!r}: file URLs name this machine: file:///PATH")
    path = unquote(parts.path)
    if not path.startswith("/") or parts.query or parts.fragment:
        raise BadInput(f"url {url!r}: expected file:///ABSOLUTE/PATH")
    return path


def classify(url: str, b2share_hosts: frozenset[str] = frozenset()) -> Source:
    """The kind of ``url`` (BadInput for a scheme this server does not fetch)."""
    if "\x00" in url:
        raise BadInput("url: contains a NUL character")
    lower = url.lower()
    if lower.startswith("file:") or url.startswith("/"):
        return Source("file", _file_path(url))
    if lower.startswith("doi:"):
        return Source("doi", url[4:].strip("/"))
    if lower.startswith("hdl:"):
        return Source("hdl", url[4:].strip("/"))
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise BadInput(
            f"url {url[:200]!r}: this server stages file://, http(s)://, doi: and hdl: inputs",
            "copy the data under a data root or to a web server first",
        )
    host = parts.hostname.lower()
    checksum = _checksum(parts.fragment, url)
    plain = url.split("#", 1)[0]
    if host in DOI_HOSTS:
        return Source("doi", unquote(parts.path).strip("/"), checksum)
    if host in HANDLE_HOSTS:
        return Source("hdl", unquote(parts.path).strip("/"), checksum)
    record = B2SHARE_RECORD_RE.match(parts.path)
    if record and _origin(url) in b2share_hosts:
        return Source("b2share", plain, checksum, record.group(1), host)
    return Source("http", plain, checksum, None, host)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL (how B2SHARE hosts are configured)."""
    return _origin(url)


def under_root(path: Path, roots: tuple[Path, ...]) -> Path | None:
    """``path`` resolved (symlinks followed) when it lies within one of ``roots``."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return None
    for root in roots:
        if resolved == root or root in resolved.parents:
            return resolved
    return None


def local_path(path: str, roots: tuple[Path, ...], what: str) -> Path:
    """The resolved data-root path of a ``file`` source; Forbidden outside every root."""
    found = under_root(Path(path), roots)
    if found is None:
        raise Forbidden(
            f"{what}: {path} is not under a data root of this server",
            "use file:// paths under: " + ", ".join(str(r) for r in roots),
        )
    return found


def _blocked(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_host(url: str, allowed: frozenset[str]) -> None:
    """Forbidden when ``url``'s host is private/loopback/reserved and not allowed; BadInput
    when the name does not resolve."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in allowed or f"{host}:{parts.port}" in allowed:
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise BadInput(f"url {url[:200]!r}: cannot resolve {host!r}: {exc}") from None
    for info in infos:
        if _blocked(str(info[4][0])):
            raise Forbidden(
                f"url {url[:200]!r}: {host} is an address of the instance's own network "
                f"({info[4][0]}); this server does not fetch from there",
                "the operator may allow the host with gefreg serve --allow-host HOST",
            )
