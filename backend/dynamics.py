"""Training dynamics in the running system: which consensus labels a model cannot reconcile.

Given a project's :class:`~galton.connectors.PulledProject` snapshot and its
:class:`~galton.backend.review.Review`, :func:`run_dynamics` builds item features with the
featurizers of :mod:`galton.quality.dynamics` (``text_features`` over one or more text
fields by default; a vector field or a ``.npy`` file otherwise), cached per project by
content hash, and runs :func:`~galton.quality.dynamics.find_mislabeled` on the consensus
labels of one question (only tasks with a consensus). The result is a
:class:`DynamicsResult`: per task a ``meta.galton.dynamics`` entry

    ``{"score": 0.93, "percentile": 0.99, "flag": true, "region": "hard-to-learn", "label": "pos"}``

(``score``: the combined ranking's mean normalised rank, higher = more suspicious;
``percentile``: share of the audited tasks with a lower score; ``flag``: the combined
flag rule (a strict majority of Data Maps, AUM, NCV and the noise classifier) **and** among
the ``flag_share`` most suspicious tasks; ``region``: the data-map region; ``label``: the
consensus label that was audited), the flag ``likely_mislabeled`` in the task's flags, and
the :class:`~galton.quality.dynamics.MislabeledReport` behind the report's data map and AUM
histogram.

When it runs (:func:`with_dynamics`, called by the review job when dynamics is enabled):
a ``galton sync`` job, or a job that absorbed Label Studio's START_TRAINING (event
``train``), trains when no result is stored or the consensus labels, features or options
changed since the stored run (its ``key``); every other job (webhooks) merges the stored
result into ``meta`` without training. The result is stored (table ``galton_dynamics`` of
the state database) before the write-back, so a job that dies half-way reuses it.

torch and scikit-learn stay out of the default import path: :mod:`galton.quality.dynamics`
is imported on call, and without the extras the job goes on without dynamics, saying so
once in the log and in the review summary.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import logging
import pickle
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from galton.connectors import PulledProject

from .review import Review

if TYPE_CHECKING:  # pragma: no cover
    from galton.quality.dynamics import MislabeledReport

__all__ = ["FLAG", "TRAIN_EVENTS", "DynamicsResult", "DynamicsSettings", "DynamicsStore", "DynamicsUnavailable",
           "merge_dynamics", "missing_extras", "run_dynamics", "with_dynamics"]

log = logging.getLogger(__name__)
FLAG = "likely_mislabeled"
#: events after which a job trains (when the labels changed since the stored run)
TRAIN_EVENTS = frozenset({"sync", "train", "START_TRAINING"})
FEATURIZERS = ("text", "vector", "npy")


class DynamicsUnavailable(RuntimeError):
    """The torch / scikit-learn extras are missing, or the project cannot be audited."""


@dataclass(frozen=True)
class DynamicsSettings:
    """Whether and how the backend runs training dynamics (``[dynamics]`` of galton.toml).

    ``featurizer`` is ``"text"`` (``text_fields``, joined by newlines), ``"vector"``
    (``vector_field``: a list of numbers in each task's data) or ``"npy"`` (``npy``: one row
    per task in increasing task id).
    """

    enabled: bool = False
    featurizer: str = "text"
    text_fields: tuple[str, ...] = ("text",)
    vector_field: str | None = None
    npy: str | None = None
    epochs: int = 20  # a maximum: early stopping on held-out folds usually ends sooner
    # LSA dimensions of the text featurizer (its cost grows with them: 64 keeps a 2-core machine quick)
    text_components: int = 64
    flag_share: float = 0.05
    question: str | None = None
    cache_dir: str = ".galton/features"
    min_tasks: int = 20
    random_state: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "text_fields", tuple(self.text_fields))
        if self.featurizer not in FEATURIZERS:
            raise ValueError(f"dynamics featurizer must be one of {list(FEATURIZERS)}, got {self.featurizer!r}")
        if self.featurizer == "text" and not self.text_fields:
            raise ValueError("dynamics featurizer 'text' needs at least one text field (text_fields)")
        if self.featurizer == "vector" and not self.vector_field:
            raise ValueError("dynamics featurizer 'vector' needs vector_field (the data field holding the vector)")
        if self.featurizer == "npy" and not self.npy:
            raise ValueError("dynamics featurizer 'npy' needs npy (a .npy file, one row per task in task id order)")
        if int(self.epochs) < 1:
            raise ValueError(f"dynamics epochs must be at least 1, got {self.epochs}")
        if int(self.text_components) < 2:
            raise ValueError(f"dynamics text_components must be at least 2, got {self.text_components}")
        if not 0.0 <= float(self.flag_share) <= 1.0:
            raise ValueError(f"dynamics flag_share must lie in [0, 1], got {self.flag_share}")
        if int(self.min_tasks) < 4:
            raise ValueError(f"dynamics min_tasks must be at least 4, got {self.min_tasks}")

    def options(self) -> dict[str, Any]:
        """What a result depends on besides the labels and features (part of its key)."""
        return {"featurizer": self.featurizer, "epochs": int(self.epochs),
                "text_components": int(self.text_components), "flag_share": float(self.flag_share),
                "random_state": int(self.random_state), "question": self.question}


@dataclass(frozen=True)
class DynamicsResult:
    """One training-dynamics run of a project (what is stored and merged into meta)."""

    question: str
    key: str
    task_ids: tuple[int, ...]  # the report's item order
    meta: Mapping[int, dict[str, Any]]
    report: Any = field(repr=False)  # MislabeledReport
    summary: Mapping[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> list[int]:
        return [t for t, entry in self.meta.items() if entry.get("flag")]


def missing_extras() -> str | None:
    """None when torch and scikit-learn are importable, else what to install (nothing is imported)."""
    missing = [name for name in ("torch", "sklearn") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (f"training dynamics needs {' and '.join(missing)}: pip install 'galton[torch,dynamics]' "
            "(make venv installs them)")


# ---------------------------------------------------------------------- inputs
def _question(snapshot: PulledProject, review: Review, wanted: str | None) -> str:
    keys = [k for k in snapshot.questions() if k in review.results]
    if wanted is not None:
        if wanted not in keys:
            raise DynamicsUnavailable(f"dynamics question {wanted!r} is not a scored question of the project "
                                      f"(scored: {keys})")
        return wanted
    if not keys:
        raise DynamicsUnavailable("the project has no scored question")
    return keys[0]


def consensus_labels(snapshot: PulledProject, review: Review, question: str) -> tuple[list[int], np.ndarray,
                                                                                      list[str]]:
    """The tasks with a consensus on ``question`` (encoding order), their label codes and the class names."""
    data = snapshot.questions()[question]
    result = review.results[question]
    task_of = snapshot.task_of_item()
    task_ids = [int(task_of[item]) for item in data.encoding.item_ids]
    return task_ids, np.asarray(result.labels, dtype=np.int64), [str(c) for c in data.encoding.class_names]


def labels_key(question: str, task_ids: Sequence[int], codes: np.ndarray, classes: Sequence[str]) -> str:
    payload = json.dumps({"question": question, "tasks": list(task_ids), "labels": codes.tolist(),
                          "classes": list(classes)}, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def fetch_task_data(connector: Any, project_id: int, fields: Sequence[str]) -> dict[int, dict[str, Any]]:
    """``{task id: {field: value}}`` for the given data fields, from one project export.

    The snapshot keeps no task data (only ids, meta and annotations), so a training run
    reads it once. A connectors-level ``task_data`` call would be the right home for this;
    until then it is the connector's export request.
    """
    tasks = connector._export(project_id, None)
    out: dict[int, dict[str, Any]] = {}
    for task in tasks:
        if isinstance(task, Mapping) and isinstance(task.get("id"), int):
            data = task.get("data") if isinstance(task.get("data"), Mapping) else {}
            out[int(task["id"])] = {name: data.get(name) for name in fields}
    return out


def build_features(settings: DynamicsSettings, project_id: int | None, task_ids: Sequence[int],
                   task_data: Mapping[int, Mapping[str, Any]] | None) -> tuple[np.ndarray, str]:
    """The ``(n_tasks, d)`` features of ``task_ids`` and their content key (cached per project)."""
    from galton.quality.dynamics import cached_features, content_key, npy_features, text_features, vector_features

    cache = Path(settings.cache_dir) / str(project_id if project_id is not None else "files")
    if settings.featurizer == "npy":
        path = Path(settings.npy or "")
        if not path.is_file():
            raise DynamicsUnavailable(f"dynamics npy file {path} does not exist")
        matrix = npy_features(path, sorted(task_data or task_ids), list(task_ids))
        return matrix, content_key("npy", matrix)
    task_data = task_data or {}
    missing = [t for t in task_ids if t not in task_data]
    if missing:
        raise DynamicsUnavailable(f"{len(missing)} tasks have no data (first: {missing[:5]})")
    if settings.featurizer == "vector":
        name = settings.vector_field or ""
        values = [task_data[t].get(name) for t in task_ids]
        bad = [t for t, v in zip(task_ids, values, strict=True) if not isinstance(v, list | tuple)]
        if bad:
            raise DynamicsUnavailable(f"{len(bad)} tasks lack a list of numbers in data field {name!r} "
                                      f"(first: {bad[:5]})")
        key = content_key("vector", [list(v) for v in values])
        return cached_features(cache, key, lambda: vector_features(values)), key
    texts = ["\n".join("" if task_data[t].get(f) is None else str(task_data[t].get(f))
                       for f in settings.text_fields) for t in task_ids]
    if not any(text.strip() for text in texts):
        raise DynamicsUnavailable(f"the text fields {list(settings.text_fields)} are empty in every task")
    options = {"fields": list(settings.text_fields), "random_state": settings.random_state,
               "n_components": int(settings.text_components)}
    key = content_key("text", texts, options)
    return cached_features(cache, key, lambda: text_features(texts, n_components=int(settings.text_components),
                                                             random_state=settings.random_state)), key


# ---------------------------------------------------------------------- the run
def run_dynamics(snapshot: PulledProject, review: Review, settings: DynamicsSettings, *,
                 task_data: Mapping[int, Mapping[str, Any]] | None = None) -> DynamicsResult:
    """Train on the consensus labels of one question and score every task that has one.

    Raises
    ------
    DynamicsUnavailable
        Extras missing, fewer than ``min_tasks`` tasks with a consensus, one class only,
        or features that cannot be built (the message says which).
    """
    missing = missing_extras()
    if missing:
        raise DynamicsUnavailable(missing)
    from galton.quality import InputError
    from galton.quality.dynamics import find_mislabeled

    started = time.perf_counter()
    question = _question(snapshot, review, settings.question)
    task_ids, codes, classes = consensus_labels(snapshot, review, question)
    if len(task_ids) < settings.min_tasks:
        raise DynamicsUnavailable(f"{len(task_ids)} tasks have a consensus on {question!r}; dynamics needs at "
                                  f"least {settings.min_tasks}")
    if len(set(codes.tolist())) < 2:
        raise DynamicsUnavailable(f"every consensus label of {question!r} is the same class: nothing to audit")
    features, features_key = build_features(settings, snapshot.project_id, task_ids, task_data)
    try:
        report = find_mislabeled(features, codes, n_classes=len(classes), epochs=int(settings.epochs),
                                 random_state=int(settings.random_state))
    except InputError as error:
        raise DynamicsUnavailable(f"find_mislabeled refused the input: {error}") from None
    key = result_key(labels_key(question, task_ids, codes, classes), features_key, settings)
    return DynamicsResult(question, key, tuple(task_ids), task_meta(report, task_ids, codes, classes,
                                                                     settings.flag_share), report, {
        "question": question, "n_tasks": len(task_ids), "epochs": int(settings.epochs),
        "featurizer": settings.featurizer, "seconds": round(time.perf_counter() - started, 2),
        "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")})


def result_key(labels: str, features: str, settings: DynamicsSettings) -> str:
    payload = json.dumps({"labels": labels, "features": features, "options": settings.options()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def task_meta(report: MislabeledReport, task_ids: Sequence[int], codes: np.ndarray, classes: Sequence[str],
              flag_share: float) -> dict[int, dict[str, Any]]:
    """Per task the ``meta.galton.dynamics`` entry (see the module doc)."""
    score = np.asarray(report.scores["combined"], dtype=np.float64)
    combined = report.flags.get("combined")
    majority = np.asarray(combined, dtype=bool) if combined is not None else np.ones(len(score), dtype=bool)
    flags = majority & report.flag_top(flag_share)
    n = len(score)
    # share of tasks with a strictly lower score
    percentile = (np.searchsorted(np.sort(score), score, side="left") / max(n - 1, 1)).clip(0, 1)
    out = {}
    for i, task_id in enumerate(task_ids):
        out[int(task_id)] = {"score": round(float(score[i]), 3), "percentile": round(float(percentile[i]), 3),
                             "flag": bool(flags[i]), "region": str(report.region[i]) or None,
                             "label": str(classes[int(codes[i])])}
    return out


def merge_dynamics(review: Review, result: DynamicsResult | None, status: Mapping[str, Any]) -> Review:
    """A copy of ``review`` whose meta carries ``dynamics`` (and the flag) for the tasks of ``result``."""
    summary = {**review.summary, "dynamics": dict(status)}
    if result is None:
        return replace(review, summary=summary)
    meta = dict(review.meta)
    n_flagged = 0
    for task_id, entry in result.meta.items():
        current = meta.get(task_id)
        if current is None:
            continue
        flags = [f for f in current.get("flags", []) if f != FLAG]
        if entry.get("flag"):
            flags.append(FLAG)
            n_flagged += 1
        meta[task_id] = {**current, "dynamics": dict(entry), "flags": sorted(set(flags))}
    summary["dynamics"]["n_flagged"] = n_flagged
    counts = dict(summary.get("flags") or {})
    if n_flagged:
        counts[FLAG] = n_flagged
    summary["flags"] = counts
    return replace(review, meta=meta, summary=summary)


# ---------------------------------------------------------------------- persistence
_metadata = sa.MetaData()
_table = sa.Table(
    "galton_dynamics", _metadata,
    sa.Column("project_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("question", sa.String(200), nullable=False),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("result", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)


class DynamicsStore:
    """The last dynamics result per project, in the state database (table ``galton_dynamics``,
    created on first use; galton's private state, pickled like the snapshot)."""

    def __init__(self, store: Any) -> None:
        self.engine = store.engine
        _metadata.create_all(self.engine, checkfirst=True)

    def load(self, project_id: int) -> DynamicsResult | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_table.c.result).where(_table.c.project_id == project_id)).first()
        if row is None:
            return None
        state = pickle.loads(zlib.decompress(row[0]))
        report = state.pop("report")
        if report is not None:
            from galton.quality.dynamics import MislabeledReport

            report = MislabeledReport(**report)
        return DynamicsResult(report=report, **state)

    def save(self, project_id: int, result: DynamicsResult) -> None:
        # MislabeledReport holds read-only mapping proxies: store its fields as plain values
        report = None if result.report is None else {
            f.name: (dict(getattr(result.report, f.name)) if isinstance(getattr(result.report, f.name), Mapping)
                     else getattr(result.report, f.name)) for f in fields(result.report)}
        state = {"question": result.question, "key": result.key, "task_ids": result.task_ids,
                 "meta": dict(result.meta), "summary": dict(result.summary), "report": report}
        values = {"question": result.question, "key": result.key, "created_at": str(result.summary.get("trained_at")),
                  "result": zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)}
        with self.engine.begin() as conn:
            done = conn.execute(_table.update().where(_table.c.project_id == project_id).values(**values))
            if done.rowcount == 0:
                conn.execute(_table.insert().values(project_id=project_id, **values))


# ---------------------------------------------------------------------- the job step
_warned: set[str] = set()


def with_dynamics(reviewer: Any, project_id: int, snapshot: PulledProject, review: Review,
                  events: Sequence[str]) -> Review:
    """The review job's dynamics step (see the module doc): train when due, merge the stored result."""
    settings: DynamicsSettings = reviewer.settings.dynamics
    store = DynamicsStore(reviewer.store)
    stored = store.load(project_id)
    status: dict[str, Any] = {"status": "stored" if stored is not None else "none"}
    due = any(e in TRAIN_EVENTS for e in events)
    missing = missing_extras()
    if missing:
        if missing not in _warned:
            _warned.add(missing)
            log.warning("project %d: %s; reviewing without dynamics", project_id, missing)
        return merge_dynamics(review, stored, {"status": f"unavailable: {missing}"})
    try:
        question = _question(snapshot, review, settings.question)
        task_ids, codes, classes = consensus_labels(snapshot, review, question)
        current = labels_key(question, task_ids, codes, classes)
        fresh = stored is not None and stored.summary.get("labels_key") == current \
            and stored.summary.get("options") == settings.options()
        if fresh:
            status = {"status": "unchanged", **_public(stored)}
        elif due:
            fields = list(settings.text_fields) if settings.featurizer == "text" else (
                [settings.vector_field] if settings.featurizer == "vector" else [])
            data = fetch_task_data(reviewer.connector(), project_id, fields) if fields else {
                t: {} for t in snapshot.tasks}
            result = run_dynamics(snapshot, review, settings, task_data=data)
            result = replace(result, summary={**result.summary, "labels_key": current,
                                              "options": settings.options()})
            store.save(project_id, result)  # before the write-back: a job that dies half-way reuses it
            stored = result
            status = {"status": "trained", **_public(result)}
            log.info("project %d: training dynamics on %d tasks in %.1f s, %d flagged", project_id,
                     len(result.task_ids), result.summary["seconds"], len(result.flagged))
        elif stored is not None:
            status = {"status": "stale: labels changed since the last run (galton sync or START_TRAINING "
                                "retrains)", **_public(stored)}
    except DynamicsUnavailable as error:
        log.warning("project %d: no training dynamics: %s", project_id, error)
        status = {"status": f"skipped: {error}"}
    return merge_dynamics(review, stored, status)


def _public(result: DynamicsResult) -> dict[str, Any]:
    return {k: v for k, v in result.summary.items() if k not in ("labels_key", "options")}
