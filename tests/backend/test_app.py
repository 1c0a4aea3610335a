"""The ML-backend protocol, auth, errors, the job queue and the state, with Flask's test client.

Label Studio is replaced by :class:`FakeConnector` here; ``test_ml_backend.py`` runs the
same paths against a real Label Studio server.
"""

from __future__ import annotations

import base64
import itertools
import logging
import threading

import pytest
import sqlalchemy as sa

from galton.backend.app import create_app
from galton.backend.jobs import JobQueue, project_id_of
from galton.backend.review import ReviewSettings
from galton.backend.settings import SECRET_HEADER, Settings, SettingsError
from galton.backend.state import SCHEMA_VERSION, StateError, StateStore

from .conftest import CONFIG, annotation, task

LS = {"label_studio_url": "http://ls.invalid", "label_studio_api_key": "k" * 20}


def make_app(fake, **changes):
    settings = Settings(review=ReviewSettings(method="majority_vote"),
                        **{"state_url": "sqlite://", "auth_off": True, **LS, **changes})
    return create_app(settings, connector_factory=lambda: fake, start_workers=False)


def run_jobs(app):
    queue = app.extensions["galton"].queue
    n = 0
    while queue.run_next():
        n += 1
    return n


def predict_body(tasks, project="7.1700000000"):
    return {"tasks": tasks, "project": project, "label_config": CONFIG, "params": {"login": None, "password": None}}


def labels_of(result):
    return [r["value"]["choices"] for r in result["result"]]


# ---------------------------------------------------------------------- settings
def test_settings_refuse_to_start_without_auth_unless_explicitly_off():
    with pytest.raises(SettingsError, match="GALTON_AUTH=off"):
        Settings.from_env({})
    assert Settings.from_env({"GALTON_AUTH": "off"}).auth_off
    with pytest.raises(SettingsError, match="both GALTON_BASIC_AUTH_USER"):
        Settings.from_env({"GALTON_BASIC_AUTH_USER": "u"})
    with pytest.raises(SettingsError, match="contradicts"):
        Settings.from_env({"GALTON_AUTH": "off", "GALTON_WEBHOOK_SECRET": "s"})
    with pytest.raises(SettingsError, match="GALTON_METHOD"):
        Settings.from_env({"GALTON_AUTH": "off", "GALTON_METHOD": "nope"})
    with pytest.raises(SettingsError, match="GALTON_WORKER_THREADS"):
        Settings.from_env({"GALTON_AUTH": "off", "GALTON_WORKER_THREADS": "x"})
    s = Settings.from_env({"GALTON_WEBHOOK_SECRET": "s3cret", "GALTON_WORKER_THREADS": "3",
                           "LABEL_STUDIO_URL": "http://ls:8080", "LABEL_STUDIO_API_KEY": "abcdef"})
    assert s.worker_threads == 3 and s.can_write_back
    assert "s3cret" not in repr(s) and "abcdef" not in repr(s)


# ---------------------------------------------------------------------- protocol shapes
def test_health_setup_versions(fake_ls):
    app = make_app(fake_ls)
    client = app.test_client()
    for path in ("/", "/health"):
        body = client.get(path).get_json()
        assert body["status"] == "UP" and body["model_class"] == "galton"
    setup = client.post("/setup", json={"project": "7.1700000000", "schema": CONFIG, "hostname": "http://x",
                                        "access_token": "t", "extra_params": None})
    assert setup.status_code == 200
    version = setup.get_json()["model_version"]
    assert version.startswith("galton-majority-vote-")
    assert client.post("/setup", json={"project": "7.1", "schema": CONFIG}).get_json()["model_version"] == version
    assert run_jobs(app) == 1  # the first /setup of a project reviews it once
    assert client.get("/versions").get_json() == {"versions": [version]}
    assert client.get("/versions?project=8").get_json() == {"versions": []}


def test_predict_answers_one_entry_per_task_in_order(fake_ls):
    app = make_app(fake_ls)
    client = app.test_client()
    tasks = [task(3, "pos", "pos", "pos"), task(4), task(2, "neg", "neg", "pos"), {"id": "bad"}, 17,
             {"id": 9, "annotations": "nope"}, task(1, "pos", "pos", "neg")]
    response = client.post("/predict", json=predict_body(tasks))
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert len(results) == len(tasks)
    assert labels_of(results[0]) == [["pos"]]
    assert results[1] == [] and results[3] == [] and results[4] == [] and results[5] == []
    assert labels_of(results[2]) == [["neg"]]
    assert labels_of(results[6]) == [["pos"]]
    for r in (results[0], results[2], results[6]):
        assert r["model_version"].startswith("galton-") and 0.0 <= r["score"] <= 1.0
        assert r["result"][0]["from_name"] == "label" and r["result"][0]["to_name"] == "text"
    assert results[0]["score"] == pytest.approx(1.0)
    assert results[2]["score"] == pytest.approx(2 / 3, abs=1e-3)


def test_predict_uses_fresh_state_and_recomputes_changed_tasks(fake_ls):
    app = make_app(fake_ls)
    client = app.test_client()
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}, "annotation": {"id": 1}})
    run_jobs(app)
    reviewer = app.extensions["galton"]
    body = client.post("/predict", json=predict_body([task(1, "pos", "pos", "neg")])).get_json()
    assert labels_of(body["results"][0]) == [["pos"]]
    assert reviewer.counters["predict_fresh"] == 1 and reviewer.counters["predict_computed"] == 0
    # unchanged tasks are answered from the state without being parsed (their annotations'
    # ids and updated_at equal the stored ones)
    parse, reviewer._parse = reviewer._parse, None
    body = client.post("/predict", json=predict_body([task(1, "pos", "pos", "neg")])).get_json()
    assert labels_of(body["results"][0]) == [["pos"]] and reviewer.counters["predict_fresh"] == 2
    reviewer._parse = parse
    changed = task(1, "neg", "neg", "neg")  # the annotators changed their minds since the job ran
    for a in changed["annotations"]:
        a["updated_at"] = "2024-01-02T00:00:00Z"  # as Label Studio moves it on every save
    body = client.post("/predict", json=predict_body([changed])).get_json()
    assert labels_of(body["results"][0]) == [["neg"]]
    assert reviewer.counters["predict_computed"] == 1
    # a different labeling config: the stored state is not used
    other = CONFIG.replace('<Choice value="pos"/>', '<Choice value="pos"/><Choice value="mixed"/>')
    body = client.post("/predict", json={**predict_body([task(1, "pos", "pos", "neg")]), "label_config": other})
    assert labels_of(body.get_json()["results"][0]) == [["pos"]]
    assert body.get_json()["results"][0]["model_version"] != reviewer.live(7).review.model_version


@pytest.mark.parametrize(("path", "payload", "detail"), [
    ("/predict", None, "JSON object"),
    ("/predict", [1, 2], "JSON object"),
    ("/predict", {"tasks": {}, "label_config": CONFIG}, "'tasks'"),
    ("/predict", {"tasks": []}, "label_config"),
    ("/predict", {"tasks": [], "label_config": "<View><oops"}, "cannot be read"),
    ("/setup", {"project": "1.2"}, "schema"),
    ("/webhook", {"project": {"id": 1}}, "'action'"),
    ("/webhook", {"action": "ANNOTATION_CREATED"}, "no project"),
])
def test_malformed_requests_get_400_with_a_clear_body(fake_ls, path, payload, detail):
    client = make_app(fake_ls).test_client()
    if payload is None:
        response = client.post(path, data="not json{", content_type="application/json")
    else:
        response = client.post(path, json=payload)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "bad_request" and detail in body["detail"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_unknown_routes_and_methods_keep_the_error_shape(fake_ls):
    client = make_app(fake_ls).test_client()
    assert client.get("/nope").get_json()["error"] == "not_found"
    assert client.get("/predict").status_code == 405


# ---------------------------------------------------------------------- auth
def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_and_webhook_secret(fake_ls, caplog):
    app = make_app(fake_ls, auth_off=False, basic_auth_user="ls", basic_auth_password="pw-123",
                   webhook_secret="hook-secret-xyz")
    client = app.test_client()
    body = predict_body([task(3, "pos", "pos", "pos")])
    assert client.get("/health").status_code == 200  # public, for container health checks
    with caplog.at_level(logging.WARNING, logger="galton.backend.app"):
        for headers in ({}, basic("ls", "wrong"), basic("other", "pw-123"), {"Authorization": "Basic !!!"},
                        {"Authorization": "Token pw-123"}):
            response = client.post("/predict", json=body, headers=headers)
            assert response.status_code == 401, headers
            assert response.get_json()["error"] == "unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Basic")
        wrong_hook = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}},
                                 headers={SECRET_HEADER: "hook-secret-abc"})
        assert wrong_hook.status_code == 401
    assert "pw-123" not in caplog.text and "hook-secret" not in caplog.text and "wrong" in caplog.text
    assert client.post("/predict", json=body, headers=basic("ls", "pw-123")).status_code == 200
    assert client.post("/setup", json={"schema": CONFIG}, headers=basic("ls", "pw-123")).status_code == 200
    assert client.get("/metrics").status_code == 401
    hook = {"action": "ANNOTATION_CREATED", "project": {"id": 7}}
    assert client.post("/webhook", json=hook, headers={SECRET_HEADER: "hook-secret-xyz"}).status_code == 202
    assert client.post("/webhook", json=hook, headers=basic("ls", "pw-123")).status_code == 202


def test_secret_only_guards_the_webhook(fake_ls):
    client = make_app(fake_ls, auth_off=False, webhook_secret="only-hook").test_client()
    assert client.post("/predict", json=predict_body([task(3, "pos")])).status_code == 200
    assert client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}}).status_code == 401


# ---------------------------------------------------------------------- webhook and jobs
def test_webhook_storm_coalesces_into_one_job_and_writes_back(fake_ls):
    app = make_app(fake_ls)
    client = app.test_client()
    statuses = [client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7},
                                              "annotation": {"id": i}}).get_json()["status"] for i in range(50)]
    assert statuses[0] == "queued" and set(statuses[1:]) == {"coalesced"}
    assert client.post("/webhook", json={"action": "PROJECT_CREATED", "project": {"id": 7}}).get_json()["status"] \
        == "ignored"
    assert run_jobs(app) == 1
    assert {t: labels_of({"result": list(spec.result)}) for t, (spec, _) in fake_ls.predictions.items()} == {
        1: [["pos"]], 2: [["neg"]], 3: [["pos"]]}
    assert fake_ls.meta[1]["questions"]["label"]["label"] == "pos"
    assert fake_ls.meta[1]["questions"]["label"]["n_annotations"] == 3
    assert "low_agreement" in fake_ls.meta[1]["flags"] or fake_ls.meta[1]["questions"]["label"]["agreement"] < 1
    jobs = client.get("/jobs?project=7").get_json()["jobs"]
    assert jobs[0]["status"] == "done" and "ANNOTATION_CREATED x50" in jobs[0]["reason"]
    assert jobs[0]["detail"]["full_pull"] is True

    # nothing changed: the next job writes nothing; a changed task is written alone, incrementally
    fake_ls.meta.clear()
    client.post("/webhook", json={"action": "ANNOTATION_UPDATED", "project": {"id": 7}})
    run_jobs(app)
    assert fake_ls.meta == {}
    assert fake_ls.pulls[-1] is not None  # incremental, from the watermark less the margin
    fake_ls.tasks[2]["annotations"] = [annotation(1, "pos", 201), annotation(2, "pos", 202),
                                       annotation(3, "neg", 203)]
    client.post("/webhook", json={"action": "ANNOTATION_UPDATED", "project": {"id": 7}})
    run_jobs(app)
    assert set(fake_ls.meta) == {2}
    assert labels_of({"result": list(fake_ls.predictions[2][0].result)}) == [["pos"]]
    assert client.get("/jobs?project=7").get_json()["jobs"][0]["detail"]["full_pull"] is False

    # an annotation deleted: the task loses its galton prediction and its meta is emptied
    fake_ls.tasks[3]["annotations"] = []
    client.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "project": {"id": 7}})
    run_jobs(app)
    assert 3 not in fake_ls.predictions and fake_ls.meta[3]["questions"] == {}
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'galton_job_events_total{outcome="coalesced"} 49' in metrics
    assert 'galton_requests_total{route="webhook",status="202"}' in metrics
    # the latency histogram: cumulative buckets up to +Inf, which counts every webhook answered
    buckets = [(line.split('le="')[1].split('"')[0], int(line.rsplit(" ", 1)[1])) for line in metrics.splitlines()
               if line.startswith('galton_request_duration_seconds_bucket{route="webhook"')]
    n_webhooks = sum(int(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith('galton_requests_total{route="webhook"'))
    assert [le for le, _ in buckets][-1] == "+Inf" and len(buckets) == 12
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(buckets)) and buckets[-1][1] == n_webhooks
    assert f'galton_request_duration_seconds_count{{route="webhook"}} {n_webhooks}' in metrics
    cpu = float(next(line.rsplit(" ", 1)[1] for line in metrics.splitlines()
                     if line.startswith('galton_request_cpu_seconds_total{route="webhook"}')))
    wall = float(next(line.rsplit(" ", 1)[1] for line in metrics.splitlines()
                      if line.startswith('galton_request_seconds_total{route="webhook"}')))
    assert 0 < cpu <= wall + 1e-3  # a thread's CPU time cannot exceed its wall time


def test_failed_write_back_does_not_commit_state(fake_ls):
    fake_ls.fail_writes = 1
    app = make_app(fake_ls, job_retries=0)
    client = app.test_client()
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}})
    run_jobs(app)
    store = app.extensions["galton"].store
    assert store.jobs(7)[0]["status"] == "failed" and "write failed" in store.jobs(7)[0]["error"]
    assert store.load(7) is None and fake_ls.predictions == {}
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}})
    run_jobs(app)
    assert store.jobs(7)[0]["status"] == "done" and len(fake_ls.predictions) == 3


def test_a_create_sent_twice_leaves_its_task_unrecorded_for_the_next_job(fake_ls):
    app = make_app(fake_ls)
    reviewer = app.extensions["galton"]
    fake_ls.uncertain = {1}
    reviewer.run(7, ["ANNOTATION_CREATED"])
    job = app.extensions["galton"].store.jobs(7)[0]
    assert job["detail"]["uncertain"] == 1 and set(fake_ls.predictions) == {1, 2, 3}
    assert 1 not in reviewer.live(7).written and {2, 3} <= set(reviewer.live(7).written)
    assert 1 not in app.extensions["galton"].store.load(7).written
    reviewer.run(7, ["verify"])  # the follow-up rewrites task 1 (the real connector drops a surplus then)
    again = app.extensions["galton"].store.jobs(7)[0]["detail"]
    assert again["n_written"] == 1 and "uncertain" not in again and 1 in reviewer.live(7).written


def test_start_training_is_recorded_as_unavailable_and_rescores(fake_ls):
    app = make_app(fake_ls)
    client = app.test_client()
    response = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 7, "title": "x"}})
    assert response.status_code == 201 and response.get_json()["training"] == "unavailable"
    run_jobs(app)
    jobs = {j["kind"]: j for j in app.extensions["galton"].store.jobs(7)}
    assert jobs["train"]["status"].startswith("unavailable: training dynamics")  # dynamics off by default
    assert jobs["review"]["status"] == "done" and jobs["review"]["detail"]["full_pull"] is True


def test_start_training_queues_a_training_job_when_dynamics_is_on(fake_ls):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from galton.backend.dynamics import DynamicsSettings

    app = make_app(fake_ls, dynamics=DynamicsSettings(enabled=True))
    client = app.test_client()
    response = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 7}})
    assert response.status_code == 201 and response.get_json()["training"] == "queued"
    assert app.extensions["galton"].queue.has_pending(7)
    train = [j for j in app.extensions["galton"].store.jobs(7) if j["kind"] == "train"]
    assert len(train) == 1 and train[0]["status"].startswith("queued")
    legacy = client.post("/train", json={"project": 7})
    assert legacy.get_json()["status"] == "queued"


def test_queue_keeps_one_running_and_at_most_one_pending_job_per_project():
    started, release = threading.Event(), threading.Event()
    runs: list[tuple[int, list[str]]] = []

    def run(project_id, events):
        runs.append((project_id, list(events)))
        if len(runs) == 1:
            started.set()
            release.wait(5)

    queue = JobQueue(run, n_threads=2)
    try:
        assert queue.submit(1, "a") == "queued"
        assert started.wait(5)
        # project 1 runs: new events make one pending job that waits for it
        assert [queue.submit(1, e) for e in "bcd"] == ["queued", "coalesced", "coalesced"]
        assert queue.submit(2, "x") == "queued"  # another project does not wait
        deadline = threading.Event()
        for _ in range(50):
            if (2, ["x"]) in runs:
                break
            deadline.wait(0.05)
        assert (2, ["x"]) in runs and len([r for r in runs if r[0] == 1]) == 1
        release.set()
        assert queue.wait_idle(5)
        assert runs[0] == (1, ["a"]) and (1, ["b", "c", "d"]) in runs and len(runs) == 3
    finally:
        release.set()
        queue.stop()


def test_project_reference_forms():
    assert project_id_of("12.1718000000") == 12
    assert project_id_of({"id": 3}) == 3 and project_id_of(5) == 5
    assert project_id_of("x") is None and project_id_of(True) is None and project_id_of(None) is None


# ---------------------------------------------------------------------- state
def test_state_schema_wal_and_version_check(tmp_path):
    url = f"sqlite:///{tmp_path / 'sub' / 'state.sqlite3'}"
    store = StateStore(url)
    assert store.schema_version() == SCHEMA_VERSION
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        tables = set(sa.inspect(conn).get_table_names())
    assert tables >= {"schema_version", "projects", "task_results", "jobs", "worker_history"}
    job = store.add_job(3, "review", "queued", "test")
    store.update_job(job, status="done", detail={"n": 1}, finished=True)
    assert store.jobs(3)[0]["detail"] == {"n": 1}
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE schema_version SET version = 99")
    store.close()
    with pytest.raises(StateError, match="schema version 99"):
        StateStore(url)


def test_state_survives_a_restart(fake_ls, tmp_path):
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    app = make_app(fake_ls, state_url=url)
    app.test_client().post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}})
    run_jobs(app)
    again = make_app(fake_ls, state_url=url)
    live = again.extensions["galton"].live(7)
    assert live is not None and set(live.review.predictions) == {1, 2, 3}
    assert set(live.written) == {1, 2, 3}
    history = again.extensions["galton"].store.worker_history(7)
    assert {row["worker"] for row in history} == {1, 2, 3}
    body = again.test_client().post("/predict", json=predict_body([task(2, "neg", "neg", "neg")])).get_json()
    assert labels_of(body["results"][0]) == [["neg"]]
    assert again.extensions["galton"].counters["predict_fresh"] == 1


def test_rescore_event_forces_a_full_pull(fake_ls):
    app = make_app(fake_ls)
    client = app.test_client()
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}})
    run_jobs(app)
    assert client.post("/webhook", json={"action": "GALTON_RESCORE", "project": {"id": 7}}).status_code == 202
    run_jobs(app)
    assert fake_ls.pulls == [None, None]


# ---------------------------------------------------------------------- write-back order and safety
def test_touched_predictions_go_first_and_a_waiting_job_takes_over_the_rest(fake_ls):
    app = make_app(fake_ls)
    client = app.test_client()
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}})
    run_jobs(app)
    fake_ls.meta.clear()
    calls: list[tuple[str, set[int]]] = []
    write_predictions, write_meta = fake_ls.write_predictions, fake_ls.write_meta

    def predictions(project_id, wanted, model_version, **kw):
        calls.append(("predictions", set(wanted)))
        if len(calls) == 1:  # a webhook arrives while the first job writes
            client.post("/webhook", json={"action": "ANNOTATION_UPDATED", "project": {"id": 7}})
        return write_predictions(project_id, wanted, model_version, **kw)

    def meta(project_id, values, **kw):
        calls.append(("meta", set(values)))
        return write_meta(project_id, values, **kw)

    fake_ls.write_predictions, fake_ls.write_meta = predictions, meta
    fake_ls.tasks[2]["annotations"] = [annotation(1, "pos", 201), annotation(2, "pos", 202),
                                       annotation(3, "neg", 203)]
    client.post("/webhook", json={"action": "ANNOTATION_UPDATED", "project": {"id": 7}})
    assert run_jobs(app) == 2
    first, second = app.extensions["galton"].store.jobs(7)[1::-1]
    # the first job wrote task 2's prediction, then left its meta to the waiting job
    assert calls[0] == ("predictions", {2}) and first["detail"]["deferred_from"] == "meta_touched"
    assert first["detail"]["n_deferred"] == 1 and second["detail"].get("deferred_from") is None
    assert ("meta", {2}) in calls[1:] and fake_ls.meta[2]["questions"]["label"]["label"] == "pos"
    assert ("predictions", {2}) not in calls[1:]  # its prediction is recorded as written
    assert labels_of({"result": list(fake_ls.predictions[2][0].result)}) == [["pos"]]
    # then nothing is left to write
    calls.clear()
    client.post("/webhook", json={"action": "ANNOTATION_UPDATED", "project": {"id": 7}})
    run_jobs(app)
    assert calls == []


def test_a_job_that_fails_after_writing_part_is_redone(fake_ls):
    app = make_app(fake_ls, job_retries=0)
    client = app.test_client()
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}})
    run_jobs(app)
    original = fake_ls.tasks[2]["annotations"]
    fake_ls.tasks[2]["annotations"] = [annotation(1, "pos", 201), annotation(2, "pos", 202),
                                       annotation(3, "neg", 203)]
    write_meta = fake_ls.write_meta

    def failing_meta(project_id, values, **kw):
        from galton.connectors import PlatformError

        raise PlatformError("meta write failed (fake)", project_id=project_id, status=503)

    fake_ls.write_meta = failing_meta
    client.post("/webhook", json={"action": "ANNOTATION_UPDATED", "project": {"id": 7}})
    run_jobs(app)
    store = app.extensions["galton"].store
    assert store.jobs(7)[0]["status"] == "failed"
    assert labels_of({"result": list(fake_ls.predictions[2][0].result)}) == [["pos"]]  # written before the failure
    assert 2 not in store.load(7).written  # so nothing claims to know what Label Studio holds for it
    # the change is undone before the next job: the consensus equals what was last committed,
    # yet task 2 is rewritten because the failed job had changed it in Label Studio
    fake_ls.write_meta = write_meta
    fake_ls.tasks[2]["annotations"] = original
    client.post("/webhook", json={"action": "ANNOTATION_UPDATED", "project": {"id": 7}})
    run_jobs(app)
    assert store.jobs(7)[0]["status"] == "done"
    assert labels_of({"result": list(fake_ls.predictions[2][0].result)}) == [["neg"]]
    assert fake_ls.meta[2]["questions"]["label"]["label"] == "neg"


def test_a_job_that_wrote_much_meta_is_followed_by_an_idle_pull():
    from .conftest import FakeConnector

    fake = FakeConnector({t: task(t, "pos", "pos", "neg") for t in range(1, 61)})
    app = make_app(fake)
    client = app.test_client()
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}})
    assert run_jobs(app) == 2  # the review, then the catch-up pull past galton's own 60 meta writes
    first, catch_up = app.extensions["galton"].store.jobs(7)[1::-1]
    assert first["detail"]["catch_up"] is True and catch_up["reason"] == "catch-up x1"
    assert catch_up["detail"]["n_written"] == 0 and "catch_up" not in catch_up["detail"]


def test_a_prediction_within_the_score_tolerance_is_left_as_it_is(fake_ls):
    app = make_app(fake_ls, score_tolerance=0.1)
    client = app.test_client()
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}})
    run_jobs(app)
    old = fake_ls.predictions[1]
    fake_ls.tasks[1]["annotations"].append(annotation(4, "pos", 104))  # 2/3 -> 3/4 agree: same label
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}})
    run_jobs(app)
    assert fake_ls.predictions[1] == old and fake_ls.meta[1]["questions"]["label"]["n_annotations"] == 4
    _result, score, meta = app.extensions["galton"].store.load(7).written[1]
    assert score == round(old[0].score, 4) and '"n_annotations":4' in meta  # what Label Studio holds


def test_annotation_webhooks_with_payloads_are_applied_without_a_pull(fake_ls):
    app = make_app(fake_ls)
    client = app.test_client()
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}})
    run_jobs(app)
    n_pulls = len(fake_ls.pulls)

    def save(task_id, worker, label, stamp):
        body = {**annotation(worker, label, task_id * 100 + worker), "task": task_id, "updated_at": stamp}
        kept = [a for a in fake_ls.tasks[task_id]["annotations"] if a["id"] != body["id"]]
        fake_ls.tasks[task_id]["annotations"] = [*kept, body]  # what Label Studio now holds
        return client.post("/webhook", json={"action": "ANNOTATION_UPDATED", "annotation": body,
                                             "task": {"id": task_id}, "project": {"id": 7, "label_config": CONFIG}})

    # task 2 was neg, neg, neg: two raters change their minds, in two saves, one job
    save(2, 1, "pos", "2024-01-02T00:00:01Z")
    save(2, 2, "pos", "2024-01-02T00:00:02Z")
    assert run_jobs(app) == 1
    job = app.extensions["galton"].store.jobs(7)[0]["detail"]
    assert len(fake_ls.pulls) == n_pulls and job["pulled"] is False and job["n_payloads"] == 2
    assert labels_of({"result": list(fake_ls.predictions[2][0].result)}) == [["pos"]]
    assert fake_ls.meta[2]["questions"]["label"]["n_annotations"] == 3
    # a deletion names the annotation only: applied too
    fake_ls.tasks[2]["annotations"] = [a for a in fake_ls.tasks[2]["annotations"] if a["id"] != 203]
    client.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 203}],
                                  "project": {"id": 7}})
    run_jobs(app)
    assert len(fake_ls.pulls) == n_pulls and fake_ls.meta[2]["questions"]["label"]["n_annotations"] == 2
    # the verifying pull (once quiet) finds nothing to change
    fake_ls.meta.clear()
    app.extensions["galton"].run(7, ["verify"])
    verify = app.extensions["galton"].store.jobs(7)[0]["detail"]
    assert len(fake_ls.pulls) == n_pulls + 1 and verify["pulled"] is True and verify["n_written"] == 0
    # a save the payload cannot stand for is pulled: an annotator the snapshot does not know
    # (the pull lists the users again), an annotation webhook without its payload
    save(3, 12, "neg", "2024-01-02T00:00:03Z")
    run_jobs(app)
    assert len(fake_ls.pulls) == n_pulls + 2
    assert app.extensions["galton"].store.jobs(7)[0]["detail"]["pulled"] is True
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}})
    run_jobs(app)
    assert len(fake_ls.pulls) == n_pulls + 3


def test_a_due_pull_runs_beside_the_payloads_write_and_keeps_later_webhooks(fake_ls):
    """A payload job long after the last pull writes the touched prediction first, pulls
    meanwhile and then reviews what the pull found, in one job; webhooks that came during the
    pull are left to the next job, which applies them without a pull."""
    from galton.backend.jobs import MAX_PULL_AGE_S

    app = make_app(fake_ls)
    client = app.test_client()
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}})
    run_jobs(app)
    reviewer = app.extensions["galton"]
    reviewer._pulled[7] -= MAX_PULL_AGE_S + 1
    n_pulls = len(fake_ls.pulls)

    def save(task_id, worker, label, stamp):
        body = {**annotation(worker, label, task_id * 100 + worker), "task": task_id, "updated_at": stamp}
        fake_ls.tasks[task_id]["annotations"] = [
            *(a for a in fake_ls.tasks[task_id]["annotations"] if a["id"] != body["id"]), body]
        return client.post("/webhook", json={"action": "ANNOTATION_UPDATED", "annotation": body,
                                             "task": {"id": task_id}, "project": {"id": 7, "label_config": CONFIG}})

    # a save whose webhook was lost: only a pull finds it (task 3: pos x3 -> pos x3 + neg)
    fake_ls.tasks[3]["annotations"].append(annotation(4, "neg", 304))
    pulled, release = threading.Event(), threading.Event()
    pull = fake_ls.pull

    def slow_pull(*args, **kwargs):
        found = pull(*args, **kwargs)  # Label Studio as it was when the pull read it
        pulled.set()
        assert release.wait(10)
        return found

    fake_ls.pull = slow_pull
    save(2, 1, "pos", "2024-01-02T00:00:01Z")
    save(2, 2, "pos", "2024-01-02T00:00:02Z")  # task 2: neg x3 -> pos, pos, neg
    worker = threading.Thread(target=run_jobs, args=(app,))
    worker.start()
    try:
        assert pulled.wait(10)
        for _ in range(200):  # the touched task's prediction goes out while the pull runs
            if 2 in fake_ls.predictions and labels_of({"result": list(fake_ls.predictions[2][0].result)}) == [["pos"]]:
                break
            threading.Event().wait(0.02)
        assert labels_of({"result": list(fake_ls.predictions[2][0].result)}) == [["pos"]]
        assert fake_ls.meta[3]["questions"]["label"]["n_annotations"] == 3  # the pull's find waits for it
        save(1, 4, "neg", "2024-01-02T00:00:03Z")  # during the pull: not in what it read
    finally:
        release.set()
        worker.join(10)
    assert not worker.is_alive()
    jobs = reviewer.store.jobs(7)
    aged, after = jobs[1]["detail"], jobs[0]["detail"]
    assert aged["pulled"] is True and aged["first_pass"]["n_payloads"] == 2 and aged["first_pass"]["n_written"] >= 1
    assert fake_ls.meta[3]["questions"]["label"]["n_annotations"] == 4
    assert fake_ls.meta[2]["questions"]["label"]["n_annotations"] == 3
    # the webhook from during the pull: applied by the next job, from its payload
    assert after["pulled"] is False and after["n_payloads"] == 1 and len(fake_ls.pulls) == n_pulls + 1
    assert fake_ls.meta[1]["questions"]["label"]["n_annotations"] == 4


def test_hostile_nesting_and_non_json_bodies_get_400(fake_ls):
    client = make_app(fake_ls).test_client()
    deep = client.post("/webhook", data='{"a":' * 5000 + "1" + "}" * 5000, content_type="application/json")
    assert deep.status_code == 400 and "nested too deeply" in deep.get_json()["detail"]
    for body in ('{"action": NaN}', "[1, 2", "\xff"):
        answer = client.post("/webhook", data=body, content_type="application/json")
        assert answer.status_code == 400 and "JSON object" in answer.get_json()["detail"]
