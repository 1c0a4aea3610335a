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
  ``gold_mismatch``  the task has gold and the consensus differs from it
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

from galton.connectors import PredictionSpec, PulledProject, prediction_result
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

__all__ = ["METHODS", "Review", "ReviewSettings", "review_project"]

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
    payload = json.dumps({"settings": asdict(settings), "config": pulled.config.to_dict()}, sort_keys=True)
    return f"galton-{settings.method.replace('_', '-')}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"


def _number(value: float, digits: int = 4) -> float | None:
    return None if not np.isfinite(value) else round(float(value), digits)


def review_project(pulled: PulledProject, settings: ReviewSettings | None = None) -> Review:
    """Score every question of a pulled project and build the write-back (see module doc)."""
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
            result = method(matrix, gold, settings.random_state)
            spam_fit = result if settings.method.startswith("mace") else mace(
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
            if gold[code] >= 0 and gold[code] != result.labels[code]:
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
