"""Early stopping on the NCV folds' held-out loss, and the default combined ranking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from galton.quality import InputError
from galton.quality.dynamics import DEFAULT_COMBINE, SMALL_DATA_ITEMS, find_mislabeled, ncv_plan, rank_average

torch = pytest.importorskip("torch")


def noisy_blobs(n_items=400, n_classes=3, n_features=20, noise=0.3, seed=0):
    """Overlapping blobs with many wrong labels: a long run memorises them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, (n_classes, n_features))
    truth = rng.integers(0, n_classes, n_items)
    x = centres[truth] + rng.normal(0, 1, (n_items, n_features))
    flipped = rng.random(n_items) < noise
    y = truth.copy()
    y[flipped] = (truth[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    return x, y, flipped


@pytest.fixture(scope="module")
def memorising():
    x, y, flipped = noisy_blobs()
    report = find_mislabeled(
        x, y, epochs=40, hidden_sizes=(256,), learning_rate=1e-2, batch_size=32, patience=3, random_state=0
    )
    return x, y, flipped, report


def test_early_stopping_picks_the_epoch_of_least_held_out_loss(memorising):
    _, y, _, report = memorising
    loss = np.asarray(report.metadata["held_out_loss"])
    used = report.metadata["epochs_used"]
    assert used == max(int(np.argmin(loss)) + 1, 3)
    # the folds stopped `patience` epochs after their best: far fewer than the 40 allowed
    assert len(loss) < 40 and loss[-1] > loss.min()
    # every dynamics run trained exactly the chosen epochs
    assert all(len(s) == used for s in report.metadata["epoch_seconds"].values())
    # NCV's head candidate is the out-of-fold probabilities of that epoch: their loss is the minimum
    assert report.metadata["ncv_held_out_loss"]["head"] == pytest.approx(loss[used - 1], rel=1e-4)
    # and NCV scores by the candidate of lower held-out loss
    p = report.oof_probabilities[np.arange(y.size), y]
    assert -np.log(p).mean() == pytest.approx(min(report.metadata["ncv_held_out_loss"].values()), rel=1e-4)
    np.testing.assert_allclose(report.scores["ncv"], 1.0 - p)


def test_early_stopping_beats_the_memorising_run(memorising):
    from sklearn.metrics import roc_auc_score

    x, y, flipped, early = memorising
    full = find_mislabeled(
        x, y, epochs=40, hidden_sizes=(256,), learning_rate=1e-2, batch_size=32, early_stopping=False, random_state=0
    )
    assert full.metadata["epochs_used"] == 40 and len(full.metadata["held_out_loss"]) == 40
    for method in ("datamaps", "aum", "combined"):
        assert roc_auc_score(flipped, early.scores[method]) > roc_auc_score(flipped, full.scores[method]) + 0.02


def test_default_combined_is_the_mean_rank_of_aum_and_ncv(memorising):
    _, _, _, report = memorising
    assert DEFAULT_COMBINE == ("aum", "ncv") and report.metadata["combined_from"] == ["aum", "ncv"]
    np.testing.assert_array_equal(report.scores["combined"], rank_average([report.scores["aum"], report.scores["ncv"]]))
    np.testing.assert_array_equal(report.flags["combined"], report.flags["aum"] & report.flags["ncv"])


def test_early_stopping_without_ncv_still_runs_the_folds_but_scores_no_ncv():
    x, y, _ = noisy_blobs(n_items=120, seed=3)
    report = find_mislabeled(x, y, methods=("datamaps",), epochs=6, random_state=0)
    assert "ncv" not in report.scores and len(report.metadata["held_out_loss"]) >= 1
    assert 3 <= report.metadata["epochs_used"] <= 6
    off = find_mislabeled(x, y, methods=("datamaps",), epochs=6, early_stopping=False, random_state=0)
    assert "held_out_loss" not in off.metadata and off.metadata["epochs_used"] == 6


@settings(max_examples=8, deadline=None)
@given(epochs=st.integers(1, 6), patience=st.integers(1, 3), seed=st.integers(0, 2**16))
@example(epochs=3, patience=1, seed=336)  # folds stopped after 2 epochs: NCV indexed a third (CI found it)
def test_epochs_used_never_exceeds_epochs_nor_goes_below_three(epochs, patience, seed):
    x, y, _ = noisy_blobs(n_items=60, n_features=4, seed=seed)
    report = find_mislabeled(x, y, methods=("aum", "ncv"), epochs=epochs, patience=patience, random_state=seed)
    used = report.metadata["epochs_used"]
    assert min(3, epochs) <= used <= epochs
    assert np.isfinite(report.scores["combined"]).all()


def test_patience_is_validated():
    x, y, _ = noisy_blobs(n_items=40)
    with pytest.raises(InputError, match="patience"):
        find_mislabeled(x, y, patience=0)


def test_torch_settings_limit_and_restore_the_blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from galton.quality.dynamics import _trainer

    def blas_threads():
        return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]

    before, torch_before = blas_threads(), torch.get_num_threads()
    with _trainer.torch_settings(1):
        assert set(blas_threads()) <= {1} and torch.get_num_threads() == 1
    assert blas_threads() == before and torch.get_num_threads() == torch_before


# ---------------------------------------------------------------- NCV's folds and its logistic candidate


def test_ncv_plan_adds_the_five_fold_logistic_candidate_up_to_25000_items():
    assert SMALL_DATA_ITEMS == 25_000
    table = {4: (2, 2), 6: (2, 3), 9: (2, 4), 10: (2, 5), 10_000: (2, 5)}
    table |= {25_000: (2, 5), 25_001: (2, 0), 100_000: (2, 0)}
    assert {n: ncv_plan(n) for n in table} == table
    # the head keeps the caller's folds; the candidate takes at least as many, and is on or off on request
    assert ncv_plan(10_000, n_folds=3) == (3, 5) and ncv_plan(10_000, n_folds=10) == (10, 10)
    assert ncv_plan(10_000, logistic=False) == (2, 0) and ncv_plan(50_000, logistic=True) == (2, 5)


@settings(max_examples=200, deadline=None)
@given(n_items=st.integers(4, 10**6), n_folds=st.integers(2, 12), logistic=st.sampled_from([None, True, False]))
def test_ncv_plan_folds_are_never_emptier_than_two_items(n_items, n_folds, logistic):
    n_folds = min(n_folds, n_items)
    head, candidate = ncv_plan(n_items, n_folds=n_folds, logistic=logistic)
    assert head == n_folds
    on = n_items <= SMALL_DATA_ITEMS if logistic is None else logistic
    if not on:
        assert candidate == 0
    else:
        assert candidate >= head and (candidate == head or candidate <= n_items // 2)
        assert candidate == max(head, min(5, n_items // 2))


def test_find_mislabeled_follows_the_plan_and_echoes_it():
    x, y, _ = noisy_blobs(n_items=300, seed=5)
    small = find_mislabeled(x, y, methods=("ncv",), epochs=4, random_state=0)
    assert small.params["n_folds"] == 2 and small.params["ncv_logistic_folds"] == 5
    assert small.metadata["ncv_logistic_folds"] == 5
    assert set(small.metadata["ncv_held_out_loss"]) == {"head", "logistic"}
    assert small.metadata["ncv_model"] in {"head", "logistic"}
    off = find_mislabeled(x, y, methods=("ncv",), epochs=4, ncv_logistic=False, random_state=0)
    assert off.params["ncv_logistic_folds"] == 0 and off.metadata["ncv_model"] == "head"
    assert "ncv_held_out_loss" not in off.metadata
    # without "ncv" among the methods the candidate is not fitted (early stopping needs only the head)
    assert "ncv_held_out_loss" not in find_mislabeled(x, y, methods=("aum",), epochs=4).metadata
    # above 25,000 items: the head alone (two features, one epoch: quick)
    rng = np.random.default_rng(0)
    y_big = rng.integers(0, 2, SMALL_DATA_ITEMS + 1)
    x_big = y_big[:, None] + rng.normal(0, 1, (y_big.size, 2))
    big = find_mislabeled(x_big, y_big, methods=("ncv",), epochs=1, random_state=0)
    assert big.params["ncv_logistic_folds"] == 0 and big.metadata["ncv_model"] == "head"
    assert "ncv_held_out_loss" not in big.metadata


def test_ncv_logistic_candidate_is_scikit_learns_logistic_regression_on_five_folds():
    from sklearn.linear_model import LogisticRegression

    from galton.quality.dynamics._api import _standardise

    # a linear problem with 30% wrong labels: the solved logistic regression beats the stopped MLP
    x, y, _ = noisy_blobs(n_items=500, n_features=5, seed=6)
    report = find_mislabeled(x, y, methods=("ncv",), epochs=10, random_state=3)
    losses = report.metadata["ncv_held_out_loss"]
    assert report.metadata["ncv_model"] == "logistic" and losses["logistic"] < losses["head"]
    # reference: scikit-learn (C=1, solved tightly) on 5 folds of the shuffle NCV drew first:
    # item order[i] is in fold i % 5
    order = np.random.default_rng(3).permutation(y.size)
    fold = np.empty(y.size, dtype=int)
    fold[order] = np.arange(y.size) % 5
    xs = _standardise(x, True).astype(np.float64)
    expected = np.zeros((y.size, 3))
    for f in range(5):
        held = fold == f
        model = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(xs[~held], y[~held])
        expected[held] = model.predict_proba(xs[held])
    # NCV stops at scikit-learn's default tolerance (gradient below 1e-4), the reference far later
    np.testing.assert_allclose(report.oof_probabilities, expected, atol=1e-3)
    np.testing.assert_allclose(report.scores["ncv"], 1.0 - expected[np.arange(y.size), y], atol=1e-3)
    np.testing.assert_array_equal(report.flags["ncv"], report.oof_probabilities.argmax(axis=1) != y)
    assert losses["logistic"] == pytest.approx(-np.log(expected[np.arange(y.size), y]).mean(), rel=1e-3)


def test_ncv_logistic_candidate_leaves_every_other_score_unchanged():
    x, y, _ = noisy_blobs(n_items=200, seed=7)
    with_it = find_mislabeled(x, y, epochs=4, ncv_logistic=True, random_state=1)
    without = find_mislabeled(x, y, epochs=4, ncv_logistic=False, random_state=1)
    assert with_it.metadata["epochs_used"] == without.metadata["epochs_used"]
    assert with_it.metadata["held_out_loss"] == without.metadata["held_out_loss"]
    for method in ("datamaps", "aum", "forgetting", "influence", "noise_classifier"):
        np.testing.assert_array_equal(with_it.scores[method], without.scores[method])
    # the head candidate is the same either way; NCV scores it unless the logistic one held out better
    assert with_it.metadata["ncv_held_out_loss"]["head"] == pytest.approx(
        -np.log(without.oof_probabilities[np.arange(y.size), y]).mean(), rel=1e-6
    )
    if with_it.metadata["ncv_model"] == "head":
        np.testing.assert_array_equal(with_it.scores["ncv"], without.scores["ncv"])
    again = find_mislabeled(x, y, epochs=4, ncv_logistic=True, random_state=1)
    np.testing.assert_array_equal(again.scores["ncv"], with_it.scores["ncv"])


def test_ncv_options_are_validated():
    x, y, _ = noisy_blobs(n_items=40)
    with pytest.raises(InputError, match="n_folds must be at least 2"):
        find_mislabeled(x, y, n_folds=1)
    with pytest.raises(InputError, match="at most n_items = 40"):
        find_mislabeled(x, y, n_folds=41)
    with pytest.raises(InputError, match="ncv_logistic"):
        find_mislabeled(x, y, ncv_logistic="yes")
