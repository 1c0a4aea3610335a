"""Validation and numerical helpers shared by the consensus methods."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import logsumexp

from ._errors import ConvergenceWarning, InputError, describe_examples
from ._matrix import AnnotationMatrix

__all__ = [
    "as_generator",
    "check_features",
    "check_gold",
    "check_matrix",
    "check_positive",
    "clamp_gold",
    "finite_rows",
    "normalise_log_rows",
    "vote_shares",
    "warn_not_converged",
]

RandomState = int | np.random.Generator | None


def check_matrix(matrix: Any, *, need_annotations: bool = True) -> AnnotationMatrix:
    """Return ``matrix`` if it is an :class:`AnnotationMatrix` fit for aggregation."""
    if not isinstance(matrix, AnnotationMatrix):
        raise InputError(
            f"expected an AnnotationMatrix, got {type(matrix).__name__}; "
            "build one with AnnotationMatrix.from_triplets(items, workers, labels)"
        )
    if need_annotations and matrix.n_annotations == 0:
        raise InputError("the annotation matrix is empty: there is nothing to aggregate")
    if matrix.n_classes < 1:
        raise InputError("the annotation matrix has no classes")
    return matrix


def as_generator(random_state: RandomState) -> np.random.Generator:
    """One ``np.random.Generator`` from a seed, a generator (used as is) or None."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise InputError(f"random_state must be an int, a numpy Generator or None, got {random_state!r}")


def check_positive(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> Any:
    """Validate a numeric option; the message names the option."""
    kind = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kind) or not np.isfinite(value):
        raise InputError(f"{name} must be a {'whole' if integer else 'finite'} number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InputError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return value


def check_gold(gold: ArrayLike | Mapping[int, int] | None, matrix: AnnotationMatrix) -> NDArray[np.int32] | None:
    """Gold labels as an ``(n_items,)`` int32 array, ``-1`` where unknown.

    Accepts ``None``, an array of class codes with ``-1`` for unknown, or a mapping
    ``{item_code: class_code}`` (use ``Encoding.encode_gold`` for external ids).
    """
    if gold is None:
        return None
    if isinstance(gold, Mapping):
        array = np.full(matrix.n_items, -1, dtype=np.int64)
        keys = np.fromiter(gold.keys(), dtype=np.int64, count=len(gold))
        values = np.fromiter(gold.values(), dtype=np.int64, count=len(gold))
        if keys.size and (keys.min() < 0 or keys.max() >= matrix.n_items):
            bad = keys[(keys < 0) | (keys >= matrix.n_items)]
            raise InputError(
                f"gold names item codes outside [0, {matrix.n_items}): {describe_examples(bad.tolist())}"
            )
        array[keys] = values
    else:
        array = np.asarray(gold)
        if array.shape != (matrix.n_items,):
            raise InputError(
                f"gold must have shape (n_items,) = ({matrix.n_items},) with -1 for unknown, "
                f"got {array.shape}; use Encoding.encode_gold to build it"
            )
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise InputError(f"gold must hold integer class codes, got dtype {array.dtype}")
        array = array.astype(np.int64)
    bad = np.flatnonzero((array < -1) | (array >= matrix.n_classes))
    if bad.size:
        raise InputError(
            f"{bad.size} gold labels are outside [0, {matrix.n_classes}) (items "
            f"{describe_examples(bad.tolist())}); use -1 for unknown"
        )
    return array.astype(np.int32)


def clamp_gold(posteriors: NDArray[np.float64], gold: NDArray[np.int32] | None) -> NDArray[np.float64]:
    """Set the posterior of every gold item to the one-hot of its known class (in place)."""
    if gold is None:
        return posteriors
    known = np.flatnonzero(gold >= 0)
    if known.size:
        posteriors[known] = 0.0
        posteriors[known, gold[known]] = 1.0
    return posteriors


def normalise_log_rows(log_post: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Posteriors from unnormalised log rows, and each row's log normaliser."""
    log_norm = logsumexp(log_post, axis=1, keepdims=True)
    return np.exp(log_post - log_norm), log_norm[:, 0]


def vote_shares(matrix: AnnotationMatrix, weights: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """Per-item share of (weighted) votes per class, shape ``(n_items, n_classes)``.

    Items whose votes all weigh 0 fall back to unweighted shares; items without
    annotations get a uniform row.
    """
    flat = matrix.items.astype(np.int64) * matrix.n_classes + matrix.labels
    size = matrix.n_items * matrix.n_classes
    scores = np.bincount(flat, minlength=size).astype(np.float64).reshape(matrix.n_items, matrix.n_classes)
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)[matrix.workers]
        weighted = np.bincount(flat, weights=w, minlength=size).reshape(matrix.n_items, matrix.n_classes)
        has_weight = weighted.sum(axis=1) > 0
        scores[has_weight] = weighted[has_weight]
    totals = scores.sum(axis=1, keepdims=True)
    empty = totals[:, 0] <= 0
    scores[empty] = 1.0
    totals[empty] = matrix.n_classes
    return scores / totals


def warn_not_converged(method: str, max_iter: int, tol: float) -> None:
    warnings.warn(
        f"{method} did not converge in max_iter={max_iter} iterations (tol={tol}); "
        "raise max_iter or tol",
        ConvergenceWarning,
        stacklevel=3,
    )


def check_features(features: ArrayLike, n_items: int | None, name: str = "features") -> NDArray[np.float64]:
    """A (n_items, n_features) float64 copy of ``features``; InputError naming what is wrong."""
    x = np.asarray(features)
    if x.ndim != 2:
        raise InputError(f"{name} must have shape (n_items, n_features), got {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"{name} must be numbers, got dtype {x.dtype}")
    if n_items is not None and x.shape[0] != n_items:
        raise InputError(
            f"{name} must have one row per item code: got {x.shape[0]} rows for {n_items} items; "
            "order the rows by the matrix's item codes (Encoding.item_ids)"
        )
    return finite_rows(x, "features", "impute or drop them")


def finite_rows(x: NDArray[Any], name: str, fix: str) -> NDArray[np.float64]:
    """``x`` (numbers, one row per item) as float64; InputError naming the rows with NaN or
    infinite values, and ``fix``, how to mend them."""
    x = x.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        raise InputError(f"{bad.size} items have NaN or infinite {name} (items {describe_examples(bad.tolist())}); "
                         f"{fix}")
    return x
