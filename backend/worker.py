"""Review jobs in a child process, so that /predict never waits for a job.

A review job pulls, parses, fits and pickles: Python work that holds the interpreter lock
for long stretches. Run in the HTTP process, it made /predict wait behind it (p99 300 ms in
the soak, against 28 ms without jobs). ``galton serve`` therefore runs the jobs in one child
process (:class:`JobProcess`, ``GALTON_JOB_PROCESS=on``, the default) at a lower CPU priority
(``GALTON_JOB_NICE``), and the HTTP process keeps only what /predict reads.

Messages over one duplex pipe
    parent -> child   ``("submit", project, event, payload)``: a webhook's work (answered at
                      once with ``"accepted"``; the child's queue coalesces as in-process);
                      ``("want", project)``: send this project's prediction view in full;
                      ``("stop",)``.
    child -> parent   ``("view", project, PredictView)`` (in full, after a ``want``, or when
                      the model version or config changed); ``("delta", project, changes)``
                      after every committed job of a project the parent holds;
                      ``("stats", {...})``: queue depth and job counters, after every job.

One pipe carries both kinds of view message in the order the child made them, and the
child makes them under the lock it replaces its live state with, so the parent's view
never goes back in time. The child exits when the pipe closes (the parent died, even by
SIGKILL), so an orphan never writes on; the parent restarts a child that died, which marks
the jobs it left ``running`` as interrupted and redoes them, and gives it again the
projects whose events it may have lost.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .settings import Settings

__all__ = ["JobProcess", "PredictView", "freeze_heap"]

log = logging.getLogger(__name__)
VIEW_WAIT_S = 10.0  # /predict waits this long for a project's first view, then computes on the spot


def freeze_heap(*, collect: bool = True) -> None:
    """Exempt what lives now (modules, the app, prediction views) from Python's cyclic garbage
    collector. Its full collections walk every tracked object while holding the interpreter
    lock: 140-165 ms each in the HTTP process during the soak, 42 in 3 minutes, each one
    stalling every /predict in flight. Frozen objects are still freed by reference counting
    when dropped (a view replaced in full has no cycles), so memory stays flat; only a cycle
    that was alive at a freeze stays once dropped, which is why this runs at start-up and
    when a project's view arrives in full (its first view, a new model version), not per job."""
    if collect:
        gc.collect()
    gc.freeze()


@dataclass
class PredictView:
    """What /predict reads of a project: its config, model version, each task's annotation key
    and prediction, and the rater weights stale tasks are scored with."""

    xml: str
    model_version: str
    keys: dict[int, tuple[Any, ...]]
    predictions: dict[int, Any]
    weights: dict[str, dict[Any, float]]
    marks: dict[int, tuple[tuple[int, str | None], ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, live: Any) -> PredictView:
        return cls(live.snapshot.config.xml, live.review.model_version, dict(live.keys),
                   dict(live.review.predictions), dict(live.weights), dict(live.marks))

    def changes_to(self, new: PredictView) -> dict[str, Any] | None:
        """What turns this view into ``new`` (None: send ``new`` in full)."""
        if new.xml != self.xml or new.model_version != self.model_version:
            return None
        changes: dict[str, Any] = {"weights": new.weights}
        for name in ("keys", "predictions", "marks"):
            old_values, new_values = getattr(self, name), getattr(new, name)
            changes[name] = {t: v for t, v in new_values.items() if old_values.get(t) != v}
            changes[f"gone_{name}"] = [t for t in old_values if t not in new_values]
        return changes

    def apply(self, changes: Mapping[str, Any]) -> None:
        # marks first out, last in: a reader that sees a task's new mark sees its new prediction
        for t in changes["gone_marks"]:
            self.marks.pop(t, None)
        for t in changes["marks"]:
            self.marks.pop(t, None)
        for name in ("keys", "predictions"):
            getattr(self, name).update(changes[name])
            for t in changes[f"gone_{name}"]:
                getattr(self, name).pop(t, None)
        self.weights = dict(changes["weights"])
        self.marks.update(changes["marks"])


# ---------------------------------------------------------------------- the child
def _child_main(settings: Settings, conn: Any, nice: int, log_level: int) -> None:
    """The job process: a reviewer with its worker threads, fed by the parent's messages."""
    from .app import _resume_interrupted
    from .cli import _configure_logging
    from .jobs import JobQueue, Reviewer
    from .state import StateStore

    # the same log lines as the parent's, on the same stderr (a spawned child starts bare)
    _configure_logging(log_level, "[jobs]")

    if nice:
        try:
            os.nice(nice)
        except OSError:  # pragma: no cover - not permitted here: run at the parent's priority
            pass
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    store = StateStore(settings.state_url)
    reviewer = Reviewer(settings, store)
    sent: dict[int, PredictView | None] = {}  # what the parent holds, per project it asked for

    def on_live(project_id: int, live: Any) -> None:  # called under the reviewer's lock
        if live is None or project_id not in sent:
            return
        new = PredictView.of(live)
        old = sent[project_id]
        changes = old.changes_to(new) if old is not None else None
        send(("view", project_id, new) if changes is None else ("delta", project_id, changes))
        sent[project_id] = new

    def on_job_end() -> None:
        queue = reviewer.queue
        send(("stats", {"depth": queue.depth() if queue else {}, "n_coalesced": queue.n_coalesced if queue else 0,
                        "counters": dict(reviewer.counters)}))

    reviewer.on_live = on_live
    reviewer.queue = JobQueue(reviewer.run, settings.worker_threads, after=on_job_end)
    _resume_interrupted(settings, store, reviewer)
    freeze_heap()
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the parent is gone: never write on without it
                os._exit(0)
            kind = message[0]
            if kind == "submit":
                _, project_id, event, payload = message
                reviewer.submit(project_id, event, payload)
            elif kind == "want":
                project_id = message[1]
                reviewer.live(project_id)  # loads the stored state, outside the lock
                with reviewer.lock:
                    live = reviewer.loaded(project_id)
                    view = PredictView.of(live) if live is not None else None
                    sent[project_id] = view  # None: the first job's commit sends it in full
                    send(("view", project_id, view))
            elif kind == "stop":
                break
    finally:
        if reviewer.queue is not None:
            reviewer.queue.stop()
        reviewer.close()
        store.close()


# ---------------------------------------------------------------------- the parent
class JobProcess:
    """The parent's end: forwards work to the child, keeps the prediction views it sends.

    It stands where the in-process :class:`~galton.backend.jobs.JobQueue` stands for the
    routes (``submit``, ``depth``, the counters), and answers :meth:`view` for /predict.
    """

    def __init__(self, settings: Settings, *, nice: int = 5) -> None:
        self.settings = settings
        self.nice = nice
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._views: dict[int, PredictView | None] = {}
        self._wanted: set[int] = set()
        self._unsettled: set[int] = set()  # projects with events since the child's last report
        self._stats: dict[str, Any] = {"depth": {}, "n_coalesced": 0, "counters": {}}
        self._stopped = False
        self.n_submitted = 0
        self.n_restarts = 0
        self._start()

    # -------------------------------------------------------------- process
    def _start(self) -> None:
        parent, child = self._context.Pipe(duplex=True)
        self._process = self._context.Process(
            target=_child_main, args=(self.settings, child, self.nice, logging.getLogger().getEffectiveLevel()),
            name="galton-jobs", daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, args=(parent,), name="galton-jobs-reader", daemon=True)
        self._reader.start()
        log.info("review jobs run in process %s", self._process.pid)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _send(self, message: tuple[Any, ...]) -> bool:
        try:
            with self._send_lock:
                self._conn.send(message)
            return True
        except (OSError, ValueError):  # the child is gone; the reader restarts it
            return False

    def _read(self, conn: Any) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            with self._cond:
                if kind == "view":
                    self._views[message[1]] = message[2]
                    self._wanted.discard(message[1])
                    self._cond.notify_all()
                    freeze_heap(collect=False)  # a full view is long-lived: out of the collector's walks
                elif kind == "delta":
                    view = self._views.get(message[1])
                    if view is not None:
                        view.apply(message[2])
                elif kind == "stats":
                    self._stats = message[1]
                    if not self._stats["depth"].get("pending") and not self._stats["depth"].get("running"):
                        self._unsettled.clear()
        with self._cond:
            if self._stopped:
                return
            self._views.clear()  # the new child sends them again; nothing stale is answered
            self._wanted.clear()
            again = sorted(self._unsettled)
            self._cond.notify_all()
        self._process.join(timeout=5)
        log.error("the review-job process ended (exit code %s); starting a new one", self._process.exitcode)
        self.n_restarts += 1
        time.sleep(min(30.0, 0.5 * 2 ** min(self.n_restarts, 6)))
        self._start()
        for project_id in again:  # their events may have died with it: review them again
            self._send(("submit", project_id, "retry", None))

    # -------------------------------------------------------------- the queue's face
    def submit(self, project_id: int, event: str, payload: Mapping[str, Any] | None = None) -> str:
        with self._lock:
            self.n_submitted += 1
            self._unsettled.add(project_id)
        return "accepted" if self._send(("submit", project_id, event, dict(payload) if payload else None)) \
            else "accepted (the job process restarts; the project is reviewed once it is up)"

    def depth(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats.get("depth") or {})

    @property
    def n_coalesced(self) -> int:
        with self._lock:
            return int(self._stats.get("n_coalesced") or 0)

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats.get("counters") or {})

    # -------------------------------------------------------------- views
    def view(self, project_id: int, timeout: float = VIEW_WAIT_S) -> PredictView | None:
        """The project's prediction view; the first call asks the child and waits for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if project_id in self._views:
                return self._views[project_id]
            if project_id not in self._wanted:
                self._wanted.add(project_id)
                asked = True
            else:
                asked = False
        if asked and not self._send(("want", project_id)):
            with self._cond:
                self._wanted.discard(project_id)
            return None
        with self._cond:
            while project_id not in self._views:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._views[project_id]

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
        self._send(("stop",))
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._conn.close()
