"""Label Studio misbehaves between galton and its data: 5xx, slow answers, dropped connections,
refused connections, a server that stops mid-job. galton's connector and review job talk to
a real Label Studio through :class:`~tests.reliability.faultproxy.FaultProxy`.

Each scenario makes its own copy of the reliability project, runs the review job through
the proxy with the fault armed (the job either survives it by retrying, or fails cleanly),
disarms it, runs again if needed, and then requires the state in Label Studio to equal a
clean run's exactly: every task's whole ``meta`` (galton's block and the users' keys) and
exactly one galton prediction per annotated task with the same result and score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from galton.backend.state import StateStore
from tests.conftest import LABEL_STUDIO_TESTS_2

from .conftest import add_third, ls_state, make_project, record, review_once, settings_for
from .faultproxy import Fault, FaultProxy

pytestmark = LABEL_STUDIO_TESTS_2

TASK_PATCH = r"^/api/tasks/\d+"
EXPORT = r"/export\?"
BULK_IMPORT = r"/import/predictions"
CREATE = r"^/api/predictions/?$"
BULK = {"bulk_min": 0}  # a project this small writes its predictions one by one unless told otherwise
PAGE_2 = r"^/api/tasks/\?.*page=2"


@dataclass
class Scenario:
    name: str
    faults: list[Fault]
    survives_in_run: bool  # the job itself absorbs the fault (retries); else it fails and the next run recovers
    connector: dict = field(default_factory=dict)
    incremental: bool = False  # the fault hits the second job, an incremental (paged) pull
    upstream_stop: bool = False


# the default run keeps four (a 5xx, a dropped bulk-write answer, a dropped page, a stopped
# server); ``-m slow`` runs the rest too
SLOW = {"500 on the bulk prediction import", "answer past the client timeout", "server down", "502 on meta PATCHes",
        "connection dropped half-way through the export"}
SCENARIOS = [
    Scenario("503 on the full export (twice), job fails, next run recovers",
             [Fault("status", EXPORT, code=503, count=2)], survives_in_run=False),
    Scenario("500 on the bulk prediction import, retried within the job",
             [Fault("status", BULK_IMPORT, methods=("POST",), code=500, count=1)], survives_in_run=True,
             connector=BULK),
    Scenario("502 on meta PATCHes half-way through the write-back, next run recovers",
             [Fault("status", TASK_PATCH, methods=("PATCH",), code=502, after=3, count=2)], survives_in_run=False),
    Scenario("answer past the client timeout on the bulk import (applied by Label Studio)",
             [Fault("delay", BULK_IMPORT, methods=("POST",), seconds=3.0, count=1)], survives_in_run=True,
             connector=BULK),
    Scenario("connection dropped half-way through the bulk import's answer (applied by Label Studio)",
             [Fault("truncate", BULK_IMPORT, methods=("POST",), count=1)], survives_in_run=True, connector=BULK),
    Scenario("connection dropped half-way through a single prediction create's answer (applied)",
             [Fault("truncate", CREATE, methods=("POST",), count=2)], survives_in_run=True),
    Scenario("connection dropped half-way through the export body, twice",
             [Fault("truncate", EXPORT, count=2)], survives_in_run=False),
    Scenario("connection dropped half-way through page 2 of an incremental pull",
             [Fault("truncate", PAGE_2, methods=("GET",), count=2)], survives_in_run=False, incremental=True),
    Scenario("Label Studio stops after 3 meta writes (every request 502), restarts, next run recovers",
             [Fault("stop", TASK_PATCH, methods=("PATCH",), after=3)], survives_in_run=False, upstream_stop=True),
    Scenario("server down (connections refused) for 1 s during the meta writes, retried within the job",
             [Fault("down", TASK_PATCH, methods=("PATCH",), after=2, seconds=1.0)], survives_in_run=True,
             connector={"max_retries": 4, "backoff": 0.4}),
]


@pytest.mark.parametrize("scenario", [
    pytest.param(s, marks=[pytest.mark.slow] if any(s.name.startswith(k) for k in SLOW) else [],
                 id=s.name.split(",")[0]) for s in SCENARIOS])
def test_fault_then_recovery_equals_a_clean_run(scenario, label_studio, ls, clean, tmp_path):
    project_id, task_ids = make_project(ls, f"reliability: {scenario.name}"[:50], third_later=scenario.incremental)
    with FaultProxy(label_studio.url) as proxy:
        settings = settings_for(proxy.url, label_studio.token, f"sqlite:///{tmp_path / 'state.sqlite3'}")
        store = StateStore(settings.state_url)
        events = ["full"]
        if scenario.incremental:  # a first clean job, then new annotations, then the faulty incremental pull
            assert review_once(settings, store, project_id)["status"] == "done"
            add_third(ls, task_ids)
            events = ["ANNOTATION_CREATED"]
        for fault in scenario.faults:
            proxy.add(fault)
        first = review_once(settings, store, project_id, events, **scenario.connector)
        fired = sum(f.fired for f in scenario.faults)
        assert fired >= 1, f"the fault never fired: {proxy.state.log[-5:]}"
        if scenario.survives_in_run:
            assert first["status"] == "done", first
        else:
            assert first["status"] == "failed" and first["error"], first
            assert label_studio.token not in first["error"]
        proxy.clear()
        proxy.upstream_up()
        jobs = [first]
        if first["status"] != "done":
            jobs.append(review_once(settings, store, project_id, ["retry"]))
            assert jobs[-1]["status"] == "done", jobs[-1]
        # a run after recovery writes nothing: Label Studio already holds the clean state
        again = review_once(settings, store, project_id, ["full"])
        assert again["status"] == "done"
        assert again["detail"]["n_written"] == 0, again["detail"]
        store.close()
    state = ls_state(ls, project_id, task_ids)
    duplicates = sum(max(0, len(s["predictions"]) - 1) for s in state.values())
    lost_meta = sum(1 for i, s in state.items() if s["meta"] != clean[i]["meta"])
    record({"kind": "fault", "scenario": scenario.name, "injected": fired, "jobs": len(jobs),
            "survived": state == clean, "duplicates": duplicates, "meta_differs": lost_meta})
    assert duplicates == 0, {i: s["predictions"] for i, s in state.items() if len(s["predictions"]) > 1}
    assert lost_meta == 0
    assert state == clean
