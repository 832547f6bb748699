"""The GEF instance as one ASGI application: the TES API, the web catalog, and the workers,
started and stopped with the application (FastAPI lifespan)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gefreg import __version__
from gefreg.engine import Engine
from gefreg.errors import BadInput, GefregError
from gefreg.serve.api import Scheduler, build_router
from gefreg.serve.body_limit import BodyLimit
from gefreg.serve.config import ServeConfig
from gefreg.serve.store import TaskStore
from gefreg.serve.tokens import TokenFile
from gefreg.serve.urls import Forbidden

MAX_BODY = 8 * 1024**2


class NoScheduler:
    """Tasks stay queued (for tests of the API alone)."""

    def submitted(self) -> None:
        pass

    def cancel(self, task_id: str) -> None:
        pass


class AppState:
    """What the routes share. Engines are per thread: the docker SDK's session is not meant
    to be shared between threads."""

    def __init__(
        self, config: ServeConfig, engine_factory: Callable[[], Engine] | None = None
    ) -> None:
        self.config = config
        self.tokens = TokenFile(config.tokens)
        self.store = TaskStore(config.database)
        self.scheduler: Scheduler = NoScheduler()
        self._local = threading.local()
        self._connect = engine_factory or (lambda: Engine.connect(timeout=60))

    def engine(self) -> Engine:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = self._connect()
            self._local.engine = engine
        return engine


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"msg": message, "status_code": status}, status, headers=headers)


def _describe(exc: GefregError) -> str:
    return exc.message + (f" (hint: {exc.hint})" if exc.hint else "")


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:10]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {error.get('msg')}")
    return "; ".join(parts) or "the request is not valid"


def add_handlers(app: FastAPI) -> None:
    @app.exception_handler(Forbidden)
    async def forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return _error(403, _describe(exc))

    @app.exception_handler(BadInput)
    async def bad_input(_: Request, exc: BadInput) -> JSONResponse:
        return _error(400, _describe(exc))

    @app.exception_handler(GefregError)
    async def failure(_: Request, exc: GefregError) -> JSONResponse:
        return _error(503 if exc.exit_code == 3 else 400, _describe(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers) if exc.headers else None
        if not request.url.path.startswith("/ga4gh/"):
            from gefreg.serve.pages import error_page

            html = error_page(exc.status_code, str(exc.detail), live=True)
            return HTMLResponse(html, exc.status_code, headers=headers)
        return _error(exc.status_code, str(exc.detail), headers)


def create_app(
    config: ServeConfig,
    *,
    start_workers: bool = True,
    engine_factory: Callable[[], Engine] | None = None,
) -> FastAPI:
    """The application. ``start_workers`` False leaves tasks queued (API tests);
    ``engine_factory`` gives the API its engines (a fake in unit tests)."""
    from gefreg.serve.web import build_web, security_headers

    state = AppState(config, engine_factory)
    workers: Any = None
    if start_workers:
        from gefreg.serve.worker import Workers

        workers = Workers(config, state.store)
        state.scheduler = workers

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if workers is not None:
            workers.start()
        try:
            yield
        finally:
            if workers is not None:
                workers.stop()

    app = FastAPI(
        title="gefreg GEF instance: GA4GH Task Execution Service",
        version=__version__,
        description="GA4GH TES 1.1 for the releases of one gefreg catalog.",
        lifespan=lifespan,
        docs_url="/ga4gh/tes/v1/docs",
        openapi_url="/ga4gh/tes/v1/openapi.json",
        redoc_url=None,
    )
    app.state.gefreg = state
    add_handlers(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    security_headers(app)
    app.include_router(build_router(state))
    app.include_router(build_web(state))
    return app
