"""The Label Studio connector against a real Label Studio server (the session fixture).

Round trip on real multi-rater data: import, pull, check the triplets equal the source
exactly, write consensus and meta back, read them from Label Studio, re-run and check that
nothing was written twice and nothing galton did not write was touched.
"""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest

from galton.backend.review import ReviewSettings, review_project
from galton.connectors import (
    GALTON_PREFIX,
    PlatformError,
    PredictionSpec,
    load_sample,
    parse_tasks,
    prediction_result,
    read_crowd_dataset,
    read_labelstudio_export,
    seed_crowd_project,
)
from galton.quality import AnnotationMatrix, mace
from tests.conftest import LABEL_STUDIO_TESTS, crowd_dataset_path

pytestmark = LABEL_STUDIO_TESTS


def source_triplets(dataset):
    m, enc = dataset.matrix, dataset.encoding
    return sorted(
        (str(enc.item_ids[i]), str(enc.worker_ids[w]), str(enc.class_names[c]))
        for i, w, c in zip(m.items.tolist(), m.workers.tolist(), m.labels.tolist(), strict=True)
    )


def pulled_triplets(pulled, seeded, key="label"):
    worker_of_user = seeded.worker_of_user
    data = pulled.questions()[key]
    m, enc = data.matrix, data.encoding
    return sorted(
        (str(enc.item_ids[i]), str(worker_of_user[enc.worker_ids[w]]), str(enc.class_names[c]))
        for i, w, c in zip(m.items.tolist(), m.workers.tolist(), m.labels.tolist(), strict=True)
    )


def read_texts(folder, items):
    wanted = set(items)
    with (folder / "texts.csv").open(newline="", encoding="utf-8") as handle:
        return {row["item"]: {"text": row["text"], "text_b": row["text_b"]}
                for row in csv.DictReader(handle) if row["item"] in wanted}


def subset(dataset, n_items):
    """The first n_items items of a dataset, as a CrowdDataset with the same class order."""
    from galton.connectors import CrowdDataset
    from galton.quality import AnnotationMatrix

    m, enc = dataset.matrix, dataset.encoding
    keep = m.items < n_items
    items = [enc.item_ids[i] for i in m.items[keep].tolist()]
    workers = [enc.worker_ids[w] for w in m.workers[keep].tolist()]
    labels = [enc.class_names[c] for c in m.labels[keep].tolist()]
    matrix, encoding = AnnotationMatrix.from_triplets(items, workers, labels, classes=enc.class_names)
    gold = {item: label for item, label in dataset.gold.items() if item in set(items)}
    return CrowdDataset(dataset.name, matrix, encoding, gold)


DATASETS = [pytest.param("weather_cf", id="weather_cf-bundled"), pytest.param("snow_rte", id="snow_rte-texts")]


@pytest.fixture(scope="module")
def connector(label_studio):
    with label_studio.connector(n_threads=4) as c:
        yield c


@pytest.mark.parametrize("name", DATASETS)
def test_round_trip_on_real_multi_rater_data(connector, name, tmp_path):
    if name == "weather_cf":
        dataset, texts = load_sample("weather_cf"), None
    else:
        folder = crowd_dataset_path(name)
        dataset = subset(read_crowd_dataset(folder), 300)
        texts = read_texts(folder, dataset.encoding.item_ids)
    seeded = seed_crowd_project(connector, dataset, title=f"round trip {name}", texts=texts)

    # a user's own meta on one task and another model's prediction on another: never touched
    first_task, second_task = list(seeded.task_of_item.values())[:2]
    connector.sdk.tasks.update(id=str(first_task), meta={"reviewer": "kim", "batch": 7})
    label0 = str(dataset.encoding.class_names[0])
    connector.sdk.predictions.create(task=second_task, model_version="someone-else-v1", score=0.5,
                                     result=list(prediction_result(parse_config(seeded), {"label": label0})))

    progress = []
    pulled = connector.pull(seeded.project_id, item_field="item", progress=lambda d, t: progress.append((d, t)))
    assert progress[-1] == (len(dataset.encoding.item_ids), len(dataset.encoding.item_ids))
    assert pulled.n_tasks == dataset.matrix.n_items
    assert pulled.skipped == {}
    assert pulled_triplets(pulled, seeded) == source_triplets(dataset)
    assert {pulled.workers[u].email for u in seeded.user_of_worker.values()} >= {
        f"{str(w).lower()}@raters.galton.invalid" for w in list(dataset.encoding.worker_ids)[:3]}

    review = review_project(pulled, ReviewSettings(method="mace"))
    # the consensus equals MACE on the source triplets themselves, coded in the pull's item and
    # worker order (Label Studio user ids are assigned in creation order, which threads vary, and
    # MACE's random start depends on the worker order)
    pulled_data = pulled.questions()["label"]
    worker_of_user = seeded.worker_of_user
    m, enc = dataset.matrix, dataset.encoding
    source, _ = AnnotationMatrix.from_triplets(
        [enc.item_ids[i] for i in m.items.tolist()], [enc.worker_ids[w] for w in m.workers.tolist()],
        [enc.class_names[c] for c in m.labels.tolist()], classes=enc.class_names,
        item_ids=list(pulled_data.encoding.item_ids),
        worker_ids=[worker_of_user[u] for u in pulled_data.encoding.worker_ids],
    )
    offline = mace(source, method="em", random_state=0)
    offline_labels = dict(zip(pulled_data.encoding.item_ids, pulled_data.encoding.decode_labels(offline.labels),
                              strict=True))
    first = connector.write_predictions(seeded.project_id, review.predictions, review.model_version)
    assert first.created == len(review.predictions) and first.updated == first.deleted == 0
    meta_summary = connector.write_meta(seeded.project_id, review.meta,
                                        current={t: r.meta for t, r in pulled.tasks.items()})
    assert meta_summary.updated == len(review.meta)

    # what landed in Label Studio
    mine = [p for p in connector.predictions(seeded.project_id) if p["model_version"].startswith(GALTON_PREFIX)]
    assert len(mine) == len(review.predictions)
    assert {p["task"] for p in mine} == set(review.predictions)
    item_of_task = {t: i for i, t in seeded.task_of_item.items()}
    for prediction in mine:
        item = item_of_task[prediction["task"]]
        assert prediction["result"][0]["value"]["choices"] == [offline_labels[item]]
        assert prediction["result"][0]["from_name"] == "label"
        assert prediction["model_version"] == review.model_version
        assert prediction["score"] == pytest.approx(review.predictions[prediction["task"]].score, abs=1e-4)
    kept = connector.sdk.tasks.get(id=str(first_task))
    assert kept.meta["reviewer"] == "kim" and kept.meta["batch"] == 7
    assert kept.meta["galton"]["questions"]["label"]["label"] == offline_labels[item_of_task[first_task]]
    assert set(kept.meta["galton"]) >= {"flags", "questions", "score", "model_version"}

    # a second run on a fresh pull writes nothing
    again = connector.pull(seeded.project_id, item_field="item")
    review_again = review_project(again, ReviewSettings(method="mace"))
    assert review_again.model_version == review.model_version
    second = connector.write_predictions(seeded.project_id, review_again.predictions, review_again.model_version)
    assert second.written == 0 and second.unchanged == len(review.predictions)
    meta_again = connector.write_meta(seeded.project_id, review_again.meta,
                                      current={t: r.meta for t, r in again.tasks.items()})
    assert meta_again.updated == 0
    everything = connector.predictions(seeded.project_id)
    assert len(everything) == len(review.predictions) + 1
    foreign = [p for p in everything if p["model_version"] == "someone-else-v1"]
    assert len(foreign) == 1 and foreign[0]["task"] == second_task

    # the JSON export file gives the same triplets as the API pull
    export = connector._raw("GET", f"api/projects/{seeded.project_id}/export", project_id=seeded.project_id,
                            what="export", params={"exportType": "JSON", "download_all_tasks": "true"}).json()
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    from_file = read_labelstudio_export(path, label_config=seeded.label_config, item_field="item")
    assert pulled_triplets(from_file, seeded) == source_triplets(dataset)
    inferred = read_labelstudio_export(path, item_field="item")  # without the config: classes inferred
    assert inferred.questions()["label"].matrix.n_annotations == dataset.matrix.n_annotations


def parse_config(seeded):
    from galton.connectors import parse_label_config

    return parse_label_config(seeded.label_config)


@pytest.mark.parametrize("n_tasks", [12, 30])  # up to BULK_MIN requests one by one; more in bulk
def test_stale_and_duplicate_galton_predictions_are_replaced(connector, n_tasks):
    dataset = subset(load_sample("weather_cf"), n_tasks)
    seeded = seed_crowd_project(connector, dataset, title=f"stale predictions {n_tasks}")
    config = parse_config(seeded)
    tasks = list(seeded.task_of_item.values())
    classes = [str(c) for c in dataset.encoding.class_names]
    # an old galton version on every task, and two copies on the first
    old = [{"task": t, "model_version": "galton-mace-00000000", "score": 0.1,
            "result": list(prediction_result(config, {"label": classes[0]}))} for t in tasks]
    # another model's prediction on the last two tasks (one of them with a duplicate galton
    # one too): those tasks are updated one prediction at a time, the rest replaced in bulk
    other = {"model_version": "someone-else-v2", "score": 0.5,
             "result": list(prediction_result(config, {"label": classes[0]}))}
    connector.sdk.projects.import_predictions(
        id=seeded.project_id, request=old + old[:1] + old[-1:] + [dict(other, task=t) for t in tasks[-2:]])
    foreign_before = {p["id"]: p["task"] for p in connector.predictions(seeded.project_id)
                      if p["model_version"] == "someone-else-v2"}
    wanted = {t: PredictionSpec(prediction_result(config, {"label": classes[1]}), 0.9) for t in tasks}
    summary = connector.write_predictions(seeded.project_id, wanted, "galton-mace-11111111")
    assert (summary.created, summary.updated, summary.deleted) == (0, len(tasks), 2)
    now = connector.predictions(seeded.project_id)
    assert {p["id"]: p["task"] for p in now if p["model_version"] == "someone-else-v2"} == foreign_before
    mine = [p for p in now if p["model_version"].startswith("galton-")]
    assert sorted(p["task"] for p in mine) == sorted(tasks)
    assert {p["model_version"] for p in mine} == {"galton-mace-11111111"}
    assert all(p["result"][0]["value"]["choices"] == [classes[1]] and p["score"] == pytest.approx(0.9)
               for p in mine)
    assert connector.write_predictions(seeded.project_id, wanted, "galton-mace-11111111").written == 0
    # an incremental pull lists what each task holds, ids included: a write given it reads
    # nothing more (Label Studio's export lists prediction ids only: unusable, so None)
    incremental = connector.pull(seeded.project_id, since="2000-01-01T00:00:00Z")
    held = {t: incremental.tasks[t].predictions for t in tasks}
    assert sorted(p["id"] for t in tasks for p in held[t]) == sorted(p["id"] for p in now)
    assert all(p["task"] == t for t in tasks for p in held[t])
    assert {t: r.predictions for t, r in connector.pull(seeded.project_id).tasks.items()} == dict.fromkeys(tasks)
    assert connector.write_predictions(seeded.project_id, wanted, "galton-mace-11111111", known=held).written == 0
    # deleting galton's predictions leaves the other model's
    gone = tasks[:n_tasks - 9] + tasks[-1:]
    assert connector.delete_galton_predictions(seeded.project_id, gone) == len(gone)
    left = connector.predictions(seeded.project_id)
    assert sorted(p["task"] for p in left if p["model_version"].startswith("galton-")) == sorted(
        tasks[n_tasks - 9:-1])
    assert {p["id"]: p["task"] for p in left if p["model_version"] == "someone-else-v2"} == foreign_before
    # each write says what its tasks hold afterwards (ids as Label Studio lists them), except
    # tasks given theirs by an import (it answers no ids)
    ids = lambda listing: {t: sorted(p["id"] for p in listing if p["task"] == t) for t in tasks}  # noqa: E731
    assert {t: sorted(p["id"] for p in summary.held[t]) for t in tasks} == ids(now)
    rewritten = connector.write_predictions(seeded.project_id, {t: wanted[t] for t in gone}, "galton-mace-11111111")
    assert rewritten.created == len(gone)
    listed = ids(connector.predictions(seeded.project_id))
    if len(gone) > connector.bulk_min:
        assert rewritten.held == {}
    else:
        assert {t: sorted(p["id"] for p in rewritten.held[t]) for t in gone} == {t: listed[t] for t in gone}
        assert all(p["result"] == list(wanted[t].result) for t in gone for p in rewritten.held[t]
                   if p["model_version"] == "galton-mace-11111111")
    with pytest.raises(ValueError, match="galton-"):
        connector.write_predictions(seeded.project_id, wanted, "mace-1")


RICH_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="multiple">
    <Choice value="sports"/><Choice value="politics"/><Choice value="science"/>
  </Choices>
  <Rating name="quality" toName="text" maxRating="4"/>
  <Pairwise name="better" toName="text"/>
  <Taxonomy name="kind" toName="text">
    <Choice value="animal"><Choice value="cat"/><Choice value="dog"/></Choice>
    <Choice value="plant"/>
  </Taxonomy>
  <TextArea name="note" toName="text"/>
</View>"""


def rich_result(topics, rating, side, path, note="n"):
    return [
        {"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": topics}},
        {"from_name": "quality", "to_name": "text", "type": "rating", "value": {"rating": rating}},
        {"from_name": "better", "to_name": "text", "type": "pairwise", "value": {"selected": side}},
        {"from_name": "kind", "to_name": "text", "type": "taxonomy", "value": {"taxonomy": [path]}},
        {"from_name": "note", "to_name": "text", "type": "textarea", "value": {"text": [note]}},
    ]


def test_every_classification_tag_and_the_skip_rules(connector):
    from galton.connectors._seed import ensure_users

    users = list(ensure_users(connector, [f"rich{i}@raters.galton.invalid" for i in range(3)]).values())
    project = connector.sdk.projects.create(title="rich config", label_config=RICH_CONFIG)
    a, b, c = users
    tasks = [
        {"data": {"text": "one"}, "annotations": [
            {"completed_by": a, "result": rich_result(["sports"], 4, "left", ["animal", "cat"])},
            {"completed_by": b, "result": rich_result(["sports", "science"], 3, "left", ["animal", "cat"])},
            {"completed_by": c, "result": rich_result([], 1, "right", ["plant"])},
            {"completed_by": c, "was_cancelled": True, "result": []},
        ]},
        {"data": {"text": "two"}, "annotations": [
            {"completed_by": a, "result": rich_result(["politics"], 2, "right", ["animal", "dog"])},
            {"completed_by": b, "result": [{"from_name": "note", "to_name": "text", "type": "textarea",
                                            "value": {"text": ["only a note"]}}]},
            {"completed_by": c, "result": rich_result(["politics"], 9, "right", ["animal", "dog"])},
        ]},
    ]
    connector.sdk.projects.import_tasks(id=project.id, request=tasks)
    pulled = connector.pull(project.id)
    questions = pulled.questions()
    assert set(questions) == {"topic:sports", "topic:politics", "topic:science", "quality", "better", "kind"}
    assert questions["quality"].encoding.class_names == ("1", "2", "3", "4")
    assert questions["kind"].encoding.class_names == ("animal / cat", "animal / dog", "plant")
    assert questions["better"].encoding.class_names == ("left", "right")
    assert questions["topic:science"].encoding.class_names == ("no", "yes")
    assert [q.tag for q in pulled.config.questions if q.key == "kind"] == ["Taxonomy"]
    assert ("TextArea", "note", "not a classification control") in pulled.config.unscored
    # 1 cancelled, 1 note-only (empty), 1 rating of 9 on a 4-star scale (outside the config)
    assert pulled.skipped == {"cancelled or skipped": 1, "empty result (no scored answer)": 1,
                              "answer outside the labeling config": 1}
    science = questions["topic:science"]
    # task one: 3 raters; task two: a and c (c's out-of-range rating is dropped, its other answers kept)
    assert science.matrix.n_annotations == 5
    assert sorted(science.encoding.decode_labels(science.matrix.labels)) == ["no", "no", "no", "no", "yes"]
    assert questions["quality"].matrix.n_annotations == 4
    assert any("not scored" in note for note in pulled.notes)

    review = review_project(pulled, ReviewSettings(method="majority_vote"))
    connector.write_predictions(project.id, review.predictions, review.model_version)
    landed = {p["task"]: p for p in connector.predictions(project.id)}
    one = min(landed)
    by_control = {r["from_name"]: r for r in landed[one]["result"]}
    assert by_control["topic"]["value"] == {"choices": ["sports"]}
    assert by_control["quality"]["value"]["rating"] in {1, 3, 4}
    assert by_control["better"]["value"] == {"selected": "left"}
    assert by_control["kind"]["value"] == {"taxonomy": [["animal", "cat"]]}
    assert "note" not in by_control


def test_incremental_pull_gold_marks_and_latest_annotation(connector):
    dataset = subset(load_sample("weather_cf"), 20)
    seeded = seed_crowd_project(connector, dataset, title="incremental")
    time.sleep(2.2)  # the watermark is one second before the pull (server clock, second resolution)
    full = connector.pull(seeded.project_id, item_field="item")
    assert full.gold == {}  # imported with ground_truth off
    time.sleep(1.2)  # the watermark has second resolution
    task = list(seeded.task_of_item.values())[3]
    item = next(i for i, t in seeded.task_of_item.items() if t == task)
    annotations = connector.sdk.annotations.list(id=task)
    target = annotations[0]
    classes = [str(cl) for cl in dataset.encoding.class_names]
    old_label = target.result[0]["value"]["choices"][0]
    new_label = next(cl for cl in classes if cl != old_label)
    worker = target.completed_by if isinstance(target.completed_by, int) else target.completed_by["id"]
    # the same rater submits again (kept: the latest), and one annotation is marked ground truth
    connector.sdk.annotations.create(id=task, completed_by=worker, result=[
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [new_label]}}])
    connector.sdk.annotations.update(id=annotations[-1].id, ground_truth=True)

    changed = connector.pull(seeded.project_id, since=full.watermark, item_field="item")
    assert set(changed.tasks) == {task}
    assert changed.skipped == {"older annotation by the same annotator (latest kept)": 1}
    merged = full.merge(changed)
    fresh = connector.pull(seeded.project_id, item_field="item")
    assert sorted(map(repr, merged.annotations)) == sorted(map(repr, fresh.annotations))
    answers = {a.worker: a.answers["label"] for a in fresh.annotations if a.task_id == task}
    assert answers[worker] == new_label
    gold_label = annotations[-1].result[0]["value"]["choices"][0]
    if annotations[-1].id == target.id:
        gold_label = old_label
    assert fresh.gold == {"label": {item: gold_label}}
    data = fresh.questions()["label"]
    assert (data.gold_codes() >= 0).sum() == 1


def test_errors_name_the_project_and_the_cause(label_studio, connector):
    with pytest.raises(PlatformError, match=r"project 987654.*404") as info:
        connector.pull(987654)
    assert info.value.status == 404 and not info.value.retryable
    from galton.backend.local_labelstudio import free_port
    from galton.connectors import LabelStudioConnector

    with LabelStudioConnector(label_studio.url, "not-the-token", max_retries=0) as bad, \
            pytest.raises(PlatformError, match="401") as info:
        bad.pull(1)
    assert label_studio.token not in str(info.value)
    assert "not-the-token" not in str(info.value)

    dead = LabelStudioConnector(f"http://127.0.0.1:{free_port()}", label_studio.token, max_retries=2, backoff=0.01)
    with pytest.raises(PlatformError, match="after 3 tries") as info:
        dead.pull(1)
    assert info.value.retryable and label_studio.token not in str(info.value)
    with pytest.raises(PlatformError, match="API key"):
        LabelStudioConnector(label_studio.url, "")


def test_parse_tasks_matches_label_studio_pull(connector):
    """The parser on the recorded export equals the live pull (a fast unit path, same data)."""
    dataset = subset(load_sample("weather_cf"), 15)
    seeded = seed_crowd_project(connector, dataset, title="recorded")
    export = connector._raw("GET", f"api/projects/{seeded.project_id}/export", project_id=seeded.project_id,
                            what="export", params={"exportType": "JSON", "download_all_tasks": "true"}).json()
    offline = parse_tasks(export, seeded.label_config, item_field="item")
    live = connector.pull(seeded.project_id, item_field="item")
    assert offline.annotations == live.annotations
    data = live.questions()["label"]
    np.testing.assert_array_equal(np.sort(data.matrix.labels), np.sort(dataset.matrix.labels))
