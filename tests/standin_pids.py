"""A stand-in on loopback for the services persistent identifiers lead to: a B2SHARE instance
(``/api/records/ID``, ``/api/files/BUCKET/KEY``, landing pages ``/records/ID``), a DOI resolver
answering DataCite JSON (``/doi/10.…``), the Handle API (``/api/handles/…``) and plain files
(``/files/…``), in the shapes those services use. Records: ``rec1`` (two files), ``badsum``
(a file whose MD5 in the record is wrong) and ``gone`` (withdrawn: 410). Every request is
counted, so tests can see what was fetched."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FILES = {
    "a.txt": b"alpha from a B2SHARE record\n",
    "sub/b.txt": b"beta, one folder down\n",
    "data.txt": b"plain data over http\n",
    "bad.txt": b"these bytes do not match the record\n",
}


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StandIn:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def record(self, record: str) -> dict[str, Any] | None:
        def entry(key: str, checksum: str | None = None) -> dict[str, Any]:
            data = FILES[key]
            return {
                "bucket": f"bucket-{record}",
                "key": key,
                "size": len(data),
                "checksum": f"md5:{checksum or md5(data)}",
                "ePIC_PID": f"http://hdl.handle.net/11304/{record}-{md5(key.encode())[:8]}",
            }

        files = {
            "rec1": [entry("a.txt"), entry("sub/b.txt")],
            "badsum": [entry("bad.txt", checksum=md5(b"something else"))],
        }.get(record)
        if files is None:
            return None
        return {
            "id": record,
            "metadata": {"DOI": f"10.5555/{record}", "titles": [{"title": f"Record {record}"}]},
            "files": files,
            "links": {"self": f"{self.url}/api/records/{record}"},
        }

    def datacite(self, doi: str) -> dict[str, Any] | None:
        if doi == "10.5555/rec1":
            return {
                "doi": doi,
                "url": f"{self.url}/records/rec1",
                "types": {"resourceTypeGeneral": "Dataset"},
            }
        if doi == "10.5555/plain":
            return {
                "doi": doi,
                "url": "https://publisher.example.org/landing/plain",
                "contentUrl": [f"{self.url}/files/data.txt"],
            }
        return None

    def handle(self, handle: str) -> dict[str, Any] | None:
        if handle != "21.T5555/plain":
            return None
        return {
            "responseCode": 1,
            "handle": handle,
            "values": [
                {
                    "index": 1,
                    "type": "URL",
                    "data": {"format": "string", "value": f"{self.url}/files/data.txt"},
                },
                {
                    "index": 2,
                    "type": "CHECKSUM",
                    "data": {"format": "string", "value": md5(FILES["data.txt"])},
                },
            ],
        }

    # A router: one branch per route of the stand-in services, flat on purpose.
    def answer(self, path: str) -> tuple[int, str, bytes, dict[str, str]]:  # noqa: C901
        """(status, content type, body, extra headers) for a GET of ``path``."""
        self.hits[path] += 1
        if path.startswith("/api/records/"):
            record = path.rsplit("/", 1)[-1]
            if record == "gone":
                body = {"status": 410, "message": "PID has been deleted."}
                return 410, "application/json", json.dumps(body).encode(), {}
            found = self.record(record)
            if found is None:
                return 404, "application/json", b'{"status": 404}', {}
            return 200, "application/json", json.dumps(found).encode(), {}
        if path.startswith("/api/files/"):
            key = path.split("/", 4)[4]
            if key in FILES:
                return 200, "application/octet-stream", FILES[key], {}
        if path.startswith("/files/") and path[7:] in FILES:
            return 200, "text/plain", FILES[path[7:]], {}
        if path.startswith("/doi/"):
            meta = self.datacite(path[5:])
            if meta is not None:
                return 200, "application/vnd.datacite.datacite+json", json.dumps(meta).encode(), {}
        if path.startswith("/api/handles/"):
            found_handle = self.handle(path[len("/api/handles/") :])
            if found_handle is not None:
                return 200, "application/json", json.dumps(found_handle).encode(), {}
        if path == "/redirect/data":
            return 302, "text/plain", b"", {"Location": "/files/data.txt"}
        if path == "/redirect/metadata-service":
            return 302, "text/plain", b"", {"Location": "http://169.254.169.254/latest/meta-data"}
        if path.startswith("/records/"):
            return 200, "text/html", b"<html><body>landing page</body></html>", {}
        return 404, "text/plain", b"not found", {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, kind, body, extra = standin.answer(self.path.split("?", 1)[0])
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                status, kind, _body, extra = standin.answer(self.path.split("?", 1)[0])
                self.send_response(status)
                for key, value in {"Content-Type": kind, **extra}.items():
                    self.send_header(key, value)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
