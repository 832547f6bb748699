"""A stored task as TES shows it: MINIMAL (id and state), BASIC (everything but executor
stdout/stderr, input ``content`` and system logs) or FULL.

Executor logs are read from the run's log files when asked for (FULL): what the runner kept,
under the run's own log limit (``resources.logs``), with its note on what it dropped. A page
of tasks carries at most LIST_LOG_CAP of each log (TES lets a server shorten them; a FULL list
of 2,047 tasks would otherwise hold gigabytes of logs in one answer); one task, up to LOG_CAP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gefreg.serve.store import TaskRow
from gefreg.serve.tes_models import TesView

API_PREFIX = "/ga4gh/tes/v1"
LOG_CAP = 64 * 1024**2  # what one answer carries at most (the runner keeps 10 MiB by default)
LIST_LOG_CAP = 64 * 1024  # of each log, per task in a list


def read_log(path: str | None, cap: int = LOG_CAP, where: str = "") -> str | None:
    """A log file's text (UTF-8, undecodable bytes replaced), at most ``cap`` bytes of it;
    ``where`` says where to find the rest."""
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            data = fh.read(cap + 1)
            size = Path(path).stat().st_size
    except OSError:
        return None
    text = data[:cap].decode("utf-8", "replace")
    if size > cap:
        rest = where or "the run's log file has them all"
        text += f"\n[gefreg: {size - cap} more bytes not shown; {rest}]\n"
    return text


def log_note(record: Mapping[str, Any] | None, stream: str) -> str | None:
    """What the runner's capture left out of a stream (its cap, a cut at the timeout)."""
    facts = ((record or {}).get("logs") or {}).get(stream) or {}
    parts = []
    if facts.get("dropped"):
        parts.append(
            f"truncated: {facts['dropped']} bytes dropped beyond the run's log limit of "
            f"{facts.get('limit')} bytes"
        )
    if facts.get("cut"):
        parts.append("the capture was stopped when the run's time was up")
    return "; ".join(parts) or None


def read_record(path: str | None) -> Any:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def log_notes(record_path: str | None) -> dict[str, str | None]:
    """The runner's notes on both logs, read from the run record once (kept with the task,
    so views need not parse every run record again)."""
    record = read_record(record_path)
    return {key: log_note(record, key) for key in ("stdout", "stderr")}


def executor_log(entry: dict[str, Any], full: bool, cap: int = LOG_CAP) -> dict[str, Any]:
    """TES ``tesExecutorLog``: stdout and stderr (FULL view) are the run's captured logs,
    capped by the runner as every run's are (``resources.logs``), with its note when it
    dropped anything."""
    code = entry.get("exit_code")
    out: dict[str, Any] = {"exit_code": -1 if code is None else code}
    for key in ("start_time", "end_time"):
        if entry.get(key):
            out[key] = entry[key]
    if full:
        notes = entry.get("notes") or log_notes(entry.get("record"))
        where = "" if cap == LOG_CAP else "GET the task for up to 64 MiB"
        for key in ("stdout", "stderr"):
            text = read_log(entry.get(f"{key}_log"), cap, where)
            note = notes.get(key)
            if text is not None:
                out[key] = text + (f"\n[gefreg: {note}]\n" if note else "")
    return out


def metadata(row: TaskRow) -> dict[str, str]:
    """Links to the run records, the releases that ran, and every staged input file with its
    size and sha256 (``staged.N``)."""
    meta: dict[str, str] = {}
    for number, staged in enumerate(row.log.get("staged") or []):
        source = f" from {staged['url']}" if staged.get("url") else " (content)"
        cached = ", cached" if staged.get("cached") else ""
        meta[f"staged.{number}"] = (
            f"{staged['path']}: {staged['size']} bytes, {staged['sha256']}{source}{cached}"
        )
    for number, entry in enumerate(row.log.get("executors") or []):
        meta[f"release.{number}"] = str(entry.get("release", ""))
        if entry.get("record"):
            meta[f"run_record.{number}"] = f"{API_PREFIX}/tasks/{row.id}/record?executor={number}"
    return meta


def task_log(row: TaskRow, full: bool, cap: int = LOG_CAP) -> dict[str, Any] | None:
    log = row.log
    if not log:
        return None
    started = [e for e in log.get("executors") or [] if e.get("started")]
    out: dict[str, Any] = {
        "logs": [executor_log(e, full, cap) for e in started],
        "outputs": list(log.get("outputs") or []),
        "metadata": metadata(row),
    }
    for key in ("start_time", "end_time"):
        if log.get(key):
            out[key] = log[key]
    if full:
        out["system_logs"] = list(log.get("system_logs") or [])
    return out


def task_view(row: TaskRow, view: TesView, log_cap: int = LOG_CAP) -> dict[str, Any]:
    """The task in ``view``; executor logs (FULL) cut at ``log_cap`` bytes each."""
    if view is TesView.MINIMAL:
        return {"id": row.id, "state": row.state.value}
    doc = dict(row.document)
    doc.update(id=row.id, state=row.state.value, creation_time=row.created)
    if view is not TesView.FULL and doc.get("inputs"):
        doc["inputs"] = [{k: v for k, v in i.items() if k != "content"} for i in doc["inputs"]]
    log = task_log(row, view is TesView.FULL, log_cap)
    if log is not None:
        doc["logs"] = [log]
    return doc
