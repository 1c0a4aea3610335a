"""``make demo``: score a real crowdsourced dataset end to end with embedded defaults.

Loads the bundled sample (or any folder with ``annotations.csv`` and optional
``gold.csv``), runs every consensus method, the agreement report with bootstrap
intervals and the rater table, prints them, and writes the results as JSON.

    python -m galton.backend.demo [--data FOLDER] [--out FOLDER]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from galton.connectors import load_sample, read_crowd_dataset
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


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def run(data_dir: Path | None, out_dir: Path) -> dict:
    data = read_crowd_dataset(data_dir) if data_dir else load_sample("weather_cf")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="folder with annotations.csv (and gold.csv); default: bundled sample")
    parser.add_argument("--out", type=Path, default=Path(".galton/demo"), help="where to write results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(args.data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
