"""Background work: a per-project job queue that coalesces webhook storms, and the review job.

The queue
    :class:`JobQueue` keeps, per project, at most one running job and at most one pending
    job. An event for a project that already has a pending job is absorbed by it (its
    reason is appended), so a storm of 200 annotation webhooks becomes a handful of jobs.
    An event that arrives while a job runs makes one pending job, which starts when the
    running one ends: it pulls after the event, so no update is lost.

The review job (:meth:`Reviewer.run`)
    pull the project incrementally (tasks updated since the stored watermark, less a safety
    margin; a full export on the first job, after TASKS_DELETED or a labeling-config change),
    merge into the stored snapshot, re-review it (:func:`galton.backend.review.review_project`),
    write back only the tasks whose prediction or ``meta.galton`` changed materially (labels,
    flags, counts, or a number moved by more than ``score_tolerance``; a prediction whose
    label stayed and whose score moved less is left as Label Studio holds it), then commit
    the new state. Writing the same results twice leaves Label Studio unchanged.

    A job whose events are all annotation webhooks with their payloads applies them to the
    snapshot instead of pulling (``PulledProject.with_annotations``). A pull still comes at
    least every ``MAX_PULL_AGE_S`` (a lost webhook is found by it) and once the project is
    quiet (``QUIET_S``). The periodic pull does not hold up the annotators: it runs in a
    thread beside the job's first pass, which writes the payloads' predictions; a second
    pass of the same job then merges what the pull read, reviews it and writes the rest.
    Webhooks that arrive during that pull stay for the next job.

Write-back order and its guarantees
    Label Studio writes ``meta`` and stale predictions one per request (about 0.1-0.5 s
    each on a small server; only many new predictions go in one import, see
    ``LabelStudioConnector.write_predictions``). So the order matters: first the predictions
    of the tasks whose annotations changed (what the annotator waits for), then predictions a refit moved
    elsewhere, then ``meta`` (one PATCH per task, the slowest part) in the same order, in
    chunks of ``META_CHUNK`` (moved predictions that are updates, one request each, in chunks
    of ``UPDATE_CHUNK``). When another job for the project is waiting, a job stops
    between stages or chunks and commits what it wrote: the waiting job pulls later, and
    rewrites what is left (after ``MAX_DEFER_S`` without a complete job, each job also spends
    about ``BACKLOG_BUDGET_S`` on the backlog, so a steady stream cannot starve it).

    The state records per task exactly what Label Studio is known to hold: a task about to
    be written is forgotten first (in memory and in the store), and recorded again only
    once its write returned, so a job that fails half-way, or a process that dies, leaves
    exactly those tasks to be rewritten by the next job (retried with backoff), whatever
    the next review says. Snapshot and watermark are committed with it, only by a job whose
    writes all returned.

    galton's own meta PATCHes move those tasks' ``updated_at`` past the watermark; a job that
    wrote meta for ``CATCH_UP_MIN`` tasks or more is followed by a ``catch-up`` job (an
    incremental pull that usually writes nothing) while the queue is idle, so the next
    webhook's job does not read the whole project again after the first review.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from galton.connectors import (
    LabelConfig,
    LabelStudioConnector,
    PlatformError,
    PredictionSpec,
    PulledProject,
    is_galton_prediction,
    parse_label_config,
    parse_tasks,
)

from .review import Review, config_model_version, review_project, stored_worker_weights
from .settings import Settings
from .state import ProjectState, StateStore

__all__ = ["FULL_EVENTS", "TRAINING_UNAVAILABLE", "JobQueue", "LiveProject", "Reviewer"]

log = logging.getLogger(__name__)
FULL_EVENTS = frozenset({"TASKS_DELETED", "START_TRAINING", "full"})
TRAINING_UNAVAILABLE = "unavailable: training dynamics not installed"
META_CHUNK = 10  # tasks per meta write (one PATCH each): a waiting job starts at most this late
PREDICTION_CHUNK = 40  # new predictions per write (one import when more than the connector's bulk_min)
UPDATE_CHUNK = 4  # moved predictions per write when they are updates (one request each)
CATCH_UP_MIN = 50  # a job that PATCHed at least this many tasks' meta is followed by an idle pull
MAX_DEFER_S = 60.0  # after this long without a complete job, every job makes progress on the rest
BACKLOG_BUDGET_S = 0.5  # ... for about this long (in chunks of BACKLOG_CHUNK), then hands over
BACKLOG_CHUNK = 2
PAYLOAD_EVENTS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"})
MAX_PAYLOADS = 2000  # more annotations than this waiting for one job: a pull is cheaper
MAX_PULL_AGE_S = 120.0  # a job applying webhook payloads this long after the last pull also pulls, meanwhile
QUIET_S = 5.0  # after payload-only jobs, a verifying pull runs once the project had no event this long


# ---------------------------------------------------------------------- the queue
class JobQueue:
    """Per-project coalescing queue served by ``n_threads`` worker threads.

    Parameters
    ----------
    run : callable(project_id, events)
        The job; ``events`` lists the reasons it absorbed, oldest first.
    n_threads : int
        Worker threads. With ``start=False`` no thread runs and :meth:`run_next` runs one
        job in the caller's thread (for tests).
    """

    def __init__(self, run: Callable[[int, list[str]], None], n_threads: int = 2, *, start: bool = True,
                 after: Callable[[], None] | None = None) -> None:
        self._run = run
        self._after = after  # called after each job, once the queue counts it as done
        self._cond = threading.Condition()
        self._pending: dict[int, list[str]] = {}
        self._ready: deque[int] = deque()
        self._running: set[int] = set()
        self._stopped = False
        self.n_submitted = 0
        self.n_coalesced = 0
        self.n_run = 0
        self.n_failed = 0
        self._threads = [threading.Thread(target=self._worker, name=f"galton-job-{i}", daemon=True)
                         for i in range(max(1, n_threads))] if start else []
        for thread in self._threads:
            thread.start()

    def submit(self, project_id: int, event: str) -> str:
        """Enqueue work for a project: ``"queued"`` (a new job) or ``"coalesced"`` (absorbed)."""
        with self._cond:
            self.n_submitted += 1
            if project_id in self._pending:
                self._pending[project_id].append(event)
                self.n_coalesced += 1
                return "coalesced"
            self._pending[project_id] = [event]
            if project_id not in self._running:
                self._ready.append(project_id)
                self._cond.notify()
            return "queued"

    def has_pending(self, project_id: int) -> bool:
        """Whether a job for this project waits to start (it will run: nothing cancels it)."""
        with self._cond:
            return project_id in self._pending

    def depth(self) -> dict[str, int]:
        with self._cond:
            return {"pending": len(self._pending), "running": len(self._running)}

    def _take(self) -> tuple[int, list[str]]:
        project_id = self._ready.popleft()
        events = self._pending.pop(project_id)
        self._running.add(project_id)
        return project_id, events

    def _done(self, project_id: int) -> None:
        self._running.discard(project_id)
        if project_id in self._pending:  # events came while it ran: their job may start now
            self._ready.append(project_id)
            self._cond.notify()
        self._cond.notify_all()

    def _execute(self, project_id: int, events: list[str]) -> None:
        try:
            self._run(project_id, events)
        except Exception:  # the job records its own failure; never kill the worker
            self.n_failed += 1
            log.exception("job for project %s failed", project_id)
        finally:
            with self._cond:
                self.n_run += 1
                self._done(project_id)
            if self._after is not None:
                try:
                    self._after()
                except Exception:  # a report that cannot be sent must not kill the worker
                    log.exception("the after-job hook failed")

    def _worker(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                project_id, events = self._take()
            self._execute(project_id, events)

    def run_next(self) -> bool:
        """Run the next ready job in this thread (queues built with ``start=False``)."""
        with self._cond:
            if not self._ready:
                return False
            project_id, events = self._take()
        self._execute(project_id, events)
        return True

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until nothing is pending or running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)


# ---------------------------------------------------------------------- live state
def _annotation_keys(pulled: PulledProject) -> dict[int, tuple[Any, ...]]:
    """Per task what its kept annotations say (worker, answers): equal keys mean equal input."""
    keys: dict[int, list[Any]] = {}
    for a in pulled.annotations:
        keys.setdefault(a.task_id, []).append((a.worker, tuple(sorted(a.answers.items()))))
    return {task_id: tuple(sorted(values)) for task_id, values in keys.items()}


def _annotation_marks(pulled: PulledProject) -> dict[int, tuple[tuple[int, str | None], ...]]:
    """Per task the (id, updated_at) of its kept annotations: a /predict task whose raw
    annotations carry the same marks holds the same annotations (Label Studio moves
    ``updated_at`` on every save), so its stored prediction stands without parsing it."""
    marks: dict[int, list[tuple[int, str | None]]] = {}
    for a in pulled.annotations:
        marks.setdefault(a.task_id, []).append((a.id, a.updated_at))
    return {task_id: tuple(sorted(values, key=_mark_order)) for task_id, values in marks.items()}


def _mark_order(mark: tuple[int, str | None]) -> tuple[int, str]:
    return mark[0], mark[1] or ""


def _raw_marks(task: Mapping[str, Any]) -> tuple[tuple[int, str | None], ...] | None:
    """The marks of a raw task's annotations (cancelled ones left out, as a pull drops them);
    None when one has no integer id or a malformed field (the task is parsed instead)."""
    raw = task.get("annotations")
    if not isinstance(raw, list):
        return None
    marks = []
    for annotation in raw:
        if not isinstance(annotation, Mapping):
            return None
        if annotation.get("was_cancelled"):
            continue
        annotation_id, stamp = annotation.get("id"), annotation.get("updated_at")
        if not isinstance(annotation_id, int) or isinstance(annotation_id, bool) or not (
                stamp is None or isinstance(stamp, str)):
            return None
        marks.append((annotation_id, stamp))
    return tuple(sorted(marks, key=_mark_order))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass
class LiveProject:
    """A project's state in memory: what /predict answers from and what a job diffs against."""

    project_id: int
    snapshot: PulledProject
    review: Review
    watermark: str | None
    written: dict[int, tuple[str, float | None, str | None]]
    keys: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    weights: dict[str, dict[Any, float]] = field(default_factory=dict)
    # touched tasks whose write-back a job left to the next one: they stay first in line
    carried: set[int] = field(default_factory=set)
    marks: dict[int, tuple[tuple[int, str | None], ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, project_id: int, snapshot: PulledProject, review: Review, watermark: str | None,
              written: Mapping[int, tuple[str, float | None, str | None]]) -> LiveProject:
        return cls(project_id, snapshot, review, watermark, dict(written), _annotation_keys(snapshot),
                   stored_worker_weights(review), marks=_annotation_marks(snapshot))

    @classmethod
    def from_state(cls, state: ProjectState) -> LiveProject:
        return cls.build(state.project_id, state.snapshot, state.review, state.watermark, state.written)

    # what /predict reads (the same names as galton.backend.worker.PredictView)
    @property
    def xml(self) -> str:
        return self.snapshot.config.xml

    @property
    def model_version(self) -> str:
        return self.review.model_version

    @property
    def predictions(self) -> Mapping[int, PredictionSpec]:
        return self.review.predictions


def _close(a: Any, b: Any, tol: float) -> bool:
    """Equal, numbers within ``tol`` (the materiality rule of the write-back)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, abs_tol=tol) if a is not None and b is not None else a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b, strict=True))
    return a == b


def _entry(spec: PredictionSpec | None, meta: Mapping[str, Any] | None) -> tuple[str, float | None, str | None]:
    result = _canonical(list(spec.result)) if spec is not None else "[]"
    return result, (round(float(spec.score), 4) if spec is not None else None), (
        _canonical(meta) if meta is not None else None)


def _material(old: tuple[str, float | None, str | None] | None, new: tuple[str, float | None, str | None],
              tol: float) -> bool:
    if old is None:
        return True
    if old[0] != new[0] or (old[1] is None) != (new[1] is None):
        return True
    if old[1] is not None and new[1] is not None and abs(old[1] - new[1]) > tol:
        return True
    old_meta = json.loads(old[2]) if old[2] else None
    new_meta = json.loads(new[2]) if new[2] else None
    return not _close(old_meta, new_meta, tol)


def project_id_of(value: Any) -> int | None:
    """Label Studio's project reference: ``"12.1718000000"`` (ML API), ``12`` or ``{"id": 12}``."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):  # ids fit the state's 64-bit columns; a larger "id" is no project
        return value if 0 < value < 2**63 else None
    if isinstance(value, str):
        head = value.split(".", 1)[0].strip()
        return int(head) if head.isdigit() and len(head) < 20 and 0 < int(head) < 2**63 else None
    return None


# ---------------------------------------------------------------------- the reviewer
class Reviewer:
    """Owns the state store, the live projects, the connector and the review job.

    Parameters
    ----------
    settings : Settings
    store : StateStore
    connector_factory : callable() -> LabelStudioConnector, optional
        Default: one :class:`LabelStudioConnector` from the settings, made on first use.
    """

    def __init__(self, settings: Settings, store: StateStore,
                 connector_factory: Callable[[], LabelStudioConnector] | None = None) -> None:
        self.settings = settings
        self.store = store
        self._connector_factory = connector_factory
        self._connector: LabelStudioConnector | None = None
        self._lock = threading.Lock()
        self._live: dict[int, LiveProject | None] = {}
        self._configs: dict[str, LabelConfig] = {}
        self._attempts: dict[int, int] = {}
        self._complete: dict[int, float] = {}  # project -> monotonic time its last job wrote everything
        # webhook payloads waiting for the project's next job (annotation id -> annotation), the
        # projects whose next job must pull anyway, when each was last pulled, its last event
        self._payloads: dict[int, dict[int, dict[str, Any]]] = {}
        self._deleted: dict[int, set[int]] = {}
        self._must_pull: set[int] = set()
        self._pulled: dict[int, float] = {}
        self._last_event: dict[int, float] = {}
        self._verify_timers: set[int] = set()
        self.queue: JobQueue | None = None  # set by the app
        # with jobs in a child process (galton.backend.worker), the HTTP process's reviewer
        # forwards work to it and answers /predict from the views it sends
        self.remote: Any = None
        # the job process's hook: a project's new live state (called under the lock)
        self.on_live: Callable[[int, LiveProject | None], None] | None = None
        self.counters: dict[str, int] = {"jobs_done": 0, "jobs_failed": 0, "predictions_written": 0,
                                         "meta_written": 0, "predict_fresh": 0, "predict_computed": 0,
                                         "predict_skipped": 0}

    # -------------------------------------------------------------- helpers
    def connector(self) -> LabelStudioConnector:
        with self._lock:
            if self._connector is None:
                if self._connector_factory is not None:
                    self._connector = self._connector_factory()
                elif self.settings.can_write_back:
                    self._connector = LabelStudioConnector(self.settings.label_studio_url or "",
                                                           self.settings.label_studio_api_key or "",
                                                           n_threads=4)
                else:
                    raise PlatformError("LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are not set: galton cannot "
                                        "pull or write back")
            return self._connector

    def close(self) -> None:
        if self._connector is not None:
            self._connector.close()

    def config(self, xml: str) -> LabelConfig:
        config = self._configs.get(xml)
        if config is None:
            config = parse_label_config(xml)
            if len(self._configs) > 64:
                self._configs.clear()
            self._configs[xml] = config
        return config

    def model_version(self, xml: str) -> str:
        return config_model_version(self.config(xml), self.settings.review)

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def loaded(self, project_id: int) -> LiveProject | None:
        """The project's live state if loaded (no store read; call under :attr:`lock`)."""
        return self._live.get(project_id)

    def _view(self, project_id: int) -> Any:
        """What /predict answers from: the live state here, or the job process's view of it."""
        if self.remote is not None:
            return self.remote.view(project_id)
        return self.live(project_id)

    def live(self, project_id: int) -> LiveProject | None:
        if project_id not in self._live:
            state = self.store.load(project_id)
            live = LiveProject.from_state(state) if state is not None and state.snapshot is not None else None
            with self._lock:
                self._live.setdefault(project_id, live)
        return self._live[project_id]

    def bump(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] = self.counters.get(name, 0) + n

    # -------------------------------------------------------------- /predict
    def predict(self, project_id: int | None, tasks: Sequence[Any], xml: str) -> list[Any]:
        """One answer per task, in order: a prediction dict, or ``[]`` (none) for a task galton
        cannot score (no annotations, no scored control, malformed)."""
        config = self.config(xml)
        version = config_model_version(config, self.settings.review)
        answers: list[Any] = [[] for _ in tasks]
        position: dict[int, int] = {}
        for i, task in enumerate(tasks):
            if isinstance(task, Mapping) and isinstance(task.get("id"), int) and not isinstance(task["id"], bool):
                position.setdefault(int(task["id"]), i)
        if not position:
            self.bump("predict_skipped", len(tasks))
            return answers
        live = self._view(project_id) if project_id is not None else None
        usable = live is not None and live.xml == config.xml and live.model_version == version
        if usable and live is not None:  # unchanged tasks: answered from the state without parsing
            for task_id, i in list(position.items()):
                spec = live.predictions.get(task_id)
                mark = live.marks.get(task_id) if spec is not None else None
                if mark is not None and mark == _raw_marks(tasks[i]):
                    answers[i] = {"result": list(spec.result), "score": spec.score, "model_version": version}
                    self.bump("predict_fresh")
                    del position[task_id]
            if not position:
                return answers
        posted = self._parse(tasks, position, config)
        keys = _annotation_keys(posted)
        stale: list[int] = []
        for task_id, i in position.items():
            key = keys.get(task_id)
            if key is None:
                continue  # nothing to score
            spec = live.predictions.get(task_id) if usable and live is not None else None
            if spec is not None and live is not None and live.keys.get(task_id) == key:
                answers[i] = {"result": list(spec.result), "score": spec.score, "model_version": version}
                self.bump("predict_fresh")
            else:
                stale.append(task_id)
        if stale:
            subset = _subset(posted, stale)
            weights = live.weights if usable and live is not None else None
            review = review_project(subset, self.settings.review, worker_weights=weights or None)
            for task_id in stale:
                spec = review.predictions.get(task_id)
                if spec is not None:
                    answers[position[task_id]] = {"result": list(spec.result), "score": spec.score,
                                                  "model_version": version}
                    self.bump("predict_computed")
        self.bump("predict_skipped", sum(1 for a in answers if a == []))
        return answers

    def _parse(self, tasks: Sequence[Any], position: Mapping[int, int], config: LabelConfig) -> PulledProject:
        chosen = [tasks[i] for i in position.values()]
        try:
            return parse_tasks(chosen, config)
        except ValueError:  # one bad task must not sink the batch: parse one by one, drop the bad
            good = []
            for task in chosen:
                try:
                    parse_tasks([task], config)
                    good.append(task)
                except ValueError:
                    continue
            return parse_tasks(good, config)

    # -------------------------------------------------------------- the job
    def submit(self, project_id: int, event: str, payload: Mapping[str, Any] | None = None) -> str:
        """Queue ``event`` for the project. ``payload`` (an annotation webhook's body) lets the
        job apply the annotation to its snapshot instead of pulling (see :meth:`_direct`)."""
        if self.remote is not None:
            return str(self.remote.submit(project_id, event, payload))
        if self.queue is None:
            raise RuntimeError("no job queue attached")
        with self._lock:
            self._last_event[project_id] = time.monotonic()
            if event == "ANNOTATIONS_DELETED":
                self._keep_deleted(project_id, payload)
            elif event in PAYLOAD_EVENTS:
                self._keep_payload(project_id, payload)
        return self.queue.submit(project_id, event)

    def _keep_payload(self, project_id: int, payload: Mapping[str, Any] | None) -> None:
        annotation = payload.get("annotation") if isinstance(payload, Mapping) else None
        task = payload.get("task") if isinstance(payload, Mapping) else None
        waiting = self._payloads.setdefault(project_id, {})
        if not isinstance(annotation, Mapping) or isinstance(annotation.get("id"), bool) \
                or not isinstance(annotation.get("id"), int) or len(waiting) >= MAX_PAYLOADS:
            self._must_pull.add(project_id)
            return
        kept = dict(annotation)
        if not isinstance(kept.get("task"), int) and isinstance(task, Mapping):
            kept["task"] = task.get("id")
        config = payload.get("project", {}).get("label_config") if isinstance(payload.get("project"), Mapping) \
            else None
        kept["_label_config"] = config if isinstance(config, str) else None
        previous = waiting.get(int(annotation["id"]))
        if previous is None or str(previous.get("updated_at") or "") <= str(kept.get("updated_at") or ""):
            waiting[int(annotation["id"])] = kept

    def _keep_deleted(self, project_id: int, payload: Mapping[str, Any] | None) -> None:
        listed = payload.get("annotations") if isinstance(payload, Mapping) else None
        ids = [a.get("id") for a in listed if isinstance(a, Mapping)] if isinstance(listed, list) else []
        if not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids) \
                or len(ids) > MAX_PAYLOADS:
            self._must_pull.add(project_id)
            return
        waiting = self._payloads.get(project_id, {})
        for annotation_id in ids:
            waiting.pop(annotation_id, None)  # a deletion wins over a save of the same annotation
        self._deleted.setdefault(project_id, set()).update(ids)

    def _take_payloads(self, project_id: int) -> tuple[list[dict[str, Any]], set[int], bool]:
        """The annotations the webhooks carried since the last job (saved, oldest first, and the
        ids of deleted ones), and whether a pull is needed anyway."""
        with self._lock:
            waiting = self._payloads.pop(project_id, {})
            deleted = self._deleted.pop(project_id, set())
            must = project_id in self._must_pull
            self._must_pull.discard(project_id)
        return sorted(waiting.values(), key=lambda a: str(a.get("updated_at") or "")), deleted, must

    def _verify_when_quiet(self, project_id: int) -> None:
        """One verifying pull once the project had no event for ``QUIET_S`` (one timer per project)."""
        if self.queue is None:
            return
        with self._lock:
            if project_id in self._verify_timers:
                return
            self._verify_timers.add(project_id)

        def check() -> None:
            with self._lock:
                quiet = time.monotonic() - self._last_event.get(project_id, 0.0)
                if quiet < QUIET_S:
                    delay = QUIET_S - quiet
                else:
                    self._verify_timers.discard(project_id)
                    delay = None
            if delay is not None:
                again = threading.Timer(delay, check)
                again.daemon = True
                again.start()
            elif self.queue is not None:
                self.queue.submit(project_id, "verify")

        timer = threading.Timer(QUIET_S, check)
        timer.daemon = True
        timer.start()

    def record_training(self, project_id: int) -> tuple[int, str]:
        """START_TRAINING: with dynamics enabled (and its extras installed), queue a ``train`` job
        (coalesced with the project's pending job: its review trains, then writes back);
        otherwise record that training is unavailable and why. Returns the job record's id and
        its status (``"queued: ..."`` or ``"unavailable: ..."``)."""
        from .dynamics import missing_extras

        dynamics = getattr(self.settings, "dynamics", None)
        why = "disabled (set [dynamics] enabled = true or GALTON_DYNAMICS=on)" if dynamics is None or \
            not dynamics.enabled else missing_extras()
        if why is not None or self.queue is None or not self.settings.can_write_back:
            why = why or "no job queue or no Label Studio to write back to"
            status = f"unavailable: training dynamics {why}"[:200]
            return self.store.add_job(project_id, "train", status, "START_TRAINING"), status
        status = "queued: the next review job trains"
        job_id = self.store.add_job(project_id, "train", status, "START_TRAINING")
        self.submit(project_id, "train")
        return job_id, status

    def _with_dynamics(self, project_id: int, snapshot: PulledProject, review: Review,
                       events: list[str]) -> Review:
        """Training dynamics (galton.backend.dynamics) merged into meta, when enabled."""
        dynamics = getattr(self.settings, "dynamics", None)
        if dynamics is None or not dynamics.enabled:
            return review
        from .dynamics import with_dynamics

        return with_dynamics(self, project_id, snapshot, review, events)

    def run(self, project_id: int, events: list[str]) -> None:
        """The review job for one project (see the module doc); records itself in ``jobs``."""
        reason = ", ".join(f"{name} x{events.count(name)}" for name in dict.fromkeys(events))
        job_id = self.store.add_job(project_id, "review", "running", reason)
        self.store.update_job(job_id, status="running", started=True)
        started = time.perf_counter()
        try:
            detail = self._review(project_id, events, job_id)
        except Exception as error:
            with self._lock:  # the annotations it took from webhooks are gone with it: the next job pulls
                self._must_pull.add(project_id)
            self.bump("jobs_failed")
            message = str(error) if isinstance(error, PlatformError | ValueError) else error.__class__.__name__
            self.store.update_job(job_id, status="failed", error=message, finished=True)
            log.warning("review job %d for project %d failed: %s", job_id, project_id, message)
            self._retry(project_id)
            if not isinstance(error, PlatformError | ValueError):
                raise
            return
        self._attempts.pop(project_id, None)
        detail["seconds"] = round(time.perf_counter() - started, 3)
        # galton's own meta PATCHes move those tasks' updated_at past the watermark, so the next
        # incremental pull would read them all again (the first review: the whole project).
        # Pull once more while idle, so the next webhook's job reads only what changed since.
        n_meta = int((detail.get("meta") or {}).get("updated", 0))
        if n_meta >= CATCH_UP_MIN and "deferred_from" not in detail and self.queue is not None \
                and not self.queue.has_pending(project_id):
            self.queue.submit(project_id, "catch-up")
            detail["catch_up"] = True
        if not detail.get("pulled", True):
            self._verify_when_quiet(project_id)  # a missed webhook is caught by a pull once quiet
        self.store.update_job(job_id, status="done", detail=detail, finished=True)
        self.bump("jobs_done")
        log.info("review job %d for project %d: %s", job_id, project_id, detail)

    def _follow_up(self, project_id: int, event: str) -> None:
        """Submit ``event`` for the project after twice the connector's timeout (a request that
        timed out has then most likely finished in Label Studio); nothing without a queue (the
        next sync rewrites what was left unrecorded)."""
        if self.queue is None:
            return
        delay = 2.0 * float(getattr(self._connector, "timeout", 30.0) or 30.0)
        timer = threading.Timer(delay, lambda: self.queue.submit(project_id, event) if self.queue else None)
        timer.daemon = True
        timer.start()

    def _retry(self, project_id: int) -> None:
        attempt = self._attempts.get(project_id, 0) + 1
        if attempt > self.settings.job_retries or self.queue is None:
            self._attempts.pop(project_id, None)
            return
        self._attempts[project_id] = attempt
        delay = self.settings.retry_delay_s * 2 ** (attempt - 1)
        timer = threading.Timer(delay, lambda: self.queue.submit(project_id, "retry") if self.queue else None)
        timer.daemon = True
        timer.start()

    def _review(self, project_id: int, events: list[str], job_id: int, *,
                prefetched: tuple[PulledProject, float, set[int]] | None = None) -> dict[str, Any]:
        """One review pass (see the module doc). ``prefetched``: the second pass of a job whose
        first pass applied webhook payloads while this pull ran (see ``MAX_PULL_AGE_S``): the
        pull, when it started, and the tasks the first pass wrote."""
        clock = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = round(timings.get(name, 0.0) + now - clock, 3)
            clock = now

        connector = self.connector()
        live = self.live(project_id)
        snapshot: PulledProject | None = None
        full = live is None or any(e in FULL_EVENTS for e in events)
        # the second pass leaves the webhooks that came during its pull to the next job
        payloads, deleted, must_pull = ([], set(), False) if prefetched is not None \
            else self._take_payloads(project_id)
        n_pulled = 0
        fresh: set[int] = set()
        direct = False
        since = None if full or live is None else _minus_seconds(live.watermark, self.settings.watermark_margin_s)
        pulling: Future[PulledProject] | None = None
        if prefetched is None and not full and not must_pull and live is not None \
                and set(events) <= PAYLOAD_EVENTS \
                and all(a.get("_label_config") in (None, live.snapshot.config.xml) for a in payloads):
            # every event is an annotation saved or deleted, with its payload: apply them, no pull
            snapshot = live.snapshot.with_annotations(payloads)
            snapshot = snapshot.without_annotations(deleted) if snapshot is not None else None
            direct = snapshot is not None
            last_pull = self._pulled.get(project_id)
            if direct and (last_pull is None or time.monotonic() - last_pull >= MAX_PULL_AGE_S):
                if last_pull is None or since is None:  # nothing pulled by this process yet: pull first
                    snapshot, direct = None, False
                else:  # pulled long ago: pull meanwhile, the payloads' predictions go out first
                    pulling = self._pull_meanwhile(connector, project_id, since)
        pull_started = time.monotonic()
        if prefetched is not None and live is not None:
            changed, pull_started, wrote = prefetched
            n_pulled = changed.n_tasks
            if changed.config.xml == live.snapshot.config.xml:
                snapshot = live.snapshot.merge(changed)
                # the first pass wrote these after the pull may have read them: its record of
                # their predictions is the newer (None: unknown, read again before a write)
                tasks = {t: replace(r, predictions=live.snapshot.tasks[t].predictions)
                         if t in wrote and t in live.snapshot.tasks else r for t, r in snapshot.tasks.items()}
                snapshot = replace(snapshot, tasks=tasks)
                fresh = set(changed.tasks) - wrote
        elif snapshot is None and since is not None and live is not None:
            # the pull reads the label config from the project request it makes anyway
            changed = connector.pull(project_id, since=since)
            n_pulled = changed.n_tasks
            fresh = set(changed.tasks)
            if changed.config.xml == live.snapshot.config.xml:
                snapshot = live.snapshot.merge(changed)
        if snapshot is None:  # first job, full event, no watermark, or the labeling config changed
            full = True
            pull_started = time.monotonic()
            snapshot = connector.pull(project_id, config=connector.label_config(project_id))
            n_pulled = snapshot.n_tasks
            fresh = set(snapshot.tasks)
        if not direct:
            with self._lock:
                self._pulled[project_id] = pull_started
        config = snapshot.config
        lap("pull")
        review = review_project(snapshot, self.settings.review)
        review = self._with_dynamics(project_id, snapshot, review, events)
        lap("review")
        before = live.written if live is not None and not (live.snapshot.config.xml != config.xml) else {}
        if live is not None and live.review.model_version != review.model_version:
            before = {}
        keys = _annotation_keys(snapshot)
        old_keys = live.keys if live is not None and before else {}
        # the tasks whose annotations changed: what the annotator (or reviewer) waits for
        touched = {t for t in set(keys) | set(old_keys) if keys.get(t) != old_keys.get(t)}
        if live is not None:
            touched |= live.carried & set(snapshot.tasks)
        plan = _plan(review, before, snapshot, self.settings.score_tolerance)
        lap("diff")
        counts: dict[str, Any] = {"full_pull": full, "n_pulled": n_pulled, "n_payloads": len(payloads) + len(deleted),
                                  "pulled": not direct, "n_tasks": snapshot.n_tasks,
                                  "model_version": review.model_version, "n_touched": len(touched),
                                  "n_material": len(plan.entries), "n_touched_material": len(
                                      touched & set(plan.entries))}
        # what Label Studio holds for a task about to be written is unknown until the write
        # returns: forget it first (here and in the store), so a job that fails half-way, or
        # a process that dies, leaves exactly these tasks to be rewritten by the next job
        def forget(task_ids: Sequence[int]) -> None:
            known = [t for t in task_ids if t in before]
            if known:
                self.store.forget(project_id, known)
                for t in known:
                    before.pop(t, None)

        written: dict[int, tuple[str, float | None, str | None]] = {}
        uncertain: set[int] = set()
        done_meta: set[int] = set()
        yielded: str | None = None
        backlog_s = 0.0  # time spent on the backlog (moved predictions, meta) while a job waited
        tasks = dict(snapshot.tasks)  # kept up to date with what this job writes
        for name, kind, task_ids in _stages(plan, touched):
            if pulling is not None and name not in ("predictions_touched", "deletions"):
                yielded = name  # the rest after the pull, in this job's second pass
                break
            if not task_ids:
                continue
            if kind == "deletions":
                forget(task_ids)
                counts["predictions_deleted"] = counts.get("predictions_deleted", 0) + \
                    connector.delete_galton_predictions(project_id, task_ids)
                for t in task_ids:
                    written[t] = ("[]", None, None)
                    if t in tasks and tasks[t].predictions is not None:
                        tasks[t] = replace(tasks[t], predictions=tuple(
                            p for p in tasks[t].predictions if not is_galton_prediction(p)))
                lap(name)
                continue
            left = list(task_ids)
            while left:
                # the touched tasks' predictions go at once; the backlog in chunks, handing over
                # to a waiting job between them (small chunks while one waits)
                waiting = self.queue is not None and self.queue.has_pending(project_id)
                if name == "predictions_touched":
                    size = len(left)
                elif waiting:
                    if self._should_yield(project_id, backlog_s):
                        yielded = name
                        break
                    size = BACKLOG_CHUNK
                elif kind == "predictions":
                    # many new predictions go in one import; updates (one request each) in
                    # small chunks, so that a job arriving meanwhile waits for one chunk only
                    news = sum(t not in tasks or not any(is_galton_prediction(p) for p in tasks[t].predictions or ())
                               for t in left[:PREDICTION_CHUNK])
                    size = PREDICTION_CHUNK if news > getattr(connector, "bulk_min", 0) else UPDATE_CHUNK
                else:
                    size = META_CHUNK
                chunk, left = left[:size], left[size:]
                began = time.perf_counter()
                forget(chunk)
                if kind == "predictions":
                    summary = connector.write_predictions(
                        project_id, {t: review.predictions[t] for t in chunk}, review.model_version,
                        known=_known(tasks, chunk, fresh, review.model_version))
                    _add(counts, "predictions", summary.to_dict())
                    self.bump("predictions_written", summary.written)
                    uncertain.update(summary.uncertain)
                    for t in chunk:
                        written[t] = (plan.entries[t][0], plan.entries[t][1], None)
                        if t in tasks:
                            tasks[t] = replace(tasks[t], predictions=summary.held.get(t))
                else:
                    current = {t: tasks[t].meta for t in chunk if t in tasks}
                    summary = connector.write_meta(project_id, {t: plan.meta[t] for t in chunk}, current=current)
                    _add(counts, "meta", summary.to_dict())
                    self.bump("meta_written", summary.updated)
                    for t in chunk:
                        written[t] = plan.entries[t]
                        done_meta.add(t)
                        if t in tasks:
                            tasks[t] = replace(tasks[t], meta={**tasks[t].meta, "galton": json.loads(
                                _canonical(plan.meta[t]))})
                if waiting and name != "predictions_touched":
                    backlog_s += time.perf_counter() - began
            lap(name)
            if yielded is not None:
                break
        snapshot = replace(snapshot, tasks=tasks)
        # a task whose prediction went out but whose meta waits keeps its entry without meta:
        # the next job sees the meta as changed and writes it
        # a create sent again after a lost answer may land twice: such a task stays unrecorded,
        # so a later job rewrites it (removing a surplus prediction); one is asked for shortly
        for t in uncertain:
            written.pop(t, None)
        if uncertain:
            counts["uncertain"] = len(uncertain)
            self._follow_up(project_id, "verify")
        new_written = dict(before)
        new_written.update(written)
        carried = {t for t in plan.entries if t not in done_meta} & touched
        self.store.commit(project_id, snapshot=snapshot, review=review, watermark=snapshot.watermark,
                          written=written, job_id=job_id, worker_rows=review.worker_rows)
        lap("commit")
        with self._lock:
            self._live[project_id] = LiveProject(project_id, snapshot, review, snapshot.watermark, new_written,
                                                 keys, stored_worker_weights(review), carried,
                                                 _annotation_marks(snapshot))
            if self.on_live is not None:
                self.on_live(project_id, self._live[project_id])
            if yielded is None:
                self._complete[project_id] = time.monotonic()
        if pulling is not None:
            # the second pass: the pull that ran meanwhile, merged, reviewed and written back
            # (the first pass's touched tasks are recorded as written, so only what the pull
            # changed goes out again)
            first = {k: counts[k] for k in ("n_payloads", "n_touched", "n_material") if k in counts}
            first.update(n_written=len(written), timings=timings)
            second = self._review(project_id, events, job_id, prefetched=(
                pulling.result(), pull_started, set(written)))
            second["first_pass"] = first
            second["n_payloads"] = first["n_payloads"]
            return second
        counts["n_written"] = len(written)
        counts["n_deferred"] = len([t for t in plan.entries if t not in done_meta])
        if yielded is not None:
            counts["deferred_from"] = yielded
        counts["timings"] = timings
        return counts

    @staticmethod
    def _pull_meanwhile(connector: LabelStudioConnector, project_id: int, since: str) -> Future[PulledProject]:
        """Start an incremental pull in a thread of its own; its future."""
        pool = ThreadPoolExecutor(1, thread_name_prefix=f"galton-pull-{project_id}")
        try:
            return pool.submit(connector.pull, project_id, since=since)
        finally:
            pool.shutdown(wait=False)

    def _should_yield(self, project_id: int, backlog_s: float) -> bool:
        """Leave the rest of the write-back to the next job when one waits for this project:
        its pull is newer, its touched tasks are what users wait for, and what is left here it
        rewrites anyway (the state records only what was written). Once the project went
        ``MAX_DEFER_S`` without a complete job, each job first spends about ``BACKLOG_BUDGET_S``
        on the backlog (moved predictions, then meta), so a steady stream of annotations slows
        the deferred work but cannot starve it."""
        if self.queue is None or not self.queue.has_pending(project_id):
            return False
        with self._lock:
            last = self._complete.setdefault(project_id, time.monotonic())
        return backlog_s >= BACKLOG_BUDGET_S or time.monotonic() - last < MAX_DEFER_S


@dataclass(frozen=True)
class _Plan:
    """What a job must write: the entry, prediction and meta of every materially changed task."""

    entries: dict[int, tuple[str, float | None, str | None]]
    predictions: list[int]
    deletions: list[int]
    meta: dict[int, dict[str, Any]]


def _plan(review: Review, before: Mapping[int, tuple[str, float | None, str | None]], snapshot: PulledProject,
          tol: float) -> _Plan:
    entries: dict[int, tuple[str, float | None, str | None]] = {}
    meta: dict[int, dict[str, Any]] = {}
    predictions: list[int] = []
    for task_id, spec in review.predictions.items():
        entry = _entry(spec, review.meta.get(task_id))
        old = before.get(task_id)
        if _material(old, entry, tol):
            entries[task_id] = entry
            meta[task_id] = review.meta[task_id]
            if old is None or old[0] != entry[0] or (old[1] is None) != (entry[1] is None) or (
                    old[1] is not None and entry[1] is not None and abs(old[1] - entry[1]) > tol):
                predictions.append(task_id)
            else:  # same label, score within the tolerance: Label Studio keeps the prediction it has
                entries[task_id] = (old[0], old[1], entry[2])
    empty = {"model_version": review.model_version, "questions": {}, "flags": [], "score": None}
    cleaned = ("[]", None, _canonical(empty))
    # a task that lost its scorable annotations: its prediction goes, its meta is emptied
    # (also one whose prediction went but whose emptied meta a deferred job did not write)
    gone = [t for t in before if t not in review.predictions and before[t] != cleaned and t in snapshot.tasks]
    deletions = [t for t in gone if before[t][1] is not None]
    for task_id in gone:
        meta[task_id] = dict(empty)
        entries[task_id] = cleaned
    return _Plan(entries, predictions, deletions, meta)


def _stages(plan: _Plan, touched: set[int]) -> list[tuple[str, str, list[int]]]:
    """The write-back in the order users wait for it: predictions of the tasks whose annotations
    changed, then the other predictions that moved (a refit moves scores project-wide), then
    meta (one PATCH per task, the expensive part) in the same order."""
    first = [t for t in plan.predictions if t in touched]
    rest = [t for t in plan.predictions if t not in touched]
    meta_first = [t for t in plan.meta if t in touched]
    meta_rest = [t for t in plan.meta if t not in touched]
    return [("predictions_touched", "predictions", first), ("deletions", "deletions", plan.deletions),
            ("predictions_other", "predictions", rest), ("meta_touched", "meta", meta_first),
            ("meta_other", "meta", meta_rest)]


def _known(tasks: Mapping[int, Any], chunk: Sequence[int], fresh: set[int],
           model_version: str) -> dict[int, Sequence[Mapping[str, Any]]]:
    """The predictions a task is known to hold, so the write-back need not read them: what this
    job's pull saw, or what galton's own last write left, when that holds a galton prediction
    of this model version (Label Studio then asks /predict for no other one, so no second one
    can have appeared; a task without one is read again, as one may have)."""
    known: dict[int, Sequence[Mapping[str, Any]]] = {}
    for t in chunk:
        held = tasks[t].predictions if t in tasks else None
        if held is not None and (t in fresh or any(
                is_galton_prediction(p) and p.get("model_version") == model_version for p in held)):
            known[t] = held
    return known


def _add(counts: dict[str, Any], name: str, summary: Mapping[str, int]) -> None:
    total = counts.setdefault(name, {})
    for key, value in summary.items():
        total[key] = total.get(key, 0) + value


def _chunks(values: list[int], size: int) -> list[list[int]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def _subset(pulled: PulledProject, task_ids: Sequence[Hashable]) -> PulledProject:
    wanted = set(task_ids)
    return replace(pulled, tasks={t: r for t, r in pulled.tasks.items() if t in wanted},
                   annotations=tuple(a for a in pulled.annotations if a.task_id in wanted))


def _minus_seconds(stamp: str | None, seconds: float) -> str | None:
    """An ISO 8601 time ``seconds`` earlier (None stays None: a full pull follows)."""
    if not stamp:
        return None
    import datetime as dt

    try:
        value = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    value -= dt.timedelta(seconds=seconds)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
