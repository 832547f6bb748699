"""The GA4GH Task Execution Service 1.1 documents, field for field
(github.com/ga4gh/task-execution-schemas, openapi/task_execution_service.openapi.yaml at v1.1).

These types are the API's contract: FastAPI validates requests with them and derives the
served OpenAPI document from them, and a test compares that document with the published one.
Limits on lengths and counts are this server's own (TES lets a server choose them); a request
beyond them is refused with 400 before anything is stored.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

TES_VERSION = "1.1.0"
MAX_TEXT = 4096
MAX_CONTENT = 1024 * 1024  # tesInput.content: TES asks for at least 128 KiB
MAX_ITEMS = 256
MAX_ARGS = 1024

Text = Annotated[str, Field(max_length=MAX_TEXT)]


class TesState(StrEnum):
    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    EXECUTOR_ERROR = "EXECUTOR_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    CANCELED = "CANCELED"
    PREEMPTED = "PREEMPTED"
    CANCELING = "CANCELING"


FINAL_STATES = frozenset(
    {
        TesState.COMPLETE,
        TesState.EXECUTOR_ERROR,
        TesState.SYSTEM_ERROR,
        TesState.CANCELED,
        TesState.PREEMPTED,
    }
)


class TesView(StrEnum):
    MINIMAL = "MINIMAL"
    BASIC = "BASIC"
    FULL = "FULL"


class TesFileType(StrEnum):
    FILE = "FILE"
    DIRECTORY = "DIRECTORY"


class _Doc(BaseModel):
    """Unknown keys are dropped (TES: backends do not store what they do not support)."""

    model_config = ConfigDict(extra="ignore")


class TesInput(_Doc):
    name: Text | None = None
    description: Text | None = None
    url: Text | None = None
    path: Text
    type: TesFileType | None = None
    content: Annotated[str, Field(max_length=MAX_CONTENT)] | None = None
    streamable: bool | None = None


class TesOutput(_Doc):
    name: Text | None = None
    description: Text | None = None
    url: Text
    path: Text
    path_prefix: Text | None = None
    type: TesFileType | None = None


class TesResources(_Doc):
    cpu_cores: Annotated[int, Field(ge=-(2**31), le=2**31 - 1)] | None = None
    preemptible: bool | None = None
    ram_gb: Annotated[float, Field(allow_inf_nan=False)] | None = None
    disk_gb: Annotated[float, Field(allow_inf_nan=False)] | None = None
    zones: Annotated[list[Text], Field(max_length=MAX_ITEMS)] | None = None
    backend_parameters: dict[str, Text] | None = None
    backend_parameters_strict: bool | None = False


class TesExecutor(_Doc):
    image: Text
    command: Annotated[list[Text], Field(max_length=MAX_ARGS)]
    workdir: Text | None = None
    stdin: Text | None = None
    stdout: Text | None = None
    stderr: Text | None = None
    env: dict[str, Text] | None = None
    ignore_error: bool | None = None


class TesExecutorLog(_Doc):
    start_time: str | None = None
    end_time: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int


class TesOutputFileLog(_Doc):
    url: str
    path: str
    size_bytes: str


class TesTaskLog(_Doc):
    logs: list[TesExecutorLog]
    metadata: dict[str, str] | None = None
    start_time: str | None = None
    end_time: str | None = None
    outputs: list[TesOutputFileLog]
    system_logs: list[str] | None = None


class TesTask(_Doc):
    """A task as submitted (``id``, ``state``, ``logs`` and ``creation_time`` are the
    server's: whatever a client sends there is ignored)."""

    id: str | None = None
    state: TesState | None = None
    name: Text | None = None
    description: Annotated[str, Field(max_length=64 * 1024)] | None = None
    inputs: Annotated[list[TesInput], Field(max_length=MAX_ITEMS)] | None = None
    outputs: Annotated[list[TesOutput], Field(max_length=MAX_ITEMS)] | None = None
    resources: TesResources | None = None
    executors: Annotated[list[TesExecutor], Field(max_length=16)]
    volumes: Annotated[list[Text], Field(max_length=MAX_ITEMS)] | None = None
    tags: dict[str, Text] | None = None
    logs: list[TesTaskLog] | None = None
    creation_time: str | None = None


class TesTaskView(TesTask):
    """A task as the server shows it: in the MINIMAL view only ``id`` and ``state``, so
    ``executors`` may be missing (TES 1.1 marks it required yet defines that view)."""

    id: str
    state: TesState
    executors: Annotated[list[TesExecutor], Field(max_length=16)] | None = None  # type: ignore[assignment]


class TesCreateTaskResponse(_Doc):
    id: str


class TesListTasksResponse(_Doc):
    tasks: list[TesTaskView]
    next_page_token: str | None = None


class TesCancelTaskResponse(_Doc):
    pass


class ServiceOrganization(_Doc):
    name: str
    url: str


class TesServiceType(_Doc):
    group: str
    artifact: str
    version: str


class TesServiceInfo(_Doc):
    id: str
    name: str
    type: TesServiceType
    description: str | None = None
    organization: ServiceOrganization
    contactUrl: str | None = None
    documentationUrl: str | None = None
    createdAt: str | None = None
    updatedAt: str | None = None
    environment: str | None = None
    version: str
    storage: list[str] | None = None
    tesResources_backend_parameters: list[str] | None = None


class ErrorResponse(_Doc):
    """The body of every 4xx/5xx answer (TES leaves errors to the implementation; this is the
    shape GA4GH WES uses)."""

    msg: str
    status_code: int
