"""Reliability and security figures: faults injected and survived, inputs fuzzed, load held.

1. **faults and fuzz**: runs ``tests/reliability`` (every scenario, the slow ones too) with
   ``GALTON_RELIABILITY_RESULTS`` set, so each fault scenario and each fuzz target records
   what it injected and what it ran; ``--fuzz-examples`` sets the hypothesis examples per target.
2. **soak** (:func:`soak`): one ``galton serve`` process against a real Label Studio on
   127.0.0.1 for ``--soak-seconds``: annotations change in Label Studio all along (on tasks
   outside the /predict batch), webhook events arrive at about ``--webhooks-per-s``, and
   ``/predict`` is called with 100 tasks as fast as one client goes. Recorded: events,
   /predict p50/p99, the backend's RSS at the start (after warm-up) and the end, and, once
   the backend is idle, whether every task's galton prediction in Label Studio equals the
   consensus recomputed offline from Label Studio's final export (none lost, none doubled).

Run from the repository root (starts its own Label Studio unless ``GALTON_TEST_LS_URL`` and
``GALTON_TEST_LS_TOKEN`` point at one)::

    nice .venv/bin/python benchmarks/reliability.py                      # 180 s soak
    nice .venv/bin/python benchmarks/reliability.py --soak-seconds 60 --skip-tests

Results: ``benchmarks/results/reliability.json`` and ``reliability.md``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "results" / "reliability.json"
CONFIG = ('<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
          '<Choice value="neg"/><Choice value="pos"/></Choices></View>')


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (galton serve runs its jobs in one)."""
    total = 0.0
    for one in [pid, *_children(pid)]:
        try:
            lines = Path(f"/proc/{one}/status").read_text().splitlines()
        except OSError:  # ended meanwhile
            continue
        total += next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmRSS:")), 0.0)
    return total if total else float("nan")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def _choice(label: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


class _Client:
    def __init__(self, url: str, user: str, password: str, secret: str) -> None:
        self.url = url
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.secret = secret

    def post(self, path: str, body: Any, *, hook: bool = False) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        headers.update({"X-Galton-Secret": self.secret} if hook else {"Authorization": self.auth})
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers={"Authorization": self.auth})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read().decode()

    def idle(self, project_id: int) -> bool:
        metrics = self.get("/metrics")
        busy = any(line.startswith(("galton_jobs_queue{state=\"pending\"}", "galton_jobs_queue{state=\"running\"}"))
                   and not line.endswith(" 0") for line in metrics.splitlines())
        jobs = json.loads(self.get(f"/jobs?project={project_id}&limit=3"))["jobs"]
        return not busy and bool(jobs) and jobs[0]["status"] in ("done", "failed")


def soak(ls_url: str, token: str, seconds: float, *, n_tasks: int = 150, webhooks_per_s: float = 15.0,
         workdir: Path | None = None, seed: int = 0) -> dict[str, Any]:
    """The soak of the module doc against the Label Studio at ``ls_url``; returns its figures."""
    from galton.backend.review import ReviewSettings, review_project
    from galton.connectors import GALTON_PREFIX, LabelStudioConnector
    from galton.connectors._seed import ensure_users
    from tests.backend.conftest import start_backend, stop_backend

    rng = random.Random(seed)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="galton-soak-"))
    connector = LabelStudioConnector(ls_url, token, n_threads=4)
    raters = list(ensure_users(connector, [f"soak-{i}@raters.galton.invalid" for i in range(5)]).values())
    sdk = connector.sdk
    project_id = int(sdk.projects.create(title="galton soak", label_config=CONFIG).id)
    truth = [rng.choice(["neg", "pos"]) for _ in range(n_tasks)]
    tasks = [{"data": {"text": f"soak {i}"}, "annotations": [
        {"result": _choice(truth[i] if rng.random() < 0.8 else rng.choice(["neg", "pos"])), "completed_by": w}
        for w in raters[:3]]} for i in range(n_tasks)]
    task_ids = [int(t) for t in sdk.projects.import_tasks(id=project_id, request=tasks, return_task_ids=True).task_ids]
    user, password, secret = "ls", secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    backend = start_backend(workdir, {"LABEL_STUDIO_URL": ls_url, "LABEL_STUDIO_API_KEY": token,
                                      "GALTON_BASIC_AUTH_USER": user, "GALTON_BASIC_AUTH_PASSWORD": password,
                                      "GALTON_WEBHOOK_SECRET": secret, "GALTON_METHOD": "mace"}, timeout=120)
    client = _Client(backend.url, user, password, secret)
    out: dict[str, Any] = {"n_tasks": n_tasks, "project_id": project_id}
    try:
        say(f"soak: first review of {n_tasks} tasks")
        client.post("/webhook", {"action": "GALTON_RESCORE", "project": {"id": project_id}}, hook=True)
        time.sleep(1)
        deadline = time.monotonic() + 600
        while not client.idle(project_id) and time.monotonic() < deadline:
            time.sleep(1)
        batch_ids = set(task_ids[:100])
        export = [t for t in connector._export(project_id, None) if t["id"] in batch_ids]
        body = {"tasks": export, "project": f"{project_id}.1700000000", "label_config": CONFIG}
        for _ in range(20):  # warm-up
            client.post("/predict", body)
        pid = backend.process.pid
        rss: list[tuple[float, float]] = [(0.0, rss_mb(pid))]
        stop = threading.Event()
        counts = {"webhooks": 0, "predicts": 0, "changes": 0, "errors": 0}
        started = time.monotonic()

        def changes() -> None:
            others = task_ids[100:]
            while not stop.is_set():
                task_id = rng.choice(others)
                label = truth[task_ids.index(task_id)] if rng.random() < 0.8 else rng.choice(["neg", "pos"])
                try:
                    sdk.annotations.create(id=task_id, result=_choice(label), completed_by=rng.choice(raters[3:]))
                    counts["changes"] += 1
                except Exception:
                    counts["errors"] += 1
                stop.wait(0.5)

        def webhooks() -> None:
            while not stop.is_set():
                status, _ = client.post("/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": project_id}},
                                        hook=True)
                counts["webhooks"] += 1
                counts["errors"] += status >= 300
                stop.wait(1.0 / webhooks_per_s)

        # /predict's client runs in a process of its own (benchmarks/_predict_client.py): in a
        # thread beside the load generators it would time their work (Python's lock) as the backend's
        body_path = workdir / "predict-body.json"
        body_path.write_text(json.dumps(body))
        first_metrics = client.get("/metrics")
        before = _histogram(first_metrics, "predict")
        predictor = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_predict_client.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert predictor.stdin is not None
        predictor.stdin.write(json.dumps({"url": backend.url, "auth": client.auth, "body_path": str(body_path),
                                          "n_tasks": len(export), "seconds": seconds}))
        predictor.stdin.close()
        threads = [threading.Thread(target=f, daemon=True) for f in (changes, webhooks)]
        for thread in threads:
            thread.start()
        while time.monotonic() - started < seconds:
            time.sleep(5)
            rss.append((round(time.monotonic() - started, 1), rss_mb(pid)))
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert predictor.stdout is not None
        answered = predictor.stdout.read()  # the client ends after `seconds`, its answer in one piece
        if predictor.wait(timeout=120) != 0:
            raise RuntimeError(f"the /predict client exited with {predictor.returncode}")
        measured = json.loads(answered)
        latencies, n_bad = measured["latencies_ms"], measured["bad"]
        final_metrics = client.get("/metrics")
        after = _histogram(final_metrics, "predict")
        def total(metrics: str, name: str) -> float:
            prefix = f'{name}{{route="predict"}} '
            return sum(float(line[len(prefix):]) for line in metrics.splitlines() if line.startswith(prefix))

        wall = total(final_metrics, "galton_request_seconds_total") - total(
            first_metrics, "galton_request_seconds_total")
        busy = total(final_metrics, "galton_request_cpu_seconds_total") - total(
            first_metrics, "galton_request_cpu_seconds_total")
        out["predict_cpu_share"] = round(busy / wall, 3) if wall else None  # the rest: waiting for a CPU or the GIL
        out["predict_answers"] = {what: int(float(line.rsplit(" ", 1)[1])) for line in final_metrics.splitlines()
                                  for what in ("predict_fresh", "predict_computed")
                                  if line.startswith(f'galton_backend_total{{what="{what}"}}')}
        server = {le: after.get(le, 0) - before.get(le, 0) for le in after}
        counts["predicts"] = len(latencies)
        counts["errors"] += n_bad
        duration = time.monotonic() - started
        say("soak: waiting for the backend to finish")
        deadline = time.monotonic() + 600
        time.sleep(2)
        while not client.idle(project_id) and time.monotonic() < deadline:
            time.sleep(1)
        rss.append((round(time.monotonic() - started, 1), rss_mb(pid)))
        jobs = json.loads(client.get(f"/jobs?project={project_id}&limit=10000"))["jobs"]
        # the offline recomputation from Label Studio's final export
        pulled = connector.pull(project_id)
        review = review_project(pulled, ReviewSettings(method="mace"))
        held: dict[int, list[tuple[str, str]]] = {}
        for p in connector.predictions(project_id):
            if str(p.get("model_version") or "").startswith(GALTON_PREFIX):
                held.setdefault(int(p["task"]), []).append((p["result"][0]["value"]["choices"][0], p["model_version"]))
        expected = {t: review.meta[t]["questions"]["label"]["label"] for t in review.meta}
        mismatched = [t for t, label in expected.items() if held.get(t) != [(label, review.model_version)]]
        meta_mismatched = [t for t, label in expected.items()
                           if ((pulled.tasks[t].meta.get("galton") or {}).get("questions", {}).get("label", {})
                               .get("label")) != label]
        out.update({
            "seconds": round(duration, 1), **counts,
            "predict_ms": {"p50": round(percentile(latencies, 0.5), 2), "p99": round(percentile(latencies, 0.99), 2),
                           "max": round(max(latencies), 2) if latencies else None},
            # inside the backend (its /metrics histogram over the soak): the share answered within 50 ms
            "predict_server": {"buckets": server, "within_50ms": round(
                server.get("0.05", 0) / server["+Inf"], 4) if server.get("+Inf") else None,
                "p99_at_most_ms": _bucket_quantile(server, 0.99)},
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "rss_mb": {"start": round(rss[0][1], 1), "end": round(rss[-1][1], 1),
                       "max": round(max(r for _, r in rss), 1)}, "rss_series": rss,
            "jobs": {"done": sum(j["status"] == "done" for j in jobs),
                     "failed": sum(j["status"] == "failed" for j in jobs), "total": len(jobs)},
            "n_annotations_final": len(pulled.annotations),
            "predictions_mismatched": len(mismatched), "meta_mismatched": len(meta_mismatched),
            "duplicates": sum(max(0, len(v) - 1) for v in held.values()),
        })
    finally:
        stop_backend(backend)
        connector.close()
    return out


def _histogram(metrics: str, route: str) -> dict[str, int]:
    """The backend's cumulative latency buckets for one route (le -> count)."""
    prefix = f'galton_request_duration_seconds_bucket{{route="{route}",le="'
    return {line[len(prefix):].split('"')[0]: int(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines() if line.startswith(prefix)}


def _bucket_quantile(buckets: dict[str, int], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding the q-quantile (None: +Inf or no data)."""
    total = buckets.get("+Inf", 0)
    for le, n in sorted(((k, v) for k, v in buckets.items() if k != "+Inf"), key=lambda kv: float(kv[0])):
        if total and n >= q * total:
            return float(le) * 1000
    return None


def run_tests(fuzz_examples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder) / "results.jsonl"
        env = {**os.environ, "GALTON_RELIABILITY_RESULTS": str(results), "GALTON_FUZZ_EXAMPLES": str(fuzz_examples)}
        say("faults and fuzz: pytest tests/reliability (slow ones included)")
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "",
                               "tests/reliability", "-k", "not soak"], cwd=REPO, env=env, check=False,
                              capture_output=True, text=True)
        tail = done.stdout.strip().splitlines()[-1:] if done.stdout.strip() else []
        lines = [json.loads(x) for x in results.read_text().splitlines()] if results.exists() else []
    return {"pytest_exit": done.returncode, "pytest_summary": tail[0] if tail else "",
            "faults": [x for x in lines if x["kind"] == "fault"], "fuzz": [x for x in lines if x["kind"] == "fuzz"]}


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Reliability and security", "",
             f"{report['machine']}; {report['when']}. Produced by `benchmarks/reliability.py`.", ""]
    tests = report.get("tests")
    if tests:
        lines += [f"Test run: `{tests['pytest_summary']}`.", "", "| fault injected (through the proxy, or SIGKILL) | "
                  "times | jobs to recover | survived: final state = clean run | duplicate predictions | "
                  "meta lost or clobbered |", "|:---|---:|---:|:---:|---:|---:|"]
        for f in tests["faults"]:
            survived = "yes" if f["survived"] else "**no**"
            lines.append(f"| {f['scenario']} | {f['injected']} | {f['jobs']} | {survived} | "
                         f"{f['duplicates']} | {f['meta_differs']} |")
        lines += ["", "| input fuzzed (hypothesis; schemathesis for the OpenAPI target) | examples |", "|:---|---:|"]
        lines += [f"| {f['target']} | {f['examples']:,} |" for f in tests["fuzz"]]
        lines.append(f"| **total** | **{sum(f['examples'] for f in tests['fuzz']):,}** |")
    load = report.get("soak")
    if load:
        lost = load["predictions_mismatched"] + load["meta_mismatched"] + load["duplicates"]
        lines += ["", "| load (one backend, real Label Studio, 127.0.0.1) | value |", "|:---|---:|",
                  f"| duration | {load['seconds']:.0f} s |",
                  f"| webhook events / /predict calls (100 tasks) / annotation changes | "
                  f"{load['webhooks']:,} / {load['predicts']:,} / {load['changes']:,} |",
                  f"| /predict p50 / p99 at the client (100 tasks, goal p99 < 50 ms) | "
                  f"{load['predict_ms']['p50']:.1f} / {load['predict_ms']['p99']:.1f} ms |",
                  *([f"| /predict inside the backend: answered within 50 ms / p99 at most | "
                     f"{100 * load['predict_server']['within_50ms']:.1f}% / "
                     f"{load['predict_server']['p99_at_most_ms'] or float('inf'):g} ms |"]
                    if load.get("predict_server", {}).get("within_50ms") is not None else []),
                  *([f"| /predict CPU time / wall time inside the backend (the rest: waiting for a CPU) | "
                     f"{100 * load['predict_cpu_share']:.0f}% |"] if load.get("predict_cpu_share") else []),
                  f"| load average at the end (1, 5, 15 min) | {', '.join(map(str, load.get('load_average', [])))} |",
                  f"| backend RSS (HTTP + job process) start / end / max | {load['rss_mb']['start']:.0f} / "
                  f"{load['rss_mb']['end']:.0f} / {load['rss_mb']['max']:.0f} MB |",
                  f"| review jobs done / failed | {load['jobs']['done']} / {load['jobs']['failed']} |",
                  f"| request errors | {load['errors']} |",
                  f"| data lost: tasks whose prediction or meta differs from the offline recomputation, duplicates | "
                  f"{lost} |"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--soak-seconds", type=float, default=180.0)
    parser.add_argument("--tasks", type=int, default=150,
                        help="tasks in the soak project (the first 100 are /predict's)")
    parser.add_argument("--webhooks-per-s", type=float, default=15.0)
    parser.add_argument("--fuzz-examples", type=int, default=500)
    parser.add_argument("--skip-tests", action="store_true", help="soak only (keeps the last run's test tables)")
    parser.add_argument("--skip-soak", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT,
                        help=f"results JSON (the .md beside it; default {OUT.relative_to(REPO)})")
    args = parser.parse_args(argv)
    out = args.out
    previous = json.loads(out.read_text()) if out.exists() else {}
    report: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                                         f"Python {platform.python_version()}",
                              "when": time.strftime("%Y-%m-%d"), "tests": previous.get("tests"),
                              "soak": previous.get("soak")}
    if not args.skip_tests:
        report["tests"] = run_tests(args.fuzz_examples)
    if not args.skip_soak:
        url, token = os.environ.get("GALTON_TEST_LS_URL"), os.environ.get("GALTON_TEST_LS_TOKEN")
        server = None
        if not (url and token):
            from galton.backend.local_labelstudio import LocalLabelStudio, migrated_template

            token, password = secrets.token_hex(20), secrets.token_urlsafe(16)
            root = Path(tempfile.mkdtemp(prefix="galton-reliability-ls-"))
            template = migrated_template(root / "template", token=token, password=password)
            import shutil

            shutil.copytree(template, root / "server")
            server = LocalLabelStudio(data_dir=root / "server", token=token, password=password).start()
            url = server.url
        try:
            report["soak"] = soak(url, token, args.soak_seconds, n_tasks=args.tasks,
                                  webhooks_per_s=args.webhooks_per_s)
        finally:
            if server is not None:
                server.stop()
    out.write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    say(markdown(report))
    soak_ok = report["soak"] is None or (report["soak"]["predictions_mismatched"] + report["soak"]["duplicates"]
                                         + report["soak"]["meta_mismatched"]) == 0
    return 0 if soak_ok and (report["tests"] is None or report["tests"]["pytest_exit"] == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
