"""AnnotationMatrix and Encoding: encoding, validation messages, views."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galton.quality import AnnotationMatrix, Encoding, InputError
from tests.strategies import annotation_matrices


def test_from_triplets_encodes_in_first_seen_order_with_sorted_classes():
    m, enc = AnnotationMatrix.from_triplets(["b", "a", "b"], [7, 7, 8], ["y", "x", "x"])
    assert enc.item_ids == ("b", "a")
    assert enc.worker_ids == (7, 8)
    assert enc.class_names == ("x", "y")
    assert m.items.tolist() == [0, 1, 0]
    assert m.workers.tolist() == [0, 0, 1]
    assert m.labels.tolist() == [1, 0, 0]
    assert (m.n_items, m.n_workers, m.n_classes, m.n_annotations) == (2, 2, 2, 3)


def test_explicit_class_order_and_unused_classes_are_kept():
    m, enc = AnnotationMatrix.from_triplets([1, 2], ["w", "w"], ["pos", "pos"], classes=["neg", "neu", "pos"])
    assert enc.class_names == ("neg", "neu", "pos")
    assert m.n_classes == 3
    assert m.labels.tolist() == [2, 2]


def test_explicit_item_ids_allow_items_without_annotations():
    m, _ = AnnotationMatrix.from_triplets([2], ["w"], ["x"], item_ids=[1, 2, 3])
    assert m.n_items == 3 and m.items.tolist() == [1]
    assert m.item_sizes().tolist() == [0, 1, 0]


def test_numpy_scalars_become_python_ids():
    _, enc = AnnotationMatrix.from_triplets(np.array([5, 5]), np.array([1, 2]), np.array([0, 1]))
    assert enc.item_ids == (5,) and type(enc.item_ids[0]) is int


@pytest.mark.parametrize(
    ("items", "workers", "labels", "kwargs", "message"),
    [
        ([], [], [], {}, "no annotations"),
        ([1, 2], [1], [1, 2], {}, "same length"),
        ([1, 2, 3], ["a", "b", "c"], ["x", float("nan"), "y"], {}, "missing label (None, NaN or blank) at rows 2"),
        ([1, None], ["a", "b"], ["x", "y"], {}, "missing item"),
        ([1, 2], ["a", " "], ["x", "y"], {}, "missing worker"),
        ([1, 1, 2], ["a", "a", "a"], ["x", "y", "x"], {}, "repeat an (item, worker) pair at rows 2, e.g. (1, 'a')"),
        ([1, 2, 3], ["a", "a", "a"], ["x", "Neutral", "Neutral"], {"classes": ["x", "y"]},
         "2 annotations use labels outside the given classes ['x', 'y']: 'Neutral' (rows 2, 3)"),
        ([1, 9], ["a", "a"], ["x", "x"], {"item_ids": [1, 2]}, "not listed in item_ids: 9"),
        ("abc", ["a"], ["x"], {}, "single string"),
    ],
)
def test_bad_input_names_the_problem(items, workers, labels, kwargs, message):
    with pytest.raises(InputError) as info:
        AnnotationMatrix.from_triplets(items, workers, labels, **kwargs)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_from_codes_checks_ranges_and_duplicates():
    with pytest.raises(InputError, match="labels codes fall outside"):
        AnnotationMatrix.from_codes([0, 1], [0, 0], [0, 3], n_classes=2)
    with pytest.raises(InputError, match="repeat an"):
        AnnotationMatrix.from_codes([0, 0], [1, 1], [0, 1])
    with pytest.raises(InputError, match="integer codes"):
        AnnotationMatrix.from_codes([0.5], [0], [0])


def test_arrays_are_read_only_and_copied():
    items = np.array([0, 1], dtype=np.int32)
    m = AnnotationMatrix.from_codes(items, [0, 0], [0, 1])
    items[0] = 1
    assert m.items.tolist() == [0, 1]
    with pytest.raises(ValueError):
        m.items[0] = 5


def test_encoding_gold_and_decoding():
    enc = Encoding(("i1", "i2", "i3"), ("w",), ("neg", "pos"))
    codes = enc.encode_gold({"i1": "pos", "i3": "neg"})
    assert codes.tolist() == [1, -1, 0]
    assert enc.decode_labels([1, -1, 0]) == ["pos", None, "neg"]
    with pytest.raises(InputError, match="outside"):
        enc.encode_gold({"i1": "maybe"})
    with pytest.raises(InputError, match="no annotations: 'zz'"):
        enc.encode_gold({"zz": "pos"})
    assert enc.encode_gold({"zz": "pos"}, strict=False).tolist() == [-1, -1, -1]
    with pytest.raises(KeyError, match="unknown worker 'v'"):
        enc.worker_code("v")
    with pytest.raises(InputError, match="unique"):
        Encoding(("a", "a"), (), ())


@settings(max_examples=60, deadline=None)
@given(annotation_matrices(), st.integers(0, 2**32 - 1))
def test_take_items_keeps_each_items_annotations(matrix, seed):
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, matrix.n_items, size=matrix.n_items)
    taken = matrix.take_items(chosen)
    assert taken.n_items == chosen.size
    expected = matrix.label_counts()[chosen]
    np.testing.assert_array_equal(taken.label_counts(), expected)
    np.testing.assert_array_equal(taken.item_sizes(), matrix.item_sizes()[chosen])


@settings(max_examples=60, deadline=None)
@given(annotation_matrices())
def test_counts_views_agree(matrix):
    counts = matrix.label_counts()
    assert counts.sum() == matrix.n_annotations
    np.testing.assert_array_equal(counts.sum(axis=1), matrix.item_sizes())
    assert matrix.worker_sizes().sum() == matrix.n_annotations
