"""Label Studio configs and task JSON, offline: the parsing rules, errors and invariants.

Fast unit tests on hand-written and recorded task dicts (the recorded export in
``fixtures/`` came from the real server of the integration tests, Label Studio 1.23.2).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galton.connectors import (
    WorkerInfo,
    parse_label_config,
    parse_tasks,
    prediction_result,
    read_labelstudio_export,
    write_table,
)
from galton.quality import InputError

FIXTURES = Path(__file__).parent / "fixtures"

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text"><Choice value="neg"/><Choice value="Neutral" alias="neu"/>
    <Choice value="pos"/></Choices>
  <Choices name="topic" toName="text" choice="multiple"><Choice value="a"/><Choice value="b"/></Choices>
  <Rating name="stars" toName="text" maxRating="3"/>
  <Pairwise name="cmp" toName="text"/>
  <Taxonomy name="tax" toName="text"><Choice value="x"><Choice value="x1"/><Choice value="x2"/></Choice>
    <Choice value="y"/></Taxonomy>
  <Choices name="region_class" toName="text" perRegion="true"><Choice value="q"/></Choices>
  <Labels name="ner" toName="text"><Label value="PER"/></Labels>
</View>"""


def test_config_questions_and_class_order():
    config = parse_label_config(CONFIG)
    assert [(q.key, q.classes) for q in config.questions] == [
        ("sentiment", ("neg", "neu", "pos")),
        ("topic:a", ("no", "yes")),
        ("topic:b", ("no", "yes")),
        ("stars", ("1", "2", "3")),
        ("cmp", ("left", "right")),
        ("tax", ("x / x1", "x / x2", "y")),
    ]
    assert [q.ordinal for q in config.questions] == [False, False, False, True, False, False]
    assert {(t, n) for t, n, _ in config.unscored} == {("Choices", "region_class"), ("Labels", "ner")}


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("", "empty"),
        ("<View><Choices", "not valid XML"),
        ('<View><Choices toName="t"><Choice value="a"/></Choices></View>', "no name"),
        ('<View><Choices name="c"><Choice value="a"/></Choices></View>', "no toName"),
        ('<View><Choices name="c" toName="t"/></View>', "no <Choice>"),
        ('<View><Choices name="c" toName="t"><Choice value="a"/><Choice value="a"/></Choices></View>', "twice"),
        ('<View><Rating name="r" toName="t" maxRating="five"/></View>', "integer"),
        ('<View><Rating name="r" toName="t"/><Choices name="r" toName="t"><Choice value="a"/></Choices></View>',
         "named 'r'"),
    ],
)
def test_bad_configs_get_clear_errors(xml, message):
    with pytest.raises(InputError, match=message):
        parse_label_config(xml)


def region(name, kind, value):
    return {"from_name": name, "to_name": "text", "type": kind, "value": value}


def annotation(worker, *regions, ident=None, updated="2026-01-01T00:00:00Z", **extra):
    return {"id": ident if ident is not None else worker * 100, "completed_by": worker, "result": list(regions),
            "updated_at": updated, **extra}


def test_skip_rules_are_counted_and_the_latest_annotation_wins():
    config = parse_label_config(CONFIG)
    s = lambda c: region("sentiment", "choices", {"choices": [c]})  # noqa: E731
    tasks = [
        {"id": 1, "data": {}, "annotations": [
            annotation(1, s("neg"), ident=10, updated="2026-01-01T00:00:00Z"),
            annotation(1, s("pos"), ident=11, updated="2026-01-02T00:00:00Z"),  # same rater, later: kept
            annotation(2, s("neu"), was_cancelled=True),
            annotation(3),  # empty
            {"id": 13, "completed_by": None, "result": [s("neg")]},  # deleted user
            annotation(4, s("Neutral")),  # the value, not the alias, is outside the config
            annotation(5, region("ner", "labels", {"labels": ["PER"], "start": 0, "end": 1})),  # unscored only
        ]},
        "not a task",
    ]
    pulled = parse_tasks(tasks, config)
    assert pulled.skipped == {
        "older annotation by the same annotator (latest kept)": 1,
        "cancelled or skipped": 1,
        "empty result (no scored answer)": 2,
        "no annotator (deleted user?)": 1,
        "answer outside the labeling config": 1,
        "malformed task": 1,
    }
    assert [(a.worker, dict(a.answers)) for a in pulled.annotations] == [(1, {"sentiment": "pos"})]
    assert any("kept the latest" in note for note in pulled.notes)
    assert any("outside the labeling config (tasks 1)" in note for note in pulled.notes)


def test_ground_truth_marks_count_only_when_not_every_annotation_has_one():
    config = parse_label_config(CONFIG)
    s = lambda c: region("sentiment", "choices", {"choices": [c]})  # noqa: E731
    tasks = [
        # imported annotations are all marked: the mark says nothing
        {"id": 1, "data": {}, "annotations": [annotation(1, s("neg"), ground_truth=True),
                                              annotation(2, s("pos"), ground_truth=True)]},
        # a reviewer marked one: it is gold
        {"id": 2, "data": {}, "annotations": [annotation(1, s("neg")), annotation(2, s("pos"), ground_truth=True)]},
        {"id": 3, "data": {}, "annotations": [annotation(1, s("neg")), annotation(2, s("neu"))]},
    ]
    pulled = parse_tasks(tasks, config)
    assert pulled.gold == {"sentiment": {2: "pos"}}
    with_file = parse_tasks(tasks, config, gold={"sentiment": {2: "neg", 3: "neu"}})
    assert with_file.gold == {"sentiment": {2: "neg", 3: "neu"}}
    data = with_file.questions()["sentiment"]
    assert data.encoding.decode_labels(data.gold_codes()) == [None, "neg", "neu"]
    with pytest.raises(InputError, match="outside the config's classes"):
        parse_tasks(tasks, config, gold={"sentiment": {2: "great"}})


def test_item_field_must_be_present_and_unique():
    config = parse_label_config(CONFIG)
    with pytest.raises(InputError, match="no scalar data field 'ext'"):
        parse_tasks([{"id": 1, "data": {}, "annotations": []}], config, item_field="ext")
    with pytest.raises(InputError, match="share the item id 'a'"):
        parse_tasks([{"id": 1, "data": {"ext": "a"}}, {"id": 2, "data": {"ext": "a"}}], config, item_field="ext")


def test_multiple_choice_rating_pairwise_taxonomy_answers():
    config = parse_label_config(CONFIG)
    tasks = [{"id": 7, "data": {}, "annotations": [annotation(
        1,
        region("topic", "choices", {"choices": ["b"]}),
        region("stars", "rating", {"rating": 2}),
        region("cmp", "pairwise", {"selected": "right"}),
        region("tax", "taxonomy", {"taxonomy": [["x", "x2"]]}),
    )]}]
    (record,) = parse_tasks(tasks, config).annotations
    assert dict(record.answers) == {"topic:a": "no", "topic:b": "yes", "stars": "2", "cmp": "right", "tax": "x / x2"}


labels_strategy = st.fixed_dictionaries({
    "sentiment": st.sampled_from(["neg", "neu", "pos"]),
    "topic:a": st.sampled_from(["no", "yes"]),
    "topic:b": st.sampled_from(["no", "yes"]),
    "stars": st.sampled_from(["1", "2", "3"]),
    "cmp": st.sampled_from(["left", "right"]),
    "tax": st.sampled_from(["x / x1", "x / x2", "y"]),
})


@given(labels_strategy)
def test_a_prediction_reads_back_as_the_labels_it_was_made_from(labels):
    config = parse_label_config(CONFIG)
    result = list(prediction_result(config, labels))
    (record,) = parse_tasks([{"id": 1, "data": {}, "annotations": [annotation(1, *result)]}], config).annotations
    assert dict(record.answers) == labels


triplets = st.lists(
    st.tuples(st.integers(1, 15), st.integers(1, 6), st.sampled_from(["neg", "neu", "pos"])),
    min_size=1, max_size=60, unique_by=lambda t: (t[0], t[1]),
)


def as_tasks(rows):
    tasks = {}
    for task, worker, label in rows:
        tasks.setdefault(task, {"id": task, "data": {"ext": f"item-{task}"}, "annotations": []})
        tasks[task]["annotations"].append(annotation(worker, region("sentiment", "choices", {"choices": [label]})))
    return list(tasks.values())


@settings(max_examples=50, deadline=None)
@given(triplets, st.randoms(use_true_random=False))
def test_triplets_survive_parsing_in_any_task_order(rows, rng):
    config = parse_label_config(CONFIG)
    tasks = as_tasks(rows)
    rng.shuffle(tasks)
    pulled = parse_tasks(tasks, config, item_field="ext")
    data = pulled.questions()["sentiment"]
    m, enc = data.matrix, data.encoding
    got = sorted((enc.item_ids[i], enc.worker_ids[w], enc.class_names[c])
                 for i, w, c in zip(m.items.tolist(), m.workers.tolist(), m.labels.tolist(), strict=True))
    assert got == sorted((f"item-{t}", w, label) for t, w, label in rows)
    assert enc.class_names == ("neg", "neu", "pos")  # config order, whatever was observed


@settings(max_examples=50, deadline=None)
@given(triplets, st.integers(0, 15))
def test_merging_an_incremental_pull_equals_the_full_pull(rows, cut):
    config = parse_label_config(CONFIG)
    tasks = as_tasks(rows)
    old = parse_tasks([t for t in tasks if t["id"] <= cut] + [
        {"id": t["id"], "data": t["data"], "annotations": t["annotations"][:1]} for t in tasks if t["id"] > cut
    ], config)
    changed = parse_tasks([t for t in tasks if t["id"] > cut], config)
    merged = old.merge(changed)
    assert sorted(map(repr, merged.annotations)) == sorted(map(repr, parse_tasks(tasks, config).annotations))
    assert set(merged.tasks) == {t["id"] for t in tasks}


def test_recorded_export_from_label_studio():
    pulled = read_labelstudio_export(FIXTURES / "rich_export.json",
                                     label_config=(FIXTURES / "rich_config.xml").read_text())
    assert pulled.n_tasks == 2
    assert pulled.skipped == {"cancelled or skipped": 1, "empty result (no scored answer)": 1,
                              "answer outside the labeling config": 1}
    counts = {key: data.matrix.n_annotations for key, data in pulled.questions().items()}
    assert counts == {"topic:sports": 5, "topic:politics": 5, "topic:science": 5, "quality": 4, "better": 5,
                      "kind": 5}


def test_export_file_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_labelstudio_export(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a JSON file"):
        read_labelstudio_export(bad)
    bad.write_text(json.dumps({"a": 1}))
    with pytest.raises(InputError, match="list of tasks"):
        read_labelstudio_export(bad)
    bad.write_text(json.dumps([{"id": 1, "annotations": [annotation(1, region("t", "textarea", {"text": ["x"]}))]}]))
    with pytest.raises(InputError, match="no label_config"):
        read_labelstudio_export(bad)


def test_write_table_csv_and_json(tmp_path):
    rows = [{"worker": 3, "spam": 0.25, "confusion": [[1, 0], [0, 1]]}, {"worker": 4, "spam": float("nan")}]
    csv_path = write_table(rows, tmp_path / "raters.csv")
    assert csv_path.read_text().splitlines() == ["worker,spam,confusion", '3,0.25,"[[1,0],[0,1]]"', "4,,"]
    json_path = write_table(rows, tmp_path / "raters.json")
    assert json.loads(json_path.read_text()) == [{"worker": 3, "spam": 0.25, "confusion": [[1, 0], [0, 1]]},
                                                 {"worker": 4, "spam": None}]
    with pytest.raises(ValueError, match=r"csv or \.json"):
        write_table(rows, tmp_path / "raters.txt")


# ---------------------------------------------------------------------- webhook payloads
saves = st.lists(st.tuples(st.integers(1, 17), st.integers(1, 6), st.sampled_from(["neg", "neu", "pos"])),
                 max_size=25)


@settings(max_examples=80, deadline=None)
@given(triplets, saves)
def test_applying_webhook_annotations_equals_pulling_their_tasks(rows, saved):
    config = parse_label_config(CONFIG)
    workers = {w: WorkerInfo(w) for w in range(1, 7)}
    tasks: dict[int, dict] = {}
    for t, w, label in rows:
        tasks.setdefault(t, {"id": t, "data": {}, "annotations": []})["annotations"].append(
            annotation(w, region("sentiment", "choices", {"choices": [label]}), ident=t * 100 + w))
    before = parse_tasks(tasks.values(), config, workers=workers)
    payloads = []
    for k, (t, w, label) in enumerate(saved):  # each save creates or updates worker w's annotation on t
        if t not in tasks:
            continue
        body = annotation(w, region("sentiment", "choices", {"choices": [label]}), ident=t * 100 + w,
                          updated=f"2026-01-02T00:00:{k:02d}Z", task=t)
        kept = [a for a in tasks[t]["annotations"] if a["id"] != body["id"]]
        tasks[t]["annotations"] = [*kept, body]
        payloads.append(body)
    applied = before.with_annotations(payloads)
    assert applied is not None
    pulled = parse_tasks(tasks.values(), config, workers=workers)
    assert applied.annotations == pulled.annotations  # the same records, in the same order
    # then every other annotation deleted: as a pull after the deletions
    gone = {a["id"] for t in tasks.values() for a in t["annotations"][::2]}
    for t in tasks.values():
        t["annotations"] = [a for a in t["annotations"] if a["id"] not in gone]
    assert applied.without_annotations(gone).annotations == parse_tasks(
        tasks.values(), config, workers=workers).annotations
    assert applied.tasks == before.tasks and applied.watermark == before.watermark
    # a payload for a task the snapshot does not hold, or by an annotator it does not know: a pull
    assert before.with_annotations([annotation(1, region("sentiment", "choices", {"choices": ["neg"]}),
                                               ident=9999, task=99)]) is None
    if before.tasks:
        some = next(iter(before.tasks))
        assert before.with_annotations([annotation(7, region("sentiment", "choices", {"choices": ["neg"]}),
                                                   ident=9998, task=some)]) is None


def test_recorded_webhook_payloads_apply_like_a_pull():
    recorded = json.loads((FIXTURES / "webhook_payloads.json").read_text())["payloads"]
    created, updated, deleted = recorded
    assert [p["action"] for p in recorded] == ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"]
    config = parse_label_config(created["project"]["label_config"])
    task_id, worker = created["task"]["id"], created["annotation"]["completed_by"]
    choice = lambda c: region("label", "choices", {"choices": [c]})  # noqa: E731
    others = [annotation(2, choice("positive"), ident=1), annotation(3, choice("positive"), ident=2)]
    snapshot = parse_tasks([{"id": task_id, "data": created["task"]["data"], "annotations": others}], config,
                           workers={w: WorkerInfo(w) for w in (2, 3, worker)})
    after_create = snapshot.with_annotations([created["annotation"]])
    after_update = after_create.with_annotations([updated["annotation"]])
    answers = lambda p: {a.worker: a.answers["label"] for a in p.annotations}  # noqa: E731
    assert answers(after_create) == {2: "positive", 3: "positive", worker: "negative"}
    assert answers(after_update) == {2: "positive", 3: "positive", worker: "neutral"}
    # an older save arriving late leaves the later one in place
    assert answers(after_update.with_annotations([created["annotation"]])) == answers(after_update)
    # what a payload cannot decide alone
    cancelled = {**updated["annotation"], "was_cancelled": True}
    marked = {**updated["annotation"], "ground_truth": True}
    empty = {**updated["annotation"], "result": []}
    second = {**updated["annotation"], "id": 999}
    for body in (cancelled, marked, empty, second):
        assert after_create.with_annotations([body]) is None, body
    older = parse_tasks([{"id": task_id, "data": {}, "annotations": [
        annotation(2, choice("positive"), ident=1), annotation(2, choice("neutral"), ident=5)]}], config,
        workers={2: WorkerInfo(2), worker: WorkerInfo(worker)})
    assert older.skipped and older.with_annotations([created["annotation"]]) is None
    # the delete webhook names ids only: the annotation goes, the others stay
    after_delete = after_update.without_annotations(a["id"] for a in deleted["annotations"])
    assert answers(after_delete) == {2: "positive", 3: "positive"}
    assert after_delete.without_annotations([12345]) is after_delete  # never kept: nothing to do
    assert older.without_annotations([1]) is None
    gold = parse_tasks([{"id": task_id, "data": {}, "annotations": [
        annotation(2, choice("positive"), ident=1, ground_truth=True), annotation(3, choice("neutral"), ident=2)]}],
        config, workers={2: WorkerInfo(2), 3: WorkerInfo(3)})
    assert gold.without_annotations([2]) is None and gold.with_annotations([created["annotation"]]) is None
