"""``galton sync`` against a real Label Studio: write-back, idempotence, resume after a crash, the lock,
galton.toml, and training dynamics merged into ``meta.galton``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from galton.backend.config import load_config, settings_for
from galton.backend.dynamics import FLAG, DynamicsSettings, run_dynamics
from galton.backend.offline import load_csv
from galton.backend.review import ReviewSettings, review_project
from galton.backend.state import StateStore
from galton.backend.sync import EXIT_LOCKED, ProjectLock, sync_project
from galton.connectors import GALTON_PREFIX, load_sample, read_crowd_dataset, sample_path, seed_crowd_project
from tests.conftest import LABEL_STUDIO_TESTS_2

pytestmark = LABEL_STUDIO_TESTS_2
N_TASKS = 30


def small_sample(tmp_path, n_items=N_TASKS):
    """The first ``n_items`` items of the bundled weather_cf sample (real raters), as a CrowdDataset."""
    lines = (sample_path("weather_cf") / "annotations.csv").read_text().splitlines()
    keep, rows = [], [lines[0]]
    for line in lines[1:]:
        item = line.split(",")[0]
        if item not in keep:
            if len(keep) == n_items:
                continue
            keep.append(item)
        rows.append(line)
    folder = tmp_path / "sample"
    folder.mkdir()
    (folder / "annotations.csv").write_text("\n".join(rows) + "\n")
    return read_crowd_dataset(folder)


def vote_shares(data):
    """Per item the raters' vote shares: a vector field for the dynamics featurizer."""
    m = data.matrix
    counts = np.zeros((m.n_items, m.n_classes))
    np.add.at(counts, (m.items, m.labels), 1)
    return {item: (counts[i] / counts[i].sum()).round(3).tolist() for i, item in enumerate(data.encoding.item_ids)}


@pytest.fixture(scope="module")
def connector(label_studio):
    with label_studio.connector(n_threads=4) as c:
        yield c


def seed(connector, tmp_path, title, *, votes=False):
    data = small_sample(tmp_path)
    shares = vote_shares(data)
    texts = {item: {"text": f"weather tweet {item}", **({"votes": shares[item]} if votes else {})}
             for item in data.encoding.item_ids}
    return seed_crowd_project(connector, data, title=title, texts=texts)


def env_for(label_studio, tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GALTON_", "LABEL_STUDIO_"))}
    env.update({"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token,
                "GALTON_STATE_URL": f"sqlite:///{tmp_path / 'state.sqlite3'}", **extra})
    return env


def galton_cli(env, cwd, *args, timeout=180):
    return subprocess.run([sys.executable, "-m", "galton.backend.cli", "sync", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def galton_predictions(connector, project_id):
    out = {}
    for p in connector.predictions(project_id):
        if str(p.get("model_version") or "").startswith(GALTON_PREFIX):
            out.setdefault(int(p["task"]), []).append(p)
    return out


def assert_matches_clean_review(connector, project_id, settings=None):
    """Label Studio holds exactly one galton prediction per task and the meta a clean review gives."""
    pulled = connector.pull(project_id)
    review = review_project(pulled, settings or ReviewSettings())
    predictions = galton_predictions(connector, project_id)
    assert sorted(predictions) == sorted(review.predictions)
    for task_id, spec in review.predictions.items():
        assert len(predictions[task_id]) == 1, f"task {task_id} holds {len(predictions[task_id])} galton predictions"
        assert predictions[task_id][0]["result"] == list(spec.result)
        meta = pulled.tasks[task_id].meta["galton"]
        assert meta["questions"] == review.meta[task_id]["questions"]
    return pulled, review


def test_sync_writes_back_then_writes_nothing(label_studio, connector, tmp_path):
    seeded = seed(connector, tmp_path, "galton sync: twice")
    env = env_for(label_studio, tmp_path)
    first = galton_cli(env, tmp_path, "--project", str(seeded.project_id), "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    outcome = report["projects"][0]
    assert report["exit_code"] == 0 and outcome["status"] == "synced" and outcome["full_pull"] is True
    assert outcome["n_tasks"] == N_TASKS and outcome["predictions_written"] == N_TASKS
    assert outcome["meta_written"] == N_TASKS
    assert label_studio.token not in first.stdout + first.stderr
    assert_matches_clean_review(connector, seeded.project_id)

    second = galton_cli(env, tmp_path, "--project", str(seeded.project_id))
    assert second.returncode == 0, second.stderr
    assert "nothing changed, nothing written" in second.stdout and "galton sync" in second.stdout
    store = StateStore(env["GALTON_STATE_URL"])
    jobs = [j for j in store.jobs(seeded.project_id) if j["status"] == "done"]
    assert not jobs[0]["detail"]["full_pull"] and jobs[0]["detail"]["n_written"] == 0
    store.close()


class Crash(RuntimeError):
    pass


def test_sync_that_dies_mid_write_is_resumed_without_duplicates(label_studio, connector, tmp_path):
    seeded = seed(connector, tmp_path, "galton sync: crash")
    pid = seeded.project_id
    settings = settings_for(load_config(environ={}), pid, environ=env_for(label_studio, tmp_path))
    store = StateStore(settings.state_url)

    def crash_after_first_meta_chunk(reviewer):
        real = reviewer.connector()
        calls = []
        original = real.write_meta

        def write_meta(*args, **kwargs):
            if calls:
                raise Crash("killed mid-write")
            calls.append(1)
            return original(*args, **kwargs)

        real.write_meta = write_meta

    crashed = sync_project(settings, store, pid, reviewer_hook=crash_after_first_meta_chunk)
    assert crashed.status == "failed" and crashed.unexpected
    written = sum(1 for t in connector.pull(pid).tasks.values() if (t.meta or {}).get("galton"))
    assert 0 < written < N_TASKS  # one chunk of meta landed, the rest did not
    resumed = sync_project(settings, store, pid)
    assert resumed.status == "synced", resumed.error
    assert resumed.meta_written == N_TASKS - written  # exactly what the crash left
    assert resumed.predictions_written == 0  # they all went out before the crash: not duplicated
    assert_matches_clean_review(connector, pid)
    assert sync_project(settings, store, pid).n_written == 0
    store.close()


def test_two_syncs_of_one_project_never_overlap(label_studio, connector, tmp_path):
    seeded = seed(connector, tmp_path, "galton sync: lock")
    pid = seeded.project_id
    env = env_for(label_studio, tmp_path)
    store = StateStore(env["GALTON_STATE_URL"])
    held = ProjectLock(store, pid, lease_s=30)  # another run, in this process
    assert held.acquire()
    try:
        blocked = galton_cli(env, tmp_path, "--project", str(pid))
        assert blocked.returncode == EXIT_LOCKED, blocked.stderr
        assert f"another galton sync of project {pid} is running" in blocked.stdout
        assert galton_predictions(connector, pid) == {}  # it wrote nothing
        timer = threading.Timer(1.0, held.release)
        timer.start()
        started = time.monotonic()
        settings = settings_for(load_config(environ={}), pid, environ=env)
        waited = sync_project(settings, store, pid, wait_s=60)
        timer.join()
        assert waited.status == "synced" and time.monotonic() - started >= 1.0
        assert waited.predictions_written == N_TASKS
    finally:
        held.release()
    # two real processes at once: one syncs, the other is locked out or finds nothing left to write
    runs = [subprocess.Popen([sys.executable, "-m", "galton.backend.cli", "sync", "--project", str(pid), "--json"],
                             env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    codes = [r.wait(timeout=120) for r in runs]
    assert set(codes) <= {0, EXIT_LOCKED}
    assert_matches_clean_review(connector, pid)
    store.close()


def test_lock_lease_expiry_and_dead_holder(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'locks.sqlite3'}")
    first = ProjectLock(store, 1, lease_s=0.2)
    assert first.acquire()
    first._stop.set()  # its heartbeat stops: the process hangs or died
    second = ProjectLock(store, 1, lease_s=30)
    assert not second.acquire() and second.holder["pid"] == os.getpid()
    time.sleep(0.3)
    assert second.acquire()  # the lease ran out
    second.release()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ghost = ProjectLock(store, 2, lease_s=600)
    ghost.pid = int(dead.stdout)  # a holder on this host that no longer runs
    assert ghost._try()
    assert ProjectLock(store, 2).acquire()
    store.close()


def test_dynamics_offline_text_features_are_cached(tmp_path):
    """run_dynamics on the bundled sample with the default text featurizer (small epochs)."""
    pulled = load_csv(sample_path("weather_cf") / "annotations.csv", None)
    review = review_project(pulled, ReviewSettings(method="majority_vote"))
    data = load_sample("weather_cf")
    names = {0: "gloomy rain", 1: "ok", 2: "sunny lovely", 3: "traffic", 4: "hmm"}
    gold = data.gold
    texts = {t: {"text": f"tweet {r.item} {names[int(gold[r.item])]}"} for t, r in pulled.tasks.items()}
    settings = DynamicsSettings(enabled=True, epochs=3, text_components=16, cache_dir=str(tmp_path / "cache"))
    result = run_dynamics(pulled, review, settings, task_data=texts)
    assert len(result.meta) == len(review.predictions) == 300
    entry = next(iter(result.meta.values()))
    assert set(entry) == {"score", "percentile", "flag", "region", "label"}
    assert 0 < len(result.flagged) <= 15  # flag_share 0.05 of 300
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    again = run_dynamics(pulled, review, settings, task_data=texts)
    assert again.meta == result.meta and len(list((tmp_path / "cache").rglob("*.npy"))) == 1


def test_sync_with_dynamics_from_galton_toml(label_studio, connector, tmp_path):
    seeded = seed(connector, tmp_path, "galton sync: dynamics", votes=True)
    pid = seeded.project_id
    (tmp_path / "galton.toml").write_text(
        f'[state]\nurl = "sqlite:///{tmp_path / "dyn.sqlite3"}"\n\n[[projects]]\nid = {pid}\n'
        '[projects.dynamics]\nenabled = true\nvector_field = "votes"\nepochs = 3\nflag_share = 0.2\nmin_tasks = 10\n')
    env = env_for(label_studio, tmp_path)
    env.pop("GALTON_STATE_URL")
    run = galton_cli(env, tmp_path, "--json")  # projects from galton.toml
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout)["projects"][0]
    assert outcome["project_id"] == pid and outcome["dynamics"]["status"] == "trained"
    pulled = connector.pull(pid)
    metas = {t: task.meta["galton"] for t, task in pulled.tasks.items()}
    assert all(set(m["dynamics"]) == {"score", "percentile", "flag", "region", "label"} for m in metas.values())
    flagged = [t for t, m in metas.items() if m["dynamics"]["flag"]]
    assert all(FLAG in metas[t]["flags"] for t in flagged)
    assert all(FLAG not in m["flags"] for t, m in metas.items() if t not in flagged)
    assert outcome["dynamics"]["n_flagged"] == len(flagged)
    config = load_config(tmp_path / "galton.toml", environ={})
    settings = settings_for(config, pid, environ=env)
    store = StateStore(settings.state_url)
    again = sync_project(settings, store, pid)
    assert again.dynamics["status"] == "unchanged" and again.n_written == 0
    from galton.backend.dynamics import DynamicsStore

    stored = DynamicsStore(store).load(pid)
    assert stored is not None and stored.report is not None and sorted(stored.meta) == sorted(metas)
    store.close()
