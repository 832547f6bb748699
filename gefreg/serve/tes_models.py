"""The GA4GH Task Execution Service 1.1 documents, field for field
(github.com/ga4gh/task-execution-schemas, openapi/task_execution_service.openapi.yaml at v1.1).

These types are the API's contract: FastAPI validates requests with them and derives the
served OpenAPI document from them, and a test compares that document with the published one.
Limits on lengths and counts are this server's own (TES lets a server choose them); a request
beyond them is refused with 400 before anything is stored.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

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


class TesView(StrEnum):
    MINIMAL = "MINIMAL"
    BASIC = "BASIC"
    FULL = "FULL"


class TesFileType(StrEnum):
    FILE = "FILE"
    DIRECTORY = "DIRECTORY"


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def optional(**constraints: Any) -> Any:
    """A field a document may leave out but never set to null: TES types are not nullable, so
    the served OpenAPI says plainly what TES says, and ``null`` is refused like any wrong type."""
    return Field(default=None, json_schema_extra=_no_default, **constraints)


class _Doc(BaseModel):
    """Unknown keys are dropped (TES: backends do not store what they do not support)."""

    model_config = ConfigDict(extra="ignore")


class TesInput(_Doc):
    name: Text = optional()
    description: Text = optional()
    url: Text = optional()
    path: Text
    type: TesFileType = optional()
    content: Annotated[str, Field(max_length=MAX_CONTENT)] = optional()
    streamable: bool = optional()


class TesOutput(_Doc):
    name: Text = optional()
    description: Text = optional()
    url: Text
    path: Text
    path_prefix: Text = optional()
    type: TesFileType = optional()


class TesResources(_Doc):
    cpu_cores: Annotated[int, Field(ge=-(2**31), le=2**31 - 1)] = optional()
    preemptible: bool = optional()
    ram_gb: Annotated[float, Field(allow_inf_nan=False)] = optional()
    disk_gb: Annotated[float, Field(allow_inf_nan=False)] = optional()
    zones: Annotated[list[Text], Field(max_length=MAX_ITEMS)] = optional()
    backend_parameters: dict[str, Text] = optional()
    backend_parameters_strict: bool = False


class TesExecutor(_Doc):
    image: Text
    command: Annotated[list[Text], Field(max_length=MAX_ARGS)]
    workdir: Text = optional()
    stdin: Text = optional()
    stdout: Text = optional()
    stderr: Text = optional()
    env: dict[str, Text] = optional()
    ignore_error: bool = optional()


class TesExecutorLog(_Doc):
    start_time: str = optional()
    end_time: str = optional()
    stdout: str = optional()
    stderr: str = optional()
    exit_code: int


class TesOutputFileLog(_Doc):
    url: str
    path: str
    size_bytes: str


class TesTaskLog(_Doc):
    logs: list[TesExecutorLog]
    metadata: dict[str, str] = optional()
    start_time: str = optional()
    end_time: str = optional()
    outputs: list[TesOutputFileLog]
    system_logs: list[str] = optional()


class TesTask(_Doc):
    """A task as submitted (``id``, ``state``, ``logs`` and ``creation_time`` are the
    server's: whatever a client sends there is ignored)."""

    id: str = optional()
    state: TesState = optional()
    name: Text = optional()
    description: Annotated[str, Field(max_length=64 * 1024)] = optional()
    inputs: Annotated[list[TesInput], Field(max_length=MAX_ITEMS)] = optional()
    outputs: Annotated[list[TesOutput], Field(max_length=MAX_ITEMS)] = optional()
    resources: TesResources = optional()
    executors: Annotated[list[TesExecutor], Field(max_length=16)]
    volumes: Annotated[list[Text], Field(max_length=MAX_ITEMS)] = optional()
    tags: dict[str, Text] = optional()
    logs: list[TesTaskLog] = optional()
    creation_time: str = optional()


class TesTaskView(TesTask):
    """A task as the server shows it: in the MINIMAL view only ``id`` and ``state``, so
    ``executors`` may be missing (TES 1.1 marks it required yet defines that view)."""

    id: str
    state: TesState
    executors: Annotated[list[TesExecutor], Field(max_length=16)] = optional()


class TesCreateTaskResponse(_Doc):
    id: str


class TesListTasksResponse(_Doc):
    tasks: list[TesTaskView]
    next_page_token: str = optional()


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
    description: str = optional()
    organization: ServiceOrganization
    contactUrl: str = optional()
    documentationUrl: str = optional()
    createdAt: str = optional()
    updatedAt: str = optional()
    environment: str = optional()
    version: str
    storage: list[str] = optional()
    tesResources_backend_parameters: list[str] = optional()


class ErrorResponse(_Doc):
    """The body of every 4xx/5xx answer (TES leaves errors to the implementation; this is the
    shape GA4GH WES uses)."""

    msg: str
    status_code: int
