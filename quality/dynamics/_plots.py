"""The data map and the AUM histogram as PNG files (matplotlib, imported on call)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._errors import InputError
from ._report import MislabeledReport

__all__ = ["plot_aum_histogram", "plot_data_map"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_data_map(report: MislabeledReport, path: str | Path, *, flags: str = "combined") -> Path:
    """Confidence (y) against variability (x), coloured by correctness; ``flags`` items ringed.

    Swayamdipta et al. (2020), Fig. 1. Returns the PNG's path.
    """
    if not np.isfinite(report.confidence).any():
        raise InputError("this report has no data map: run find_mislabeled with a dynamics method")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    points = ax.scatter(report.variability, report.confidence, c=report.correctness, cmap="viridis", s=6, alpha=0.7)
    flagged = report.flags.get(flags)
    if flagged is not None and flagged.any():
        ax.scatter(
            report.variability[flagged],
            report.confidence[flagged],
            facecolors="none",
            edgecolors="red",
            s=22,
            linewidths=0.6,
            label=f"flagged ({flags}, {int(flagged.sum())})",
        )
        ax.legend(loc="lower right", fontsize=8)
    fig.colorbar(points, ax=ax, label="correctness")
    ax.set_xlabel("variability")
    ax.set_ylabel("confidence")
    ax.set_title(f"Data map, {report.n_items} items")
    out = Path(path)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_aum_histogram(report: MislabeledReport, path: str | Path, *, bins: int = 60) -> Path:
    """Histogram of the items' AUM with each run's threshold-sample threshold (Pleiss et al. 2020)."""
    aum = report.aum[np.isfinite(report.aum)]
    if aum.size == 0:
        raise InputError("this report has no AUM: run find_mislabeled with methods including 'aum'")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.hist(aum, bins=bins, color="steelblue")
    for i, alpha in enumerate(report.aum_thresholds):
        ax.axvline(alpha, color="red", linestyle="--", label="99th pct of threshold samples" if i == 0 else None)
    if report.aum_thresholds:
        ax.legend(fontsize=8)
    ax.set_xlabel("area under the margin")
    ax.set_ylabel("items")
    out = Path(path)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out
