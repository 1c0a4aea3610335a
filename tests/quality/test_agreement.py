"""Agreement coefficients: published worked examples, reference libraries, invariants.

Reference values come from
- Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 coders x 12 units
  example with missing data: nominal 0.743, ordinal 0.815, interval 0.849;
- the irrCAC R package vignette (Gwet), table ``cont3x3abstractors`` (2 raters, 100 items):
  Cohen's kappa 0.7964094, Scott's pi 0.7962397, Gwet's AC1 0.8493305,
  Krippendorff's alpha 0.7972585, percent agreement 0.89;
- the worked example of the Wikipedia article "Fleiss' kappa" (10 subjects, 14 raters): 0.210;
- scikit-learn (``cohen_kappa_score``), statsmodels (``fleiss_kappa``) and the
  ``krippendorff`` package on random sparse matrices;
- small loop implementations of the documented formulas, written independently of the
  vectorised code (exact, with ``fractions.Fraction``).
"""

from __future__ import annotations

import json
import warnings
from fractions import Fraction

import krippendorff
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from galton.quality import AnnotationMatrix, InputError, StatisticsWarning
from galton.quality._agreement import (
    AgreementReport,
    Interval,
    PairwiseKappa,
    agreement_report,
    bootstrap_interval,
    cohen_kappa,
    cohen_kappa_matrix,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    raw_agreement,
)
from tests.strategies import annotation_matrices, permute

FAST = settings(max_examples=40, deadline=None)
QUIET = pytest.mark.filterwarnings("ignore::galton.quality.StatisticsWarning", "ignore::RuntimeWarning")

# Krippendorff (2011), p. 8: coders A-D (rows) x units 1-12 (columns), values 1-5, nan = missing
KRIPPENDORFF_EXAMPLE = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
        [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
    ]
)
# irrCAC vignette, cont3x3abstractors: rows rater A, columns rater B (Ectopic, AIU, NIU)
ABSTRACTORS = np.array([[13, 0, 0], [0, 20, 7], [0, 4, 56]])
# Wikipedia "Fleiss' kappa" worked example: votes of 14 raters per subject and category
FLEISS_WIKIPEDIA = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


# ---------------------------------------------------------------------------- builders
def from_reliability_data(data: np.ndarray, n_classes: int, offset: int = 1) -> AnnotationMatrix:
    """Coders x units with nan for missing, values ``offset .. offset + n_classes - 1``."""
    workers, items = np.nonzero(~np.isnan(data))
    labels = data[workers, items].astype(int) - offset
    return AnnotationMatrix.from_codes(
        items, workers, labels, n_items=data.shape[1], n_workers=data.shape[0], n_classes=n_classes
    )


def from_contingency(table: np.ndarray) -> AnnotationMatrix:
    """Two workers; ``table[k, l]`` items where worker 0 said k and worker 1 said l."""
    a, b = np.nonzero(table)
    reps = table[a, b]
    label_a, label_b = np.repeat(a, reps), np.repeat(b, reps)
    n = label_a.size
    return AnnotationMatrix.from_codes(
        np.r_[np.arange(n), np.arange(n)],
        np.r_[np.zeros(n, int), np.ones(n, int)],
        np.r_[label_a, label_b],
        n_classes=table.shape[0],
    )


def from_vote_counts(counts: np.ndarray) -> AnnotationMatrix:
    """Item x class vote counts; the j-th vote on an item comes from worker j."""
    items, classes = np.nonzero(counts)
    reps = counts[items, classes]
    items, labels = np.repeat(items, reps), np.repeat(classes, reps)
    starts = np.searchsorted(items, np.arange(counts.shape[0]))
    workers = np.arange(items.size) - starts[items]
    return AnnotationMatrix.from_codes(items, workers, labels, n_classes=counts.shape[1])


def to_reliability_data(m: AnnotationMatrix, values: np.ndarray | None = None) -> np.ndarray:
    data = np.full((m.n_workers, m.n_items), np.nan)
    data[m.workers, m.items] = m.labels if values is None else values[m.labels]
    return data


def with_labels(m: AnnotationMatrix, labels: np.ndarray) -> AnnotationMatrix:
    return AnnotationMatrix.from_codes(
        m.items, m.workers, labels, n_items=m.n_items, n_workers=m.n_workers, n_classes=m.n_classes
    )


def votes(m: AnnotationMatrix) -> list[list[int]]:
    """Per item, the list of labels (loop reference, no numpy tricks)."""
    out: list[list[int]] = [[] for _ in range(m.n_items)]
    for i, c in zip(m.items.tolist(), m.labels.tolist(), strict=True):
        out[i].append(c)
    return out


def same(a: float, b: float, tol: float = 1e-9) -> bool:
    if np.isnan(a) or np.isnan(b):
        return bool(np.isnan(a) and np.isnan(b))
    return abs(a - b) <= tol


# ---------------------------------------------------------------------------- loop references
def ref_fleiss(m: AnnotationMatrix) -> float:
    """The documented varying-raters Fleiss' kappa, one item at a time, exact."""
    p_items, pooled = [], [0] * m.n_classes
    for labels in votes(m):
        n = len(labels)
        if n < 2:
            continue
        p_items.append(Fraction(sum(labels.count(k) * (labels.count(k) - 1) for k in set(labels)), n * (n - 1)))
        for c in labels:
            pooled[c] += 1
    if not p_items:
        return float("nan")
    total = sum(pooled)
    p_e = sum(Fraction(x, total) ** 2 for x in pooled)
    if p_e == 1:
        return float("nan")
    return float((sum(p_items) / len(p_items) - p_e) / (1 - p_e))


def ref_ac1(m: AnnotationMatrix) -> float:
    """Gwet's AC1 with missing ratings (Gwet 2014), one item at a time, exact."""
    p_items, shares, n_rated = [], [Fraction(0)] * m.n_classes, 0
    for labels in votes(m):
        n = len(labels)
        if n == 0:
            continue
        n_rated += 1
        for k in range(m.n_classes):
            shares[k] += Fraction(labels.count(k), n)
        if n >= 2:
            p_items.append(Fraction(sum(labels.count(k) * (labels.count(k) - 1) for k in set(labels)), n * (n - 1)))
    if not p_items:
        return float("nan")
    p_a = sum(p_items) / len(p_items)
    p_e = sum(s / n_rated * (1 - s / n_rated) for s in shares) / (m.n_classes - 1)
    return float((p_a - p_e) / (1 - p_e))


def ref_ac1_two_raters(table: np.ndarray) -> float:
    """Gwet (2008), two raters: p_a = trace / n, pi_k = (row_k + col_k) / 2n."""
    n = table.sum()
    p_a = np.trace(table) / n
    pi = (table.sum(axis=1) + table.sum(axis=0)) / (2 * n)
    p_e = (pi * (1 - pi)).sum() / (table.shape[0] - 1)
    return (p_a - p_e) / (1 - p_e)


def shared_labels(m: AnnotationMatrix, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    la = {i: c for i, w, c in zip(m.items.tolist(), m.workers.tolist(), m.labels.tolist(), strict=True) if w == a}
    lb = {i: c for i, w, c in zip(m.items.tolist(), m.workers.tolist(), m.labels.tolist(), strict=True) if w == b}
    common = sorted(set(la) & set(lb))
    return np.array([la[i] for i in common], dtype=int), np.array([lb[i] for i in common], dtype=int)


# ---------------------------------------------------------------------------- published examples
@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_published_example(level, published):
    m = from_reliability_data(KRIPPENDORFF_EXAMPLE, n_classes=5)
    alpha = krippendorff_alpha(m, level=level)
    assert round(alpha, 3) == published
    reference = krippendorff.alpha(
        reliability_data=KRIPPENDORFF_EXAMPLE, level_of_measurement=level, value_domain=[1, 2, 3, 4, 5]
    )
    assert alpha == pytest.approx(reference, abs=1e-12)


def test_krippendorff_example_interval_values_shift_and_scale_invariant():
    m = from_reliability_data(KRIPPENDORFF_EXAMPLE, n_classes=5)
    # the paper's values are 1..5; the default positions are the codes 0..4
    assert krippendorff_alpha(m, level="interval", values=[1, 2, 3, 4, 5]) == pytest.approx(
        krippendorff_alpha(m, level="interval"), abs=1e-12
    )
    assert krippendorff_alpha(m, level="interval", values=[10, 30, 50, 70, 90]) == pytest.approx(0.849, abs=5e-4)
    # unequal spacing changes interval alpha but never ordinal alpha
    spaced = krippendorff_alpha(m, level="interval", values=[0, 1, 2, 3, 10])
    assert spaced != pytest.approx(krippendorff_alpha(m, level="interval"), abs=1e-3)


def test_gwet_ac1_on_krippendorff_example_by_hand():
    m = from_reliability_data(KRIPPENDORFF_EXAMPLE, n_classes=5)
    # units 1-11 are pairable; P_i = 1 except unit 2 (3/4 agree: 6/12), unit 6 (0) and unit 8 (6/12)
    p_a = Fraction(8 + Fraction(1, 2) + 0 + Fraction(1, 2), 11)
    # pi_k: mean over all 12 rated units of each unit's vote share
    shares = [
        1 + Fraction(1, 4) + Fraction(3, 4) + 1,  # class 1: units 1, 6, 8, 11
        Fraction(3, 4) + 1 + Fraction(1, 4) + Fraction(1, 4) + 1,  # class 2: units 2, 5, 6, 8, 9
        Fraction(1, 4) + 1 + 1 + Fraction(1, 4) + 1,  # class 3: units 2, 3, 4, 6, 12
        Fraction(1, 4) + 1,  # class 4: units 6, 7
        Fraction(1),  # class 5: unit 10
    ]
    pi = [s / 12 for s in shares]
    assert sum(pi) == 1
    p_e = sum(p * (1 - p) for p in pi) / 4
    expected = float((p_a - p_e) / (1 - p_e))
    assert gwet_ac1(m) == pytest.approx(expected, abs=1e-12)
    assert round(expected, 4) == 0.7754
    assert gwet_ac1(m) == pytest.approx(ref_ac1(m), abs=1e-12)


def test_irrcac_two_rater_table():
    m = from_contingency(ABSTRACTORS)
    assert cohen_kappa(m, 0, 1) == pytest.approx(0.7964094, abs=5e-8)
    assert gwet_ac1(m) == pytest.approx(0.8493305, abs=5e-8)
    assert gwet_ac1(m) == pytest.approx(ref_ac1_two_raters(ABSTRACTORS), abs=1e-12)
    assert krippendorff_alpha(m) == pytest.approx(0.7972585, abs=5e-8)
    # with two raters Fleiss' kappa is Scott's pi
    assert fleiss_kappa(m) == pytest.approx(0.7962397, abs=5e-8)
    assert raw_agreement(m).overall == pytest.approx(0.89, abs=1e-12)


def test_fleiss_wikipedia_example():
    m = from_vote_counts(FLEISS_WIKIPEDIA)
    assert round(fleiss_kappa(m), 3) == 0.210
    assert fleiss_kappa(m) == pytest.approx(sm_fleiss_kappa(FLEISS_WIKIPEDIA), abs=1e-12)


def test_kappa_paradox_ac1_stays_high():
    # 100 items, class 0 dominates: both raters say 0 on 90, disagree on 10
    table = np.array([[90, 5], [5, 0]])
    m = from_contingency(table)
    p_o, p_e = 0.90, 0.95**2 + 0.05**2
    assert raw_agreement(m).overall == pytest.approx(0.90)
    assert cohen_kappa(m, 0, 1) == pytest.approx((p_o - p_e) / (1 - p_e))
    assert cohen_kappa(m, 0, 1) < 0
    assert fleiss_kappa(m) < 0
    assert krippendorff_alpha(m) < 0.05
    assert gwet_ac1(m) == pytest.approx(ref_ac1_two_raters(table))
    assert gwet_ac1(m) == pytest.approx((0.90 - 2 * 0.95 * 0.05) / (1 - 2 * 0.95 * 0.05))
    assert gwet_ac1(m) > 0.85


def test_kappa_paradox_many_raters():
    # 3 raters, 60 items; all say 0 on 54 items, a lone dissent on the other 6
    rows = [[0, 0, 0]] * 54 + [[1, 0, 0], [0, 1, 0], [0, 0, 1]] * 2
    data = np.array(rows, dtype=float).T
    m = from_reliability_data(data, n_classes=2, offset=0)
    assert raw_agreement(m).overall == pytest.approx((54 + 6 / 3) / 60)
    assert fleiss_kappa(m) < 0
    assert gwet_ac1(m) > 0.9
    assert gwet_ac1(m) == pytest.approx(ref_ac1(m), abs=1e-12)


@given(
    st.lists(st.integers(0, 30), min_size=4, max_size=4).filter(lambda t: sum(t) > 0),
)
@FAST
@QUIET
def test_gwet_ac1_two_rater_formula(cells):
    table = np.array(cells).reshape(2, 2)
    assert same(gwet_ac1(from_contingency(table)), ref_ac1_two_raters(table))


# ---------------------------------------------------------------------------- reference libraries
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@given(m=annotation_matrices(max_items=10, max_workers=5, max_classes=4))
@settings(max_examples=25, deadline=None)
@QUIET
def test_cohen_kappa_matches_sklearn(weights, m):
    pairwise = cohen_kappa_matrix(m, weights=weights)
    for a in range(m.n_workers):
        for b in range(m.n_workers):
            y1, y2 = shared_labels(m, a, b)
            assert pairwise.overlap[a, b] == y1.size
            if a == b:
                assert pairwise.kappa[a, a] == 1.0 if y1.size else np.isnan(pairwise.kappa[a, a])
                continue
            if y1.size == 0:
                assert np.isnan(pairwise.kappa[a, b])
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = cohen_kappa_score(y1, y2, labels=np.arange(m.n_classes), weights=weights)
            assert same(pairwise.kappa[a, b], expected)
            assert same(cohen_kappa(m, a, b, weights=weights), pairwise.kappa[a, b])


@given(m=annotation_matrices(max_items=15, max_workers=6, density=1.0, min_per_item=2))
@FAST
@QUIET
def test_fleiss_matches_statsmodels_with_equal_raters(m):
    table, _ = aggregate_raters(to_reliability_data(m).T.astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = sm_fleiss_kappa(table)
    assert same(fleiss_kappa(m), expected)


@given(m=annotation_matrices(max_items=15, max_workers=6))
@FAST
@QUIET
def test_fleiss_matches_loop_reference_with_varying_raters(m):
    assert same(fleiss_kappa(m), ref_fleiss(m))


@given(m=annotation_matrices(max_items=15, max_workers=6))
@FAST
@QUIET
def test_gwet_ac1_matches_loop_reference(m):
    assert same(gwet_ac1(m), ref_ac1(m))


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@given(m=annotation_matrices(max_items=15, max_workers=6, max_classes=5))
@settings(max_examples=30, deadline=None)
@QUIET
def test_alpha_matches_krippendorff_package(level, m):
    assume((m.item_sizes() >= 2).any())
    expected = krippendorff.alpha(
        reliability_data=to_reliability_data(m),
        level_of_measurement=level,
        value_domain=np.arange(m.n_classes),
    )
    assert same(krippendorff_alpha(m, level=level), expected)


@given(
    m=annotation_matrices(max_items=15, max_workers=6, max_classes=4),
    values=st.lists(st.floats(-50, 50, allow_nan=False), min_size=4, max_size=4, unique=True),
)
@settings(max_examples=30, deadline=None)
@QUIET
def test_alpha_interval_values_match_krippendorff_package(m, values):
    assume((m.item_sizes() >= 2).any())
    positions = np.array(values[: m.n_classes])
    expected = krippendorff.alpha(
        reliability_data=to_reliability_data(m, positions),
        level_of_measurement="interval",
        value_domain=positions,
    )
    assert same(krippendorff_alpha(m, level="interval", values=positions), expected, tol=1e-7)


@given(m=annotation_matrices(max_items=15, max_workers=6))
@FAST
@QUIET
def test_raw_agreement_matches_loop_reference(m):
    result = raw_agreement(m)
    per_item = votes(m)
    expected = []
    for i, c in zip(m.items.tolist(), m.labels.tolist(), strict=True):
        others = list(per_item[i])
        others.remove(c)
        expected.append(others.count(c) / len(others) if others else np.nan)
    np.testing.assert_allclose(result.per_annotation, expected, equal_nan=True)
    scored = ~np.isnan(result.per_annotation)
    assert ((result.per_annotation[scored] >= 0) & (result.per_annotation[scored] <= 1)).all()
    for i in range(m.n_items):
        rows = (m.items == i) & scored
        assert same(result.per_item[i], result.per_annotation[rows].mean() if rows.any() else np.nan)
    for w in range(m.n_workers):
        rows = (m.workers == w) & scored
        assert same(result.per_worker[w], result.per_annotation[rows].mean() if rows.any() else np.nan)
    assert same(result.overall, result.per_annotation[scored].mean() if scored.any() else np.nan)


# ---------------------------------------------------------------------------- invariants
@given(m=annotation_matrices(max_items=12, max_workers=6), seed=st.integers(0, 2**32 - 1))
@FAST
@QUIET
def test_coefficients_invariant_to_relabelling_items_workers_classes(m, seed):
    permuted, pi, pw, _ = permute(m, np.random.default_rng(seed))
    for f in (fleiss_kappa, gwet_ac1, krippendorff_alpha, lambda x: raw_agreement(x).overall):
        assert same(f(permuted), f(m))
    raw, raw_p = raw_agreement(m), raw_agreement(permuted)
    np.testing.assert_allclose(raw_p.per_item[pi], raw.per_item, equal_nan=True)
    np.testing.assert_allclose(raw_p.per_worker[pw], raw.per_worker, equal_nan=True)
    k, k_p = cohen_kappa_matrix(m), cohen_kappa_matrix(permuted)
    np.testing.assert_allclose(k_p.kappa[np.ix_(pw, pw)], k.kappa, equal_nan=True, atol=1e-12)
    np.testing.assert_array_equal(k_p.overlap[np.ix_(pw, pw)], k.overlap)
    np.testing.assert_allclose(k_p.mean_per_worker[pw], k.mean_per_worker, equal_nan=True, atol=1e-12)


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
@given(m=annotation_matrices(max_items=12, max_workers=6), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=20, deadline=None)
@QUIET
def test_ordered_coefficients_invariant_to_items_and_workers(weights, m, seed):
    rng = np.random.default_rng(seed)
    pi, pw = rng.permutation(m.n_items), rng.permutation(m.n_workers)
    permuted = AnnotationMatrix.from_codes(
        pi[m.items], pw[m.workers], m.labels, n_items=m.n_items, n_workers=m.n_workers, n_classes=m.n_classes
    )
    for level in ("ordinal", "interval"):
        assert same(krippendorff_alpha(permuted, level=level), krippendorff_alpha(m, level=level))
    k, k_p = cohen_kappa_matrix(m, weights=weights), cohen_kappa_matrix(permuted, weights=weights)
    np.testing.assert_allclose(k_p.kappa[np.ix_(pw, pw)], k.kappa, equal_nan=True, atol=1e-12)


def test_ordered_coefficients_depend_on_class_order():
    # sanity check that the invariance test above could fail: reversing the middle classes matters
    m = from_reliability_data(KRIPPENDORFF_EXAMPLE, n_classes=5)
    swapped = with_labels(m, np.array([0, 2, 1, 3, 4])[m.labels])
    assert krippendorff_alpha(swapped, level="ordinal") != pytest.approx(krippendorff_alpha(m, level="ordinal"))
    assert krippendorff_alpha(swapped) == pytest.approx(krippendorff_alpha(m))


@given(m=annotation_matrices(max_items=12, max_workers=6), weights=st.sampled_from([None, "linear", "quadratic"]))
@FAST
@QUIET
def test_kappa_matrix_symmetric_and_bounded(m, weights):
    pk = cohen_kappa_matrix(m, weights=weights)
    np.testing.assert_array_equal(pk.kappa, pk.kappa.T)
    np.testing.assert_array_equal(pk.overlap, pk.overlap.T)
    np.testing.assert_array_equal(np.diag(pk.overlap), m.worker_sizes())
    finite = pk.kappa[np.isfinite(pk.kappa)]
    assert ((finite >= -1 - 1e-12) & (finite <= 1 + 1e-12)).all()
    has_items = m.worker_sizes() > 0
    assert (np.diag(pk.kappa)[has_items] == 1).all()
    assert np.isnan(np.diag(pk.kappa)[~has_items]).all()
    assert np.isnan(pk.kappa[(pk.overlap == 0)]).all()


@given(m=annotation_matrices(max_items=12, max_workers=6, min_per_item=2), data=st.data())
@FAST
@QUIET
def test_perfect_agreement_gives_one(m, data):
    truth = np.array(data.draw(st.lists(st.integers(0, m.n_classes - 1), min_size=m.n_items, max_size=m.n_items)))
    assume(np.unique(truth).size >= 2)
    perfect = with_labels(m, truth[m.items])
    assert fleiss_kappa(perfect) == pytest.approx(1.0)
    assert gwet_ac1(perfect) == pytest.approx(1.0)
    assert raw_agreement(perfect).overall == 1.0
    for level in ("nominal", "ordinal", "interval"):
        assert krippendorff_alpha(perfect, level=level) == pytest.approx(1.0)
    pk = cohen_kappa_matrix(perfect)
    finite = pk.kappa[np.isfinite(pk.kappa)]
    assert finite == pytest.approx(np.ones_like(finite))
    # one worker spoiling one label lowers every coefficient below 1
    spoiled = np.array(perfect.labels)
    spoiled[0] = (spoiled[0] + 1) % m.n_classes
    assert fleiss_kappa(with_labels(m, spoiled)) < 1.0
    assert krippendorff_alpha(with_labels(m, spoiled)) < 1.0


# ---------------------------------------------------------------------------- pairwise details
def test_min_overlap_and_overlap_weighted_means():
    # worker 0 and 1 share 4 items (kappa by hand), 0 and 2 share 2, 1 and 2 share none
    items = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    workers = [0, 1, 0, 1, 0, 1, 0, 1, 0, 2, 0, 2]
    labels = [0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1]
    m = AnnotationMatrix.from_codes(items, workers, labels)
    k01 = cohen_kappa_score([0, 1, 0, 1], [0, 1, 1, 1])
    k02 = cohen_kappa_score([0, 1], [1, 1])
    pk = cohen_kappa_matrix(m)
    assert pk.overlap.tolist() == [[6, 4, 2], [4, 4, 0], [2, 0, 2]]
    assert pk.kappa[0, 1] == pytest.approx(k01)
    assert pk.kappa[0, 2] == pytest.approx(k02)
    assert np.isnan(pk.kappa[1, 2])
    assert pk.mean_per_worker[0] == pytest.approx((4 * k01 + 2 * k02) / 6)
    assert pk.mean_per_worker[1] == pytest.approx(k01)
    assert pk.mean_kappa == pytest.approx((4 * k01 + 2 * k02) / 6)
    strict = cohen_kappa_matrix(m, min_overlap=3)
    assert np.isnan(strict.kappa[0, 2]) and strict.kappa[0, 1] == pytest.approx(k01)
    assert strict.mean_per_worker[0] == pytest.approx(k01)
    assert np.isnan(strict.mean_per_worker[2])
    assert (np.diag(strict.kappa) == 1).all()


def test_undefined_kappa_pairs_warn_once():
    # every pair of three workers uses only class 0 on shared items: chance agreement 1
    m = AnnotationMatrix.from_codes([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [0] * 6, n_classes=2)
    with pytest.warns(StatisticsWarning, match="3 worker pairs have chance agreement 1") as record:
        pk = cohen_kappa_matrix(m)
    assert len([w for w in record if issubclass(w.category, StatisticsWarning)]) == 1
    assert np.isnan(pk.kappa[~np.eye(3, dtype=bool)]).all()
    with pytest.warns(StatisticsWarning, match="chance agreement is 1"):
        assert np.isnan(cohen_kappa(m, 0, 2))


def test_cohen_kappa_without_shared_items():
    m = AnnotationMatrix.from_codes([0, 1, 2, 2], [0, 1, 0, 1], [0, 1, 0, 1], n_workers=3)
    with pytest.warns(StatisticsWarning, match="share no item"):
        assert np.isnan(cohen_kappa(m, 0, 2))
    assert cohen_kappa(m, 1, 1) == 1.0
    with pytest.warns(StatisticsWarning, match="no annotations"):
        assert np.isnan(cohen_kappa(m, 2, 2))
    with pytest.warns(StatisticsWarning, match="no two workers share"):
        cohen_kappa_matrix(m, min_overlap=5)


@given(m=annotation_matrices(max_items=12, max_workers=6), weights=st.sampled_from([None, "linear", "quadratic"]))
@settings(max_examples=20, deadline=None)
@QUIET
def test_kappa_matrix_same_with_sorted_pair_index(m, weights):
    # many workers switch _pair_tables from a dense worker-pair index to np.unique; both must agree
    from galton.quality import _agreement

    dense = cohen_kappa_matrix(m, weights=weights)
    saved = _agreement._DENSE_PAIR_ENTRIES
    _agreement._DENSE_PAIR_ENTRIES = 0
    try:
        compact = cohen_kappa_matrix(m, weights=weights)
    finally:
        _agreement._DENSE_PAIR_ENTRIES = saved
    np.testing.assert_array_equal(compact.kappa, dense.kappa)
    np.testing.assert_array_equal(compact.overlap, dense.overlap)


def test_kappa_matrix_with_hundreds_of_workers():
    rng = np.random.default_rng(3)
    n_items, n_workers, per = 4000, 300, 5
    items = np.repeat(np.arange(n_items), per)
    workers = np.argsort(rng.random((n_items, n_workers)), axis=1)[:, :per].ravel()
    labels = rng.integers(0, 3, items.size)
    m = AnnotationMatrix.from_codes(items, workers, labels, n_workers=n_workers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticsWarning)
        pk = cohen_kappa_matrix(m, weights="quadratic")
    assert pk.overlap.sum() - np.trace(pk.overlap) == n_items * per * (per - 1)
    a, b = np.unravel_index(np.argmax(np.where(np.eye(n_workers, dtype=bool), 0, pk.overlap)), pk.overlap.shape)
    y1, y2 = shared_labels(m, int(a), int(b))
    assert pk.kappa[a, b] == pytest.approx(cohen_kappa_score(y1, y2, labels=[0, 1, 2], weights="quadratic"))


# ---------------------------------------------------------------------------- degenerate input
def test_no_item_with_two_annotations_warns_and_gives_nan():
    m = AnnotationMatrix.from_codes([0, 1, 2], [0, 1, 0], [0, 1, 1])
    for f in (fleiss_kappa, gwet_ac1, krippendorff_alpha):
        with pytest.warns(StatisticsWarning, match="no item has two or more annotations"):
            assert np.isnan(f(m))
    with pytest.warns(StatisticsWarning, match="no item has two or more annotations"):
        result = raw_agreement(m)
    assert np.isnan(result.overall) and np.isnan(result.per_annotation).all()
    assert np.isnan(result.per_item).all() and np.isnan(result.per_worker).all()


def test_single_class_used():
    m = AnnotationMatrix.from_codes([0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 1, 1], n_classes=3)
    with pytest.warns(StatisticsWarning, match="chance agreement is 1"):
        assert np.isnan(fleiss_kappa(m))
    for level in ("nominal", "ordinal", "interval"):
        with pytest.warns(StatisticsWarning, match="expected disagreement is 0"):
            assert np.isnan(krippendorff_alpha(m, level=level))
    assert gwet_ac1(m) == 1.0  # AC1 stays defined: p_e = 0 with one class used of three
    assert raw_agreement(m).overall == 1.0
    one_class = AnnotationMatrix.from_codes([0, 0], [0, 1], [0, 0])
    with pytest.warns(StatisticsWarning, match="n_classes >= 2"):
        assert np.isnan(gwet_ac1(one_class))


def test_empty_matrix_gives_nan():
    m = AnnotationMatrix.from_codes([], [], [], n_items=0, n_workers=0, n_classes=2)
    with pytest.warns(StatisticsWarning):
        assert np.isnan(fleiss_kappa(m))
    with pytest.warns(StatisticsWarning):
        ci = bootstrap_interval(fleiss_kappa, m, n_boot=5)
    assert ci.n_failed == 5 and np.isnan(ci.low) and np.isnan(ci.high)


# ---------------------------------------------------------------------------- bootstrap
@given(m=annotation_matrices(max_items=12, max_workers=5, min_per_item=2), seed=st.integers(0, 2**16))
@settings(max_examples=15, deadline=None)
@QUIET
def test_bootstrap_interval_is_reproducible_and_ordered(m, seed):
    first = bootstrap_interval(fleiss_kappa, m, n_boot=50, random_state=seed)
    again = bootstrap_interval(fleiss_kappa, m, n_boot=50, random_state=seed)
    assert first.to_dict() == again.to_dict()
    if not np.isnan(first.low):
        assert first.low <= first.high
    assert first.n_boot == 50 and 0 <= first.n_failed <= 50
    assert same(first.estimate, fleiss_kappa(m))


def test_bootstrap_interval_depends_on_seed_and_generator():
    m = from_reliability_data(KRIPPENDORFF_EXAMPLE, n_classes=5)

    def ordinal(x):
        return krippendorff_alpha(x, level="ordinal")

    a = bootstrap_interval(ordinal, m, n_boot=300, random_state=1)
    b = bootstrap_interval(ordinal, m, n_boot=300, random_state=2)
    c = bootstrap_interval(ordinal, m, n_boot=300, random_state=np.random.default_rng(1))
    assert (a.low, a.high) != (b.low, b.high)
    assert a == c
    assert a.low <= a.estimate <= a.high
    wide = bootstrap_interval(ordinal, m, n_boot=300, random_state=1, confidence=0.99)
    assert wide.low <= a.low and wide.high >= a.high


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@given(m=annotation_matrices(max_items=10, max_workers=5), seed=st.integers(0, 2**16))
@settings(max_examples=10, deadline=None)
@QUIET
def test_report_intervals_equal_generic_bootstrap(level, m, seed):
    report = agreement_report(m, level=level, n_boot=40, random_state=seed)
    statistics = {
        "raw_agreement": lambda x: raw_agreement(x).overall,
        "fleiss_kappa": fleiss_kappa,
        "krippendorff_alpha": lambda x: krippendorff_alpha(x, level=level),
        "gwet_ac1": gwet_ac1,
    }
    for name, statistic in statistics.items():
        fast: Interval = getattr(report, name)
        slow = bootstrap_interval(statistic, m, n_boot=40, random_state=seed)
        assert fast.n_failed == slow.n_failed
        for field in ("estimate", "low", "high"):
            assert same(getattr(fast, field), getattr(slow, field), tol=1e-9), (name, field)


def test_bootstrap_interval_is_the_percentile_interval_of_item_resamples():
    m = from_reliability_data(KRIPPENDORFF_EXAMPLE, n_classes=5)
    seen: list[AnnotationMatrix] = []

    def recording(x: AnnotationMatrix) -> float:
        seen.append(x)
        return fleiss_kappa(x)

    ci = bootstrap_interval(recording, m, n_boot=400, confidence=0.9, random_state=7)
    assert seen[0] is m and len(seen) == 401
    draws = np.array([fleiss_kappa(x) for x in seen[1:]])
    assert ci.low == pytest.approx(np.quantile(draws, 0.05), abs=1e-12)
    assert ci.high == pytest.approx(np.quantile(draws, 0.95), abs=1e-12)
    # each draw resamples the 12 items with replacement (a repeated item becomes its own item)
    assert all(x.n_items == m.n_items and x.n_workers == m.n_workers for x in seen[1:])
    assert len({x.n_annotations for x in seen[1:]}) > 1


def test_bootstrap_counts_and_warns_about_nan_draws():
    # 20 items, only one with two annotations: most resamples miss it
    items = [0, *range(20)]
    workers = [1] + [0] * 20
    labels = [0, 1] + [1] * 19
    m = AnnotationMatrix.from_codes(items, workers, labels)
    with pytest.warns(StatisticsWarning, match="bootstrap draws of fleiss_kappa were nan") as record:
        ci = bootstrap_interval(fleiss_kappa, m, n_boot=200, random_state=0)
    assert len(record) == 1  # the draws' own warnings are counted in n_failed, not repeated
    # P(item 0 absent from a resample) = (19/20)^20 ~ 0.36
    assert 0.2 * 200 < ci.n_failed < 0.55 * 200
    with pytest.warns(StatisticsWarning) as record:
        report = agreement_report(m, n_boot=200, random_state=0)
    messages = [str(w.message) for w in record]
    for name in ("raw agreement", "Fleiss' kappa", "Krippendorff's alpha", "Gwet's AC1"):
        assert any(f"{ci.n_failed} of 200 bootstrap draws of {name} were nan" in t for t in messages)
    assert all(w.filename == __file__ for w in record)  # attributed to the caller
    assert report.gwet_ac1.n_failed == ci.n_failed


def test_report_contents_and_json():
    m = from_reliability_data(KRIPPENDORFF_EXAMPLE, n_classes=5)
    report = agreement_report(m, level="ordinal", n_boot=200, random_state=0)
    assert isinstance(report, AgreementReport) and isinstance(report.pairwise, PairwiseKappa)
    assert report.krippendorff_alpha.estimate == pytest.approx(0.815, abs=5e-4)
    assert report.gwet_ac1.estimate == pytest.approx(gwet_ac1(m))
    assert report.fleiss_kappa.estimate == pytest.approx(fleiss_kappa(m))
    assert report.raw_agreement.estimate == pytest.approx(raw_agreement(m).overall)
    assert report.pairwise.weights == "linear"
    np.testing.assert_allclose(report.item_agreement, raw_agreement(m).per_item, equal_nan=True)
    np.testing.assert_allclose(report.worker_kappa, cohen_kappa_matrix(m, weights="linear").mean_per_worker)
    assert report.item_agreement.shape == (12,) and report.worker_agreement.shape == (4,)
    for interval in (report.raw_agreement, report.fleiss_kappa, report.krippendorff_alpha, report.gwet_ac1):
        assert interval.low <= interval.high and interval.n_boot == 200 and interval.confidence == 0.95
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["params"] == {
        "level": "ordinal",
        "n_boot": 200,
        "confidence": 0.95,
        "random_state": 0,
        "kappa_weights": "linear",
    }
    assert payload["item_agreement"][11] is None  # unit 12 has a single annotation
    assert payload["krippendorff_alpha"]["estimate"] == pytest.approx(report.krippendorff_alpha.estimate)
    assert len(payload["pairwise"]["kappa"]) == 4
    with pytest.raises(ValueError, match="read-only"):
        report.item_agreement[0] = 0.0


def test_report_bootstrap_on_ten_thousand_annotations():
    rng = np.random.default_rng(0)
    n_items, per = 2000, 5
    items = np.repeat(np.arange(n_items), per)
    workers = np.argsort(rng.random((n_items, 40)), axis=1)[:, :per].ravel()
    truth = rng.integers(0, 4, n_items)
    labels = np.where(rng.random(items.size) < 0.7, truth[items], rng.integers(0, 4, items.size))
    m = AnnotationMatrix.from_codes(items, workers, labels)
    report = agreement_report(m, level="ordinal", n_boot=1000, random_state=0)
    assert report.fleiss_kappa.low < report.fleiss_kappa.estimate < report.fleiss_kappa.high
    assert report.fleiss_kappa.high - report.fleiss_kappa.low < 0.1


# ---------------------------------------------------------------------------- input errors
M = AnnotationMatrix.from_codes([0, 0, 1, 1], [0, 1, 0, 1], [0, 1, 1, 1])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fleiss_kappa([[0, 1]]), "expected an AnnotationMatrix"),
        (lambda: raw_agreement(None), "expected an AnnotationMatrix"),
        (lambda: gwet_ac1("m"), "expected an AnnotationMatrix"),
        (lambda: cohen_kappa_matrix(np.zeros((2, 2))), "expected an AnnotationMatrix"),
        (lambda: krippendorff_alpha(M, level="ratio"), "level must be one of"),
        (lambda: krippendorff_alpha(M, level="Nominal"), "level must be one of"),
        (lambda: krippendorff_alpha(M, level="nominal", values=[0, 1]), "only applies to level='interval'"),
        (lambda: krippendorff_alpha(M, level="interval", values=[0, 1, 2]), r"shape \(n_classes,\)"),
        (lambda: krippendorff_alpha(M, level="interval", values=[0, np.inf]), "finite"),
        (lambda: krippendorff_alpha(M, level="interval", values=["a", "b"]), "real numbers"),
        (lambda: cohen_kappa_matrix(M, weights="squared"), "weights must be None, 'linear' or 'quadratic'"),
        (lambda: cohen_kappa(M, 0, 1, weights="Linear"), "weights must be"),
        (lambda: cohen_kappa_matrix(M, min_overlap=0), "min_overlap must be > 0"),
        (lambda: cohen_kappa_matrix(M, min_overlap=1.5), "min_overlap must be a whole number"),
        (lambda: cohen_kappa(M, 0, 2), r"worker_b=2 is outside the worker codes \[0, 2\)"),
        (lambda: cohen_kappa(M, "a", 1), "worker_a must be a worker code"),
        (lambda: bootstrap_interval(fleiss_kappa, M, n_boot=0), "n_boot must be > 0"),
        (lambda: bootstrap_interval(fleiss_kappa, M, n_boot=10.0), "n_boot must be a whole number"),
        (lambda: bootstrap_interval(fleiss_kappa, M, confidence=1.0), "confidence must be a number strictly"),
        (lambda: bootstrap_interval(fleiss_kappa, M, confidence=0), "confidence must be"),
        (lambda: bootstrap_interval(fleiss_kappa, M, confidence=95), "confidence must be"),
        (lambda: bootstrap_interval("fleiss", M), "statistic must be a callable"),
        (lambda: bootstrap_interval(fleiss_kappa, "m"), "expected an AnnotationMatrix"),
        (lambda: bootstrap_interval(fleiss_kappa, M, random_state="seed"), "random_state must be"),
        (lambda: agreement_report(M, level="ratio"), "level must be one of"),
        (lambda: agreement_report(M, n_boot=-1), "n_boot must be > 0"),
        (lambda: agreement_report(M, confidence=1.5), "confidence must be"),
        (lambda: agreement_report([1, 2]), "expected an AnnotationMatrix"),
    ],
)
def test_bad_input_raises_input_error(call, message):
    with pytest.raises(InputError, match=message):
        call()
