"""Tasks in SQLite, so that they survive the server: one row per task, its document, what
admission decided (the plan) and the log so far, all as JSON, plus its tags for filtering.

Every thread uses its own connection (WAL mode; writers wait for each other up to 30 s). A
worker takes the oldest queued task with one conditional UPDATE, so two workers never take the
same task. Lists are newest first; a page token is the position of the last task of the page.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.errors import BadInput, EnvironmentFailure
from gefreg.serve.tes_models import TesState

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    created TEXT NOT NULL,
    document TEXT NOT NULL,
    plan TEXT NOT NULL,
    log TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, seq);
CREATE INDEX IF NOT EXISTS tasks_owner ON tasks (owner, seq);
CREATE TABLE IF NOT EXISTS task_tags (
    seq INTEGER NOT NULL REFERENCES tasks (seq),
    key TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS task_tags_key ON task_tags (key, value, seq);
"""

ACTIVE = (TesState.INITIALIZING, TesState.RUNNING, TesState.CANCELING)


@dataclass(frozen=True)
class TaskRow:
    seq: int
    id: str
    owner: str
    name: str
    state: TesState
    created: str
    document: dict[str, Any]
    plan: dict[str, Any]
    log: dict[str, Any]


@dataclass(frozen=True)
class TaskQuery:
    """What ``GET /tasks`` asked for (``owner`` None: every owner)."""

    owner: str | None = None
    state: TesState | None = None
    name_prefix: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    page_size: int = 256
    page_token: str | None = None


def _row(r: sqlite3.Row) -> TaskRow:
    return TaskRow(
        seq=int(r["seq"]),
        id=str(r["id"]),
        owner=str(r["owner"]),
        name=str(r["name"]),
        state=TesState(r["state"]),
        created=str(r["created"]),
        document=json.loads(r["document"]),
        plan=json.loads(r["plan"]),
        log=json.loads(r["log"]),
    )


def _dump(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def parse_page_token(token: str | None) -> int | None:
    if token is None or token == "":
        return None
    if not token.isascii() or not token.isdigit() or len(token) > 18:
        raise BadInput(f"page_token {token[:40]!r}: not a token this server gave out")
    return int(token)


class TaskStore:
    """The task table of one server (``path``: the SQLite file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db().executescript(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise EnvironmentFailure(f"cannot open the task store {self.path}: {exc}") from None
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def create(
        self,
        task_id: str,
        *,
        owner: str,
        name: str,
        created: str,
        document: Mapping[str, Any],
        plan: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> None:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO tasks (id, owner, name, state, created, document, plan, log) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task_id,
                    owner,
                    name,
                    TesState.QUEUED.value,
                    created,
                    _dump(document),
                    _dump(plan),
                    "{}",
                ),
            )
            db.executemany(
                "INSERT INTO task_tags (seq, key, value) VALUES (?, ?, ?)",
                [(cur.lastrowid, k, v) for k, v in tags.items()],
            )

    def get(self, task_id: str) -> TaskRow | None:
        r = self._db().execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if r is None else _row(r)

    def page(self, query: TaskQuery) -> tuple[list[TaskRow], str | None]:
        """One page, newest first, and the token of the next page (None on the last)."""
        where: list[str] = ["1 = 1"]
        args: list[Any] = []
        after = parse_page_token(query.page_token)
        if after is not None:
            where.append("seq < ?")
            args.append(after)
        if query.owner is not None:
            where.append("owner = ?")
            args.append(query.owner)
        if query.state is not None:
            where.append("state = ?")
            args.append(query.state.value)
        if query.name_prefix:
            where.append("substr(name, 1, ?) = ?")
            args += [len(query.name_prefix), query.name_prefix]
        for key, value in query.tags:
            clause = "EXISTS (SELECT 1 FROM task_tags t WHERE t.seq = tasks.seq AND t.key = ?"
            args.append(key)
            if value:
                clause += " AND t.value = ?"
                args.append(value)
            where.append(clause + ")")
        sql = f"SELECT * FROM tasks WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"
        rows = [_row(r) for r in self._db().execute(sql, (*args, query.page_size + 1))]
        more = len(rows) > query.page_size
        rows = rows[: query.page_size]
        return rows, (str(rows[-1].seq) if more and rows else None)

    def claim_next(self) -> TaskRow | None:
        """The oldest queued task, now INITIALIZING (None when nothing waits)."""
        with self._tx() as db:
            r = db.execute(
                "SELECT * FROM tasks WHERE state = ? ORDER BY seq LIMIT 1", (TesState.QUEUED.value,)
            ).fetchone()
            if r is None:
                return None
            db.execute(
                "UPDATE tasks SET state = ? WHERE seq = ?",
                (TesState.INITIALIZING.value, r["seq"]),
            )
        row = _row(r)
        return TaskRow(**{**row.__dict__, "state": TesState.INITIALIZING})

    def set_state(
        self, task_id: str, state: TesState, *, only_from: Sequence[TesState] | None = None
    ) -> bool:
        """Move the task to ``state`` (when it is in one of ``only_from``); True if it moved."""
        sql, args = "UPDATE tasks SET state = ? WHERE id = ?", [state.value, task_id]
        if only_from is not None:
            sql += f" AND state IN ({', '.join('?' * len(only_from))})"
            args += [s.value for s in only_from]
        with self._tx() as db:
            return db.execute(sql, args).rowcount == 1

    def update_log(self, task_id: str, log: Mapping[str, Any]) -> None:
        with self._tx() as db:
            db.execute("UPDATE tasks SET log = ? WHERE id = ?", (_dump(log), task_id))

    def finish(self, task_id: str, state: TesState, log: Mapping[str, Any]) -> TesState:
        """The final state and log together (a reader never sees one without the other). A
        task someone cancelled meanwhile ends CANCELED, whatever the worker thought."""
        with self._tx() as db:
            r = db.execute("SELECT state FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if r is not None and r["state"] in (TesState.CANCELING.value, TesState.CANCELED.value):
                state = TesState.CANCELED
            db.execute(
                "UPDATE tasks SET state = ?, log = ? WHERE id = ?",
                (state.value, _dump(log), task_id),
            )
        return state

    def active(self) -> list[TaskRow]:
        marks = ", ".join("?" * len(ACTIVE))
        sql = f"SELECT * FROM tasks WHERE state IN ({marks}) ORDER BY seq"
        return [_row(r) for r in self._db().execute(sql, [s.value for s in ACTIVE])]

    def count(self, state: TesState | None = None) -> int:
        if state is None:
            return int(self._db().execute("SELECT count(*) FROM tasks").fetchone()[0])
        sql = "SELECT count(*) FROM tasks WHERE state = ?"
        return int(self._db().execute(sql, (state.value,)).fetchone()[0])

    def unfinished(self, owner: str) -> int:
        """How many tasks of ``owner`` are queued or under way."""
        states = (TesState.QUEUED, *ACTIVE)
        marks = ", ".join("?" * len(states))
        sql = f"SELECT count(*) FROM tasks WHERE owner = ? AND state IN ({marks})"
        found = self._db().execute(sql, (owner, *(s.value for s in states))).fetchone()
        return int(found[0])
