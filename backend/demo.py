"""``make demo``: galton inside a real, local Label Studio, end to end, with one command.

By default (``python -m galton.backend.demo``):

1. migrates a Label Studio data directory once (``WORKDIR/label-studio-template``, kept for
   the next run) and starts Label Studio (SQLite, 127.0.0.1, a free port) from a fresh copy;
2. creates a project from the bundled ``weather_cf`` sample (300 tweets, 461 real raters,
   1,720 annotations; each rater a Label Studio user, ground truth off);
3. starts ``galton serve`` on a free port with generated basic auth and webhook secret,
   registers it as the project's ML backend and adds the secret to its webhook;
4. waits (bounded, with a progress line) until galton's review has written a prediction and
   ``meta.galton`` to every task;
5. writes the HTML report (``WORKDIR/report.html``, task links into Label Studio) and prints
   Label Studio's URL and login, the report path and a summary: consensus accuracy against
   the sample's gold (the gold is never shown to the models), the riskiest raters and the
   flagged tasks by flag;
6. keeps both servers running until Ctrl-C (or SIGTERM), then stops them by PID.

``--exit`` stops after printing; so does a run whose stdin is not a terminal (CI, a pipe:
nobody could press Ctrl-C), unless ``--keep`` is given. Every run starts from a fresh copy
of the template, so ``make demo`` works any number of times; only the template (and its
admin login, random, created with it and kept in a 0600 file beside it) is reused.

``--offline`` is the former demo: every consensus method on the sample (or ``--data
FOLDER``), agreement with bootstrap intervals and the rater table, printed and written as
JSON; no server.

    python -m galton.backend.demo [--exit | --keep] [--workdir DIR]
    python -m galton.backend.demo --offline [--data FOLDER] [--out FOLDER]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from galton.connectors import CrowdDataset, load_sample, read_crowd_dataset
from galton.quality import (
    ConvergenceWarning,
    agreement_report,
    dawid_skene,
    glad,
    mace,
    majority_vote,
    one_coin_dawid_skene,
    wawa,
    weighted_vote,
    worker_scores,
)

log = logging.getLogger(__name__)

METHODS = {
    "majority_vote": majority_vote,
    "wawa": wawa,
    "weighted_vote": weighted_vote,
    "dawid_skene": dawid_skene,
    "one_coin_dawid_skene": one_coin_dawid_skene,
    "glad": glad,
    "mace_em": lambda m: mace(m, method="em"),
    "mace_vb": lambda m: mace(m, method="vb"),
}

SAMPLE = "weather_cf"
#: what the codes 0..4 of weather_cf mean (connectors/samples/weather_cf/SOURCE.md)
WEATHER_CLASSES = "0 negative, 1 neutral, 2 positive, 3 not related to weather, 4 cannot tell"
BACKEND_USER = "label-studio"
WAIT_S = 900.0
TOP_RATERS = 5
#: raters with fewer labels are not ranked in the summary
MIN_LABELS = 5
#: training epochs of the demo's dynamics run (300 tasks: a few seconds)
DEMO_EPOCHS = 5


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


# ---------------------------------------------------------------------- offline numbers
def run(data_dir: Path | None, out_dir: Path) -> dict:
    """The offline demo (``--offline``): every method, agreement, raters; writes JSON and CSV."""
    data = read_crowd_dataset(data_dir) if data_dir else load_sample(SAMPLE)
    matrix, encoding = data.matrix, data.encoding
    gold = data.gold_codes()
    known = gold >= 0
    print(f"dataset {data.name}: {matrix.n_items} items, {matrix.n_workers} workers, "
          f"{matrix.n_annotations} annotations, {matrix.n_classes} classes, {int(known.sum())} gold items\n")

    summary: dict = {"dataset": data.name, "methods": {}}
    print(f"{'method':<22}{'accuracy on gold':>18}{'seconds':>10}")
    results = {}
    for name, method in METHODS.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = method(matrix)
        seconds = time.perf_counter() - start
        accuracy = float(np.mean(result.labels[known] == gold[known])) if known.any() else float("nan")
        results[name] = result
        summary["methods"][name] = {"accuracy": accuracy, "seconds": seconds}
        print(f"{name:<22}{_fmt(accuracy):>18}{seconds:>10.3f}")

    report = agreement_report(matrix, n_boot=500, random_state=0)
    summary["agreement"] = report.to_dict()
    print("\nagreement (95% bootstrap interval over items)")
    for label, interval in (("raw agreement", report.raw_agreement), ("Fleiss' kappa", report.fleiss_kappa),
                            ("Krippendorff's alpha", report.krippendorff_alpha), ("Gwet's AC1", report.gwet_ac1)):
        print(f"  {label:<22}{_fmt(interval.estimate)}  [{_fmt(interval.low)}, {_fmt(interval.high)}]")

    scores = worker_scores(matrix, gold=gold if known.any() else None, mace_result=results["mace_em"])
    rows = scores.to_rows(encoding)
    summary["workers"] = rows
    print("\nraters most likely spamming (MACE), with gold accuracy and Raykar-Yu score")
    print(f"  {'worker':<10}{'n':>5}{'spam p':>9}{'gold acc':>10}{'  interval':<18}{'raykar-yu':>10}")
    for row in rows[:8]:
        interval = f"  [{_fmt(row['gold_low'], 2)}, {_fmt(row['gold_high'], 2)}]"
        print(f"  {row['worker']!s:<10}{row['n_annotations']:>5}{_fmt(row['spam_probability']):>9}"
              f"{_fmt(row['gold_accuracy']):>10}{interval:<18}{_fmt(row['raykar_yu']):>10}")

    out_dir.mkdir(parents=True, exist_ok=True)
    consensus = results["mace_em"]
    labels = encoding.decode_labels(consensus.labels)
    (out_dir / "consensus.csv").write_text(
        "item,label,confidence\n"
        + "".join(f"{item},{label},{conf:.6f}\n"
                  for item, label, conf in zip(encoding.item_ids, labels, consensus.confidence(), strict=True))
    )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nwrote {out_dir / 'consensus.csv'} and {out_dir / 'summary.json'}")
    return summary


def consensus_summary(data: CrowdDataset, *, top: int = TOP_RATERS, min_labels: int = MIN_LABELS,
                      random_state: int = 0) -> dict[str, Any]:
    """Consensus accuracy against gold (MACE and majority vote, fitted WITHOUT gold) and the riskiest raters.

    Gold clamps a consensus to itself, so the fits never see it; it only scores them.
    Raters with at least ``min_labels`` labels are ranked by MACE spam probability (with one
    or two labels a rater's spam probability says more about the prior than about the rater);
    their share of correct gold answers is shown beside it.
    """
    matrix, encoding = data.matrix, data.encoding
    gold = data.gold_codes()
    known = gold >= 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fits = {"MACE": mace(matrix, method="em", random_state=random_state), "majority vote": majority_vote(matrix)}
        raters = worker_scores(matrix, gold=gold if known.any() else None, mace_result=fits["MACE"],
                               random_state=random_state)
    accuracy = {name: float(np.mean(fit.labels[known] == gold[known])) if known.any() else float("nan")
                for name, fit in fits.items()}
    rows = sorted((r for r in raters.to_rows(encoding) if r["n_annotations"] >= min_labels),
                  key=lambda r: -float(r["spam_probability"]))[:top]
    return {"n_gold": int(known.sum()), "accuracy": accuracy, "raters": rows, "min_labels": min_labels}


def label_studio_accuracy(task_labels: Mapping[Any, str], gold: Mapping[Any, str]) -> float:
    """Share of gold items whose consensus label (as Label Studio holds it) equals gold."""
    scored = [item for item in gold if item in task_labels]
    return float(np.mean([task_labels[i] == gold[i] for i in scored])) if scored else float("nan")


def format_summary(summary: Mapping[str, Any], *, flags: Mapping[str, int] | None = None, n_tasks: int | None = None,
                   label_studio: float | None = None) -> str:
    """The summary table the demo prints."""
    lines = [f"consensus accuracy vs gold ({summary['n_gold']} gold items; the fits never see gold)",
             f"  {'method':<42}{'accuracy':>9}"]
    if label_studio is not None:
        lines.append(f"  {'galton backend (MACE), in Label Studio':<42}{_fmt(label_studio):>9}")
    for name, value in summary["accuracy"].items():
        lines.append(f"  {name + ' (offline)':<42}{_fmt(value):>9}")
    lines += ["", f"top {len(summary['raters'])} raters by MACE spam probability "
              f"(of those with >= {summary.get('min_labels', 1)} labels)",
              f"  {'rater':<10}{'labels':>7}{'spam p':>9}{'gold right':>12}"]
    for row in summary["raters"]:
        gold = f"{row['gold_correct']}/{row['gold_n']}" if row.get("gold_n") else "-"
        lines.append(f"  {row['worker']!s:<10}{row['n_annotations']:>7}{_fmt(row['spam_probability']):>9}{gold:>12}")
    if flags is not None:
        total = flags.get("__tasks__", 0)
        lines += ["", f"flagged tasks (meta.galton.flags in Label Studio): {total}"
                  + (f" of {n_tasks}" if n_tasks is not None else "")]
        for name, n in sorted(((k, v) for k, v in flags.items() if k != "__tasks__"), key=lambda kv: -kv[1]):
            lines.append(f"  {name:<20}{n:>5}")
    return "\n".join(lines)


def count_flags(metas: Mapping[int, Mapping[str, Any] | None]) -> dict[str, int]:
    """Tasks per flag over ``{task: meta.galton}``, plus ``__tasks__``: tasks with any flag."""
    counts: Counter[str] = Counter()
    for meta in metas.values():
        task_flags = list((meta or {}).get("flags") or [])
        counts.update(task_flags)
        counts["__tasks__"] += bool(task_flags)
    counts.setdefault("__tasks__", 0)
    return dict(counts)


# ---------------------------------------------------------------------- the live demo
@dataclass
class BackendProcess:
    """``galton serve`` as a child process."""

    url: str
    process: subprocess.Popen[bytes]
    user: str
    password: str

    def get(self, path: str) -> Any:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read().decode())

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_backend(workdir: Path, env: Mapping[str, str], *, timeout: float = 60.0) -> BackendProcess:
    """``galton serve`` on a free 127.0.0.1 port, in its own session; waits for ``/health``."""
    from .local_labelstudio import free_port

    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("GALTON_", "LABEL_STUDIO_"))}
    full_env.update(env)
    full_env.update(GALTON_HOST="127.0.0.1", GALTON_PORT=str(port))
    log_path = workdir / "backend.log"
    with log_path.open("ab") as handle:
        process = subprocess.Popen([sys.executable, "-m", "galton.backend.cli", "serve", "--log-level", "info"],
                                   env=full_env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=workdir, start_new_session=True)
    backend = BackendProcess(f"http://127.0.0.1:{port}", process, env["GALTON_BASIC_AUTH_USER"],
                             env["GALTON_BASIC_AUTH_PASSWORD"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"galton serve exited with {process.returncode}; see {log_path}:\n"
                               f"{log_path.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(backend.url + "/health", timeout=2) as response:
                if response.status == 200:
                    return backend
        except OSError:
            time.sleep(0.2)
    backend.stop()
    raise RuntimeError(f"galton serve did not answer /health within {timeout:.0f} s (log: {log_path})")


def _credentials(template: Path) -> dict[str, str]:
    """The template's admin login and token: random, made with the template, kept beside it (0600)."""
    from .local_labelstudio import migrated_template

    path = template.parent / "label-studio-credentials.json"
    if (template / ".migrated").is_file() and path.is_file():
        return json.loads(path.read_text())
    credentials = {"token": secrets.token_hex(20), "password": secrets.token_urlsafe(12)}
    if template.exists():
        shutil.rmtree(template)  # a template without its credentials is of no use
    print("migrating a Label Studio data directory (first run only, about a minute) ...", flush=True)
    migrated_template(template, token=credentials["token"], password=credentials["password"])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(credentials, handle)
    return credentials


def _progress(message: str) -> None:
    end = "\r" if sys.stdout.isatty() else "\n"
    print(f"  {message:<78}", end=end, flush=True)


def wait_for_review(connector: Any, backend: BackendProcess, project_id: int, n_tasks: int, *,
                    timeout: float = WAIT_S, progress: Callable[[str], None] = _progress,
                    interval: float = 3.0) -> Any:
    """Poll until every task holds galton's prediction and ``meta.galton`` and no job is running; the pull."""
    from galton.connectors import GALTON_PREFIX

    start = time.monotonic()
    deadline = start + timeout
    while True:
        jobs = backend.get(f"/jobs?project={project_id}")["jobs"]
        busy = any(j["status"] == "running" for j in jobs)
        failed = [j for j in jobs if j["status"] == "failed"]
        pulled = connector.pull(project_id)
        with_meta = sum(1 for t in pulled.tasks.values() if (t.meta or {}).get("galton"))
        predicted = {int(p["task"]) for p in connector.predictions(project_id)
                     if str(p.get("model_version") or "").startswith(GALTON_PREFIX)}
        elapsed = time.monotonic() - start
        progress(f"[{elapsed:5.0f} s] galton wrote predictions {len(predicted)}/{n_tasks}, "
                 f"meta {with_meta}/{n_tasks}; jobs: {len(jobs)}{' (running)' if busy else ''}"
                 f"{f', {len(failed)} failed (retried)' if failed else ''}")
        if with_meta >= n_tasks and len(predicted) >= n_tasks and jobs and not busy:
            if sys.stdout.isatty():
                print()
            return pulled
        if backend.process.poll() is not None:
            raise RuntimeError(f"galton serve exited with {backend.process.returncode} while reviewing")
        if time.monotonic() > deadline:
            raise TimeoutError(f"galton did not finish reviewing project {project_id} within {timeout:.0f} s")
        time.sleep(interval)


def vote_shares(data: CrowdDataset) -> dict[Any, list[float]]:
    """Per item the raters' vote shares over the classes: the demo's feature vector (no texts bundled)."""
    m = data.matrix
    counts = np.zeros((m.n_items, m.n_classes))
    np.add.at(counts, (m.items, m.labels), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    return {item: shares[i].round(3).tolist() for i, item in enumerate(data.encoding.item_ids)}


def write_demo_config(workdir: Path) -> Path:
    """The demo's galton.toml: state beside the demo, training dynamics on the ``votes`` vector field."""
    path = workdir / "galton.toml"
    path.write_text(f"""# written by make demo
[state]
url = "sqlite:///{workdir / 'backend.sqlite3'}"

[review]
method = "mace"

[dynamics]
enabled = true
vector_field = "votes"
epochs = {DEMO_EPOCHS}
cache_dir = "{workdir / 'features'}"
""")
    return path


def run_sync(toml: Path, url: str, token: str, project_id: int) -> dict[str, Any]:
    """``galton sync --project ID`` with the demo's galton.toml, in this process; its outcome."""
    from .config import load_config, settings_for
    from .state import StateStore
    from .sync import sync_project

    settings = settings_for(load_config(toml, environ={}), project_id,
                            environ={"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": token})
    store = StateStore(settings.state_url)
    try:
        outcome = sync_project(settings, store, project_id)
    finally:
        store.close()
    if outcome.status != "synced":
        raise RuntimeError(f"galton sync of project {project_id} {outcome.status}: {outcome.error}")
    return outcome.to_dict()


def stored_dynamics(workdir: Path, project_id: int, pulled: Any) -> dict[str, Any] | None:
    """The sync's training-dynamics report for the HTML report, when it matches the pulled tasks."""
    from .dynamics import DynamicsStore
    from .state import StateStore

    store = StateStore(f"sqlite:///{workdir / 'backend.sqlite3'}")
    try:
        result = DynamicsStore(store).load(project_id)
    finally:
        store.close()
    if result is None or result.report is None or result.question not in pulled.questions():
        return None
    task_of = pulled.task_of_item()
    order = tuple(int(task_of[i]) for i in pulled.questions()[result.question].encoding.item_ids)
    return {result.question: result.report} if order == tuple(result.task_ids) else None


def mislabeled_rows(metas: Mapping[int, Mapping[str, Any] | None], gold: Mapping[int, Any]) -> list[dict[str, Any]]:
    """Tasks flagged ``likely_mislabeled`` in Label Studio, most suspicious first."""
    rows = []
    for task_id, meta in metas.items():
        entry = (meta or {}).get("dynamics") or {}
        if entry.get("flag"):
            rows.append({"task": task_id, "label": entry.get("label"), "gold": gold.get(task_id),
                         "score": entry.get("score"), "region": entry.get("region")})
    return sorted(rows, key=lambda r: -(r["score"] or 0.0))


def format_mislabeled(rows: list[dict[str, Any]], synced: Mapping[str, Any] | None = None, *, top: int = 10) -> str:
    """The summary's training-dynamics part: flagged tasks, and how many of them gold says are wrong."""
    status = (synced or {}).get("dynamics", {})
    wrong = [r for r in rows if r["gold"] is not None and str(r["gold"]) != str(r["label"])]
    lines = ["", f"training dynamics ({status.get('status', '?')}, {status.get('epochs', '?')} epochs on "
             f"{status.get('n_tasks', '?')} tasks): {len(rows)} tasks flagged likely_mislabeled, "
             f"{len(wrong)} of them with a consensus that differs from gold",
             f"  {'task':>8}  {'consensus':<10}{'gold':<6}{'score':>7}  region"]
    for r in rows[:top]:
        lines.append(f"  {r['task']:>8}  {r['label']!s:<10}{r['gold']!s:<6}{_fmt(r['score']):>7}  {r['region']}")
    return "\n".join(lines)


class _Stop(Exception):
    """SIGTERM, turned into an exception so the ``finally`` blocks stop the servers."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signum)


def run_live(workdir: Path, *, keep_running: bool, wait_s: float = WAIT_S) -> dict[str, Any]:
    """The default demo (see the module doc); returns what it printed as a dict."""
    from galton.connectors import LabelStudioConnector
    from galton.connectors._seed import choices_config, seed_crowd_project

    from . import report as reporting
    from .local_labelstudio import ADMIN_EMAIL, LocalLabelStudio, find_label_studio
    from .review import ReviewSettings, review_project
    from .settings import SECRET_HEADER

    find_label_studio()  # fail early, with the hint, before anything is made
    started = time.monotonic()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    credentials = _credentials(workdir / "label-studio-template")
    data_dir = workdir / "label-studio"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    shutil.copytree(workdir / "label-studio-template", data_dir)
    shutil.rmtree(workdir / "features", ignore_errors=True)
    for stale in ("backend.sqlite3", "backend.sqlite3-wal", "backend.sqlite3-shm", "backend.log"):
        (workdir / stale).unlink(missing_ok=True)
    data = load_sample(SAMPLE)
    offline = consensus_summary(data)

    previous = signal.signal(signal.SIGTERM, _raise_stop)
    # Ctrl-C stops the demo even when it was started with SIGINT ignored (a shell's background
    # job without job control, nohup): Python then installs no handler of its own
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    label_studio = LocalLabelStudio(data_dir=data_dir, token=credentials["token"], password=credentials["password"],
                                    log_path=workdir / "label-studio.log")
    backend: BackendProcess | None = None
    try:
        print("starting Label Studio ...", flush=True)
        label_studio.start()
        with LabelStudioConnector(label_studio.url, credentials["token"], n_threads=8) as connector:
            print(f"creating a project from the bundled {SAMPLE} sample ({data.matrix.n_items} tasks, "
                  f"{data.matrix.n_workers} raters, {data.matrix.n_annotations} annotations) ...", flush=True)
            config = choices_config([str(c) for c in data.encoding.class_names]).replace(
                "<View>", f'<View><Header value="{WEATHER_CLASSES}"/>', 1)
            shares = vote_shares(data)
            seeded = seed_crowd_project(connector, data, title=f"galton demo: {SAMPLE}", label_config=config,
                                        texts={item: {"text": f"CrowdFlower weather tweet {item}",
                                                      "votes": shares[item]} for item in data.encoding.item_ids})
            project_id = seeded.project_id
            # galton sync with training dynamics first (the bundled sample has no tweet texts: the
            # featurizer reads each task's vote shares, a vector field); the backend shares its state
            toml = write_demo_config(workdir)
            print("galton sync: consensus, training dynamics and write-back "
                  "(Label Studio takes about 0.2 s per task) ...", flush=True)
            synced = run_sync(toml, label_studio.url, credentials["token"], project_id)
            user, password, secret = BACKEND_USER, secrets.token_urlsafe(16), secrets.token_urlsafe(16)
            print("starting galton's backend and connecting it to the project ...", flush=True)
            backend = start_backend(workdir, {
                "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": credentials["token"],
                "GALTON_BASIC_AUTH_USER": user, "GALTON_BASIC_AUTH_PASSWORD": password,
                "GALTON_WEBHOOK_SECRET": secret, "GALTON_CONFIG": str(toml),
            })
            sdk = connector.sdk
            sdk.ml.create(project=project_id, url=backend.url, title="galton", auth_method="BASIC_AUTH",
                          basic_auth_user=user, basic_auth_pass=password)
            for hook in sdk.webhooks.list(project=str(project_id)):
                if hook.url == backend.url + "/webhook":
                    sdk.webhooks.update(id=hook.id, headers={SECRET_HEADER: secret})
            print("galton's backend reviews the project (the sync wrote everything: nothing left to write) ...",
                      flush=True)
            pulled = wait_for_review(connector, backend, project_id, len(seeded.task_of_item), timeout=wait_s)

            # the report: the same review the backend wrote (no gold), gate decisions against the sample's gold
            settings = ReviewSettings(method="mace")
            review = review_project(pulled, settings)
            dynamics = stored_dynamics(workdir, project_id, pulled)
            item_of_task = {task: item for item, task in seeded.task_of_item.items()}
            question = next(iter(pulled.questions()))
            gold_by_task = {task: data.gold[item] for task, item in item_of_task.items() if item in data.gold}
            with_gold = replace(pulled, gold={question: {pulled.tasks[t].item: g for t, g in gold_by_task.items()}})
            report_path = reporting.write_report(
                workdir / "report.html", pulled, review, gates=reporting.gate_decisions(with_gold),
                dynamics=dynamics, settings=settings, label_studio_url=label_studio.url, project_id=project_id,
                title=f"galton demo: {SAMPLE} in Label Studio")
            metas = {t: (task.meta or {}).get("galton") for t, task in pulled.tasks.items()}
            in_ls = {item_of_task[t]: (m or {}).get("questions", {}).get(question, {}).get("label")
                     for t, m in metas.items() if t in item_of_task}
            ls_accuracy = label_studio_accuracy(in_ls, data.gold)
            flags = count_flags(metas)
            flagged = mislabeled_rows(metas, {t: data.gold.get(i) for t, i in item_of_task.items()})

        seconds = time.monotonic() - started
        print(f"\nready in {seconds:.0f} s\n")
        print(f"Label Studio   {label_studio.url}/projects/{project_id}/data")
        print(f"  login        {ADMIN_EMAIL}")
        # the password stays in the credentials file (mode 0600): galton never prints secrets
        print(f"  password     in {workdir / 'label-studio-credentials.json'} (key \"password\")")
        print(f"report         {report_path}")
        print(f"logs           {workdir / 'label-studio.log'}, {workdir / 'backend.log'}\n")
        print(format_summary(offline, flags=flags, n_tasks=len(pulled.tasks), label_studio=ls_accuracy))
        print(format_mislabeled(flagged, synced))
        sys.stdout.flush()
        result = {"url": label_studio.url, "project_id": project_id, "report": str(report_path),
                  "accuracy": {**offline["accuracy"], "label_studio": ls_accuracy}, "flags": flags,
                  "seconds": seconds, "sync": synced, "mislabeled": flagged}
        if keep_running:
            # the message is printed inside the suppress: a Ctrl-C right after it is a normal stop
            with contextlib.suppress(KeyboardInterrupt, _Stop):
                print(f"\nLabel Studio (pid {label_studio.pid}) and galton's backend (pid {backend.process.pid}) "
                      "keep running: annotate in Label Studio and galton re-reviews. Ctrl-C stops both.", flush=True)
                while backend.process.poll() is None:
                    time.sleep(1.0)
            print("\nstopping ...", flush=True)
        return result
    finally:
        if backend is not None:
            backend.stop()
        label_studio.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="no servers: every consensus method on --data")
    parser.add_argument("--data", type=Path, help="--offline: folder with annotations.csv (and gold.csv); "
                        "default: bundled sample")
    parser.add_argument("--out", type=Path, default=Path(".galton/demo"), help="--offline: where to write results")
    parser.add_argument("--workdir", type=Path, default=Path(".galton/demo"),
                        help="Label Studio template and data, backend state, logs and report (default .galton/demo)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--exit", action="store_true", help="stop the servers after printing the summary")
    mode.add_argument("--keep", action="store_true", help="keep the servers running until Ctrl-C even when stdin "
                      "is not a terminal")
    parser.add_argument("--wait", type=float, default=WAIT_S, help="seconds to wait for galton's review")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.offline:
        logging.getLogger().setLevel(logging.INFO)
        run(args.data, args.out)
        return 0
    keep = args.keep or (not args.exit and sys.stdin.isatty())
    try:
        run_live(args.workdir, keep_running=keep, wait_s=args.wait)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    except _Stop:
        print("\nterminated; servers stopped", file=sys.stderr)
        return 143
    except Exception as error:  # the demo's one line of what went wrong, logs named
        print(f"\ndemo failed: {error}\n(logs: {args.workdir / 'label-studio.log'}, "
              f"{args.workdir / 'backend.log'})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
