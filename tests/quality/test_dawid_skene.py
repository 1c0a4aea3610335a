"""Dawid-Skene and one-coin Dawid-Skene: reference values from crowd-kit, and invariants."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galton.quality import AnnotationMatrix, ConvergenceWarning, InputError
from galton.quality._dawid_skene import dawid_skene, one_coin_dawid_skene
from tests.strategies import annotation_matrices, permute

crowdkit = pytest.importorskip("crowdkit.aggregation")


def as_frame(matrix: AnnotationMatrix) -> pd.DataFrame:
    return pd.DataFrame({"task": matrix.items, "worker": matrix.workers, "label": matrix.labels})


def planted(seed=0, n_items=300, n_workers=12, n_classes=3, per_item=4):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    skill = rng.uniform(0.3, 0.95, n_workers)
    items = np.repeat(np.arange(n_items), per_item)
    workers = np.concatenate([rng.choice(n_workers, per_item, replace=False) for _ in range(n_items)])
    right = rng.random(items.size) < skill[workers]
    noise = (truth[items] + rng.integers(1, n_classes, items.size)) % n_classes
    labels = np.where(right, truth[items], noise)
    return AnnotationMatrix.from_codes(items, workers, labels, n_classes=n_classes), truth


@pytest.mark.parametrize("iterations", [1, 3, 20])
def test_posteriors_match_crowdkit_iteration_by_iteration(iterations):
    # crowd-kit's DawidSkene (no smoothing, MV start) is a trusted reference; it clips
    # confusion counts at 1e-10, so agreement is to ~1e-8.
    matrix, _ = planted()
    reference = crowdkit.DawidSkene(n_iter=iterations, tol=-1.0).fit(as_frame(matrix))
    expected = reference.probas_.sort_index().reindex(columns=range(matrix.n_classes)).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = dawid_skene(matrix, max_iter=iterations, tol=0.0, alpha=0.0)
        # crowd-kit ends on an M-step: its errors_ are our parameters one iteration later
        following = dawid_skene(matrix, max_iter=iterations + 1, tol=0.0, alpha=0.0)
    np.testing.assert_allclose(ours.posteriors, expected, atol=1e-7)
    confusion = reference.errors_  # index (worker, label), columns true class
    for worker in range(3):
        np.testing.assert_allclose(
            following.worker_params["confusion"][worker].T,
            confusion.loc[worker].reindex(index=range(3), columns=range(3)).fillna(0).to_numpy(),
            atol=1e-7,
        )


def test_recovers_planted_truth_better_than_majority():
    matrix, truth = planted(seed=3, per_item=5)
    result = dawid_skene(matrix)
    majority = matrix.label_counts().argmax(axis=1)
    assert result.converged
    assert np.mean(result.labels == truth) > np.mean(majority == truth)
    assert np.mean(result.labels == truth) > 0.9


def test_one_coin_recovers_planted_accuracies():
    matrix, truth = planted(seed=5, n_items=2000, per_item=5)
    result = one_coin_dawid_skene(matrix)
    empirical = np.bincount(
        matrix.workers, weights=matrix.labels == truth[matrix.items], minlength=matrix.n_workers
    ) / matrix.worker_sizes()
    np.testing.assert_allclose(result.worker_params["accuracy"], empirical, atol=0.04)


@pytest.mark.parametrize("method", [dawid_skene, one_coin_dawid_skene])
def test_gold_items_are_clamped_and_anchor_the_fit(method):
    matrix, truth = planted(seed=7)
    gold = np.full(matrix.n_items, -1)
    gold[:40] = (truth[:40] + 1) % 3  # deliberately "wrong" gold still wins on those items
    result = method(matrix, gold=gold)
    np.testing.assert_array_equal(result.labels[:40], gold[:40])
    np.testing.assert_allclose(result.posteriors[:40].max(axis=1), 1.0)
    assert result.params["gold_items"] == 40


def test_n_init_restarts_differ_and_best_is_kept():
    matrix, _ = planted(seed=11, per_item=2)
    single = dawid_skene(matrix, n_init=1, alpha=0.0)
    several = dawid_skene(matrix, n_init=6, alpha=0.0, random_state=1)
    assert several.log_likelihood >= single.log_likelihood - 1e-9


def test_non_convergence_warns():
    matrix, _ = planted()
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        result = dawid_skene(matrix, max_iter=1, tol=0.0)
    assert not result.converged and result.n_iter == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_iter": 0}, "max_iter must be > 0"), ({"tol": -1}, "tol must be >= 0"),
     ({"n_init": 1.5}, "n_init must be a whole number"), ({"alpha": float("nan")}, "alpha must be a finite"),
     ({"gold": [1, 2]}, "gold must have shape"), ({"random_state": "x"}, "random_state")],
)
def test_bad_options(kwargs, message):
    matrix, _ = planted()
    with pytest.raises(InputError, match=message):
        dawid_skene(matrix, **kwargs)


def test_not_a_matrix():
    with pytest.raises(InputError, match="expected an AnnotationMatrix"):
        dawid_skene([[0, 1, 2]])


@pytest.mark.parametrize("method", [dawid_skene, one_coin_dawid_skene])
@settings(max_examples=40, deadline=None)
@given(matrix=annotation_matrices(), seed=st.integers(0, 1000))
def test_invariants(method, matrix, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = method(matrix, random_state=seed)
        again = method(matrix, random_state=seed)
        permuted, pi, _, _ = permute(matrix, np.random.default_rng(seed))
        # only items are permuted here: workers and classes keep their codes
        only_items = AnnotationMatrix.from_codes(
            pi[matrix.items], matrix.workers, matrix.labels,
            n_items=matrix.n_items, n_workers=matrix.n_workers, n_classes=matrix.n_classes,
        )
        moved = method(only_items, random_state=seed)
    np.testing.assert_allclose(result.posteriors.sum(axis=1), 1.0)
    np.testing.assert_array_equal(result.labels, result.posteriors.argmax(axis=1))
    np.testing.assert_array_equal(result.posteriors, again.posteriors)
    np.testing.assert_allclose(moved.posteriors[pi], result.posteriors, atol=1e-9)
    assert np.isfinite(result.log_likelihood)
    assert permuted.n_annotations == matrix.n_annotations


@pytest.mark.parametrize("method", [dawid_skene, one_coin_dawid_skene])
@settings(max_examples=40, deadline=None)
@given(matrix=annotation_matrices(min_per_item=2, density=1.0), seed=st.integers(0, 2**32 - 1))
def test_perfect_workers_give_the_truth(method, matrix, seed):
    # every worker labels every item and always equals a hidden truth: the truth is the
    # fixed point (on sparse tiny data DS may legitimately prefer a degenerate solution)
    truth = np.random.default_rng(seed).integers(0, matrix.n_classes, matrix.n_items)
    perfect = AnnotationMatrix.from_codes(
        matrix.items, matrix.workers, truth[matrix.items],
        n_items=matrix.n_items, n_workers=matrix.n_workers, n_classes=matrix.n_classes,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = method(perfect)
    np.testing.assert_array_equal(result.labels, truth)


@settings(max_examples=40, deadline=None)
@given(annotation_matrices(min_per_item=2))
def test_em_log_likelihood_never_decreases(matrix):
    # plain maximum likelihood (alpha=0): EM's marginal likelihood is monotone
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        trace = [dawid_skene(matrix, max_iter=k, tol=0.0, alpha=0.0).log_likelihood for k in range(1, 8)]
    assert np.all(np.diff(trace) >= -1e-7 * max(1.0, abs(trace[0])))


def test_shared_snow_rte_accuracy(crowd_dataset):
    # snapshot of this implementation (0.9275); crowd-kit's DawidSkene gets 0.9275 too
    data = crowd_dataset("snow_rte")
    gold = data.gold_codes()
    result = dawid_skene(data.matrix)
    known = gold >= 0
    assert np.mean(result.labels[known] == gold[known]) >= 0.92


def triplet_dawid_skene(matrix, *, max_iter, tol, alpha, gold):
    """The previous implementation (one bincount per class over the triplets), kept as a
    reference for the sparse one-hot E- and M-steps: MV start, M-step then E-step."""
    n_workers, n_classes = matrix.n_workers, matrix.n_classes
    items, workers, labels = matrix.items, matrix.workers, matrix.labels
    keys = workers.astype(np.int64) * n_classes + labels
    q = np.zeros((matrix.n_items, n_classes))
    np.add.at(q, (items, labels), 1.0)
    sizes = q.sum(axis=1, keepdims=True)
    q = np.where(sizes > 0, q / np.maximum(sizes, 1), 1.0 / n_classes)
    known = np.flatnonzero(gold >= 0)
    q[known] = np.eye(n_classes)[gold[known]]
    previous = -np.inf
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is returned
        counts = np.stack(
            [np.bincount(keys, weights=q[items, t], minlength=n_workers * n_classes) for t in range(n_classes)],
            axis=1,
        )
        confusion = counts.reshape(n_workers, n_classes, n_classes).transpose(0, 2, 1) + alpha
        totals = confusion.sum(axis=2, keepdims=True)
        confusion = np.divide(confusion, totals, out=np.full_like(confusion, 1 / n_classes), where=totals > 0)
        prior = q.sum(axis=0) + alpha
        with np.errstate(divide="ignore"):
            log_conf = np.maximum(np.log(confusion), -700.0)
            log_prior = np.maximum(np.log(prior / prior.sum()), -700.0)
        log_post = np.stack(
            [log_prior[t] + np.bincount(items, weights=log_conf[workers, t, labels], minlength=matrix.n_items)
             for t in range(n_classes)],
            axis=1,
        )
        log_norm = np.logaddexp.reduce(log_post, axis=1)
        q = np.exp(log_post - log_norm[:, None])
        log_norm[known] = log_post[known, gold[known]]
        q[known] = np.eye(n_classes)[gold[known]]
        log_likelihood = log_norm.sum()
        if abs(log_likelihood - previous) <= tol * matrix.n_annotations:
            break
        previous = log_likelihood
    return q, confusion, prior / prior.sum(), log_likelihood, n_iter


@settings(max_examples=60, deadline=None)
@given(
    matrix=annotation_matrices(max_items=15, max_workers=7),
    seed=st.integers(0, 2**32 - 1),
    alpha=st.sampled_from([0.0, 0.01, 1.0]),
    max_iter=st.integers(1, 12),
)
def test_sparse_em_equals_the_triplet_computation(matrix, seed, alpha, max_iter):
    # shuffled triplets (the one-hot builder must group them by item), two items without
    # annotations, an unused worker and some gold: every path of the sparse E/M-steps
    rng = np.random.default_rng(seed)
    order = rng.permutation(matrix.n_annotations)
    shuffled = AnnotationMatrix.from_codes(
        matrix.items[order], matrix.workers[order], matrix.labels[order],
        n_items=matrix.n_items + 2, n_workers=matrix.n_workers + 1, n_classes=matrix.n_classes,
    )
    gold = np.where(rng.random(shuffled.n_items) < 0.2, rng.integers(0, matrix.n_classes, shuffled.n_items), -1)
    expected = triplet_dawid_skene(shuffled, max_iter=max_iter, tol=1e-5, alpha=alpha, gold=gold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = dawid_skene(shuffled, max_iter=max_iter, tol=1e-5, alpha=alpha, gold=gold)
    posteriors, confusion, prior, log_likelihood, n_iter = expected
    np.testing.assert_allclose(result.posteriors, posteriors, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.worker_params["confusion"], confusion, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.class_prior, prior, rtol=1e-12)
    assert result.log_likelihood == pytest.approx(log_likelihood, rel=1e-9, abs=1e-9)
    assert result.n_iter == n_iter


def test_items_in_any_order_give_the_same_fit():
    matrix, _ = planted(seed=13)
    order = np.random.default_rng(0).permutation(matrix.n_annotations)
    shuffled = AnnotationMatrix.from_codes(
        matrix.items[order], matrix.workers[order], matrix.labels[order], n_classes=matrix.n_classes
    )
    a, b = dawid_skene(matrix), dawid_skene(shuffled)
    np.testing.assert_allclose(a.posteriors, b.posteriors, rtol=1e-10, atol=1e-13)
    assert a.n_iter == b.n_iter


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adult2", "zencrowd"])
def test_crowdkit_gap_on_real_data_is_its_early_stop(crowd_dataset, name):
    # crowd-kit 1.4.2 stops when its "ELBO" falls, and that quantity adds log pi_t once
    # per *annotation* instead of once per item, so it soon falls and DawidSkene stops
    # after 2-3 EM steps on adult2 and zencrowd (the true marginal
    # log-likelihood keeps rising). Its extra accuracy there is that early stop: run for
    # the same number of iterations galton gives crowd-kit's labels, and run to
    # convergence crowd-kit is no more accurate than galton's default.
    data = crowd_dataset(name)
    m, gold = data.matrix, data.gold_codes()
    known = (gold >= 0) & (m.item_sizes() > 0)
    frame = as_frame(m)
    early = crowdkit.DawidSkene().fit(frame)
    steps = len(early.loss_history_)
    assert steps <= 3 and early.loss_history_[-1] < early.loss_history_[-2]
    early_labels = early.labels_.sort_index().to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        same_steps = dawid_skene(m, max_iter=steps, tol=0.0, alpha=0.0)
    assert np.mean(same_steps.labels == early_labels) > 0.999
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converged = crowdkit.DawidSkene(n_iter=100, tol=-np.inf).fit(frame).labels_.sort_index().to_numpy()
    ours = dawid_skene(m)
    assert ours.log_likelihood > same_steps.log_likelihood
    assert np.mean(ours.labels[known] == gold[known]) >= np.mean(converged[known] == gold[known]) - 0.01
