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
  ``systematic_disagreement`` rater groups (``ReviewSettings.rater_groups``) are split on the
                     task (:func:`galton.quality.perspectives.disagreement_diagnosis`)

* ``task.meta["galton"]["disagreement"]`` (and per question under ``questions``): whether the
  task's disagreement is ``systematic`` (groups split), ``noise`` or none (``agreement``),
  with the per-group label distributions and, with a jury composition, the jury verdict;
  without rater groups ``noise`` or ``contested`` from the raters' MACE competence;
* a rater table (one row per annotator and question) for export.
"""

from __future__ import annotations

import csv
import hashlib
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
from galton.quality import InputError as _InputError
from galton.quality.perspectives import (
    competence_diagnosis,
    disagreement_diagnosis,
    group_jury_verdicts,
    soft_labels,
)

__all__ = ["JURY_SAMPLES", "METHODS", "Review", "ReviewSettings", "config_model_version", "load_perspectives",
           "parse_jury_composition", "read_rater_groups", "review_project", "soft_label_rows", "stored_worker_weights"]

#: juries drawn per task for the jury verdict of ``ReviewSettings.jury_composition``
JURY_SAMPLES = 200

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
    #: worker id (Label Studio user id or e-mail; the CSV worker) -> rater group, e.g. from
    #: :func:`read_rater_groups`; a mapping is stored as sorted ``(worker, group)`` pairs
    rater_groups: tuple[tuple[str, str], ...] = ()
    #: jurors per group, e.g. ``{"A": 6, "B": 6}`` (stored as sorted pairs); needs ``rater_groups``
    jury_composition: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown consensus method {self.method!r}; choose one of {sorted(METHODS)}")
        for name in ("low_agreement", "low_confidence", "spam_probability"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
        groups = self.rater_groups
        pairs = groups.items() if isinstance(groups, Mapping) else groups
        object.__setattr__(self, "rater_groups", tuple(sorted((str(w), str(g)) for w, g in pairs)))
        jury = self.jury_composition
        pairs = jury.items() if isinstance(jury, Mapping) else jury
        composition = tuple(sorted((str(g), n) for g, n in pairs))
        for group, count in composition:
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"jury_composition[{group!r}] must be a positive integer, got {count!r}")
        if composition and not self.rater_groups:
            raise ValueError("jury_composition needs rater_groups: the jurors are drawn per rater group")
        known = {g for _, g in self.rater_groups}
        unknown = [g for g, _ in composition if g not in known]
        if unknown:
            raise ValueError(f"jury_composition names groups no rater has: {unknown}; groups: {sorted(known)}")
        object.__setattr__(self, "jury_composition", composition)


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
    """:func:`model_version` from a labeling config alone (what an ML backend's ``/setup`` knows).

    The rater groups and the jury composition count only when set, so projects without them
    keep the versions they had before those settings existed.
    """
    options = asdict(settings)
    for name in ("rater_groups", "jury_composition"):
        if not options[name]:
            del options[name]
    payload = json.dumps({"settings": options, "config": config.to_dict()}, sort_keys=True)
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


def read_rater_groups(path: str | Path, *, column: str = "group") -> dict[str, str]:
    """The rater table: a CSV with a ``worker`` column and a group column (``group`` by default).

    ``worker`` is the Label Studio user id or e-mail (for ``--annotations`` CSV input: the
    worker as written there); further columns (other attributes) are ignored. Rows with an
    empty group are skipped.

    Raises
    ------
    InputError
        No such file, missing columns, or one worker given two groups.
    """
    source = Path(path)
    if not source.is_file():
        raise _InputError(f"{source}: no such file (the rater table, CSV with worker,{column} columns)")
    with source.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        if "worker" not in header or column not in header:
            raise _InputError(f"{source}: the rater table needs the columns worker and {column}, got {header}")
        out: dict[str, str] = {}
        clashes: list[str] = []
        for row in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
            worker, group = row.get("worker", ""), row.get(column, "")
            if not worker or not group:
                continue
            if out.get(worker, group) != group:
                clashes.append(worker)
            out[worker] = group
    if clashes:
        raise _InputError(f"{source}: {len(clashes)} workers have two groups, e.g. {clashes[:3]}")
    return out


def load_perspectives(rater_groups: str | Path | None, jury: str | None) -> dict[str, Any]:
    """``rater_groups`` and ``jury_composition`` for :class:`ReviewSettings` from a rater-table
    path and a ``"A=6,B=6"`` text (either may be empty); ReviewSettings checks that they fit."""
    return {"rater_groups": read_rater_groups(rater_groups) if rater_groups else {},
            "jury_composition": parse_jury_composition(jury) if jury else {}}


def parse_jury_composition(text: str) -> dict[str, int]:
    """``"A=6,B=6"`` -> ``{"A": 6, "B": 6}`` (the jurors per rater group)."""
    out: dict[str, int] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        group, sep, count = part.rpartition("=")
        try:
            number = int(count)
        except ValueError:
            number = 0
        if not sep or not group.strip() or number < 1:
            raise _InputError(f"jury composition must read GROUP=COUNT[,GROUP=COUNT...] with counts >= 1, "
                              f"got {text!r}")
        out[group.strip()] = number
    if not out:
        raise _InputError("the jury composition is empty; write e.g. A=6,B=6")
    return out


def _worker_groups(pulled: PulledProject, worker_ids: Any, groups: Mapping[str, str]) -> list[str | None]:
    """Each worker's group: by id as text, else by e-mail (case-insensitive); None where unknown."""
    by_email = {k.lower(): v for k, v in groups.items() if "@" in k}
    out: list[str | None] = []
    for worker in worker_ids:
        group = groups.get(str(worker))
        if group is None:
            info = pulled.workers.get(worker)
            if info is not None and info.email:
                group = by_email.get(info.email.lower())
        out.append(group)
    return out


_SEVERITY = {"systematic": 3, "contested": 2, "noise": 1, "agreement": 0}


def _disagreement(pulled: PulledProject, data: Any, settings: ReviewSettings,
                  spam: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per item the ``disagreement`` meta of one question, and the question's summary."""
    matrix = data.matrix
    classes = [str(c) for c in data.encoding.class_names]
    groups = _worker_groups(pulled, data.encoding.worker_ids, dict(settings.rater_groups))
    present = sorted({g for g in groups if g is not None})
    if len(present) < 2:
        comp = competence_diagnosis(matrix, spam <= settings.spam_probability)
        kinds = comp.kind_names()
        metas = [{"kind": kinds[i], "basis": "competence", "score": _number(float(comp.reliable_disagreement[i])),
                  "groups": {}} for i in range(matrix.n_items)]
        summary = {"basis": "competence", "groups": present, "n_workers_grouped": sum(g is not None for g in groups),
                   "kinds": {k: kinds.count(k) for k in ("agreement", "noise", "contested")}}
        return metas, summary
    d = disagreement_diagnosis(matrix, groups, random_state=settings.random_state)
    kinds = d.kind_names()
    counts = d.group_label_counts
    metas = []
    for i in range(matrix.n_items):
        per_group = {}
        for g, name in enumerate(d.group_names):
            n = int(d.group_counts[i, g])
            if n:
                per_group[str(name)] = {"n": n, "majority": classes[int(counts[i, g].argmax())],
                                        "distribution": {c: _number(v / n) for c, v in zip(classes, counts[i, g],
                                                                                            strict=True)}}
        metas.append({"kind": kinds[i], "basis": "groups", "score": _number(float(d.systematic_score[i])),
                      "p_value": _number(float(d.p_value[i])), "noise_score": _number(float(d.noise_score[i])),
                      "groups": per_group})
    summary: dict[str, Any] = {"basis": "groups", "groups": [str(g) for g in d.group_names],
                               "n_workers_grouped": sum(g is not None for g in groups),
                               "kinds": {k: kinds.count(k) for k in ("agreement", "noise", "systematic")}}
    if settings.jury_composition:
        composition = dict(settings.jury_composition)
        missing = [g for g in composition if g not in d.group_names]
        if missing:
            summary["jury"] = {"composition": composition, "skipped": f"no rater of group(s) {missing} on this "
                               "question"}
        else:
            v = group_jury_verdicts(d, composition, n_samples=JURY_SAMPLES, random_state=settings.random_state)
            for i, meta in enumerate(metas):
                meta["jury"] = {"verdict": classes[int(v.labels[i])],
                                "distribution": {c: _number(p) for c, p in zip(classes, v.distribution[i],
                                                                               strict=True)}}
            verdicts = [classes[int(c)] for c in v.labels]
            summary["jury"] = {"composition": composition, "n_samples": JURY_SAMPLES,
                               "verdicts": {c: verdicts.count(c) for c in classes}}
    return metas, summary


def soft_label_rows(pulled: PulledProject, *, smoothing: float = 0.0) -> list[dict[str, Any]]:
    """Soft labels for training on disagreement: one row per item, question and class.

    Columns: ``item`` (the task id for Label Studio input), ``task``, ``question``,
    ``label``, ``votes`` and ``share`` (:func:`galton.quality.perspectives.soft_labels`,
    ``smoothing`` pseudo-votes per class); the shares of an item and question sum to 1.
    """
    rows: list[dict[str, Any]] = []
    task_of = pulled.task_of_item()
    for key, data in pulled.questions().items():
        shares = soft_labels(data.matrix, smoothing=smoothing)
        counts = data.matrix.label_counts()
        classes = [str(c) for c in data.encoding.class_names]
        for code, item in enumerate(data.encoding.item_ids):
            for k, label in enumerate(classes):
                rows.append({"item": item if isinstance(item, int | str) else str(item), "task": task_of[item],
                             "question": key, "label": label, "votes": int(counts[code, k]),
                             "share": round(float(shares[code, k]), 6)})
    return rows


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
    disagreement_summary: dict[str, dict[str, Any]] = {}
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
        disagreement, disagreement_summary[key] = _disagreement(pulled, data, settings, spam)
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
            if disagreement[code]["kind"] == "systematic":
                flags.append("systematic_disagreement")
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
                "disagreement": disagreement[code],
            }
            entry["flags"] = sorted(set(entry["flags"]) | set(flags))
            worst = entry.get("disagreement")
            mine = disagreement[code]
            if worst is None or (_SEVERITY[mine["kind"]], mine["score"] or 0.0) > (
                    _SEVERITY[worst["kind"]], worst["score"] or 0.0):
                entry["disagreement"] = {**mine, "question": key}
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
        "disagreement": disagreement_summary,
    }
    return Review(version, predictions, meta, worker_rows, summary, results)
