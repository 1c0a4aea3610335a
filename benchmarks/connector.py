"""Label Studio connector throughput: pull and write-back, tasks per second, on a local server.

The goal (project issue): pull and write-back throughput on 5,000 tasks x 5 raters against a
local Label Studio, with galton's full pull no slower than Label Studio's own JSON export of
the same project, measured side by side.

What runs, against a Label Studio started for the run (127.0.0.1, a free port, a freshly
migrated data directory in a temp dir, a random admin token; stopped by PID at the end):

1. **seed**: a simulated crowd (:func:`galton.quality.simulate_crowd`, fixed
   ``random_state``) of ``--tasks`` items x ``--raters`` annotations each, from a pool of
   ``--raters`` raters (so every rater labels every task), imported with
   :func:`galton.connectors.seed_crowd_project` as real ``completed_by`` annotations.
2. **full pull vs export**, interleaved (the order alternates every repeat) after one
   untimed warm-up of each:

   * *LS export*: ``GET api/projects/{id}/export?exportType=JSON&download_all_tasks=true``
     with a plain ``httpx`` client, then ``json.loads`` of the body;
   * *galton pull*: ``connector.pull(project_id)`` (label config, export, users, parsing
     into task and annotation records), then ``pulled.questions()`` (the annotation
     matrices) timed on its own.

3. **incremental pull**: ~1% of the tasks get a new annotation (posted by the admin on
   behalf of one of the task's raters), then ``connector.pull(project_id, since=watermark)``
   with the watermark of the last full pull, plus ``merge`` and ``questions()``; and one
   pull ``since`` a time after the last change (nothing to read: the fixed cost).
4. **write-back** of :func:`galton.backend.review.review_project`'s output:
   ``write_predictions`` first run (all created, bulk import), second run (nothing
   written: the idempotence check), runs where 10% of the predictions changed (updated in
   place; each repeat flips a 10% subset, so every repeat writes the same amount);
   ``write_meta`` first run (every task PATCHed), then a second run with ``current`` from a
   fresh pull (skips without a request) and one without ``current`` (re-reads every task's
   ``meta``, writes nothing).

tasks/s is the project's task count (for the incremental pull: the tasks read) over the
wall time. The machine is shared (2 cores, other jobs): the load average is recorded at
every phase. The goal counts as passed when the median full pull (without
``questions()``) takes at most ``1 + --tolerance`` times the median export.

Run from the repository root::

    .venv/bin/python benchmarks/connector.py                  # 5,000 x 5 (several minutes)
    .venv/bin/python benchmarks/connector.py --tasks 500      # quick
    .venv/bin/python benchmarks/connector.py --markdown-only  # re-render the .md from the JSON

Results are printed as tables and written to ``benchmarks/results/connector.json``; every
run then renders ``benchmarks/results/connector.md`` from that JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from _tables import md_table, secs, table  # benchmarks/_tables.py (the script's folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "connector.json"
CLASS_NAMES = ("alpha", "beta", "gamma", "delta", "epsilon")


# --------------------------------------------------------------------------- helpers






def rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def say(text: str) -> None:
    print(text, flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _dist_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _label_studio_version() -> str | None:
    """The label-studio in ``.venv-ls`` (not importable from galton's venv)."""
    for path in sorted((REPO / ".venv-ls").glob("lib/python*/site-packages/label_studio-*.dist-info")):
        return path.name.removeprefix("label_studio-").removesuffix(".dist-info")
    return None


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load(),
        "label_studio": _label_studio_version(),
        "label_studio_sdk": _dist_version("label-studio-sdk"),
        "httpx": _dist_version("httpx"),
        "numpy": np.__version__,
        # the connector changes often: record exactly which sources ran
        "galton_sources": {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            for path in sorted((REPO / "connectors").glob("_*.py"))
        },
    }


def summary_of(seconds: Sequence[float], n_tasks: int) -> dict[str, Any]:
    """Median, min and max of repeated timings, and the tasks/s of the median and of the min."""
    median, best = statistics.median(seconds), min(seconds)
    return {
        "runs_s": [round(s, 4) for s in seconds],
        "median_s": round(median, 4),
        "min_s": round(best, 4),
        "max_s": round(max(seconds), 4),
        "n_tasks": n_tasks,
        "tasks_per_s_median": round(n_tasks / median, 1) if median > 0 else None,
        "tasks_per_s_best": round(n_tasks / best, 1) if best > 0 else None,
    }


# --------------------------------------------------------------------------- server and data
@contextlib.contextmanager
def label_studio_server(root: Path, template_dir: Path | None = None) -> Iterator[tuple[str, str, int]]:
    """A fresh Label Studio (migrated template copied to a data dir); yields (url, token, pid).

    ``template_dir`` (``--template``, for iterating on this script) keeps the migrated
    template and its credentials (a 0600 file beside it) between runs; by default the
    template is migrated afresh in the temp dir and the credentials live only in memory.
    """
    from galton.backend.local_labelstudio import LocalLabelStudio, migrated_template

    credentials = None if template_dir is None else template_dir / ".credentials.json"
    if credentials is not None and credentials.is_file() and (template_dir / ".migrated").is_file():
        secret = json.loads(credentials.read_text())
        token, password, template = secret["token"], secret["password"], template_dir
        say(f"reusing the migrated template {template_dir}")
    else:
        token = secrets.token_hex(20)
        password = secrets.token_urlsafe(16)
        say("migrating a fresh Label Studio data dir (first start; about a minute) ...")
        target = template_dir or root / "template"
        template, seconds = timed(lambda: migrated_template(target, token=token, password=password))
        say(f"  migrated in {seconds:.0f} s")
        if credentials is not None:
            credentials.touch(mode=0o600)
            credentials.write_text(json.dumps({"token": token, "password": password}))
    data_dir = root / "server"
    shutil.copytree(template, data_dir)
    server = LocalLabelStudio(data_dir=data_dir, token=token, password=password)
    try:
        _, seconds = timed(server.start)
        say(f"Label Studio up at {server.url} (pid {server.pid}) in {seconds:.1f} s")
        yield server.url, token, server.pid or 0
    finally:
        server.stop()
        say("Label Studio stopped")


def crowd_dataset(n_tasks: int, n_raters: int, n_classes: int, random_state: int) -> Any:
    """A simulated crowd as a CrowdDataset: every one of ``n_raters`` raters labels every task."""
    from galton.connectors import CrowdDataset
    from galton.quality import AnnotationMatrix, simulate_crowd

    crowd = simulate_crowd(n_tasks, n_workers=n_raters, n_classes=n_classes, labels_per_item=n_raters,
                           random_state=random_state)
    m = crowd.matrix
    item_ids = [f"item-{i:05d}" for i in range(m.n_items)]
    worker_ids = [f"rater-{w + 1}" for w in range(m.n_workers)]
    classes = list(CLASS_NAMES[:n_classes])
    matrix, encoding = AnnotationMatrix.from_triplets(
        [item_ids[i] for i in m.items.tolist()], [worker_ids[w] for w in m.workers.tolist()],
        [classes[c] for c in m.labels.tolist()], classes=classes, item_ids=item_ids, worker_ids=worker_ids,
    )
    return CrowdDataset("synthetic", matrix, encoding, {})


# --------------------------------------------------------------------------- phases
def export_json(client: Any, project_id: int) -> int:
    """Label Studio's own full JSON export, parsed; returns the number of tasks."""
    response = client.get(f"api/projects/{project_id}/export",
                          params={"exportType": "JSON", "download_all_tasks": "true"})
    response.raise_for_status()
    tasks = json.loads(response.content)
    return len(tasks)


def full_pulls(connector: Any, client: Any, project_id: int, n_tasks: int,
               repeats: int) -> tuple[dict[str, Any], Any]:
    """Export and pull side by side, interleaved, the order alternating every repeat."""
    say("warm-up: one export and one pull (untimed) ...")
    export_json(client, project_id)
    pulled = connector.pull(project_id)
    export_s: list[float] = []
    pull_s: list[float] = []
    questions_s: list[float] = []
    loads = []
    n_annotations = 0
    for repeat in range(repeats):
        order = ("export", "pull") if repeat % 2 == 0 else ("pull", "export")
        for what in order:
            if what == "export":
                n, seconds = timed(lambda: export_json(client, project_id))
                if n != n_tasks:
                    raise RuntimeError(f"the export returned {n} tasks, expected {n_tasks}")
                export_s.append(seconds)
            else:
                pulled, seconds = timed(lambda: connector.pull(project_id))
                if pulled.n_tasks != n_tasks:
                    raise RuntimeError(f"the pull returned {pulled.n_tasks} tasks, expected {n_tasks}")
                pull_s.append(seconds)
                questions, q_seconds = timed(pulled.questions)
                questions_s.append(q_seconds)
                n_annotations = sum(len(q.matrix.items) for q in questions.values())
            say(f"  repeat {repeat + 1}: {what} {seconds:.2f} s")
        loads.append(load())
    out = {
        "export": summary_of(export_s, n_tasks),
        "pull": summary_of(pull_s, n_tasks),
        "questions": summary_of(questions_s, n_tasks),
        "pull_and_questions": summary_of([p + q for p, q in zip(pull_s, questions_s, strict=True)], n_tasks),
        "n_annotations_pulled": n_annotations,
        "skipped": dict(pulled.skipped),
        "load_average": loads,
    }
    out["ratio_pull_to_export_median"] = round(out["pull"]["median_s"] / out["export"]["median_s"], 3)
    out["ratio_pull_to_export_min"] = round(out["pull"]["min_s"] / out["export"]["min_s"], 3)
    out["ratio_pull_and_questions_to_export_median"] = round(
        out["pull_and_questions"]["median_s"] / out["export"]["median_s"], 3)
    return out, pulled


def touch_tasks(connector: Any, seeded: Any, dataset: Any, n_touch: int, random_state: int) -> list[int]:
    """Post a new annotation on ``n_touch`` tasks, as one of each task's raters (admin token)."""
    rng = np.random.default_rng(random_state)
    codes = np.sort(rng.choice(len(dataset.encoding.item_ids), size=n_touch, replace=False))
    classes = [str(c) for c in dataset.encoding.class_names]
    worker_ids = dataset.encoding.worker_ids
    touched = []
    for code in codes.tolist():
        item = dataset.encoding.item_ids[code]
        task_id = seeded.task_of_item[item]
        worker = worker_ids[int(rng.integers(len(worker_ids)))]
        label = classes[int(rng.integers(len(classes)))]
        connector._call("posting an annotation", seeded.project_id, lambda t=task_id, w=worker, c=label:
                        connector.sdk.annotations.create(
                            id=t, completed_by=seeded.user_of_worker[w],
                            result=[{"from_name": "label", "to_name": "text", "type": "choices",
                                     "value": {"choices": [c]}}]))
        touched.append(task_id)
    return touched


def incremental_pulls(connector: Any, seeded: Any, dataset: Any, full: Any, repeats: int,
                      random_state: int) -> tuple[dict[str, Any], Any]:
    project_id = seeded.project_id
    n_touch = max(1, round(0.01 * len(dataset.encoding.item_ids)))
    watermark = full.watermark
    time.sleep(1.1)  # the watermark has second resolution: touch strictly after it
    touched, touch_s = timed(lambda: touch_tasks(connector, seeded, dataset, n_touch, random_state))
    say(f"  posted {n_touch} annotations in {touch_s:.1f} s")
    pull_s, merge_s, questions_s = [], [], []
    merged = changed = None
    for repeat in range(repeats):
        changed, seconds = timed(lambda: connector.pull(project_id, since=watermark))
        pull_s.append(seconds)
        merged, m_seconds = timed(lambda c=changed: full.merge(c))
        merge_s.append(m_seconds)
        _, q_seconds = timed(merged.questions)
        questions_s.append(q_seconds)
        say(f"  repeat {repeat + 1}: incremental pull {seconds:.2f} s ({changed.n_tasks} tasks), "
            f"merge {m_seconds:.3f} s, questions {q_seconds:.3f} s")
    n_read = changed.n_tasks
    missing = sorted(set(touched) - set(changed.tasks))
    out: dict[str, Any] = {
        "since": "watermark of the last full pull",
        "n_touched": n_touch,
        "n_tasks_read": n_read,
        "touched_missing_from_pull": missing[:10],
        "n_touched_missing": len(missing),
        "touch_s": round(touch_s, 3),
        "pull": summary_of(pull_s, n_read),
        "merge": summary_of(merge_s, n_read),
        "merged_questions": summary_of(questions_s, len(dataset.encoding.item_ids)),
        "skipped_after_merge": dict(merged.skipped),
        "load_average": load(),
    }
    # nothing changed since: the fixed cost of an incremental pull (the watermark is the
    # server's Date header minus 1 s, so take it from a pull 2 s after the last change)
    time.sleep(2.1)
    since = connector.pull(project_id, since=watermark).watermark
    time.sleep(1.1)
    try:
        empty, seconds = timed(lambda: connector.pull(project_id, since=since))
        out["empty"] = {"seconds": round(seconds, 4), "n_tasks_read": empty.n_tasks, "error": None}
        say(f"  incremental pull with nothing changed: {seconds:.2f} s ({empty.n_tasks} tasks)")
    except Exception as error:  # a failure here is a finding, not a reason to lose the run
        out["empty"] = {"seconds": None, "n_tasks_read": None, "error": f"{type(error).__name__}: {error}"}
        say(f"  incremental pull with nothing changed FAILED: {type(error).__name__}: {error}")
    return out, merged


def flipped(predictions: dict[int, Any], subset: Sequence[int]) -> dict[int, Any]:
    """The same predictions with the score of ``subset`` moved by 0.5 (mod 1)."""
    from galton.connectors import PredictionSpec

    out = dict(predictions)
    for task_id in subset:
        spec = predictions[task_id]
        out[task_id] = PredictionSpec(spec.result, round((float(spec.score) + 0.5) % 1.0, 4))
    return out


def write_back(connector: Any, project_id: int, merged: Any, repeats: int,
               random_state: int) -> dict[str, Any]:
    """Write-back timings; ``repeats`` for the repeatable runs (the first runs happen once)."""
    from galton.backend.review import review_project

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        review, review_s = timed(lambda: review_project(merged))
    say(f"  review_project: {review_s:.2f} s ({len(review.predictions)} predictions)")
    predictions = dict(review.predictions)
    n_tasks = len(predictions)
    version_ = review.model_version
    out: dict[str, Any] = {"review_s": round(review_s, 3), "model_version": version_, "n_tasks": n_tasks}

    def record(name: str, seconds: Sequence[float], summaries: Sequence[Any]) -> None:
        entry = summary_of(seconds, n_tasks)
        entry["summaries"] = [s.to_dict() for s in summaries]
        entry["load_average"] = load()
        out[name] = entry
        say(f"  {name}: median {statistics.median(seconds):.2f} s, {summaries[-1].to_dict()}")

    s, seconds = timed(lambda: connector.write_predictions(project_id, predictions, version_))
    record("predictions_first", [seconds], [s])
    runs, summaries = [], []
    for _ in range(repeats):
        s, seconds = timed(lambda: connector.write_predictions(project_id, predictions, version_))
        runs.append(seconds)
        summaries.append(s)
    record("predictions_unchanged", runs, summaries)
    rng = np.random.default_rng(random_state)
    task_ids = sorted(predictions)
    n_changed = max(1, round(0.1 * n_tasks))
    runs, summaries = [], []
    current = predictions
    for _ in range(repeats):
        subset = rng.choice(task_ids, size=n_changed, replace=False).tolist()
        current = flipped(current, subset)
        s, seconds = timed(lambda c=current: connector.write_predictions(project_id, c, version_))
        runs.append(seconds)
        summaries.append(s)
    record("predictions_10pct_changed", runs, summaries)
    out["n_changed_per_run"] = n_changed
    held = connector.predictions(project_id)
    galton = [p for p in held if str(p.get("model_version") or "").startswith("galton-")]
    per_task = {}
    for p in galton:
        per_task[int(p["task"])] = per_task.get(int(p["task"]), 0) + 1
    out["predictions_check"] = {
        "n_galton_predictions": len(galton),
        "n_tasks_with_one": sum(1 for v in per_task.values() if v == 1),
        "n_tasks_with_several": sum(1 for v in per_task.values() if v > 1),
    }

    meta = dict(review.meta)
    before = {task_id: dict(record_.meta) for task_id, record_ in merged.tasks.items()}
    s, seconds = timed(lambda: connector.write_meta(project_id, meta, current=before))
    record("meta_first", [seconds], [s])
    fresh, fresh_pull_s = timed(lambda: connector.pull(project_id))
    out["pull_after_write_back_s"] = round(fresh_pull_s, 4)
    now = {task_id: dict(record_.meta) for task_id, record_ in fresh.tasks.items()}
    runs, summaries = [], []
    for _ in range(repeats):
        s, seconds = timed(lambda: connector.write_meta(project_id, meta, current=now))
        runs.append(seconds)
        summaries.append(s)
    record("meta_unchanged_with_current", runs, summaries)
    runs, summaries = [], []
    for _ in range(repeats):
        s, seconds = timed(lambda: connector.write_meta(project_id, meta))
        runs.append(seconds)
        summaries.append(s)
    record("meta_unchanged_without_current", runs, summaries)
    sample = task_ids[:: max(1, n_tasks // 20)]
    wrong = [t for t in sample if json.loads(json.dumps(meta[t])) != now[t].get("galton")]
    out["meta_check"] = {"n_sampled": len(sample), "n_wrong": len(wrong), "wrong_task_ids": wrong[:10]}
    return out


# --------------------------------------------------------------------------- goal and tables
def goal(report: dict[str, Any]) -> dict[str, Any]:
    full = report["full_pull"]
    tolerance = report["options"]["tolerance"]
    ratio = full["ratio_pull_to_export_median"]
    return {
        "goal": "galton's full pull no slower than Label Studio's JSON export",
        "ratio_median": ratio,
        "ratio_min": full["ratio_pull_to_export_min"],
        "tolerance": tolerance,
        "passed": ratio <= 1.0 + tolerance,
        "strictly_faster": ratio <= 1.0,
        "detail": f"pull / export = {ratio:.3f} (median), {full['ratio_pull_to_export_min']:.3f} (min); "
                  f"passes at <= {1 + tolerance:.2f}",
    }


def pull_rows(report: dict[str, Any]) -> list[list[Any]]:
    full, inc = report["full_pull"], report["incremental"]
    rows = []
    for label, entry in (
        ("LS JSON export (httpx + json)", full["export"]),
        ("galton pull (full)", full["pull"]),
        ("  + questions() (matrices)", full["questions"]),
        ("galton pull + questions()", full["pull_and_questions"]),
        (f"galton pull since= ({inc['n_tasks_read']} tasks read)", inc["pull"]),
        ("  merge into full snapshot", inc["merge"]),
        ("  questions() of merged", inc["merged_questions"]),
    ):
        rows.append([label, entry["n_tasks"], secs(entry["median_s"]), secs(entry["min_s"]),
                     rate(entry["tasks_per_s_median"]), rate(entry["tasks_per_s_best"]), len(entry["runs_s"])])
    empty = inc.get("empty") or {}
    if empty.get("seconds") is not None:
        rows.append(["galton pull since= (nothing changed)", empty["n_tasks_read"], secs(empty["seconds"]),
                     secs(empty["seconds"]), "-", "-", 1])
    return rows


PULL_HEADERS = ["pull", "tasks", "median s", "min s", "tasks/s (median)", "tasks/s (best)", "runs"]
WRITE_HEADERS = ["write-back", "tasks", "written", "median s", "min s", "tasks/s (median)", "written/s (median)",
                 "runs"]
WRITE_LABELS = (
    ("predictions_first", "write_predictions: first run (bulk create)"),
    ("predictions_unchanged", "write_predictions: unchanged (no writes)"),
    ("predictions_10pct_changed", "write_predictions: 10% changed (update in place)"),
    ("meta_first", "write_meta: first run (PATCH each task)"),
    ("meta_unchanged_with_current", "write_meta: unchanged, current= given"),
    ("meta_unchanged_without_current", "write_meta: unchanged, no current= (re-read meta)"),
)


def write_rows(report: dict[str, Any]) -> list[list[Any]]:
    wb = report["write_back"]
    rows = []
    for key, label in WRITE_LABELS:
        entry = wb[key]
        last = entry["summaries"][-1]
        written = last["created"] + last["updated"] + last["deleted"]
        per_s = written / entry["median_s"] if written and entry["median_s"] > 0 else None
        rows.append([label, entry["n_tasks"], written, secs(entry["median_s"]), secs(entry["min_s"]),
                     rate(entry["tasks_per_s_median"]), rate(per_s), len(entry["runs_s"])])
    return rows


def print_tables(report: dict[str, Any]) -> None:
    say(table(PULL_HEADERS, pull_rows(report), "\n== pulls"))
    say(table(WRITE_HEADERS, write_rows(report), "\n== write-back"))
    g = report["goal"]
    say(f"\n== goal: {g['goal']}: {'PASS' if g['passed'] else 'FAIL'} ({g['detail']})")


def markdown_report(report: dict[str, Any]) -> str:
    """The results page, built only from the JSON report."""
    mach, opts, g = report["machine"], report["options"], report["goal"]
    full, inc, wb = report["full_pull"], report["incremental"], report["write_back"]
    parts = [
        "# Label Studio connector benchmark: pull and write-back throughput",
        "",
        f"Written by `benchmarks/connector.py` from `connector.json` ({report['date']}, "
        f"{report.get('total_s', 0):.0f} s). Label Studio {mach['label_studio']} (SQLite, local, 127.0.0.1), "
        f"label-studio-sdk {mach['label_studio_sdk']}, httpx {mach['httpx']}; {mach['platform']}, "
        f"{mach['cpu_count']} CPUs, Python {mach['python']}. Load average at start "
        f"{mach['load_average_at_start']}, at end {report.get('load_average_at_end')}: the machine was shared "
        "with other jobs, so absolute numbers are noisy; the side-by-side ratio is the robust figure.",
        "",
        f"Project: {opts['tasks']} tasks x {opts['raters']} raters ({report['seed']['n_annotations']} "
        f"annotations, {opts['classes']} classes, simulated with random_state={opts['random_state']}), "
        f"seeded in {report['seed']['seconds']:.1f} s. {opts['repeats']} timed repeats per pull measurement "
        f"after one warm-up, export and pull interleaved, order alternating; {opts.get('write_repeats', 1)} "
        "per repeatable write-back run (first runs happen once).",
        "",
        "## Goal",
        "",
        md_table(["goal", "status", "measured"],
                 [[g["goal"], "PASS" if g["passed"] else "FAIL", g["detail"]]], left=3),
        "",
        "## Pulls",
        "",
        md_table(PULL_HEADERS, pull_rows(report)),
        "",
        f"Ratios (median): pull / export = {full['ratio_pull_to_export_median']:.3f}, "
        f"(pull + questions()) / export = {full['ratio_pull_and_questions_to_export_median']:.3f}. "
        f"Incremental: {inc['n_touched']} tasks touched (a new annotation each), {inc['n_tasks_read']} read, "
        f"{inc['n_touched_missing']} touched tasks missing from the pull. A full pull after the write-back "
        f"(the export then also carries the predictions and `meta`) took {secs(wb.get('pull_after_write_back_s'))} s.",
        "",
        "The full pull is Label Studio's export plus two small requests (the project's label config and the "
        "user list) and the parsing, so it can only beat the export by noise; the goal allows "
        f"{100 * g['tolerance']:.0f}% for the noise of this shared machine (`--tolerance`).",
        "",
        "## Write-back",
        "",
        md_table(WRITE_HEADERS, write_rows(report)),
        "",
        f"Inputs from `review_project` ({wb['review_s']:.2f} s, model version `{wb['model_version']}`); "
        f"10% changed = {wb['n_changed_per_run']} predictions with a new score per run. After the runs Label "
        f"Studio held {wb['predictions_check']['n_galton_predictions']} galton predictions "
        f"({wb['predictions_check']['n_tasks_with_several']} tasks with more than one); "
        f"{wb['meta_check']['n_wrong']} of {wb['meta_check']['n_sampled']} sampled tasks had a wrong "
        "`meta.galton`. *written/s*: predictions or tasks written per second; every single-object request "
        "(a prediction or task PATCH) costs Label Studio's development server about 0.2 s on this machine, "
        "so per-task writes run at a few per second whatever the client does.",
    ]
    notes = report.get("notes") or []
    if notes:
        parts += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(parts) + "\n"


def findings(report: dict[str, Any]) -> list[str]:
    """Checks on what landed in Label Studio, as notes for the page."""
    notes = []
    inc, wb = report["incremental"], report["write_back"]
    if inc["n_touched_missing"]:
        notes.append(f"the incremental pull missed {inc['n_touched_missing']} touched tasks "
                     f"(e.g. {inc['touched_missing_from_pull']})")
    if inc["n_tasks_read"] > inc["n_touched"]:
        notes.append(f"the incremental pull read {inc['n_tasks_read']} tasks for {inc['n_touched']} touched")
    empty = inc.get("empty") or {}
    if empty.get("error"):
        notes.append(f"an incremental pull with nothing changed failed: {empty['error']}")
    elif empty.get("n_tasks_read"):
        notes.append(f"an incremental pull with nothing changed still read {empty['n_tasks_read']} tasks")
    expect = {
        "predictions_first": ("created", wb["n_tasks"]),
        "predictions_unchanged": ("unchanged", wb["n_tasks"]),
        "predictions_10pct_changed": ("updated", wb["n_changed_per_run"]),
        "meta_first": ("updated", wb["n_tasks"]),
        "meta_unchanged_with_current": ("unchanged", wb["n_tasks"]),
        "meta_unchanged_without_current": ("unchanged", wb["n_tasks"]),
    }
    for key, (field, wanted) in expect.items():
        for s in wb[key]["summaries"]:
            if s[field] != wanted:
                notes.append(f"{key}: expected {field}={wanted}, got {s}")
                break
    check = wb["predictions_check"]
    if check["n_galton_predictions"] != wb["n_tasks"] or check["n_tasks_with_several"]:
        notes.append(f"Label Studio holds {check['n_galton_predictions']} galton predictions for "
                     f"{wb['n_tasks']} tasks ({check['n_tasks_with_several']} tasks with several)")
    if wb["meta_check"]["n_wrong"]:
        notes.append(f"meta.galton differs from what was written on tasks {wb['meta_check']['wrong_task_ids']}")
    return notes


# --------------------------------------------------------------------------- main
def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from galton.connectors import LabelStudioConnector, seed_crowd_project

    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": {"tasks": args.tasks, "raters": args.raters, "classes": args.classes,
                    "repeats": args.repeats, "write_repeats": args.write_repeats, "random_state": args.random_state,
                    "tolerance": args.tolerance,
                    "template": None if args.template is None else str(args.template)},
    }
    say("machine: " + ", ".join(f"{k}={v}" for k, v in report["machine"].items() if k != "galton_sources"))
    started = time.perf_counter()
    dataset = crowd_dataset(args.tasks, args.raters, args.classes, args.random_state)
    with tempfile.TemporaryDirectory(prefix="galton-bench-ls-") as tmp, \
            label_studio_server(Path(tmp), args.template) as (url, token, pid):
        report["server"] = {"pid": pid}
        with LabelStudioConnector(url, token, timeout=120.0) as connector, \
                httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=600.0) as client:
            say(f"seeding {args.tasks} tasks x {args.raters} raters ...")
            seeded, seconds = timed(lambda: seed_crowd_project(connector, dataset, title="galton connector bench"))
            report["seed"] = {"seconds": round(seconds, 2), "n_annotations": len(dataset.matrix.items),
                              "project_id": seeded.project_id, "load_average": load()}
            say(f"  seeded project {seeded.project_id} in {seconds:.1f} s")
            say("full pull vs export ...")
            report["full_pull"], full = full_pulls(connector, client, seeded.project_id, args.tasks, args.repeats)
            say("incremental pull ...")
            report["incremental"], merged = incremental_pulls(connector, seeded, dataset, full, args.repeats,
                                                              args.random_state)
            say("write-back ...")
            report["write_back"] = write_back(connector, seeded.project_id, merged, args.write_repeats,
                                              args.random_state)
    report["goal"] = goal(report)
    report["notes"] = findings(report)
    report["load_average_at_end"] = load()
    report["total_s"] = round(time.perf_counter() - started, 1)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark galton's Label Studio connector (pull and write-back) against a local server."
    )
    parser.add_argument("--tasks", type=int, default=5000, help="tasks in the project (default 5000)")
    parser.add_argument("--raters", type=int, default=5, help="raters, each labelling every task (default 5)")
    parser.add_argument("--classes", type=int, default=3, choices=range(2, 6), metavar="{2..5}",
                        help="classes of the single-choice question (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (default 3)")
    parser.add_argument("--write-repeats", type=int, default=1,
                        help="timed repeats of the repeatable write-back runs (default 1: a 10%% update "
                             "of 5,000 tasks takes about a minute)")
    parser.add_argument("--random-state", type=int, default=0, help="seed of the simulated crowd (default 0)")
    parser.add_argument("--tolerance", type=float, default=0.10,
                        help="the pull passes at <= (1 + tolerance) x the export's median time (default 0.10)")
    parser.add_argument("--template", type=Path, default=None,
                        help="keep the migrated Label Studio template here and reuse it on later runs "
                             "(default: migrate afresh in a temp dir)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="markdown summary, written from the JSON (default: --out with suffix .md)")
    parser.add_argument("--markdown-only", action="store_true",
                        help="run nothing: rewrite the markdown summary from the existing JSON at --out")
    args = parser.parse_args(argv)
    markdown = args.markdown or args.out.with_suffix(".md")
    if not args.markdown_only:
        if args.tasks < 1 or args.raters < 2 or args.repeats < 1 or args.write_repeats < 1:
            parser.error("--tasks must be >= 1, --raters >= 2, --repeats and --write-repeats >= 1")
        report = run(args)
        print_tables(report)
        for note in report["notes"]:
            say(f"note: {note}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        say(f"\nwrote {args.out} ({report['total_s']:.0f} s)")
    report = json.loads(args.out.read_text())
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(markdown_report(report))
    say(f"wrote {markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
