"""galton.quality.perspectives: disagreement diagnosis, soft labels, multi-annotator and jury models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from galton.quality import AnnotationMatrix, InputError, majority_vote
from galton.quality.perspectives import (
    competence_diagnosis,
    disagreement_diagnosis,
    group_jury_verdicts,
    jury_model,
    multi_annotator_model,
    simulate_perspectives,
    soft_labels,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def sim():
    return simulate_perspectives(600, random_state=1)


def _split(matrix: AnnotationMatrix, test_share: float = 0.25, seed: int = 0):
    test_items = np.random.default_rng(seed).random(matrix.n_items) < test_share
    train_rows = ~test_items[matrix.items]
    train = AnnotationMatrix.from_codes(
        matrix.items[train_rows], matrix.workers[train_rows], matrix.labels[train_rows],
        n_items=matrix.n_items, n_workers=matrix.n_workers, n_classes=matrix.n_classes,
    )
    return train, test_items, ~train_rows


@pytest.fixture(scope="module")
def fitted(sim):
    train, test_items, test_rows = _split(sim.matrix)
    return train, test_items, test_rows, multi_annotator_model(sim.features, train, random_state=0)


# ---------------------------------------------------------------- diagnosis


def test_systematic_flag_finds_the_planted_slice(sim):
    d = disagreement_diagnosis(sim.matrix, sim.groups, random_state=0)
    assert roc_auc_score(sim.in_slice, d.systematic_score) >= 0.95
    assert d.systematic[sim.in_slice].mean() >= 0.6
    assert d.systematic[sim.is_noisy].mean() <= 0.03  # planted random noise does not fire
    assert d.systematic[~sim.in_slice].mean() <= 0.03
    assert d.noise_score[sim.is_noisy].mean() > 2 * d.noise_score[sim.in_slice].mean()
    names = d.kind_names()
    assert {names[i] for i in np.flatnonzero(d.systematic)} == {"systematic"}
    meta = d.item_meta()
    assert len(meta) == sim.matrix.n_items
    flagged = int(np.flatnonzero(d.systematic)[0])
    assert meta[flagged]["disagreement"] == "systematic" and set(meta[flagged]["split_groups"]) == {"A", "B"}


def test_small_groups_do_not_fire():
    # one dissenting rater in a group of one: shrinkage keeps the score low, the flag off
    m = AnnotationMatrix.from_codes([0] * 8, list(range(8)), [0] * 7 + [1])
    d = disagreement_diagnosis(m, ["A"] * 7 + ["B"], random_state=0)
    assert not d.systematic[0] and d.kind_names() == ["noise"]


def test_diagnosis_is_reproducible_and_read_only(sim):
    a = disagreement_diagnosis(sim.matrix, sim.groups, random_state=3)
    b = disagreement_diagnosis(sim.matrix, sim.groups, random_state=3)
    np.testing.assert_array_equal(a.p_value, b.p_value)
    with pytest.raises(ValueError):
        a.p_value[0] = 0.0


# ---------------------------------------------------------------- soft labels


def test_soft_labels_are_vote_shares(sim):
    q = soft_labels(sim.matrix)
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    counts = sim.matrix.label_counts()
    np.testing.assert_allclose(q, counts / counts.sum(axis=1, keepdims=True))
    smoothed = soft_labels(sim.matrix, smoothing=1.0)
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0)
    assert smoothed.min() > 0


# ---------------------------------------------------------------- multi-annotator model


def test_multi_annotator_beats_majority_model_on_held_out_annotators(sim, fitted):
    train, _test_items, test_rows, model = fitted
    m = sim.matrix
    mv = majority_vote(train).labels
    has = train.item_sizes() > 0
    single = AnnotationMatrix.from_codes(np.flatnonzero(has), np.zeros(has.sum(), dtype=int), mv[has],
                                         n_items=m.n_items, n_workers=1, n_classes=m.n_classes)
    baseline = multi_annotator_model(sim.features, single, random_state=0)
    items, workers, labels = m.items[test_rows], m.workers[test_rows], m.labels[test_rows]
    heads = model.worker_proba(sim.features[items], workers).argmax(axis=1) == labels
    base = baseline.prediction.labels[items] == labels
    assert heads.mean() > base.mean()
    on_slice = sim.in_slice[items]
    assert heads[on_slice].mean() > base[on_slice].mean() + 0.1  # it learnt group B's perspective


def test_uncertainty_is_higher_on_planted_disagreement(sim, fitted):
    _, test_items, _, model = fitted
    u = model.prediction.uncertainty
    assert u[test_items & sim.in_slice].mean() > 2 * u[test_items & ~sim.in_slice].mean()
    assert roc_auc_score(sim.in_slice[test_items], u[test_items]) >= 0.8
    p = model.prediction
    np.testing.assert_allclose(p.posteriors.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p.head_votes.sum(axis=1), 1.0)
    assert ((u >= 0) & (u <= 1)).all()


def test_multi_annotator_is_reproducible(sim):
    small = simulate_perspectives(120, random_state=2)
    a = multi_annotator_model(small.features, small.matrix, epochs=3, random_state=7)
    b = multi_annotator_model(small.features, small.matrix, epochs=3, random_state=7)
    c = multi_annotator_model(small.features, small.matrix, epochs=3, random_state=8)
    np.testing.assert_array_equal(a.prediction.posteriors, b.prediction.posteriors)
    assert not np.array_equal(a.prediction.posteriors, c.prediction.posteriors)
    with pytest.raises(ValueError):
        a.weights["heads.w"][0, 0, 0] = 1.0


# ---------------------------------------------------------------- jury learning


@pytest.fixture(scope="module")
def jury(sim):
    return jury_model(sim.features, sim.matrix, {"group": list(sim.groups)}, random_state=0)


def test_jury_of_group_a_gives_group_a_labels(sim, jury):
    n_a = sim.groups.count("A")
    verdicts = jury.verdicts(composition={"A": n_a}, n_samples=5, random_state=0)
    predicted = jury.predicted_labels()[:, np.array(sim.groups) == "A"]
    counts = np.stack([(predicted == k).sum(axis=1) for k in range(sim.matrix.n_classes)], axis=1)
    clear = np.sort(counts, axis=1)[:, -1] > np.sort(counts, axis=1)[:, -2]
    np.testing.assert_array_equal(verdicts.distribution[clear].max(axis=1), 1.0)
    np.testing.assert_array_equal(verdicts.labels[clear], counts[clear].argmax(axis=1))
    assert (verdicts.labels == sim.group_labels[:, 0]).mean() >= 0.9
    b = jury.verdicts(composition={"B": 6}, n_samples=5, random_state=0)
    assert (b.labels[sim.in_slice] == sim.group_labels[sim.in_slice, 1]).mean() >= 0.8


def test_mixed_jury_splits_on_the_slice(sim, jury):
    v = jury.verdicts(composition={"A": 6, "B": 6}, n_samples=40, random_state=1)
    np.testing.assert_allclose(v.distribution.sum(axis=1), 1.0)
    assert v.distribution[sim.in_slice].max(axis=1).mean() < v.distribution[~sim.in_slice].max(axis=1).mean() - 0.2
    again = jury.verdicts(composition={"A": 6, "B": 6}, n_samples=40, random_state=1)
    np.testing.assert_array_equal(v.distribution, again.distribution)


# ---------------------------------------------------------------- validation


def test_input_errors(sim, jury):
    m = sim.matrix
    with pytest.raises(InputError, match="one group per worker"):
        disagreement_diagnosis(m, ["A", "B"])
    with pytest.raises(InputError, match="at least two rater groups"):
        disagreement_diagnosis(m, ["A"] * m.n_workers)
    with pytest.raises(InputError, match="alpha"):
        disagreement_diagnosis(m, sim.groups, alpha=2.0)
    with pytest.raises(InputError, match="smoothing"):
        soft_labels(m, smoothing=-1)
    with pytest.raises(InputError, match="AnnotationMatrix"):
        soft_labels([[0, 1]])
    with pytest.raises(InputError, match="one row per item"):
        multi_annotator_model(sim.features[:10], m)
    bad = np.array(sim.features)
    bad[3, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        multi_annotator_model(bad, m)
    with pytest.raises(InputError, match="epochs"):
        multi_annotator_model(sim.features, m, epochs=0)
    with pytest.raises(InputError, match=r"rater_table\['group'\]"):
        jury_model(sim.features, m, {"group": ["A"]})
    with pytest.raises(InputError, match="only 12 workers"):
        jury.verdicts(composition={"B": 13})
    with pytest.raises(InputError, match="no worker has group='C'"):
        jury.verdicts(composition={"C": 1})
    with pytest.raises(InputError, match="not a rater-table column"):
        jury.verdicts(composition={"A": 1}, by="age")


def test_importing_does_not_import_torch():
    code = "import sys, galton.quality, galton.quality.perspectives; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- real data (slow)


@pytest.mark.slow
def test_music_genre_model_trains_on_real_crowd():
    folder = SHARED / "crowd" / "music_genre"
    if not folder.exists():
        pytest.skip("../shared/data not present")
    import csv

    with (folder / "annotations.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    with (folder / "features_items.csv").open(newline="") as f:
        order = [r["item"] for r in csv.DictReader(f)]
    m, enc = AnnotationMatrix.from_triplets([r["item"] for r in rows], [r["worker"] for r in rows],
                                            [r["label"] for r in rows])
    x = np.load(folder / "features.npy")[[order.index(i) for i in enc.item_ids]]
    model = multi_annotator_model(x, m, epochs=10, random_state=0)
    # snapshot-level check only; how well the heads track disagreement on held-out items is
    # measured by benchmarks/perspectives.py (benchmarks/results/perspectives.md)
    assert model.prediction.uncertainty.shape == (m.n_items,) and np.isfinite(model.prediction.uncertainty).all()
    assert (model.prediction.labels == majority_vote(m).labels).mean() > 0.5


# ---------------------------------------------------------------- uncertainty, raters' heads, no groups, group juries


def test_uncertainty_measures_follow_their_formulas(sim, fitted):
    _, _, _, model = fitted
    p = model.prediction
    k = sim.matrix.n_classes
    norm = 1 - 1 / k
    np.testing.assert_allclose(p.uncertainty, (1 - (p.head_votes**2).sum(axis=1)) / norm, atol=1e-12)
    np.testing.assert_allclose(p.expected_disagreement, (1 - (p.posteriors**2).sum(axis=1)) / norm, atol=1e-12)
    heads = model.head_proba(sim.features)[:, model.trained_heads]
    np.testing.assert_allclose(p.head_variance, heads.var(axis=1).sum(axis=1) / norm, atol=1e-9)
    np.testing.assert_allclose(p.posteriors, heads.mean(axis=1), atol=1e-9)
    for a in (p.uncertainty, p.expected_disagreement, p.head_variance):
        assert ((a >= 0) & (a <= 1)).all()


def test_predict_raters_uses_only_each_items_own_heads(sim, fitted):
    _, _, _, model = fitted
    m = sim.matrix
    r = model.predict_raters(sim.features, m)
    heads = model.head_proba(sim.features)
    for i in (0, 7, 123):
        own = m.workers[m.items == i]
        np.testing.assert_allclose(r.posteriors[i], heads[i, own].mean(axis=0), atol=1e-9)
        votes = np.bincount(heads[i, own].argmax(axis=1), minlength=m.n_classes) / own.size
        np.testing.assert_allclose(r.head_votes[i], votes)
        np.testing.assert_allclose(r.uncertainty[i], (1 - (votes**2).sum()) / (1 - 1 / m.n_classes))
    # the raters' heads see the planted split better than all heads pooled
    assert roc_auc_score(sim.in_slice, r.uncertainty) > 0.8
    empty = AnnotationMatrix.from_codes([0], [0], [0], n_items=3, n_workers=m.n_workers, n_classes=m.n_classes)
    e = model.predict_raters(sim.features[:3], empty)
    np.testing.assert_allclose(e.posteriors[1:], 0.5)
    assert e.uncertainty[1:].tolist() == [0.0, 0.0]


def test_competence_diagnosis_tells_noise_from_contested():
    # item 0: reliable raters agree, an unreliable one dissents -> noise
    # item 1: reliable raters split 2-2 -> contested; item 2: one reliable rater off out of 5 -> noise
    # item 3: unanimous -> agreement
    items = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3]
    workers = [0, 1, 2, 4, 0, 1, 2, 3, 0, 1, 2, 3, 5, 0, 1]
    labels = [1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    m = AnnotationMatrix.from_codes(items, workers, labels)
    d = competence_diagnosis(m, [True, True, True, True, False, True])
    assert d.kind_names() == ["noise", "contested", "noise", "agreement"]
    np.testing.assert_allclose(d.disagreement, [0.25, 0.5, 0.2, 0.0])
    np.testing.assert_allclose(d.reliable_disagreement, [0.0, 0.5, 0.2, 0.0])
    assert d.n_reliable.tolist() == [3, 4, 5, 2]
    with pytest.raises(InputError, match="one bool per worker"):
        competence_diagnosis(m, [True])
    with pytest.raises(InputError, match="min_share"):
        competence_diagnosis(m, [True] * 6, min_share=2.0)


def test_diagnosis_keeps_raw_group_counts(sim):
    d = disagreement_diagnosis(sim.matrix, sim.groups, random_state=0)
    np.testing.assert_array_equal(d.group_label_counts.sum(axis=2), d.group_counts)
    np.testing.assert_array_equal(d.group_label_counts.sum(axis=1), sim.matrix.label_counts())


def test_group_jury_verdicts_follow_the_groups(sim):
    d = disagreement_diagnosis(sim.matrix, sim.groups, random_state=0)
    a = group_jury_verdicts(d, {"A": 7}, n_samples=50, random_state=0)
    assert (a.labels == sim.group_labels[:, 0]).mean() >= 0.95
    b = group_jury_verdicts(d, {"B": 7}, n_samples=50, random_state=0)
    assert (b.labels[sim.in_slice] == sim.group_labels[sim.in_slice, 1]).mean() >= 0.9
    mixed = group_jury_verdicts(d, {"A": 6, "B": 6}, n_samples=100, random_state=1)
    np.testing.assert_allclose(mixed.distribution.sum(axis=1), 1.0)
    top = mixed.distribution.max(axis=1)
    assert top[sim.in_slice].mean() < top[~sim.in_slice & ~sim.is_noisy].mean() - 0.2
    again = group_jury_verdicts(d, {"A": 6, "B": 6}, n_samples=100, random_state=1)
    np.testing.assert_array_equal(mixed.distribution, again.distribution)
    assert mixed.by == "group" and mixed.composition == {"A": 6, "B": 6}
    with pytest.raises(InputError, match="no rater has"):
        group_jury_verdicts(d, {"C": 1})
    with pytest.raises(InputError, match="non-empty"):
        group_jury_verdicts(d, {})
    with pytest.raises(InputError, match=r"composition\['A'\] must be > 0"):
        group_jury_verdicts(d, {"A": 0})
