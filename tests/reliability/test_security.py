"""Security and limits: projects the backend was not configured for, request size limits,
secrets that must never leak (logs, errors, reports, exceptions), a report that escapes
hostile task data, and the restart path that redoes interrupted jobs (without a server).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
import traceback
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

from galton.backend.app import create_app
from galton.backend.cli import main
from galton.backend.review import ReviewSettings
from galton.backend.settings import SECRET_HEADER, Settings, SettingsError
from galton.backend.state import StateStore
from galton.connectors import LabelStudioConnector, PlatformError
from tests.backend.conftest import CONFIG, FakeConnector, free_port, start_backend, stop_backend, task

from .faultproxy import Fault, FaultProxy

LS = {"label_studio_url": "http://ls.invalid", "label_studio_api_key": "k" * 20}


@pytest.fixture
def fake_ls():
    return FakeConnector({1: task(1, "pos", "pos", "neg"), 2: task(2, "neg", "neg", "neg"),
                          3: task(3, "pos", "pos", "pos"), 4: task(4)})


def make_app(fake, *, store=None, **changes):
    settings = Settings(review=ReviewSettings(method="majority_vote"),
                        **{"state_url": "sqlite://", "auth_off": True, **LS, **changes})
    return create_app(settings, store=store, connector_factory=lambda: fake, start_workers=False)


# ---------------------------------------------------------------------- GALTON_PROJECTS
def test_projects_setting_parses_and_refuses_garbage():
    assert Settings.from_env({"GALTON_AUTH": "off"}).projects is None
    assert Settings.from_env({"GALTON_AUTH": "off", "GALTON_PROJECTS": " 3, 12 ,"}).projects == {3, 12}
    for bad in ("3,x", "-1", "1.5", ","):
        with pytest.raises(SettingsError, match="GALTON_PROJECTS"):
            Settings.from_env({"GALTON_AUTH": "off", "GALTON_PROJECTS": bad})


def test_requests_for_other_projects_get_403_and_nothing_is_pulled_or_written(fake_ls, caplog):
    app = make_app(fake_ls, projects=frozenset({7}))
    client = app.test_client()
    queue = app.extensions["galton"].queue
    body = {"tasks": [task(1, "pos", "pos", "neg")], "label_config": CONFIG}
    with caplog.at_level(logging.WARNING, logger="galton.backend.app"):
        for path, payload in [("/predict", {**body, "project": "8.1700000000"}), ("/predict", body),
                              ("/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 8}}),
                              ("/webhook", {"action": "GALTON_RESCORE", "project": {"id": 8}}),
                              ("/setup", {"schema": CONFIG, "project": "8.17"}), ("/train", {"project": 8})]:
            response = client.post(path, json=payload)
            assert response.status_code == 403, (path, response.get_json())
            assert response.get_json()["error"] == "forbidden" and "GALTON_PROJECTS" in response.get_json()["detail"]
    assert "not in GALTON_PROJECTS" in caplog.text
    assert queue.depth() == {"pending": 0, "running": 0} and not queue.run_next()
    assert not fake_ls.pulls and not fake_ls.predictions and not fake_ls.meta
    assert client.post("/predict", json={**body, "project": "7.17"}).status_code == 200
    assert client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7}}).status_code == 202


# ---------------------------------------------------------------------- request size
def test_a_body_over_the_limit_gets_413_naming_the_setting(fake_ls):
    assert Settings.from_env({"GALTON_AUTH": "off"}).max_request_mb == 64
    assert Settings.from_env({"GALTON_AUTH": "off", "GALTON_MAX_REQUEST_MB": "1.5"}).max_request_mb == 1.5
    with pytest.raises(SettingsError, match="GALTON_MAX_REQUEST_MB"):
        Settings.from_env({"GALTON_AUTH": "off", "GALTON_MAX_REQUEST_MB": "0"})
    client = make_app(fake_ls, max_request_mb=0.05).test_client()
    big = {"tasks": [task(i, "pos", "neg", "pos") for i in range(1, 400)], "label_config": CONFIG, "project": 7}
    response = client.post("/predict", data=json.dumps(big), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_too_large"
    assert "GALTON_MAX_REQUEST_MB" in response.get_json()["detail"]
    assert client.post("/webhook", data=b"{" + b" " * 60_000 + b"}", content_type="application/json",
                       ).status_code == 413
    small = {**big, "tasks": big["tasks"][:5]}
    assert client.post("/predict", json=small).status_code == 200


def test_task_data_is_never_evaluated(fake_ls):
    """Task text that looks like a template or code comes back as data, never run."""
    client = make_app(fake_ls).test_client()
    hostile = "{{ 7*7 }} {% raw %} ${7*7} __import__('os').system('false') <script>alert(1)</script>"
    t = {**task(1, "pos", "pos", "neg"), "data": {"text": hostile}}
    response = client.post("/predict", json={"tasks": [t], "label_config": CONFIG, "project": 7})
    assert response.status_code == 200 and "49" not in response.get_data(as_text=True)


# ---------------------------------------------------------------------- secrets never leak
def test_connector_failures_never_show_the_token(caplog, capsys):
    token = "tok-" + secrets.token_hex(16)
    dead = f"http://127.0.0.1:{free_port()}"
    texts = []
    with caplog.at_level(logging.DEBUG), FaultProxy(dead) as proxy:
        proxy.add(Fault("status", r"/api/projects/1/", code=401, count=1))
        for url in (dead, proxy.url, proxy.url):  # refused, 401, 502 (no upstream)
            connector = LabelStudioConnector(url, token, timeout=1.0, max_retries=1, backoff=0.01)
            texts.append(repr(connector))
            with pytest.raises(PlatformError) as caught:
                connector.pull(1)
            error = caught.value
            texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
            connector.close()
    assert proxy.count() == 3  # one 401 (not retried), two 502
    out = capsys.readouterr()
    texts += [caplog.text, out.out, out.err]
    assert "401" in "".join(texts) and "refused" in "".join(texts)
    assert not [t for t in texts if token in t]


@pytest.mark.slow  # a real backend process and the connector's full retry schedule: about 30 s
def test_backend_logs_never_show_secrets(tmp_path):
    """A real backend whose Label Studio is down: failed jobs, refused requests, debug log level."""
    token, password, secret = ("tok-" + secrets.token_hex(16), "pw-" + secrets.token_hex(8),
                               "hook-" + secrets.token_hex(8))
    backend = start_backend(tmp_path, {
        "LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}", "LABEL_STUDIO_API_KEY": token,
        "GALTON_BASIC_AUTH_USER": "ls", "GALTON_BASIC_AUTH_PASSWORD": password, "GALTON_WEBHOOK_SECRET": secret})
    auth = {"Authorization": "Basic " + base64.b64encode(f"ls:{password}".encode()).decode()}
    bodies = []

    def post(path, body, headers):
        request = urllib.request.Request(backend.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # a busy machine
                bodies.append(response.read().decode())
                return response.status
        except urllib.error.HTTPError as error:
            bodies.append(error.read().decode())
            return error.code

    try:
        hook = {"action": "ANNOTATION_CREATED", "project": {"id": 5}}
        assert post("/webhook", hook, {SECRET_HEADER: secret + "x"}) == 401
        assert post("/predict", {"tasks": []}, {"Authorization": "Basic " + base64.b64encode(
            f"ls:{password}-wrong".encode()).decode()}) == 401
        assert post("/webhook", hook, {SECRET_HEADER: secret}) == 202
        assert post("/setup", {"schema": CONFIG, "project": "6.1", "access_token": token}, auth) == 200
        deadline = time.monotonic() + 90
        failed = []
        while time.monotonic() < deadline and not failed:
            request = urllib.request.Request(backend.url + "/jobs", headers=auth)
            with urllib.request.urlopen(request, timeout=60) as response:
                text = response.read().decode()
            bodies.append(text)
            failed = [j for j in json.loads(text)["jobs"] if j["status"] == "failed"]
            time.sleep(0.3)
        assert failed, text
    finally:
        stop_backend(backend)
    log = backend.log()
    assert "refused" in log and "failed" in log
    for value in (token, password, secret):
        assert value not in log
        assert not [b for b in bodies if value in b]


# ---------------------------------------------------------------------- the report escapes
def test_galton_report_escapes_hostile_task_data_labels_and_names(tmp_path):
    evil = "<script>alert(1)</script>"
    config = ('<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
              '<Choice value="&lt;script&gt;alert(1)&lt;/script&gt;"/><Choice value="pos"/></Choices></View>')
    export = []
    for i in range(1, 9):
        annotations = []
        for w in (1, 2, 3):
            label = evil if (i + w) % 3 == 0 else "pos"
            annotations.append({"id": i * 10 + w, "updated_at": "2024-01-01T00:00:00Z",
                                "completed_by": {"id": w, "email": f"{evil}{w}@x.org", "first_name": evil},
                                "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                            "value": {"choices": [label]}}]})
        export.append({"id": i, "data": {"text": evil}, "meta": {"note": evil}, "annotations": annotations})
    (tmp_path / "export.json").write_text(json.dumps(export), encoding="utf-8")
    (tmp_path / "config.xml").write_text(config, encoding="utf-8")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", "--export", str(tmp_path / "export.json"), "--label-config",
                                       str(tmp_path / "config.xml"), "--title", evil, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ---------------------------------------------------------------------- restart
def test_jobs_left_running_are_marked_interrupted_and_redone_on_start(fake_ls, tmp_path):
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    store = StateStore(url)
    dead = store.add_job(7, "review", "running", "ANNOTATION_CREATED x3")
    full = store.add_job(9, "review", "running", "TASKS_DELETED x1")
    other = store.add_job(11, "review", "running", "full x1")  # not in GALTON_PROJECTS: marked, not redone
    store.close()
    app = make_app(fake_ls, store=StateStore(url), state_url=url, projects=frozenset({7, 9}))
    reviewer = app.extensions["galton"]
    records = {j["id"]: j for j in reviewer.store.jobs(limit=10)}
    assert all(records[i]["status"] == "interrupted" and records[i]["finished_at"] for i in (dead, full, other))
    assert reviewer.queue.depth() == {"pending": 2, "running": 0}
    while reviewer.queue.run_next():
        pass
    done = [j for j in reviewer.store.jobs(limit=10) if j["status"] == "done"]
    assert sorted((j["project_id"], j["reason"]) for j in done) == [(7, "resume x1"), (9, "full x1")]
    assert fake_ls.pulls == [None, None]  # both first jobs: full pulls
    assert set(fake_ls.predictions) == {1, 2, 3}
