"""The web catalog served live: the catalog pages (as ``gefreg site`` writes them, read fresh
from the catalog on every request), the SBOM and CWL of each version, and — after logging in
with a token — the tasks of its owner. HTML only, no script needed; every answer carries a
strict Content-Security-Policy (scripts and styles from this server only)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gefreg.catalog.entries import named_entry
from gefreg.serve import pages
from gefreg.serve.auth import SESSION_COOKIE, SESSION_SECONDS, Sessions
from gefreg.serve.catalog_view import (
    CatalogView,
    EntryView,
    FactsSource,
    SignatureSource,
    VersionView,
)
from gefreg.serve.store import TaskQuery
from gefreg.serve.tes_models import TesView
from gefreg.serve.tokens import TokenEntry
from gefreg.serve.views import task_view

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def add_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for key, value in HEADERS.items():
            response.headers.setdefault(key, value)
        return response


class WebState:
    def __init__(self, app_state: Any) -> None:
        self.app = app_state
        self.sessions = Sessions()
        self.facts = FactsSource(app_state.config.settings, self._cwl)
        self.signatures = SignatureSource(app_state.config.settings)

    def _cwl(self, name: str, version: str) -> str | None:
        from gefreg.serve.site import cwl_text

        return cwl_text(self.app.config.settings, self.app.engine(), name, version)

    def catalog(self) -> CatalogView:
        return CatalogView(self.app.config.settings, self.facts, self.signatures)

    def who(self, request: Request) -> TokenEntry | None:
        entry = self.sessions.find(request.cookies.get(SESSION_COOKIE))
        if entry is not None and not self.app.tokens.known(entry):
            return None  # the token was deleted from the file since
        return entry


def _entry(web: WebState, name: str) -> EntryView:
    folder = named_entry(web.app.config.settings.catalog, name)
    if folder is None:
        raise HTTPException(404, f"no entry {name!r} in this catalog")
    return web.catalog().entry(folder)


def _version(web: WebState, name: str, version: str) -> VersionView:
    for view in _entry(web, name).versions:
        if view.version == version:
            return view
    raise HTTPException(404, f"{name} has no published version {version!r}")


def build_web(app_state: Any) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    web = WebState(app_state)

    def live(request: Request) -> dict[str, Any]:
        who = web.who(request)
        return {"live": True, "who": who.owner if who else None}

    @router.get("/", response_class=HTMLResponse)
    @router.get("/index.html", response_class=HTMLResponse)
    def index(request: Request, q: str = "") -> str:
        return pages.index_page(web.catalog().entries(), q[:200], **live(request))

    @router.get("/entries/{name}/", response_class=HTMLResponse)
    @router.get("/entries/{name}/index.html", response_class=HTMLResponse)
    def entry(request: Request, name: str) -> str:
        return pages.entry_page(_entry(web, name), **live(request))

    @router.get("/entries/{name}/{version}/", response_class=HTMLResponse)
    @router.get("/entries/{name}/{version}/index.html", response_class=HTMLResponse)
    def version(request: Request, name: str, version: str) -> str:
        return pages.version_page(_version(web, name, version), **live(request))

    @router.get("/entries/{name}/{version}/sbom.json")
    def sbom(name: str, version: str) -> Response:
        found = _version(web, name, version).facts.sbom
        if found is None:
            raise HTTPException(404, f"no SBOM of {name} {version} in the registry")
        return Response(found, media_type="application/json")

    @router.get("/entries/{name}/{version}/{file}.cwl")
    def cwl(name: str, version: str, file: str) -> Response:
        found = _version(web, name, version).facts.cwl
        if found is None or file != name:
            raise HTTPException(404, f"no CWL tool for {name} {version}")
        return Response(found, media_type="text/yaml; charset=utf-8")

    @router.get("/static/{file}")
    def static(file: str) -> Response:
        try:
            data = pages.static_file(file)
        except KeyError:
            raise HTTPException(404, "no such file") from None
        kind = "text/css" if file.endswith(".css") else "text/javascript"
        return Response(data, media_type=f"{kind}; charset=utf-8")

    add_task_pages(router, web, live)
    return router


def add_task_pages(
    router: APIRouter, web: WebState, live: Callable[[Request], dict[str, Any]]
) -> None:
    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> str:
        return pages.login_page(**live(request))

    @router.post("/login", response_model=None)
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
        entry = web.app.tokens.find((form.get("token") or [""])[0].strip())
        if entry is None:
            html = pages.login_page(message="Unknown token.", **live(request))
            return HTMLResponse(html, status_code=401)
        response = RedirectResponse("/tasks", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            web.sessions.open(entry),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    def logout(request: Request) -> Response:
        web.sessions.close(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @router.get("/tasks", response_class=HTMLResponse, response_model=None)
    def tasks(request: Request) -> Response:
        who = web.who(request)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        rows, _ = web.app.store.page(TaskQuery(owner=who.owner, page_size=200))
        return HTMLResponse(pages.tasks_page(rows, **live(request)))

    @router.get("/tasks/{task_id}", response_class=HTMLResponse, response_model=None)
    def task(request: Request, task_id: str) -> Response:
        who = web.who(request)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        row = web.app.store.get(task_id)
        if row is None or row.owner != who.owner:
            raise HTTPException(404, "no such task")
        doc = json.loads(json.dumps(task_view(row, TesView.FULL)))
        return HTMLResponse(pages.task_page(doc, **live(request)))
