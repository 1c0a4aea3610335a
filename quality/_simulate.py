"""Synthetic crowds with planted truth: honest workers of mixed skill and spammers.

Used by the tests and the benchmarks to check that a consensus method recovers the
true labels and finds the spammers, at any scale (10M annotations in seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common import RandomState, as_generator
from ._errors import InputError
from ._matrix import AnnotationMatrix

__all__ = ["SimulatedCrowd", "simulate_crowd"]

# Items generated per chunk: bounds the temporaries at a few tens of MB whatever n_items
# is. Fixed, so the random stream (and the output) depends only on random_state.
_CHUNK_ITEMS = 1 << 17


def _readonly(array: NDArray[Any]) -> NDArray[Any]:
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class SimulatedCrowd:
    """A simulated annotation matrix and the truth it was drawn from.

    Attributes
    ----------
    matrix : AnnotationMatrix
        ``n_items * labels_per_item`` annotations, item-major (rows of item 0 first),
        one per (item, worker) pair.
    true_labels : ndarray of int32, shape (n_items,)
        The planted class of every item, in ``[0, n_classes)``.
    is_spammer : ndarray of bool, shape (n_workers,)
        Which workers spam (uniform-random or fixed-label, see ``spammer_label``).
    worker_accuracy : ndarray of float64, shape (n_workers,)
        Each worker's planted probability of giving the true label: the drawn skill
        for honest workers, ``1 / n_classes`` for uniform spammers and
        ``class_prior[spammer_label]`` for fixed-label spammers.
    spammer_label : ndarray of int32, shape (n_workers,)
        The one class a fixed-label spammer always answers; ``-1`` for everyone else.

    Every array is read-only.
    """

    matrix: AnnotationMatrix
    true_labels: NDArray[np.int32]
    is_spammer: NDArray[np.bool_]
    worker_accuracy: NDArray[np.float64]
    spammer_label: NDArray[np.int32]


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_share(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise InputError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def _check_skill(skill: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in skill)
    except (TypeError, ValueError):
        raise InputError(f"skill must be a pair (low, high) of accuracies, got {skill!r}") from None
    if not (0.0 <= low <= high <= 1.0):
        raise InputError(f"skill must satisfy 0 <= low <= high <= 1, got {skill!r}")
    return low, high


def _check_prior(class_prior: ArrayLike | None, n_classes: int) -> NDArray[np.float64]:
    if class_prior is None:
        return np.full(n_classes, 1.0 / n_classes)
    prior = np.asarray(class_prior, dtype=np.float64)
    if prior.shape != (n_classes,):
        raise InputError(f"class_prior must have shape (n_classes,) = ({n_classes},), got {prior.shape}")
    if not np.all(np.isfinite(prior)) or np.any(prior < 0):
        raise InputError(f"class_prior must be finite and non-negative, got {prior.tolist()}")
    if abs(prior.sum() - 1.0) > 1e-6:
        raise InputError(f"class_prior must sum to 1, got a sum of {prior.sum():.6g}; normalise it")
    return prior / prior.sum()


def _distinct_workers(
    n_rows: int, n_workers: int, per_row: int, rng: np.random.Generator
) -> NDArray[np.int64]:
    """``(n_rows, per_row)`` worker codes, each row a uniform random set of distinct workers.

    Vectorised over rows. Two strategies, whichever costs less per row:

    * Floyd's sampling without replacement (``per_row`` draws, ``per_row**2 / 2``
      comparisons): for ``j = W - r, ..., W - 1`` draw ``t`` in ``[0, j]`` and take ``t``,
      or ``j`` if ``t`` is already in the row. Cheap when ``per_row`` is small.
    * the ``per_row`` smallest of ``W`` random keys (``argpartition``): cheap when
      ``per_row`` is close to ``W``.
    """
    if per_row * per_row <= 8 * n_workers:
        chosen = np.empty((n_rows, per_row), dtype=np.int64)
        for column, j in enumerate(range(n_workers - per_row, n_workers)):
            t = rng.integers(0, j + 1, size=n_rows)
            if column:
                taken = (chosen[:, :column] == t[:, None]).any(axis=1)
                t = np.where(taken, j, t)
            chosen[:, column] = t
        return chosen
    keys = rng.random((n_rows, n_workers))
    if per_row == n_workers:
        return np.argsort(keys, axis=1)
    return np.argpartition(keys, per_row - 1, axis=1)[:, :per_row].astype(np.int64)


def simulate_crowd(
    n_items: int,
    *,
    n_workers: int,
    n_classes: int,
    labels_per_item: int,
    spammer_share: float = 0.2,
    skill: tuple[float, float] = (0.6, 0.95),
    class_prior: ArrayLike | None = None,
    fixed_label_share: float = 0.0,
    random_state: RandomState = 0,
) -> SimulatedCrowd:
    r"""Draw a crowd of honest workers of mixed skill and spammers, with planted truth.

    The generative model (a MACE-style crowd, Hovy et al. 2013):

    * item ``i`` has a true class :math:`T_i \sim \mathrm{Cat}(\pi)` (``class_prior``,
      uniform by default);
    * ``round(spammer_share * n_workers)`` workers, chosen at random, are spammers;
      of these, ``round(fixed_label_share * n_spammers)`` always answer one class of
      their own (drawn uniformly, a "straight-liner"), the rest answer uniformly at
      random over all ``n_classes`` classes, ignoring the item;
    * every honest worker ``w`` has an accuracy :math:`a_w \sim U(\text{skill})` and
      answers :math:`T_i` with probability :math:`a_w`, otherwise a class drawn
      uniformly among the ``n_classes - 1`` wrong ones:
      :math:`P(L = l \mid T = t) = a_w [l = t] + (1 - a_w)[l \ne t] / (K - 1)`;
    * each item is labelled by ``labels_per_item`` distinct workers drawn uniformly
      without replacement, so every worker labels about
      ``n_items * labels_per_item / n_workers`` items (binomially spread).

    Parameters
    ----------
    n_items : int >= 1
    n_workers : int >= 1
    n_classes : int >= 2
    labels_per_item : int in [1, n_workers]
        Annotations per item; the matrix has ``n_items * labels_per_item`` rows.
    spammer_share : float in [0, 1]
        Share of the workers who spam.
    skill : (float, float), 0 <= low <= high <= 1
        Range of the honest workers' accuracies (uniform). A value below
        ``1 / n_classes`` makes an adversarial worker.
    class_prior : array of float, shape (n_classes,), optional
        Class prevalence; non-negative, sums to 1. Default uniform.
    fixed_label_share : float in [0, 1]
        Share of the spammers who always give the same label (default 0: every
        spammer is uniform-random, the MACE spammer).
    random_state : int, Generator or None
        Seeds the one generator behind every draw; the same seed gives identical
        output.

    Returns
    -------
    SimulatedCrowd
        The matrix, ``true_labels``, ``is_spammer``, ``worker_accuracy`` and
        ``spammer_label``.

    Raises
    ------
    InputError
        A count that is not a whole number in range, ``labels_per_item > n_workers``,
        a share outside [0, 1], a bad ``skill`` pair or ``class_prior``.

    Notes
    -----
    Items are generated in chunks of 131072, so the temporaries stay at a few tens
    of MB and the cost is linear in the annotations: 10M annotations take a few
    seconds. Worker sets use Floyd's sampling when ``labels_per_item`` is small
    (cost :math:`O(r^2)` per item) and random-key ``argpartition`` otherwise (cost
    :math:`O(W)` per item), never a Python loop over items. Output memory: three
    ``int32`` arrays of ``n_items * labels_per_item``.

    References
    ----------
    D. Hovy, T. Berg-Kirkpatrick, A. Vaswani and E. Hovy, "Learning Whom to Trust with
    MACE", NAACL-HLT 2013 (the spammer model and its synthetic evaluation).
    R. W. Floyd and J. Bentley, "Programming pearls: a sample of brilliance",
    Communications of the ACM, 1987 (sampling without replacement).

    Examples
    --------
    >>> crowd = simulate_crowd(1000, n_workers=20, n_classes=3, labels_per_item=5, random_state=1)
    >>> crowd.matrix.n_annotations, int(crowd.is_spammer.sum())
    (5000, 4)
    >>> bool(crowd.matrix.item_sizes().min() == crowd.matrix.item_sizes().max() == 5)
    True
    """
    n_items = _check_count("n_items", n_items, 1)
    n_workers = _check_count("n_workers", n_workers, 1)
    n_classes = _check_count("n_classes", n_classes, 2)
    labels_per_item = _check_count("labels_per_item", labels_per_item, 1)
    if labels_per_item > n_workers:
        raise InputError(
            f"labels_per_item={labels_per_item} needs at least that many distinct workers, "
            f"but n_workers={n_workers}; raise n_workers or lower labels_per_item"
        )
    spammer_share = _check_share("spammer_share", spammer_share)
    fixed_label_share = _check_share("fixed_label_share", fixed_label_share)
    low, high = _check_skill(skill)
    prior = _check_prior(class_prior, n_classes)
    n_annotations = n_items * labels_per_item
    if n_annotations > np.iinfo(np.intp).max // 2:
        raise InputError(f"n_items * labels_per_item = {n_annotations} annotations is too many")
    rng = as_generator(random_state)

    # workers: who spams, how, and how accurate everyone is
    n_spammers = round(spammer_share * n_workers)
    n_fixed = round(fixed_label_share * n_spammers)
    order = rng.permutation(n_workers)
    is_spammer = np.zeros(n_workers, dtype=bool)
    is_spammer[order[:n_spammers]] = True
    spammer_label = np.full(n_workers, -1, dtype=np.int32)
    spammer_label[order[:n_fixed]] = rng.integers(0, n_classes, size=n_fixed)
    accuracy = rng.uniform(low, high, size=n_workers)
    # a uniform spammer is right with probability 1/K and otherwise uniform over the
    # wrong classes, so it shares the honest workers' sampling path below
    accuracy[is_spammer] = 1.0 / n_classes
    fixed = spammer_label >= 0
    accuracy[fixed] = prior[spammer_label[fixed]]

    true_labels = rng.choice(n_classes, size=n_items, p=prior).astype(np.int32)

    items = np.empty(n_annotations, dtype=np.int32)
    workers = np.empty(n_annotations, dtype=np.int32)
    labels = np.empty(n_annotations, dtype=np.int32)
    for start in range(0, n_items, _CHUNK_ITEMS):
        stop = min(start + _CHUNK_ITEMS, n_items)
        rows = slice(start * labels_per_item, stop * labels_per_item)
        chunk_workers = _distinct_workers(stop - start, n_workers, labels_per_item, rng).ravel()
        chunk_items = np.repeat(np.arange(start, stop, dtype=np.int32), labels_per_item)
        truth = true_labels[chunk_items]
        right = rng.random(chunk_workers.size) < accuracy[chunk_workers]
        wrong = (truth + rng.integers(1, n_classes, size=chunk_workers.size, dtype=np.int32)) % n_classes
        chunk_labels = np.where(right, truth, wrong)
        constant = spammer_label[chunk_workers]
        chunk_labels = np.where(constant >= 0, constant, chunk_labels)
        items[rows] = chunk_items
        workers[rows] = chunk_workers
        labels[rows] = chunk_labels

    # pairs are distinct by construction, so skip from_codes' O(n log n) duplicate check
    matrix = AnnotationMatrix(items, workers, labels, n_items, n_workers, n_classes)
    return SimulatedCrowd(
        matrix=matrix,
        true_labels=_readonly(true_labels),
        is_spammer=_readonly(is_spammer),
        worker_accuracy=_readonly(accuracy),
        spammer_label=_readonly(spammer_label),
    )
