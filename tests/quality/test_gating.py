"""The sequential Beta gating rule: posterior values, boundaries, monotonicity, options."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import beta as beta_distribution

from galton.quality import AnnotationMatrix, InputError, gate_boundaries, gate_workers, gold_gate

RANK = {"fail": 0, "pending": 1, "pass": 2}


def test_posterior_values_match_scipy():
    s, n = np.array([0, 3, 9, 14, 40]), np.array([0, 5, 10, 14, 50])
    gate = gold_gate(s, n, target=0.75, prior=(2.0, 1.0), min_gold=0)
    a, b = 2.0 + s, 1.0 + n - s
    np.testing.assert_allclose(gate.p_above_target, beta_distribution.sf(0.75, a, b), rtol=1e-12)
    np.testing.assert_allclose(gate.accuracy, a / (a + b))
    np.testing.assert_allclose(gate.accuracy_low, beta_distribution.ppf(0.025, a, b))
    np.testing.assert_allclose(gate.accuracy_high, beta_distribution.ppf(0.975, a, b))


def test_exact_boundaries_uniform_prior():
    # all right: P(acc >= 0.8) = 1 - 0.8**(n+1) >= 0.95 first at n = 13 (0.9560; n = 12: 0.9450)
    gate = gold_gate([12, 13], [12, 13], target=0.8, confidence=0.95, min_gold=0)
    assert gate.decision.tolist() == ["pending", "pass"]
    # all wrong: P(acc < 0.8) = 1 - 0.2**(n+1) = 0.96 after one answer
    assert gold_gate([0], [1], target=0.8, confidence=0.95, min_gold=0).decision.tolist() == ["fail"]
    assert gold_gate([0], [1], target=0.8, confidence=0.95, min_gold=2).decision.tolist() == ["pending"]


def test_boundaries_are_the_rule():
    pass_at, fail_at = gate_boundaries(60, target=0.8, confidence=0.95, min_gold=5)
    n = np.repeat(np.arange(61), np.arange(61) + 1)
    s = np.concatenate([np.arange(k + 1) for k in range(61)])
    gate = gold_gate(s, n, target=0.8, confidence=0.95, min_gold=5, max_more=1)
    expected = np.where(s >= pass_at[n], "pass", np.where(s <= fail_at[n], "fail", "pending"))
    assert gate.decision.tolist() == expected.tolist()
    assert pass_at[13] == 13 and (pass_at[:13] == np.arange(13) + 1).all()
    assert (fail_at[:5] == -1).all()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 80), data=st.data(), target=st.floats(0.55, 0.95), confidence=st.floats(0.8, 0.99),
       min_gold=st.integers(0, 15))
def test_more_right_answers_never_hurt(n, data, target, confidence, min_gold):
    s = data.draw(st.integers(0, n))
    options = dict(target=target, confidence=confidence, min_gold=min_gold, max_more=1)
    here = gold_gate([s], [n], **options).decision[0]
    # one more right answer at the same n, and one more right answer added
    if s < n:
        assert RANK[gold_gate([s + 1], [n], **options).decision[0]] >= RANK[here]
    after = gold_gate([s + 1], [n + 1], **options).decision[0]
    assert not (here == "pass" and after != "pass")  # a fail may become pending: P(acc >= t) grew
    if n >= min_gold:  # (below min_gold, reaching it may decide either way)
        assert not (here != "fail" and after == "fail")


def test_decisions_monotone_in_successes():
    n = 30
    gate = gold_gate(np.arange(n + 1), np.full(n + 1, n), target=0.8, confidence=0.95)
    ranks = [RANK[d] for d in gate.decision]
    assert ranks == sorted(ranks) and ranks[0] == 0 and ranks[-1] == 2


def test_more_gold_needed_is_a_real_estimate():
    gate = gold_gate([14, 2, 3, 0, 40], [14, 6, 3, 0, 50], target=0.8, confidence=0.95, min_gold=5)
    assert gate.more_gold_needed[:2].tolist() == [0, 0]
    assert gate.decision[2] == "pending" and gate.more_gold_needed[2] >= 2  # at least up to min_gold
    assert gate.more_gold_needed[3] >= 5
    # close to the target: needs many more
    assert gate.more_gold_needed[4] == -1 or gate.more_gold_needed[4] > 50
    assert "more gold tasks needed" in gate.reason[2]


def test_gate_workers_on_a_matrix():
    rng = np.random.default_rng(1)
    n_items, accuracies = 60, np.array([0.98, 0.4, 0.8])
    truth = rng.integers(0, 3, n_items)
    items = np.repeat(np.arange(n_items), 3)
    workers = np.tile(np.arange(3), n_items)
    right = rng.random(items.size) < accuracies[workers]
    labels = np.where(right, truth[items], (truth[items] + 1) % 3)
    matrix = AnnotationMatrix.from_codes(items, workers, labels, n_classes=3)
    gold = np.where(np.arange(n_items) < 40, truth, -1)
    gate = gate_workers(matrix, gold, target=0.75, confidence=0.95)
    assert gate.decision[0] == "pass" and gate.decision[1] == "fail"
    assert gate.gold_n.tolist() == [40, 40, 40]
    assert np.isfinite(gate.spam_probability).all() and np.isfinite(gate.agreement).all()
    rows = gate.to_rows()
    assert rows[0]["decision"] == "fail" and set(rows[0]) >= {"worker", "reason", "p_above_target"}


def test_bad_options_and_input():
    with pytest.raises(InputError, match="confidence"):
        gold_gate([1], [2], confidence=0.5)
    with pytest.raises(InputError, match="target"):
        gold_gate([1], [2], target=1.0)
    with pytest.raises(InputError, match="gold_correct outside"):
        gold_gate([3], [2])
    matrix = AnnotationMatrix.from_codes([0, 1], [0, 1], [0, 1], n_classes=2)
    with pytest.raises(InputError, match="gold"):
        gate_workers(matrix, [-1, -1])
