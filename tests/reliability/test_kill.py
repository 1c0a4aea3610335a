"""galton's backend killed with SIGKILL in the middle of a job, then started again.

A real ``galton serve`` process reviews the reliability project through the fault proxy,
which slows every task PATCH so the job is still writing ``meta`` when the process is
killed. The SQLite state must pass ``PRAGMA integrity_check``, the job must be recorded as
``running`` (the process could not say otherwise), and the restarted backend must mark it
``interrupted``, redo the project by itself, and leave Label Studio exactly as a clean run.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import urllib.request

import pytest

from tests.backend.conftest import start_backend, stop_backend
from tests.conftest import LABEL_STUDIO_TESTS_2

from .conftest import ls_state, make_project, record, wait_for
from .faultproxy import Fault, FaultProxy

pytestmark = [*LABEL_STUDIO_TESTS_2, pytest.mark.slow]  # two backend starts and a slowed job: about a minute
TASK_PATCH = r"^/api/tasks/\d+"


def integrity(path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def jobs_of(url: str, project_id: int) -> list[dict]:
    with urllib.request.urlopen(f"{url}/jobs?project={project_id}", timeout=5) as response:
        return json.loads(response.read())["jobs"]


def test_sigkill_mid_job_then_restart_redoes_the_job(label_studio, ls, clean, tmp_path):
    project_id, task_ids = make_project(ls, "reliability: SIGKILL mid-job")
    secret = secrets.token_urlsafe(16)
    state_path = tmp_path / "state.sqlite3"
    with FaultProxy(label_studio.url) as proxy:
        env = {"LABEL_STUDIO_URL": proxy.url, "LABEL_STUDIO_API_KEY": label_studio.token,
               "GALTON_WEBHOOK_SECRET": secret, "GALTON_METHOD": "mace"}
        proxy.add(Fault("delay", TASK_PATCH, methods=("PATCH",), seconds=0.7, count=10_000))
        backend = start_backend(tmp_path, env)
        try:
            request = urllib.request.Request(
                f"{backend.url}/webhook", data=json.dumps({"action": "GALTON_RESCORE", "project": {"id": project_id}})
                .encode(), headers={"Content-Type": "application/json", "X-Galton-Secret": secret}, method="POST")
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 202
            wait_for(lambda: proxy.count("PATCH", TASK_PATCH) >= 3, 60, what="three meta writes")
            backend.process.kill()  # SIGKILL: no handler runs, no finally, no commit
            backend.process.wait(timeout=10)
        finally:
            if backend.process.poll() is None:
                stop_backend(backend)
        n_before = proxy.count("PATCH", TASK_PATCH)
        assert n_before < len(task_ids) - 1, "the job finished before the kill; slow the PATCHes more"
        assert integrity(state_path) == "ok"
        with sqlite3.connect(state_path) as conn:
            status = dict(conn.execute("SELECT id, status FROM jobs WHERE kind = 'review'").fetchall())
        assert list(status.values()) == ["running"], status
        killed_log = backend.log()
        shutil.copy(backend.log_path, tmp_path / "killed.log")

        proxy.clear()
        backend = start_backend(tmp_path, env)
        try:
            def finished():
                jobs = jobs_of(backend.url, project_id)
                reviews = [j for j in jobs if j["kind"] == "review"]
                return reviews if len(reviews) >= 2 and all(j["status"] in ("done", "interrupted") for j in reviews) \
                    and reviews[0]["status"] == "done" else None

            reviews = wait_for(finished, 60, what="the redone job")
        finally:
            stop_backend(backend)
        by_id = {j["id"]: j for j in reviews}
        killed = by_id[next(iter(status))]
        assert killed["status"] == "interrupted" and killed["finished_at"]
        assert any(j["status"] == "done" and j["reason"].startswith(("full", "resume")) for j in reviews)
        assert integrity(state_path) == "ok"
        for text in (killed_log, backend.log()):
            assert label_studio.token not in text and secret not in text
    state = ls_state(ls, project_id, task_ids)
    duplicates = sum(max(0, len(s["predictions"]) - 1) for s in state.values())
    record({"kind": "fault", "scenario": "backend killed (SIGKILL) during the meta writes, restarted",
            "injected": 1, "jobs": len(reviews), "survived": state == clean, "duplicates": duplicates,
            "meta_differs": sum(1 for i, s in state.items() if s["meta"] != clean[i]["meta"])})
    assert duplicates == 0
    assert state == clean
