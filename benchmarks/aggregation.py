"""Consensus methods, galton vs crowd-kit: accuracy, fit time and (synthetic) peak memory.

Two parts:

* **real data** -- every dataset folder (``annotations.csv`` and optionally ``gold.csv``)
  in ``../shared/data/crowd``: galton's majority_vote, wawa, dawid_skene,
  one_coin_dawid_skene, glad, mace(em) and mace(vb) next to crowd-kit's MajorityVote,
  Wawa, DawidSkene, OneCoinDawidSkene, GLAD and MACE (crowd-kit defaults), scored on the
  gold items that have annotations.
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

Results are printed as tables and written as JSON to ``benchmarks/results/aggregation.json``.
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


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> str:
    """A plain fixed-width table; the first column left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    out = [title] if title else []
    out += [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells[1:]]
    return "\n".join(out)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


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


def frame(matrix: Any) -> Any:
    import pandas as pd

    return pd.DataFrame({"task": matrix.items, "worker": matrix.workers, "label": matrix.labels})


def crowdkit_labels(series: Any, n_items: int) -> np.ndarray:
    """crowd-kit's labels (a Series indexed by task code) as an ``(n_items,)`` array, -1 if absent."""
    labels = np.full(n_items, -1, dtype=np.int64)
    labels[series.index.to_numpy(dtype=np.int64)] = series.to_numpy(dtype=np.int64)
    return labels


def crowdkit_wawa(df: Any) -> Any:
    # crowd-kit 1.4.2's Wawa.predict calls sklearn's check_is_fitted, which fails on
    # scikit-learn >= 1.6 (no __sklearn_tags__); this is what Wawa._apply does after it.
    from crowdkit.aggregation import MajorityVote, Wawa

    return MajorityVote().fit(df, skills=Wawa().fit(df).skills_).labels_


# --------------------------------------------------------------------------- real data
def real_methods() -> list[tuple[str, Callable[[Any], Any], Callable[[Any], Any] | None]]:
    from crowdkit.aggregation import GLAD, MACE, DawidSkene, MajorityVote, OneCoinDawidSkene

    from galton.quality._dawid_skene import dawid_skene, one_coin_dawid_skene
    from galton.quality._glad import glad
    from galton.quality._mace import mace
    from galton.quality._votes import majority_vote, wawa

    def ck(make: Callable[[], Any]) -> Callable[[Any], Any]:
        return lambda df: make().fit_predict(df)

    return [
        ("majority_vote", majority_vote, ck(MajorityVote)),
        ("wawa", wawa, crowdkit_wawa),
        ("dawid_skene", dawid_skene, ck(DawidSkene)),
        ("one_coin_dawid_skene", one_coin_dawid_skene, ck(OneCoinDawidSkene)),
        ("glad", glad, ck(GLAD)),
        ("mace(em)", lambda m: mace(m, method="em"), ck(MACE)),
        ("mace(vb)", lambda m: mace(m, method="vb"), ck(MACE)),
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


def run_dataset(
    dataset: Any, methods: list[tuple[str, Callable[[Any], Any], Callable[[Any], Any] | None]]
) -> dict[str, Any]:
    """Every method on one dataset, galton and crowd-kit, scored on the annotated gold items."""
    m = dataset.matrix
    gold = dataset.gold_codes()
    scored = (gold >= 0) & (m.item_sizes() > 0)
    n_scored = int(scored.sum())
    df = frame(m)
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

    ck_cache: dict[str, tuple[np.ndarray, float]] = {}
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
            key = "mace" if name.startswith("mace") else name  # one crowd-kit MACE run serves both rows
            if key not in ck_cache:
                labels, ck_s = timed(lambda fit=ck_fit: fit(df))
                ck_cache[key] = (crowdkit_labels(labels, m.n_items), ck_s)
            labels, ck_s = ck_cache[key]
            row["crowdkit_accuracy"] = accuracy(labels)
            row["crowdkit_s"] = ck_s
        entry["methods"][name] = row
    if not n_scored:
        entry["notes"].append("no gold labels on annotated items: accuracy not scored")
    entry["notes"].append("crowd-kit MACE (method='vb', its default) is compared with both mace rows")
    flags = []
    for name in ("dawid_skene", "mace(em)", "mace(vb)"):
        row = entry["methods"][name]
        if row["galton_accuracy"] is not None and row["crowdkit_accuracy"] is not None:
            gap = 100 * (row["crowdkit_accuracy"] - row["galton_accuracy"])
            row["flag"] = bool(gap > FLAG_POINTS)
            if row["flag"]:
                flags.append(f"FLAG: galton {name} is {gap:.2f} points below crowd-kit")
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
            ]
        )
    title = (
        f"\n== {entry['dataset']}: {entry['n_annotations']} annotations, {entry['n_items']} items, "
        f"{entry['n_workers']} workers, {entry['n_classes']} classes, {entry['n_gold_scored']} gold scored"
    )
    print(table(["method", "galton acc", "crowd-kit acc", "galton s", "crowd-kit s"], rows, title))
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
    m = crowd.matrix
    df = frame(m)
    out: dict[str, Any] = {}
    labels, seconds = timed(lambda: DawidSkene().fit_predict(df))
    out["dawid_skene"] = {
        "seconds": seconds,
        "accuracy": float(np.mean(crowdkit_labels(labels, m.n_items) == crowd.true_labels)),
    }
    model = MACE()
    labels, seconds = timed(lambda: model.fit_predict(df))
    # crowd-kit codes workers in order of appearance; spamming_[:, 0] is P(spam)
    import pandas as pd

    _, uniques = pd.factorize(df["worker"])
    spam = np.full(m.n_workers, np.nan)
    spam[np.asarray(uniques, dtype=np.int64)] = model.spamming_[:, 0]
    out["mace"] = {
        "seconds": seconds,
        "accuracy": float(np.mean(crowdkit_labels(labels, m.n_items) == crowd.true_labels)),
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
            speed = {}
            ds = entry["galton"]["dawid_skene"]
            if "seconds" in ds:
                speed["dawid_skene"] = entry["crowdkit"]["dawid_skene"]["seconds"] / ds["seconds"]
            for method in ("mace(em)", "mace(vb)"):
                if "seconds" in entry["galton"][method]:
                    speed[method] = entry["crowdkit"]["mace"]["seconds"] / entry["galton"][method]["seconds"]
            entry["speedup_vs_crowdkit"] = speed
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
            ck_name = "dawid_skene" if method == "dawid_skene" else "mace"
            ck = (entry.get("crowdkit") or {}).get(ck_name)
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
    print("  crowd-kit MACE (its default method='vb') is the reference for both mace rows.")
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
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        child_main(args._child)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
