"""Consensus methods, galton vs crowd-kit: accuracy, fit time and (synthetic) peak memory.

Two parts:

* **real data** -- every dataset folder (``annotations.csv`` and optionally ``gold.csv``)
  in ``../shared/data/crowd``: galton's majority_vote, wawa, dawid_skene,
  one_coin_dawid_skene, glad, mace(em) and mace(vb) next to crowd-kit's MajorityVote,
  Wawa, DawidSkene, OneCoinDawidSkene, GLAD and MACE (crowd-kit defaults; MACE with the
  row's method), scored on the gold items that have annotations.
* **synthetic** -- :func:`galton.quality._simulate.simulate_crowd` crowds of 10k to 10M
  annotations (10 classes, 20% uniform spammers, 5 labels per item): galton's
  dawid_skene and mace fit time, accuracy against the planted truth, AUROC of the MACE
  spamming score against the planted spammers, and the peak memory of each fit, next to
  crowd-kit at the sizes where it finishes in reasonable time.

Peak memory is measured in a fresh child process per fit: the child simulates the crowd,
runs one fit and reports the high-water mark of its own resident set (``VmHWM`` in
``/proc/self/status``). A baseline child does the same minus the fit. ``ru_maxrss``
(``RUSAGE_SELF`` in the child or ``RUSAGE_CHILDREN`` in the parent) is *not* used on
Linux: the kernel carries the parent's resident set at fork over into the child's
``ru_maxrss`` across ``exec``, so every child would report at least the size of this
benchmark process (about 340 MiB after the real-data part), whatever it did.
``RUSAGE_CHILDREN`` is in addition a maximum over all children reaped so far. Both
numbers are kept in the JSON (``peak_rss`` and ``ru_maxrss``); ``ru_maxrss`` is the
fallback where ``/proc`` is missing (macOS).

Run from the repository root::

    .venv/bin/python benchmarks/aggregation.py                 # everything (~15 min)
    .venv/bin/python benchmarks/aggregation.py --quick         # ~2 min
    .venv/bin/python benchmarks/aggregation.py --skip-real --sizes 1M,10M

    .venv/bin/python benchmarks/aggregation.py --markdown-only # re-render the .md from the JSON

Results are printed as tables and written as JSON to ``benchmarks/results/aggregation.json``;
every run then renders ``benchmarks/results/aggregation.md`` (goals, per-dataset accuracy,
synthetic timings) from that JSON.

crowd-kit is fed integer codes in order of first appearance (:class:`CrowdkitFrame`):
crowd-kit 1.4.2's MACE mis-pairs its strategy counts with workers and labels otherwise.
Its DawidSkene often stops after 2-3 EM steps because its "ELBO" falls; the JSON records
how many steps it ran, why it stopped and, where the ELBO fell, its accuracy after all 100
steps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _tables import md_table, secs, table  # benchmarks/_tables.py (the script's folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "crowd"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "aggregation.json"

# crowd-kit GLAD runs a pandas-based L-BFGS per M-step: minutes on large datasets
CK_GLAD_MAX_ANNOTATIONS = 50_000
# crowd-kit's pandas EMs take minutes to hours beyond this many annotations
CK_SYNTHETIC_MAX_ANNOTATIONS = 100_000
# flag galton's dawid_skene / mace when more than this many points below crowd-kit
FLAG_POINTS = 0.5

SYNTHETIC = dict(n_classes=10, labels_per_item=5, spammer_share=0.2, skill=(0.6, 0.95), random_state=0)
SYNTHETIC_METHODS = ("dawid_skene", "mace(em)", "mace(vb)")

GOAL_DS_1M_S = 5.0
GOAL_MACE_1M_S = 10.0
GOAL_10M_BYTES = 4 * 1024**3
GOAL_AUROC = 0.98
GOAL_SPEEDUP_100K = 50.0


# --------------------------------------------------------------------------- helpers
def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 10**3, "m": 10**6}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "km" else text
    try:
        return int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 10k, 1M, 250000)") from None


def size_name(n: int) -> str:
    if n >= 10**6 and n % 10**6 == 0:
        return f"{n // 10**6}M"
    if n >= 10**3 and n % 10**3 == 0:
        return f"{n // 10**3}k"
    return str(n)


def synthetic_shape(n_annotations: int) -> dict[str, int]:
    """Items and workers for a crowd of about ``n_annotations``: 5 labels per item and
    workers who label 500 (10k) to 5000 (10M) items each."""
    per_item = SYNTHETIC["labels_per_item"]
    return {"n_items": max(n_annotations // per_item, 1), "n_workers": max(20, n_annotations // 2000)}




def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"




def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024**2:.0f}"


def timed(fit: Callable[[], Any]) -> tuple[Any, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        result = fit()
        return result, time.perf_counter() - start


def machine() -> dict[str, Any]:
    import crowdkit
    import pandas
    import scipy
    import sklearn

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "scikit_learn": sklearn.__version__,
        "crowd_kit": getattr(crowdkit, "__version__", None) or _dist_version("crowd-kit"),
        # the modules under test change often: record exactly which sources ran
        "galton_sources": {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            for path in sorted((REPO / "quality").glob("_*.py"))
        },
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def quiet_crowdkit() -> None:
    """crowd-kit and pandas emit FutureWarnings and tqdm chatter on every fit."""
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")


class CrowdkitFrame:
    """A matrix as the DataFrame crowd-kit reads, coded in order of first appearance.

    crowd-kit 1.4.2's ``MACE`` numbers its parameters by ``pd.factorize`` (order of first
    appearance) but builds its strategy counts with a sorted ``groupby(...).unstack()``
    and uses them by position. Unless the two orders agree it pairs each worker's
    strategy with the wrong workers or labels, and what it fits is not MACE (zencrowd:
    0.864 with galton's sorted class codes, 0.847 with the original string ids, 0.788
    with first-appearance codes, which is what galton's own MACE scores). Integer codes
    in order of first appearance make both orders the same, so every crowd-kit method
    gets this frame and its answers are mapped back to galton's item and class codes.
    """

    def __init__(self, matrix: Any) -> None:
        import pandas as pd

        tasks, self.items = pd.factorize(matrix.items)
        workers, self.workers = pd.factorize(matrix.workers)
        labels, self.classes = pd.factorize(matrix.labels)
        self.items = np.asarray(self.items, dtype=np.int64)
        self.workers = np.asarray(self.workers, dtype=np.int64)
        self.classes = np.asarray(self.classes, dtype=np.int64)
        self.n_items = matrix.n_items
        self.n_workers = matrix.n_workers
        self.df = pd.DataFrame({"task": tasks, "worker": workers, "label": labels})

    def labels(self, series: Any) -> np.ndarray:
        """crowd-kit's labels (a Series indexed by task code) as galton class codes,
        ``(n_items,)`` in galton item order, -1 for items it did not label."""
        labels = np.full(self.n_items, -1, dtype=np.int64)
        tasks = series.index.to_numpy(dtype=np.int64)
        labels[self.items[tasks]] = self.classes[series.to_numpy(dtype=np.int64)]
        return labels

    def per_worker(self, values: Any) -> np.ndarray:
        """A crowd-kit per-worker array (rows in its worker order) in galton worker order."""
        out = np.full(self.n_workers, np.nan)
        out[self.workers] = np.asarray(values, dtype=np.float64)
        return out


def crowdkit_ds_stop(loss_history: Sequence[float], n_iter: int) -> str:
    """Why crowd-kit's DawidSkene stopped: its loop breaks when ``new - old < tol``, a
    fall of its "ELBO" included (that ELBO adds log prior once per annotation, not once
    per item, so it can fall while the likelihood still rises)."""
    if len(loss_history) >= n_iter:
        return "n_iter"
    if len(loss_history) >= 2 and loss_history[-1] < loss_history[-2]:
        return "elbo fell"
    return "tol"


def crowdkit_dawid_skene(frame: CrowdkitFrame) -> tuple[np.ndarray, dict[str, Any]]:
    """crowd-kit DawidSkene with its defaults; where it stopped because its ELBO fell,
    also a run of all ``n_iter`` steps (``tol=-inf``) to show what the model converges to."""
    from crowdkit.aggregation import DawidSkene

    model = DawidSkene()
    labels = frame.labels(model.fit_predict(frame.df))
    extra: dict[str, Any] = {
        "crowdkit_n_iter": len(model.loss_history_),
        "crowdkit_stop": crowdkit_ds_stop(model.loss_history_, model.n_iter),
    }
    if extra["crowdkit_stop"] == "elbo fell":
        full = DawidSkene(tol=-np.inf)
        extra["crowdkit_full_labels"] = frame.labels(full.fit_predict(frame.df))
        extra["crowdkit_full_n_iter"] = len(full.loss_history_)
    return labels, extra


def crowdkit_wawa(frame: CrowdkitFrame) -> tuple[np.ndarray, dict[str, Any]]:
    # crowd-kit 1.4.2's Wawa.predict calls sklearn's check_is_fitted, which fails on
    # scikit-learn >= 1.6 (no __sklearn_tags__); this is what Wawa._apply does after it.
    from crowdkit.aggregation import MajorityVote, Wawa

    df = frame.df
    return frame.labels(MajorityVote().fit(df, skills=Wawa().fit(df).skills_).labels_), {}


# --------------------------------------------------------------------------- real data
CrowdkitFit = Callable[[CrowdkitFrame], tuple[np.ndarray, dict[str, Any]]]


def real_methods() -> list[tuple[str, Callable[[Any], Any], CrowdkitFit | None]]:
    from crowdkit.aggregation import GLAD, MACE, MajorityVote, OneCoinDawidSkene

    from galton.quality._dawid_skene import dawid_skene, one_coin_dawid_skene
    from galton.quality._glad import glad
    from galton.quality._mace import mace
    from galton.quality._votes import majority_vote, wawa

    def ck(make: Callable[[], Any]) -> CrowdkitFit:
        return lambda frame: (frame.labels(make().fit_predict(frame.df)), {})

    return [
        ("majority_vote", majority_vote, ck(MajorityVote)),
        ("wawa", wawa, crowdkit_wawa),
        ("dawid_skene", dawid_skene, crowdkit_dawid_skene),
        ("one_coin_dawid_skene", one_coin_dawid_skene, ck(OneCoinDawidSkene)),
        ("glad", glad, ck(GLAD)),
        ("mace(em)", lambda m: mace(m, method="em"), ck(lambda: MACE(method="em"))),
        ("mace(vb)", lambda m: mace(m, method="vb"), ck(lambda: MACE(method="vb"))),
    ]


def dataset_folders(data: Path, quick: bool) -> list[Path]:
    folders = sorted(p for p in data.iterdir() if (p / "annotations.csv").is_file())
    if quick:
        folders = sorted(folders, key=lambda p: (p / "annotations.csv").stat().st_size)[:2]
    return folders


def run_real(data: Path, quick: bool) -> list[dict[str, Any]]:
    from galton.connectors import read_crowd_dataset

    if not data.is_dir():
        print(f"\n[real data] skipped: no dataset folder at {data} (pass --data DIR)")
        return []
    folders = dataset_folders(data, quick)
    if not folders:
        print(f"\n[real data] skipped: no folder with annotations.csv under {data}")
        return []
    methods = real_methods()
    results = []
    started = time.perf_counter()
    for folder in folders:
        dataset, load_s = timed(lambda folder=folder: read_crowd_dataset(folder))
        entry = run_dataset(dataset, methods)
        entry["load_s"] = load_s
        results.append(entry)
        print_real(entry)
    print(f"\n[real data] {len(results)} datasets in {time.perf_counter() - started:.0f} s")
    return results


def run_dataset(dataset: Any, methods: list[tuple[str, Callable[[Any], Any], CrowdkitFit | None]]) -> dict[str, Any]:
    """Every method on one dataset, galton and crowd-kit, scored on the annotated gold items."""
    m = dataset.matrix
    gold = dataset.gold_codes()
    scored = (gold >= 0) & (m.item_sizes() > 0)
    n_scored = int(scored.sum())
    frame = CrowdkitFrame(m)
    entry: dict[str, Any] = {
        "dataset": dataset.name,
        "n_annotations": m.n_annotations,
        "n_items": m.n_items,
        "n_workers": m.n_workers,
        "n_classes": m.n_classes,
        "n_gold_scored": n_scored,
        "methods": {},
        "notes": [],
    }

    def accuracy(labels: np.ndarray) -> float | None:
        return float(np.mean(labels[scored] == gold[scored])) if n_scored else None

    for name, galton_fit, ck_fit in methods:
        result, galton_s = timed(lambda fit=galton_fit: fit(m))
        row: dict[str, Any] = {
            "galton_accuracy": accuracy(np.asarray(result.labels)),
            "galton_s": galton_s,
            "galton_n_iter": result.n_iter,
            "galton_converged": result.converged,
            "crowdkit_accuracy": None,
            "crowdkit_s": None,
        }
        if name == "glad" and m.n_annotations > CK_GLAD_MAX_ANNOTATIONS:
            entry["notes"].append(
                f"crowd-kit GLAD skipped: {m.n_annotations} annotations > {CK_GLAD_MAX_ANNOTATIONS} "
                "(it takes minutes there)"
            )
        elif ck_fit is not None:
            (labels, extra), ck_s = timed(lambda fit=ck_fit: fit(frame))
            row["crowdkit_accuracy"] = accuracy(labels)
            row["crowdkit_s"] = ck_s
            full = extra.pop("crowdkit_full_labels", None)
            row.update(extra)
            if full is not None:
                row["crowdkit_full_accuracy"] = accuracy(full)
        entry["methods"][name] = row
    if not n_scored:
        entry["notes"].append("no gold labels on annotated items: accuracy not scored")
    ds = entry["methods"]["dawid_skene"]
    if ds.get("crowdkit_stop") == "elbo fell":
        entry["notes"].append(
            f"crowd-kit DawidSkene stopped after {ds['crowdkit_n_iter']} EM steps because its ELBO fell; "
            f"run all {ds['crowdkit_full_n_iter']} steps (tol=-inf) it scores {pct(ds.get('crowdkit_full_accuracy'))}"
        )
    flags = []
    for name in ("dawid_skene", "mace(em)", "mace(vb)"):
        row = entry["methods"][name]
        if row["galton_accuracy"] is not None and row["crowdkit_accuracy"] is not None:
            gap = 100 * (row["crowdkit_accuracy"] - row["galton_accuracy"])
            row["flag"] = bool(gap > FLAG_POINTS)
            if row["flag"]:
                flag = f"FLAG: galton {name} is {gap:.2f} points below crowd-kit"
                full = row.get("crowdkit_full_accuracy")
                if full is not None and 100 * (full - row["galton_accuracy"]) <= FLAG_POINTS:
                    row["flag_explained"] = "crowd-kit early stop"
                    flag += " (explained: crowd-kit's early stop, see note)"
                flags.append(flag)
    entry["flags"] = flags
    return entry


def print_real(entry: dict[str, Any]) -> None:
    rows = []
    for name, row in entry["methods"].items():
        mark = " !" if row.get("flag") else ""
        rows.append(
            [
                name + mark,
                pct(row["galton_accuracy"]),
                pct(row["crowdkit_accuracy"]),
                secs(row["galton_s"]),
                secs(row["crowdkit_s"]),
                row.get("crowdkit_n_iter", ""),
            ]
        )
    title = (
        f"\n== {entry['dataset']}: {entry['n_annotations']} annotations, {entry['n_items']} items, "
        f"{entry['n_workers']} workers, {entry['n_classes']} classes, {entry['n_gold_scored']} gold scored"
    )
    print(table(["method", "galton acc", "crowd-kit acc", "galton s", "crowd-kit s", "ck steps"], rows, title))
    for line in entry["flags"] + entry["notes"]:
        print("  " + line)


# --------------------------------------------------------------------------- synthetic
def child_main(spec_json: str) -> None:
    """Runs in a fresh process: simulate, optionally fit one method, report peak RSS."""
    warnings.simplefilter("ignore")
    spec = json.loads(spec_json)
    from galton.quality._dawid_skene import dawid_skene
    from galton.quality._mace import mace
    from galton.quality._simulate import simulate_crowd

    fits = {
        "dawid_skene": dawid_skene,
        "mace(em)": lambda m: mace(m, method="em"),
        "mace(vb)": lambda m: mace(m, method="vb"),
    }
    # warm-up (lazy imports, first-call costs) in the baseline too, so both pay it
    tiny = simulate_crowd(200, n_workers=20, n_classes=10, labels_per_item=5, random_state=1).matrix
    for fit in fits.values():
        fit(tiny)
    del tiny
    crowd = simulate_crowd(spec["n_items"], n_workers=spec["n_workers"], **SYNTHETIC)
    out: dict[str, Any] = {"n_annotations": crowd.matrix.n_annotations}
    method = spec.get("method")
    if method:
        result, seconds = timed(lambda: fits[method](crowd.matrix))
        out.update(
            seconds=seconds,
            accuracy=float(np.mean(result.labels == crowd.true_labels)),
            n_iter=result.n_iter,
            converged=result.converged,
        )
        if "theta" in result.worker_params:
            out["theta"] = np.asarray(result.worker_params["theta"]).tolist()
            out["is_spammer"] = crowd.is_spammer.tolist()
    out["ru_maxrss"] = ru_maxrss_bytes()
    out["peak_rss"] = vm_hwm_bytes() or out["ru_maxrss"]
    print("RESULT " + json.dumps(out))


def vm_hwm_bytes() -> int | None:
    """This process's peak resident set since its ``exec`` (Linux ``VmHWM``), or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def ru_maxrss_bytes() -> int:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in bytes (KiB on Linux, bytes on macOS)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--_child", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"error": f"child exited {done.returncode}: " + " | ".join(tail)}


def auroc(is_spammer: Sequence[bool], theta: Sequence[float]) -> float | None:
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(is_spammer, dtype=bool)
    if truth.all() or not truth.any():
        return None
    return float(roc_auc_score(truth, 1.0 - np.asarray(theta, dtype=np.float64)))


def run_crowdkit_synthetic(shape: dict[str, int]) -> dict[str, Any]:
    from crowdkit.aggregation import MACE, DawidSkene

    from galton.quality._simulate import simulate_crowd

    crowd = simulate_crowd(shape["n_items"], n_workers=shape["n_workers"], **SYNTHETIC)
    frame = CrowdkitFrame(crowd.matrix)
    out: dict[str, Any] = {}
    model = DawidSkene()
    labels, seconds = timed(lambda: model.fit_predict(frame.df))
    out["dawid_skene"] = {
        "seconds": seconds,
        "accuracy": float(np.mean(frame.labels(labels) == crowd.true_labels)),
        "n_iter": len(model.loss_history_),
        "stop": crowdkit_ds_stop(model.loss_history_, model.n_iter),
    }
    for method in ("em", "vb"):
        model = MACE(method=method)
        labels, seconds = timed(lambda model=model: model.fit_predict(frame.df))
        # spamming_[:, 0] is P(spam), rows in crowd-kit's worker order
        spam = frame.per_worker(model.spamming_[:, 0])
        out[f"mace({method})"] = {
            "seconds": seconds,
            "accuracy": float(np.mean(frame.labels(labels) == crowd.true_labels)),
            "spammer_auroc": auroc(crowd.is_spammer, 1.0 - spam),
        }
    return out


def run_synthetic(sizes: Sequence[int]) -> list[dict[str, Any]]:
    results = []
    for n in sizes:
        shape = synthetic_shape(n)
        n_annotations = shape["n_items"] * SYNTHETIC["labels_per_item"]
        timeout = 120 + n_annotations / 2e4  # generous: 620 s at 10M
        print(
            f"\n[synthetic {size_name(n)}] {n_annotations} annotations, {shape['n_items']} items, "
            f"{shape['n_workers']} workers, {SYNTHETIC['n_classes']} classes ...",
            flush=True,
        )
        entry: dict[str, Any] = {"size": size_name(n), "n_annotations": n_annotations, **shape}
        baseline = run_child(dict(shape), timeout)
        entry["baseline_peak_rss"] = baseline.get("peak_rss")
        entry["baseline_ru_maxrss"] = baseline.get("ru_maxrss")
        if "error" in baseline:
            entry["baseline_error"] = baseline["error"]
        entry["galton"] = {}
        for method in SYNTHETIC_METHODS:
            got = run_child(dict(shape, method=method), timeout)
            row = {k: v for k, v in got.items() if k not in ("theta", "is_spammer")}
            if "theta" in got:
                row["spammer_auroc"] = auroc(got["is_spammer"], got["theta"])
            if row.get("peak_rss") is not None and entry["baseline_peak_rss"] is not None:
                row["fit_peak_rss_over_baseline"] = row["peak_rss"] - entry["baseline_peak_rss"]
            entry["galton"][method] = row
            print(
                f"  galton {method}: "
                + (row["error"] if "error" in row else f"{row['seconds']:.2f} s, acc {pct(row['accuracy'])}"),
                flush=True,
            )
        if n_annotations <= CK_SYNTHETIC_MAX_ANNOTATIONS:
            entry["crowdkit"] = run_crowdkit_synthetic(shape)
            for name, row in entry["crowdkit"].items():
                print(f"  crowd-kit {name}: {row['seconds']:.2f} s, acc {pct(row['accuracy'])}", flush=True)
            entry["speedup_vs_crowdkit"] = {
                method: entry["crowdkit"][method]["seconds"] / entry["galton"][method]["seconds"]
                for method in SYNTHETIC_METHODS
                if "seconds" in entry["galton"][method]
            }
        else:
            entry["crowdkit"] = None
            entry["note"] = (
                f"crowd-kit skipped above {size_name(CK_SYNTHETIC_MAX_ANNOTATIONS)} annotations "
                "(its pandas EM would take many minutes)"
            )
        results.append(entry)
    print_synthetic(results)
    return results


def print_synthetic(results: list[dict[str, Any]]) -> None:
    rows = []
    for entry in results:
        for method in SYNTHETIC_METHODS:
            row = entry["galton"][method]
            ck = (entry.get("crowdkit") or {}).get(method)
            speed = (entry.get("speedup_vs_crowdkit") or {}).get(method)
            rows.append(
                [
                    f"{entry['size']} {method}",
                    secs(row.get("seconds")),
                    pct(row.get("accuracy")),
                    "-" if row.get("spammer_auroc") is None else f"{row['spammer_auroc']:.4f}",
                    mib(row.get("peak_rss")),
                    mib(entry.get("baseline_peak_rss")),
                    mib(row.get("fit_peak_rss_over_baseline")),
                    secs(ck["seconds"]) if ck else "-",
                    pct(ck["accuracy"]) if ck else "-",
                    "-" if not ck or ck.get("spammer_auroc") is None else f"{ck['spammer_auroc']:.4f}",
                    "-" if speed is None else f"{speed:.0f}x",
                ]
            )
    headers = [
        "size method",
        "galton s",
        "acc",
        "spam AUROC",
        "peak MiB",
        "base MiB",
        "fit MiB",
        "ck s",
        "ck acc",
        "ck AUROC",
        "ck/galton",
    ]
    print(table(headers, rows, "\n== synthetic crowds (10 classes, 20% spammers, 5 labels per item)"))
    print("  peak MiB: peak RSS (VmHWM) of a fresh process that simulates the crowd and runs the fit;")
    print("  base MiB: the same process without the fit; fit MiB = peak - base.")
    print("  crowd-kit gets first-appearance codes (see CrowdkitFrame); its MACE runs with the same method.")
    for entry in results:
        if entry.get("note"):
            print(f"  {entry['size']}: {entry['note']}")
            break


# --------------------------------------------------------------------------- goals
def goals(synthetic: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_size = {entry["n_annotations"]: entry for entry in synthetic}
    out = []

    def goal(name: str, value: Any, passed: bool | None, detail: str) -> None:
        out.append({"goal": name, "value": value, "passed": passed, "detail": detail})

    one_m = by_size.get(10**6)
    if one_m:
        ds = one_m["galton"]["dawid_skene"].get("seconds")
        goal("dawid_skene < 5 s at 1M", ds, ds is not None and ds < GOAL_DS_1M_S, f"{secs(ds)} s")
        for method in ("mace(em)", "mace(vb)"):
            t = one_m["galton"][method].get("seconds")
            goal(f"{method} < 10 s at 1M", t, t is not None and t < GOAL_MACE_1M_S, f"{secs(t)} s")
    else:
        goal("dawid_skene < 5 s and mace < 10 s at 1M", None, None, "1M not run")
    ten_m = by_size.get(10**7)
    if ten_m:
        for method in SYNTHETIC_METHODS:
            peak = ten_m["galton"][method].get("peak_rss")
            goal(
                f"{method} at 10M fits in 4 GB",
                peak,
                peak is not None and peak < GOAL_10M_BYTES,
                f"peak RSS {mib(peak)} MiB (process total, incl. the 10M-annotation matrix)",
            )
    else:
        goal("10M fits in 4 GB", None, None, "10M not run")
    for method in ("mace(em)", "mace(vb)"):
        values = {
            entry["size"]: entry["galton"][method].get("spammer_auroc")
            for entry in synthetic
            if entry["galton"][method].get("spammer_auroc") is not None
        }
        if values:
            worst = min(values.values())
            detail = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
            goal(f"{method} spammer AUROC >= 0.98", worst, worst >= GOAL_AUROC, detail)
    hundred_k = by_size.get(10**5)
    if hundred_k and hundred_k.get("speedup_vs_crowdkit"):
        for method, ratio in hundred_k["speedup_vs_crowdkit"].items():
            goal(
                f"{method} >= 50x faster than crowd-kit at 100k",
                ratio,
                ratio >= GOAL_SPEEDUP_100K,
                f"{ratio:.0f}x",
            )
    else:
        goal("speed ratio >= 50x at 100k", None, None, "100k not run")
    return out


def print_goals(results: list[dict[str, Any]]) -> None:
    rows = [[g["goal"], {True: "PASS", False: "FAIL", None: "n/a"}[g["passed"]], g["detail"]] for g in results]
    print(table(["goal", "status", "measured"], rows, "\n== goals"))


# --------------------------------------------------------------------------- markdown


def goals_markdown(report: dict[str, Any]) -> str:
    rows = [[g["goal"], {True: "PASS", False: "FAIL", None: "n/a"}[g["passed"]], g["detail"]] for g in report["goals"]]
    return md_table(["goal", "status", "measured"], rows, left=3)


def real_markdown(report: dict[str, Any]) -> str:
    """Accuracy on gold (%) of the three EM models, galton vs crowd-kit, one row per dataset."""
    rows = []
    for entry in report["real"]:
        ms = entry["methods"]
        ds = ms["dawid_skene"]
        steps = ds.get("crowdkit_n_iter", "-")
        if ds.get("crowdkit_stop") == "elbo fell":
            steps = f"{steps} (ELBO fell)"
        rows.append(
            [
                entry["dataset"],
                entry["n_annotations"],
                entry["n_gold_scored"],
                pct(ds["galton_accuracy"]),
                pct(ds["crowdkit_accuracy"]),
                steps,
                pct(ds.get("crowdkit_full_accuracy")),
                pct(ms["mace(em)"]["galton_accuracy"]),
                pct(ms["mace(em)"]["crowdkit_accuracy"]),
                pct(ms["mace(vb)"]["galton_accuracy"]),
                pct(ms["mace(vb)"]["crowdkit_accuracy"]),
            ]
        )
    headers = [
        "dataset",
        "annotations",
        "gold",
        "DS galton",
        "DS crowd-kit",
        "crowd-kit DS steps",
        "crowd-kit DS, all 100 steps",
        "MACE em galton",
        "MACE em crowd-kit",
        "MACE vb galton",
        "MACE vb crowd-kit",
    ]
    return md_table(headers, rows)


def votes_markdown(report: dict[str, Any]) -> str:
    """Accuracy on gold (%) of the vote methods, one-coin DS and GLAD, galton / crowd-kit."""
    names = ("majority_vote", "wawa", "one_coin_dawid_skene", "glad")
    rows = []
    for entry in report["real"]:
        cells: list[Any] = [entry["dataset"]]
        for name in names:
            row = entry["methods"][name]
            cells.append(f"{pct(row['galton_accuracy'])} / {pct(row['crowdkit_accuracy'])}")
        rows.append(cells)
    return md_table(["dataset (galton / crowd-kit)", *names], rows)


def synthetic_markdown(report: dict[str, Any]) -> str:
    """Fit seconds at every synthetic size, galton and crowd-kit, and crowd-kit / galton."""
    rows = []
    for entry in report["synthetic"]:
        ck = entry.get("crowdkit") or {}
        speed = entry.get("speedup_vs_crowdkit") or {}
        cells: list[Any] = [entry["size"], entry["n_annotations"]]
        cells += [secs(entry["galton"][m].get("seconds")) for m in SYNTHETIC_METHODS]
        cells += [secs(ck[m]["seconds"]) if m in ck else "-" for m in SYNTHETIC_METHODS]
        cells += [f"{speed[m]:.1f}x" if m in speed else "-" for m in SYNTHETIC_METHODS]
        rows.append(cells)
    headers = ["size", "annotations"]
    headers += [f"galton {m} s" for m in SYNTHETIC_METHODS]
    headers += [f"crowd-kit {m} s" for m in SYNTHETIC_METHODS]
    headers += [f"speed-up {m}" for m in SYNTHETIC_METHODS]
    return md_table(headers, rows)


def synthetic_quality_markdown(report: dict[str, Any]) -> str:
    """Accuracy against the planted truth, spammer AUROC and peak memory per synthetic size."""
    rows = []
    for entry in report["synthetic"]:
        ck = entry.get("crowdkit") or {}
        g = entry["galton"]
        cells: list[Any] = [entry["size"]]
        for m in SYNTHETIC_METHODS:
            theirs = pct(ck[m]["accuracy"]) if m in ck else "-"
            cells.append(f"{pct(g[m].get('accuracy'))} / {theirs}")
        for m in ("mace(em)", "mace(vb)"):
            auc = g[m].get("spammer_auroc")
            cells.append("-" if auc is None else f"{auc:.4f}")
        cells.append(" / ".join(mib(g[m].get("peak_rss")) for m in SYNTHETIC_METHODS))
        cells.append(mib(entry.get("baseline_peak_rss")))
        rows.append(cells)
    headers = ["size"]
    headers += [f"{m} acc galton / crowd-kit" for m in SYNTHETIC_METHODS]
    headers += ["mace(em) spam AUROC", "mace(vb) spam AUROC", "peak MiB ds / em / vb", "baseline MiB"]
    return md_table(headers, rows)


def markdown_report(report: dict[str, Any]) -> str:
    """The whole results page, built only from the JSON report."""
    mach = report["machine"]
    synth = report["options"]["synthetic"]
    parts = [
        "# Consensus benchmark: galton vs crowd-kit",
        "",
        f"Written by `benchmarks/aggregation.py` from `aggregation.json` ({report['date']}, "
        f"{report.get('total_s', 0):.0f} s). Machine: {mach['platform']}, {mach['cpu_count']} CPUs, "
        f"Python {mach['python']}, numpy {mach['numpy']}, scipy {mach['scipy']}, pandas {mach['pandas']}, "
        f"crowd-kit {mach['crowd_kit']}.",
        "",
        "crowd-kit gets every dataset as integer codes in order of first appearance (task, worker and "
        "label), and its answers are mapped back to galton's codes: its MACE mis-pairs strategies "
        "with workers and labels otherwise. Its MACE runs with the same method (em or vb) as the row.",
    ]
    if report["goals"]:
        parts += ["", "## Goals", "", goals_markdown(report)]
    if report["real"]:
        parts += [
            "",
            "## Real datasets: accuracy on gold (%)",
            "",
            real_markdown(report),
            "",
            "*crowd-kit DS steps*: EM steps crowd-kit's DawidSkene ran before it stopped (at most 100). "
            "*ELBO fell*: it stopped because its ELBO, which adds the log class prior once per annotation "
            "rather than once per item, went down; *all 100 steps* is the same model run with `tol=-inf`.",
            "",
            votes_markdown(report),
        ]
        notes = [
            f"- {entry['dataset']}: {line}"
            for entry in report["real"]
            for line in entry.get("flags", []) + entry.get("notes", [])
        ]
        if notes:
            parts += ["", "Notes:", "", *notes]
    if report["synthetic"]:
        parts += [
            "",
            "## Synthetic crowds: fit time",
            "",
            f"{synth['n_classes']} classes, {synth['labels_per_item']} labels per item, "
            f"{100 * synth['spammer_share']:.0f}% uniform spammers; crowd-kit only up to "
            f"{size_name(CK_SYNTHETIC_MAX_ANNOTATIONS)} annotations. Speed-up = crowd-kit s / galton s.",
            "",
            synthetic_markdown(report),
            "",
            synthetic_quality_markdown(report),
            "",
            "Peak MiB: peak RSS (VmHWM) of a fresh process that simulates the crowd and runs one fit; "
            "baseline: the same process without the fit.",
        ]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark galton's consensus methods against crowd-kit on real and synthetic crowds."
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"dataset folders (default {DEFAULT_DATA})")
    parser.add_argument(
        "--sizes",
        type=lambda s: [parse_size(x) for x in s.split(",") if x.strip()],
        default=None,
        help="synthetic sizes in annotations, comma-separated (default 10k,100k,1M,10M)",
    )
    parser.add_argument("--skip-real", action="store_true", help="skip the real-data part")
    parser.add_argument("--skip-synthetic", action="store_true", help="skip the synthetic part")
    parser.add_argument("--quick", action="store_true", help="10k and 100k only, the two smallest real datasets")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="markdown summary, written from the JSON on every run (default: --out with suffix .md)",
    )
    parser.add_argument(
        "--markdown-only",
        action="store_true",
        help="run nothing: rewrite the markdown summary from the existing JSON at --out",
    )
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        child_main(args._child)
        return 0
    markdown = args.markdown or args.out.with_suffix(".md")
    if args.markdown_only:
        write_markdown(args.out, markdown)
        return 0

    quiet_crowdkit()
    sizes = args.sizes or ([10**4, 10**5] if args.quick else [10**4, 10**5, 10**6, 10**7])
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": {
            "data": str(args.data),
            "sizes": [size_name(n) for n in sizes],
            "skip_real": args.skip_real,
            "skip_synthetic": args.skip_synthetic,
            "quick": args.quick,
            "synthetic": {**SYNTHETIC, "skill": list(SYNTHETIC["skill"])},
        },
    }
    print("machine: " + ", ".join(f"{k}={v}" for k, v in report["machine"].items() if k != "galton_sources"))
    started = time.perf_counter()
    report["real"] = [] if args.skip_real else run_real(args.data, args.quick)
    report["synthetic"] = [] if args.skip_synthetic else run_synthetic(sizes)
    report["goals"] = goals(report["synthetic"]) if report["synthetic"] else []
    if report["goals"]:
        print_goals(report["goals"])
    report["total_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
    print(f"\nwrote {args.out} ({report['total_s']:.0f} s)")
    write_markdown(args.out, markdown)
    return 0


def write_markdown(json_path: Path, markdown: Path) -> None:
    """Render the markdown summary from the JSON file (not from in-memory results), so the
    page always shows exactly what the JSON holds."""
    report = json.loads(json_path.read_text())
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(markdown_report(report))
    print(f"wrote {markdown}")


if __name__ == "__main__":
    sys.exit(main())
