"""Synthetic crowds with planted perspectives: two rater groups that split on one slice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._common import RandomState, as_generator, check_positive
from .._errors import InputError
from .._matrix import AnnotationMatrix

__all__ = ["SimulatedPerspectives", "simulate_perspectives"]


def _readonly(array: NDArray[Any]) -> NDArray[Any]:
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class SimulatedPerspectives:
    """A simulated crowd of two rater groups, its item features and the planted truth.

    Attributes
    ----------
    matrix : AnnotationMatrix
    features : float32, shape (n_items, n_features)
    groups : tuple of str, length n_workers
        ``"A"`` or ``"B"`` per worker code.
    true_labels : int32, shape (n_items,)
        Group A's label (everyone's, off the slice).
    group_labels : int32, shape (n_items, 2)
        The label each group holds: column 0 group A, column 1 group B.
    in_slice : bool, shape (n_items,)
        Items where group B holds ``(true + 1) % n_classes``: planted systematic disagreement.
    is_noisy : bool, shape (n_items,)
        Off-slice items where every rater answers at random with ``noise_rate``: planted noise.
    worker_accuracy : float64, shape (n_workers,)
    """

    matrix: AnnotationMatrix
    features: NDArray[np.float32]
    groups: tuple[str, ...]
    true_labels: NDArray[np.int32]
    group_labels: NDArray[np.int32]
    in_slice: NDArray[np.bool_]
    is_noisy: NDArray[np.bool_]
    worker_accuracy: NDArray[np.float64]


def simulate_perspectives(
    n_items: int,
    *,
    n_workers: int = 30,
    n_classes: int = 2,
    labels_per_item: int = 10,
    n_features: int = 8,
    group_share: float = 0.6,
    slice_share: float = 0.15,
    noise_share: float = 0.15,
    noise_rate: float = 0.5,
    skill: tuple[float, float] = (0.85, 0.98),
    random_state: RandomState = 0,
) -> SimulatedPerspectives:
    r"""Draw two rater groups who disagree on one slice of items, plus planted random noise.

    * features :math:`x_i \sim N(0, I)`; the true class is :math:`\arg\max_k (x_i W)_k`
      for a random :math:`W`;
    * the slice is the ``slice_share`` of items with the largest last feature, so a model
      can learn where the groups split; there group B's label is ``(true + 1) % K``;
    * ``round(group_share * n_workers)`` workers form group A, the rest group B; every
      worker answers their group's label with accuracy :math:`a_w \sim U(\text{skill})`,
      otherwise a uniformly drawn other class;
    * on ``noise_share`` of the off-slice items every annotation is, with probability
      ``noise_rate``, replaced by a uniform random class (noise, not perspective);
    * each item gets ``labels_per_item`` distinct workers drawn uniformly.

    >>> sim = simulate_perspectives(50, random_state=0)
    >>> sim.matrix.n_annotations, int(sim.in_slice.sum()), sim.groups[:2]
    (500, 8, ('A', 'A'))
    """
    for name, value in (("n_items", n_items), ("n_workers", n_workers), ("n_features", n_features)):
        check_positive(name, value, integer=True)
    check_positive("labels_per_item", labels_per_item, integer=True)
    if n_classes < 2 or labels_per_item > n_workers:
        raise InputError("need n_classes >= 2 and labels_per_item <= n_workers")
    for name, value in (("group_share", group_share), ("slice_share", slice_share), ("noise_share", noise_share),
                        ("noise_rate", noise_rate)):
        if not 0 <= value <= 1:
            raise InputError(f"{name} must be in [0, 1], got {value!r}")
    rng = as_generator(random_state)
    x = rng.standard_normal((n_items, n_features))
    truth = (x @ rng.standard_normal((n_features, n_classes))).argmax(axis=1)
    n_slice = round(slice_share * n_items)
    in_slice = np.zeros(n_items, dtype=bool)
    in_slice[np.argsort(-x[:, -1], kind="stable")[:n_slice]] = True
    off = np.flatnonzero(~in_slice)
    is_noisy = np.zeros(n_items, dtype=bool)
    is_noisy[rng.choice(off, min(round(noise_share * n_items), off.size), replace=False)] = True
    n_a = round(group_share * n_workers)
    group = np.r_[np.zeros(n_a, dtype=np.int64), np.ones(n_workers - n_a, dtype=np.int64)]
    accuracy = rng.uniform(skill[0], skill[1], n_workers)
    group_labels = np.stack([truth, np.where(in_slice, (truth + 1) % n_classes, truth)], axis=1)

    workers = np.argsort(rng.random((n_items, n_workers)), axis=1)[:, :labels_per_item].ravel()
    items = np.repeat(np.arange(n_items), labels_per_item)
    held = group_labels[items, group[workers]]
    wrong = rng.random(items.size) >= accuracy[workers]
    labels = np.where(wrong, (held + rng.integers(1, n_classes, items.size)) % n_classes, held)
    scramble = is_noisy[items] & (rng.random(items.size) < noise_rate)
    labels = np.where(scramble, rng.integers(0, n_classes, items.size), labels)
    matrix = AnnotationMatrix.from_codes(items, workers, labels, n_items=n_items, n_workers=n_workers,
                                         n_classes=n_classes)
    return SimulatedPerspectives(
        matrix=matrix,
        features=_readonly(x.astype(np.float32)),
        groups=tuple("AB"[g] for g in group.tolist()),
        true_labels=_readonly(truth.astype(np.int32)),
        group_labels=_readonly(group_labels.astype(np.int32)),
        in_slice=_readonly(in_slice),
        is_noisy=_readonly(is_noisy),
        worker_accuracy=_readonly(accuracy),
    )
