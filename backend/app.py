"""galton as a Label Studio ML backend: the Flask app factory and its routes.

Routes (the protocol Label Studio 1.23 speaks; see ``../shared/label-studio.md``):

``GET /health``, ``GET /``   ``{"status": "UP", "model_class": "galton", ...}`` (no auth: for
                              container health checks; it reveals nothing about projects)
``POST /setup``              ``{"model_version": "galton-<method>-<hash>"}`` for the project's config
``POST /predict``            ``{"results": [...]}``: one entry per task, in order: the consensus
                              prediction, or ``[]`` (no prediction) for a task galton cannot score
``POST /webhook``            enqueue a review job (annotation created / updated / deleted, tasks
                              created / deleted, project updated); START_TRAINING queues a
                              training-dynamics job when enabled, else is recorded as unavailable;
                              ``GALTON_RESCORE`` (galton's own) asks for a full re-score
``POST /train``              older Label Studio training call: as START_TRAINING
``GET /versions``            ``{"versions": [...]}`` model versions in the state
``GET /metrics``             Prometheus text: requests, jobs, queue depth, predictions
``GET /jobs``                the latest job records (JSON; ``?project=ID``)

Errors are mapped in one place (:func:`_error`): ``{"error", "detail"}`` bodies, 400 for
malformed requests, 401 for missing or wrong credentials, 403 for a project outside
``GALTON_PROJECTS``, 413 for a body over ``GALTON_MAX_REQUEST_MB``, never a traceback or
task data.

On start, jobs the state records as ``running`` (the previous process died in them) are
marked ``interrupted`` and their projects are reviewed again (:func:`_resume_interrupted`):
the state only ever records what Label Studio confirmed, so the new job rewrites exactly
what the dead one may have left half-written.
"""

from __future__ import annotations

import base64
import bisect
import hmac
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from importlib.resources import files
from typing import Any

import orjson
from flask import Flask, Response, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from galton.connectors import LabelStudioConnector

from .jobs import FULL_EVENTS, JobQueue, Reviewer, project_id_of
from .settings import SECRET_HEADER, Settings
from .state import StateStore

__all__ = ["BadRequest", "create_app"]

log = logging.getLogger(__name__)
MODEL_CLASS = "galton"
REVIEW_EVENTS = frozenset({
    "ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED",
    "TASKS_CREATED", "TASKS_DELETED", "PROJECT_UPDATED",
})
RESCORE_EVENT = "GALTON_RESCORE"
PUBLIC = frozenset({"health", "index", "openapi"})
OPENAPI = files(__package__).joinpath("openapi.json").read_bytes()  # the routes' OpenAPI description
# upper bounds (seconds) of the /metrics latency histogram's buckets
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BadRequest(ValueError):
    """A malformed request: answered with 400 and the message as ``detail``."""


class Unauthorized(Exception):
    """Missing or wrong credentials: 401."""


class Forbidden(Exception):
    """A project this backend is not configured for (``GALTON_PROJECTS``): 403."""


def _error(status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    response = jsonify({"error": error, "detail": detail})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _same(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two secrets (False when either is missing)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _basic_credentials() -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


class _FastJSON(DefaultJSONProvider):
    """Flask's JSON through orjson: a /predict body of 100 full tasks parses in a fraction of
    the standard library's time (the parse held the interpreter for most of the request)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError as error:
            if "depth limit" in str(error):  # hostile nesting: answered as such (_json_body)
                raise RecursionError(str(error)) from None
            raise

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, default=self.default, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_body() -> dict[str, Any]:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # hostile nesting (orjson stops at a depth of 1024)
        raise BadRequest("the body is nested too deeply to be a Label Studio request") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object (Content-Type: application/json)")
    return body


def _resume_interrupted(settings: Settings, store: StateStore, reviewer: Reviewer) -> list[int]:
    """Mark the jobs a dead process left ``running`` as interrupted; review their projects again."""
    interrupted = store.interrupt_running()
    projects: dict[int, str] = {}
    for job in interrupted:
        names = {part.rsplit(" x", 1)[0] for part in str(job.get("reason") or "").split(", ")}
        if job.get("kind") != "review" or not settings.allows(job["project_id"]):
            continue
        full = bool(names & FULL_EVENTS) or projects.get(job["project_id"]) == "full"
        projects[job["project_id"]] = "full" if full else "resume"
    if interrupted:
        log.warning("%d jobs were interrupted by the previous process's end (ids %s); reviewing projects %s again",
                    len(interrupted), ", ".join(str(j["id"]) for j in interrupted[:10]),
                    ", ".join(map(str, sorted(projects))) or "(none)")
    if settings.can_write_back:
        for project_id, event in sorted(projects.items()):
            reviewer.submit(project_id, event)
    return sorted(projects)


def create_app(settings: Settings | None = None, *, store: StateStore | None = None,
               connector_factory: Callable[[], LabelStudioConnector] | None = None,
               queue: JobQueue | None = None, start_workers: bool = True) -> Flask:
    """The backend as a Flask app.

    Parameters
    ----------
    settings : Settings, optional
        Default: :meth:`Settings.from_env` (read once, here).
    store : StateStore, optional
        Default: opened at ``settings.state_url``.
    connector_factory : callable, optional
        Makes the Label Studio connector jobs use (tests pass a fake).
    queue : JobQueue, optional
        Default: a queue with ``settings.worker_threads`` threads (``start_workers=False``
        gives one without threads, driven by ``queue.run_next()``).
    """
    settings = settings or Settings.from_env()
    settings.validate()
    store = store or StateStore(settings.state_url)
    reviewer = Reviewer(settings, store, connector_factory)
    # jobs in a child process (galton serve): only with the real connector and a real queue
    in_child = settings.job_process and queue is None and connector_factory is None and start_workers
    if in_child:
        from .worker import JobProcess

        reviewer.remote = reviewer.queue = JobProcess(settings, nice=settings.job_nice)
    else:
        reviewer.queue = queue or JobQueue(reviewer.run, settings.worker_threads, start=start_workers)
    # explicit paths: galton is a namespace package (setuptools package-dir), which Flask's
    # package lookup does not handle; the backend serves no files, so nothing else needs them
    here = os.path.dirname(os.path.abspath(__file__))
    app = Flask("galton.backend", root_path=here, instance_path=os.path.join(here, "instance"))
    app.json = _FastJSON(app)
    app.config["MAX_CONTENT_LENGTH"] = int(settings.max_request_mb * 1024 * 1024)
    app.extensions["galton"] = reviewer
    requests_seen: Counter[tuple[str, int]] = Counter()
    latency: Counter[str] = Counter()
    cpu: Counter[str] = Counter()  # the answering thread's CPU time: far below the wall time = waiting for a CPU
    durations: dict[str, list[int]] = {}  # per route: requests per bucket of LATENCY_BUCKETS_S (+Inf last)
    lock = threading.Lock()

    # -------------------------------------------------------------- auth
    @app.before_request
    def _auth() -> Response | None:
        g.started = time.perf_counter()
        g.cpu_started = time.thread_time()
        if settings.auth_off or request.endpoint in PUBLIC:
            return None
        credentials = _basic_credentials()
        if settings.basic_auth and credentials is not None and _same(credentials[0], settings.basic_auth_user) \
                and _same(credentials[1], settings.basic_auth_password):
            return None
        if request.endpoint == "webhook" and settings.webhook_secret \
                and _same(request.headers.get(SECRET_HEADER), settings.webhook_secret):
            return None
        if request.endpoint != "webhook" and not settings.basic_auth:
            return None  # only a webhook secret is configured: it guards the webhook alone
        log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote_addr,
                    "wrong credentials" if credentials or request.headers.get(SECRET_HEADER) else "no credentials")
        return _error(401, "unauthorized", "missing or wrong credentials (HTTP basic auth, or the "
                      f"{SECRET_HEADER} header on webhooks)", {"WWW-Authenticate": 'Basic realm="galton"'})

    @app.after_request
    def _count(response: Response) -> Response:
        with lock:
            requests_seen[(request.endpoint or "unknown", response.status_code)] += 1
            if "started" in g:
                seconds = time.perf_counter() - g.started
                latency[request.endpoint or "unknown"] += int(seconds * 1e6)
                cpu[request.endpoint or "unknown"] += int((time.thread_time() - g.cpu_started) * 1e6)
                counts = durations.setdefault(request.endpoint or "unknown", [0] * (len(LATENCY_BUCKETS_S) + 1))
                counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        return response

    @app.errorhandler(BadRequest)
    def _bad(error: BadRequest) -> Response:
        return _error(400, "bad_request", str(error))

    @app.errorhandler(Forbidden)
    def _forbidden(error: Forbidden) -> Response:
        return _error(403, "forbidden", str(error))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(error: RequestEntityTooLarge) -> Response:
        log.warning("refused %s %s: body of %s bytes over GALTON_MAX_REQUEST_MB=%g", request.method, request.path,
                    request.content_length if request.content_length is not None else "?", settings.max_request_mb)
        return _error(413, "request_too_large", f"the body is larger than GALTON_MAX_REQUEST_MB="
                      f"{settings.max_request_mb:g} MB; raise that setting or send smaller batches")

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        return _error(error.code or 500, (error.name or "error").lower().replace(" ", "_"),
                      error.description or "")

    @app.errorhandler(Exception)
    def _internal(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal_error", "galton failed on this request; see the backend's log")

    def _allowed(project_id: int | None) -> None:
        if not settings.allows(project_id):
            log.warning("refused %s %s for project %s: not in GALTON_PROJECTS", request.method, request.path,
                        project_id if project_id is not None else "(none named)")
            raise Forbidden(f"this backend is configured for projects {sorted(settings.projects or ())} "
                            f"(GALTON_PROJECTS); the request names "
                            f"{'project ' + str(project_id) if project_id is not None else 'no project'}")

    # -------------------------------------------------------------- routes
    @app.get("/")
    def index() -> Response:
        return health()

    @app.get("/health")
    def health() -> Response:
        return jsonify({"status": "UP", "model_class": MODEL_CLASS, "method": settings.review.method,
                        "write_back": settings.can_write_back})

    @app.post("/setup")
    def setup() -> Response:
        body = _json_body()
        schema = body.get("schema")
        if not isinstance(schema, str) or not schema.strip():
            raise BadRequest("'schema' (the project's labeling config XML) is missing")
        project_id = project_id_of(body.get("project"))
        _allowed(project_id)
        version = _version(schema)
        if project_id is not None and settings.can_write_back and not store.has_project(project_id) \
                and not store.jobs(project_id, limit=1):
            reviewer.submit(project_id, "setup")  # first contact: review the whole project once
        return jsonify({"model_version": version})

    def _version(xml: str) -> str:
        try:
            return reviewer.model_version(xml)
        except ValueError as error:
            raise BadRequest(f"the labeling config cannot be read: {error}") from None

    @app.post("/predict")
    def predict() -> Response:
        body = _json_body()
        project_id = project_id_of(body.get("project"))
        _allowed(project_id)
        tasks = body.get("tasks")
        if not isinstance(tasks, list):
            raise BadRequest("'tasks' must be a list of Label Studio tasks")
        xml = body.get("label_config")
        if not isinstance(xml, str) or not xml.strip():
            raise BadRequest("'label_config' (the project's labeling config XML) is missing")
        _version(xml)  # a config that cannot be read is a bad request
        results = reviewer.predict(project_id, tasks, xml)
        return jsonify({"results": results})

    @app.post("/webhook")
    def webhook() -> Response:
        body = _json_body()
        action = body.get("action")
        if not isinstance(action, str):
            raise BadRequest("'action' is missing")
        project_id = project_id_of(body.get("project"))
        if project_id is None and isinstance(body.get("task"), Mapping):
            project_id = project_id_of(body["task"].get("project"))
        if project_id is None:
            raise BadRequest("the payload names no project ('project.id')")
        _allowed(project_id)
        if action == "START_TRAINING":
            job_id, status = reviewer.record_training(project_id)
            if status.startswith("queued"):
                return jsonify({"status": "accepted", "training": "queued", "job": job_id}), 201
            queued = reviewer.submit(project_id, "full") if settings.can_write_back else "skipped"
            return jsonify({"status": "accepted", "training": "unavailable", "detail": status, "job": job_id,
                            "rescore": queued}), 201
        if action == RESCORE_EVENT:  # galton's own: a full re-score (the scheduled sync sends it)
            return jsonify({"status": reviewer.submit(project_id, "full"), "project": project_id}), 202
        if action not in REVIEW_EVENTS:
            return jsonify({"status": "ignored", "action": action})
        if not settings.can_write_back:
            return jsonify({"status": "ignored", "reason": "LABEL_STUDIO_URL is not set"})
        return jsonify({"status": reviewer.submit(project_id, action, body), "project": project_id}), 202

    @app.post("/train")
    def train() -> Response:
        """Label Studio's older training call (without its webhook feature flag): as START_TRAINING."""
        body = _json_body()
        project_id = project_id_of(body.get("project"))
        if project_id is None:
            raise BadRequest("the body names no project ('project')")
        _allowed(project_id)
        job_id, status = reviewer.record_training(project_id)
        return jsonify({"status": status.split(":", 1)[0], "detail": status, "job": job_id})

    @app.get("/versions")
    def versions() -> Response:
        project_id = project_id_of(request.args.get("project"))
        return jsonify({"versions": store.model_versions(project_id)})

    @app.get("/jobs")
    def jobs() -> Response:
        project_id = project_id_of(request.args.get("project"))
        limit = request.args.get("limit", "50")
        if not limit.isdigit() or not 1 <= int(limit) <= 10_000:
            raise BadRequest(f"'limit' must be a whole number from 1 to 10000; got {limit[:40]!r}")
        return jsonify({"jobs": store.jobs(project_id, limit=int(limit))})

    @app.get("/openapi.json")
    def openapi() -> Response:
        """The OpenAPI description of these routes (backend/openapi.json)."""
        return Response(OPENAPI, mimetype="application/json")

    @app.get("/metrics")
    def metrics() -> Response:
        lines = ["# HELP galton_requests_total HTTP requests by route and status",
                 "# TYPE galton_requests_total counter"]
        with lock:
            seen, spent, busy = dict(requests_seen), dict(latency), dict(cpu)
            histograms = {route: list(counts) for route, counts in durations.items()}
        for (endpoint, status), n in sorted(seen.items()):
            lines.append(f'galton_requests_total{{route="{endpoint}",status="{status}"}} {n}')
        lines += ["# HELP galton_request_seconds_total time spent answering, by route",
                  "# TYPE galton_request_seconds_total counter"]
        for endpoint, micros in sorted(spent.items()):
            lines.append(f'galton_request_seconds_total{{route="{endpoint}"}} {micros / 1e6:.6f}')
        lines += ["# HELP galton_request_cpu_seconds_total CPU time of the threads answering, by route",
                  "# TYPE galton_request_cpu_seconds_total counter"]
        lines += [f'galton_request_cpu_seconds_total{{route="{endpoint}"}} {micros / 1e6:.6f}'
                  for endpoint, micros in sorted(busy.items())]
        lines += ["# HELP galton_request_duration_seconds time to answer, by route (from the request's start "
                  "to its answer, inside the backend)", "# TYPE galton_request_duration_seconds histogram"]
        for endpoint, counts in sorted(histograms.items()):
            below = 0
            for bound, n in zip((*LATENCY_BUCKETS_S, math.inf), counts, strict=True):
                below += n
                le = "+Inf" if bound == math.inf else f"{bound:g}"
                lines.append(f'galton_request_duration_seconds_bucket{{route="{endpoint}",le="{le}"}} {below}')
            lines += [f'galton_request_duration_seconds_sum{{route="{endpoint}"}} {spent.get(endpoint, 0) / 1e6:.6f}',
                      f'galton_request_duration_seconds_count{{route="{endpoint}"}} {below}']
        queue_depth = reviewer.queue.depth() if reviewer.queue else {}
        lines += ["# TYPE galton_jobs_queue gauge"] + [
            f'galton_jobs_queue{{state="{k}"}} {v}' for k, v in sorted(queue_depth.items())]
        if reviewer.queue is not None:
            lines += ["# TYPE galton_job_events_total counter",
                      f'galton_job_events_total{{outcome="submitted"}} {reviewer.queue.n_submitted}',
                      f'galton_job_events_total{{outcome="coalesced"}} {reviewer.queue.n_coalesced}']
        lines.append("# TYPE galton_backend_total counter")
        counters = Counter(reviewer.counters)
        if reviewer.remote is not None:  # the job counters are the job process's
            counters.update(reviewer.remote.counters())
        for name, value in sorted(counters.items()):
            lines.append(f'galton_backend_total{{what="{name}"}} {value}')
        return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")

    if not in_child:  # the job process resumes them itself
        _resume_interrupted(settings, store, reviewer)
    return app
