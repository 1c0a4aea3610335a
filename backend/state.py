"""The backend's persistent state, in SQLite by default or PostgreSQL (SQLAlchemy Core).

Tables (schema version :data:`SCHEMA_VERSION`, kept in ``schema_version``):

``projects``        one row per Label Studio project: the last pull's watermark, the model
                    version, the snapshot (the merged :class:`~galton.connectors.PulledProject`)
                    and the last :class:`~galton.backend.review.Review`, both pickled and
                    compressed (this is galton's own private state; never point it at a
                    database others can write);
``task_results``    per task what galton last wrote to Label Studio: the prediction result,
                    score and ``meta.galton`` (the baseline of the next job's diff);
``jobs``            one row per background job: kind, status, reason, times, counts, error;
``worker_history``  the rater table of each successful job (one row per worker and question).

SQLite runs in WAL mode with ``synchronous=NORMAL`` and a busy timeout, so the HTTP
threads read while a job writes. Several backend processes may share one PostgreSQL
database; the per-project job queue is per process, so with several processes run the
webhook jobs in one of them (``GALTON_WORKER_THREADS`` applies per process).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import pickle
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = ["SCHEMA_VERSION", "ProjectState", "StateError", "StateStore"]

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1

metadata = sa.MetaData()
schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.String(40), nullable=False),
)
projects = sa.Table(
    "projects", metadata,
    sa.Column("project_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("model_version", sa.String(200)),
    sa.Column("watermark", sa.String(40)),
    sa.Column("config_xml", sa.Text),
    sa.Column("snapshot", sa.LargeBinary),
    sa.Column("review", sa.LargeBinary),
    sa.Column("n_tasks", sa.Integer, nullable=False, default=0),
    sa.Column("updated_at", sa.String(40), nullable=False),
)
task_results = sa.Table(
    "task_results", metadata,
    sa.Column("project_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("task_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("result", sa.Text, nullable=False),
    sa.Column("score", sa.Float),
    sa.Column("meta", sa.Text),
    sa.Column("updated_at", sa.String(40), nullable=False),
)
jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, nullable=False, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("status", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("started_at", sa.String(40)),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("detail", sa.Text),
    sa.Column("error", sa.Text),
)
worker_history = sa.Table(
    "worker_history", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, nullable=False, index=True),
    sa.Column("job_id", sa.Integer),
    sa.Column("question", sa.String(200), nullable=False),
    sa.Column("worker", sa.String(200), nullable=False),
    sa.Column("row", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.String(40), nullable=False),
)


class StateError(RuntimeError):
    """The state database cannot be used (wrong schema version, unreachable server)."""


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _pack(value: Any) -> bytes:
    return zlib.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), 1)


def _unpack(blob: bytes | None) -> Any:
    return None if blob is None else pickle.loads(zlib.decompress(blob))


@dataclass(frozen=True)
class ProjectState:
    """A project as the last successful job left it."""

    project_id: int
    model_version: str | None
    watermark: str | None
    snapshot: Any  # PulledProject
    review: Any  # Review
    written: Mapping[int, tuple[str, float | None, str | None]]  # task -> (result json, score, meta json)


class StateStore:
    """Open (and create or check) the state database at ``url``.

    Parameters
    ----------
    url : str
        A SQLAlchemy URL: ``sqlite:///path.sqlite3`` (the folder is created),
        ``sqlite://`` (in memory, for tests) or ``postgresql+psycopg://user@host/db``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"future": True}
        is_sqlite = url.startswith("sqlite")
        if is_sqlite:
            path = sa.engine.make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            else:
                kwargs["poolclass"] = sa.pool.StaticPool  # one shared in-memory database
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = sa.create_engine(url, **kwargs)
        if is_sqlite:
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(connection: Any, _record: Any) -> None:
                cursor = connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()
        self._migrate()

    def __repr__(self) -> str:
        return f"StateStore({sa.engine.make_url(self.url).render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def _migrate(self) -> None:
        try:
            metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                found = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
                if found is None:
                    conn.execute(schema_version.insert().values(version=SCHEMA_VERSION, applied_at=now_iso()))
                elif found != SCHEMA_VERSION:
                    raise StateError(f"the state database has schema version {found}, this galton expects "
                                     f"{SCHEMA_VERSION}; point GALTON_STATE_URL at a new database or upgrade galton")
        except sa.exc.OperationalError as error:
            raise StateError(f"cannot open the state database: {error.__class__.__name__}") from None

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar())

    # ------------------------------------------------------------------ projects
    def load(self, project_id: int) -> ProjectState | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(projects).where(projects.c.project_id == project_id)).first()
            if row is None:
                return None
            written = {
                int(r.task_id): (r.result, r.score, r.meta)
                for r in conn.execute(sa.select(task_results.c.task_id, task_results.c.result, task_results.c.score,
                                                task_results.c.meta).where(task_results.c.project_id == project_id))
            }
        return ProjectState(project_id, row.model_version, row.watermark, _unpack(row.snapshot), _unpack(row.review),
                            written)

    def has_project(self, project_id: int) -> bool:
        """Whether a job committed this project's state (a cheap query; :meth:`load` reads it all)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(projects.c.project_id).where(
                projects.c.project_id == project_id)).first() is not None

    def project_ids(self) -> list[int]:
        with self.engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(sa.select(projects.c.project_id))]

    def model_versions(self, project_id: int | None = None) -> list[str]:
        query = sa.select(projects.c.model_version).where(projects.c.model_version.is_not(None))
        if project_id is not None:
            query = query.where(projects.c.project_id == project_id)
        with self.engine.connect() as conn:
            return sorted({r[0] for r in conn.execute(query)})

    def commit(self, project_id: int, *, snapshot: Any, review: Any, watermark: str | None,
               written: Mapping[int, tuple[str, float | None, str | None]], job_id: int | None = None,
               worker_rows: Iterable[Mapping[str, Any]] = ()) -> None:
        """Store a job's outcome in one transaction (call only after the write-back succeeded)."""
        stamp = now_iso()
        values = {"model_version": review.model_version, "watermark": watermark, "config_xml": snapshot.config.xml,
                  "snapshot": _pack(snapshot),
                  "review": _pack(replace(review, results={})),  # the fits stay in memory only
                  "n_tasks": len(snapshot.tasks), "updated_at": stamp}
        with self.engine.begin() as conn:
            done = conn.execute(projects.update().where(projects.c.project_id == project_id).values(**values))
            if done.rowcount == 0:
                conn.execute(projects.insert().values(project_id=project_id, **values))
            if written:
                conn.execute(task_results.delete().where(task_results.c.project_id == project_id,
                                                         task_results.c.task_id.in_(list(written))))
                conn.execute(task_results.insert(), [
                    {"project_id": project_id, "task_id": t, "model_version": review.model_version, "result": r,
                     "score": s, "meta": m, "updated_at": stamp} for t, (r, s, m) in written.items()])
            rows = [{"project_id": project_id, "job_id": job_id, "question": str(row.get("question")),
                     "worker": str(row.get("worker")), "row": json.dumps(row, default=str), "recorded_at": stamp}
                    for row in worker_rows]
            if rows:
                conn.execute(worker_history.insert(), rows)

    def forget(self, project_id: int, task_ids: Iterable[int]) -> None:
        """Drop what is recorded as written for these tasks: called before they are rewritten,
        so a job that fails (or a process that dies) half-way leaves them to be rewritten."""
        ids = list(task_ids)
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(task_results.delete().where(task_results.c.project_id == project_id,
                                                     task_results.c.task_id.in_(ids)))

    # ------------------------------------------------------------------ jobs
    def interrupt_running(self) -> list[dict[str, Any]]:
        """Mark every job recorded as ``running`` as ``interrupted`` (call once at start, when no
        job of this process runs yet: a process that died left them so); returns them."""
        with self.engine.begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                sa.select(jobs.c.id, jobs.c.project_id, jobs.c.kind, jobs.c.reason).where(jobs.c.status == "running"))]
            if rows:
                conn.execute(jobs.update().where(jobs.c.id.in_([r["id"] for r in rows])).values(
                    status="interrupted", error="the backend process ended while the job ran; redone on start",
                    finished_at=now_iso()))
        return rows

    def add_job(self, project_id: int, kind: str, status: str, reason: str = "") -> int:
        with self.engine.begin() as conn:
            result = conn.execute(jobs.insert().values(project_id=project_id, kind=kind, status=status,
                                                       reason=reason[:2000], created_at=now_iso()))
            return int(result.inserted_primary_key[0])

    def update_job(self, job_id: int, *, status: str, detail: Mapping[str, Any] | None = None,
                   error: str | None = None, started: bool = False, finished: bool = False) -> None:
        values: dict[str, Any] = {"status": status}
        if detail is not None:
            values["detail"] = json.dumps(detail, default=str)
        if error is not None:
            values["error"] = error[:2000]
        if started:
            values["started_at"] = now_iso()
        if finished:
            values["finished_at"] = now_iso()
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))

    def jobs(self, project_id: int | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        query = sa.select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if project_id is not None:
            query = query.where(jobs.c.project_id == project_id)
        with self.engine.connect() as conn:
            out = []
            for row in conn.execute(query):
                entry = dict(row._mapping)
                entry["detail"] = json.loads(entry["detail"]) if entry["detail"] else None
                out.append(entry)
            return out

    def job_counts(self) -> dict[tuple[str, str], int]:
        query = sa.select(jobs.c.kind, jobs.c.status, sa.func.count()).group_by(jobs.c.kind, jobs.c.status)
        with self.engine.connect() as conn:
            return {(r[0], r[1]): int(r[2]) for r in conn.execute(query)}

    def worker_history(self, project_id: int) -> list[dict[str, Any]]:
        query = sa.select(worker_history).where(worker_history.c.project_id == project_id).order_by(
            worker_history.c.id)
        with self.engine.connect() as conn:
            return [{**json.loads(r.row), "job_id": r.job_id, "recorded_at": r.recorded_at}
                    for r in conn.execute(query)]
