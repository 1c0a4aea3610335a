"""``find_mislabeled``: every training-dynamics method in one call."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._common import RandomState, as_generator, check_features, check_positive
from .._errors import InputError, StatisticsWarning, describe_examples
from ._report import MislabeledReport
from ._scores import (
    GIVEN_SCORES,
    aum_threshold,
    check_pred_probs,
    data_map,
    fit_noise_classifier,
    forgetting_events,
    given_scores,
    rank_average,
    self_influence,
)

__all__ = [
    "ALL_METHODS",
    "DEFAULT_COMBINE",
    "DEFAULT_METHODS",
    "GIVEN",
    "SMALL_DATA_ITEMS",
    "find_mislabeled",
    "ncv_plan",
]

#: the methods that train a model on the features
ALL_METHODS = ("datamaps", "aum", "forgetting", "ncv", "incv", "influence", "noise_classifier")
DEFAULT_METHODS = ("datamaps", "aum", "forgetting", "ncv", "influence", "noise_classifier")
#: the method that scores the caller's own predicted probabilities (``pred_probs=``)
GIVEN = "given"
#: the combined ranking averages the ranks of these scores (those that ran); with
#: ``pred_probs`` the given score joins them as a second view of equal weight
DEFAULT_COMBINE = ("aum", "ncv")
_MIN_EPOCHS = 3  # the fewest epochs early stopping keeps: variability and forgetting need several
#: up to this many items NCV also fits its logistic-regression candidate (``ncv_plan``)
SMALL_DATA_ITEMS = 25_000
_LOGISTIC_FOLDS = 5  # the candidate's folds at least (scikit-learn's and cleanlab's default)
_LOGISTIC_MAX_ITER = 100  # L-BFGS iterations per fold: scikit-learn's default budget
_DYNAMICS = {"datamaps", "aum", "forgetting", "influence", "noise_classifier"}


def _check_inputs(features: ArrayLike | None, labels: ArrayLike, n_classes: int | None, pred_probs: ArrayLike | None):
    if features is None and pred_probs is None:
        raise InputError(
            "find_mislabeled needs features (n_items, n_features) to train on, "
            "pred_probs (n_items, n_classes) to score, or both"
        )
    y = np.asarray(labels)
    x = None
    if features is not None:
        x = check_features(features, None)
        if y.shape != (x.shape[0],):
            raise InputError(f"labels must have shape (n_items,) = ({x.shape[0]},), got {y.shape}")
    elif y.ndim != 1:
        raise InputError(f"labels must have shape (n_items,), got {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"labels must be integer class codes, got dtype {y.dtype}")
    if y.shape[0] < 4:
        raise InputError(f"need at least 4 items to find mislabeled ones, got {y.shape[0]}")
    probs = None if pred_probs is None else check_pred_probs(pred_probs, y, n_classes)
    y = y.astype(np.int64)
    if probs is not None:
        k = probs.shape[1]
    else:
        k = int(y.max()) + 1 if n_classes is None else int(n_classes)
    bad = np.flatnonzero((y < 0) | (y >= k))
    if bad.size:
        raise InputError(
            f"{bad.size} labels are outside [0, {k}) (items {describe_examples(bad.tolist())}); "
            "encode classes as 0..n_classes-1"
        )
    if k < 2:
        raise InputError("labels hold a single class: there is nothing to tell apart")
    return x, y, k, probs


def _resolve_methods(methods: Sequence[str] | None, has_features: bool, has_probs: bool) -> tuple[str, ...]:
    """The methods to run: the defaults that the inputs allow, or the caller's (checked)."""
    if methods is None:
        chosen = (DEFAULT_METHODS if has_features else ()) + ((GIVEN,) if has_probs else ())
    else:
        chosen = (methods,) if isinstance(methods, str) else tuple(dict.fromkeys(methods))
        unknown = [m for m in chosen if m not in ALL_METHODS and m != GIVEN]
        if unknown or not chosen:
            raise InputError(f"unknown methods {unknown}; choose from {[*ALL_METHODS, GIVEN]}")
        if has_probs and GIVEN not in chosen:
            chosen += (GIVEN,)
    if GIVEN in chosen and not has_probs:
        raise InputError(
            "method 'given' scores predicted probabilities you pass: give pred_probs= (n_items, n_classes) "
            "out-of-fold probabilities, or drop 'given' from methods"
        )
    trained = [m for m in chosen if m != GIVEN]
    if trained and not has_features:
        raise InputError(
            f"methods {trained} train a model on features, but features is None: pass features "
            "(n_items, n_features), or methods=('given',) to score pred_probs alone"
        )
    return chosen


def _combine(
    scores: dict[str, NDArray[np.float64]], flags: dict[str, NDArray[np.bool_]], used: list[str]
) -> tuple[NDArray[np.float64], NDArray[np.bool_] | None]:
    """The combined score and flag of the ``used`` members (see ``find_mislabeled``)."""
    trained = [m for m in used if m != GIVEN]
    views = [rank_average([scores[m] for m in trained])] if trained else []
    if GIVEN in used:
        views.append(rank_average([scores[GIVEN]]))
    combined = views[0] if len(views) == 1 else (views[0] + views[1]) / 2.0
    voters = [m for m in trained if m in flags]
    if GIVEN in used and voters:
        # two views of equal weight: the given flag holds half, the trained voters share the other half
        votes = len(voters) * flags[GIVEN].astype(np.int64) + np.sum([flags[m] for m in voters], axis=0)
        return combined, votes > len(voters)
    voters = [m for m in used if m in flags]
    if not voters:
        return combined, None
    return combined, 2 * np.sum([flags[m] for m in voters], axis=0) > len(voters)


def _standardise(x: NDArray[np.float64], mode) -> NDArray[np.float32]:
    if not mode:
        return x.astype(np.float32)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    return ((x - x.mean(axis=0)) / scale).astype(np.float32)


def find_mislabeled(
    features: ArrayLike | None,
    labels: ArrayLike,
    *,
    pred_probs: ArrayLike | None = None,
    given_score: str = "margin",
    methods: Sequence[str] | None = None,
    combine: Sequence[str] | None = None,
    n_classes: int | None = None,
    epochs: int = 20,
    hidden_sizes: Sequence[int] = (128,),
    batch_size: int | None = None,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    n_folds: int = 2,
    ncv_logistic: bool | None = None,
    incv_iterations: int = 4,
    incv_remove_ratio: float = 0.5,
    flip_share: float = 0.05,
    damping: float = 0.01,
    standardise: bool = True,
    early_stopping: bool = True,
    patience: int = 3,
    device: str | None = "auto",
    n_threads: int | None = 1,
    random_state: RandomState = 0,
) -> MislabeledReport:
    """Rank and flag items whose label a model trained on the rest cannot reconcile.

    Two inputs, either or both: ``features`` for galton to train its own models on, and
    ``pred_probs``, out-of-fold probabilities of the caller's own model, scored directly
    as the method ``given``.

    A small head (linear with ``hidden_sizes=()``, else an MLP with ReLU) is trained on
    ``(features, labels)`` with Adam and mean cross-entropy; the training forward pass
    records, per item and presentation, the probability of the training label, the logit
    margin and correctness. From those:

    * ``datamaps`` (Swayamdipta et al., EMNLP 2020): score ``1 - confidence``, confidence
      being the mean probability of the label over epochs; flag ``confidence < 0.5``
      and ``correctness < 0.5`` (hard to learn and mostly misclassified).
    * ``aum`` (Pleiss et al., NeurIPS 2020): score ``-AUM``, the negated mean margin. The
      paper's threshold samples: items are split into halves ``H0, H1``; run ``r`` moves
      ``floor(N / (C + 1))`` items of the other half to a fake class ``C`` (0-based) and
      scores the items of ``H_r``, so every item is scored exactly once as a
      non-threshold item. Flag ``AUM <= alpha_r``, the 99th percentile of run ``r``'s
      threshold-sample AUM.
    * ``forgetting`` (Toneva et al., ICLR 2019): transitions correct -> incorrect between
      consecutive presentations; never-learned items score above every count (and are
      reported in ``never_learned``); ties go by the share of misclassified presentations.
      Flag: never learned.
    * ``influence`` (Koh & Liang, ICML 2017): self-influence ``g^T H^{-1} g`` of the final
      linear layer with its exact Hessian damped by ``damping``, an approximation of the
      leave-one-out rise in the item's own loss. No flag rule.
    * ``noise_classifier`` (Swayamdipta et al., Sec. 5): in each run ``flip_share * N`` items of
      the other half get a random wrong class; a logistic regression on (confidence,
      variability) tells them from as many items of ``H_r``, then scores ``H_r``. Flag
      ``P(flipped) > 0.5``.
    * ``ncv`` (Chen et al., ICML 2019): ``n_folds``-fold noisy cross-validation of the head
      (the paper's 2), score ``1 - p_oof(label)``, flag ``argmax p_oof != label``. Up to
      ``SMALL_DATA_ITEMS`` (25,000) items a second candidate runs too (:func:`ncv_plan`): an
      L2 logistic regression solved by L-BFGS (scikit-learn's ``C=1`` objective) on 5 folds
      cut from the same shuffle: a convex fit, solved rather than stopped early, and cheap
      enough for 5 fits of 80% of the items each (cleanlab's default). ``p_oof`` is the candidate
      of the lower mean held-out cross-entropy of the given labels (the head's at ``E*``,
      below), one choice for all items so that the scores stay comparable. Features nearly
      linear in the classes (another model's log-probabilities) pick the logistic regression.
    * ``incv`` (Chen et al. 2019, Algorithm 1; not run by default): iterative NCV that grows
      a selected clean set ``S`` and removes the ``incv_remove_ratio * |S_new|`` highest-loss
      disagreeing items each round. Score: tier (0 selected, 1 still candidate, 2 removed)
      plus ``loss / (1 + loss)`` of its last held-out evaluation; flag: not selected.
    * ``given`` (with ``pred_probs``; :func:`given_scores`): the normalised margin
      ``(1 + max_{k != y} p_k - p_y) / 2`` of the given probabilities (``given_score=
      "self_confidence"``: ``1 - p_y``). Flag, in the spirit of confident learning
      (Northcutt et al., JAIR 2021): per-class thresholds ``t_k = mean p_k`` over the items
      labelled ``k``; flagged when the likeliest class with ``p_k >= t_k`` exists and is not
      the label. Needs no training: with ``features=None`` it is the only method.
    * ``combined``: the mean normalised rank of the ``combine`` scores that ran. By default
      AUM and NCV: one in-sample view (how the label fares while the model learns it) and
      one held-out view (what a model that never saw the item predicts), which err on
      different items (within 0.006 AUROC of the best single score on every feature set of
      ``benchmarks/results/dynamics.md``, and within 0.005 with the given view on its
      pred-probs sets). Averaging in Data Maps and the noise classifier
      too, both functions of the same label probabilities as AUM, weighted that one view
      three times. Its flag: a strict majority of the flag rules of those scores (both, for
      two). With ``pred_probs`` the given score joins by default as a second view of equal
      weight, the caller's model against galton's: ``combined = (rank(given) +
      rank_average(aum, ncv)) / 2``, and its flag needs more than half the weight: the given
      flag and at least one of the trained members' flags (the trained voters share their
      half equally). Averaging the given rank as a third equal member let the two trained
      views, weaker on the pred-probs sets of the benchmark, outvote it.

    Early stopping (``early_stopping=True``, the default): the NCV folds run first, each
    evaluating its held-out fold after every epoch and stopping after ``patience`` epochs
    without a lower held-out cross-entropy (of the noisy labels: no clean labels are
    needed). ``E*``, the epoch of the lowest mean held-out loss (at least 3), is the length
    of every later run, and NCV's scores are its out-of-fold probabilities after ``E*``
    epochs. A model that memorises the noisy labels starts losing on held-out items, so
    the dynamics are recorded before memorisation, where the papers' scores rank best;
    ``epochs`` is the most it may train. The dynamics runs (two with ``aum`` or
    ``noise_classifier``, else one) train on all items; the scores of ``H_r`` come from run
    ``r``. Use :meth:`MislabeledReport.flag_top` for a flag budget: the papers' fixed
    thresholds (AUM's in particular) flag more than the true errors.

    Parameters
    ----------
    features : array of float, shape (n_items, n_features), or None
        Standardised per column first unless ``standardise=False``. None: only ``given``
        runs (``pred_probs`` is then required); no model is trained and torch is not loaded.
    labels : array of int, shape (n_items,)
        The labels to audit (consensus or single labels), codes in ``[0, n_classes)``.
    pred_probs : array of float, shape (n_items, n_classes), optional
        Keyword-only. Predicted probabilities of your own model, one row per item in the
        order of ``labels``, rows summing to 1, and **out-of-fold**: each row from a model
        that did not train on that item (cross-validation), else it has fitted the wrong
        labels too. Adds the method ``given``; the other methods are unaffected (same
        ``random_state``, same scores).
    given_score : {"margin", "self_confidence"}
        What ``given`` ranks by (see :func:`given_scores`).
    methods : sequence of str, optional
        Any of ``ALL_METHODS`` and ``"given"``. Default: ``DEFAULT_METHODS`` when there are
        features, plus ``"given"`` when there are ``pred_probs`` (which always add it).
    combine : sequence of str, optional
        Scores the combined ranking averages (those not run are skipped); default
        ``DEFAULT_COMBINE`` plus ``"given"`` when it runs. ``("given",)`` ranks by the given
        probabilities alone.
    n_classes : int, optional
        Default ``pred_probs.shape[1]``, else ``labels.max() + 1``.
    epochs, hidden_sizes, batch_size, learning_rate, weight_decay
        The head and its training (Adam); ``epochs`` is the maximum when early stopping.
        ``batch_size=None`` picks about 100 steps per epoch (32 to 512). ``weight_decay``
        also enters the influence Hessian.
    n_folds : int
        Folds of the head's NCV and of early stopping (the paper's 2 by default). INCV always
        splits in halves, as in the paper.
    ncv_logistic : bool, optional
        Run NCV's logistic-regression candidate (above) on ``max(n_folds, 5)`` folds (at most
        half the items) and keep it when its held-out loss is lower. Default: up to 25,000
        items. Its folds come from the head's shuffle, so it draws nothing from
        ``random_state``: every other score is the same with and without it.
    early_stopping : bool
        Pick the number of epochs from the NCV folds' held-out loss (above); the folds run
        even when ``"ncv"`` is not among ``methods``. ``False``: every run trains ``epochs``.
    patience : int
        Epochs without a lower held-out loss before a fold stops.
    incv_iterations, incv_remove_ratio : int, float
        INCV's rounds and removal ratio.
    flip_share : float
        Share of items flipped on purpose per run for the noise classifier.
    damping : float
        Added to the influence Hessian's diagonal.
    device : str or None
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ...
    n_threads : int or None
        torch CPU threads during the call (restored afterwards); None leaves torch's setting.
    random_state : int, numpy Generator or None
        Seeds the splits, flips, weights and batch order: same seed, same scores (on CPU).

    Returns
    -------
    MislabeledReport

    Raises
    ------
    InputError
        Bad shapes, non-finite features, labels outside ``[0, n_classes)``, unknown methods;
        neither features nor ``pred_probs``; ``pred_probs`` of the wrong shape, with
        ``n_classes`` columns missing, negative or non-finite, or rows not summing to 1
        (logits); ``"given"`` without ``pred_probs``; trained methods without features.

    Warns
    -----
    StatisticsWarning
        A class with fewer than two items.

    Notes
    -----
    Cost: about 3 to 4 training runs (NCV folds that each see ``(n_folds - 1) / n_folds``
    of the data, up to ``epochs`` epochs plus one forward pass of the held-out fold per
    epoch; then two dynamics runs of ``E*`` epochs); up to 25,000 items the logistic
    candidate adds at most 100 L-BFGS iterations on each of its 5 folds, each about two
    ``O(N d C)`` matrix products (for ``h`` hidden units about ``C / h`` of a head epoch's
    products); INCV adds
    ``2 * incv_iterations`` runs on up to all items. The influence Hessian costs
    ``O(N (C d)^2 + (C d)^3)`` for ``d`` units before the last layer.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.vstack([rng.normal(-2, 1, (100, 2)), rng.normal(2, 1, (100, 2))])
    >>> y = np.repeat([0, 1], 100); y[:5] = 1                      # five planted errors
    >>> report = find_mislabeled(x, y, epochs=5, methods=("datamaps",), random_state=0)
    >>> sorted(report.ranking("datamaps")[:5].tolist())
    [0, 1, 2, 3, 4]

    Given out-of-fold probabilities alone (numpy only, no training):

    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9], [0.95, 0.05]])
    >>> report = find_mislabeled(None, [0, 0, 1, 1, 1], pred_probs=p)
    >>> report.methods, int(report.ranking()[0]), report.flags["given"].tolist()
    (('given', 'combined'), 4, [False, False, False, False, True])
    """
    x, y, n_cls, probs = _check_inputs(features, labels, n_classes, pred_probs)
    methods = _resolve_methods(methods, x is not None, probs is not None)
    if given_score not in GIVEN_SCORES:
        raise InputError(f"given_score must be one of {list(GIVEN_SCORES)}, got {given_score!r}")
    n = y.shape[0]
    check_positive("epochs", epochs, integer=True)
    check_positive("patience", patience, integer=True)
    if batch_size is None:
        batch_size = auto_batch_size(n)
    check_positive("batch_size", batch_size, integer=True)
    check_positive("learning_rate", learning_rate)
    check_positive("weight_decay", weight_decay, allow_zero=True)
    check_positive("damping", damping, allow_zero=True)
    check_positive("n_folds", n_folds, integer=True)
    if n_folds < 2:
        raise InputError(f"n_folds must be at least 2, got {n_folds}")
    if n_folds > n:
        raise InputError(f"n_folds must be at most n_items = {n}, got {n_folds}")
    if ncv_logistic is not None and not isinstance(ncv_logistic, (bool, np.bool_)):
        raise InputError(f"ncv_logistic must be True, False or None, got {ncv_logistic!r}")
    n_folds, logistic_folds = ncv_plan(n, n_folds=n_folds, logistic=ncv_logistic)
    if not 0 <= flip_share < 0.5:
        raise InputError(f"flip_share must lie in [0, 0.5), got {flip_share!r}")
    hidden_sizes = tuple(int(h) for h in hidden_sizes)
    if any(h < 1 for h in hidden_sizes):
        raise InputError(f"hidden_sizes must be positive, got {hidden_sizes}")
    counts = np.bincount(y, minlength=n_cls)
    if (counts < 2).any():
        warnings.warn(
            f"classes {np.flatnonzero(counts < 2).tolist()} have fewer than 2 items: their scores mean little",
            StatisticsWarning,
            stacklevel=2,
        )

    rng = as_generator(random_state)
    meta: dict[str, Any] = {"device": None, "n_threads": n_threads, "seconds": {}, "epoch_seconds": {}}
    scores: dict[str, NDArray[np.float64]] = {}
    flags: dict[str, NDArray[np.bool_]] = {}
    nan = np.full(n, np.nan)
    coords = {"confidence": nan.copy(), "variability": nan.copy(), "correctness": nan.copy()}
    region = np.full(n, "", dtype="<U13")
    aum_values = nan.copy()
    thresholds: list[float] = []
    n_forgotten = np.zeros(n, dtype=np.int64)
    never = np.zeros(n, dtype=bool)
    oof = np.zeros((0, n_cls))
    meta["epochs_used"] = 0

    if x is not None and any(m != GIVEN for m in methods):
        from . import _trainer  # torch, lazily

        xs = _standardise(x, standardise)
        device_ = _trainer.resolve_device(device)
        meta["device"] = str(device_)
        train = dict(
            hidden_sizes=hidden_sizes,
            batch_size=int(batch_size),
            learning_rate=float(learning_rate),
            weight_decay=float(weight_decay),
            device=device_,
        )
        with _trainer.torch_settings(n_threads):
            run_epochs = int(epochs)
            if "ncv" in methods or early_stopping:
                t0 = time.perf_counter()
                oof_epochs, oof_logistic = _noisy_cross_validation(
                    xs,
                    y,
                    n_cls,
                    n_folds,
                    rng,
                    epochs,
                    train,
                    patience=patience if early_stopping else None,
                    logistic_folds=logistic_folds if "ncv" in methods else 0,
                )
                held_loss = -np.log(np.clip(oof_epochs[:, np.arange(n), y], 1e-12, None)).mean(axis=1)
                meta["held_out_loss"] = held_loss.tolist()
                if early_stopping:
                    run_epochs = max(int(np.argmin(held_loss)) + 1, min(_MIN_EPOCHS, int(epochs)))
                # a fold that stopped (patience) before _MIN_EPOCHS has no later predictions: its last
                oof = oof_epochs[min(run_epochs, oof_epochs.shape[0]) - 1].astype(np.float64)
                oof /= oof.sum(axis=1, keepdims=True)
                meta["ncv_model"] = "head"
                if oof_logistic is not None:
                    losses = {"head": _mean_loss(oof, y), "logistic": _mean_loss(oof_logistic, y)}
                    meta["ncv_held_out_loss"] = losses
                    meta["ncv_logistic_folds"] = logistic_folds
                    if losses["logistic"] < losses["head"]:
                        oof, meta["ncv_model"] = oof_logistic, "logistic"
                meta["seconds"]["ncv"] = time.perf_counter() - t0
                if "ncv" in methods:
                    scores["ncv"] = 1.0 - oof[np.arange(n), y]
                    flags["ncv"] = oof.argmax(axis=1) != y
            meta["epochs_used"] = run_epochs
            if _DYNAMICS & set(methods):
                t0 = time.perf_counter()
                per_item = _dynamics_runs(xs, y, n_cls, methods, rng, run_epochs, flip_share, damping, train, meta)
                meta["seconds"]["dynamics"] = time.perf_counter() - t0
                coords.update({k: per_item[k] for k in coords})
                region = per_item["region"]
                if "datamaps" in methods:
                    scores["datamaps"] = 1.0 - per_item["confidence"]
                    flags["datamaps"] = (per_item["confidence"] < 0.5) & (per_item["correctness"] < 0.5)
                if "aum" in methods:
                    aum_values = per_item["aum"]
                    thresholds = per_item["aum_thresholds"]
                    scores["aum"] = -aum_values
                    flags["aum"] = per_item["aum_flag"]
                if "forgetting" in methods:
                    scores["forgetting"] = per_item["forgetting"]
                    flags["forgetting"] = per_item["never_learned"]
                n_forgotten = per_item["n_forgotten"]
                never = per_item["never_learned"]
                if "influence" in methods:
                    scores["influence"] = per_item["influence"]
                if "noise_classifier" in methods:
                    scores["noise_classifier"] = per_item["noise_classifier"]
                    flags["noise_classifier"] = per_item["noise_classifier"] > 0.5
            if "incv" in methods:
                t0 = time.perf_counter()
                scores["incv"], flags["incv"] = _incv(
                    xs, y, n_cls, incv_iterations, incv_remove_ratio, rng, run_epochs, train
                )
                meta["seconds"]["incv"] = time.perf_counter() - t0

    if GIVEN in methods and probs is not None:  # _resolve_methods: "given" comes with pred_probs
        t0 = time.perf_counter()
        given = given_scores(probs, y, score=given_score)
        scores[GIVEN] = given.score
        flags[GIVEN] = given.flags
        meta["given_thresholds"] = [None if np.isnan(t) else float(t) for t in given.thresholds]
        meta["seconds"][GIVEN] = time.perf_counter() - t0

    if combine is None:
        members = (*DEFAULT_COMBINE, GIVEN)
    else:
        members = (combine,) if isinstance(combine, str) else tuple(combine)
    used = [m for m in members if m in scores] or list(scores)
    scores["combined"], combined_flags = _combine(scores, flags, used)
    if combined_flags is not None:
        flags["combined"] = combined_flags
    meta["combined_from"] = used

    params = {
        "methods": list(methods),
        "combine": list(members),
        "pred_probs": probs is not None,
        "given_score": given_score,
        "n_classes": n_cls,
        "epochs": int(epochs),
        "hidden_sizes": list(hidden_sizes),
        "batch_size": int(batch_size),
        "learning_rate": float(learning_rate),
        "weight_decay": float(weight_decay),
        "n_folds": int(n_folds),
        "ncv_logistic": None if ncv_logistic is None else bool(ncv_logistic),
        "ncv_logistic_folds": int(logistic_folds),
        "incv_iterations": int(incv_iterations),
        "incv_remove_ratio": float(incv_remove_ratio),
        "flip_share": float(flip_share),
        "damping": float(damping),
        "standardise": bool(standardise),
        "early_stopping": bool(early_stopping),
        "patience": int(patience),
        "device": device,
        "random_state": random_state if isinstance(random_state, (int, type(None))) else "Generator",
    }
    return MislabeledReport(
        scores=scores,
        flags=flags,
        labels=y.astype(np.int32),
        region=region,
        aum=aum_values,
        aum_thresholds=tuple(thresholds),
        n_forgotten=n_forgotten,
        never_learned=never,
        oof_probabilities=oof,
        params=params,
        metadata=meta,
        **coords,
    )


def auto_batch_size(n_items: int) -> int:
    """About 100 steps per epoch: a power of two in [32, 512].

    >>> auto_batch_size(700), auto_batch_size(10_000), auto_batch_size(100_000)
    (32, 128, 512)
    """
    return int(min(512, max(32, 2 ** round(np.log2(max(n_items, 1) / 100)))))


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**62))


def threshold_plan(
    n_items: int, n_classes: int, rng: np.random.Generator, *, aum: bool = True, flip_share: float = 0.0
) -> list[dict[str, NDArray[np.int64]]]:
    """The two runs of the AUM threshold procedure (and the noise classifier's flips).

    Items are split at random into halves ``H0, H1``. Run ``r`` scores ``H_r``; its
    ``floor(N / (C + 1))`` threshold items and ``round(flip_share * N)`` flipped items are
    disjoint draws from the other half. Returns, per run, ``scored``, ``threshold`` and
    ``flipped`` item positions.

    >>> plan = threshold_plan(10, 2, np.random.default_rng(0))
    >>> [len(p["threshold"]) for p in plan], sorted(np.r_[plan[0]["scored"], plan[1]["scored"]].tolist())
    ([3, 3], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """
    order = rng.permutation(n_items)
    halves = (order[: (n_items + 1) // 2], order[(n_items + 1) // 2 :])
    n_threshold = n_items // (n_classes + 1) if aum else 0
    plan = []
    for r in (0, 1):
        other = rng.permutation(halves[1 - r])
        n_thr = min(n_threshold, other.size)
        n_flip = min(round(flip_share * n_items), other.size - n_thr)
        plan.append(
            {
                "scored": np.sort(halves[r]),
                "threshold": np.sort(other[:n_thr]),
                "flipped": np.sort(other[n_thr : n_thr + n_flip]),
            }
        )
    return plan


def _dynamics_runs(xs, y, n_cls, methods, rng, epochs, flip_share, damping, train, meta) -> dict[str, Any]:
    from . import _trainer

    n = xs.shape[0]
    use_aum = "aum" in methods
    use_nc = "noise_classifier" in methods
    if use_aum or use_nc:
        plan = threshold_plan(n, n_cls, rng, aum=use_aum, flip_share=flip_share if use_nc else 0.0)
    else:
        empty = np.zeros(0, dtype=np.int64)
        plan = [{"scored": np.arange(n), "threshold": empty, "flipped": empty}]
    out: dict[str, Any] = {
        "confidence": np.full(n, np.nan),
        "variability": np.full(n, np.nan),
        "correctness": np.full(n, np.nan),
        "region": np.full(n, "", dtype="<U13"),
        "aum": np.full(n, np.nan),
        "aum_flag": np.zeros(n, dtype=bool),
        "aum_thresholds": [],
        "forgetting": np.zeros(n),
        "n_forgotten": np.zeros(n, dtype=np.int64),
        "never_learned": np.zeros(n, dtype=bool),
        "influence": np.zeros(n),
        "noise_classifier": np.zeros(n),
    }
    meta["runs"] = []
    for r, run in enumerate(plan):
        run_labels = y.copy()
        n_outputs = n_cls
        if run["threshold"].size:
            run_labels[run["threshold"]] = n_cls
            n_outputs = n_cls + 1
        if run["flipped"].size:
            shift = rng.integers(1, n_cls, size=run["flipped"].size)
            run_labels[run["flipped"]] = (y[run["flipped"]] + shift) % n_cls
        head = _trainer.train_head(xs, run_labels, n_outputs, epochs=epochs, seed=_seed(rng), **train)
        rec = head.recording
        assert rec is not None
        s = run["scored"]
        dm = data_map(rec.label_probability[:, s], rec.correct[:, s])
        for key in ("confidence", "variability", "correctness", "region"):
            out[key][s] = getattr(dm, key)
        margins = rec.margin.astype(np.float64)
        aum = margins.mean(axis=0)
        out["aum"][s] = aum[s]
        if run["threshold"].size:
            alpha = aum_threshold(aum[run["threshold"]])
            out["aum_thresholds"].append(alpha)
            out["aum_flag"][s] = aum[s] <= alpha
        fg = forgetting_events(rec.correct[:, s])
        out["forgetting"][s] = fg.score
        out["n_forgotten"][s] = fg.n_forgotten
        out["never_learned"][s] = fg.never_learned
        if "influence" in methods:
            t0 = time.perf_counter()
            hidden = head.penultimate(xs)
            w, b = head.final_layer()
            out["influence"][s] = self_influence(
                hidden[s], run_labels[s], w, b, damping=damping, l2=train["weight_decay"], hessian_inputs=hidden
            )
            meta["seconds"][f"influence_{r}"] = time.perf_counter() - t0
        if run["flipped"].size:
            p = rec.label_probability.astype(np.float64)
            feats = np.c_[p.mean(axis=0), p.std(axis=0)]
            negatives = rng.choice(s, size=min(run["flipped"].size, s.size), replace=False)
            coef, intercept, mu, sd = fit_noise_classifier(feats[run["flipped"]], feats[negatives])
            z = ((feats[s] - mu) / sd) @ coef + intercept
            out["noise_classifier"][s] = 1.0 / (1.0 + np.exp(-z))
        meta["epoch_seconds"][f"run_{r}"] = rec.epoch_seconds
        meta["runs"].append(
            {
                "n_scored": int(s.size),
                "n_threshold": int(run["threshold"].size),
                "n_flipped": int(run["flipped"].size),
                "train_accuracy_last_epoch": float(rec.correct[-1].mean()),
            }
        )
    return out


def ncv_plan(n_items: int, *, n_folds: int = 2, logistic: bool | None = None) -> tuple[int, int]:
    """NCV's folds: ``(head_folds, logistic_folds)``, ``logistic_folds`` 0 without the candidate.

    The head keeps ``n_folds`` (Chen et al., ICML 2019: 2); its folds also pick the epochs of
    early stopping, and each fold costs a training run. The logistic-regression candidate
    runs when ``logistic`` is True, or by default (None) up to ``SMALL_DATA_ITEMS`` (25,000)
    items, where its fits cost seconds; at the 100,000 items of the scale benchmark the
    call is as without it. It takes ``max(n_folds, 5)`` folds, each fit learning from 80%
    of the items rather than half, but never more folds than half the items (at least 2
    items a fold) nor fewer than the head.

    >>> ncv_plan(10_000), ncv_plan(25_000), ncv_plan(25_001), ncv_plan(6)
    ((2, 5), (2, 5), (2, 0), (2, 3))
    >>> ncv_plan(10_000, n_folds=10), ncv_plan(10_000, logistic=False), ncv_plan(50_000, logistic=True)
    ((10, 10), (2, 0), (2, 5))
    """
    use = n_items <= SMALL_DATA_ITEMS if logistic is None else bool(logistic)
    if not use:
        return int(n_folds), 0
    return int(n_folds), int(max(n_folds, min(_LOGISTIC_FOLDS, n_items // 2)))


def _mean_loss(probabilities: NDArray, y: NDArray[np.int64]) -> float:
    """Mean cross-entropy of the labels ``y``, probabilities of shape (n_items, n_classes)."""
    p = probabilities[np.arange(y.size), y].astype(np.float64)
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def _folds(order: NDArray[np.int64], n_folds: int) -> NDArray[np.int64]:
    """Fold of every item: item ``order[i]`` goes to fold ``i % n_folds`` (sizes differ by at most 1)."""
    fold = np.empty(order.size, dtype=np.int64)
    fold[order] = np.arange(order.size) % n_folds
    return fold


def _noisy_cross_validation(
    xs, y, n_cls, n_folds, rng, epochs, train, *, patience=None, logistic_folds=0
) -> tuple[NDArray[np.float32], NDArray[np.float64] | None]:
    """Out-of-fold softmax of the head after every epoch, shape (n_epochs, n_items, n_classes).

    With ``patience`` each fold stops once its held-out loss has not improved for that many
    epochs; ``n_epochs`` is then the length of the shortest fold's run. With
    ``logistic_folds`` also the out-of-fold probabilities (n_items, n_classes) of a logistic
    regression on that many folds (else None), cut from the head's shuffle: item ``order[i]``
    is in head fold ``i % n_folds`` and logistic fold ``i % logistic_folds``, so the
    candidate draws nothing from ``rng``.
    """
    from . import _trainer
    from ._logistic import fit_logistic_regression, logistic_probabilities

    n = xs.shape[0]
    order = rng.permutation(n)
    fold = _folds(order, n_folds)
    per_fold = []
    for f in range(n_folds):
        held = fold == f
        head = _trainer.train_head(
            xs[~held],
            y[~held],
            n_cls,
            epochs=epochs,
            seed=_seed(rng),
            record=False,
            eval_features=xs[held],
            eval_labels=y[held],
            patience=patience,
            **train,
        )
        per_fold.append((held, head.eval_probabilities))
    oof_logistic = None
    if logistic_folds:
        oof_logistic = np.zeros((n, n_cls))
        fold = _folds(order, logistic_folds)
        solution = None
        for f in range(logistic_folds):
            held = fold == f
            # each fold starts from the previous fold's solution: they share most of their items
            solution = fit_logistic_regression(xs[~held], y[~held], n_cls, max_iter=_LOGISTIC_MAX_ITER, init=solution)
            oof_logistic[held] = logistic_probabilities(xs[held], *solution)
    n_epochs = min(p.shape[0] for _, p in per_fold)
    oof = np.zeros((n_epochs, xs.shape[0], n_cls), dtype=np.float32)
    for held, p in per_fold:
        oof[:, held] = p[:n_epochs]
    return oof, oof_logistic


def _incv(xs, y, n_cls, iterations, remove_ratio, rng, epochs, train):
    """INCV (Chen et al. 2019, Algorithm 1) on positions; returns (score, flag)."""
    from . import _trainer

    n = xs.shape[0]
    selected = np.zeros(n, dtype=bool)
    candidate = np.ones(n, dtype=bool)
    removed = np.zeros(n, dtype=bool)
    last_loss = np.zeros(n)
    for _ in range(int(iterations)):
        cand = rng.permutation(np.flatnonzero(candidate))
        if cand.size < 2:
            break
        halves = (cand[: cand.size // 2], cand[cand.size // 2 :])
        new_sel, new_rem = [], []
        for a, b in ((0, 1), (1, 0)):
            fit = np.r_[np.flatnonzero(selected), halves[a]]
            head = _trainer.train_head(xs[fit], y[fit], n_cls, epochs=epochs, seed=_seed(rng), record=False, **train)
            held = halves[b]
            p = head.predict_proba(xs[held])
            loss = -np.log(np.clip(p[np.arange(held.size), y[held]], 1e-12, None))
            last_loss[held] = loss
            agree = p.argmax(axis=1) == y[held]
            new_sel.append(held[agree])
            rest = held[~agree]
            n_remove = min(round(remove_ratio * agree.sum()), rest.size)
            new_rem.append(rest[np.argsort(-loss[~agree], kind="stable")[:n_remove]])
        for idx in new_sel:
            selected[idx] = True
            candidate[idx] = False
        for idx in new_rem:
            removed[idx] = True
            candidate[idx] = False
    tier = np.where(selected, 0.0, np.where(removed, 2.0, 1.0))
    return tier + last_loss / (1.0 + last_loss), ~selected
