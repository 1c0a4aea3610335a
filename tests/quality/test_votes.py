"""Majority vote, weighted votes and WAWA: crowd-kit references and invariants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galton.quality import AnnotationMatrix, InputError
from galton.quality._votes import majority_vote, wawa, weighted_vote
from tests.strategies import annotation_matrices, permute

crowdkit = pytest.importorskip("crowdkit.aggregation")


def as_frame(matrix):
    return pd.DataFrame({"task": matrix.items, "worker": matrix.workers, "label": matrix.labels})


def crowdkit_probas(model, matrix):
    return model.fit_predict_proba(as_frame(matrix)).sort_index().reindex(
        columns=range(matrix.n_classes), fill_value=0.0
    ).to_numpy()


@settings(max_examples=30, deadline=None)
@given(annotation_matrices())
def test_majority_vote_matches_crowdkit(matrix):
    np.testing.assert_allclose(
        majority_vote(matrix).posteriors, crowdkit_probas(crowdkit.MajorityVote(), matrix), atol=1e-12
    )


def wawa_reference(items, workers, labels, n_classes):
    """WAWA written the slow, obvious way (crowd-kit's Wawa fails with scikit-learn 1.9)."""
    votes = {}
    for i, w, label in zip(items, workers, labels, strict=True):
        votes.setdefault(i, []).append((w, label))
    first = {i: max(range(n_classes), key=lambda k: (sum(lab == k for _, lab in v), -k)) for i, v in votes.items()}
    weight = {}
    for w in set(workers):
        mine = [(i, lab) for i, ww, lab in zip(items, workers, labels, strict=True) if ww == w]
        weight[w] = sum(lab == first[i] for i, lab in mine) / len(mine)
    out = {}
    for i, v in votes.items():
        scores = np.zeros(n_classes)
        for w, label in v:
            scores[label] += weight[w]
        if scores.sum() == 0:  # every vote weighs 0: plain counts
            scores = np.bincount([label for _, label in v], minlength=n_classes).astype(float)
        out[i] = scores / scores.sum()
    return out


@settings(max_examples=40, deadline=None)
@given(annotation_matrices())
def test_wawa_matches_a_direct_implementation(matrix):
    expected = wawa_reference(matrix.items.tolist(), matrix.workers.tolist(), matrix.labels.tolist(),
                              matrix.n_classes)
    ours = wawa(matrix).posteriors
    for item, row in expected.items():
        np.testing.assert_allclose(ours[item], row, atol=1e-12)


def test_ties_go_to_the_first_class():
    m, enc = AnnotationMatrix.from_triplets([1, 1, 2, 2], ["a", "b", "a", "b"], ["pos", "neg", "neg", "pos"],
                                            classes=["pos", "neg"])
    result = majority_vote(m)
    assert enc.decode_labels(result.labels) == ["pos", "pos"]
    np.testing.assert_allclose(result.confidence(), [0.5, 0.5])


def test_weighted_by_gold_accuracy_outvotes_a_bad_majority():
    # workers a and b are wrong on every gold item, c is right: c's single vote wins
    items = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    workers = ["a", "b", "c"] * 3
    labels = [1, 1, 0, 1, 1, 0, 0, 0, 1]
    m, _ = AnnotationMatrix.from_triplets(items, workers, labels)
    gold = np.array([0, 0, -1])
    result = weighted_vote(m, gold=gold)
    w = result.worker_params["weight"]
    np.testing.assert_allclose(w, [(0 + 1) / (2 + 2), (0 + 1) / (2 + 2), (2 + 1) / (2 + 2)])
    assert result.labels.tolist() == [0, 0, 1]
    assert result.params["source"] == "gold"


def test_weighted_by_agreement_uses_tratz_hovy_raw_agreement():
    items = [0, 0, 0, 1, 1, 1]
    workers = ["a", "b", "c", "a", "b", "c"]
    labels = [0, 0, 1, 1, 1, 0]
    m, _ = AnnotationMatrix.from_triplets(items, workers, labels)
    result = weighted_vote(m, smoothing=0.0)
    # a and b agree with one of two others on both items; c with none
    np.testing.assert_allclose(result.worker_params["weight"], [0.5, 0.5, 0.0])


def test_given_weights_and_validation():
    m, _ = AnnotationMatrix.from_triplets([0, 0], ["a", "b"], [0, 1])
    assert weighted_vote(m, weights=[1.0, 3.0]).labels.tolist() == [1]
    with pytest.raises(InputError, match="shape"):
        weighted_vote(m, weights=[1.0])
    with pytest.raises(InputError, match="non-negative"):
        weighted_vote(m, weights=[1.0, -1.0])


@pytest.mark.parametrize("method", [majority_vote, wawa, weighted_vote])
@settings(max_examples=30, deadline=None)
@given(matrix=annotation_matrices(), seed=st.integers(0, 2**32 - 1))
def test_vote_invariants(method, matrix, seed):
    result = method(matrix)
    np.testing.assert_allclose(result.posteriors.sum(axis=1), 1.0)
    np.testing.assert_array_equal(result.labels, result.posteriors.argmax(axis=1))
    counts = matrix.label_counts()
    unanimous = counts.max(axis=1) == counts.sum(axis=1)
    np.testing.assert_array_equal(result.labels[unanimous], counts.argmax(axis=1)[unanimous])
    # relabelling items, workers and classes relabels the posteriors the same way
    permuted, pi, _, pc = permute(matrix, np.random.default_rng(seed))
    if method is wawa:
        # WAWA's first pass breaks ties by class order, so relabel items and workers only
        pc = np.arange(matrix.n_classes)
        permuted = AnnotationMatrix.from_codes(
            pi[matrix.items], permuted.workers, matrix.labels,
            n_items=matrix.n_items, n_workers=matrix.n_workers, n_classes=matrix.n_classes,
        )
    moved = method(permuted).posteriors
    np.testing.assert_allclose(moved[pi][:, pc], result.posteriors, atol=1e-12)
