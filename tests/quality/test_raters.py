"""Rater table, item scores, the Raykar-Yu score and Beta intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import beta as beta_distribution

from galton.quality import AnnotationMatrix, InputError
from galton.quality._dawid_skene import dawid_skene
from galton.quality._raters import beta_interval, item_scores, raykar_yu_score, worker_scores
from tests.strategies import annotation_matrices


def crowd(seed=0, n_items=400, n_workers=20, n_spammers=4, n_classes=3, per_item=5):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    spammer = np.zeros(n_workers, dtype=bool)
    spammer[:n_spammers] = True
    items = np.repeat(np.arange(n_items), per_item)
    workers = np.concatenate([rng.choice(n_workers, per_item, replace=False) for _ in range(n_items)])
    honest = rng.random(items.size) < 0.85
    wrong = (truth[items] + rng.integers(1, n_classes, items.size)) % n_classes
    labels = np.where(honest, truth[items], wrong)
    labels = np.where(spammer[workers], rng.integers(0, n_classes, items.size), labels)
    matrix = AnnotationMatrix.from_codes(items, workers, labels, n_classes=n_classes)
    return matrix, truth, spammer


def test_beta_interval_is_the_beta_posterior():
    mean, low, high = beta_interval([9, 0], [10, 0], prior=(2.0, 3.0), credible=0.9)
    np.testing.assert_allclose(mean, [11 / 15, 2 / 5])
    np.testing.assert_allclose([low[0], high[0]], beta_distribution.interval(0.9, 11, 4))
    with pytest.raises(InputError, match="successes <= trials"):
        beta_interval([3], [2])
    with pytest.raises(InputError, match="credible"):
        beta_interval([1], [2], credible=1.0)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 50), st.integers(0, 50))
def test_beta_interval_contains_mean_and_narrows_with_data(s, extra):
    n = s + extra
    mean, low, high = beta_interval([s, 4 * s], [n, 4 * n])
    assert np.all(low <= mean) and np.all(mean <= high)
    if n > 0:
        assert high[1] - low[1] < high[0] - low[0]


def test_raykar_yu_reference_points():
    assert raykar_yu_score(np.eye(4)) == pytest.approx(1.0)
    assert raykar_yu_score(np.tile([0.1, 0.2, 0.7], (3, 1))) == pytest.approx(0.0)
    # binary: (sensitivity + specificity - 1)^2, Raykar & Yu (2012), section 3
    a = np.array([[0.8, 0.2], [0.3, 0.7]])
    assert raykar_yu_score(a) == pytest.approx((0.8 + 0.7 - 1) ** 2)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 5), st.integers(0, 2**32 - 1))
def test_raykar_yu_range_and_class_relabelling(k, seed):
    rng = np.random.default_rng(seed)
    confusion = rng.dirichlet(np.ones(k), size=(3, k))
    score = raykar_yu_score(confusion)
    assert np.all((score >= 0) & (score <= 1 + 1e-12))
    p = rng.permutation(k)
    np.testing.assert_allclose(raykar_yu_score(confusion[:, p][:, :, p]), score)


def test_worker_table_flags_planted_spammers_and_counts_gold():
    matrix, truth, spammer = crowd()
    gold = np.where(np.arange(matrix.n_items) < 100, truth, -1)
    scores = worker_scores(matrix, gold=gold)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(spammer, scores.spam_probability) >= 0.98
    assert roc_auc_score(spammer, -scores.raykar_yu) >= 0.98
    assert roc_auc_score(spammer, -scores.agreement) >= 0.95
    in_gold = gold[matrix.items] >= 0
    np.testing.assert_array_equal(scores.gold_n, np.bincount(matrix.workers[in_gold], minlength=20))
    assert np.all(scores.gold_low <= scores.gold_accuracy) and np.all(scores.gold_accuracy <= scores.gold_high)
    rows = scores.to_rows()
    riskiest = sorted(np.flatnonzero(spammer).tolist(), key=lambda w: -scores.spam_probability[w])
    assert [row["worker"] for row in rows[:4]] == riskiest
    json.dumps(rows)  # JSON-serialisable
    assert set(rows[0]) >= {"worker", "agreement", "mean_kappa", "gold_accuracy", "raykar_yu", "spam_probability"}


def test_worker_table_rejects_foreign_results():
    matrix, _, _ = crowd()
    other, _, _ = crowd(n_items=50)
    with pytest.raises(InputError, match="dawid_skene_result"):
        worker_scores(matrix, dawid_skene_result=dawid_skene(other))


@settings(max_examples=40, deadline=None)
@given(annotation_matrices())
def test_item_scores_invariants(matrix):
    result = dawid_skene(matrix)
    scores = item_scores(matrix, result)
    np.testing.assert_allclose(scores.label_distribution.sum(axis=1), 1.0)
    assert np.all((scores.label_entropy >= -1e-12) & (scores.label_entropy <= 1 + 1e-12))
    counts = matrix.label_counts()
    unanimous = counts.max(axis=1) == counts.sum(axis=1)
    np.testing.assert_allclose(scores.label_entropy[unanimous], 0.0, atol=1e-12)
    multi = counts.sum(axis=1) >= 2
    np.testing.assert_allclose(scores.agreement[unanimous & multi], 1.0)
    np.testing.assert_array_equal(scores.label, result.labels)
