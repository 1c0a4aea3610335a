"""Rater (worker) scores and per-item quality signals."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import beta as beta_distribution

from ._agreement import cohen_kappa_matrix, raw_agreement
from ._common import RandomState, check_gold, check_matrix, check_positive
from ._dawid_skene import dawid_skene
from ._errors import ConvergenceWarning, InputError, StatisticsWarning
from ._mace import mace
from ._matrix import AnnotationMatrix, Encoding
from ._result import AggregationResult

__all__ = ["ItemScores", "WorkerScores", "beta_interval", "item_scores", "raykar_yu_score", "worker_scores"]


def _frozen(value: ArrayLike, dtype: Any = None) -> NDArray[Any]:
    array = np.array(value, dtype=dtype, copy=True)
    array.flags.writeable = False
    return array


def _json_number(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def beta_interval(
    successes: ArrayLike,
    trials: ArrayLike,
    *,
    prior: tuple[float, float] = (1.0, 1.0),
    credible: float = 0.95,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    r"""Posterior mean and equal-tailed credible interval of a success rate.

    With a :math:`\mathrm{Beta}(a, b)` prior and :math:`s` successes in :math:`n`
    trials the posterior is :math:`\mathrm{Beta}(a + s, b + n - s)`.

    Parameters
    ----------
    successes, trials : array of int, same shape
        ``0 <= successes <= trials``.
    prior : (float, float)
        Beta prior pseudo-counts ``(a, b)``, both > 0; ``(1, 1)`` is uniform.
    credible : float in (0, 1)
        Mass of the interval.

    Returns
    -------
    (mean, low, high) : arrays of float64, the shape of ``successes``
        With no trials they describe the prior.

    Examples
    --------
    >>> mean, low, high = beta_interval([9], [10])
    >>> round(float(mean[0]), 3), round(float(low[0]), 3), round(float(high[0]), 3)
    (0.833, 0.587, 0.977)
    """
    s = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    a, b = prior
    check_positive("prior[0]", a)
    check_positive("prior[1]", b)
    if not 0.0 < credible < 1.0:
        raise InputError(f"credible must be in (0, 1), got {credible!r}")
    if s.shape != n.shape or np.any(s < 0) or np.any(s > n):
        raise InputError("successes and trials must have the same shape with 0 <= successes <= trials")
    post_a, post_b = a + s, b + n - s
    tail = (1.0 - credible) / 2.0
    return (
        post_a / (post_a + post_b),
        beta_distribution.ppf(tail, post_a, post_b),
        beta_distribution.ppf(1.0 - tail, post_a, post_b),
    )


def raykar_yu_score(confusion: ArrayLike) -> NDArray[np.float64]:
    r"""Raykar & Yu (2012) spammer score of each confusion matrix, in ``[0, 1]``.

    A spammer's label does not depend on the true class, so all rows of their
    confusion matrix :math:`A` (rows: true class, columns: label) are equal. The score
    measures the distance from that:

    .. math:: S = \frac{1}{K(K-1)} \sum_{c < c'} \sum_k (A_{ck} - A_{c'k})^2,

    0 for a spammer, 1 for a perfect worker (and for a perfect "permuter"). For two
    classes it is :math:`(\mathrm{sensitivity} + \mathrm{specificity} - 1)^2`.

    Parameters
    ----------
    confusion : array, shape (n_workers, K, K) or (K, K)
        Row-stochastic confusion matrices, e.g. ``dawid_skene(...).worker_params["confusion"]``.

    References
    ----------
    V. C. Raykar and S. Yu, "Eliminating spammers and ranking annotators for
    crowdsourced labeling tasks", JMLR 13, 2012.
    """
    a = np.asarray(confusion, dtype=np.float64)
    single = a.ndim == 2
    if single:
        a = a[None]
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise InputError(f"confusion must have shape (n_workers, K, K), got {np.shape(confusion)}")
    k = a.shape[1]
    if k < 2:
        return np.zeros(a.shape[0]) if not single else np.zeros(1)[0]
    diff = a[:, :, None, :] - a[:, None, :, :]  # (W, K, K, K): rows c, c'
    score = (diff**2).sum(axis=(1, 2, 3)) / 2.0 / (k * (k - 1))
    return score[0] if single else score


@dataclass(frozen=True)
class WorkerScores:
    """One row per worker: how much, how well, and how likely a spammer.

    Attributes (each of length ``n_workers``)
    -----------------------------------------
    n_annotations : int
    agreement : float
        Raw agreement with the other annotators of the same items (Tratz & Hovy 2010);
        nan for workers who never share an item.
    mean_kappa : float
        Overlap-weighted mean Cohen's kappa with co-raters; nan without co-raters.
    gold_n, gold_correct : int
        Gold items labelled, and labelled right.
    gold_accuracy, gold_low, gold_high : float
        Beta-posterior mean and credible interval of the accuracy on gold (the prior's
        when the worker labelled no gold item).
    mace_competence : float
        MACE :math:`\\theta`: probability the worker is not spamming (higher = better).
    spam_probability : float
        MACE posterior probability that the worker's annotations were spam.
    raykar_yu : float
        Raykar & Yu spammer score of the Dawid-Skene confusion matrix: 0 = spammer.
    confusion : float, shape (n_workers, K, K)
        Dawid-Skene confusion matrices (rows: true class).
    """

    n_annotations: NDArray[np.int64]
    agreement: NDArray[np.float64]
    mean_kappa: NDArray[np.float64]
    gold_n: NDArray[np.int64]
    gold_correct: NDArray[np.int64]
    gold_accuracy: NDArray[np.float64]
    gold_low: NDArray[np.float64]
    gold_high: NDArray[np.float64]
    mace_competence: NDArray[np.float64]
    spam_probability: NDArray[np.float64]
    raykar_yu: NDArray[np.float64]
    confusion: NDArray[np.float64]
    params: dict[str, Any] = field(default_factory=dict)

    _COLUMNS = (
        "n_annotations", "agreement", "mean_kappa", "gold_n", "gold_correct", "gold_accuracy",
        "gold_low", "gold_high", "mace_competence", "spam_probability", "raykar_yu",
    )

    def __post_init__(self) -> None:
        for name in (*self._COLUMNS, "confusion"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def n_workers(self) -> int:
        return int(self.n_annotations.shape[0])

    def risk_order(self) -> NDArray[np.int64]:
        """Worker codes from most to least likely a spammer (by MACE spam probability)."""
        return np.argsort(-self.spam_probability, kind="stable")

    def to_rows(self, encoding: Encoding | None = None) -> list[dict[str, Any]]:
        """JSON-serialisable rows (nan becomes None), in risk order, with worker ids."""
        rows = []
        for w in self.risk_order().tolist():
            row: dict[str, Any] = {"worker": encoding.worker_ids[w] if encoding is not None else w}
            row.update({name: _json_number(getattr(self, name)[w]) for name in self._COLUMNS})
            rows.append(row)
        return rows


def worker_scores(
    matrix: AnnotationMatrix,
    *,
    gold: ArrayLike | None = None,
    mace_result: AggregationResult | None = None,
    dawid_skene_result: AggregationResult | None = None,
    prior: tuple[float, float] = (1.0, 1.0),
    credible: float = 0.95,
    random_state: RandomState = 0,
) -> WorkerScores:
    """The per-worker table: volume, agreement, gold accuracy, MACE and Dawid-Skene scores.

    Parameters
    ----------
    matrix : AnnotationMatrix
    gold : array of int, shape (n_items,), optional
        Known class codes, ``-1`` where unknown; used for gold accuracy and passed to
        the model fits that are computed here.
    mace_result, dawid_skene_result : AggregationResult, optional
        Fits to reuse; computed (with ``gold`` and ``random_state``) when omitted.
    prior, credible
        Beta prior and interval mass for the gold accuracy (see :func:`beta_interval`).

    Returns
    -------
    WorkerScores
    """
    matrix = check_matrix(matrix)
    gold_codes = check_gold(gold, matrix)
    for name, result, expected in (("mace_result", mace_result, "mace"),
                                   ("dawid_skene_result", dawid_skene_result, "dawid_skene")):
        if result is not None and (result.method != expected or result.n_items != matrix.n_items):
            raise InputError(f"{name} must be a {expected} result on this matrix")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if mace_result is None:
            mace_result = mace(matrix, gold=gold_codes, random_state=random_state)
        if dawid_skene_result is None:
            dawid_skene_result = dawid_skene(matrix, gold=gold_codes, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticsWarning)
        agreement = raw_agreement(matrix).per_worker
        kappa = cohen_kappa_matrix(matrix).mean_per_worker
    gold_n = np.zeros(matrix.n_workers, dtype=np.int64)
    gold_correct = np.zeros(matrix.n_workers, dtype=np.int64)
    if gold_codes is not None:
        truth = gold_codes[matrix.items]
        scored = truth >= 0
        gold_n = np.bincount(matrix.workers[scored], minlength=matrix.n_workers)
        gold_correct = np.bincount(
            matrix.workers[scored], weights=matrix.labels[scored] == truth[scored], minlength=matrix.n_workers
        ).astype(np.int64)
    mean, low, high = beta_interval(gold_correct, gold_n, prior=prior, credible=credible)
    confusion = dawid_skene_result.worker_params["confusion"]
    return WorkerScores(
        n_annotations=matrix.worker_sizes(),
        agreement=agreement,
        mean_kappa=kappa,
        gold_n=gold_n,
        gold_correct=gold_correct,
        gold_accuracy=mean,
        gold_low=low,
        gold_high=high,
        mace_competence=mace_result.worker_params["theta"],
        spam_probability=mace_result.worker_params["spamming_posterior"],
        raykar_yu=raykar_yu_score(confusion),
        confusion=confusion,
        params={"prior": list(prior), "credible": credible,
                "gold_items": 0 if gold_codes is None else int((gold_codes >= 0).sum())},
    )


@dataclass(frozen=True)
class ItemScores:
    """Per-item quality signals for one consensus result.

    Attributes (each of length ``n_items``)
    ---------------------------------------
    n_annotations : int
    label : int
        Consensus class code.
    confidence : float
        Posterior probability of the consensus label.
    posterior_entropy : float
        Normalised entropy of the posterior, in [0, 1].
    label_entropy : float
        Normalised entropy of the raw labels, in [0, 1]: where disagreement is the
        signal (the descriptive paradigm) this, and ``label_distribution``, are what to
        keep. nan for items without annotations.
    agreement : float
        Mean raw agreement of the item's annotations; nan with fewer than 2.
    label_distribution : float, shape (n_items, n_classes)
        Share of the raw labels per class (soft labels); uniform without annotations.
    """

    n_annotations: NDArray[np.int64]
    label: NDArray[np.int32]
    confidence: NDArray[np.float64]
    posterior_entropy: NDArray[np.float64]
    label_entropy: NDArray[np.float64]
    agreement: NDArray[np.float64]
    label_distribution: NDArray[np.float64]

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            object.__setattr__(self, name, _frozen(getattr(self, name)))


def item_scores(matrix: AnnotationMatrix, result: AggregationResult) -> ItemScores:
    """Per-item consensus confidence, entropies, agreement and label distribution."""
    matrix = check_matrix(matrix)
    if not isinstance(result, AggregationResult) or result.posteriors.shape != (matrix.n_items, matrix.n_classes):
        raise InputError("result must be an AggregationResult computed on this matrix")
    counts = matrix.label_counts().astype(np.float64)
    sizes = counts.sum(axis=1)
    distribution = np.divide(counts, sizes[:, None], out=np.full_like(counts, 1.0 / matrix.n_classes),
                             where=sizes[:, None] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(distribution > 0, distribution * np.log(distribution), 0.0).sum(axis=1)
    label_entropy = h / np.log(matrix.n_classes) if matrix.n_classes > 1 else np.zeros(matrix.n_items)
    label_entropy = np.where(sizes > 0, label_entropy, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticsWarning)
        agreement = raw_agreement(matrix).per_item
    return ItemScores(
        n_annotations=sizes.astype(np.int64),
        label=result.labels,
        confidence=result.confidence(),
        posterior_entropy=result.entropy(),
        label_entropy=label_entropy,
        agreement=agreement,
        label_distribution=distribution,
    )
