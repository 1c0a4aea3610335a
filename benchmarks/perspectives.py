"""Perspectives: multi-annotator model vs a majority-label model, and the systematic-disagreement flag.

Two parts:

* **real** -- music genre (Marsyas audio features, 10 classes, 44 MTurk workers) and
  sentence polarity (TF-IDF + LSA text features, 2 classes, 203 workers) from
  ``../shared/data/crowd``. Items are split 5-fold; on the held-out items, per-annotator
  prediction accuracy (micro over annotations, macro over annotators) of Davani et al.'s
  multi-annotator model against one model trained on majority labels, and the Pearson /
  Spearman correlation of the model's uncertainty (variance across heads) with the observed
  disagreement (1 - largest vote share, items with >= 2 labels), next to the baseline's
  softmax entropy. amazon_sentiment_crowd1k has vote counts but no worker ids, so no
  per-annotator model can be trained on it: skipped.
* **synthetic** -- two planted rater groups (60/40) that split on 15% of the items, plus
  15% planted random-noise items: AUROC of ``systematic_score`` on the slice, flag recall,
  and the flag's firing rate on the noise items and on clean items, over 5 seeds.

Run from the repository root::

    .venv/bin/python benchmarks/perspectives.py [--folds 5] [--epochs 20]

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


def load(name: str):
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
        from galton.quality.dynamics import text_features

        with (folder / "texts.csv").open(newline="") as f:
            texts = {r["item"]: r["text"] for r in csv.DictReader(f)}
        x = text_features([texts[i] for i in enc.item_ids], n_components=128)
    return m, x


def subset(m: AnnotationMatrix, rows: np.ndarray, workers=None, labels=None, n_workers=None) -> AnnotationMatrix:
    return AnnotationMatrix.from_codes(m.items[rows], m.workers[rows] if workers is None else workers,
                                       m.labels[rows] if labels is None else labels, n_items=m.n_items,
                                       n_workers=m.n_workers if n_workers is None else n_workers,
                                       n_classes=m.n_classes)


def real_part(name: str, folds: int, epochs: int) -> dict:
    m, x = load(name)
    fold = np.random.default_rng(0).integers(0, folds, m.n_items)
    heads_ok, base_ok, test_workers = [], [], []
    unc = np.full(m.n_items, np.nan)
    base_entropy = np.full(m.n_items, np.nan)
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
        unc[test_item] = model.prediction.uncertainty[test_item]
        p = baseline.prediction.posteriors[test_item]
        base_entropy[test_item] = -(p * np.log(np.clip(p, 1e-12, 1))).sum(axis=1)
    heads_ok, base_ok, test_workers = map(np.concatenate, (heads_ok, base_ok, test_workers))

    def macro(ok):
        per = np.bincount(test_workers, weights=ok, minlength=m.n_workers)
        n = np.bincount(test_workers, minlength=m.n_workers)
        return float((per[n > 0] / n[n > 0]).mean())

    observed = 1 - soft_labels(m).max(axis=1)
    multi = m.item_sizes() >= 2
    return {
        "dataset": name, "n_items": m.n_items, "n_workers": m.n_workers, "n_classes": m.n_classes,
        "n_annotations": m.n_annotations, "features": int(x.shape[1]), "folds": folds, "epochs": epochs,
        "heads_micro_accuracy": float(heads_ok.mean()), "majority_micro_accuracy": float(base_ok.mean()),
        "heads_macro_accuracy": macro(heads_ok), "majority_macro_accuracy": macro(base_ok),
        "uncertainty_pearson": float(pearsonr(unc[multi], observed[multi])[0]),
        "uncertainty_spearman": float(spearmanr(unc[multi], observed[multi])[0]),
        "baseline_entropy_pearson": float(pearsonr(base_entropy[multi], observed[multi])[0]),
        "baseline_entropy_spearman": float(spearmanr(base_entropy[multi], observed[multi])[0]),
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
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    real = [real_part(name, args.folds, args.epochs) for name in ("music_genre", "sentiment_polarity")]
    synth = synthetic_part(args.seeds)
    f3 = lambda v: f"{v:.3f}"  # noqa: E731
    h1 = ["dataset", "items", "workers", "acc heads (micro)", "acc majority (micro)", "acc heads (macro)",
          "acc majority (macro)", "r(unc, disagr.)", "rho(unc, disagr.)", "r(baseline entropy)", "fit s"]
    r1 = [[r["dataset"], r["n_items"], r["n_workers"], f3(r["heads_micro_accuracy"]), f3(r["majority_micro_accuracy"]),
           f3(r["heads_macro_accuracy"]), f3(r["majority_macro_accuracy"]), f3(r["uncertainty_pearson"]),
           f3(r["uncertainty_spearman"]), f3(r["baseline_entropy_pearson"]), f"{r['fit_seconds']:.1f}"] for r in real]
    h2 = ["seed", "AUROC slice", "flag recall", "flag rate noise", "flag rate clean", "noise score noise/slice", "s"]
    r2 = [[s["seed"], f3(s["auroc_slice"]), f3(s["flag_recall"]), f3(s["flag_rate_noise"]), f3(s["flag_rate_clean"]),
           f"{s['noise_score_noise_items']:.2f}/{s['noise_score_slice_items']:.2f}", f"{s['seconds']:.2f}"]
          for s in synth]
    print(table(h1, r1, "Held-out per-annotator accuracy and uncertainty vs observed disagreement"))
    print()
    print(table(h2, r2, "Synthetic planted groups: systematic-disagreement flag"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"args": vars(args), "real": real, "synthetic": synth}, indent=2))
    OUT.with_suffix(".md").write_text(
        "# Perspectives benchmark\n\n## Real crowds: multi-annotator model vs majority-label model "
        f"({args.folds}-fold over items)\n\n" + md_table(h1, r1) + "\n\n## Synthetic planted rater groups\n\n"
        + md_table(h2, r2) + "\n"
    )


if __name__ == "__main__":
    main()
