"""galton's ML backend against a real Label Studio: ``galton serve`` as a real process.

Label Studio (the session fixture) registers the backend through its API, raters'
annotations go in through Label Studio, and the test waits (bounded) until Label Studio
holds galton's consensus predictions and ``meta.galton`` with the labels a consensus
recomputed offline from Label Studio's own export gives.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.request

import pytest

from galton.backend.review import ReviewSettings, review_project
from galton.backend.settings import SECRET_HEADER
from galton.connectors import GALTON_PREFIX
from galton.connectors._seed import ensure_users
from tests.conftest import LABEL_STUDIO_TESTS

from .conftest import CONFIG, start_backend, stop_backend

pytestmark = LABEL_STUDIO_TESTS
WAIT_S = 30.0


def choice(label):
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def http_get(url, user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def galton_labels(connector, project_id):
    """task -> (labels, model_version) of galton's predictions in Label Studio."""
    out = {}
    for p in connector.predictions(project_id):
        if str(p.get("model_version") or "").startswith(GALTON_PREFIX):
            out.setdefault(int(p["task"]), []).append((p["result"][0]["value"]["choices"][0], p["model_version"]))
    return out


def wait_until_consistent(connector, project_id, settings, task_ids, *, timeout=WAIT_S):
    """Poll until every annotated task's galton prediction and meta equal the offline consensus."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        pulled = connector.pull(project_id)
        review = review_project(pulled, settings)
        expected = {t: review.meta[t]["questions"]["label"]["label"] for t in review.meta}
        have = galton_labels(connector, project_id)
        meta = {t: (pulled.tasks[t].meta.get("galton") or {}).get("questions", {}).get("label", {}).get("label")
                for t in task_ids}
        last = (expected, have, meta)
        ok = all(have.get(t) == [(label, review.model_version)] and meta[t] == label for t, label in expected.items())
        unannotated = [t for t in task_ids if t not in expected]
        if ok and all(t not in have for t in unannotated):
            return pulled, review
        time.sleep(0.5)
    raise AssertionError(f"Label Studio did not reach galton's consensus within {timeout} s: {last}")


@pytest.fixture(scope="module")
def connector(label_studio):
    with label_studio.connector(n_threads=4) as c:
        yield c


def test_label_studio_drives_galton_as_ml_backend(label_studio, connector, tmp_path):
    user, password, secret = "label-studio", secrets.token_urlsafe(12), secrets.token_urlsafe(16)
    backend = start_backend(tmp_path, {
        "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token,
        "GALTON_BASIC_AUTH_USER": user, "GALTON_BASIC_AUTH_PASSWORD": password,
        "GALTON_WEBHOOK_SECRET": secret, "GALTON_METHOD": "mace",
    })
    try:
        sdk = connector.sdk
        project = sdk.projects.create(title="galton ml backend", label_config=CONFIG)
        project_id = int(project.id)
        imported = sdk.projects.import_tasks(id=project_id, request=[{"text": f"tweet {i}"} for i in range(6)],
                                             return_task_ids=True)
        t = [int(i) for i in imported.task_ids]
        raters = list(ensure_users(connector, [f"ml-rater-{i}@raters.galton.invalid" for i in range(3)]).values())

        ml = sdk.ml.create(project=project_id, url=backend.url, title="galton", auth_method="BASIC_AUTH",
                           basic_auth_user=user, basic_auth_pass=password)
        # Label Studio made the webhook itself (without our secret): add the header to it
        hooks = [h for h in sdk.webhooks.list(project=str(project_id)) if h.url == backend.url + "/webhook"]
        assert len(hooks) == 1 and hooks[0].send_payload
        sdk.webhooks.update(id=hooks[0].id, headers={SECRET_HEADER: secret})

        plan = {t[0]: "ppp", t[1]: "nnn", t[2]: "ppn", t[3]: "nnp", t[4]: "p"}
        annotation_ids = {}
        for round_ in range(3):  # round-robin, as annotators work
            for task_id, labels in plan.items():
                if round_ < len(labels):
                    label = {"p": "pos", "n": "neg"}[labels[round_]]
                    created = sdk.annotations.create(id=task_id, result=choice(label), completed_by=raters[round_])
                    annotation_ids[(task_id, round_)] = int(created.id)
        settings = ReviewSettings(method="mace")
        pulled, review = wait_until_consistent(connector, project_id, settings, t)
        assert review.meta[t[0]]["questions"]["label"]["label"] == "pos"
        assert review.meta[t[1]]["questions"]["label"]["label"] == "neg"
        assert "single_annotation" in pulled.tasks[t[4]].meta["galton"]["flags"]
        assert pulled.tasks[t[0]].meta["galton"]["questions"]["label"]["n_annotations"] == 3
        assert t[5] not in review.meta

        # an annotation updated and one deleted: Label Studio follows
        sdk.annotations.update(id=annotation_ids[(t[3], 2)], result=choice("neg"))
        sdk.annotations.delete(id=annotation_ids[(t[4], 0)])
        pulled, review = wait_until_consistent(connector, project_id, settings, t)
        assert review.meta[t[3]]["questions"]["label"]["agreement"] == pytest.approx(1.0)
        assert t[4] not in galton_labels(connector, project_id)

        # the Data Manager's "retrieve predictions" for a batch: Label Studio asks /predict
        connector.delete_galton_predictions(project_id, [t[0], t[2], t[3]])
        sdk.actions.create(id="retrieve_tasks_predictions", project=project_id,
                           selected_items={"all": False, "included": [t[0], t[2], t[3], t[5]]})
        have = galton_labels(connector, project_id)
        for task_id in (t[0], t[2], t[3]):
            assert have.get(task_id) == [(review.meta[task_id]["questions"]["label"]["label"], review.model_version)]
        assert t[5] not in have  # no annotations: no prediction

        # START_TRAINING: recorded honestly (no training-dynamics job yet)
        sdk.ml.train(id=ml.id)
        deadline = time.monotonic() + 10
        jobs = []
        while time.monotonic() < deadline:
            jobs = json.loads(http_get(f"{backend.url}/jobs?project={project_id}", user, password))["jobs"]
            if any(j["kind"] == "train" for j in jobs):
                break
            time.sleep(0.2)
        assert any(j["kind"] == "train" and j["status"].startswith("unavailable") for j in jobs)
        assert all(j["status"] in ("done", "running") for j in jobs if j["kind"] == "review")

        metrics = http_get(f"{backend.url}/metrics", user, password)
        for route in ("setup", "predict", "webhook"):
            assert f'route="{route}",status="20' in metrics, route
        assert 'galton_backend_total{what="predict_fresh"} 3' in metrics
        log = backend.log()
        for secret_text in (password, secret, label_studio.token):
            assert secret_text not in log
    finally:
        stop_backend(backend)
