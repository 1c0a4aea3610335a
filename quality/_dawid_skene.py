"""Dawid-Skene truth inference: full confusion matrices and the one-coin variant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from ._common import (
    RandomState,
    as_generator,
    check_gold,
    check_matrix,
    check_positive,
    clamp_gold,
    normalise_log_rows,
    vote_shares,
    warn_not_converged,
)
from ._matrix import AnnotationMatrix
from ._result import AggregationResult

__all__ = ["dawid_skene", "one_coin_dawid_skene"]

_LOG_FLOOR = -700.0  # exp(-700) ~ 1e-304: keeps log(0) finite so a row never becomes all -inf


def _safe_log(x: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(x), _LOG_FLOOR)


def _class_weighted_counts(
    matrix: AnnotationMatrix, posteriors: NDArray[np.float64], keys: NDArray[np.int64], size: int
) -> NDArray[np.float64]:
    """``out[key, t] = sum over annotations a with key[a] == key of posteriors[items[a], t]``.

    One ``bincount`` per true class keeps temporaries at ``n_annotations`` floats.
    """
    out = np.empty((size, posteriors.shape[1]))
    for t in range(posteriors.shape[1]):
        out[:, t] = np.bincount(keys, weights=posteriors[matrix.items, t], minlength=size)
    return out


def _e_step_log(
    matrix: AnnotationMatrix, log_prior: NDArray[np.float64], annotation_log_lik: Callable[[int], Any]
) -> NDArray[np.float64]:
    """Unnormalised log posteriors: log prior + sum of per-annotation log-likelihoods per class."""
    log_post = np.empty((matrix.n_items, log_prior.size))
    for t in range(log_prior.size):
        log_post[:, t] = log_prior[t] + np.bincount(
            matrix.items, weights=annotation_log_lik(t), minlength=matrix.n_items
        )
    return log_post


def _initial_posteriors(
    matrix: AnnotationMatrix, run: int, rng: np.random.Generator, gold: NDArray[np.int32] | None
) -> NDArray[np.float64]:
    """Run 0 starts from majority-vote shares; later runs from random Dirichlet rows."""
    if run == 0:
        posteriors = vote_shares(matrix)
    else:
        posteriors = rng.dirichlet(np.ones(matrix.n_classes), size=matrix.n_items)
    return clamp_gold(posteriors, gold)


def _check_em_options(max_iter: int, tol: float, n_init: int, alpha: float) -> None:
    check_positive("max_iter", max_iter, integer=True)
    check_positive("tol", tol, allow_zero=True)
    check_positive("n_init", n_init, integer=True)
    check_positive("alpha", alpha, allow_zero=True)


def _run_em(
    matrix: AnnotationMatrix,
    *,
    m_step: Callable[[NDArray[np.float64]], tuple[Any, NDArray[np.float64]]],
    log_lik: Callable[[Any], Callable[[int], Any]],
    gold: NDArray[np.int32] | None,
    max_iter: int,
    tol: float,
    n_init: int,
    rng: np.random.Generator,
) -> tuple[Any, NDArray[np.float64], NDArray[np.float64], float, int, bool]:
    """Shared EM driver: best of ``n_init`` runs by log-likelihood.

    Each iteration is an M-step on the current posteriors followed by an E-step, so the
    returned posteriors always come from the returned parameters. Convergence: the
    change of the mean log-likelihood per annotation falls below ``tol``.
    """
    best: tuple[Any, ...] | None = None
    for run in range(n_init):
        posteriors = _initial_posteriors(matrix, run, rng, gold)
        previous = -np.inf
        converged = False
        n_iter = 0
        for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported
            params, log_prior = m_step(posteriors)
            unnormalised = _e_step_log(matrix, log_prior, log_lik(params))
            posteriors, log_norm = normalise_log_rows(unnormalised)
            if gold is not None:
                # a clamped item contributes the likelihood of its known class
                known = np.flatnonzero(gold >= 0)
                log_norm[known] = unnormalised[known, gold[known]]
                clamp_gold(posteriors, gold)
            log_likelihood = float(log_norm.sum())
            if abs(log_likelihood - previous) <= tol * max(matrix.n_annotations, 1):
                converged = True
                break
            previous = log_likelihood
        if best is None or log_likelihood > best[3]:
            best = (params, posteriors, log_prior, log_likelihood, n_iter, converged)
    assert best is not None
    params, posteriors, log_prior, log_likelihood, n_iter, converged = best
    return params, posteriors, np.exp(log_prior), log_likelihood, n_iter, converged


def _one_hot(matrix: AnnotationMatrix) -> sp.csr_array:
    """The annotations as a sparse 0/1 matrix, plus one column of ones for the prior.

    ``A[i, w * n_classes + l] = 1`` when worker ``w`` gave item ``i`` label ``l``, and
    ``A[i, n_workers * n_classes] = 1`` for every item, shape
    ``(n_items, n_workers * n_classes + 1)``. With the log confusion matrices stacked
    over the log class prior (rows ``(w, l)``, then one row ``log pi``), the whole
    E-step is ``A @ L``; and ``A.T @ posteriors`` gives the M-step counts with the
    class totals in its last row. Built once per fit, rows grouped by item with a
    stable sort (skipped when the triplets already come item by item). Memory: 12
    bytes per annotation and 16 per item (int32 indices while they fit).
    """
    n_items, prior_column = matrix.n_items, matrix.n_workers * matrix.n_classes
    nnz = matrix.n_annotations + n_items
    index_type = np.int32 if max(prior_column + 1, nnz) < np.iinfo(np.int32).max else np.int64
    items = matrix.items
    if items.size > 1 and np.any(items[1:] < items[:-1]):
        order = np.argsort(items, kind="stable")
        workers, labels, items = matrix.workers[order], matrix.labels[order], items[order]
    else:
        workers, labels = matrix.workers, matrix.labels
    sizes = np.bincount(items, minlength=n_items)
    indptr = np.zeros(n_items + 1, dtype=index_type)
    np.cumsum(sizes + 1, out=indptr[1:])
    # each row: the item's annotations in triplet order, then the prior column
    columns = np.full(nnz, prior_column, dtype=index_type)
    slots = np.arange(matrix.n_annotations, dtype=index_type)
    slots += np.repeat(np.arange(n_items, dtype=index_type), sizes)  # skip one slot per earlier item
    columns[slots] = workers.astype(index_type) * matrix.n_classes + labels
    return sp.csr_array((np.ones(nnz), columns, indptr), shape=(n_items, prior_column + 1))


def _vote_shares(one_hot: sp.csr_array, n_classes: int) -> NDArray[np.float64]:
    """Majority-vote shares per item (uniform without votes), equal to ``vote_shares``."""
    label_of_column = np.zeros((one_hot.shape[1], n_classes))
    label_of_column[:-1] = np.tile(np.eye(n_classes), (one_hot.shape[1] // n_classes, 1))
    counts = one_hot @ label_of_column
    totals = np.diff(one_hot.indptr) - 1.0
    empty = totals <= 0
    counts[empty] = 1.0
    totals[empty] = n_classes
    counts /= totals[:, None]
    return counts


def _row_max(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``values.max(axis=1)`` for a C-ordered ``(n, k)`` array.

    For few columns a running ``np.maximum`` over the columns beats numpy's reduction
    along a short contiguous axis (about 4x at k = 10).
    """
    n_columns = values.shape[1]
    if n_columns > 32:
        return values.max(axis=1)
    out = values[:, 0].copy()
    for t in range(1, n_columns):
        np.maximum(out, values[:, t], out=out)
    return out


def _confusion_from_counts(
    counts: NDArray[np.float64], n_workers: int, n_classes: int, alpha: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """M-step for the confusion matrices from ``counts[(w, l), t] = sum q_it``.

    Returns ``confusion[w, t, l] = (alpha + counts) / row total`` (uniform rows where a
    worker has no mass for ``t`` and ``alpha == 0``) and its log in the E-step's
    ``(n_workers * n_classes, n_classes)`` layout, rows ``(w, l)``, floored at
    ``exp(-700)``.
    """
    smoothed = counts.reshape(n_workers, n_classes, n_classes) + alpha  # [w, l, t]
    totals = smoothed.sum(axis=1, keepdims=True)  # [w, 1, t]
    by_label = np.divide(
        smoothed, totals, out=np.full_like(smoothed, 1.0 / n_classes), where=totals > 0
    )
    log_by_label = _safe_log(by_label).reshape(n_workers * n_classes, n_classes)
    return by_label.transpose(0, 2, 1), log_by_label


def _ds_em_run(
    one_hot: sp.csr_array,
    posteriors: NDArray[np.float64],
    *,
    n_workers: int,
    alpha: float,
    gold: NDArray[np.int32] | None,
    max_iter: int,
    tol: float,
    n_annotations: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float, int, bool]:
    """One EM run from ``posteriors``; each iteration an M-step, then an E-step.

    Returns the confusion matrices, posteriors, class prior, log-likelihood, the number
    of iterations and whether ``tol`` was met. Per iteration: two sparse products with
    ``n_annotations * n_classes`` multiply-adds each and one ``exp`` over the
    ``(n_items, n_classes)`` posteriors.
    """
    n_classes = posteriors.shape[1]
    known = np.flatnonzero(gold >= 0) if gold is not None else np.empty(0, dtype=np.intp)
    known_class = gold[known] if gold is not None else known
    ones = np.ones(n_classes)
    log_params = np.empty((one_hot.shape[1], n_classes))  # log confusion rows (w, l), then log prior
    threshold = tol * max(n_annotations, 1)
    previous = -np.inf
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported
        # M-step: counts[(w, l), t] = sum of q_it over w's annotations l; last row sum_i q_it
        counts = one_hot.T @ posteriors
        confusion, log_params[:-1] = _confusion_from_counts(counts[:-1], n_workers, n_classes, alpha)
        prior = counts[-1] + alpha
        prior /= prior.sum()
        log_params[-1] = _safe_log(prior)
        # E-step: log q_it = log pi_t + sum over the item's annotations of log Pi_w[t, l]
        log_post = one_hot @ log_params
        known_log_lik = log_post[known, known_class]  # a clamped item: likelihood of its class
        shift = _row_max(log_post)
        log_post -= shift[:, None]
        posteriors = np.exp(log_post, out=log_post)
        totals = posteriors @ ones
        posteriors *= (1.0 / totals)[:, None]
        log_norm = np.log(totals)
        log_norm += shift
        if known.size:
            log_norm[known] = known_log_lik
            clamp_gold(posteriors, gold)
        log_likelihood = float(log_norm.sum())
        if abs(log_likelihood - previous) <= threshold:
            converged = True
            break
        previous = log_likelihood
    return confusion, posteriors, prior, log_likelihood, n_iter, converged


def dawid_skene(
    matrix: AnnotationMatrix,
    *,
    max_iter: int = 100,
    tol: float = 1e-5,
    n_init: int = 1,
    alpha: float = 0.01,
    gold: ArrayLike | None = None,
    random_state: RandomState = 0,
) -> AggregationResult:
    r"""Dawid-Skene EM: one confusion matrix per worker and a class prior.

    Model: the true class :math:`T_i \sim \mathrm{Cat}(\pi)` and worker :math:`w`
    labels class :math:`l` with probability :math:`\Pi_w[t, l]`. EM alternates

    * M-step: :math:`\pi_t \propto \sum_i q_{it}`,
      :math:`\Pi_w[t, l] \propto \alpha + \sum_{(i,w,l)} q_{it}`;
    * E-step: :math:`\log q_{it} = \log \pi_t + \sum_{(i,w,l)} \log \Pi_w[t, l] + c_i`.

    Parameters
    ----------
    matrix : AnnotationMatrix
    max_iter : int
        EM iterations per run.
    tol : float
        Stop when the mean log-likelihood per annotation changes by less than ``tol``.
    n_init : int
        Runs; the first starts from majority-vote shares, the others from random
        posteriors drawn from ``random_state``. The run with the highest
        log-likelihood is kept.
    alpha : float
        Symmetric Dirichlet pseudo-count added to every confusion-matrix cell (and to
        the class prior): MAP smoothing that keeps rare (worker, class) cells off 0.
    gold : array of int, shape (n_items,), optional
        Known class codes, ``-1`` where unknown; gold items are clamped to their class
        in every E-step and so anchor the confusion matrices.
    random_state : int, Generator or None

    Returns
    -------
    AggregationResult
        ``worker_params["confusion"]`` has shape ``(n_workers, n_classes, n_classes)``
        with rows ``P(label | true class)``; ``log_likelihood`` is the marginal
        log-likelihood of the annotations (gold items: given their class).

    Warns
    -----
    ConvergenceWarning
        When the best run stopped at ``max_iter``.

    Notes
    -----
    The annotations are held once as a sparse one-hot matrix ``A`` of shape
    ``(n_items, n_workers * n_classes + 1)`` (last column: the class prior), so an
    iteration is two sparse products, ``A.T @ posteriors`` (M-step counts) and
    ``A @ log_params`` (E-step), each ``(n_annotations + n_items) * n_classes``
    multiply-adds, plus one ``exp`` over the ``(n_items, n_classes)`` posteriors.
    Extra memory: about 12 bytes per annotation and ``3 * 8 * n_classes`` per item.
    Ties in the final posteriors go to the lower class code.

    crowd-kit's ``DawidSkene`` (1.4.2) stops when its ELBO falls, but that ELBO counts
    :math:`\log \pi_t` once per annotation rather than once per item, so on some data
    it stops after 2-3 EM steps, well before the likelihood converges; its labels then
    differ from this converged fit (e.g. adult2, zencrowd), not its model.

    References
    ----------
    A. P. Dawid and A. M. Skene, "Maximum likelihood estimation of observer error-rates
    using the EM algorithm", Journal of the Royal Statistical Society C, 1979.
    """
    matrix = check_matrix(matrix)
    _check_em_options(max_iter, tol, n_init, alpha)
    gold_codes = check_gold(gold, matrix)
    rng = as_generator(random_state)
    one_hot = _one_hot(matrix)
    best: tuple[Any, ...] | None = None
    for run in range(n_init):
        fit = _ds_em_run(
            one_hot,
            clamp_gold(_vote_shares(one_hot, matrix.n_classes), gold_codes) if run == 0
            else _initial_posteriors(matrix, run, rng, gold_codes),
            n_workers=matrix.n_workers, alpha=alpha, gold=gold_codes,
            max_iter=max_iter, tol=tol, n_annotations=matrix.n_annotations,
        )
        if best is None or fit[3] > best[3]:
            best = fit
    assert best is not None
    confusion, posteriors, prior, log_likelihood, n_iter, converged = best
    if not converged:
        warn_not_converged("dawid_skene", max_iter, tol)
    return AggregationResult(
        method="dawid_skene",
        params={"max_iter": max_iter, "tol": tol, "n_init": n_init, "alpha": alpha,
                "gold_items": _count_gold(gold_codes)},
        labels=posteriors.argmax(axis=1),
        posteriors=posteriors,
        worker_params={"confusion": confusion},
        class_prior=prior,
        log_likelihood=log_likelihood,
        n_iter=n_iter,
        converged=converged,
    )


def one_coin_dawid_skene(
    matrix: AnnotationMatrix,
    *,
    max_iter: int = 100,
    tol: float = 1e-5,
    n_init: int = 1,
    alpha: float = 1.0,
    gold: ArrayLike | None = None,
    random_state: RandomState = 0,
) -> AggregationResult:
    r"""One-coin Dawid-Skene: each worker is right with one probability :math:`p_w`.

    :math:`P(l \mid t) = p_w` if :math:`l = t`, else :math:`(1 - p_w)/(K - 1)`. The
    M-step sets :math:`p_w = (\alpha + \sum_{(i,w,l)} q_{il}) / (2\alpha + n_w)`, a Beta
    :math:`(1+\alpha, 1+\alpha)` MAP estimate; the class prior is estimated as in
    :func:`dawid_skene`. Far fewer parameters than the full model, so it is the safer
    choice when workers label few items.

    Parameters
    ----------
    matrix, max_iter, tol, n_init, gold, random_state
        As in :func:`dawid_skene`.
    alpha : float
        Beta pseudo-count for each worker's accuracy.

    Returns
    -------
    AggregationResult
        ``worker_params["accuracy"]``: ``(n_workers,)`` estimated :math:`p_w`.

    References
    ----------
    Dawid and Skene (1979) with a single accuracy parameter per worker, as in
    Y. Zhang, X. Chen, D. Zhou, M. I. Jordan, "Spectral methods meet EM", NeurIPS 2014.
    """
    matrix = check_matrix(matrix)
    _check_em_options(max_iter, tol, n_init, alpha)
    gold_codes = check_gold(gold, matrix)
    rng = as_generator(random_state)
    n_classes = matrix.n_classes
    n_per_worker = matrix.worker_sizes().astype(np.float64)

    def m_step(posteriors: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        agree = np.bincount(
            matrix.workers, weights=posteriors[matrix.items, matrix.labels], minlength=matrix.n_workers
        )
        accuracy = (agree + alpha) / np.maximum(n_per_worker + 2 * alpha, 1e-300)
        accuracy = np.where(n_per_worker + 2 * alpha > 0, accuracy, 1.0 / n_classes)
        prior = posteriors.sum(axis=0) + alpha
        return accuracy, _safe_log(prior / prior.sum())

    def log_lik(accuracy: NDArray[np.float64]) -> Callable[[int], NDArray[np.float64]]:
        log_right = _safe_log(accuracy)
        log_wrong = _safe_log((1.0 - accuracy) / max(n_classes - 1, 1))
        return lambda t: np.where(matrix.labels == t, log_right[matrix.workers], log_wrong[matrix.workers])

    accuracy, posteriors, prior, log_likelihood, n_iter, converged = _run_em(
        matrix, m_step=m_step, log_lik=log_lik, gold=gold_codes,
        max_iter=max_iter, tol=tol, n_init=n_init, rng=rng,
    )
    if not converged:
        warn_not_converged("one_coin_dawid_skene", max_iter, tol)
    return AggregationResult(
        method="one_coin_dawid_skene",
        params={"max_iter": max_iter, "tol": tol, "n_init": n_init, "alpha": alpha,
                "gold_items": _count_gold(gold_codes)},
        labels=posteriors.argmax(axis=1),
        posteriors=posteriors,
        worker_params={"accuracy": accuracy},
        class_prior=prior,
        log_likelihood=log_likelihood,
        n_iter=n_iter,
        converged=converged,
    )


def _count_gold(gold: NDArray[np.int32] | None) -> int:
    return 0 if gold is None else int((gold >= 0).sum())
