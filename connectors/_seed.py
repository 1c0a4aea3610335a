"""Build a Label Studio project from a crowd dataset: for demos, benchmarks and tests.

Each worker of the dataset becomes a Label Studio user (``<worker>@raters.galton.invalid``),
each item a task, and each annotation a real annotation ``completed_by`` that user, imported
in bulk with the tasks (``ground_truth`` off, so gold comes only from what you mark).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from ._csv import CrowdDataset
from ._errors import PlatformError
from ._labelstudio import LabelStudioConnector

__all__ = ["SeededProject", "choices_config", "rater_email", "seed_crowd_project"]

RATER_DOMAIN = "raters.galton.invalid"


def rater_email(worker: Hashable) -> str:
    """The e-mail a dataset's worker gets in Label Studio (ids made address-safe, lower case)."""
    safe = re.sub(r"[^a-z0-9._-]+", "-", str(worker).lower()).strip("-.") or "worker"
    return f"{safe}@{RATER_DOMAIN}"


def choices_config(classes: Sequence[str], *, name: str = "label", text_fields: Sequence[str] = ("text",)) -> str:
    """A labeling config: the text fields shown, one single-choice control over ``classes``."""
    shown = "".join(f"<Text name={quoteattr(f)} value={quoteattr('$' + f)}/>" for f in text_fields)
    options = "".join(f"<Choice value={quoteattr(str(c))}/>" for c in classes)
    return f"<View>{shown}<Choices name={quoteattr(name)} toName={quoteattr(text_fields[0])}>{options}</Choices></View>"


@dataclass(frozen=True)
class SeededProject:
    """A project made by :func:`seed_crowd_project`, with the id maps back to the dataset."""

    project_id: int
    task_of_item: Mapping[Hashable, int]
    user_of_worker: Mapping[Hashable, int]
    label_config: str

    @property
    def worker_of_user(self) -> dict[int, Hashable]:
        return {user: worker for worker, user in self.user_of_worker.items()}


def ensure_users(connector: LabelStudioConnector, emails: Sequence[str]) -> dict[str, int]:
    """User ids for these e-mails, creating the missing users (admin token needed)."""
    existing = {info.email.lower(): user_id for user_id, info in connector.workers().items()}
    missing = [e for e in dict.fromkeys(emails) if e.lower() not in existing]

    def create(email: str) -> tuple[str, int]:
        user = connector._call(
            "creating a user", None,
            lambda: connector.sdk.users.create(email=email, username=email.split("@")[0][:150]),
        )
        return email.lower(), int(user.id)

    with ThreadPoolExecutor(connector.n_threads) as pool:
        existing.update(pool.map(create, missing))
    return {email: existing[email.lower()] for email in emails}


def seed_crowd_project(
    connector: LabelStudioConnector,
    dataset: CrowdDataset,
    *,
    title: str,
    texts: Mapping[Hashable, Mapping[str, Any]] | None = None,
    label_config: str | None = None,
    control: str = "label",
    batch_size: int = 500,
) -> SeededProject:
    """Create a project holding ``dataset``'s annotations as real multi-rater annotations.

    Parameters
    ----------
    dataset : CrowdDataset
        From :func:`read_crowd_dataset` or :func:`load_sample`.
    texts : mapping, optional
        Item id -> task data fields (e.g. ``{"text": ..., "text_b": ...}``). Default: the
        item id as ``text``. Every task's data also carries ``item`` (the dataset's id).
    label_config : str, optional
        Default: :func:`choices_config` over the dataset's classes and the text fields.
    """
    matrix, encoding = dataset.matrix, dataset.encoding
    fields = list(next(iter(texts.values())).keys()) if texts else ["text"]
    config = label_config or choices_config([str(c) for c in encoding.class_names], name=control,
                                            text_fields=fields)
    project = connector._call("creating a project", None,
                              lambda: connector.sdk.projects.create(title=title, label_config=config))
    project_id = int(project.id)
    emails = [rater_email(w) for w in encoding.worker_ids]
    users = ensure_users(connector, emails)
    user_of_worker = {w: users[e] for w, e in zip(encoding.worker_ids, emails, strict=True)}
    to_name = re.search(r'toName="([^"]+)"', config)
    to_name_value = to_name.group(1) if to_name else fields[0]
    per_item: dict[int, list[dict[str, Any]]] = {}
    for item, worker, label in zip(matrix.items.tolist(), matrix.workers.tolist(), matrix.labels.tolist(),
                                   strict=True):
        per_item.setdefault(item, []).append({
            "completed_by": user_of_worker[encoding.worker_ids[worker]],
            "ground_truth": False,
            "result": [{"from_name": control, "to_name": to_name_value, "type": "choices",
                        "value": {"choices": [str(encoding.class_names[label])]}}],
        })
    tasks = []
    for code, item in enumerate(encoding.item_ids):
        data = dict(texts.get(item, {})) if texts else {"text": str(item)}
        data["item"] = item
        tasks.append({"data": data, "annotations": per_item.get(code, [])})
    task_ids: list[int] = []
    for start in range(0, len(tasks), batch_size):
        batch = tasks[start : start + batch_size]
        response = connector._call(
            f"importing {len(batch)} tasks", project_id,
            lambda b=batch: connector.sdk.projects.import_tasks(id=project_id, request=b, return_task_ids=True),
        )
        ids = list(response.task_ids or [])
        if len(ids) != len(batch):
            raise PlatformError(f"imported {len(batch)} tasks but got {len(ids)} task ids back",
                                project_id=project_id)
        task_ids.extend(int(i) for i in ids)
    return SeededProject(project_id, dict(zip(encoding.item_ids, task_ids, strict=True)), user_of_worker, config)
