"""Shared fixtures: where the shared real datasets live (tests skip when they are absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def crowd_dataset_path(name: str) -> Path:
    path = SHARED_DATA / "crowd" / name
    if not (path / "annotations.csv").is_file():
        pytest.skip(f"shared dataset {name!r} is not available at {path}")
    return path


@pytest.fixture
def crowd_dataset():
    """Load a dataset from ../shared/data/crowd by name, or skip."""
    from galton.connectors import read_crowd_dataset

    return lambda name: read_crowd_dataset(crowd_dataset_path(name))
