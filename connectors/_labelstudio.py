"""A Label Studio server: pull a project's multi-rater annotations, write galton's results back.

Built on label-studio-sdk 2.x (the ``labelstudio`` extra). Every call goes through one
retry loop: 5xx, 429, 408, timeouts and dropped connections are retried with exponential
backoff and jitter (``max_retries`` times); 4xx become :class:`PlatformError` naming the
project and the cause. The API key is never logged, printed or put into an error.

Pulls
    A full pull reads Label Studio's own JSON export of the project (one request), which
    Label Studio serialises with prefetched queries; its paged task API builds each task
    with extra per-task queries and was slower on the same project. An incremental pull
    (``since=``) pages through the task API with a Data Manager filter ``updated_at >=
    since`` (creating, updating or deleting an annotation, or adding a prediction, moves a
    task's ``updated_at``). The watermark is the server's clock (``Date`` header, less one
    second) from the request made before any task is read.

Write-back
    * predictions: one per task and galton model version; stale galton predictions are
      updated in place or deleted, predictions galton did not write (``model_version``
      not starting with ``galton-``) are never touched; new ones go in bulk through
      ``POST /api/projects/{id}/import/predictions``;
    * ``task.meta[key]`` (default ``"galton"``): Label Studio's PATCH replaces ``meta``
      whole, so each change re-reads the task's current ``meta`` and merges into it;
    * nothing is written where Label Studio already holds the same value, so a re-run
      writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._errors import PlatformError
from ._ls_config import NO_YES, LabelConfig, Question, parse_label_config
from ._ls_tasks import PulledProject, WorkerInfo, parse_tasks

__all__ = [
    "GALTON_PREFIX",
    "LabelStudioConnector",
    "PredictionSpec",
    "WriteSummary",
    "is_galton_prediction",
    "prediction_result",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
GALTON_PREFIX = "galton-"
_SCORE_DIGITS = 4
WORKERS_TTL_S = 600.0  # the user list is read again after this long
PER_TASK_READ_MAX = 20  # up to this many tasks' predictions are listed task by task, more in one listing
BULK_MIN = 15  # more predictions than this to write go in bulk (each bulk call costs seconds)
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True, slots=True)
class PredictionSpec:
    """One task's prediction: Label Studio result regions and a score in [0, 1]."""

    result: tuple[Mapping[str, Any], ...]
    score: float


@dataclass
class WriteSummary:
    """What a write-back changed in Label Studio (counts of tasks or predictions)."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    task_ids: list[int] = field(default_factory=list)
    # tasks whose create was sent again after a lost answer: the first request may still land
    # after the check that preceded the retry, so they may hold two galton predictions (a
    # later write of the task removes the surplus); callers should not count them as settled
    uncertain: list[int] = field(default_factory=list)
    # what each task holds after the write, where Label Studio said so (in the form of
    # TaskRecord.predictions): tasks given a prediction by an import or sent again are absent
    held: dict[int, tuple[dict[str, Any], ...]] = field(default_factory=dict)

    @property
    def written(self) -> int:
        return self.created + self.updated + self.deleted

    def to_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "deleted": self.deleted,
                "unchanged": self.unchanged}


def prediction_result(config: LabelConfig, labels: Mapping[str, str]) -> tuple[dict[str, Any], ...]:
    """Result regions in the project's own control-tag format from one class per question.

    ``labels`` maps question keys to class names (``"no"``/``"yes"`` for the questions of
    a multiple-choice control). Controls without a label are left out.

    >>> cfg = parse_label_config('<View><Text name="t" value="$x"/><Choices name="s" toName="t">'
    ...                          '<Choice value="a"/><Choice value="b"/></Choices></View>')
    >>> prediction_result(cfg, {"s": "b"})
    ({'from_name': 's', 'to_name': 't', 'type': 'choices', 'value': {'choices': ['b']}},)
    """
    regions = []
    for control, questions in config.controls().items():
        first: Question = questions[0]
        if first.choice is not None:  # multiple choice: the chosen ones, in config order
            answered = [q for q in questions if q.key in labels]
            if not answered:
                continue
            value: dict[str, Any] = {"choices": [q.choice for q in answered if labels[q.key] == NO_YES[1]]}
        elif first.key not in labels:
            continue
        else:
            label = labels[first.key]
            if first.tag == "Choices":
                value = {"choices": [label]}
            elif first.tag == "Rating":
                value = {"rating": int(label)}
            elif first.tag == "Pairwise":
                value = {"selected": label}
            else:
                value = {"taxonomy": [label.split(" / ")]}
        regions.append({"from_name": control, "to_name": first.to_name, "type": first.result_type, "value": value})
    return tuple(regions)


def is_galton_prediction(prediction: Mapping[str, Any]) -> bool:
    """Whether a prediction (as Label Studio lists it) is galton's: its model version says so."""
    return str(prediction.get("model_version") or "").startswith(GALTON_PREFIX)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _result_key(result: Any) -> str:
    """Compare results by content only (Label Studio adds ids and origin fields)."""
    regions = []
    for region in result or []:
        if isinstance(region, Mapping):
            regions.append({k: region.get(k) for k in ("from_name", "to_name", "type", "value")})
    return _canonical(sorted(regions, key=_canonical))


def _chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class LabelStudioConnector:
    """Pull from and write back to one Label Studio server.

    Parameters
    ----------
    url : str
        Label Studio's base URL, e.g. ``http://127.0.0.1:8080``.
    api_key : str
        A legacy token or a personal access token (the SDK handles both). Never logged.
    timeout : float
        Seconds per request (the full export gets ``export_timeout``).
    max_retries : int
        Retries after the first try, for 5xx, 429, 408, timeouts and dropped connections.
    backoff : float
        First retry delay in seconds; doubles each retry (capped at 30 s), with jitter.
    n_threads : int
        Concurrent requests for per-task writes and incremental pages.
    bulk_min : int
        A prediction write-back of more requests than this goes in bulk (see
        :meth:`write_predictions`); default ``BULK_MIN``.

    Examples
    --------
    >>> connector = LabelStudioConnector("http://127.0.0.1:8080", api_key)     # doctest: +SKIP
    >>> pulled = connector.pull(12)                                             # doctest: +SKIP
    >>> pulled.questions()["sentiment"].matrix                                  # doctest: +SKIP
    """

    def __init__(self, url: str, api_key: str, *, timeout: float = 30.0, export_timeout: float = 600.0,
                 max_retries: int = 4, backoff: float = 0.5, n_threads: int = 4, page_size: int = 100,
                 bulk_min: int = BULK_MIN) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise PlatformError(f"the Label Studio URL must start with http:// or https://, got {url!r}")
        if not api_key:
            raise PlatformError("no API key: set LABEL_STUDIO_API_KEY (Account & Settings > Access Token)")
        try:
            import httpx
            from label_studio_sdk import LabelStudio
        except ImportError as error:  # pragma: no cover - depends on the installed extras
            raise ImportError("the Label Studio connector needs its extra: pip install 'galton[labelstudio]'") \
                from error
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self.export_timeout = float(export_timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.n_threads = max(1, int(n_threads))
        self.page_size = int(page_size)
        self.bulk_min = max(0, int(bulk_min))
        self._httpx = httpx
        self._http = httpx.Client(timeout=self.timeout, follow_redirects=True,
                                  limits=httpx.Limits(max_connections=self.n_threads + 2))
        # retries are ours (the SDK's do not cover timeouts); the SDK keeps auth and typing
        self.sdk = LabelStudio(base_url=self.url, api_key=api_key, httpx_client=self._http, max_retries=0,
                               timeout=self.timeout)
        self._rng = random.Random()
        self._workers: tuple[dict[int, WorkerInfo] | None, float] = (None, 0.0)
        self._workers_lock = threading.Lock()

    def __repr__(self) -> str:  # never shows the key
        return f"LabelStudioConnector({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabelStudioConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the retry loop
    def _call(self, what: str, project_id: int | None, fn: Callable[[], T], *, max_retries: int | None = None) -> T:
        """Run ``fn`` with retries; map failures to PlatformError without secrets."""
        from label_studio_sdk.core.api_error import ApiError

        retries = self.max_retries if max_retries is None else int(max_retries)
        attempt = 0
        while True:
            try:
                return fn()
            except ApiError as error:
                status = error.status_code
                retryable = status is None or status >= 500 or status in (408, 429)
                if not retryable:
                    raise PlatformError(f"{what} failed: {_status_text(status, error.body)}",
                                        project_id=project_id, status=status) from None
                cause = f"HTTP {status}"
            except self._httpx.HTTPError as error:  # timeouts, refused and dropped connections
                status, cause = None, error.__class__.__name__
            if attempt >= retries:
                raise PlatformError(f"{what} failed after {attempt + 1} tries: {cause}", project_id=project_id,
                                    status=status, retryable=True) from None
            delay = min(self.backoff * 2.0**attempt, 30.0) * (0.5 + self._rng.random())
            log.warning("%s: %s, retry %d of %d in %.1f s", what, cause, attempt + 1, retries, delay)
            time.sleep(delay)
            attempt += 1

    def _raw(self, method: str, path: str, *, project_id: int | None, what: str, timeout: float | None = None,
             max_retries: int | None = None, **kwargs: Any) -> Any:
        """A raw JSON request through the SDK's authenticated HTTP client (same retries)."""
        from label_studio_sdk.core.api_error import ApiError

        def request() -> Any:
            response = self.sdk._client_wrapper.httpx_client.request(
                path, method=method, request_options={"max_retries": 0, "timeout_in_seconds": timeout or self.timeout},
                **kwargs,
            )
            if response.status_code >= 400:
                raise ApiError(status_code=response.status_code, headers=dict(response.headers), body=_body(response))
            return response

        return self._call(what, project_id, request, max_retries=max_retries)

    # ------------------------------------------------------------------ reading
    def project(self, project_id: int) -> Any:
        """The project object (title, label_config, ...)."""
        return self._call("reading the project", project_id, lambda: self.sdk.projects.get(id=project_id))

    def label_config(self, project_id: int) -> LabelConfig:
        return parse_label_config(self.project(project_id).label_config or "")

    def workers(self) -> dict[int, WorkerInfo]:
        """All users of the organisation: id -> e-mail and name (for display)."""
        users = self._call("listing users", None, lambda: self.sdk.users.list())
        out = {}
        for user in users:
            name = " ".join(x for x in (user.first_name or "", user.last_name or "") if x).strip()
            out[int(user.id)] = WorkerInfo(int(user.id), user.email or "", name or (user.username or ""))
        return out

    def pull(self, project_id: int, *, since: str | None = None, item_field: str | None = None,
             gold: Mapping[str, Mapping[Hashable, str]] | None = None, progress: Progress | None = None,
             config: LabelConfig | None = None) -> PulledProject:
        """All tasks of a project with their annotations, or only those changed ``since``.

        Parameters
        ----------
        since : str, optional
            An ISO 8601 time, usually the ``watermark`` of the previous pull: only tasks
            updated at or after it are read (merge them with :meth:`PulledProject.merge`).
        item_field : str, optional
            A ``data`` field to use as item id instead of the task id.
        gold : mapping, optional
            ``{question key: {item: class}}`` from a gold file; wins over ground-truth marks.
        progress : callable(done, total), optional
            Called as tasks arrive (total is None while unknown).

        Raises
        ------
        PlatformError
            Bad token (401), no permission (403), unknown project (404), or the server
            still failing after the retries.
        """
        # The watermark (the server's Date on the project request) precedes every task read:
        # Label Studio builds an export from several queries over tens of seconds, so a time
        # taken after it could skip a change made to an already-exported task meanwhile. An
        # incremental pull sends the project request and its first task page at once; that
        # page's query starts after both were sent, so the Date less the project request's
        # round trip still precedes it.
        first_page = None
        with ThreadPoolExecutor(1) as pool:
            sent = time.monotonic()
            if since is not None:
                first_page = pool.submit(self._task_page, project_id, since, 1)
            response = self._raw("GET", f"api/projects/{project_id}/", project_id=project_id,
                                 what="reading the project")
            started = _server_time(response, earlier_by=time.monotonic() - sent if since is not None else 0.0)
            if config is None:
                body = response.json()
                config = parse_label_config(str(body.get("label_config") or "") if isinstance(body, dict) else "")
            if first_page is None:
                tasks = self._export(project_id, progress)
            else:
                tasks = self._pages(project_id, since or "", progress, first=first_page.result().json())
        return parse_tasks(tasks, config, project_id=project_id, item_field=item_field, gold=gold,
                           workers=self._known_workers(tasks), watermark=started)

    def _known_workers(self, tasks: Sequence[Any]) -> dict[int, WorkerInfo]:
        """The organisation's users, listed again only when these tasks name a user not seen
        yet or the list is older than ``WORKERS_TTL_S`` (an incremental pull of a few tasks
        then costs no user listing)."""
        needed = set()
        for task in tasks:
            for annotation in (task.get("annotations") or []) if isinstance(task, Mapping) else []:
                user = annotation.get("completed_by") if isinstance(annotation, Mapping) else None
                if isinstance(user, int) and not isinstance(user, bool):
                    needed.add(user)
        with self._workers_lock:
            cached, when = self._workers
            if cached is None or time.monotonic() - when > WORKERS_TTL_S or not needed <= cached.keys():
                cached = self.workers()
                self._workers = (cached, time.monotonic())
            return cached

    def _export(self, project_id: int, progress: Progress | None) -> list[dict[str, Any]]:
        # a timed-out export is tried once more, not max_retries times (each try can take minutes)
        response = self._raw(
            "GET", f"api/projects/{project_id}/export", project_id=project_id, what="exporting the project",
            timeout=self.export_timeout, params={"exportType": "JSON", "download_all_tasks": "true"},
            max_retries=min(self.max_retries, 1),
        )
        tasks = response.json()
        if not isinstance(tasks, list):
            raise PlatformError("the export did not return a list of tasks", project_id=project_id)
        if progress is not None:
            progress(len(tasks), len(tasks))
        return tasks

    def _task_page(self, project_id: int, since: str, number: int) -> Any:
        query = json.dumps({
            "filters": {"conjunction": "and", "items": [
                {"filter": "filter:tasks:updated_at", "operator": "greater_or_equal", "type": "Datetime",
                 "value": _filter_time(since)},
            ]},
            "ordering": ["tasks:id"],
        })
        return self._raw("GET", "api/tasks/", project_id=project_id, what=f"reading task page {number}",
                         params={"project": project_id, "page": number, "page_size": self.page_size,
                                 "fields": "all", "query": query})

    def _pages(self, project_id: int, since: str, progress: Progress | None, *,
               first: Any = None) -> list[dict[str, Any]]:
        def page(number: int) -> Any:
            return self._task_page(project_id, since, number)

        body = first if first is not None else page(1).json()
        total = int(body.get("total") or 0)
        tasks: list[dict[str, Any]] = list(body.get("tasks") or [])
        if progress is not None:
            progress(len(tasks), total)
        n_pages = max(1, math.ceil(total / self.page_size))
        with ThreadPoolExecutor(min(self.n_threads, 2)) as pool:
            for response in pool.map(page, range(2, n_pages + 1)):
                tasks.extend(response.json().get("tasks") or [])
                if progress is not None:
                    progress(len(tasks), total)
        unique = {int(t["id"]): t for t in tasks if isinstance(t, dict) and isinstance(t.get("id"), int)}
        return list(unique.values())

    def predictions(self, project_id: int) -> list[dict[str, Any]]:
        """Every prediction of the project (id, task, model_version, score, result)."""
        response = self._raw("GET", "api/predictions/", project_id=project_id, what="listing predictions",
                             timeout=self.export_timeout, params={"project": project_id})
        body = response.json()
        return body if isinstance(body, list) else list(body.get("results") or [])

    # ------------------------------------------------------------------ writing
    def task_predictions(self, project_id: int, task_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """Every prediction (of any model) on these tasks: one listing per task when there are
        few (``PER_TASK_READ_MAX``), else the project's whole listing (one request)."""
        ids = sorted({int(t) for t in task_ids})
        out: dict[int, list[dict[str, Any]]] = {t: [] for t in ids}
        if len(ids) <= PER_TASK_READ_MAX:
            def listing(task_id: int) -> list[dict[str, Any]]:
                body = self._raw("GET", "api/predictions/", project_id=project_id,
                                 what=f"listing the predictions of task {task_id}", params={"task": task_id}).json()
                return body if isinstance(body, list) else list(body.get("results") or [])

            with ThreadPoolExecutor(self.n_threads) as pool:
                for task_id, found in zip(ids, pool.map(listing, ids), strict=True):
                    out[task_id] = [p for p in found if int(p.get("task", task_id)) == task_id]
            return out
        for prediction in self.predictions(project_id):
            task_id = int(prediction["task"])
            if task_id in out:
                out[task_id].append(prediction)
        return out

    def write_predictions(self, project_id: int, predictions: Mapping[int, PredictionSpec], model_version: str,
                          *, known: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
                          progress: Progress | None = None) -> WriteSummary:
        """Make each task hold exactly one galton prediction equal to ``predictions[task]``.

        Existing galton predictions (``model_version`` starting with ``galton-``) are kept
        when equal and replaced when stale or surplus; predictions of other models are never
        touched. A second call with the same input writes nothing.

        ``known`` (task id -> the predictions it holds, as a pull just read them, see
        :attr:`TaskRecord.predictions`) spares reading them again; the other tasks' are read
        (:meth:`task_predictions`).

        Label Studio writes one prediction per request (about 0.3 s each on a loaded small
        server) and its bulk import costs a few seconds whatever its size (it validates against
        the labeling config), so new predictions go one request each up to ``bulk_min``
        (``BULK_MIN``) writes and in one import above. Stale ones are updated in place, one
        request each: replacing them in bulk (the Data Manager's delete action, then an
        import) measured slower while annotators save (the action recounts every task in one
        long write), and it would remove another model's prediction written meanwhile.
        """
        if not model_version.startswith(GALTON_PREFIX):
            raise ValueError(f"galton's model versions start with {GALTON_PREFIX!r}; got {model_version!r}")
        held: dict[int, list[Mapping[str, Any]]] = {t: list(known[t]) for t in predictions
                                                    if known is not None and known.get(t) is not None}
        missing = [t for t in predictions if t not in held]
        if missing:
            held.update(self.task_predictions(project_id, missing))
        summary = WriteSummary()
        after: dict[int, tuple[dict[str, Any], ...]] = {}  # what each task holds once the writes return
        create: list[dict[str, Any]] = []
        updates: list[tuple[int, dict[str, Any]]] = []
        deletes: list[int] = []
        for task_id, spec in predictions.items():
            score = round(float(spec.score), _SCORE_DIGITS)
            wanted = {"result": list(spec.result), "score": score, "model_version": model_version}
            on_task = held.get(task_id, [])
            mine = sorted((p for p in on_task if is_galton_prediction(p)),
                          key=lambda p: (p.get("model_version") != model_version, p["id"]))
            others = tuple(dict(p) for p in on_task if p not in mine)
            if not mine:
                create.append({"task": task_id, **wanted})
                summary.task_ids.append(task_id)
                after[task_id] = others
                continue
            keep, surplus = mine[0], [int(p["id"]) for p in mine[1:]]
            after[task_id] = (*others, {"id": int(keep["id"]), "task": task_id, **wanted})
            same = (keep.get("model_version") == model_version
                    and _result_key(keep.get("result")) == _result_key(spec.result)
                    and keep.get("score") is not None and abs(float(keep["score"]) - score) < 10**-_SCORE_DIGITS)
            if same:
                summary.unchanged += 1
                after[task_id] = (*others, {"id": int(keep["id"]), "task": task_id, "model_version": model_version,
                                            "score": keep.get("score"), "result": keep.get("result")})
                if surplus:
                    summary.task_ids.append(task_id)
                    deletes.extend(surplus)
                continue
            summary.task_ids.append(task_id)
            updates.append((int(keep["id"]), wanted))
            deletes.extend(surplus)
        # the import only pays for itself above bulk_min single requests
        bulk = len(create) > self.bulk_min
        done = 0
        total = len(create) + len(updates) + len(deletes)

        created_ids: dict[int, int] = {}

        def post(item: dict[str, Any]) -> None:
            def send(items: list[dict[str, Any]]) -> None:
                made = self.sdk.predictions.create(**items[0])
                made_id = getattr(made, "id", None)
                if isinstance(made_id, int) and not isinstance(made_id, bool):
                    created_ids[int(items[0]["task"])] = made_id

            summary.uncertain.extend(self._create_once(project_id, [item], model_version, send))

        if bulk:
            for batch in _chunks(create, 500):
                summary.uncertain += self._create_once(
                    project_id, list(batch), model_version,
                    lambda items: self.sdk.projects.import_predictions(
                        id=project_id, request=items, request_options={"timeout_in_seconds": self.export_timeout}))
                summary.created += len(batch)
                done += len(batch)
                if progress is not None:
                    progress(done, total)

        def update(item: tuple[int, dict[str, Any]]) -> None:
            prediction_id, wanted = item
            self._call(f"updating prediction {prediction_id}", project_id,
                       lambda: self.sdk.predictions.update(id=prediction_id, **wanted))

        with ThreadPoolExecutor(self.n_threads) as pool:
            for _ in pool.map(post, [] if bulk else create):
                summary.created += 1
                done += 1
                if progress is not None:
                    progress(done, total)
            for _ in pool.map(update, updates):
                summary.updated += 1
                done += 1
                if progress is not None:
                    progress(done, total)
            for _ in pool.map(lambda i: self._delete_prediction(project_id, i), deletes):
                summary.deleted += 1
                done += 1
                if progress is not None:
                    progress(done, total)
        created_tasks = {int(item["task"]): item for item in create}
        for task_id, holds in after.items():
            if task_id in created_tasks:
                if bulk or task_id not in created_ids or task_id in summary.uncertain:
                    continue  # an import answers no ids; a create sent again may have landed twice
                item = created_tasks[task_id]
                holds = (*holds, {"id": created_ids[task_id], "task": task_id, "model_version": model_version,
                                  "score": item["score"], "result": item["result"]})
            summary.held[task_id] = holds
        return summary

    def _create_once(self, project_id: int, items: list[dict[str, Any]], model_version: str,
                     send: Callable[[list[dict[str, Any]]], Any]) -> list[int]:
        """Create predictions so that each lands once, though a request may fail after Label
        Studio applied it (a lost answer, a timeout): each try is sent once (bulk calls with the
        long ``export_timeout``), and before a retry the tasks are read again and only those
        still without a prediction of ``model_version`` are sent (creates only go to tasks that
        hold none of it). Returns the tasks sent again after a try that got no answer (a
        timeout, a dropped connection): that try may still be running in Label Studio when the
        check reads, so they may end with two."""
        pending, attempt, resent = items, 0, []
        while True:
            try:
                self._call(f"creating {len(pending)} predictions", project_id, lambda p=pending: send(p),
                           max_retries=0)
                return resent
            except PlatformError as error:
                if not error.retryable or attempt >= self.max_retries:
                    raise
                cause = str(error)
                # an answered 5xx means the server finished with the request, so the re-read
                # below sees what it did; without an answer it may still be at work
                unanswered = error.status is None
            delay = min(self.backoff * 2.0**attempt, 30.0) * (0.5 + self._rng.random())
            log.warning("%s; reading the tasks again, retry %d of %d in %.1f s", cause, attempt + 1,
                        self.max_retries, delay)
            time.sleep(delay)
            attempt += 1
            held = self.task_predictions(project_id, [int(p["task"]) for p in pending])
            pending = [p for p in pending
                       if not any(q.get("model_version") == model_version for q in held.get(int(p["task"]), []))]
            if not pending:
                return resent
            if unanswered:
                resent = sorted({*resent, *(int(p["task"]) for p in pending)})

    def _delete_prediction(self, project_id: int, prediction_id: int) -> None:
        try:
            self._call(f"deleting prediction {prediction_id}", project_id,
                       lambda: self.sdk.predictions.delete(id=prediction_id))
        except PlatformError as error:
            if error.status != 404:  # already gone (a retried delete) is what we wanted
                raise

    def _delete_task_predictions(self, project_id: int, task_ids: list[int]) -> int:
        """Delete every prediction on these tasks in one request (Data Manager action); how many."""
        response = self._raw("POST", "api/dm/actions", project_id=project_id, timeout=self.export_timeout,
                             what=f"deleting the predictions of {len(task_ids)} tasks",
                             params={"id": "delete_tasks_predictions", "project": project_id},
                             json={"selectedItems": {"all": False, "included": list(task_ids)}})
        body = _body(response)
        count = body.get("processed_items") if isinstance(body, dict) else None
        return int(count) if isinstance(count, int) else 0

    def write_meta(self, project_id: int, values: Mapping[int, Mapping[str, Any]], *, key: str = "galton",
                   current: Mapping[int, Mapping[str, Any]] | None = None,
                   progress: Progress | None = None) -> WriteSummary:
        """Set ``task.meta[key] = values[task]`` on each task, keeping the rest of ``meta``.

        ``current`` (task id -> meta as last pulled) lets unchanged tasks be skipped without a
        request; the changed tasks' ``meta`` is re-read (100 tasks a request) right before the
        PATCHes so that what users keep in ``meta`` is merged, not clobbered.
        """
        summary = WriteSummary()
        todo = []
        for task_id, value in values.items():
            value = json.loads(_canonical(value))  # JSON-clean and comparable
            before = current.get(task_id) if current is not None else None
            if before is not None and _canonical(before.get(key)) == _canonical(value):
                summary.unchanged += 1
            else:
                todo.append((task_id, value))

        fresh: dict[int, dict[str, Any]] = {}
        for batch in _chunks([task_id for task_id, _ in todo], 100):
            fresh.update(self._current_meta(project_id, batch))

        def write(item: tuple[int, dict[str, Any]]) -> bool:
            task_id, value = item
            meta = dict(fresh.get(task_id) or {})
            if _canonical(meta.get(key)) == _canonical(value):
                return False
            meta[key] = value
            self._call(f"updating task {task_id}", project_id,
                       lambda: self.sdk.tasks.update(id=str(task_id), meta=meta))
            return True

        with ThreadPoolExecutor(self.n_threads) as pool:
            for done, ((task_id, _), changed) in enumerate(zip(todo, pool.map(write, todo), strict=True), start=1):
                if changed:
                    summary.updated += 1
                    summary.task_ids.append(task_id)
                else:
                    summary.unchanged += 1
                if progress is not None:
                    progress(done, len(todo))
        return summary

    def _current_meta(self, project_id: int, task_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """``meta`` of these tasks as Label Studio holds it now (one request per 100 tasks)."""
        query = json.dumps({"selectedItems": {"all": False, "included": list(task_ids)}})
        response = self._raw("GET", "api/tasks/", project_id=project_id, what="reading task meta",
                             params={"project": project_id, "page": 1, "page_size": len(task_ids),
                                     "fields": "task_only", "include": "id,meta", "query": query})
        tasks = response.json().get("tasks") or []
        found = {int(t["id"]): dict(t.get("meta") or {}) for t in tasks}
        missing = [t for t in task_ids if t not in found]
        if missing:
            raise PlatformError(f"{len(missing)} tasks to update are gone from the project (task ids "
                                f"{', '.join(map(str, missing[:5]))}{' ...' if len(missing) > 5 else ''})",
                                project_id=project_id, status=404)
        return found

    def delete_galton_predictions(self, project_id: int, task_ids: Iterable[int] | None = None) -> int:
        """Remove galton's predictions (all, or on ``task_ids``); returns how many.

        More than ``bulk_min`` of them on tasks that hold only galton's predictions go in one
        Data Manager delete action; the rest one by one, so another model's predictions stay.
        """
        wanted = None if task_ids is None else {int(t) for t in task_ids}
        if wanted is not None:
            held = self.task_predictions(project_id, wanted)
        else:
            held = {}
            for prediction in self.predictions(project_id):
                held.setdefault(int(prediction["task"]), []).append(prediction)
        bulk: list[int] = []
        one_by_one: list[int] = []
        n_bulk = 0
        for task_id, on_task in held.items():
            if wanted is not None and task_id not in wanted:
                continue
            mine = [int(p["id"]) for p in on_task if is_galton_prediction(p)]
            if mine and len(mine) == len(on_task):
                bulk.append(task_id)
                n_bulk += len(mine)
            else:
                one_by_one.extend(mine)
        if n_bulk <= self.bulk_min:
            one_by_one.extend(int(p["id"]) for t in bulk for p in held[t])
            bulk, n_bulk = [], 0
        for batch in _chunks(sorted(bulk), 1000):
            self._delete_task_predictions(project_id, batch)
        with ThreadPoolExecutor(self.n_threads) as pool:
            list(pool.map(lambda i: self._delete_prediction(project_id, i), one_by_one))
        return n_bulk + len(one_by_one)


def _body(response: Any) -> Any:
    with contextlib.suppress(ValueError):
        return response.json()
    return None


def _status_text(status: int | None, body: Any) -> str:
    reasons = {
        400: "bad request",
        401: "the API key was refused (check LABEL_STUDIO_API_KEY; legacy tokens must be enabled for 'Token' keys)",
        403: "this API key has no permission for it",
        404: "not found (check the project id)",
        413: "the request is too large",
    }
    text = f"HTTP {status}: {reasons.get(status or 0, 'refused')}"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and len(detail) < 200:
        text += f" ({detail})"
    return text


def _filter_time(value: str) -> str:
    """An ISO 8601 time in the one format Label Studio's Datetime filters accept."""
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PlatformError(f"since={value!r} is not an ISO 8601 time such as 2026-01-31T12:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _server_time(response: Any, *, earlier_by: float = 0.0) -> str:
    """The server's clock from the Date header, less ``earlier_by`` seconds (and one more:
    the header has second resolution)."""
    header = response.headers.get("date")
    when = None
    if header:
        with contextlib.suppress(TypeError, ValueError):
            when = email.utils.parsedate_to_datetime(header)
    if when is None:
        when = dt.datetime.now(dt.timezone.utc)
    when = when.astimezone(dt.timezone.utc) - dt.timedelta(seconds=1 + math.ceil(max(0.0, earlier_by)))
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")
