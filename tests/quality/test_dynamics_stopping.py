"""Early stopping on the NCV folds' held-out loss, and the default combined ranking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from galton.quality import InputError
from galton.quality.dynamics import DEFAULT_COMBINE, find_mislabeled, rank_average

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
    # NCV's scores are the out-of-fold probabilities of that epoch: their loss is the minimum
    p = report.oof_probabilities[np.arange(y.size), y]
    assert -np.log(p).mean() == pytest.approx(loss[used - 1], rel=1e-4)
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
