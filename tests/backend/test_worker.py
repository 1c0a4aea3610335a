"""Review jobs in a child process (galton.backend.worker): views, restarts, no orphans."""

from __future__ import annotations

import gc
import os
import re
import signal
import time
import weakref

from hypothesis import given, settings
from hypothesis import strategies as st

from galton.backend.app import create_app
from galton.backend.review import ReviewSettings
from galton.backend.settings import Settings
from galton.backend.worker import PredictView, freeze_heap

from .conftest import CONFIG, start_backend, stop_backend, task
from .test_app import labels_of, predict_body

entries = st.dictionaries(st.integers(1, 30), st.integers(0, 3), max_size=30)


def test_a_frozen_heap_is_out_of_the_collectors_walks_and_still_freed():
    class Held:
        pass

    held = Held()
    cycle = Held()
    cycle.me = cycle  # a cycle alive at the freeze
    gc.unfreeze()
    try:
        freeze_heap()
        assert gc.get_freeze_count() > 0 and gc.get_count()[2] == 0
        frozen = gc.get_freeze_count()
        gone = weakref.ref(held)
        del held  # frozen, yet freed by reference counting when dropped
        assert gone() is None
        later = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert later() is not None  # frozen with the rest: the collector no longer walks it
        made = Held()  # a cycle made after the freeze is collected as before
        made.me = made
        after = weakref.ref(made)
        del made
        gc.collect()
        assert after() is None and gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


@settings(max_examples=200, deadline=None)
@given(entries, entries, entries, entries, st.booleans())
def test_a_view_plus_its_changes_is_the_new_view(old_keys, old_predictions, new_keys, new_predictions, refit):
    old = PredictView(CONFIG, "galton-x", dict(old_keys), dict(old_predictions), {"q": {1: 0.5}},
                      {t: ((t, str(k)),) for t, k in old_keys.items()})
    new = PredictView(CONFIG, "galton-y" if refit else "galton-x", dict(new_keys), dict(new_predictions),
                      {"q": {1: 0.9}}, {t: ((t, str(k)),) for t, k in new_keys.items()})
    changes = old.changes_to(new)
    if refit:  # another model version: the view goes in full
        assert changes is None
        return
    assert changes is not None
    assert len(changes["keys"]) == sum(1 for t, k in new_keys.items() if old_keys.get(t) != k)
    old.apply(changes)
    assert (old.keys, old.predictions, old.weights, old.marks) == (new.keys, new.predictions, new.weights,
                                                                   new.marks)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _wait(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_dead_job_process_is_started_again(tmp_path):
    settings_ = Settings(review=ReviewSettings(method="majority_vote"), auth_off=True, job_process=True,
                         state_url=f"sqlite:///{tmp_path / 'state.sqlite3'}")
    app = create_app(settings_)
    remote = app.extensions["galton"].remote
    try:
        assert remote is not None and _wait(lambda: remote.pid is not None and _alive(remote.pid))
        first = remote.pid
        client = app.test_client()
        body = client.post("/predict", json=predict_body([task(1, "pos", "pos", "neg")])).get_json()
        assert labels_of(body["results"][0]) == [["pos"]]  # no state: computed, after asking the child
        os.kill(first, signal.SIGKILL)
        assert _wait(lambda: remote.n_restarts == 1 and remote.pid != first and _alive(remote.pid))
        body = client.post("/predict", json=predict_body([task(2, "neg", "neg", "pos")])).get_json()
        assert labels_of(body["results"][0]) == [["neg"]]
        assert 'galton_requests_total{route="predict",status="200"} 2' in client.get("/metrics").get_data(
            as_text=True)
    finally:
        remote.stop()
    assert not _alive(remote.pid)


def test_the_job_process_ends_with_galton_serve_even_on_sigkill(tmp_path):
    backend = start_backend(tmp_path, {"GALTON_AUTH": "off"})
    try:
        assert _wait(lambda: "review jobs run in process" in backend.log(), 30)
        child = int(re.search(r"review jobs run in process (\d+)", backend.log()).group(1))
        assert _alive(child)
        backend.process.kill()  # SIGKILL: no handler of the parent runs
        backend.process.wait(timeout=10)
        assert _wait(lambda: not _alive(child), 10), "the job process outlived galton serve"
    finally:
        stop_backend(backend)
