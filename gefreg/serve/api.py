"""The TES 1.1 routes under ``/ga4gh/tes/v1``: service-info (public), and create, list, get
and cancel tasks (bearer token; creating and cancelling need a token that is not read-only).

A token sees the tasks of its owner (``gefreg token new --owner``); another owner's task is
"not found", never "forbidden", so task ids leak nothing. ``GET /tasks/{id}/record`` (not part
of TES) returns the run records of the task's executors.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gefreg import __version__
from gefreg.serve.admission import admit
from gefreg.serve.auth import bearer, writer
from gefreg.serve.store import TaskQuery, TaskRow, TaskStore
from gefreg.serve.tes_models import (
    TES_VERSION,
    ErrorResponse,
    TesCancelTaskResponse,
    TesCreateTaskResponse,
    TesListTasksResponse,
    TesServiceInfo,
    TesState,
    TesTask,
    TesTaskView,
    TesView,
)
from gefreg.serve.tokens import TokenEntry
from gefreg.serve.views import LIST_LOG_CAP, read_record, task_view

MAX_PAGE = 2047
MAX_TAG_FILTERS = 64  # each is a clause of the query (1,500 made SQLite give up: a 500)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "The request is not valid (the reason is in msg)"),
        (401, "No or an unknown bearer token"),
        (403, "The token or the request may not do this"),
        (404, "No such task (for this token)"),
    )
}
TOO_MANY: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorResponse,
        "description": "The owner has as many unfinished tasks as allowed",
    }
}


class Scheduler(Protocol):
    """What the API tells the workers (implemented by :mod:`gefreg.serve.worker`)."""

    def submitted(self) -> None:
        """A task was queued."""

    def cancel(self, task_id: str) -> None:
        """The task was asked to stop (its state is CANCELING or CANCELED already)."""


def new_task_id() -> str:
    return "task-" + secrets.token_hex(8)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def stored_document(task: TesTask) -> dict[str, Any]:
    """What is kept of a submitted task: its own fields, without the server's (id, state,
    logs, creation_time) and without backend parameters this server does not support."""
    doc = task.model_dump(mode="json", exclude_none=True)
    for key in ("id", "state", "logs", "creation_time"):
        doc.pop(key, None)
    if "resources" in doc:
        doc["resources"].pop("backend_parameters", None)
    return doc


def _tags(task: TesTask) -> dict[str, str]:
    return dict(task.tags or {})


def _visible(row: TaskRow | None, who: TokenEntry) -> TaskRow:
    if row is None or row.owner != who.owner:
        raise HTTPException(404, "no such task")
    return row


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="BearerAuth",
    description="A token made with `gefreg token new` (read-only tokens may not create or cancel)",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]


def _caller(request: Request, _: Credentials) -> TokenEntry:
    return bearer(request, request.app.state.gefreg.tokens)


def _writing(request: Request, _: Credentials) -> TokenEntry:
    return writer(bearer(request, request.app.state.gefreg.tokens))


Reader = Annotated[TokenEntry, Depends(_caller)]
Writer = Annotated[TokenEntry, Depends(_writing)]


def build_router(app_state: Any) -> APIRouter:
    """The TES routes; ``app_state`` holds config, store, tokens, scheduler and engines."""
    router = APIRouter(prefix="/ga4gh/tes/v1", responses=ERRORS)

    @router.get(
        "/service-info",
        response_model=TesServiceInfo,
        response_model_exclude_none=True,
        operation_id="GetServiceInfo",
        tags=["TaskService"],
    )
    def service_info() -> dict[str, Any]:
        """Who this instance is, and what it can reach (its data roots)."""
        config = app_state.config
        name, url = config.organization
        return {
            "id": "org.gefreg.tes",
            "name": "gefreg GEF instance",
            "type": {"group": "org.ga4gh", "artifact": "tes", "version": TES_VERSION},
            "description": (
                "Runs published releases of the catalog only, hardened, on data under the "
                "instance's data roots; one run record per executor."
            ),
            "organization": {"name": name, "url": url},
            "documentationUrl": "/",
            "environment": "production",
            "version": __version__,
            "storage": [root.as_uri() for root in config.data_roots],
            "tesResources_backend_parameters": [],
        }

    @router.post(
        "/tasks",
        response_model=TesCreateTaskResponse,
        operation_id="CreateTask",
        tags=["TaskService"],
        responses=TOO_MANY,
    )
    def create_task(task: TesTask, who: Writer) -> dict[str, str]:
        """Queue a task whose executors are catalog releases (400 otherwise)."""
        store: TaskStore = app_state.store
        allowed = app_state.config.max_unfinished
        if store.unfinished(who.owner) >= allowed:
            raise HTTPException(
                429,
                f"{who.owner} has {allowed} tasks queued or running, as many as this server "
                "allows (gefreg serve --max-unfinished); wait for some to finish",
            )
        plan = admit(app_state.config, app_state.engine(), task)
        task_id = new_task_id()
        store.create(
            task_id,
            owner=who.owner,
            name=task.name or "",
            created=now(),
            document=stored_document(task),
            plan=plan.to_json(),
            tags=_tags(task),
        )
        app_state.scheduler.submitted()
        return {"id": task_id}

    @router.get(
        "/tasks",
        response_model=TesListTasksResponse,
        response_model_exclude_none=True,
        operation_id="ListTasks",
        tags=["TaskService"],
    )
    def list_tasks(
        who: Reader,
        tag_key: Annotated[list[str], Query(default_factory=list)],
        tag_value: Annotated[list[str], Query(default_factory=list)],
        name_prefix: str = "",
        state: Annotated[TesState, Query()] = None,  # type: ignore[assignment]
        page_size: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 256,
        page_token: str = "",
        view: TesView = TesView.MINIMAL,
    ) -> dict[str, Any]:
        """The owner's tasks, newest first, a page at a time."""
        if len(tag_value) > len(tag_key):
            raise HTTPException(400, "more tag_value than tag_key parameters")
        if len(tag_key) > MAX_TAG_FILTERS:
            raise HTTPException(400, f"at most {MAX_TAG_FILTERS} tag_key parameters")
        values = tag_value + [""] * (len(tag_key) - len(tag_value))
        tags = tuple(zip(tag_key, values, strict=True))
        rows, token = app_state.store.page(
            TaskQuery(who.owner, state, name_prefix, tags, page_size, page_token or None)
        )
        out: dict[str, Any] = {"tasks": [task_view(r, view, LIST_LOG_CAP) for r in rows]}
        if token:
            out["next_page_token"] = token
        return out

    @router.get(
        "/tasks/{id}",
        response_model=TesTaskView,
        response_model_exclude_none=True,
        operation_id="GetTask",
        tags=["TaskService"],
    )
    def get_task(id: str, who: Reader, view: TesView = TesView.MINIMAL) -> dict[str, Any]:
        """One task, in the view asked for."""
        return task_view(_visible(app_state.store.get(id), who), view)

    _add_task_actions(router, app_state)
    return router


def _add_task_actions(router: APIRouter, app_state: Any) -> None:
    """Cancel, and the run records (not part of TES)."""

    @router.post(
        "/tasks/{id}:cancel",
        response_model=TesCancelTaskResponse,
        operation_id="CancelTask",
        tags=["TaskService"],
    )
    def cancel_task(id: str, who: Writer) -> dict[str, Any]:
        """Stop a task: a queued one at once, a running one by stopping its container."""
        row = _visible(app_state.store.get(id), who)
        store: TaskStore = app_state.store
        if store.set_state(row.id, TesState.CANCELED, only_from=[TesState.QUEUED]):
            return {}
        if store.set_state(
            row.id, TesState.CANCELING, only_from=[TesState.INITIALIZING, TesState.RUNNING]
        ):
            app_state.scheduler.cancel(row.id)
        return {}

    @router.get("/tasks/{id}/record", operation_id="GetTaskRunRecords", tags=["gefreg"])
    def run_records(id: str, who: Reader, executor: int | None = None) -> Any:
        """The run records of the task's executors (a list), or of one (``executor=N``)."""
        row = _visible(app_state.store.get(id), who)
        entries = row.log.get("executors") or []
        records = [read_record(e.get("record")) for e in entries]
        if executor is None:
            return [r for r in records if r is not None]
        if not 0 <= executor < len(records) or records[executor] is None:
            raise HTTPException(404, f"executor {executor} of {id} has no run record")
        return records[executor]
