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
   rater go in from 4 threads at once. For each, the time runs from just before the
   annotation is posted (Label Studio sends the webhook inside that request) until Label
   Studio holds the task's ``meta.galton`` counting the new annotation (galton writes the
   prediction before the meta, so this bounds the prediction's time from above). Then
   the final export is pulled, the consensus recomputed offline, and compared with
   galton's prediction on every task.

Run from the repository root::

    .venv/bin/python benchmarks/backend.py                         # 10k tasks for /predict, 2k in Label Studio
    .venv/bin/python benchmarks/backend.py --tasks 2000 --ls-tasks 500   # quick
    .venv/bin/python benchmarks/backend.py --skip-burst            # /predict only

Results: ``benchmarks/results/backend.json`` and ``backend.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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


def config_xml(n_classes: int) -> str:
    choices = "".join(f'<Choice value="{c}"/>' for c in CLASSES[:n_classes])
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
                           "method": args.method}
    with tempfile.TemporaryDirectory(prefix="galton-bench-backend-") as tmp, \
            label_studio_server(Path(tmp)) as (url, token, _pid):
        connector = LabelStudioConnector(url, token, n_threads=4)
        dataset = crowd_dataset(args.ls_tasks, args.raters - 1, args.classes, args.seed)
        t0 = time.perf_counter()
        seeded = seed_crowd_project(connector, dataset, title="backend burst",
                                    label_config=config_xml(args.classes))
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
        try:
            t0 = time.perf_counter()
            connector.sdk.ml.create(project=project_id, url=backend.url, title="galton", auth_method="BASIC_AUTH",
                                    basic_auth_user=user, basic_auth_pass=password)
            hooks = [h for h in connector.sdk.webhooks.list(project=str(project_id))
                     if h.url == backend.url + "/webhook"]
            connector.sdk.webhooks.update(id=hooks[0].id, headers={SECRET_HEADER: secret})
            n_annotations = {t: args.raters - 1 for t in seeded.task_of_item.values()}
            first = _wait_meta(connector, project_id, n_annotations, time.perf_counter(), args.timeout)
            out["first_review_s"] = round(time.perf_counter() - t0, 2)
            say(f"  connected; first review written to all {len(first)} tasks in {out['first_review_s']} s")

            rng = np.random.default_rng(args.seed + 1)
            targets = rng.choice(sorted(n_annotations), size=min(args.burst, len(n_annotations)),
                                 replace=False).tolist()
            posted: dict[int, float] = {}

            def post(task_id: int) -> None:
                label = CLASSES[int(rng.integers(args.classes))]
                posted[task_id] = time.perf_counter()
                connector.sdk.annotations.create(id=task_id, completed_by=last_rater_id, result=[
                    {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}])

            expected = {t: args.raters for t in targets}
            seen: dict[int, float] = {}
            poller = threading.Thread(target=lambda: seen.update(
                _wait_meta(connector, project_id, expected, None, args.timeout, posted=posted)))
            burst_t0 = time.perf_counter()
            poller.start()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(post, targets))
            post_s = time.perf_counter() - burst_t0
            poller.join()
            lags = [seen[t] - posted[t] for t in targets if t in seen]
            out["burst_post_s"] = round(post_s, 2)
            out["lost"] = len(targets) - len(lags)
            out["webhook_to_prediction"] = percentiles(lags) if lags else None
            say(f"  {len(targets)} annotations posted in {post_s:.1f} s; webhook->prediction "
                f"p50 {out['webhook_to_prediction']['p50_ms'] / 1000:.2f} s "
                f"p99 {out['webhook_to_prediction']['p99_ms'] / 1000:.2f} s; {out['lost']} not seen")
            jobs = json.loads(_get(f"{backend.url}/jobs?project={project_id}&limit=500", user, password))["jobs"]
            out["n_jobs"] = sum(1 for j in jobs if j["kind"] == "review")
            out["job_seconds"] = percentiles([j["detail"]["seconds"] for j in jobs
                                              if j["kind"] == "review" and j.get("detail")])
            # no lost update: galton's final prediction on every task == consensus from the final export
            time.sleep(1.0)
            pulled = connector.pull(project_id)
            review = review_project(pulled, ReviewSettings(method=args.method))
            have = {}
            for p in connector.predictions(project_id):
                if str(p.get("model_version") or "").startswith(GALTON_PREFIX):
                    have.setdefault(int(p["task"]), []).append(p["result"][0]["value"]["choices"][0])
            wrong = [t for t, spec in review.predictions.items()
                     if have.get(t) != [spec.result[0]["value"]["choices"][0]]]
            out["final_mismatches"] = len(wrong)
            out["final_checked"] = len(review.predictions)
            say(f"  final check: {len(wrong)} of {len(review.predictions)} tasks differ from the offline consensus")
        finally:
            stop_backend(backend)
            connector.close()
    return out


def _get(url: str, user: str, password: str) -> str:
    import base64
    import urllib.request

    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Basic {token}"}),
                                timeout=30) as response:
        return response.read().decode()


def _wait_meta(connector: Any, project_id: int, expected: dict[int, int], t0: float | None, timeout: float,
               posted: dict[int, float] | None = None) -> dict[int, float]:
    """Poll task meta until each task's meta.galton counts ``expected[task]`` annotations; first-seen times."""
    seen: dict[int, float] = {}
    deadline = time.perf_counter() + timeout
    while len(seen) < len(expected) and time.perf_counter() < deadline:
        todo = [t for t in expected if t not in seen and (posted is None or t in posted)]
        for start in range(0, len(todo), 100):
            batch = todo[start:start + 100]
            meta = connector._current_meta(project_id, batch)
            now = time.perf_counter()
            for task_id in batch:
                q = ((meta.get(task_id) or {}).get("galton") or {}).get("questions", {}).get("label", {})
                if q.get("n_annotations") == expected[task_id]:
                    seen[task_id] = now
        time.sleep(0.1)
    return seen


def markdown(report: dict[str, Any]) -> str:
    p = report.get("predict") or {}
    b = report.get("burst") or {}
    lines = ["# ML backend benchmark", "", f"Run {report['when']} on {report['machine']}; "
             f"command `{report['command']}`.", "", "## /predict latency (real HTTP, waitress, 127.0.0.1)", ""]
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
    if b:
        w = b["webhook_to_prediction"] or {}
        met = w.get("p99_ms", 1e9) < 5000 and not b["lost"] and not b["final_mismatches"]
        lines += [f"Project: {b['n_tasks']} tasks x {b['n_raters'] - 1} raters, then a burst of {b['burst']} "
                  f"annotations (4 threads, {b['burst_post_s']} s to post), method {b['method']}.", "",
                  f"- webhook -> prediction: p50 {w.get('p50_ms', 0) / 1000:.2f} s, "
                  f"p99 {w.get('p99_ms', 0) / 1000:.2f} s, "
                  f"max {w.get('max_ms', 0) / 1000:.2f} s; {b['lost']} never seen",
                  f"- review jobs for the burst and before: {b['n_jobs']} (coalesced); job time p50 "
                  f"{b['job_seconds']['p50_ms'] / 1000:.2f} s, p99 {b['job_seconds']['p99_ms'] / 1000:.2f} s",
                  f"- final check: {b['final_mismatches']} of {b['final_checked']} tasks differ from the consensus "
                  "recomputed offline from Label Studio's final export", "",
                  f"Goal p99 < 5 s with no lost update: **{'met' if met else 'not met'}**."]
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
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for write-back")
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "command": "benchmarks/backend.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "predict": predict_phase(args),
    }
    if not args.skip_burst:
        report["burst"] = burst_phase(args)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    OUT.with_suffix(".md").write_text(markdown(report))
    say(f"wrote {OUT} and {OUT.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
