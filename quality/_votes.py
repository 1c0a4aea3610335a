"""Vote-counting consensus: majority vote, weighted votes and WAWA."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._agreement import raw_agreement
from ._common import check_gold, check_matrix, check_positive, vote_shares
from ._errors import InputError, StatisticsWarning
from ._matrix import AnnotationMatrix
from ._result import AggregationResult

__all__ = ["majority_vote", "wawa", "weighted_vote"]


def _label_prevalence(matrix: AnnotationMatrix) -> NDArray[np.float64]:
    counts = np.bincount(matrix.labels, minlength=matrix.n_classes).astype(np.float64)
    return counts / counts.sum()


def _vote_result(
    matrix: AnnotationMatrix, method: str, params: dict, weights: NDArray[np.float64] | None
) -> AggregationResult:
    posteriors = vote_shares(matrix, weights)
    worker_params = {} if weights is None else {"weight": weights}
    return AggregationResult(
        method=method,
        params=params,
        labels=posteriors.argmax(axis=1),
        posteriors=posteriors,
        worker_params=worker_params,
        class_prior=_label_prevalence(matrix),
    )


def majority_vote(matrix: AnnotationMatrix) -> AggregationResult:
    """Plain majority vote: each annotation counts once.

    ``posteriors[i, k]`` is the share of item ``i``'s annotations that chose class
    ``k``; the label is the most frequent class, and a tie goes to the class listed
    first in the class order (lowest code), so results are reproducible. The tie stays
    visible in the posteriors (equal shares) and in ``AggregationResult.confidence``.
    Items without annotations get a uniform row. ``class_prior`` is the overall label
    prevalence. Cost: one ``bincount``.

    Examples
    --------
    >>> from galton.quality import AnnotationMatrix
    >>> m, enc = AnnotationMatrix.from_triplets([0, 0, 0, 1, 1], list("abcab"), list("xxyyx"))
    >>> majority_vote(m).labels.tolist()   # item 1 is a tie: 'x' comes first
    [0, 0]
    """
    matrix = check_matrix(matrix)
    return _vote_result(matrix, "majority_vote", {}, None)


def weighted_vote(
    matrix: AnnotationMatrix,
    *,
    weights: ArrayLike | None = None,
    gold: ArrayLike | None = None,
    smoothing: float = 1.0,
) -> AggregationResult:
    r"""Majority vote with one weight per worker.

    The weights come from one of three sources, in this order of precedence:

    * ``weights``: given by the caller, shape ``(n_workers,)``, non-negative.
    * ``gold`` ("weighted by experts", Callison-Burch 2009): each worker's accuracy on
      the gold items they labelled, smoothed as :math:`(c_w + s) / (n_w + 2s)` with
      ``smoothing`` :math:`s`. Workers who labelled no gold item get the pooled gold
      accuracy of all workers.
    * otherwise ("weighted by non-experts", Callison-Burch 2009): each worker's mean
      raw agreement with the other annotators of the same items (Tratz & Hovy 2010),
      smoothed towards the overall agreement by ``smoothing`` pseudo-annotations.
      Workers who never share an item get the overall agreement.

    ``posteriors`` are the normalised weighted votes; ties go to the lower class code;
    ``worker_params["weight"]`` holds the weights used.

    Parameters
    ----------
    matrix : AnnotationMatrix
    weights : array of float, shape (n_workers,), optional
    gold : array of int, shape (n_items,), optional
        Known class codes, ``-1`` where unknown.
    smoothing : float
        Pseudo-count used when estimating weights from gold or agreement.

    References
    ----------
    C. Callison-Burch, "Fast, cheap, and creative: evaluating translation quality using
    Amazon's Mechanical Turk", EMNLP 2009.
    """
    matrix = check_matrix(matrix)
    check_positive("smoothing", smoothing, allow_zero=True)
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (matrix.n_workers,):
            raise InputError(f"weights must have shape (n_workers,) = ({matrix.n_workers},), got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise InputError("weights must be finite and non-negative")
        source = "given"
    elif gold is not None:
        gold_codes = check_gold(gold, matrix)
        w = _gold_accuracy(matrix, gold_codes, smoothing)
        source = "gold"
    else:
        w = _agreement_weights(matrix, smoothing)
        source = "agreement"
    return _vote_result(matrix, "weighted_vote", {"source": source, "smoothing": smoothing}, w)


def _gold_accuracy(matrix: AnnotationMatrix, gold: NDArray[np.int32], smoothing: float) -> NDArray[np.float64]:
    truth = gold[matrix.items]
    scored = truth >= 0
    if not scored.any():
        raise InputError("gold has no known labels on annotated items; give gold labels or omit gold")
    n = np.bincount(matrix.workers[scored], minlength=matrix.n_workers).astype(np.float64)
    correct = np.bincount(
        matrix.workers[scored], weights=(matrix.labels[scored] == truth[scored]), minlength=matrix.n_workers
    )
    pooled = correct.sum() / n.sum()
    denominator = n + 2 * smoothing
    accuracy = np.divide(correct + smoothing, denominator, out=np.full(matrix.n_workers, pooled),
                         where=denominator > 0)
    return np.where(n > 0, accuracy, pooled)


def _agreement_weights(matrix: AnnotationMatrix, smoothing: float) -> NDArray[np.float64]:
    agreement = raw_agreement(matrix)
    scored = np.isfinite(agreement.per_annotation)
    if not scored.any():
        warnings.warn(
            "no item has two or more annotations, so agreement weights are all equal",
            StatisticsWarning,
            stacklevel=3,
        )
        return np.ones(matrix.n_workers)
    overall = float(agreement.per_annotation[scored].mean())
    n = np.bincount(matrix.workers[scored], minlength=matrix.n_workers).astype(np.float64)
    total = np.bincount(
        matrix.workers[scored], weights=agreement.per_annotation[scored], minlength=matrix.n_workers
    )
    denominator = n + smoothing
    return np.divide(total + smoothing * overall, denominator, out=np.full(matrix.n_workers, overall),
                     where=denominator > 0)


def wawa(matrix: AnnotationMatrix) -> AggregationResult:
    """Worker Agreement With Aggregate: majority vote re-weighted by agreement with it.

    First a plain majority vote; then each worker's weight is the share of their
    annotations that match the majority label (ties count for the lower code); then a
    weighted majority vote with those weights. ``worker_params["weight"]`` holds them.
    Cheap, and more robust than plain voting when a few workers are much worse than
    the rest.
    """
    matrix = check_matrix(matrix)
    first = vote_shares(matrix).argmax(axis=1)
    agree = np.bincount(
        matrix.workers, weights=(matrix.labels == first[matrix.items]), minlength=matrix.n_workers
    )
    n = matrix.worker_sizes()
    weights = np.divide(agree, n, out=np.zeros(matrix.n_workers), where=n > 0)
    return _vote_result(matrix, "wawa", {}, weights)
