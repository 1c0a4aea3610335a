"""simulate_crowd: shapes, design guarantees, planted accuracies, reproducibility, validation."""

from __future__ import annotations

import numpy as np
import pytest

from galton.quality import AnnotationMatrix, InputError
from galton.quality._simulate import SimulatedCrowd, simulate_crowd


def crowd(**options) -> SimulatedCrowd:
    defaults = dict(n_workers=40, n_classes=4, labels_per_item=5, random_state=0)
    defaults.update(options)
    n_items = defaults.pop("n_items", 4000)
    return simulate_crowd(n_items, **defaults)


def test_shapes_and_dtypes():
    result = crowd(n_items=300, n_workers=12, n_classes=3, labels_per_item=4)
    m = result.matrix
    assert isinstance(m, AnnotationMatrix)
    assert (m.n_items, m.n_workers, m.n_classes, m.n_annotations) == (300, 12, 3, 1200)
    assert result.true_labels.shape == (300,) and result.true_labels.dtype == np.int32
    assert result.is_spammer.shape == (12,) and result.is_spammer.dtype == np.bool_
    assert result.worker_accuracy.shape == (12,) and result.worker_accuracy.dtype == np.float64
    assert result.spammer_label.shape == (12,)
    assert m.labels.min() >= 0 and m.labels.max() < 3
    assert result.true_labels.min() >= 0 and result.true_labels.max() < 3
    for array in (result.true_labels, result.is_spammer, result.worker_accuracy, m.items):
        assert not array.flags.writeable


@pytest.mark.parametrize(
    ("n_workers", "labels_per_item"),
    [(40, 5), (6, 5), (5, 5), (30, 29), (1, 1), (200, 3)],  # Floyd and argpartition paths, full rows
)
def test_each_item_gets_exactly_labels_per_item_distinct_workers(n_workers, labels_per_item):
    result = crowd(n_items=1500, n_workers=n_workers, labels_per_item=labels_per_item)
    m = result.matrix
    np.testing.assert_array_equal(m.item_sizes(), np.full(1500, labels_per_item))
    pairs = m.items.astype(np.int64) * n_workers + m.workers
    assert np.unique(pairs).size == m.n_annotations
    # the same check the public constructor runs
    AnnotationMatrix.from_codes(m.items, m.workers, m.labels, n_workers=n_workers, n_classes=4)


def test_workers_are_used_evenly():
    # uniform assignment: every worker's load is Binomial(n_items, r / W)
    result = crowd(n_items=8000, n_workers=40, labels_per_item=5)
    sizes = result.matrix.worker_sizes()
    expected = 8000 * 5 / 40
    assert np.all(np.abs(sizes - expected) < 6 * np.sqrt(expected))


@pytest.mark.parametrize("share", [0.0, 0.2, 0.5, 1.0])
def test_spammer_share_is_exact(share):
    result = crowd(n_workers=50, spammer_share=share)
    assert result.is_spammer.sum() == round(share * 50)
    np.testing.assert_allclose(result.worker_accuracy[result.is_spammer], 0.25)


def test_honest_workers_empirical_accuracy_matches_planted():
    result = crowd(n_items=20000, n_workers=40, labels_per_item=5, skill=(0.5, 0.95))
    m = result.matrix
    correct = m.labels == result.true_labels[m.items]
    n = m.worker_sizes()
    empirical = np.bincount(m.workers, weights=correct, minlength=m.n_workers) / n
    planted = result.worker_accuracy
    # binomial standard error, 5 sigma
    tolerance = 5 * np.sqrt(planted * (1 - planted) / n)
    assert np.all(np.abs(empirical - planted) < tolerance)
    honest = ~result.is_spammer
    assert np.all((planted[honest] >= 0.5) & (planted[honest] <= 0.95))


def test_wrong_answers_are_uniform_over_the_wrong_classes_and_spam_is_uniform():
    result = crowd(n_items=20000, n_workers=20, n_classes=4, labels_per_item=4, spammer_share=0.25)
    m = result.matrix
    truth = result.true_labels[m.items]
    spam = result.is_spammer[m.workers]
    offsets = (m.labels - truth) % 4
    honest_wrong = np.bincount(offsets[~spam & (offsets > 0)], minlength=4)[1:]
    np.testing.assert_allclose(honest_wrong / honest_wrong.sum(), 1 / 3, atol=0.02)
    spam_labels = np.bincount(m.labels[spam], minlength=4)
    np.testing.assert_allclose(spam_labels / spam_labels.sum(), 0.25, atol=0.02)


def test_class_prior_is_respected():
    prior = [0.7, 0.2, 0.1]
    result = crowd(n_items=20000, n_classes=3, class_prior=prior)
    np.testing.assert_allclose(np.bincount(result.true_labels, minlength=3) / 20000, prior, atol=0.015)


def test_fixed_label_spammers_always_give_their_label():
    result = crowd(n_workers=50, spammer_share=0.4, fixed_label_share=0.5)
    fixed = result.spammer_label >= 0
    assert fixed.sum() == 10
    assert np.all(result.is_spammer[fixed])
    m = result.matrix
    rows = fixed[m.workers]
    np.testing.assert_array_equal(m.labels[rows], result.spammer_label[m.workers[rows]])
    np.testing.assert_allclose(result.worker_accuracy[fixed], 0.25)


def test_same_random_state_is_identical_and_different_states_differ():
    a, b, c = crowd(random_state=7), crowd(random_state=7), crowd(random_state=8)
    for name in ("items", "workers", "labels"):
        np.testing.assert_array_equal(getattr(a.matrix, name), getattr(b.matrix, name))
    np.testing.assert_array_equal(a.true_labels, b.true_labels)
    np.testing.assert_array_equal(a.is_spammer, b.is_spammer)
    np.testing.assert_array_equal(a.worker_accuracy, b.worker_accuracy)
    assert not np.array_equal(a.matrix.workers, c.matrix.workers)
    assert not np.array_equal(a.matrix.labels, c.matrix.labels)
    assert not np.array_equal(a.true_labels, c.true_labels)
    assert not np.array_equal(a.worker_accuracy, c.worker_accuracy)


def test_generator_is_accepted_and_advanced():
    rng = np.random.default_rng(3)
    first = simulate_crowd(100, n_workers=10, n_classes=3, labels_per_item=3, random_state=rng)
    second = simulate_crowd(100, n_workers=10, n_classes=3, labels_per_item=3, random_state=rng)
    assert not np.array_equal(first.matrix.labels, second.matrix.labels)


def test_multiple_chunks_stay_consistent():
    # more items than one generation chunk (131072): rows stay item-major and complete
    result = simulate_crowd(140_000, n_workers=30, n_classes=3, labels_per_item=2, random_state=0)
    m = result.matrix
    assert np.all(np.diff(m.items) >= 0)
    np.testing.assert_array_equal(m.item_sizes(), np.full(140_000, 2))
    assert np.all(m.workers[0::2] != m.workers[1::2])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(n_items=0), "n_items must be >= 1"),
        (dict(n_items=2.5), "n_items must be a whole number"),
        (dict(n_workers=0), "n_workers must be >= 1"),
        (dict(n_classes=1), "n_classes must be >= 2"),
        (dict(labels_per_item=0), "labels_per_item must be >= 1"),
        (dict(labels_per_item=41), "needs at least that many distinct workers"),
        (dict(spammer_share=1.5), r"spammer_share must be in \[0, 1\]"),
        (dict(spammer_share="x"), "spammer_share must be a number"),
        (dict(fixed_label_share=-0.1), r"fixed_label_share must be in \[0, 1\]"),
        (dict(skill=(0.9, 0.6)), "low <= high"),
        (dict(skill=0.9), "skill must be a pair"),
        (dict(class_prior=[0.5, 0.5]), r"class_prior must have shape \(n_classes,\) = \(4,\)"),
        (dict(class_prior=[0.5, 0.5, 0.5, -0.5]), "non-negative"),
        (dict(class_prior=[0.1, 0.1, 0.1, 0.1]), "must sum to 1"),
        (dict(random_state="seed"), "random_state must be"),
    ],
)
def test_bad_arguments_raise_input_error(options, message):
    with pytest.raises(InputError, match=message):
        crowd(**options)
