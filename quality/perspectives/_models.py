"""Multi-annotator (Davani et al. 2021) and jury-learning (Gordon et al. 2022) models.

Both learn from the sparse annotation matrix itself, one training row per annotation,
instead of from a majority label. Training runs in torch (``_trainer``, imported on the
first call); the fitted parameters are numpy arrays, and every prediction below is numpy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._common import RandomState, as_generator, check_features, check_matrix, check_positive
from .._errors import InputError, describe_examples
from .._matrix import AnnotationMatrix
from ._diagnosis import encode_groups

__all__ = [
    "JuryModel",
    "JuryVerdicts",
    "MultiAnnotatorModel",
    "MultiAnnotatorPrediction",
    "jury_model",
    "multi_annotator_model",
]

def _readonly(array: NDArray[Any]) -> NDArray[Any]:
    array.flags.writeable = False
    return array


def _softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)




def _check_training(features: ArrayLike, matrix: AnnotationMatrix, options: Mapping[str, Any]):
    matrix = check_matrix(matrix)
    x = check_features(features, matrix.n_items)
    if matrix.n_classes < 2:
        raise InputError("the annotation matrix has a single class: there is nothing to learn")
    for name in ("epochs", "batch_size"):
        check_positive(name, options[name], integer=True)
    check_positive("learning_rate", options["learning_rate"])
    check_positive("weight_decay", options["weight_decay"], allow_zero=True)
    hidden = tuple(options["hidden_sizes"])
    for size in hidden:
        check_positive("hidden_sizes entries", size, integer=True)
    if options["n_threads"] is not None:
        check_positive("n_threads", options["n_threads"], integer=True)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    return matrix, x, mean, scale, hidden


def _uniform(rng: np.random.Generator, fan_in: int, shape: tuple[int, ...]) -> NDArray[np.float32]:
    bound = 1.0 / math.sqrt(max(fan_in, 1))  # torch's default Linear range
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def _encoder_params(rng: np.random.Generator, n_features: int, hidden: Sequence[int]) -> dict[str, NDArray]:
    params: dict[str, NDArray] = {}
    sizes = [n_features, *hidden]
    for layer in range(len(hidden)):
        params[f"enc{layer}.w"] = _uniform(rng, sizes[layer], (sizes[layer], sizes[layer + 1]))
        params[f"enc{layer}.b"] = _uniform(rng, sizes[layer], (sizes[layer + 1],))
    return params


def _encode(params: Mapping[str, NDArray], x: NDArray[np.float64], n_layers: int) -> NDArray[np.float64]:
    h = x
    for layer in range(n_layers):
        h = np.maximum(h @ params[f"enc{layer}.w"] + params[f"enc{layer}.b"], 0.0)
    return h


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _echo(random_state: RandomState) -> Any:
    return random_state if isinstance(random_state, (int, type(None))) else "generator"


def _train(kind, params, xs, matrix, attributes, hidden, options, rng):
    from . import _trainer  # torch, lazily

    start = time.perf_counter()
    trained, losses = _trainer.fit(
        kind,
        params,
        xs.astype(np.float32),
        matrix.items.astype(np.int64),
        matrix.workers.astype(np.int64),
        matrix.labels.astype(np.int64),
        attributes=attributes,
        n_layers=len(hidden),
        epochs=int(options["epochs"]),
        batch_size=int(options["batch_size"]),
        learning_rate=float(options["learning_rate"]),
        weight_decay=float(options["weight_decay"]),
        seed=_seed(rng),
        device=options["device"],
        n_threads=options["n_threads"],
    )
    return {k: _readonly(v) for k, v in trained.items()}, tuple(losses), time.perf_counter() - start


# ---------------------------------------------------------------------- multi-annotator


@dataclass(frozen=True)
class MultiAnnotatorPrediction:
    """What the heads of a :class:`MultiAnnotatorModel` say about a set of items.

    Attributes
    ----------
    posteriors : float64, shape (n_items, n_classes)
        Predicted label distribution: the mean of the heads' softmax outputs.
    head_votes : float64, shape (n_items, n_classes)
        Share of the heads whose argmax is each class.
    labels : int32, shape (n_items,)
        Majority of the heads (``head_votes.argmax(1)``; ties to the larger posterior).
    uncertainty : float64, shape (n_items,), in [0, 1]
        Davani et al.'s uncertainty: the variance across heads of their *predicted labels*,
        :math:`\\sum_k \\mathrm{Var}_w(\\mathbb{1}[\\hat y_{wi} = k]) / (1 - 1/K)
        = (1 - \\sum_k v_{ik}^2) / (1 - 1/K)` with :math:`v` = ``head_votes``: 0 when all
        heads predict the same label, 1 when they spread evenly over the classes.
    expected_disagreement : float64, shape (n_items,), in [0, 1]
        :math:`(1 - \\sum_k \\bar p_{ik}^2) / (1 - 1/K)`: the chance that two annotations
        drawn from the heads differ (normalised). It adds the heads' own spread (an
        annotator who is unsure) to their between-head spread, and is what an observed
        vote split estimates.
    head_variance : float64, shape (n_items,), in [0, 1]
        Variance across heads of the predicted *probabilities*,
        :math:`\\sum_k \\mathrm{Var}_w(p_{wik}) / (1 - 1/K)`: only the between-head part;
        low where every head is unsure in the same way.

    Every array is read-only.
    """

    posteriors: NDArray[np.float64]
    head_votes: NDArray[np.float64]
    labels: NDArray[np.int32]
    uncertainty: NDArray[np.float64]
    expected_disagreement: NDArray[np.float64]
    head_variance: NDArray[np.float64]


@dataclass(frozen=True)
class MultiAnnotatorModel:
    """A fitted multi-annotator model: shared encoder, one softmax head per worker.

    Attributes
    ----------
    method, params : str, mapping
    n_workers, n_classes : int
    trained_heads : bool, shape (n_workers,)
        Workers with at least one training annotation; only their heads vote.
    weights : mapping of str to float32 arrays
        ``enc{l}.w/b`` (encoder layers), ``heads.w`` (n_workers, d, n_classes), ``heads.b``.
    feature_mean, feature_scale : float64, shape (n_features,)
        The standardisation learnt on the training features.
    prediction : MultiAnnotatorPrediction
        The heads on the training items (every item code, annotated or not).
    losses : tuple of float
        Mean training cross-entropy per epoch.
    fit_seconds : float
    """

    method: str
    params: Mapping[str, Any]
    n_workers: int
    n_classes: int
    trained_heads: NDArray[np.bool_]
    weights: Mapping[str, NDArray[np.float32]]
    feature_mean: NDArray[np.float64]
    feature_scale: NDArray[np.float64]
    prediction: MultiAnnotatorPrediction
    losses: tuple[float, ...]
    fit_seconds: float

    def _hidden(self, features: ArrayLike) -> NDArray[np.float64]:
        x = check_features(features, None)
        if x.shape[1] != self.feature_mean.size:
            raise InputError(f"features must have {self.feature_mean.size} columns, got {x.shape[1]}")
        return _encode(self.weights, (x - self.feature_mean) / self.feature_scale, len(self.params["hidden_sizes"]))

    def worker_proba(self, features: ArrayLike, workers: ArrayLike) -> NDArray[np.float64]:
        """Head ``workers[r]``'s predicted distribution for the item of row ``features[r]``, (n, n_classes)."""
        w = np.asarray(workers, dtype=np.int64)
        h = self._hidden(features)
        if w.shape != (h.shape[0],) or (w.size and (w.min() < 0 or w.max() >= self.n_workers)):
            raise InputError(f"workers must be {h.shape[0]} worker codes in [0, {self.n_workers})")
        z = np.einsum("bh,bhk->bk", h, self.weights["heads.w"][w]) + self.weights["heads.b"][w]
        return _softmax(z)

    def head_proba(self, features: ArrayLike) -> NDArray[np.float64]:
        """Every head on every item, shape (n_items, n_workers, n_classes). Memory: n_items * n_workers * n_classes."""
        h = self._hidden(features)
        return _softmax(np.einsum("bh,whk->bwk", h, self.weights["heads.w"]) + self.weights["heads.b"][None])

    def predict(self, features: ArrayLike) -> MultiAnnotatorPrediction:
        """Posteriors, head majority and uncertainty of the trained heads for new items (chunked)."""
        h = self._hidden(features)
        return _summarise_heads(h, self.weights, self.trained_heads, self.n_classes)

    def predict_raters(self, features: ArrayLike, matrix: AnnotationMatrix) -> MultiAnnotatorPrediction:
        """The same summary over each item's own raters only: the heads of the workers who
        annotated item ``i`` in ``matrix`` (their labels are not used), e.g. the annotators
        assigned to a new batch. Items without annotations get uniform rows, and 0 uncertainty
        and expected disagreement.

        ``features`` has one row per item code of ``matrix``.
        """
        matrix = check_matrix(matrix)
        if matrix.n_workers > self.n_workers or matrix.n_classes != self.n_classes:
            raise InputError(f"matrix must use this model's workers (< {self.n_workers}) and "
                             f"{self.n_classes} classes, got {matrix.n_workers} workers and {matrix.n_classes}")
        x = check_features(features, matrix.n_items)
        p = self.worker_proba(x[matrix.items], matrix.workers)
        return _summarise_raters(p, matrix.items.astype(np.int64), matrix.n_items, self.n_classes)


def _summary(posteriors, head_votes, head_variance, n_classes, empty=None) -> MultiAnnotatorPrediction:
    norm = 1.0 - 1.0 / n_classes
    labels = (head_votes + 1e-9 * posteriors).argmax(axis=1).astype(np.int32)
    uncertainty = np.clip((1.0 - (head_votes**2).sum(axis=1)) / norm, 0.0, 1.0)
    expected = np.clip((1.0 - (posteriors**2).sum(axis=1)) / norm, 0.0, 1.0)
    if empty is not None:  # no head to ask: nothing is predicted to disagree
        uncertainty[empty] = 0.0
        expected[empty] = 0.0
    return MultiAnnotatorPrediction(
        _readonly(posteriors), _readonly(head_votes), _readonly(labels), _readonly(uncertainty),
        _readonly(expected), _readonly(np.clip(head_variance / norm, 0.0, 1.0)),
    )


def _summarise_heads(h, weights, active, n_classes) -> MultiAnnotatorPrediction:
    w = weights["heads.w"][active]
    b = weights["heads.b"][active]
    post, votes, var = [], [], []
    step = max(1, (1 << 22) // max(1, w.shape[0] * n_classes))  # bounds the (step, n_heads, K) temporary
    for begin in range(0, h.shape[0], step):
        p = _softmax(np.einsum("bh,whk->bwk", h[begin : begin + step], w) + b[None])
        mean = p.mean(axis=1)
        post.append(mean)
        onehot = np.zeros_like(mean)
        np.add.at(onehot, (np.repeat(np.arange(p.shape[0]), p.shape[1]), p.argmax(axis=2).ravel()), 1.0)
        votes.append(onehot / p.shape[1])
        var.append(p.var(axis=1).sum(axis=1))
    empty = np.zeros((0, n_classes))
    return _summary(np.concatenate(post) if post else empty, np.concatenate(votes) if votes else empty,
                    np.concatenate(var) if var else np.zeros(0), n_classes)


def _summarise_raters(p, items, n_items, n_classes) -> MultiAnnotatorPrediction:
    """The heads of each item's own raters: ``p[r]`` is the head of row ``r``'s worker on item ``items[r]``."""
    n = np.bincount(items, minlength=n_items).astype(np.float64)
    safe = np.maximum(n, 1.0)[:, None]
    mean = np.zeros((n_items, n_classes))
    square = np.zeros((n_items, n_classes))
    votes = np.zeros((n_items, n_classes))
    np.add.at(mean, items, p)
    np.add.at(square, items, p**2)
    np.add.at(votes, (items, p.argmax(axis=1)), 1.0)
    mean, square, votes = mean / safe, square / safe, votes / safe
    empty = n == 0
    mean[empty] = 1.0 / n_classes
    votes[empty] = 1.0 / n_classes
    variance = np.where(empty, 0.0, (square - mean**2).sum(axis=1))
    return _summary(mean, votes, variance, n_classes, empty)


def multi_annotator_model(
    features: ArrayLike,
    matrix: AnnotationMatrix,
    *,
    hidden_sizes: Sequence[int] = (32,),
    epochs: int = 20,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-3,
    n_threads: int | None = 1,
    device: str | None = "cpu",
    random_state: RandomState = 0,
) -> MultiAnnotatorModel:
    r"""Davani et al.'s multi-annotator model: a shared encoder with one head per annotator.

    Each head is parametrised as a shared head plus a per-worker deviation that starts
    at 0 and is weight-decayed, so a worker with few labels keeps close to the shared
    head (a Gaussian-prior shrinkage; Davani et al.'s annotators had hundreds of labels
    each, crowds rarely do).

    Every worker's labels are one sub-task: for an annotation :math:`(i, w, y)` the
    loss is :math:`-\log \mathrm{softmax}(W_w^\top f(x_i) + b_w)_y`, averaged over the
    observed triplets only (the sparse matrix, no imputation); :math:`f` is an MLP of
    ``hidden_sizes`` (ReLU) over standardised features, shared by all heads. At
    prediction time the heads of all trained workers vote: ``posteriors`` (mean head
    distribution), ``labels`` (head majority), ``uncertainty`` (variance of the heads'
    predicted labels, which Davani et al. show correlates with the annotators' real
    disagreement), ``expected_disagreement`` and ``head_variance`` (see
    :class:`MultiAnnotatorPrediction`). :meth:`MultiAnnotatorModel.predict_raters` asks
    only the heads of each item's own annotators, which is what an observed vote split
    measures: on the real crowds of ``benchmarks/perspectives.py`` its expected
    disagreement correlates best with the observed disagreement.

    A single-head model trained on majority labels -- the usual baseline -- is this
    function on a one-worker matrix of the majority labels.

    Cost per epoch: ``O(n_annotations * (sum of layer sizes products + d * n_classes))``.

    Parameters
    ----------
    features : array, shape (n_items, n_features)
        One row per item code of ``matrix``.
    matrix : AnnotationMatrix
    hidden_sizes : sequence of int
        Encoder layers; ``()`` gives per-worker linear models of the features.
    epochs, batch_size, learning_rate, weight_decay
        Adam over shuffled annotation rows.
    n_threads : int or None
        torch intra-op threads during training (1 by default: more spin-wait on busy CPUs).
    device : str or None
        torch device; None picks CUDA when present.
    random_state : int, Generator or None
        Draws the initial weights and the shuffling seed; the same value gives the same
        model on CPU.

    Returns
    -------
    MultiAnnotatorModel

    Raises
    ------
    InputError
        Features of the wrong shape or not finite, a single class, bad options.

    References
    ----------
    Davani, Díaz, Prabhakaran. Dealing with Disagreements: Looking Beyond the Majority
    Vote in Subjective Annotations. TACL 10, 2022 (arXiv 2110.05719, 2021).
    """
    options = dict(hidden_sizes=hidden_sizes, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                   weight_decay=weight_decay, n_threads=n_threads, device=device)
    matrix, x, mean, scale, hidden = _check_training(features, matrix, options)
    rng = as_generator(random_state)
    xs = (x - mean) / scale
    params = _encoder_params(rng, x.shape[1], hidden)
    d = hidden[-1] if hidden else x.shape[1]
    params["shared.w"] = _uniform(rng, d, (d, matrix.n_classes))
    params["shared.b"] = _uniform(rng, d, (matrix.n_classes,))
    params["heads.w"] = np.zeros((matrix.n_workers, d, matrix.n_classes), dtype=np.float32)
    params["heads.b"] = np.zeros((matrix.n_workers, matrix.n_classes), dtype=np.float32)
    fitted, losses, seconds = _train("heads", params, xs, matrix, None, hidden, options, rng)
    weights = {k: v for k, v in fitted.items() if not k.startswith(("shared.", "heads."))}
    weights["heads.w"] = _readonly(fitted["shared.w"][None] + fitted["heads.w"])
    weights["heads.b"] = _readonly(fitted["shared.b"][None] + fitted["heads.b"])
    trained = matrix.worker_sizes() > 0
    prediction = _summarise_heads(_encode(weights, xs, len(hidden)), weights, trained, matrix.n_classes)
    return MultiAnnotatorModel(
        method="multi_annotator_model",
        params={**options, "hidden_sizes": list(hidden), "random_state": _echo(random_state)},
        n_workers=matrix.n_workers,
        n_classes=matrix.n_classes,
        trained_heads=_readonly(trained),
        weights=weights,
        feature_mean=_readonly(mean),
        feature_scale=_readonly(scale),
        prediction=prediction,
        losses=losses,
        fit_seconds=seconds,
    )


# ---------------------------------------------------------------------- jury learning


@dataclass(frozen=True)
class JuryVerdicts:
    """Verdicts of many sampled juries, per item.

    Attributes
    ----------
    composition : mapping of group value to int
        Jurors drawn per value of the ``by`` attribute.
    by : str
        The rater-table column the composition refers to.
    n_samples : int
        Juries drawn per item.
    distribution : float64, shape (n_items, n_classes)
        Share of the juries whose verdict (their jurors' majority, ties broken at
        random) is each class.
    labels : int32, shape (n_items,)
        The most frequent verdict.
    """

    composition: Mapping[Hashable, int]
    by: str
    n_samples: int
    distribution: NDArray[np.float64]
    labels: NDArray[np.int32]


@dataclass(frozen=True)
class JuryModel:
    """A fitted jury-learning model: predicts any worker's label on any item.

    The rater vector is a worker-id embedding plus one embedding per rater-table
    attribute value; it is concatenated with the item encoding and mapped through one
    ReLU layer to the class logits.

    Attributes
    ----------
    method, params : str, mapping
    n_workers, n_classes : int
    attribute_names : tuple of str
        The rater-table columns.
    attribute_values : tuple of tuples
        Per column, the sorted values; code ``len(values)`` means unknown.
    attribute_codes : int64, shape (n_workers, n_attributes)
    weights : mapping of str to float32 arrays
    feature_mean, feature_scale : float64
    features : float64, shape (n_items, n_features)
        The training features (raw), the default items of :meth:`verdicts`.
    losses : tuple of float
    fit_seconds : float
    """

    method: str
    params: Mapping[str, Any]
    n_workers: int
    n_classes: int
    attribute_names: tuple[str, ...]
    attribute_values: tuple[tuple[Hashable, ...], ...]
    attribute_codes: NDArray[np.int64]
    weights: Mapping[str, NDArray[np.float32]]
    feature_mean: NDArray[np.float64]
    feature_scale: NDArray[np.float64]
    features: NDArray[np.float64]
    losses: tuple[float, ...]
    fit_seconds: float

    def _parts(self, features: ArrayLike | None):
        x = self.features if features is None else check_features(features, None)
        if x.shape[1] != self.feature_mean.size:
            raise InputError(f"features must have {self.feature_mean.size} columns, got {x.shape[1]}")
        h = _encode(self.weights, (x - self.feature_mean) / self.feature_scale, len(self.params["hidden_sizes"]))
        rater = self.weights["worker.emb"].astype(np.float64)
        for j in range(len(self.attribute_names)):
            rater = rater + self.weights[f"attr{j}.emb"][self.attribute_codes[:, j]]
        return h @ self.weights["comb.wh"], rater @ self.weights["comb.wa"] + self.weights["comb.b"]

    def worker_proba(self, features: ArrayLike | None = None, workers: ArrayLike | None = None) -> NDArray[np.float64]:
        """Predicted label distribution of every worker on every item, (n_items, n_workers, n_classes).

        ``workers`` (codes) restricts the second axis. Memory: n_items * n_workers * n_classes.
        """
        hi, rw = self._parts(features)
        if workers is not None:
            w = np.asarray(workers, dtype=np.int64)
            if w.ndim != 1 or (w.size and (w.min() < 0 or w.max() >= self.n_workers)):
                raise InputError(f"workers must be worker codes in [0, {self.n_workers})")
            rw = rw[w]
        z = np.maximum(hi[:, None, :] + rw[None, :, :], 0.0)
        return _softmax(z @ self.weights["out.w"] + self.weights["out.b"])

    def predicted_labels(self, features: ArrayLike | None = None) -> NDArray[np.int32]:
        """Each worker's predicted label on each item (argmax), shape (n_items, n_workers), chunked."""
        hi, rw = self._parts(features)
        out = np.empty((hi.shape[0], self.n_workers), dtype=np.int32)
        step = max(1, (1 << 22) // max(1, self.n_workers * hi.shape[1]))
        for begin in range(0, hi.shape[0], step):
            z = np.maximum(hi[begin : begin + step, None, :] + rw[None], 0.0)
            out[begin : begin + step] = (z @ self.weights["out.w"] + self.weights["out.b"]).argmax(axis=2)
        return out

    def verdicts(
        self,
        *,
        composition: Mapping[Hashable, int],
        by: str | None = None,
        n_samples: int = 100,
        features: ArrayLike | None = None,
        random_state: RandomState = 0,
    ) -> JuryVerdicts:
        """Sample ``n_samples`` juries per item and report the distribution of their verdicts.

        A jury is ``composition[v]`` distinct workers drawn uniformly from those whose
        ``by`` attribute is ``v``, for every ``v`` (Gordon et al.'s jury composition, e.g.
        ``{"A": 6, "B": 6}``); each juror gives the model's predicted label for that item,
        the verdict is their plurality (ties broken uniformly at random). Juries are
        drawn independently per item. Cost: ``O(n_samples * n_items * n_workers)``.

        Raises
        ------
        InputError
            ``by`` missing or unknown, a composition value that no worker has, more jurors
            asked of a value than it has workers, or counts that are not positive integers.
        """
        if not self.attribute_names:
            raise InputError("this jury model has no rater table: pass rater_table to jury_model to compose juries")
        if by is None:
            if len(self.attribute_names) != 1:
                raise InputError(f"say which rater-table column the composition refers to: by= one of "
                                 f"{list(self.attribute_names)!r}")
            by = self.attribute_names[0]
        if by not in self.attribute_names:
            raise InputError(f"by={by!r} is not a rater-table column; columns: {list(self.attribute_names)!r}")
        check_positive("n_samples", n_samples, integer=True)
        if not isinstance(composition, Mapping) or not composition:
            raise InputError("composition must be a non-empty mapping {group value: number of jurors}")
        j = self.attribute_names.index(by)
        values = self.attribute_values[j]
        pools = []
        for value, count in composition.items():
            check_positive(f"composition[{value!r}]", count, integer=True)
            if value not in values:
                raise InputError(f"no worker has {by}={value!r}; values: {describe_examples(values)}")
            pool = np.flatnonzero(self.attribute_codes[:, j] == values.index(value))
            if count > pool.size:
                raise InputError(f"composition asks for {count} jurors with {by}={value!r} but only {pool.size} "
                                 "workers have it")
            pools.append((pool, int(count)))
        rng = as_generator(random_state)
        predicted = self.predicted_labels(features)
        n_items, k = predicted.shape[0], self.n_classes
        tally = np.zeros((n_items, k), dtype=np.float64)
        rows = np.arange(n_items)
        for _ in range(int(n_samples)):
            votes = np.zeros((n_items, k), dtype=np.float64)
            for pool, count in pools:
                pick = pool[np.argsort(rng.random((n_items, pool.size)), axis=1)[:, :count]]
                np.add.at(votes, (np.repeat(rows, count), predicted[rows[:, None], pick].ravel()), 1.0)
            verdict = (votes + rng.random(votes.shape) * 0.5).argmax(axis=1)  # < 1 vote: ties only
            tally[rows, verdict] += 1.0
        distribution = tally / n_samples
        return JuryVerdicts(
            composition=dict(composition),
            by=by,
            n_samples=int(n_samples),
            distribution=_readonly(distribution),
            labels=_readonly(distribution.argmax(axis=1).astype(np.int32)),
        )


def _rater_attributes(rater_table: Mapping[str, Sequence[Hashable | None]] | None, n_workers: int):
    if rater_table is None:
        return (), (), np.zeros((n_workers, 0), dtype=np.int64)
    if not isinstance(rater_table, Mapping):
        raise InputError("rater_table must be a mapping {column: one value per worker code}, e.g. {'group': [...]}")
    names, values, codes = [], [], []
    for column, column_values in rater_table.items():
        try:
            c, v = encode_groups(column_values, n_workers)
        except InputError as error:
            raise InputError(f"rater_table[{column!r}]: {error}") from None
        names.append(str(column))
        values.append(v)
        codes.append(np.where(c < 0, len(v), c))  # unknown -> its own embedding row
    return tuple(names), tuple(values), np.stack(codes, axis=1) if codes else np.zeros((n_workers, 0), np.int64)


def jury_model(
    features: ArrayLike,
    matrix: AnnotationMatrix,
    rater_table: Mapping[str, Sequence[Hashable | None]] | None = None,
    *,
    hidden_sizes: Sequence[int] = (32,),
    embedding_size: int = 16,
    combiner_size: int = 32,
    epochs: int = 20,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-3,
    n_threads: int | None = 1,
    device: str | None = "cpu",
    random_state: RandomState = 0,
) -> JuryModel:
    r"""Jury learning: predict an individual worker's label from the item and the worker.

    For annotation :math:`(i, w, y)`:
    :math:`r_w = E[w] + \sum_j A_j[a_{wj}]` (worker-id embedding plus one embedding per
    rater attribute, e.g. a demographic group), and
    :math:`P(y \mid i, w) = \mathrm{softmax}(U\,\mathrm{ReLU}(V_h f(x_i) + V_r r_w + c) + b)`,
    trained by cross-entropy on the observed triplets. Shared attribute embeddings let
    the model speak for workers with few labels through their group. At decision time
    :meth:`JuryModel.verdicts` samples juries of a given composition.

    Parameters
    ----------
    features : array, shape (n_items, n_features)
    matrix : AnnotationMatrix
    rater_table : mapping of str to sequence, optional
        Columns of worker attributes, each one value per worker code (``None`` unknown).
    hidden_sizes, embedding_size, combiner_size : int
        Item encoder layers, rater-vector size, width of the joint layer.
    epochs, batch_size, learning_rate, weight_decay, n_threads, device, random_state
        As in :func:`multi_annotator_model`.

    Returns
    -------
    JuryModel

    Raises
    ------
    InputError
        Bad features, a rater-table column of the wrong length, bad options.

    References
    ----------
    Gordon, Lam, Park, Patel, Hancock, Hashimoto, Bernstein. Jury Learning: Integrating
    Dissenting Voices into Machine Learning Models. CHI 2022 (arXiv 2202.02950).
    """
    options = dict(hidden_sizes=hidden_sizes, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                   weight_decay=weight_decay, n_threads=n_threads, device=device)
    matrix, x, mean, scale, hidden = _check_training(features, matrix, options)
    check_positive("embedding_size", embedding_size, integer=True)
    check_positive("combiner_size", combiner_size, integer=True)
    names, values, codes = _rater_attributes(rater_table, matrix.n_workers)
    rng = as_generator(random_state)
    xs = (x - mean) / scale
    params = _encoder_params(rng, x.shape[1], hidden)
    d = hidden[-1] if hidden else x.shape[1]
    e, c = int(embedding_size), int(combiner_size)
    params["worker.emb"] = (0.1 * rng.standard_normal((matrix.n_workers, e))).astype(np.float32)
    for j, v in enumerate(values):
        params[f"attr{j}.emb"] = (0.1 * rng.standard_normal((len(v) + 1, e))).astype(np.float32)
    params["comb.wh"] = _uniform(rng, d + e, (d, c))
    params["comb.wa"] = _uniform(rng, d + e, (e, c))
    params["comb.b"] = _uniform(rng, d + e, (c,))
    params["out.w"] = _uniform(rng, c, (c, matrix.n_classes))
    params["out.b"] = _uniform(rng, c, (matrix.n_classes,))
    weights, losses, seconds = _train("jury", params, xs, matrix, codes, hidden, options, rng)
    return JuryModel(
        method="jury_model",
        params={**options, "hidden_sizes": list(hidden), "embedding_size": e, "combiner_size": c,
                "rater_columns": list(names), "random_state": _echo(random_state)},
        n_workers=matrix.n_workers,
        n_classes=matrix.n_classes,
        attribute_names=names,
        attribute_values=values,
        attribute_codes=_readonly(codes.astype(np.int64)),
        weights=weights,
        feature_mean=_readonly(mean),
        feature_scale=_readonly(scale),
        features=_readonly(x),
        losses=losses,
        fit_seconds=seconds,
    )
