"""galton's ML backend: /predict latency and webhook-to-prediction time under a burst.

Goals (project issue 4): ``/predict`` p99 under 50 ms for 100 tasks from fresh state on a
project of 10k tasks x 5 raters; webhook-to-prediction p99 under 5 s during a burst of 200
annotations, with no lost update (every task's final prediction equals the consensus
recomputed offline from Label Studio's final export).

1. **/predict** (no Label Studio needed): a simulated crowd (:func:`galton.quality.simulate_crowd`,
   fixed seed) of ``--tasks`` tasks x ``--raters`` raters becomes Label Studio task dicts;
   the backend's review job runs once on them (an in-memory connector stands in for Label
   Studio), so the state is fresh. The app then runs on waitress on 127.0.0.1 and
   ``--requests`` real HTTP ``POST /predict`` calls are timed for 1 and 100 tasks (fresh:
   the tasks as stored) and for 100 tasks whose annotations changed (computed on the spot).
2. **burst** (a real Label Studio, started for the run): a project of ``--ls-tasks`` tasks
   with ``--raters - 1`` annotations each; ``galton serve`` runs as its own process and is
   registered as the project's ML backend (basic auth; the webhook Label Studio creates
   gets the secret header). After the first review, ``--burst`` annotations by the last
   rater go in from ``--post-threads`` threads at once (default 4), on the least certain tasks with their planted truth
   (an expert; a label against the consensus leaves MACE's prediction as it is: it learns
   to discount that rater), once the first review is done (the backend's queue
   is idle), so the burst measures the steady state. For each, the time runs from just
   before the annotation is posted (Label Studio sends the webhook inside that request)
   until Label Studio holds a changed galton prediction for the task, and separately until
   its ``meta.galton`` counts the new annotation (both read from Label Studio's SQLite file,
   read-only, every 0.1 s, so the watching adds no load to its request threads; a task whose
   prediction galton leaves as it was, same label and score, counts as processed once its
   meta is). After the backend
   is idle again the final export is pulled, the consensus recomputed offline, and
   compared with galton's prediction on every task.

Run from the repository root::

    .venv/bin/python benchmarks/backend.py                         # 10k tasks for /predict, 2k in Label Studio
    .venv/bin/python benchmarks/backend.py --tasks 2000 --ls-tasks 500   # quick
    .venv/bin/python benchmarks/backend.py --skip-burst            # /predict only

Results: ``benchmarks/results/backend.json`` and ``backend.md`` (``--out`` elsewhere; the burst
posted from one thread, ``--post-threads 1``, is kept in ``backend_1thread.*``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
OUT = REPO / "benchmarks" / "results" / "backend.json"
CLASSES = ("negative", "neutral", "positive")


def say(text: str) -> None:
    print(text, flush=True)


def config_xml(n_classes: int, classes: tuple[str, ...] = CLASSES) -> str:
    choices = "".join(f'<Choice value="{c}"/>' for c in classes[:n_classes])
    return f'<View><Text name="text" value="$text"/><Choices name="label" toName="text">{choices}</Choices></View>'


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1000.0
    return {"n": len(values), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}


def simulated_tasks(n_tasks: int, n_raters: int, n_classes: int, seed: int) -> list[dict[str, Any]]:
    from galton.quality import simulate_crowd

    crowd = simulate_crowd(n_tasks, n_workers=n_raters, n_classes=n_classes, labels_per_item=n_raters,
                           random_state=seed)
    m = crowd.matrix
    tasks = [{"id": i + 1, "data": {"text": f"item {i}"}, "meta": {}, "annotations": []} for i in range(m.n_items)]
    for k, (i, w, c) in enumerate(zip(m.items.tolist(), m.workers.tolist(), m.labels.tolist(), strict=True)):
        tasks[i]["annotations"].append({
            "id": k + 1, "completed_by": w + 1, "updated_at": "2024-01-01T00:00:00Z",
            "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                        "value": {"choices": [CLASSES[c]]}}]})
    return tasks


class MemoryConnector:
    """Label Studio in memory for phase 1: pulls parse the tasks, writes are accepted."""

    def __init__(self, tasks: list[dict[str, Any]], xml: str) -> None:
        self.tasks, self.xml = tasks, xml

    def label_config(self, project_id: int) -> Any:
        from galton.connectors import parse_label_config

        return parse_label_config(self.xml)

    def pull(self, project_id: int, *, config: Any = None, since: Any = None, **_: Any) -> Any:
        from galton.connectors import parse_tasks

        return parse_tasks(self.tasks, config or self.xml, project_id=project_id, watermark="2024-01-01T00:00:00Z")

    def write_predictions(self, project_id: int, predictions: Any, model_version: str, **_: Any) -> Any:
        from galton.connectors import WriteSummary

        return WriteSummary(created=len(predictions))

    def write_meta(self, project_id: int, values: Any, **_: Any) -> Any:
        from galton.connectors import WriteSummary

        return WriteSummary(updated=len(values))

    def delete_galton_predictions(self, project_id: int, task_ids: Any = None) -> int:
        return 0

    def close(self) -> None:
        pass


def predict_phase(args: argparse.Namespace) -> dict[str, Any]:
    import httpx
    from waitress.server import create_server

    from galton.backend.app import create_app
    from galton.backend.review import ReviewSettings
    from galton.backend.settings import Settings

    xml = config_xml(args.classes)
    say(f"/predict: simulating {args.tasks} tasks x {args.raters} raters ...")
    tasks = simulated_tasks(args.tasks, args.raters, args.classes, args.seed)
    settings = Settings(state_url="sqlite://", auth_off=True, label_studio_url="http://memory.invalid",
                        label_studio_api_key="unused", review=ReviewSettings(method=args.method))
    app = create_app(settings, connector_factory=lambda: MemoryConnector(tasks, xml), start_workers=False)
    reviewer = app.extensions["galton"]
    reviewer.submit(1, "full")
    started = time.perf_counter()
    reviewer.queue.run_next()
    review_s = time.perf_counter() - started
    job = reviewer.store.jobs(1)[0]
    assert job["status"] == "done", job
    say(f"  first review job (pull + {args.method} + diff + commit) in {review_s:.2f} s")
    from galton.backend.worker import freeze_heap

    freeze_heap()  # as galton serve does before it serves (its project's state included here)
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    rng = np.random.default_rng(args.seed)
    out: dict[str, Any] = {"n_tasks": args.tasks, "n_raters": args.raters, "method": args.method,
                           "first_review_s": round(review_s, 3)}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            def body(batch: list[dict[str, Any]]) -> bytes:
                return json.dumps({"tasks": batch, "project": "1.1700000000", "label_config": xml,
                                   "params": {"login": None, "password": None, "context": None}}).encode()

            def measure(name: str, make: Any, n: int) -> None:
                for _ in range(min(20, n)):  # warm-up
                    client.post("/predict", content=make(), headers={"Content-Type": "application/json"})
                times = []
                for _ in range(n):
                    payload = make()
                    t0 = time.perf_counter()
                    response = client.post("/predict", content=payload, headers={"Content-Type": "application/json"})
                    times.append(time.perf_counter() - t0)
                    results = response.json()["results"]
                    assert response.status_code == 200 and all(r for r in results), name
                out[name] = percentiles(times)
                say(f"  {name:<22} p50 {out[name]['p50_ms']:7.2f} ms  p99 {out[name]['p99_ms']:7.2f} ms")

            def sample(k: int) -> list[dict[str, Any]]:
                return [tasks[i] for i in rng.choice(len(tasks), size=k, replace=False).tolist()]

            def changed(k: int) -> list[dict[str, Any]]:
                batch = json.loads(json.dumps(sample(k)))
                for t in batch:
                    t["annotations"][0]["result"][0]["value"]["choices"] = [CLASSES[int(rng.integers(args.classes))]]
                    t["annotations"][0]["updated_at"] = "2025-01-01T00:00:00Z"
                return batch

            measure("fresh_1_task", lambda: body(sample(1)), args.requests)
            measure("fresh_100_tasks", lambda: body(sample(100)), args.requests)
            measure("computed_100_tasks", lambda: body(changed(100)), max(20, args.requests // 4))
    finally:
        time.sleep(0.2)  # let waitress finish the closed keep-alive channel
        server.close()
    counters = dict(reviewer.counters)
    out["counters"] = {k: counters[k] for k in ("predict_fresh", "predict_computed")}
    return out


def burst_phase(args: argparse.Namespace) -> dict[str, Any]:
    from connector import crowd_dataset, label_studio_server  # benchmarks/connector.py

    from galton.backend.review import ReviewSettings, review_project
    from galton.backend.settings import SECRET_HEADER
    from galton.connectors import GALTON_PREFIX, LabelStudioConnector, seed_crowd_project
    from galton.connectors._seed import ensure_users, rater_email
    from tests.backend.conftest import start_backend, stop_backend

    out: dict[str, Any] = {"n_tasks": args.ls_tasks, "n_raters": args.raters, "burst": args.burst,
                           "post_threads": args.post_threads,
                           "method": args.method}
    template = Path(args.template) if args.template else None
    with tempfile.TemporaryDirectory(prefix="galton-bench-backend-") as tmp, \
            label_studio_server(Path(tmp), template) as (url, token, _pid):
        connector = LabelStudioConnector(url, token, n_threads=4)
        dataset = crowd_dataset(args.ls_tasks, args.raters - 1, args.classes, args.seed)
        # the config must name the dataset's classes, or Label Studio keeps annotations galton
        # skips as "answer outside the labeling config" (the first review then has nothing to do)
        classes = tuple(str(c) for c in dataset.encoding.class_names)
        t0 = time.perf_counter()
        seeded = seed_crowd_project(connector, dataset, title="backend burst",
                                    label_config=config_xml(args.classes, classes))
        say(f"burst: seeded {args.ls_tasks} tasks x {args.raters - 1} raters in {time.perf_counter() - t0:.1f} s")
        project_id = seeded.project_id
        last_rater = ensure_users(connector, [rater_email(f"burst-rater-{args.raters}")])
        last_rater_id = next(iter(last_rater.values()))
        user, password, secret = "label-studio", secrets.token_urlsafe(12), secrets.token_urlsafe(16)
        backend = start_backend(Path(tmp), {
            "LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": token, "GALTON_BASIC_AUTH_USER": user,
            "GALTON_BASIC_AUTH_PASSWORD": password, "GALTON_WEBHOOK_SECRET": secret, "GALTON_METHOD": args.method,
            "GALTON_WORKER_THREADS": "2",
        })
        jobs_url = f"{backend.url}/jobs?project={project_id}&limit=1000"
        try:
            t0 = time.perf_counter()
            connector.sdk.ml.create(project=project_id, url=backend.url, title="galton", auth_method="BASIC_AUTH",
                                    basic_auth_user=user, basic_auth_pass=password)
            hooks = [h for h in connector.sdk.webhooks.list(project=str(project_id))
                     if h.url == backend.url + "/webhook"]
            connector.sdk.webhooks.update(id=hooks[0].id, headers={SECRET_HEADER: secret})
            first_timeout = args.timeout or max(600.0, 0.5 * args.ls_tasks)
            idle = _wait_idle(backend.url, user, password, project_id, first_timeout)
            out["first_review_s"] = round(time.perf_counter() - t0, 2)
            first_jobs = json.loads(_get(jobs_url, user, password))["jobs"]
            out["first_review_jobs"] = [_job_summary(j) for j in reversed(first_jobs) if j["kind"] == "review"]
            if not idle:
                raise RuntimeError(f"the first review did not finish within {first_timeout:.0f} s")
            first_predictions = {int(p["task"]): p for p in connector.predictions(project_id)
                                 if str(p.get("model_version") or "").startswith(GALTON_PREFIX)}
            n_scored = len(first_predictions)
            out["first_review_predictions"] = n_scored
            if n_scored != len(seeded.task_of_item):
                raise RuntimeError(f"the first review left {len(seeded.task_of_item) - n_scored} tasks without a "
                                   "galton prediction")
            say(f"  connected; first review done in {out['first_review_s']} s "
                f"({len(out['first_review_jobs'])} job(s))")

            # the burst goes to the least certain tasks, each with its planted truth (an expert), so
            # that most annotations move their task's prediction: a random label on a task 4 raters
            # agree on, or labels against the consensus (MACE learns to discount that rater), leave
            # the prediction within the score tolerance and nothing changes in Label Studio
            rng = np.random.default_rng(args.seed + 1)
            order = sorted(first_predictions, key=lambda t: (float(first_predictions[t].get("score") or 0), t))
            targets = order[: min(args.burst, len(order))]
            rng.shuffle(targets)
            from galton.quality import simulate_crowd

            truth = simulate_crowd(args.ls_tasks, n_workers=args.raters - 1, n_classes=args.classes,
                                   labels_per_item=args.raters - 1, random_state=args.seed).true_labels
            item_of_task = {t: item for item, t in seeded.task_of_item.items()}
            labels = {t: classes[int(truth[int(str(item_of_task[t]).rsplit("-", 1)[1])])] for t in targets}
            out["targets"] = "the least certain tasks, labelled with their planted truth (an expert rater)"
            out["target_scores"] = {"max": round(float(first_predictions[order[len(targets) - 1]]["score"]), 4),
                                    "median": round(float(np.median([first_predictions[t]["score"]
                                                                     for t in targets])), 4)}
            n_jobs_before = len(first_jobs)
            posted: dict[int, float] = {}
            lock = threading.Lock()

            def post(task_id: int) -> None:
                with lock:
                    posted[task_id] = time.perf_counter()
                connector.sdk.annotations.create(id=task_id, completed_by=last_rater_id, result=[
                    {"from_name": "label", "to_name": "text", "type": "choices",
                     "value": {"choices": [labels[task_id]]}}])

            # a second webhook, to this script: when Label Studio sent each annotation's webhook
            # (it calls its webhooks one after the other inside the save; this one and galton's
            # arrive within milliseconds of each other)
            probe = _WebhookProbe()
            connector.sdk.webhooks.create(url=probe.url, project=project_id, send_payload=True,
                                          send_for_all_actions=False, actions=["ANNOTATION_CREATED"])
            load_start = os.getloadavg()
            watch = _Watch(Path(tmp) / "server" / "label_studio.sqlite3", project_id,
                           {t: args.raters for t in targets}, posted, lock)
            poller = threading.Thread(target=watch.run, args=(args.burst_timeout,), daemon=True)
            burst_t0 = time.perf_counter()
            poller.start()
            with ThreadPoolExecutor(args.post_threads) as pool:
                list(pool.map(post, targets))
            post_s = time.perf_counter() - burst_t0
            poller.join()
            out["burst_wall_s"] = round(time.perf_counter() - burst_t0, 2)
            out["load_average"] = {"burst_start": [round(x, 2) for x in load_start],
                                   "burst_end": [round(x, 2) for x in os.getloadavg()]}
            probe.close()
            pred_lags = [watch.prediction[t] - posted[t] for t in targets if t in watch.prediction]
            hook_lags = [watch.prediction[t] - probe.arrived[t] for t in targets
                         if t in watch.prediction and t in probe.arrived]
            post_to_hook = [probe.arrived[t] - posted[t] for t in targets if t in probe.arrived]
            meta_lags = [watch.meta[t] - posted[t] for t in targets if t in watch.meta]
            # the task's prediction is up to date once it changed, or once galton has processed
            # the annotation (meta counts it) and left the prediction as it was
            unchanged = [t for t in targets if t in watch.meta and t not in watch.prediction]
            out["burst_post_s"] = round(post_s, 2)
            out["post_to_prediction"] = percentiles(pred_lags) if pred_lags else None
            out["webhook_to_prediction"] = percentiles(hook_lags) if hook_lags else None
            out["post_to_webhook"] = percentiles(post_to_hook) if post_to_hook else None
            out["webhooks_timed"] = len(probe.arrived)
            out["webhook_to_meta"] = percentiles(meta_lags) if meta_lags else None
            out["prediction_changed"] = len(pred_lags)
            out["prediction_unchanged"] = len(unchanged)
            out["meta_not_seen"] = len(targets) - len(meta_lags)
            out["prediction_not_seen"] = len(targets) - len(pred_lags) - len(unchanged)
            out["lost"] = out["meta_not_seen"]
            out["poll_rounds"] = watch.rounds
            say(f"  {len(targets)} annotations posted in {post_s:.1f} s; webhook->prediction "
                f"{_fmt(out['webhook_to_prediction'])} ({len(pred_lags)} changed, {len(unchanged)} unchanged, "
                f"{out['prediction_not_seen']} not seen); webhook->meta {_fmt(out['webhook_to_meta'])} "
                f"({out['meta_not_seen']} not seen)")
            settled = _wait_idle(backend.url, user, password, project_id, args.burst_timeout)
            out["settled"] = settled
            jobs = json.loads(_get(jobs_url, user, password))["jobs"]
            burst_jobs = [j for j in reversed(jobs[: max(0, len(jobs) - n_jobs_before)]) if j["kind"] == "review"]
            out["n_jobs"] = len(burst_jobs)
            out["burst_jobs"] = [_job_summary(j) for j in burst_jobs]
            seconds = [j["detail"]["seconds"] for j in burst_jobs if j.get("detail")]
            out["job_seconds"] = percentiles([s / 1.0 for s in seconds]) if seconds else None
            out["jobs_failed"] = sum(1 for j in burst_jobs if j["status"] == "failed")
            # no lost update: galton's final prediction on every task == consensus from the final export
            pulled = connector.pull(project_id)
            review = review_project(pulled, ReviewSettings(method=args.method))
            have: dict[int, list[str]] = {}
            for p in connector.predictions(project_id):
                if str(p.get("model_version") or "").startswith(GALTON_PREFIX):
                    have.setdefault(int(p["task"]), []).append(p["result"][0]["value"]["choices"][0])
            wrong = [t for t, spec in review.predictions.items()
                     if have.get(t) != [spec.result[0]["value"]["choices"][0]]]
            stale_meta = [t for t in targets
                          if ((pulled.tasks[t].meta or {}).get("galton") or {}).get("questions", {}).get(
                              "label", {}).get("n_annotations") != args.raters]
            out["final_mismatches"] = len(wrong)
            out["final_checked"] = len(review.predictions)
            out["final_stale_meta"] = len(stale_meta)
            say(f"  final check: {len(wrong)} of {len(review.predictions)} tasks differ from the offline consensus; "
                f"{len(stale_meta)} burst tasks with stale meta; {out['n_jobs']} jobs")
        finally:
            stop_backend(backend)
            connector.close()
    return out


class _WebhookProbe:
    """A webhook receiver on 127.0.0.1 that notes when each annotation's webhook arrived (by task)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        arrived: dict[int, float] = {}
        self.arrived = arrived

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.perf_counter()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                task = (body.get("annotation") or {}).get("task")
                if isinstance(task, int):
                    arrived.setdefault(task, now)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/probe"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _fmt(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "n/a"
    return f"p50 {stats['p50_ms'] / 1000:.2f} s p99 {stats['p99_ms'] / 1000:.2f} s max {stats['max_ms'] / 1000:.2f} s"


def _job_summary(job: dict[str, Any]) -> dict[str, Any]:
    detail = job.get("detail") or {}
    keep = ("seconds", "full_pull", "n_pulled", "n_touched", "n_material", "n_touched_material", "n_written",
            "n_deferred", "deferred_from", "predictions", "meta", "timings", "first_pass")
    return {"id": job["id"], "status": job["status"], "reason": job.get("reason"),
            **{k: detail[k] for k in keep if k in detail}}


def _get(url: str, user: str, password: str) -> str:
    import base64
    import urllib.request

    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Basic {token}"}),
                                timeout=30) as response:
        return response.read().decode()


def _wait_idle(url: str, user: str, password: str, project_id: int, timeout: float) -> bool:
    """Poll the backend until it ran a review job for the project and its queue is empty."""
    deadline = time.perf_counter() + timeout
    quiet = 0
    while time.perf_counter() < deadline:
        metrics = _get(f"{url}/metrics", user, password)
        depth = sum(int(float(line.rsplit(" ", 1)[1])) for line in metrics.splitlines()
                    if line.startswith("galton_jobs_queue{"))
        jobs = json.loads(_get(f"{url}/jobs?project={project_id}&limit=5", user, password))["jobs"]
        reviews = [j for j in jobs if j["kind"] == "review"]
        busy = depth or not reviews or any(j["status"] == "running" for j in reviews)
        quiet = 0 if busy else quiet + 1
        if quiet >= 3:  # three quiet polls in a row: no retry timer about to fire a job
            return True
        time.sleep(1.0)
    return False


class _Watch:
    """Watches the burst's tasks in Label Studio's own database (its SQLite file, opened
    read-only): first-seen times of a changed galton prediction and of meta counting the
    annotation. Reading the file costs Label Studio's request threads nothing, where polling
    its API (about 1 s per 100 tasks read with their fields) took a large share of what the
    saturated server could answer, slowing the very writes it timed; a read holds the file's
    shared lock for about a millisecond."""

    def __init__(self, db_path: Path, project_id: int, expected: dict[int, int],
                 posted: dict[int, float], lock: threading.Lock) -> None:
        self.db_path, self.project_id, self.expected = db_path, project_id, expected
        self.posted, self.lock = posted, lock
        self.prediction: dict[int, float] = {}
        self.meta: dict[int, float] = {}
        self.rounds = 0
        self.before = self.predictions(list(expected))

    def _query(self, sql: str, task_ids: list[int]) -> list[tuple[Any, ...]]:
        marks = ",".join("?" * len(task_ids))
        with closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)) as db:
            return db.execute(sql.format(marks=marks), [self.project_id, *task_ids]).fetchall()

    def predictions(self, task_ids: list[int]) -> dict[int, tuple[Any, ...]]:
        """Per task: galton's predictions as Label Studio holds them (comparable tuples)."""
        held: dict[int, list[tuple[Any, ...]]] = {t: [] for t in task_ids}
        for task_id, *row in self._query(
                "SELECT task_id, id, updated_at, result, score FROM prediction WHERE project_id = ? "
                "AND model_version LIKE 'galton-%' AND task_id IN ({marks})", task_ids):
            held[int(task_id)].append(tuple(row))
        return {t: tuple(sorted(rows)) for t, rows in held.items()}

    def run(self, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while len(self.meta) < len(self.expected) and time.perf_counter() < deadline:
            with self.lock:
                started = list(self.posted)
            todo = [t for t in started if t not in self.prediction]
            if todo:
                now = time.perf_counter()
                for task_id, held in self.predictions(todo).items():
                    if held != self.before.get(task_id):
                        self.prediction[task_id] = now
            todo = [t for t in started if t not in self.meta]
            if todo:
                now = time.perf_counter()
                for task_id, meta in self._query(
                        "SELECT id, meta FROM task WHERE project_id = ? AND id IN ({marks})", todo):
                    q = ((json.loads(meta or "{}") or {}).get("galton") or {}).get("questions", {}).get("label", {})
                    if q.get("n_annotations") == self.expected[int(task_id)]:
                        self.meta[int(task_id)] = now
            self.rounds += 1
            time.sleep(0.1)


def markdown(report: dict[str, Any]) -> str:
    p = report.get("predict") or {}
    b = report.get("burst") or {}
    lines = ["# ML backend benchmark", "", f"Run {report['when']} on {report['machine']}; "
             f"command `{report['command']}`.", "", "## /predict latency (real HTTP, waitress, 127.0.0.1)", ""]
    if report.get("predict_from"):
        lines += [f"(Kept from the last /predict run: `{report['predict_from']}`; this run passed `--skip-predict`.)",
                  ""]
    if p:
        lines += [f"Project: {p['n_tasks']} tasks x {p['n_raters']} raters, method {p['method']}; first review "
                  f"job {p['first_review_s']} s.", "", "| request | n | p50 ms | p99 ms | max ms |",
                  "|---|---|---|---|---|"]
        for name in ("fresh_1_task", "fresh_100_tasks", "computed_100_tasks"):
            r = p[name]
            lines.append(f"| {name} | {r['n']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} |")
        ok = p["fresh_100_tasks"]["p99_ms"] < 50
        lines += ["", f"Goal p99 < 50 ms for 100 fresh tasks: **{'met' if ok else 'not met'}**."]
    lines += ["", "## Webhook to prediction under a burst (real Label Studio, `galton serve` process)", ""]
    if report.get("burst_from"):
        lines += [f"(Kept from the last burst run: `{report['burst_from']}`; this run passed `--skip-burst`.)", ""]
    if b:
        w, m = b.get("webhook_to_prediction") or {}, b.get("webhook_to_meta") or {}
        met = bool(w) and w["p99_ms"] < 5000 and not b["lost"] and not b["final_mismatches"]

        def sec(stats: dict[str, Any], key: str) -> str:
            return f"{stats[key] / 1000:.2f}" if stats else "-"

        lines += [f"Project: {b['n_tasks']} tasks x {b['n_raters'] - 1} raters, then a burst of {b['burst']} "
                  f"annotations by one more rater ({b.get('post_threads', 4)} threads, {b['burst_post_s']} s to post), "
                  f"method {b['method']}; "
                  f"the burst goes to the {b['burst']} least certain tasks (first-review score median "
                  f"{b.get('target_scores', {}).get('median')}, max {b.get('target_scores', {}).get('max')}), each "
                  "labelled with its planted truth by a new (expert) rater, so most annotations should move their "
                  "prediction. "
                  f"First review (every task's prediction and meta) {b['first_review_s']} s; the burst starts after "
                  "the backend is idle. Load average at the burst's start "
                  f"{b['load_average']['burst_start']}, end {b['load_average']['burst_end']}.", "",
                  "Times run to the first poll that sees the change in Label Studio's database (read-only, "
                  "0.1 s apart; polling its API instead took much of what the saturated server could answer), "
                  "from the moment "
                  "Label Studio sent the annotation's webhook (a second webhook, to this script, notes it), or "
                  "from just before the annotation is posted (Label Studio sends its webhooks inside that request, "
                  "so this adds its own save).", "",
                  "| measure | n | p50 s | p99 s | max s |", "|---|---|---|---|---|",
                  f"| webhook -> galton prediction changed | {w.get('n', 0)} | {sec(w, 'p50_ms')} | "
                  f"{sec(w, 'p99_ms')} | {sec(w, 'max_ms')} |",
                  *([f"| post -> galton prediction changed | {pp['n']} | {sec(pp, 'p50_ms')} | "
                     f"{sec(pp, 'p99_ms')} | {sec(pp, 'max_ms')} |"] if (pp := b.get("post_to_prediction")) else []),
                  *([f"| post -> webhook sent (Label Studio's own save) | {ph['n']} | {sec(ph, 'p50_ms')} | "
                     f"{sec(ph, 'p99_ms')} | {sec(ph, 'max_ms')} |"] if (ph := b.get("post_to_webhook")) else []),
                  f"| post -> meta.galton counts the annotation | {m.get('n', 0)} | {sec(m, 'p50_ms')} | "
                  f"{sec(m, 'p99_ms')} | {sec(m, 'max_ms')} |", "",
                  f"- predictions: {b['prediction_changed']} changed, {b['prediction_unchanged']} processed but left "
                  f"as they were (same label and score), {b['prediction_not_seen']} not seen within the timeout",
                  f"- meta never seen counting the annotation: {b['lost']}; after the burst "
                  f"{b['final_stale_meta']} burst tasks had stale meta",
                  f"- review jobs for the burst: {b['n_jobs']} ({b['jobs_failed']} failed); job time "
                  + (f"p50 {b['job_seconds']['p50_ms'] / 1000:.2f} s, p99 {b['job_seconds']['p99_ms'] / 1000:.2f} s"
                     if b.get("job_seconds") else "-"),
                  f"- final check: {b['final_mismatches']} of {b['final_checked']} tasks differ from the consensus "
                  "recomputed offline from Label Studio's final export", "",
                  f"Goal p99 < 5 s with no lost update: **{'met' if met else 'not met'}**.", "",
                  "### The burst's jobs", "",
                  "| job | s | touched | material | written | deferred | stopped before | pull s | review s | "
                  "touched predictions s | other predictions s | touched meta s | other meta s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for j in b.get("burst_jobs", []):
            t = j.get("timings", {})
            # a job whose pull was due pulled beside its first pass (the payloads' predictions)
            first = (j.get("first_pass") or {}).get("timings")
            pull = f"{t.get('pull', '-')} (beside)" if first else t.get("pull", "-")
            touched = (first or t).get("predictions_touched", "-")
            lines.append(f"| {j['id']} | {j.get('seconds', '-')} | {j.get('n_touched', '-')} | "
                         f"{j.get('n_material', '-')} | {j.get('n_written', '-')} | {j.get('n_deferred', '-')} | "
                         f"{j.get('deferred_from', '')} | {pull} | {t.get('review', '-')} | "
                         f"{touched} | {t.get('predictions_other', '-')} | "
                         f"{t.get('meta_touched', '-')} | {t.get('meta_other', '-')} |")
    else:
        lines.append("Not run (`--skip-burst`).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks for the /predict phase (default 10000)")
    parser.add_argument("--raters", type=int, default=5, help="raters per task (default 5)")
    parser.add_argument("--classes", type=int, default=3, choices=(2, 3))
    parser.add_argument("--method", default="mace", help="consensus method (default mace)")
    parser.add_argument("--requests", type=int, default=200, help="timed /predict requests per case (default 200)")
    parser.add_argument("--ls-tasks", type=int, default=2000, help="tasks in the Label Studio project (default 2000)")
    parser.add_argument("--burst", type=int, default=200, help="annotations in the burst (default 200)")
    parser.add_argument("--post-threads", type=int, default=4,
                        help="threads posting the burst's annotations, each as fast as Label Studio saves (default 4)")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="seconds to wait for the first review (default max(600, 0.5 s per task))")
    parser.add_argument("--burst-timeout", type=float, default=600.0,
                        help="seconds to wait for the burst's write-back (default 600)")
    parser.add_argument("--template", help="keep a migrated Label Studio template here between runs")
    parser.add_argument("--skip-burst", action="store_true", help="/predict only (keeps the last burst's results)")
    parser.add_argument("--skip-predict", action="store_true", help="burst only (keeps the last /predict results)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT,
                        help=f"results JSON (the .md beside it; default {OUT.relative_to(REPO)})")
    args = parser.parse_args(argv)
    out = args.out
    report: dict[str, Any] = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "command": "benchmarks/backend.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    previous = json.loads(out.read_text()) if out.is_file() else {}
    if not args.skip_predict:
        report["predict"] = predict_phase(args)
    elif "predict" in previous:
        report["predict"] = previous["predict"]
        report["predict_from"] = previous.get("predict_from") or (
            previous.get("command", "") + f" (run {previous.get('when', '?')})")
    if not args.skip_burst:
        report["burst"] = burst_phase(args)
    elif "burst" in previous:  # keep the last burst's results
        report["burst"] = previous["burst"]
        report["burst_from"] = previous.get("burst_from") or (
            previous.get("command", "") + f" (run {previous.get('when', '?')})")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    say(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
