"""Label-error scores from recorded training dynamics: pure numpy, no torch.

Every function takes what the trainer recorded (per epoch and per item) and returns
scores where **higher means more likely mislabeled**, so that the trainer, the tests and
anyone with their own training loop can use them alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._common import finite_rows
from .._errors import InputError, describe_examples

__all__ = [
    "GIVEN_SCORES",
    "DataMap",
    "ForgettingCounts",
    "GivenScores",
    "area_under_margin",
    "aum_threshold",
    "check_pred_probs",
    "data_map",
    "fit_noise_classifier",
    "forgetting_events",
    "given_scores",
    "rank_average",
    "self_influence",
]

#: the scores :func:`given_scores` can rank by
GIVEN_SCORES = ("margin", "self_confidence")
#: how far a row of given probabilities may sum from 1 (float32 softmax rows stay within 1e-6)
_ROW_SUM_TOL = 1e-3


def _as_epochs_by_items(name: str, values: ArrayLike, dtype: type = np.float64) -> NDArray:
    array = np.asarray(values, dtype=dtype)
    if array.ndim != 2:
        raise InputError(f"{name} must have shape (n_epochs, n_items), got {array.shape}")
    if array.shape[0] < 1:
        raise InputError(f"{name} holds no epoch: record at least one epoch")
    return array


@dataclass(frozen=True)
class DataMap:
    """Data-map coordinates of every item (Swayamdipta et al., EMNLP 2020).

    Attributes
    ----------
    confidence : ndarray of float64, shape (n_items,)
        Mean over epochs of the probability the model gives to the item's label, in [0, 1].
    variability : ndarray of float64, shape (n_items,)
        Standard deviation (``ddof=0``) of that probability over epochs, in [0, 0.5].
    correctness : ndarray of float64, shape (n_items,)
        Share of epochs in which the model's argmax was the item's label, in [0, 1].
    region : ndarray of str, shape (n_items,)
        ``"ambiguous"`` (top third by variability), else ``"hard-to-learn"`` (bottom third
        by confidence), else ``"easy"``: the paper's 33% selections made disjoint.
    """

    confidence: NDArray[np.float64]
    variability: NDArray[np.float64]
    correctness: NDArray[np.float64]
    region: NDArray[np.str_]


def data_map(label_probability: ArrayLike, correct: ArrayLike) -> DataMap:
    """Confidence, variability and correctness of every item over training.

    Parameters
    ----------
    label_probability : array of float, shape (n_epochs, n_items)
        ``p_epoch(y_i | x_i)``, the softmax probability of the given label, one row per epoch.
    correct : array of bool, shape (n_epochs, n_items)
        Whether the argmax was the given label.

    Returns
    -------
    DataMap
        ``confidence = mean_e p``, ``variability = std_e p``, ``correctness = mean_e correct``.

    >>> m = data_map([[0.2, 0.9], [0.4, 0.9]], [[False, True], [False, True]])
    >>> m.confidence.round(2).tolist(), m.variability.round(2).tolist(), m.correctness.tolist()
    ([0.3, 0.9], [0.1, 0.0], [0.0, 1.0])
    """
    p = _as_epochs_by_items("label_probability", label_probability)
    c = _as_epochs_by_items("correct", correct, dtype=np.float64)
    if c.shape != p.shape:
        raise InputError(f"correct must have the shape of label_probability {p.shape}, got {c.shape}")
    confidence = p.mean(axis=0)
    variability = p.std(axis=0)
    correctness = c.mean(axis=0)
    region = np.full(p.shape[1], "easy", dtype="<U13")
    if p.shape[1]:
        region[confidence <= np.quantile(confidence, 1 / 3)] = "hard-to-learn"
        region[variability >= np.quantile(variability, 2 / 3)] = "ambiguous"
    return DataMap(confidence, variability, correctness, region)


def area_under_margin(margins: ArrayLike) -> NDArray[np.float64]:
    """AUM of every item: its margin averaged over epochs (Pleiss et al., NeurIPS 2020).

    The margin at epoch ``e`` is ``z_y - max_{k != y} z_k`` for the logits ``z`` of the
    item's assigned label ``y``; a low (negative) AUM marks a likely mislabeled item.
    The score is ``-AUM`` so that higher is more suspicious.

    Parameters
    ----------
    margins : array of float, shape (n_epochs, n_items)

    Returns
    -------
    ndarray of float64, shape (n_items,)
        ``-mean_e margin``.

    >>> area_under_margin([[1.0, -2.0], [3.0, 0.0]]).tolist()
    [-2.0, 1.0]
    """
    return -_as_epochs_by_items("margins", margins).mean(axis=0)


def aum_threshold(threshold_aum: ArrayLike, *, percentile: float = 99.0) -> float:
    """The AUM flag threshold: the ``percentile``-th percentile of the threshold samples' AUM.

    Pleiss et al. move ``floor(N / (C + 1))`` items to a fake class ``C + 1``; those items
    are mislabeled by construction, and an item whose AUM is at most this value
    (``AUM <= alpha``) looks as mislabeled as 99% of them.

    >>> aum_threshold(np.arange(101.0))
    99.0
    """
    values = np.asarray(threshold_aum, dtype=np.float64)
    if values.size == 0:
        raise InputError("no threshold samples: the AUM threshold needs at least one")
    return float(np.percentile(values, percentile))


@dataclass(frozen=True)
class ForgettingCounts:
    """Forgetting events per item (Toneva et al., ICLR 2019).

    Attributes
    ----------
    n_forgotten : ndarray of int64, shape (n_items,)
        Transitions from correct to incorrect between consecutive presentations.
    never_learned : ndarray of bool, shape (n_items,)
        Items never classified correctly in any presentation (the paper counts them
        as forgotten infinitely often; here they are reported apart).
    error_share : ndarray of float64, shape (n_items,)
        Share of presentations at which the item was misclassified.
    score : ndarray of float64, shape (n_items,)
        ``n_forgotten + 0.5 * error_share``, and ``n_presentations + 1 + 0.5 * error_share``
        for never-learned items: sorts by count (never-learned first), then by errors.
    """

    n_forgotten: NDArray[np.int64]
    never_learned: NDArray[np.bool_]
    error_share: NDArray[np.float64]
    score: NDArray[np.float64]


def forgetting_events(correct: ArrayLike) -> ForgettingCounts:
    """Count forgetting events from the correctness of each presentation of each item.

    Parameters
    ----------
    correct : array of bool, shape (n_presentations, n_items)
        Row ``t`` holds whether the item was classified correctly when it appeared in a
        mini-batch for the ``t``-th time (recorded in the training forward pass, before
        the update of that batch).

    Returns
    -------
    ForgettingCounts

    >>> f = forgetting_events([[1, 0, 0], [0, 0, 1], [1, 0, 0]])
    >>> f.n_forgotten.tolist(), f.never_learned.tolist()
    ([1, 0, 1], [False, True, False])
    """
    c = _as_epochs_by_items("correct", correct, dtype=np.float64).astype(bool)
    n_forgotten = (c[:-1] & ~c[1:]).sum(axis=0).astype(np.int64)
    never_learned = ~c.any(axis=0)
    error_share = 1.0 - c.mean(axis=0)
    score = n_forgotten + 0.5 * error_share
    score = np.where(never_learned, c.shape[0] + 1 + 0.5 * error_share, score)
    return ForgettingCounts(n_forgotten, never_learned, error_share, score)


def self_influence(
    inputs: ArrayLike,
    labels: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    damping: float = 0.01,
    l2: float = 0.0,
    hessian_inputs: ArrayLike | None = None,
    chunk_size: int = 8192,
) -> NDArray[np.float64]:
    """Self-influence ``-I_up,loss(z_i, z_i)`` of a softmax (final linear) layer.

    For the layer ``p = softmax(W x + b)`` trained with mean cross-entropy, the influence
    of up-weighting item ``i`` on its own loss is (Koh & Liang, ICML 2017)

    .. math:: I_{up,loss}(z_i, z_i) = -g_i^T H^{-1} g_i,\\quad
              g_i = (p_i - e_{y_i}) \\otimes [x_i, 1],\\quad
              H = \\frac{1}{n}\\sum_j (\\mathrm{diag}\\, p_j - p_j p_j^T) \\otimes [x_j,1][x_j,1]^T
                  + (\\lambda + l_2) I,

    the exact Hessian of the mean loss, damped by ``lambda`` (the softmax parameterisation
    is singular along "add the same vector to every class"). Removing item ``i`` raises
    its own loss by about ``g_i^T H^{-1} g_i / n``: the returned score, times ``n``. It
    approximates leave-one-out error; high values mark items the rest of the data does
    not support.

    Parameters
    ----------
    inputs : array of float, shape (n_items, d)
        Inputs of the layer for the items to score (penultimate activations).
    labels : array of int, shape (n_items,)
        Labels the layer was trained on, in ``[0, n_outputs)``.
    weight : array of float, shape (n_outputs, d)
    bias : array of float, shape (n_outputs,), optional
        Without a bias the ``1`` is dropped from ``[x, 1]``.
    damping : float
        ``lambda >= 0`` added to the Hessian's diagonal.
    l2 : float
        The training objective's own L2 penalty ``l2/2 ||theta||^2`` (weight decay), if any.
    hessian_inputs : array of float, shape (n_train, d), optional
        Inputs of the training set the Hessian averages over; default ``inputs``.
    chunk_size : int
        Rows per block; memory is ``O(chunk_size * n_outputs * d)``.

    Returns
    -------
    ndarray of float64, shape (n_items,)
        ``g_i^T H^{-1} g_i >= 0``. Cost ``O(n (K d)^2 + (K d)^3)`` for ``K`` outputs.

    >>> x = np.array([[1.0], [2.0], [-1.0], [-2.0]])
    >>> s = self_influence(x, [1, 1, 0, 1], np.array([[-1.0], [1.0]]), np.zeros(2))
    >>> int(s.argmax())
    3
    """
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(labels)
    w = np.asarray(weight, dtype=np.float64)
    if x.ndim != 2 or w.ndim != 2 or w.shape[1] != x.shape[1]:
        raise InputError(f"inputs (n, d) and weight (n_outputs, d) disagree: {x.shape} and {w.shape}")
    if y.shape != (x.shape[0],):
        raise InputError(f"labels must have shape ({x.shape[0]},), got {y.shape}")
    b = None if bias is None else np.asarray(bias, dtype=np.float64)
    n_out = w.shape[0]
    xh = x if hessian_inputs is None else np.asarray(hessian_inputs, dtype=np.float64)

    def augmented(block: NDArray) -> NDArray:
        return block if b is None else np.hstack([block, np.ones((block.shape[0], 1))])

    def probabilities(block: NDArray) -> NDArray:
        z = block @ w.T + (0.0 if b is None else b)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    d = w.shape[1] + (0 if b is None else 1)
    dim = n_out * d
    hessian = np.zeros((dim, dim))
    n_train = xh.shape[0]
    for start in range(0, n_train, chunk_size):
        block = xh[start : start + chunk_size]
        p = probabilities(block)
        xa = augmented(block)
        for k in range(n_out):
            hessian[k * d : (k + 1) * d, k * d : (k + 1) * d] += (xa * p[:, k : k + 1]).T @ xa
        z = (p[:, :, None] * xa[:, None, :]).reshape(block.shape[0], dim)
        hessian -= z.T @ z
    hessian /= max(n_train, 1)
    hessian[np.diag_indices(dim)] += damping + l2
    try:
        factor = np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError as exc:
        raise InputError(f"the damped Hessian is not positive definite; raise damping (now {damping})") from exc
    from scipy.linalg import solve_triangular

    scores = np.empty(x.shape[0])
    for start in range(0, x.shape[0], chunk_size):
        block = x[start : start + chunk_size]
        r = probabilities(block)
        r[np.arange(block.shape[0]), y[start : start + chunk_size]] -= 1.0
        g = (r[:, :, None] * augmented(block)[:, None, :]).reshape(block.shape[0], dim)
        v = solve_triangular(factor, g.T, lower=True, check_finite=False)
        scores[start : start + chunk_size] = (v * v).sum(axis=0)
    return scores


def fit_noise_classifier(
    positives: ArrayLike, negatives: ArrayLike, *, l2: float = 1e-3, max_iter: int = 50
) -> tuple[NDArray[np.float64], float, NDArray[np.float64], NDArray[np.float64]]:
    """Logistic regression of "flipped" (1) against "kept" (0) on dynamics features.

    The noise classifier of Swayamdipta et al. (2020, Sec. 5): flip the labels of some
    items on purpose, record their data-map coordinates, train a classifier to tell them
    from as many unflipped items, and score the real items with it. Fitted by Newton's
    method on standardised features with a small ridge ``l2``.

    Parameters
    ----------
    positives : array of float, shape (n_pos, n_features)
    negatives : array of float, shape (n_neg, n_features)

    Returns
    -------
    coef, intercept, mean, scale
        ``P(flipped | f) = sigmoid(((f - mean) / scale) @ coef + intercept)``.

    >>> coef, b, mu, sd = fit_noise_classifier([[0.1], [0.2]], [[0.9], [0.8]])
    >>> bool(coef[0] < 0)
    True
    """
    pos = np.atleast_2d(np.asarray(positives, dtype=np.float64))
    neg = np.atleast_2d(np.asarray(negatives, dtype=np.float64))
    if pos.shape[0] == 0 or neg.shape[0] == 0:
        raise InputError("the noise classifier needs at least one flipped and one kept item")
    f = np.vstack([pos, neg])
    t = np.r_[np.ones(pos.shape[0]), np.zeros(neg.shape[0])]
    mean = f.mean(axis=0)
    scale = f.std(axis=0)
    scale[scale == 0] = 1.0
    a = np.hstack([(f - mean) / scale, np.ones((f.shape[0], 1))])
    theta = np.zeros(a.shape[1])
    ridge = np.full(a.shape[1], l2 * f.shape[0])
    ridge[-1] = 0.0
    for _ in range(max_iter):
        q = 1.0 / (1.0 + np.exp(-(a @ theta)))
        grad = a.T @ (q - t) + ridge * theta
        hess = (a * (q * (1 - q))[:, None]).T @ a + np.diag(ridge) + 1e-9 * np.eye(a.shape[1])
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta[:-1], float(theta[-1]), mean, scale


def rank_average(scores: list[NDArray[np.float64]]) -> NDArray[np.float64]:
    """Mean of the scores' normalised ranks (ties share their mean rank), in (0, 1].

    >>> rank_average([np.array([0.1, 0.5, 0.3]), np.array([1.0, 3.0, 2.0])]).round(3).tolist()
    [0.333, 1.0, 0.667]
    """
    from scipy.stats import rankdata

    if not scores:
        raise InputError("rank_average needs at least one score")
    n = scores[0].shape[0]
    return np.mean([rankdata(s) / max(n, 1) for s in scores], axis=0)


def check_pred_probs(pred_probs: ArrayLike, labels: ArrayLike, n_classes: int | None = None) -> NDArray[np.float64]:
    """Validate given predicted probabilities against the labels; a float64 copy, rows renormalised.

    Parameters
    ----------
    pred_probs : array of float, shape (n_items, n_classes)
        One row of probabilities per item, in the order of ``labels``; rows sum to 1
        (within 1e-3; they are divided by their sum afterwards).
    labels : array of int, shape (n_items,)
        Codes in ``[0, n_classes)``.
    n_classes : int, optional
        When given, the number of columns ``pred_probs`` must have.

    Raises
    ------
    InputError
        Wrong shape, a column count other than ``n_classes``, fewer than 2 columns,
        non-finite or negative entries, rows that do not sum to 1 (logits or scores
        instead of probabilities), labels outside ``[0, n_classes)``. The message names
        the first offending items and says how to fix them.
    """
    y = np.asarray(labels)
    p = np.asarray(pred_probs)
    n = y.shape[0] if y.ndim == 1 else -1
    if p.ndim != 2 or p.shape[0] != n:
        raise InputError(
            f"pred_probs must have shape (n_items, n_classes) = ({n}, n_classes), got {p.shape}: "
            "pass one row of predicted probabilities per item, in the order of labels"
        )
    if not np.issubdtype(p.dtype, np.number):
        raise InputError(f"pred_probs must be numbers, got dtype {p.dtype}")
    if n_classes is not None and p.shape[1] != n_classes:
        raise InputError(
            f"pred_probs has {p.shape[1]} columns but n_classes is {n_classes}: "
            "give one column per class, in the order of the class codes"
        )
    if p.shape[1] < 2:
        raise InputError(f"pred_probs needs a column per class and at least 2 classes, got {p.shape[1]} column(s)")
    p = finite_rows(p, "pred_probs", "predict them again or drop them")
    bad = np.flatnonzero((p < 0).any(axis=1))
    if bad.size:
        raise InputError(
            f"{bad.size} items have negative pred_probs (items {describe_examples(bad.tolist())}): "
            "these look like logits; pass scipy.special.softmax(logits, axis=1)"
        )
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_TOL)
    if bad.size:
        shown = ", ".join(f"{sums[i]:.4g}" for i in bad[:3])
        raise InputError(
            f"rows of pred_probs must sum to 1: {bad.size} do not (items {describe_examples(bad.tolist())}; "
            f"sums {shown}); pass probabilities (softmax of logits), or divide each row by its sum"
        )
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"labels must be integer class codes, got dtype {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= p.shape[1]))
    if bad.size:
        raise InputError(
            f"{bad.size} labels are outside [0, {p.shape[1]}), the columns of pred_probs "
            f"(items {describe_examples(bad.tolist())}); encode classes as 0..n_classes-1"
        )
    return p / sums[:, None]


@dataclass(frozen=True)
class GivenScores:
    """Scores and flags of given out-of-fold probabilities (see :func:`given_scores`).

    Attributes
    ----------
    score : ndarray of float64, shape (n_items,)
        Higher means more likely mislabeled, in [0, 1].
    flags : ndarray of bool, shape (n_items,)
        Items whose confident class exists and differs from their label.
    thresholds : ndarray of float64, shape (n_classes,)
        ``t_k``, the mean probability of class ``k`` over the items labelled ``k``
        (NaN for a class no item carries).
    confident_class : ndarray of int64, shape (n_items,)
        The most probable class ``k`` with ``p_k >= t_k``; -1 when no class reaches its threshold.
    """

    score: NDArray[np.float64]
    flags: NDArray[np.bool_]
    thresholds: NDArray[np.float64]
    confident_class: NDArray[np.int64]


def given_scores(pred_probs: ArrayLike, labels: ArrayLike, *, score: str = "margin") -> GivenScores:
    """Rank and flag items by predicted probabilities a model gave without seeing them.

    ``pred_probs`` must be out-of-fold (each row predicted by a model not trained on that
    item): an in-sample model has fitted the wrong labels too. For item ``i`` with label
    ``y`` and probabilities ``p``:

    * ``score="margin"`` (the default): the normalised margin
      ``(1 + max_{k != y} p_k - p_y) / 2``. It is high when another class is both likely and
      likelier than the label, so it separates confusions between two classes (the errors
      raters make between similar classes) from items the model is merely unsure about.
    * ``score="self_confidence"``: ``1 - p_y``, the probability the model takes from the label.

    Both are label-quality scores of Kuan & Mueller ("Model-agnostic label quality scoring
    to detect real-world label errors", ICML DataPerf workshop, 2022); for two classes they
    rank alike.

    Flag rule, in the spirit of confident learning (Northcutt, Jiang & Chuang, JAIR 2021):
    a per-class threshold ``t_k = mean p_k`` over the items labelled ``k`` (how confident the
    model is, on average, in its own class ``k``); item ``i`` confidently belongs to the
    classes with ``p_ik >= t_k`` and its confident class is the likeliest of those. Flagged:
    items whose confident class exists and is not their label (the off-diagonal of the
    confident joint). Per-class thresholds let a class the model is seldom sure about
    still claim items.

    Parameters
    ----------
    pred_probs : array of float, shape (n_items, n_classes)
        Out-of-fold probabilities, rows summing to 1 (see :func:`check_pred_probs`).
    labels : array of int, shape (n_items,)
        The labels to audit, codes in ``[0, n_classes)``.
    score : {"margin", "self_confidence"}

    Returns
    -------
    GivenScores

    Raises
    ------
    InputError
        Bad shapes or values (:func:`check_pred_probs`), an unknown ``score``.

    Notes
    -----
    Cost ``O(n_items * n_classes)``.

    >>> p = [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.8, 0.2]]
    >>> s = given_scores(p, [0, 0, 1, 1])
    >>> s.score.round(2).tolist(), s.thresholds.round(2).tolist()
    ([0.1, 0.4, 0.2, 0.8], [0.75, 0.5])
    >>> s.confident_class.tolist(), s.flags.tolist()     # item 1 reaches no threshold
    ([0, -1, 1, 0], [False, False, False, True])
    """
    if score not in GIVEN_SCORES:
        raise InputError(f"score must be one of {list(GIVEN_SCORES)}, got {score!r}")
    p = check_pred_probs(pred_probs, labels)
    y = np.asarray(labels, dtype=np.int64)
    n, k = p.shape
    rows = np.arange(n)
    p_label = p[rows, y]
    if score == "margin":
        others = p.copy()
        others[rows, y] = -np.inf
        value = (1.0 + others.max(axis=1) - p_label) / 2.0
    else:
        value = 1.0 - p_label
    counts = np.bincount(y, minlength=k)
    sums = np.zeros(k)
    np.add.at(sums, y, p_label)
    with np.errstate(invalid="ignore", divide="ignore"):
        thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    # NaN thresholds (classes no item carries) never compare true: nobody confidently belongs there
    above = np.where(p >= thresholds[None, :], p, -np.inf)
    confident = np.where(np.isfinite(above.max(axis=1)), above.argmax(axis=1), -1).astype(np.int64)
    flags = (confident >= 0) & (confident != y)
    return GivenScores(np.clip(value, 0.0, 1.0), flags, thresholds, confident)
