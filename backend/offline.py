"""The engine on files: load CSV, a Label Studio export or a live project into one shape.

``galton score`` and ``galton gate`` take three kinds of input and turn each into a
:class:`~galton.connectors.PulledProject`, so that :func:`galton.backend.review.review_project`
(consensus, flags, rater table) runs unchanged on all of them:

* ``item,worker,label`` CSV (and ``item,label`` gold CSV): one question named ``label``;
  items and workers keep their ids as written; the tasks get ids 1..n in item order;
* a Label Studio JSON export (questions from ``--label-config`` or inferred);
* a Label Studio project, pulled through :class:`~galton.connectors.LabelStudioConnector`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from galton.connectors import (
    AnnotationRecord,
    PulledProject,
    QuestionData,
    TaskRecord,
    choices_config,
    parse_label_config,
    read_annotations_csv,
    read_gold_csv,
    read_labelstudio_export,
)
from galton.quality import AnnotationMatrix, Encoding, InputError

from .review import Review

__all__ = ["CSV_QUESTION", "consensus_rows", "crowd_project", "load_csv", "load_export", "pick_question",
           "with_gold"]

CSV_QUESTION = "label"
PathLike = str | os.PathLike[str]


def crowd_project(matrix: AnnotationMatrix, encoding: Encoding, gold: Mapping[Hashable, str] | None = None, *,
                  question: str = CSV_QUESTION) -> PulledProject:
    """A PulledProject of one single-choice question from an annotation matrix (task ids 1..n_items)."""
    config = parse_label_config(choices_config([str(c) for c in encoding.class_names], name=question))
    tasks = {code + 1: TaskRecord(code + 1, item, {}, None) for code, item in enumerate(encoding.item_ids)}
    annotations = tuple(
        AnnotationRecord(id=row + 1, task_id=int(item) + 1, worker=encoding.worker_ids[int(worker)],
                         answers={question: str(encoding.class_names[int(label)])}, created_at=None,
                         updated_at=None, lead_time=None, ground_truth=False)
        for row, (item, worker, label) in enumerate(zip(matrix.items, matrix.workers, matrix.labels, strict=True))
    )
    known = set(encoding.item_ids)
    kept_gold = {item: str(label) for item, label in (gold or {}).items() if item in known}
    return PulledProject(project_id=None, config=config, tasks=tasks, annotations=annotations, workers={},
                         gold={question: kept_gold} if kept_gold else {}, skipped={})


def load_csv(annotations: PathLike, gold: PathLike | None = None) -> PulledProject:
    """``item,worker,label`` annotations (and ``item,label`` gold) as a one-question project.

    Class order is the sorted union of annotated and gold labels.
    """
    gold_labels = read_gold_csv(gold) if gold is not None else {}
    matrix, encoding = read_annotations_csv(annotations)
    extra = set(gold_labels.values()) - {str(c) for c in encoding.class_names}
    if extra:
        matrix, encoding = read_annotations_csv(annotations, classes=sorted({*encoding.class_names, *extra}))
    return crowd_project(matrix, encoding, gold_labels)


def load_export(export: PathLike, label_config: PathLike | None = None, *,
                progress: Callable[[int, int | None], None] | None = None) -> PulledProject:
    """A Label Studio JSON export, with the labeling config XML from a file when given."""
    xml = None
    if label_config is not None:
        path = Path(label_config)
        if not path.is_file():
            raise InputError(f"{path}: no such file (the labeling config XML)")
        xml = path.read_text(encoding="utf-8")
    return read_labelstudio_export(export, label_config=xml, progress=progress)


def with_gold(pulled: PulledProject, gold: Mapping[str, str], question: str) -> PulledProject:
    """``pulled`` with gold labels from an ``item,label`` file for one question (the file wins).

    Gold item ids are matched to the project's items as text (task ids for an export).
    """
    by_text = {str(record.item): record.item for record in pulled.tasks.values()}
    unknown = [item for item in gold if item not in by_text]
    matched = {by_text[item]: label for item, label in gold.items() if item in by_text}
    if not matched:
        raise InputError(f"none of the {len(gold)} gold items matches a task of the input (first: "
                         f"{', '.join(repr(i) for i in list(unknown)[:3])}); for an export, gold items are task ids")
    classes = pulled.config.question(question).classes
    bad = sorted({label for label in matched.values() if label not in classes})
    if bad:
        raise InputError(f"{len(bad)} gold labels are outside the classes of {question!r} {list(classes)!r}: "
                         f"{', '.join(repr(b) for b in bad[:5])}")
    merged = {key: dict(values) for key, values in pulled.gold.items()}
    merged.setdefault(question, {}).update(matched)
    return dataclasses.replace(pulled, gold=merged)


def pick_question(pulled: PulledProject, question: str | None) -> QuestionData:
    """The data of one question: ``question`` or the only one there is."""
    data = pulled.questions()
    if not data:
        raise InputError("the input holds no scored answers (no choices, rating or pairwise annotations)")
    if question is None:
        if len(data) > 1:
            raise InputError(f"the input has {len(data)} questions {sorted(data)}; choose one with --question")
        return next(iter(data.values()))
    if question not in data:
        raise InputError(f"no answers to question {question!r}; the input has {sorted(data)}")
    return data[question]


def _item_text(item: Hashable) -> Any:
    return item if isinstance(item, int | str) else str(item)


def consensus_rows(pulled: PulledProject, review: Review) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(consensus, items)`` rows from a review: one row per task and question each.

    consensus: item (the task id for Label Studio input), question, label, confidence. items: the same plus
    n_annotations, agreement, flags (``;``-separated), gold and the label distribution.
    """
    consensus: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for task_id in sorted(review.meta):
        entry = review.meta[task_id]
        item = pulled.item_of(task_id)
        for key, answer in entry["questions"].items():
            base = {"item": _item_text(item), "question": key}
            consensus.append({**base, "label": answer["label"], "confidence": answer["confidence"]})
            items.append({**base, "label": answer["label"], "confidence": answer["confidence"],
                          "agreement": answer["agreement"], "n_annotations": answer["n_annotations"],
                          "flags": ";".join(answer["flags"]), "gold": pulled.gold.get(key, {}).get(item),
                          "distribution": answer["distribution"]})
    return consensus, items


def worker_display(pulled: PulledProject, worker: Hashable) -> str:
    info = pulled.workers.get(worker)  # type: ignore[arg-type]
    return info.display if info is not None else str(worker)


def summary_numbers(values: Any) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if not array.size:
        return {}
    return {"mean": round(float(array.mean()), 4), "median": round(float(np.median(array)), 4)}
