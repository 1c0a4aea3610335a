"""Auto-review of a pulled project: consensus per question, quality flags, rater table.

Turns a :class:`~galton.connectors.PulledProject` into what galton writes back:

* one prediction per task in the project's own control-tag format, ``score`` = the
  lowest consensus confidence over the task's questions (a task is as sure as its least
  sure answer), ``model_version = "galton-<method>-<hash>"`` where the hash covers the
  method, its options and the config's questions, so it changes exactly when a re-score is due;
* ``task.meta["galton"]``: per question the consensus label, its confidence, the raw
  agreement and the label distribution, plus the task's flags:

  ``low_agreement``  raw agreement (Tratz & Hovy) below ``low_agreement``
  ``low_confidence`` consensus confidence below ``low_confidence``
  ``spam_suspect``   an annotator of the task has MACE spam probability above ``spam_probability``
  ``gold_mismatch``  the task has gold and the raters' most frequent label differs from it
                     (the consensus itself is clamped to gold)
  ``single_annotation`` only one annotation, so nothing to agree with

* a rater table (one row per annotator and question) for export.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from galton.connectors import LabelConfig, PredictionSpec, PulledProject, prediction_result
from galton.quality import (
    AggregationResult,
    AnnotationMatrix,
    ConvergenceWarning,
    StatisticsWarning,
    dawid_skene,
    glad,
    item_scores,
    mace,
    majority_vote,
    one_coin_dawid_skene,
    wawa,
    weighted_vote,
    worker_scores,
)

__all__ = ["METHODS", "Review", "ReviewSettings", "config_model_version", "review_project", "stored_worker_weights"]

Method = Callable[..., AggregationResult]
METHODS: dict[str, Method] = {
    "majority_vote": lambda m, gold, seed: majority_vote(m),
    "wawa": lambda m, gold, seed: wawa(m),
    "weighted_vote": lambda m, gold, seed: weighted_vote(m, gold=gold) if (gold >= 0).any() else weighted_vote(m),
    "dawid_skene": lambda m, gold, seed: dawid_skene(m, gold=gold, random_state=seed),
    "one_coin_dawid_skene": lambda m, gold, seed: one_coin_dawid_skene(m, gold=gold, random_state=seed),
    "glad": lambda m, gold, seed: glad(m, gold=gold, random_state=seed),
    "mace": lambda m, gold, seed: mace(m, gold=gold, method="em", random_state=seed),
    "mace_vb": lambda m, gold, seed: mace(m, gold=gold, method="vb", random_state=seed),
}


@dataclass(frozen=True)
class ReviewSettings:
    """How consensus is computed and when a task is flagged (thresholds in [0, 1])."""

    method: str = "mace"
    low_agreement: float = 0.6
    low_confidence: float = 0.7
    spam_probability: float = 0.5
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown consensus method {self.method!r}; choose one of {sorted(METHODS)}")
        for name in ("low_agreement", "low_confidence", "spam_probability"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


@dataclass(frozen=True)
class Review:
    """What one review of a project gives: predictions, meta and the rater table."""

    model_version: str
    predictions: Mapping[int, PredictionSpec]
    meta: Mapping[int, dict[str, Any]]
    worker_rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    results: Mapping[str, AggregationResult] = field(default_factory=dict)


def model_version(pulled: PulledProject, settings: ReviewSettings) -> str:
    """``galton-<method>-<8 hex>``: stable while the method, options and questions stay."""
    return config_model_version(pulled.config, settings)


def config_model_version(config: LabelConfig, settings: ReviewSettings) -> str:
    """:func:`model_version` from a labeling config alone (what an ML backend's ``/setup`` knows)."""
    payload = json.dumps({"settings": asdict(settings), "config": config.to_dict()}, sort_keys=True)
    return f"galton-{settings.method.replace('_', '-')}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"


def _number(value: float, digits: int = 4) -> float | None:
    return None if not np.isfinite(value) else round(float(value), digits)


def _worker_timing(pulled: PulledProject) -> dict[int, dict[str, Any]]:
    """Per annotator: median and total lead time (s) and first/last annotation time."""
    lead: dict[int, list[float]] = {}
    stamps: dict[int, list[str]] = {}
    for annotation in pulled.annotations:
        if annotation.lead_time is not None:
            lead.setdefault(annotation.worker, []).append(annotation.lead_time)
        if annotation.created_at:
            stamps.setdefault(annotation.worker, []).append(annotation.created_at)
    out: dict[int, dict[str, Any]] = {}
    for worker in {a.worker for a in pulled.annotations}:
        times = lead.get(worker, [])
        when = sorted(stamps.get(worker, []))
        out[worker] = {
            "median_lead_time_s": _number(float(np.median(times)), 2) if times else None,
            "total_lead_time_s": _number(float(np.sum(times)), 1) if times else None,
            "first_annotation_at": when[0] if when else None,
            "last_annotation_at": when[-1] if when else None,
        }
    return out


def stored_worker_weights(review: Review) -> dict[str, dict[Any, float]]:
    """Per question, each worker's MACE competence from a review's rater table (for ``worker_weights``)."""
    out: dict[str, dict[Any, float]] = {}
    for row in review.worker_rows:
        value = row.get("mace_competence")
        if value is not None:
            out.setdefault(row["question"], {})[row["worker"]] = float(value)
    return out


def _weighted(weights: Mapping[Any, float]) -> Method:
    """A consensus method: votes weighted by known worker weights (the mean weight for newcomers)."""
    default = float(np.mean(list(weights.values()))) if weights else 1.0

    def method(m: AnnotationMatrix, gold: Any, seed: int, worker_ids: Any = ()) -> AggregationResult:
        w = np.array([max(weights.get(worker, default), 1e-6) for worker in worker_ids], dtype=np.float64)
        return weighted_vote(m, weights=w)

    return method  # type: ignore[return-value]


def review_project(pulled: PulledProject, settings: ReviewSettings | None = None, *,
                   worker_weights: Mapping[str, Mapping[Any, float]] | None = None) -> Review:
    """Score every question of a pulled project and build the write-back (see module doc).

    ``worker_weights`` (question key -> worker id -> weight >= 0, e.g. from
    :func:`stored_worker_weights` of an earlier review of the whole project) replaces the
    consensus method by a weighted vote with those weights: how a few tasks are scored with
    what the whole project taught about their annotators. The model version stays that of
    ``settings``.
    """
    settings = settings or ReviewSettings()
    method = METHODS[settings.method]
    version = model_version(pulled, settings)
    task_of = pulled.task_of_item()
    labels: dict[int, dict[str, str]] = {}
    confidences: dict[int, list[float]] = {}
    meta: dict[int, dict[str, Any]] = {}
    worker_rows: list[dict[str, Any]] = []
    results: dict[str, AggregationResult] = {}
    n_flagged: dict[str, int] = {}
    for key, data in pulled.questions().items():
        matrix: AnnotationMatrix = data.matrix
        gold = data.gold_codes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", StatisticsWarning)
            if worker_weights is not None and worker_weights.get(key):
                result = _weighted(worker_weights[key])(matrix, gold, settings.random_state,
                                                        data.encoding.worker_ids)
            else:
                result = method(matrix, gold, settings.random_state)
            spam_fit = result if settings.method.startswith("mace") and result.method.startswith("mace") else mace(
                matrix, gold=gold, random_state=settings.random_state)
            scores = item_scores(matrix, result)
            raters = worker_scores(matrix, gold=gold if (gold >= 0).any() else None, mace_result=spam_fit,
                                   random_state=settings.random_state)
        results[key] = result
        classes = data.encoding.class_names
        spam = np.asarray(raters.spam_probability)
        suspect = np.zeros(matrix.n_items, dtype=bool)
        np.logical_or.at(suspect, matrix.items, spam[matrix.workers] > settings.spam_probability)
        for row in raters.to_rows(data.encoding):
            worker = pulled.workers.get(row["worker"])
            worker_rows.append({"question": key, "worker": row["worker"],
                                "email": worker.email if worker else "", "name": worker.name if worker else "", **{
                                    k: v for k, v in row.items() if k != "worker"}})
        for code, item in enumerate(data.encoding.item_ids):
            task_id = task_of[item]
            label = str(classes[int(result.labels[code])])
            confidence = float(scores.confidence[code])
            agreement = float(scores.agreement[code])
            flags = []
            if int(scores.n_annotations[code]) < 2:
                flags.append("single_annotation")
            elif agreement < settings.low_agreement:
                flags.append("low_agreement")
            if confidence < settings.low_confidence:
                flags.append("low_confidence")
            if suspect[code]:
                flags.append("spam_suspect")
            # consensus is clamped to gold, so compare gold with what the raters said
            if gold[code] >= 0 and gold[code] != int(np.argmax(scores.label_distribution[code])):
                flags.append("gold_mismatch")
            for flag in flags:
                n_flagged[flag] = n_flagged.get(flag, 0) + 1
            labels.setdefault(task_id, {})[key] = label
            confidences.setdefault(task_id, []).append(confidence)
            entry = meta.setdefault(task_id, {"model_version": version, "questions": {}, "flags": []})
            entry["questions"][key] = {
                "label": label,
                "confidence": _number(confidence),
                "agreement": _number(agreement),
                "n_annotations": int(scores.n_annotations[code]),
                "distribution": {str(c): _number(p) for c, p in zip(classes, scores.label_distribution[code],
                                                                     strict=True)},
                "flags": flags,
            }
            entry["flags"] = sorted(set(entry["flags"]) | set(flags))
    timing = _worker_timing(pulled)
    for row in worker_rows:
        row.update(timing.get(row["worker"], {}))
    predictions = {
        task_id: PredictionSpec(prediction_result(pulled.config, task_labels), min(confidences[task_id]))
        for task_id, task_labels in labels.items()
    }
    for task_id, entry in meta.items():
        entry["score"] = _number(min(confidences[task_id]))
    summary = {
        "model_version": version,
        "n_tasks": pulled.n_tasks,
        "n_scored_tasks": len(predictions),
        "n_annotations": len(pulled.annotations),
        "n_workers": len({a.worker for a in pulled.annotations}),
        "questions": sorted(results),
        "flags": n_flagged,
        "skipped": dict(pulled.skipped),
    }
    return Review(version, predictions, meta, worker_rows, summary, results)
