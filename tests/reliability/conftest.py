"""Helpers for the reliability tests: one small multi-rater project, made the same way many
times, and the state of a project in Label Studio reduced to what must not change.

Each fault scenario gets its own project with the same content; the clean run (no proxy,
no fault) gives the state every scenario must end in. Results go to the JSON-lines file
named by ``GALTON_RELIABILITY_RESULTS`` when it is set (``benchmarks/reliability.py`` reads it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from galton.backend.jobs import Reviewer
from galton.backend.review import ReviewSettings
from galton.backend.settings import Settings
from galton.backend.state import StateStore
from galton.connectors import GALTON_PREFIX, LabelStudioConnector
from galton.connectors._seed import ensure_users
from tests.backend.conftest import CONFIG

N_TASKS = 9  # 8 annotated by three raters, one without annotations
LABELS = ["pos", "neg", "pos", "neg", "pos", "neg", "pos", "neg"]
# rater 3 disagrees on a few tasks, so confidences and flags differ between tasks
THIRD = ["pos", "neg", "neg", "neg", "pos", "pos", "pos", "neg"]
FOREIGN = {"reviewer_note": "keep me <b>", "nested": {"round": 3, "tags": ["a", "b"]}}


def choice(label: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def record(entry: dict[str, Any]) -> None:
    """Append one result line for the benchmark's table (when it asked for them)."""
    path = os.environ.get("GALTON_RELIABILITY_RESULTS")
    if path:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")


def raters(connector: LabelStudioConnector) -> list[int]:
    return list(ensure_users(connector, [f"rel-rater-{i}@raters.galton.invalid" for i in range(3)]).values())


def make_project(connector: LabelStudioConnector, title: str, *, third_later: bool = False) -> tuple[int, list[int]]:
    """The reliability project: ``N_TASKS`` tasks, three raters, foreign ``meta`` on half of them.

    With ``third_later`` the third rater's annotations are left out (add them with
    :func:`add_third`): the same final content, reached through an incremental pull.
    """
    workers = raters(connector)
    sdk = connector.sdk
    project_id = int(sdk.projects.create(title=title, label_config=CONFIG).id)
    tasks = []
    for i in range(N_TASKS):
        entry: dict[str, Any] = {"data": {"text": f"reliability task {i}"}}
        if i < len(LABELS):
            votes = [LABELS[i], LABELS[i]] + ([] if third_later else [THIRD[i]])
            entry["annotations"] = [{"result": choice(v), "completed_by": w} for v, w in zip(votes, workers,
                                                                                              strict=False)]
        tasks.append(entry)
    imported = sdk.projects.import_tasks(id=project_id, request=tasks, return_task_ids=True)
    task_ids = [int(t) for t in imported.task_ids]
    for task_id in task_ids[::2]:  # what users keep in meta: galton must never clobber it
        sdk.tasks.update(id=str(task_id), meta=FOREIGN)
    return project_id, task_ids


def add_third(connector: LabelStudioConnector, task_ids: list[int]) -> None:
    worker = raters(connector)[2]
    for i, label in enumerate(THIRD):
        connector.sdk.annotations.create(id=task_ids[i], result=choice(label), completed_by=worker)


def ls_state(connector: LabelStudioConnector, project_id: int, task_ids: list[int]) -> dict[int, Any]:
    """Per task (by position): its whole ``meta`` and its galton predictions (version, result, score)."""
    pulled = connector.pull(project_id)
    predictions: dict[int, list[tuple[str, str, float]]] = {}
    for p in connector.predictions(project_id):
        if str(p.get("model_version") or "").startswith(GALTON_PREFIX):
            predictions.setdefault(int(p["task"]), []).append(
                (p["model_version"], json.dumps(p["result"], sort_keys=True), round(float(p["score"]), 4)))
    return {i: {"meta": pulled.tasks[t].meta, "predictions": sorted(predictions.get(t, []))}
            for i, t in enumerate(task_ids)}


def settings_for(url: str, token: str, state_url: str = "sqlite://") -> Settings:
    return Settings(label_studio_url=url, label_studio_api_key=token, state_url=state_url, auth_off=True,
                    review=ReviewSettings(method="mace"))


def review_once(settings: Settings, store: StateStore, project_id: int, events: list[str] | None = None,
                **connector_options: Any) -> dict[str, Any]:
    """One review job with a fresh connector (the options set timeouts and retries); its job record."""
    options = {"timeout": 2.0, "max_retries": 1, "backoff": 0.05, "n_threads": 2, "page_size": 3,
               **connector_options}
    connector = LabelStudioConnector(settings.label_studio_url or "", settings.label_studio_api_key or "", **options)
    try:
        reviewer = Reviewer(settings, store, connector_factory=lambda: connector)
        reviewer.run(project_id, events or ["full"])
    finally:
        connector.close()
    return store.jobs(project_id, limit=1)[0]


def wait_for(predicate, timeout: float, step: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what} not reached within {timeout} s")


@pytest.fixture(scope="module")
def ls(label_studio):
    with label_studio.connector(n_threads=4) as connector:
        yield connector


@pytest.fixture(scope="module")
def clean(label_studio, ls):
    """The state a clean run leaves (no proxy, no fault): what every scenario must end in."""
    project_id, task_ids = make_project(ls, "reliability clean run")
    settings = settings_for(label_studio.url, label_studio.token)
    job = review_once(settings, StateStore("sqlite://"), project_id)
    assert job["status"] == "done", job
    state = ls_state(ls, project_id, task_ids)
    annotated = [i for i in state if i < len(LABELS)]
    assert all(len(state[i]["predictions"]) == 1 for i in annotated)
    assert all("galton" in state[i]["meta"] for i in annotated)
    assert all(state[i]["meta"].get("reviewer_note") == FOREIGN["reviewer_note"] for i in range(0, N_TASKS, 2))
    return state
