"""Small real datasets bundled with galton (each folder carries its SOURCE.md and licence)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from galton.quality import InputError

from ._csv import CrowdDataset, read_crowd_dataset

__all__ = ["load_sample", "sample_names", "sample_path"]


def sample_names() -> list[str]:
    """Names of the bundled sample datasets."""
    root = resources.files("galton.connectors") / "samples"
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("_"))


def sample_path(name: str) -> Path:
    """Folder of one bundled dataset (``annotations.csv``, ``gold.csv``, ``SOURCE.md``)."""
    if name not in sample_names():
        raise InputError(f"no bundled sample {name!r}; available: {sample_names()}")
    return Path(str(resources.files("galton.connectors") / "samples" / name))


def load_sample(name: str = "weather_cf") -> CrowdDataset:
    """Read a bundled dataset.

    >>> data = load_sample("weather_cf")
    >>> data.matrix.n_items, data.matrix.n_workers, data.matrix.n_annotations, len(data.gold)
    (300, 461, 1720, 300)
    """
    return read_crowd_dataset(sample_path(name))
