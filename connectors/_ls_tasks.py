"""Label Studio tasks (API pages or a JSON export) -> one AnnotationMatrix per question.

The rules, applied in this order to every annotation of every task:

1. cancelled (skipped) annotations are dropped;
2. annotations without an annotator (``completed_by`` missing, e.g. a deleted user) are dropped;
3. answers are read per question (see :mod:`._ls_config`); results of controls that
   galton does not score are ignored; an annotation without any scored answer is dropped
   as an empty result; answers outside the labeling config are dropped and counted;
4. when one annotator has several annotations on a task, the latest (``updated_at``, then
   the higher id) is kept and the others are counted;
5. gold: annotations marked *ground truth* give the task's gold label, unless every
   annotation of the task carries the mark (Label Studio marks imported annotations that
   way, so there the mark says nothing); an explicit gold mapping wins over the mark.

Drafts are not annotations and are never read. Every dropped annotation is counted in
:attr:`PulledProject.skipped` under its reason; nothing is dropped silently.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from galton.quality import AnnotationMatrix, Encoding, InputError
from galton.quality._errors import describe_examples

from ._ls_config import LabelConfig, Question, parse_label_config, question_answers

__all__ = [
    "AnnotationRecord",
    "PulledProject",
    "QuestionData",
    "TaskRecord",
    "WorkerInfo",
    "parse_tasks",
    "read_labelstudio_export",
]

SKIP_CANCELLED = "cancelled or skipped"
SKIP_NO_ANNOTATOR = "no annotator (deleted user?)"
SKIP_EMPTY = "empty result (no scored answer)"
SKIP_OUTSIDE = "answer outside the labeling config"
SKIP_OLDER = "older annotation by the same annotator (latest kept)"
SKIP_BAD_TASK = "malformed task"


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A Label Studio user: the id is the worker id; e-mail and name are for display."""

    id: int
    email: str = ""
    name: str = ""

    @property
    def display(self) -> str:
        return self.name or self.email or f"user {self.id}"


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """What galton keeps of a task: its id, item id, ``meta``, ``updated_at``, and the
    predictions it held when pulled (``id``, ``model_version``, ``score``, ``result`` each;
    ``None`` when the source did not say, e.g. a CSV)."""

    id: int
    item: Hashable
    meta: Mapping[str, Any]
    updated_at: str | None
    predictions: tuple[Mapping[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class AnnotationRecord:
    """One kept annotation, with the timing data rater statistics use.

    ``answers`` maps question keys to class names.
    """

    id: int
    task_id: int
    worker: int
    answers: Mapping[str, str]
    created_at: str | None
    updated_at: str | None
    lead_time: float | None
    ground_truth: bool


@dataclass(frozen=True)
class QuestionData:
    """One question's annotations as the engine takes them.

    ``matrix``/``encoding``: items are task ids (or the ``item_field`` values), workers are
    Label Studio user ids, classes in config order. ``gold`` maps item ids to class names.
    """

    question: Question
    matrix: AnnotationMatrix
    encoding: Encoding
    gold: Mapping[Hashable, str]

    def gold_codes(self) -> NDArray[np.int32]:
        """The ``gold=`` argument of the consensus methods (-1 where no gold)."""
        return self.encoding.encode_gold(self.gold, strict=False)


@dataclass(frozen=True)
class PulledProject:
    """A project's tasks and kept annotations, plus everything that was left out and why.

    Attributes
    ----------
    project_id : int or None
        None for an export file.
    config : LabelConfig
    tasks : mapping of task id to TaskRecord
        Every task, annotated or not.
    annotations : tuple of AnnotationRecord
        The kept annotations (at most one per task and annotator).
    workers : mapping of user id to WorkerInfo
    gold : mapping of question key to {item: class}
    skipped : mapping of reason to count
    watermark : str or None
        Server time (ISO 8601, UTC) at which the pull started: pass it as ``since`` to the
        next incremental pull.
    """

    project_id: int | None
    config: LabelConfig
    tasks: Mapping[int, TaskRecord]
    annotations: tuple[AnnotationRecord, ...]
    workers: Mapping[int, WorkerInfo]
    gold: Mapping[str, Mapping[Hashable, str]]
    skipped: Mapping[str, int]
    watermark: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def item_of(self, task_id: int) -> Hashable:
        return self.tasks[task_id].item

    def task_of_item(self) -> dict[Hashable, int]:
        """Item id -> task id (the inverse of :meth:`item_of`)."""
        return {record.item: task_id for task_id, record in self.tasks.items()}

    def questions(self) -> dict[str, QuestionData]:
        """One :class:`QuestionData` per question that has at least one answer."""
        out: dict[str, QuestionData] = {}
        for question in self.config.questions:
            rows = [(self.tasks[a.task_id].item, a.worker, a.answers[question.key])
                    for a in self.annotations if question.key in a.answers]
            if not rows:
                continue
            items, workers, labels = zip(*rows, strict=True)
            matrix, encoding = AnnotationMatrix.from_triplets(items, workers, labels, classes=question.classes)
            out[question.key] = QuestionData(question, matrix, encoding, dict(self.gold.get(question.key, {})))
        return out

    def merge(self, changed: PulledProject) -> PulledProject:
        """This snapshot updated with an incremental pull: the changed tasks replace theirs."""
        if changed.config.xml != self.config.xml:
            raise InputError("the labeling config changed since the last pull; do a full pull instead of merging")
        replaced = set(changed.tasks)
        tasks = {**self.tasks, **changed.tasks}
        annotations = tuple(a for a in self.annotations if a.task_id not in replaced) + changed.annotations
        gold: dict[str, dict[Hashable, str]] = {}
        changed_items = {changed.tasks[t].item for t in replaced}
        for key in {*self.gold, *changed.gold}:
            kept = {item: label for item, label in self.gold.get(key, {}).items() if item not in changed_items}
            gold[key] = {**kept, **changed.gold.get(key, {})}
        skipped = Counter(self.skipped)
        skipped.update(changed.skipped)
        return PulledProject(
            project_id=self.project_id, config=self.config, tasks=tasks, annotations=annotations,
            workers={**self.workers, **changed.workers}, gold=gold, skipped=dict(skipped),
            watermark=changed.watermark or self.watermark, notes=self.notes + changed.notes,
        )

    def with_annotations(self, annotations: Iterable[Mapping[str, Any]]) -> PulledProject | None:
        """This snapshot with annotations applied as Label Studio's webhooks carry them (an
        ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED`` payload's ``annotation``, its ``task``
        field naming the task), oldest first, under the module's rules; or None when they cannot
        stand for a pull of their tasks, because the payload alone cannot say what a pull would
        keep: an unknown task or annotator, an annotation that is cancelled or has no (or an
        outside) answer, a ground-truth mark on the task (gold depends on all its marks), or a
        snapshot that dropped older duplicates (an updated annotation may bring one back).

        The watermark stays: the next incremental pull reads these tasks again.
        """
        if self.skipped.get(SKIP_OLDER):
            return None
        by_control = self.config.controls()
        kept = {(a.task_id, a.worker): a for a in self.annotations}
        by_id = {a.id: (a.task_id, a.worker) for a in self.annotations if a.id >= 0}
        marked = {a.task_id for a in self.annotations if a.ground_truth}
        workers = dict(self.workers)
        for annotation in annotations:
            task_id = _user_id(annotation.get("task")) if isinstance(annotation, Mapping) else None
            if task_id is None or task_id not in self.tasks or task_id in marked:
                return None
            record, reason = _read_annotation(annotation, task_id, by_control, workers)
            if record is None or reason is not None or record.id < 0 or record.ground_truth \
                    or record.worker not in self.workers:
                return None
            slot = by_id.get(record.id)
            if slot is not None and slot != (task_id, record.worker):
                return None  # an annotation moved to another task or annotator: not a webhook's doing
            previous = kept.get((task_id, record.worker))
            if previous is not None and previous.id != record.id:
                return None  # a second annotation by the same annotator: the pull decides which stays
            if previous is not None and (previous.updated_at or "") > (record.updated_at or ""):
                continue  # the snapshot already holds a later version (a pull read it after this save)
            kept[(task_id, record.worker)] = record
            by_id[record.id] = (task_id, record.worker)
        ordered = tuple(sorted(kept.values(), key=lambda a: (a.task_id, a.worker)))
        return replace(self, annotations=ordered)

    def without_annotations(self, annotation_ids: Iterable[int]) -> PulledProject | None:
        """This snapshot less the annotations an ``ANNOTATIONS_DELETED`` webhook names (ids
        it does not hold were never kept: nothing to remove), or None where a pull must decide:
        a deleted annotation on a task with ground-truth marks, or a snapshot that dropped
        older duplicates (one may take the deleted one's place)."""
        if self.skipped.get(SKIP_OLDER):
            return None
        gone = set(annotation_ids)
        removed = [a for a in self.annotations if a.id in gone]
        marked = {a.task_id for a in self.annotations if a.ground_truth}
        if any(a.task_id in marked for a in removed):
            return None
        if not removed:
            return self
        return replace(self, annotations=tuple(a for a in self.annotations if a.id not in gone))


def _user_id(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _worker_from(value: Any) -> WorkerInfo | None:
    """Display data from an expanded ``completed_by`` ({id, email, first_name, ...})."""
    if not isinstance(value, dict) or _user_id(value) is None:
        return None
    name = " ".join(str(value.get(k) or "") for k in ("first_name", "last_name")).strip()
    return WorkerInfo(int(_user_id(value)), str(value.get("email") or ""), name)


def _item_id(task: Mapping[str, Any], item_field: str | None) -> Hashable:
    if item_field is None:
        return int(task["id"])
    data = task.get("data")
    value = data.get(item_field) if isinstance(data, dict) else None
    if value is None or isinstance(value, dict | list):
        raise InputError(
            f"task {task.get('id')} has no scalar data field {item_field!r} to use as item id; "
            "check the item field name or drop the option to use task ids"
        )
    return value


def _held_predictions(task: Mapping[str, Any]) -> tuple[dict[str, Any], ...] | None:
    """The predictions a raw task lists (what a write-back must reconcile with), or None
    when it lists none in a usable form (no ``predictions`` key, or one without ids)."""
    raw = task.get("predictions")
    if not isinstance(raw, list):
        return None
    held = []
    for prediction in raw:
        if not isinstance(prediction, Mapping) or isinstance(prediction.get("id"), bool) \
                or not isinstance(prediction.get("id"), int):
            return None
        held.append({"id": int(prediction["id"]), "task": int(task["id"]),
                     "model_version": prediction.get("model_version"), "score": prediction.get("score"),
                     "result": prediction.get("result")})
    return tuple(held)


def _read_annotation(annotation: Any, task_id: int, by_control: Mapping[str, list[Question]],
                     known_workers: dict[int, WorkerInfo]) -> tuple[AnnotationRecord | None, str | None]:
    """One raw annotation under rules 1-3: (the record or None, the skip reason or None).

    An annotation with answers both inside and outside the config gives a record and
    :data:`SKIP_OUTSIDE`. Display data of an expanded ``completed_by`` goes into ``known_workers``.
    """
    if not isinstance(annotation, Mapping):
        return None, SKIP_BAD_TASK
    if annotation.get("was_cancelled"):
        return None, SKIP_CANCELLED
    worker = _user_id(annotation.get("completed_by"))
    if worker is None:
        return None, SKIP_NO_ANNOTATOR
    info = _worker_from(annotation.get("completed_by"))
    if info is not None and worker not in known_workers:
        known_workers[worker] = info
    answers: dict[str, str] = {}
    outside = False
    results = annotation.get("result") or []
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, Mapping):
            outside = True
            continue
        control = result.get("from_name")
        value = result.get("value")
        if control not in by_control or not isinstance(value, Mapping):
            continue
        for question in by_control[control]:
            try:
                answer = question_answers(question, value)
            except InputError:
                outside = True
                continue
            if answer is None:
                continue
            if answer not in question.classes:
                outside = True
                continue
            answers[question.key] = answer
    reason = SKIP_OUTSIDE if outside else None
    if not answers:
        return None, reason or SKIP_EMPTY
    lead = annotation.get("lead_time")
    annotation_id = annotation.get("id")
    return AnnotationRecord(
        id=int(annotation_id) if isinstance(annotation_id, int) and not isinstance(annotation_id, bool) else -1,
        task_id=task_id,
        worker=worker,
        answers=answers,
        created_at=annotation.get("created_at") if isinstance(annotation.get("created_at"), str) else None,
        updated_at=annotation.get("updated_at") if isinstance(annotation.get("updated_at"), str) else None,
        lead_time=float(lead) if isinstance(lead, int | float) and not isinstance(lead, bool) else None,
        ground_truth=bool(annotation.get("ground_truth")),
    ), reason


def parse_tasks(
    tasks: Iterable[Mapping[str, Any]],
    config: LabelConfig | str,
    *,
    project_id: int | None = None,
    item_field: str | None = None,
    gold: Mapping[str, Mapping[Hashable, str]] | None = None,
    workers: Mapping[int, WorkerInfo] | None = None,
    watermark: str | None = None,
) -> PulledProject:
    """Turn Label Studio task dicts into a :class:`PulledProject` (rules in the module doc).

    Parameters
    ----------
    tasks : iterable of dict
        Tasks as the API or a JSON export gives them, each with ``id``, ``data`` and
        ``annotations``.
    config : LabelConfig or str
        The project's labeling config (parsed or XML).
    item_field : str, optional
        A ``data`` field holding the item id (e.g. the id in your source data). Default:
        the Label Studio task id.
    gold : mapping, optional
        ``{question key: {item: class}}``; overrides ground-truth marks.
    workers : mapping, optional
        User id -> WorkerInfo (from the users API); merged with what the tasks carry.

    Raises
    ------
    InputError
        A task without an integer id, two tasks with the same item id, or a gold label
        outside the config's classes.
    """
    if isinstance(config, str):
        config = parse_label_config(config)
    questions = config.questions
    by_control: dict[str, list[Question]] = config.controls()
    skipped: Counter[str] = Counter()
    outside_tasks: list[int] = []
    task_records: dict[int, TaskRecord] = {}
    kept: dict[tuple[int, int], AnnotationRecord] = {}
    marked_gold: dict[str, dict[Hashable, str]] = {}
    seen_items: dict[Hashable, int] = {}
    known_workers: dict[int, WorkerInfo] = dict(workers or {})

    for task in tasks:
        if not isinstance(task, Mapping) or isinstance(task.get("id"), bool) or not isinstance(task.get("id"), int):
            skipped[SKIP_BAD_TASK] += 1
            continue
        task_id = int(task["id"])
        item = _item_id(task, item_field)
        if item in seen_items and seen_items[item] != task_id:
            raise InputError(
                f"tasks {seen_items[item]} and {task_id} share the item id {item!r} in data field {item_field!r}; "
                "item ids must be unique"
            )
        seen_items[item] = task_id
        meta = task.get("meta")
        task_records[task_id] = TaskRecord(task_id, item, dict(meta) if isinstance(meta, dict) else {},
                                           task.get("updated_at"), _held_predictions(task))
        raw_annotations = task.get("annotations") or []
        if not isinstance(raw_annotations, list):
            skipped[SKIP_BAD_TASK] += 1
            continue
        task_annotations: list[AnnotationRecord] = []
        for annotation in raw_annotations:
            record, reason = _read_annotation(annotation, task_id, by_control, known_workers)
            if reason is not None:
                skipped[reason] += 1
                if reason == SKIP_OUTSIDE:
                    outside_tasks.append(task_id)
            if record is not None:  # with SKIP_OUTSIDE: the answers inside the config are kept
                task_annotations.append(record)
        marks = [a.ground_truth for a in task_annotations]
        mark_means_gold = any(marks) and not all(marks)
        for record in task_annotations:
            key = (task_id, record.worker)
            previous = kept.get(key)
            if previous is None:
                kept[key] = record
                continue
            skipped[SKIP_OLDER] += 1
            if (record.updated_at or "", record.id) > (previous.updated_at or "", previous.id):
                kept[key] = record
        if mark_means_gold:
            for record in sorted(task_annotations, key=lambda a: (a.updated_at or "", a.id)):
                if record.ground_truth:
                    for key, answer in record.answers.items():
                        marked_gold.setdefault(key, {})[item] = answer

    gold_out: dict[str, dict[Hashable, str]] = {key: dict(values) for key, values in marked_gold.items()}
    for key, values in (gold or {}).items():
        question = config.question(key)
        bad = [label for label in values.values() if label not in question.classes]
        if bad:
            raise InputError(
                f"{len(bad)} gold labels for {key!r} are outside the config's classes {list(question.classes)!r}: "
                f"{describe_examples(bad)}"
            )
        gold_out.setdefault(key, {}).update(values)
    notes = []
    if skipped[SKIP_OLDER]:
        notes.append(f"{skipped[SKIP_OLDER]} annotations were older duplicates by the same annotator; kept the latest")
    if outside_tasks:
        notes.append(f"{len(outside_tasks)} annotations hold answers outside the labeling config "
                     f"(tasks {describe_examples(sorted(set(outside_tasks)))})")
    unscored = [f"<{tag} name={name!r}>: {reason}" for tag, name, reason in config.unscored]
    if unscored:
        notes.append("not scored: " + "; ".join(unscored))
    if not questions:
        notes.append("the labeling config has no classification control galton can score")
    ordered = tuple(sorted(kept.values(), key=lambda a: (a.task_id, a.worker)))
    return PulledProject(
        project_id=project_id, config=config, tasks=task_records, annotations=ordered,
        workers=known_workers, gold=gold_out, skipped={k: v for k, v in skipped.items() if v},
        watermark=watermark, notes=tuple(notes),
    )


def _infer_config(tasks: list[Mapping[str, Any]]) -> str:
    """A labeling config from the results of an export that came without one.

    Only single-choice ``choices``, ``rating`` and ``pairwise`` results are inferred; class
    order is the sorted set of observed values (say the real order with ``label_config``).
    """
    seen: dict[str, tuple[str, str, set[str]]] = {}
    for task in tasks:
        raw = task.get("annotations") if isinstance(task, Mapping) else None
        for annotation in raw if isinstance(raw, list) else []:
            results = annotation.get("result") if isinstance(annotation, Mapping) else None
            for result in results if isinstance(results, list) else []:
                if not isinstance(result, Mapping) or not isinstance(result.get("value"), Mapping):
                    continue
                kind, name = result.get("type"), result.get("from_name")
                if kind not in ("choices", "rating", "pairwise") or not isinstance(name, str):
                    continue
                entry = seen.setdefault(name, (kind, str(result.get("to_name") or "item"), set()))
                value = result["value"]
                if kind == "choices" and isinstance(value.get("choices"), list):
                    entry[2].update(str(c) for c in value["choices"])
                elif kind == "rating" and isinstance(value.get("rating"), int | float) \
                        and math.isfinite(value["rating"]):
                    entry[2].add(str(int(value["rating"])))
    if not seen:
        raise InputError("the export holds no choices, rating or pairwise results, and no label_config was given")
    parts = []
    for name, (kind, to_name, values) in seen.items():
        if kind == "choices":
            inner = "".join(f'<Choice value="{_xml_attr(v)}"/>' for v in sorted(values))
            parts.append(f'<Choices name="{_xml_attr(name)}" toName="{_xml_attr(to_name)}">{inner}</Choices>')
        elif kind == "rating":
            top = max((int(v) for v in values), default=5)
            parts.append(f'<Rating name="{_xml_attr(name)}" toName="{_xml_attr(to_name)}" maxRating="{top}"/>')
        else:
            parts.append(f'<Pairwise name="{_xml_attr(name)}" toName="{_xml_attr(to_name)}"/>')
    return "<View>" + "".join(parts) + "</View>"


def _xml_attr(value: str) -> str:
    return (value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;"))


def read_labelstudio_export(
    path: str | os.PathLike[str],
    *,
    label_config: str | None = None,
    item_field: str | None = None,
    gold: Mapping[str, Mapping[Hashable, str]] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> PulledProject:
    """Read a Label Studio JSON export file (the API's ``exportType=JSON`` format).

    Parameters
    ----------
    path : path
        The export: a JSON list of tasks.
    label_config : str, optional
        The project's labeling config XML (Settings > Labeling Interface > Code). Without
        it the questions are inferred from the results and class order is sorted.
    item_field, gold : see :func:`parse_tasks`.

    Raises
    ------
    InputError
        The file is missing, is not JSON, or is not a list of tasks.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a JSON file ({error.__class__.__name__} at {getattr(error, 'pos', '?')})"
                         "; export the project as JSON (not JSON_MIN or CSV)") from None
    except RecursionError:
        raise InputError(f"{path}: the JSON is nested too deeply to be a Label Studio export") from None
    if isinstance(tasks, dict) and isinstance(tasks.get("tasks"), list):
        tasks = tasks["tasks"]
    if not isinstance(tasks, list):
        raise InputError(f"{path}: a Label Studio JSON export is a list of tasks; this file holds a "
                         f"{type(tasks).__name__}")
    if progress is not None:
        progress(len(tasks), len(tasks))
    config = label_config if label_config is not None else _infer_config(tasks)
    return parse_tasks(tasks, config, item_field=item_field, gold=gold)
