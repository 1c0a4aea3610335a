"""review_project offline: consensus equals the engine's, flags follow their rules, versions are stable."""

from __future__ import annotations

import numpy as np
import pytest

from galton.backend.review import ReviewSettings, model_version, review_project
from galton.connectors import load_sample, parse_label_config, parse_tasks
from galton.quality import mace, majority_vote

CONFIG = ('<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
          '{}</Choices></View>')


def sample_tasks(n_items=None):
    data = load_sample("weather_cf")
    m, enc = data.matrix, data.encoding
    config = CONFIG.format("".join(f'<Choice value="{c}"/>' for c in enc.class_names))
    tasks = {}
    for row, (i, w, c) in enumerate(zip(m.items.tolist(), m.workers.tolist(), m.labels.tolist(), strict=True)):
        if n_items is not None and i >= n_items:
            continue
        task = tasks.setdefault(i, {"id": 1000 + i, "data": {"item": enc.item_ids[i]}, "annotations": []})
        task["annotations"].append({
            "id": row, "completed_by": w + 1, "lead_time": 2.0 + (row % 5),
            "created_at": f"2026-01-01T00:{row % 60:02d}:00Z",
            "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                        "value": {"choices": [str(enc.class_names[c])]}}],
        })
    return data, config, list(tasks.values())


@pytest.mark.parametrize(("method", "engine"), [
    ("mace", lambda m: mace(m, method="em", random_state=0)),
    ("majority_vote", majority_vote),
])
def test_consensus_and_scores_equal_the_engine_on_real_data(method, engine):
    data, config, tasks = sample_tasks()
    pulled = parse_tasks(tasks, config, item_field="item")
    review = review_project(pulled, ReviewSettings(method=method))
    expected = engine(data.matrix)
    want = dict(zip(data.encoding.item_ids, data.encoding.decode_labels(expected.labels), strict=True))
    task_of = pulled.task_of_item()
    assert len(review.predictions) == data.matrix.n_items
    for item, label in want.items():
        spec = review.predictions[task_of[item]]
        assert spec.result[0]["value"]["choices"] == [label]
        assert spec.score == pytest.approx(expected.confidence()[data.encoding.item_code(item)])
        assert review.meta[task_of[item]]["questions"]["label"]["label"] == label


def test_flags_follow_their_thresholds():
    _, config, tasks = sample_tasks()
    pulled = parse_tasks(tasks, config, item_field="item")
    settings = ReviewSettings(method="mace", low_agreement=0.6, low_confidence=0.7, spam_probability=0.5)
    review = review_project(pulled, settings)
    for entry in review.meta.values():
        q = entry["questions"]["label"]
        assert ("low_confidence" in q["flags"]) == (q["confidence"] < 0.7)
        if q["n_annotations"] < 2:
            assert "single_annotation" in q["flags"] and "low_agreement" not in q["flags"]
        else:
            assert ("low_agreement" in q["flags"]) == (q["agreement"] < 0.6)
        assert set(entry["flags"]) == set(q["flags"])
        assert sum(q["distribution"].values()) == pytest.approx(1.0, abs=1e-3)
    spam = {row["worker"]: row["spam_probability"] for row in review.worker_rows}
    suspects = {a.task_id for a in pulled.annotations if (spam[a.worker] or 0) > 0.5}
    flagged = {t for t, e in review.meta.items() if "spam_suspect" in e["flags"]}
    assert flagged == suspects
    assert review.summary["flags"]["spam_suspect"] == len(suspects)


def test_gold_mismatch_and_lead_times():
    data, config, tasks = sample_tasks(n_items=40)
    pulled = parse_tasks(tasks, config, item_field="item")
    consensus = review_project(pulled).meta
    task_of = pulled.task_of_item()
    item = next(iter(task_of))
    label = consensus[task_of[item]]["questions"]["label"]["label"]
    other = next(str(c) for c in data.encoding.class_names if str(c) != label)
    with_gold = parse_tasks(tasks, config, item_field="item", gold={"label": {item: other}})
    review = review_project(with_gold)
    entry = review.meta[task_of[item]]
    assert entry["questions"]["label"]["label"] == other  # gold is clamped
    assert "gold_mismatch" in entry["flags"]  # but the raters said something else
    rows = {row["worker"]: row for row in review.worker_rows}
    for worker, row in rows.items():
        mine = [a.lead_time for a in with_gold.annotations if a.worker == worker]
        assert row["median_lead_time_s"] == pytest.approx(float(np.median(mine)), abs=0.01)


def test_model_version_changes_exactly_with_method_options_or_questions():
    _, config, tasks = sample_tasks(n_items=30)
    pulled = parse_tasks(tasks, config, item_field="item")
    base = model_version(pulled, ReviewSettings())
    assert base.startswith("galton-mace-") and len(base) == len("galton-mace-") + 8
    fewer = parse_tasks(tasks[:10], config, item_field="item")
    assert model_version(fewer, ReviewSettings()) == base  # new annotations do not change it
    assert model_version(pulled, ReviewSettings(low_confidence=0.8)) != base
    assert model_version(pulled, ReviewSettings(method="dawid_skene")).startswith("galton-dawid-skene-")
    richer = parse_label_config(config.replace("</Choices>", '<Choice value="extra"/></Choices>'))
    assert model_version(parse_tasks(tasks, richer, item_field="item"), ReviewSettings()) != base


def test_settings_are_validated():
    with pytest.raises(ValueError, match="unknown consensus method"):
        ReviewSettings(method="best")
    with pytest.raises(ValueError, match=r"low_agreement must lie in \[0, 1\]"):
        ReviewSettings(low_agreement=1.5)
