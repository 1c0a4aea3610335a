"""Fixtures for the backend tests: a fake connector for fast tests, a real backend process for slow ones."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from galton.connectors import (
    GALTON_PREFIX,
    PredictionSpec,
    WorkerInfo,
    WriteSummary,
    parse_label_config,
    parse_tasks,
)

CONFIG = ('<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
          '<Choice value="neg"/><Choice value="pos"/></Choices></View>')
REPO = Path(__file__).resolve().parents[2]


def annotation(worker: int, label: str, annotation_id: int = 0) -> dict[str, Any]:
    return {"id": annotation_id or worker, "completed_by": worker, "updated_at": "2024-01-01T00:00:00Z",
            "result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]}


def task(task_id: int, *labels: str, workers: tuple[int, ...] = (1, 2, 3)) -> dict[str, Any]:
    return {"id": task_id, "data": {"text": f"t{task_id}"}, "meta": {},
            "annotations": [annotation(w, lab, task_id * 100 + w) for w, lab in zip(workers, labels, strict=False)]}


@dataclass
class FakeConnector:
    """Label Studio in memory: tasks as dicts, galton's predictions and meta as written."""

    tasks: dict[int, dict[str, Any]]
    xml: str = CONFIG
    predictions: dict[int, tuple[PredictionSpec, str]] = field(default_factory=dict)
    meta: dict[int, dict[str, Any]] = field(default_factory=dict)
    pulls: list[str | None] = field(default_factory=list)
    fail_writes: int = 0
    uncertain: set[int] = field(default_factory=set)  # tasks whose next create "was sent twice"

    def label_config(self, project_id: int):
        return parse_label_config(self.xml)

    def pull(self, project_id: int, *, since: str | None = None, config=None, **_: Any):
        self.pulls.append(since)
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        # like the real connector, the pull knows the organisation's users (ids 1-9 here)
        return parse_tasks(list(self.tasks.values()), config or self.xml, project_id=project_id, watermark=stamp,
                           workers={w: WorkerInfo(w) for w in range(1, 10)})

    def write_predictions(self, project_id: int, predictions, model_version: str, **_: Any) -> WriteSummary:
        if self.fail_writes:
            self.fail_writes -= 1
            from galton.connectors import PlatformError

            raise PlatformError("write failed (fake)", project_id=project_id, status=503)
        assert model_version.startswith(GALTON_PREFIX)
        summary = WriteSummary()
        for task_id, spec in predictions.items():
            if self.predictions.get(task_id) == (spec, model_version):
                summary.unchanged += 1
            else:
                summary.created += 1
                self.predictions[task_id] = (spec, model_version)
                if task_id in self.uncertain:
                    self.uncertain.discard(task_id)
                    summary.uncertain.append(task_id)
        return summary

    def write_meta(self, project_id: int, values, *, current=None, **_: Any) -> WriteSummary:
        summary = WriteSummary()
        for task_id, value in values.items():
            summary.updated += 1
            self.meta[task_id] = value
        return summary

    def delete_galton_predictions(self, project_id: int, task_ids=None) -> int:
        ids = [t for t in (task_ids or list(self.predictions)) if t in self.predictions]
        for t in ids:
            del self.predictions[t]
        return len(ids)

    def close(self) -> None:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BackendProcess:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_backend(tmp_path: Path, env: dict[str, str], *, timeout: float = 30.0) -> BackendProcess:
    """``galton serve`` as a real process on a free 127.0.0.1 port; waits for /health."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("GALTON_", "LABEL_STUDIO_"))}
    full_env.update(env)
    full_env.update({"GALTON_HOST": "127.0.0.1", "GALTON_PORT": str(port),
                     "GALTON_STATE_URL": f"sqlite:///{tmp_path / 'state.sqlite3'}"})
    log_path = tmp_path / "backend.log"
    handle = log_path.open("w")
    process = subprocess.Popen([sys.executable, "-m", "galton.backend.cli", "serve", "--log-level", "info"],
                               env=full_env, stdout=handle, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"galton serve exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:
                if response.status == 200:
                    return BackendProcess(url, process, log_path)
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"galton serve did not answer /health within {timeout} s")


def stop_backend(backend: BackendProcess) -> None:
    backend.process.terminate()
    try:
        backend.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        backend.process.kill()


@pytest.fixture
def fake_ls():
    return FakeConnector({1: task(1, "pos", "pos", "neg"), 2: task(2, "neg", "neg", "neg"),
                          3: task(3, "pos", "pos", "pos"), 4: task(4)})
