"""Bad input: malformed, truncated and hostile exports, label configs and request bodies.

Every parser answers with a result (bad parts skipped and counted) or an ``InputError``
(a ``ValueError``) that says what is wrong, never another exception; every HTTP endpoint
answers with a status below 500 and a JSON ``{"error", "detail"}`` body, and a rejected
request writes nothing. Hypothesis drives all of it; the number of examples each fuzz ran
is recorded (``GALTON_FUZZ_EXAMPLES`` scales them, default 150 per target).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galton.backend.app import create_app
from galton.backend.review import ReviewSettings
from galton.backend.settings import Settings
from galton.connectors import parse_label_config, parse_tasks, read_labelstudio_export
from galton.quality import InputError
from tests.backend.conftest import CONFIG, FakeConnector, annotation, task

from .conftest import record

N_EXAMPLES = int(os.environ.get("GALTON_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=N_EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------------- strategies
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=20)
labels = st.one_of(st.sampled_from(["pos", "neg", "Neutral", "", "<script>alert(1)</script>", "x" * 5000]),
                   json_values)
regions = st.fixed_dictionaries({}, optional={
    "from_name": st.one_of(st.sampled_from(["label", "other", ""]), json_values),
    "to_name": st.one_of(st.just("text"), json_values),
    "type": st.one_of(st.sampled_from(["choices", "rating", "labels", "textarea"]), json_values),
    "value": st.one_of(st.fixed_dictionaries({"choices": st.lists(labels, max_size=3)}),
                       st.fixed_dictionaries({"rating": json_values}), json_values),
})
annotations = st.fixed_dictionaries({}, optional={
    "id": json_values,
    # deleted users: null, an id no user has, a dict without id
    "completed_by": st.one_of(st.none(), st.integers(min_value=-5, max_value=10**12), st.just({"email": "gone@x"}),
                              st.builds(lambda i: {"id": i, "email": "<b>@x", "first_name": "<i>"},
                                        st.integers(1, 5)), json_values),
    "result": st.one_of(st.lists(regions, max_size=3), json_values),
    "was_cancelled": json_values,
    "ground_truth": json_values,
    "updated_at": st.one_of(st.sampled_from(["2024-01-01T00:00:00Z", "not a time", ""]), json_values),
    "lead_time": json_values,
})
tasks = st.one_of(st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.integers(min_value=-3, max_value=40), st.text(max_size=5), st.booleans(), st.none()),
    "data": st.one_of(st.fixed_dictionaries({"text": st.text(max_size=50)}), json_values),  # or no data at all
    "meta": json_values,
    "annotations": st.one_of(st.lists(annotations, max_size=4), json_values),
    "updated_at": json_values,
}), json_values)
CONTROLS = ["Choices", "Choice", "Rating", "Pairwise", "Taxonomy", "Labels", "TextArea", "Text", "View",
            "Header", "Unknown", "script"]
config_nodes = st.recursive(
    st.builds(lambda tag, name, value: f'<{tag} name="{name}" value="{value}" toName="text"/>',
              st.sampled_from(CONTROLS), st.sampled_from(["label", "text", "", "a&b"]),
              st.sampled_from(["pos", "neg", "$text", "", "<x>"])),
    lambda inner: st.builds(lambda tag, name, kids: f'<{tag} name="{name}" toName="text" '
                            f'maxRating="{len(kids)}" choice="multiple">{"".join(kids)}</{tag}>',
                            st.sampled_from(CONTROLS), st.sampled_from(["label", "q2", "text"]),
                            st.lists(inner, max_size=4)),
    max_leaves=12)
configs = st.one_of(config_nodes.map(lambda body: f"<View>{body}</View>"), st.text(max_size=200),
                    st.just("<View>" * 2000), st.just('<!DOCTYPE x [<!ENTITY a "aaaa">]><View>&a;</View>'))


def run_counted(name, strategy, check):
    """Run ``check`` on ``strategy`` under FUZZ and record how many examples ran."""
    seen = [0]

    @FUZZ
    @given(strategy)
    def body(value):
        seen[0] += 1
        check(value)

    body()
    record({"kind": "fuzz", "target": name, "examples": seen[0]})
    return seen[0]


# ---------------------------------------------------------------------- parsers
def test_fuzz_parse_tasks_never_crashes():
    def check(batch):
        try:
            pulled = parse_tasks(batch, CONFIG)
        except InputError as error:
            assert str(error)
            return
        n_read = sum(pulled.skipped.values()) + len(pulled.annotations)
        assert n_read >= 0 and all(a.task_id in pulled.tasks for a in pulled.annotations)

    assert run_counted("parse_tasks", st.lists(tasks, max_size=6), check) > 0


def test_fuzz_parse_label_config_never_crashes():
    def check(xml):
        try:
            config = parse_label_config(xml)
        except InputError as error:
            assert str(error)
            return
        assert all(q.classes for q in config.questions)

    assert run_counted("parse_label_config", configs, check) > 0


def test_fuzz_read_labelstudio_export_never_crashes():
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.json"
        good = json.dumps([task(i, "pos", "neg", "pos") for i in range(1, 5)]).encode()

        def check(case):
            kind, payload, cut = case
            if kind == "truncated":
                data = good[: int(len(good) * cut)]
            elif isinstance(payload, bytes):
                data = payload
            else:
                data = json.dumps(payload, default=str).encode()
            path.write_bytes(data)
            try:
                read_labelstudio_export(path, label_config=CONFIG if cut > 0.5 else None)
            except InputError as error:
                assert str(error)

        cases = st.tuples(st.sampled_from(["truncated", "bytes", "json"]),
                          st.one_of(st.binary(max_size=200), st.lists(tasks, max_size=4), json_values),
                          st.floats(0, 1))
        assert run_counted("read_labelstudio_export", cases, check) > 0


def test_hostile_exports_give_a_clear_error_or_a_counted_skip(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    try:
        read_labelstudio_export(path, label_config=CONFIG)
    except InputError as error:
        assert "nested" in str(error) or "JSON" in str(error)
    huge = "x" * 2_000_000
    hostile = [
        task(1, "pos", "pos", "neg"),
        {"id": 2, "annotations": [annotation(1, "pos")]},  # no data: still scored (the data is not needed)
        {"id": 3, "data": {"text": huge}, "annotations": [annotation(1, "Neutral"), annotation(2, "pos")]},
        {"id": 4, "data": {}, "annotations": [{**annotation(1, "pos"), "completed_by": None},  # deleted user
                                              {**annotation(2, "pos"), "completed_by": {"email": "gone@x"}}]},
        {"id": 5, "data": {}, "annotations": "not a list"},
        {"id": "6", "data": {}},
        "not a task",
        {"id": 7, "data": {}, "annotations": [{**annotation(99, "neg"), "id": 9}]},  # an id no user has: kept
    ]
    pulled = parse_tasks(hostile, CONFIG)
    assert set(pulled.tasks) == {1, 2, 3, 4, 5, 7}
    assert sum(pulled.skipped.values()) >= 5, pulled.skipped  # each bad part counted under its reason
    kept = {(a.task_id, a.worker) for a in pulled.annotations}
    assert (7, 99) in kept and (2, 1) in kept and not any(t == 4 for t, _ in kept)
    unsupported = parse_label_config('<View><Text name="text" value="$text"/><TextArea name="note" toName="text"/>'
                                     '<Labels name="ner" toName="text"><Label value="PER"/></Labels></View>')
    assert not unsupported.questions and len(unsupported.unscored) == 2


# ---------------------------------------------------------------------- HTTP endpoints
def _app(fake, **changes):
    settings = Settings(review=ReviewSettings(method="majority_vote"), state_url="sqlite://", auth_off=True,
                        label_studio_url="http://ls.invalid", label_studio_api_key="k" * 20, **changes)
    return create_app(settings, connector_factory=lambda: fake, start_workers=False)


projects = st.one_of(st.sampled_from(["7.1700000000", 7, {"id": 7}, "0", -1, "7.x.y", "9" * 400]), json_values)
bodies = {
    "/predict": st.fixed_dictionaries({}, optional={"tasks": st.one_of(st.lists(tasks, max_size=5), json_values),
                                                    "project": projects,
                                                    "label_config": st.one_of(st.just(CONFIG), configs, json_values),
                                                    "params": json_values}),
    "/webhook": st.fixed_dictionaries({}, optional={
        "action": st.one_of(st.sampled_from(["ANNOTATION_CREATED", "ANNOTATIONS_DELETED", "START_TRAINING",
                                             "GALTON_RESCORE", "PROJECT_UPDATED", "nope"]), json_values),
        "project": projects, "task": st.one_of(st.fixed_dictionaries({"project": projects}), json_values),
        "annotation": st.one_of(annotations, json_values)}),
    "/setup": st.fixed_dictionaries({}, optional={"schema": st.one_of(st.just(CONFIG), configs, json_values),
                                                  "project": projects, "extra_params": json_values}),
    "/train": st.fixed_dictionaries({}, optional={"project": projects, "label_config": json_values}),
}

def _encoded(path):
    return st.tuples(st.just(path), bodies[path].map(lambda b: json.dumps(b, default=str).encode()))


raw_bodies = st.one_of(st.binary(max_size=100), st.just(b"[" * 50_000), st.just(b'{"tasks": [' + b"{" * 30_000))
requests = st.one_of(st.sampled_from(sorted(bodies)).flatmap(_encoded),
                     st.tuples(st.sampled_from(sorted(bodies)), raw_bodies))


def test_fuzz_endpoints_never_answer_500():
    fake = FakeConnector({1: task(1, "pos", "pos", "neg")})
    app = _app(fake)
    client = app.test_client()
    statuses: dict[int, int] = {}

    def check(case):
        path, data = case
        response = client.post(path, data=data, content_type="application/json")
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (path, response.get_json())
        body = response.get_json()
        assert isinstance(body, dict)
        if response.status_code >= 400:
            assert set(body) == {"error", "detail"} and "Traceback" not in body["detail"]

    n = run_counted("HTTP endpoints (/predict /webhook /setup /train)", requests, check)
    assert n > 0 and statuses
    # nothing the fuzz sent reached Label Studio: webhooks only enqueue, /predict answers from the body
    assert not fake.predictions and not fake.meta and not fake.pulls


def test_a_job_over_hostile_tasks_skips_and_counts_and_an_unscorable_project_writes_nothing():
    hostile = {1: task(1, "pos", "pos", "neg"), 2: task(2, "neg", "neg", "Neutral"),
               3: {"id": 3, "annotations": [{**annotation(1, "pos"), "completed_by": None}]},
               4: {"id": 4, "data": {"text": "<script>alert(1)</script>" * 1000},
                   "annotations": [annotation(5, "pos")]}}
    fake = FakeConnector(hostile)
    app = _app(fake)
    reviewer = app.extensions["galton"]
    reviewer.run(7, ["full"])
    job = reviewer.store.jobs(7, limit=1)[0]
    assert job["status"] == "done", job
    assert set(fake.predictions) == {1, 2, 4} and set(fake.meta) == {1, 2, 4}
    # a labeling config galton cannot score at all: the job ends without writing anything
    unscorable = FakeConnector(dict(hostile), xml='<View><Text name="text" value="$text"/>'
                                                  '<TextArea name="label" toName="text"/></View>')
    app = _app(unscorable)
    reviewer = app.extensions["galton"]
    reviewer.run(8, ["full"])
    assert not unscorable.predictions and not unscorable.meta
    assert reviewer.store.jobs(8, limit=1)[0]["status"] in ("done", "failed")
