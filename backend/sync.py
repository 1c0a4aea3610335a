"""``galton sync``: pull -> consensus -> (training dynamics) -> write back, once or on a schedule.

One sync of a project is the backend's review job (:meth:`galton.backend.jobs.Reviewer.run`
with the event ``sync``), run in this process without a queue, under a per-project lock:

* **incremental**: the job pulls only tasks updated since the stored watermark (less a
  safety margin), re-reviews the merged snapshot and writes only what changed materially;
  a full pull and re-score when there is no state yet or the labeling config changed, and
  a full rewrite when the model version changes (method, options or questions);
* **idempotent**: a second run writes nothing. galton's own ``meta`` PATCHes move
  ``updated_at``, so a sync that wrote ``meta`` for many tasks pulls once more at the end
  (a *catch-up*, which writes nothing) and the next scheduled run reads only new changes;
* **resumable**: each task is forgotten in the state just before it is written and recorded
  again once Label Studio confirmed the write; snapshot and watermark are committed only after
  every write returned. A run that dies half-way leaves exactly the unwritten tasks to the next
  run, which writes them without duplicating predictions (the connector updates galton's own
  prediction in place);
* **locked**: a row in the state database (table ``galton_sync_locks``) per project, with a
  lease renewed by a heartbeat thread. It works across processes and, with a shared PostgreSQL
  state, across hosts (their clocks must agree to well within the lease: use NTP). A lock whose
  lease ran out, or whose holder on this host is no longer alive, is taken over. A second run
  of the same project waits up to ``wait`` seconds, then reports it as ``locked`` (exit code 5).

Exit codes of ``galton sync`` (:func:`exit_code`): 0 every project synced; 2 bad configuration;
4 Label Studio refused or could not be reached for a project (the job record says why); 5 a
project was skipped because another run holds its lock (and none failed); 1 anything else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .jobs import CATCH_UP_MIN, Reviewer
from .settings import Settings
from .state import StateStore

__all__ = ["EXIT_CONFIG", "EXIT_ERROR", "EXIT_LOCKED", "EXIT_OK", "EXIT_PLATFORM", "ProjectLock", "SyncOutcome",
           "exit_code", "sync_project"]

log = logging.getLogger(__name__)
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_PLATFORM = 4
EXIT_LOCKED = 5

_metadata = sa.MetaData()
_locks = sa.Table(
    "galton_sync_locks", _metadata,
    sa.Column("project_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class ProjectLock:
    """A per-project lock: a row in the state database with a lease renewed by a heartbeat.

    Parameters
    ----------
    store : StateStore
    project_id : int
    lease_s : float
        How long the lock holds without a heartbeat; renewed every ``lease_s / 3``.
    """

    def __init__(self, store: StateStore, project_id: int, *, lease_s: float = 60.0) -> None:
        self.engine = store.engine
        self.project_id = project_id
        self.lease_s = float(lease_s)
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self.holder: dict[str, Any] | None = None  # who holds it when acquire() failed
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _metadata.create_all(self.engine, checkfirst=True)

    def _try(self) -> bool:
        now = time.time()
        row = {"project_id": self.project_id, "owner": self.owner, "host": self.host, "pid": self.pid,
               "acquired_at": now, "expires_at": now + self.lease_s}
        try:
            with self.engine.begin() as conn:
                conn.execute(_locks.insert().values(**row))
            return True
        except sa.exc.IntegrityError:
            pass
        with self.engine.begin() as conn:
            current = conn.execute(sa.select(_locks).where(_locks.c.project_id == self.project_id)).first()
            if current is None:
                return False  # released meanwhile: the caller tries again
            dead = current.host == self.host and current.pid != self.pid and not _alive(int(current.pid))
            if current.expires_at < now or dead:
                # compare-and-swap on the old owner: of two runs taking over, one wins
                taken = conn.execute(_locks.update().where(_locks.c.project_id == self.project_id,
                                                           _locks.c.owner == current.owner).values(**row))
                if taken.rowcount == 1:
                    log.warning("project %d: took over the sync lock of %s pid %d (%s)", self.project_id,
                                current.host, current.pid, "process gone" if dead else "lease expired")
                    return True
            self.holder = {"host": current.host, "pid": int(current.pid),
                           "since_s": round(now - float(current.acquired_at), 1)}
            return False

    def acquire(self, wait_s: float = 0.0, *, poll_s: float = 0.5) -> bool:
        """Take the lock, waiting up to ``wait_s``; starts the heartbeat. False if another run holds it."""
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            if self._try():
                self.holder = None
                self._thread = threading.Thread(target=self._beat, name=f"galton-lock-{self.project_id}",
                                                daemon=True)
                self._thread.start()
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(poll_s, max(0.01, deadline - time.monotonic())))

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                with self.engine.begin() as conn:
                    done = conn.execute(_locks.update().where(_locks.c.project_id == self.project_id,
                                                              _locks.c.owner == self.owner).values(
                        expires_at=time.time() + self.lease_s))
                if done.rowcount != 1:
                    self.lost = True
                    log.error("project %d: the sync lock was taken over by another run", self.project_id)
                    return
            except sa.exc.SQLAlchemyError as error:  # keep trying: the lease outlives a short outage
                log.warning("project %d: renewing the sync lock failed: %s", self.project_id,
                            error.__class__.__name__)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.engine.begin() as conn:
            conn.execute(_locks.delete().where(_locks.c.project_id == self.project_id,
                                               _locks.c.owner == self.owner))

    def __enter__(self) -> ProjectLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


@dataclass
class SyncOutcome:
    """What one sync of one project did."""

    project_id: int
    status: str  # "synced", "locked" or "failed"
    seconds: float = 0.0
    full_pull: bool | None = None
    n_pulled: int = 0
    n_tasks: int = 0
    model_version: str | None = None
    predictions_written: int = 0
    predictions_deleted: int = 0
    meta_written: int = 0
    n_flagged: int = 0
    dynamics: dict[str, Any] = field(default_factory=dict)
    catch_up: bool = False
    error: str | None = None
    unexpected: bool = False  # failed on something else than Label Studio or its data
    holder: dict[str, Any] | None = None
    jobs: list[int] = field(default_factory=list)

    @property
    def n_written(self) -> int:
        return self.predictions_written + self.predictions_deleted + self.meta_written

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items()}
        out["n_written"] = self.n_written
        return out


def _add_detail(outcome: SyncOutcome, detail: dict[str, Any]) -> None:
    predictions = detail.get("predictions") or {}
    outcome.predictions_written += int(predictions.get("created", 0)) + int(predictions.get("updated", 0))
    outcome.predictions_deleted += int(detail.get("predictions_deleted", 0))
    outcome.meta_written += int((detail.get("meta") or {}).get("updated", 0))


def sync_project(settings: Settings, store: StateStore, project_id: int, *, wait_s: float = 0.0,
                 lease_s: float = 60.0, connector_factory: Callable[[], Any] | None = None,
                 reviewer_hook: Callable[[Reviewer], None] | None = None) -> SyncOutcome:
    """One sync of one project under its lock (see the module doc).

    ``reviewer_hook`` is called with the :class:`Reviewer` before the job runs (tests use it
    to inject faults).
    """
    started = time.perf_counter()
    lock = ProjectLock(store, project_id, lease_s=lease_s)
    if not lock.acquire(wait_s):
        holder = lock.holder or {}
        return SyncOutcome(project_id, "locked", round(time.perf_counter() - started, 3), holder=holder,
                           error=f"another galton sync of project {project_id} is running "
                                 f"(host {holder.get('host')}, pid {holder.get('pid')}, for "
                                 f"{holder.get('since_s')} s); try again later or pass --wait SECONDS")
    outcome = SyncOutcome(project_id, "synced")
    reviewer = Reviewer(settings, store, connector_factory)
    try:
        if reviewer_hook is not None:
            reviewer_hook(reviewer)
        for event in ("sync", "catch-up"):
            before = max((j["id"] for j in store.jobs(project_id, limit=1)), default=0)
            reviewer.run(project_id, [event])
            job = next((j for j in store.jobs(project_id, limit=20) if j["id"] > before and j["kind"] == "review"
                        and j["reason"] == f"{event} x1"), None)
            if job is None:  # pragma: no cover - run() always records its job
                raise RuntimeError("the sync job left no record")
            outcome.jobs.append(int(job["id"]))
            if job["status"] != "done":
                outcome.status, outcome.error = "failed", job.get("error") or job["status"]
                break
            detail = job.get("detail") or {}
            _add_detail(outcome, detail)
            if event == "sync":
                outcome.full_pull = bool(detail.get("full_pull"))
                outcome.n_pulled = int(detail.get("n_pulled", 0))
                outcome.n_tasks = int(detail.get("n_tasks", 0))
                outcome.model_version = detail.get("model_version")
            else:
                outcome.catch_up = True
            # galton's meta writes move updated_at past the watermark: pull once more now, so the next
            # scheduled run reads only what changed since (this pull writes nothing, or a remainder)
            if int((detail.get("meta") or {}).get("updated", 0)) < CATCH_UP_MIN or lock.lost:
                break
        live = reviewer.live(project_id)
        if live is not None:
            outcome.n_flagged = sum(1 for entry in live.review.meta.values() if entry.get("flags"))
            outcome.dynamics = dict(live.review.summary.get("dynamics") or {})
    except Exception as error:  # one project's failure must not stop the others
        outcome.status, outcome.unexpected = "failed", True
        outcome.error = str(error) or error.__class__.__name__
        log.exception("sync of project %d failed", project_id)
    finally:
        reviewer.close()
        lock.release()
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


def exit_code(outcomes: Sequence[SyncOutcome]) -> int:
    """0 all synced, 1 an unexpected failure, 4 a project failed in Label Studio, 5 a project was locked
    by another run (none failed)."""
    if any(o.status == "failed" and o.unexpected for o in outcomes):
        return EXIT_ERROR
    if any(o.status == "failed" for o in outcomes):
        return EXIT_PLATFORM
    if any(o.status == "locked" for o in outcomes):
        return EXIT_LOCKED
    return EXIT_OK


def run_every(interval_s: float, once: Callable[[], Any], stop: threading.Event) -> None:
    """Call ``once`` now and then every ``interval_s`` (from the start of each run) until ``stop`` is set.

    A run that takes longer than the interval is followed by the next one at once (runs never overlap).
    """
    while not stop.is_set():
        started = time.monotonic()
        once()
        with contextlib.suppress(ValueError):
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
