"""Hypothesis strategies shared by the test suite: one annotation-matrix generator."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from galton.quality import AnnotationMatrix


@st.composite
def annotation_matrices(
    draw,
    *,
    max_items: int = 12,
    max_workers: int = 6,
    min_classes: int = 2,
    max_classes: int = 4,
    min_per_item: int = 1,
    density: float | None = None,
) -> AnnotationMatrix:
    """Sparse matrices: every item has at least ``min_per_item`` annotations, no duplicates."""
    n_items = draw(st.integers(1, max_items))
    n_workers = draw(st.integers(max(min_per_item, 1), max_workers))
    n_classes = draw(st.integers(min_classes, max_classes))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    p = density if density is not None else draw(st.floats(0.2, 1.0))
    mask = rng.random((n_items, n_workers)) < p
    for i in range(n_items):
        missing = min_per_item - int(mask[i].sum())
        if missing > 0:
            free = np.flatnonzero(~mask[i])
            mask[i, rng.choice(free, size=missing, replace=False)] = True
    items, workers = np.nonzero(mask)
    labels = rng.integers(0, n_classes, size=items.size)
    return AnnotationMatrix.from_codes(
        items, workers, labels, n_items=n_items, n_workers=n_workers, n_classes=n_classes
    )


def permute(matrix: AnnotationMatrix, rng: np.random.Generator):
    """Relabel items, workers and classes by random permutations; returns the permutations too."""
    pi = rng.permutation(matrix.n_items)
    pw = rng.permutation(matrix.n_workers)
    pc = rng.permutation(matrix.n_classes)
    permuted = AnnotationMatrix.from_codes(
        pi[matrix.items],
        pw[matrix.workers],
        pc[matrix.labels],
        n_items=matrix.n_items,
        n_workers=matrix.n_workers,
        n_classes=matrix.n_classes,
    )
    return permuted, pi, pw, pc
