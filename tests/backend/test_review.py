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


# ---------------------------------------------------------------- disagreement between rater groups


@pytest.fixture(scope="module")
def planted():
    """A Label Studio project of simulate_perspectives: two rater groups split on 15% of the tasks."""
    from galton.quality.perspectives import simulate_perspectives

    sim = simulate_perspectives(400, random_state=0)
    m = sim.matrix
    config = CONFIG.format('<Choice value="neg"/><Choice value="pos"/>')
    tasks = {}
    for row, (i, w, c) in enumerate(zip(m.items.tolist(), m.workers.tolist(), m.labels.tolist(), strict=True)):
        entry = tasks.setdefault(i, {"id": 1000 + i, "data": {"item": f"i{i}"}, "annotations": []})
        entry["annotations"].append({"id": row + 1, "completed_by": w + 1, "result": [
            {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [["neg", "pos"][c]]}}]})
    pulled = parse_tasks(list(tasks.values()), config, item_field="item")
    groups = {str(w + 1): sim.groups[w] for w in range(m.n_workers)}  # by Label Studio user id
    return sim, pulled, groups


def test_systematic_disagreement_flag_and_meta_find_the_planted_slice(planted):
    from sklearn.metrics import roc_auc_score

    from galton.quality.perspectives import disagreement_diagnosis

    sim, pulled, groups = planted
    review = review_project(pulled, ReviewSettings(rater_groups=groups))
    task_of = pulled.task_of_item()
    entries = [review.meta[task_of[f"i{i}"]] for i in range(sim.matrix.n_items)]
    flagged = np.array(["systematic_disagreement" in e["flags"] for e in entries])
    scores = np.array([e["disagreement"]["score"] for e in entries])
    assert roc_auc_score(sim.in_slice, scores) >= 0.95
    assert flagged[sim.in_slice].mean() >= 0.5
    assert flagged[sim.is_noisy].mean() <= 0.05 and flagged[~sim.in_slice].mean() <= 0.03
    # the meta equals the engine's diagnosis on the same matrix
    data = pulled.questions()["label"]
    engine = disagreement_diagnosis(data.matrix, [groups[str(w)] for w in data.encoding.worker_ids], random_state=0)
    for code, item in enumerate(data.encoding.item_ids):
        entry = review.meta[task_of[item]]
        d = entry["questions"]["label"]["disagreement"]
        assert entry["disagreement"] == {**d, "question": "label"}  # one question: the task's is the question's
        assert d["kind"] == engine.kind_names()[code] and d["basis"] == "groups"
        assert ("systematic_disagreement" in entry["flags"]) == (d["kind"] == "systematic")
        assert d["score"] == pytest.approx(engine.systematic_score[code], abs=1e-4)
        assert d["p_value"] == pytest.approx(engine.p_value[code], abs=1e-4)
        for g, name in enumerate(engine.group_names):
            counts = engine.group_label_counts[code, g]
            cell = d["groups"][name]
            assert cell["n"] == counts.sum() and cell["majority"] == ["neg", "pos"][int(counts.argmax())]
            assert [cell["distribution"]["neg"], cell["distribution"]["pos"]] == pytest.approx(
                counts / counts.sum(), abs=1e-4)
    summary = review.summary["disagreement"]["label"]
    assert summary["groups"] == ["A", "B"] and summary["n_workers_grouped"] == sim.matrix.n_workers
    assert summary["kinds"]["systematic"] == int(flagged.sum()) == review.summary["flags"]["systematic_disagreement"]
    # a flagged slice task: the two groups hold different majorities
    i = int(np.flatnonzero(flagged & sim.in_slice)[0])
    cells = review.meta[task_of[f"i{i}"]]["disagreement"]["groups"]
    assert cells["A"]["majority"] != cells["B"]["majority"]


def test_jury_verdicts_in_meta_and_summary(planted):
    sim, pulled, groups = planted
    review = review_project(pulled, ReviewSettings(rater_groups=groups, jury_composition={"A": 6, "B": 6}))
    task_of = pulled.task_of_item()
    verdicts = []
    for i in range(sim.matrix.n_items):
        jury = review.meta[task_of[f"i{i}"]]["disagreement"]["jury"]
        assert sum(jury["distribution"].values()) == pytest.approx(1.0, abs=1e-3)
        assert jury["verdict"] == max(jury["distribution"], key=jury["distribution"].get)
        verdicts.append(jury)
    top = np.array([max(v["distribution"].values()) for v in verdicts])
    assert top[sim.in_slice].mean() < top[~sim.in_slice & ~sim.is_noisy].mean() - 0.2  # juries split on the slice
    summary = review.summary["disagreement"]["label"]["jury"]
    assert summary["composition"] == {"A": 6, "B": 6} and summary["n_samples"] == 200
    assert sum(summary["verdicts"].values()) == sim.matrix.n_items


def test_without_groups_the_diagnosis_uses_competence(planted):
    sim, pulled, _ = planted
    review = review_project(pulled, ReviewSettings())
    kinds = [e["disagreement"]["kind"] for e in review.meta.values()]
    assert set(kinds) <= {"agreement", "noise", "contested"}
    assert all("systematic_disagreement" not in e["flags"] for e in review.meta.values())
    summary = review.summary["disagreement"]["label"]
    assert summary["basis"] == "competence" and summary["groups"] == []
    assert sum(summary["kinds"].values()) == sim.matrix.n_items
    task_of = pulled.task_of_item()
    contested = np.array([review.meta[task_of[f"i{i}"]]["disagreement"]["kind"] == "contested"
                          for i in range(sim.matrix.n_items)])
    assert contested[sim.in_slice].mean() > 0.6  # a group split among competent raters is contested
    assert contested[~sim.in_slice & ~sim.is_noisy].mean() < 0.2  # one rater off is noise


def test_groups_match_by_email_and_unknown_workers_are_left_out(planted):
    import dataclasses

    from galton.connectors import WorkerInfo

    sim, pulled, groups = planted
    workers = {w: WorkerInfo(w, email=f"Rater{w}@Example.org") for w in range(1, sim.matrix.n_workers + 1)}
    by_email = {f"rater{w}@example.org": g for w, g in ((int(k), v) for k, v in groups.items()) if w != 1}
    review = review_project(dataclasses.replace(pulled, workers=workers), ReviewSettings(rater_groups=by_email))
    summary = review.summary["disagreement"]["label"]
    assert summary["basis"] == "groups" and summary["n_workers_grouped"] == sim.matrix.n_workers - 1


def test_model_version_changes_with_groups_and_jury(planted):
    import hashlib
    import json
    from dataclasses import asdict

    _, pulled, groups = planted
    base = model_version(pulled, ReviewSettings())
    # settings without groups hash as before the groups existed: no re-score on upgrade
    legacy = {k: v for k, v in asdict(ReviewSettings()).items() if k not in ("rater_groups", "jury_composition")}
    payload = json.dumps({"settings": legacy, "config": pulled.config.to_dict()}, sort_keys=True)
    assert base == f"galton-mace-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"
    grouped = model_version(pulled, ReviewSettings(rater_groups=groups))
    assert grouped != base
    assert model_version(pulled, ReviewSettings(rater_groups=dict(reversed(groups.items())))) == grouped  # order-free
    moved = {**groups, "1": "B" if groups["1"] == "A" else "A"}
    assert model_version(pulled, ReviewSettings(rater_groups=moved)) not in (base, grouped)
    jury = model_version(pulled, ReviewSettings(rater_groups=groups, jury_composition={"A": 6, "B": 6}))
    assert jury not in (base, grouped)
    assert review_project(pulled, ReviewSettings(rater_groups=groups)).meta[1000]["model_version"] == grouped


def test_rater_group_settings_are_validated(tmp_path):
    from galton.backend.review import parse_jury_composition, read_rater_groups
    from galton.backend.settings import Settings, SettingsError

    with pytest.raises(ValueError, match="needs rater_groups"):
        ReviewSettings(jury_composition={"A": 2})
    with pytest.raises(ValueError, match="groups no rater has"):
        ReviewSettings(rater_groups={"1": "A"}, jury_composition={"B": 2})
    with pytest.raises(ValueError, match="positive integer"):
        ReviewSettings(rater_groups={"1": "A"}, jury_composition={"A": 0})
    table = tmp_path / "raters.csv"
    table.write_text("worker,group,age\n1,A,30\nann@x.org,B,41\n3,,22\n", encoding="utf-8")
    assert read_rater_groups(table) == {"1": "A", "ann@x.org": "B"}
    assert read_rater_groups(table, column="age") == {"1": "30", "ann@x.org": "41", "3": "22"}
    assert parse_jury_composition(" A=6, B = 2 ") == {"A": 6, "B": 2}
    for bad in ("A", "A=0", "=3", "A=x"):
        with pytest.raises(ValueError, match="GROUP=COUNT"):
            parse_jury_composition(bad)
    clash = tmp_path / "clash.csv"
    clash.write_text("worker,group\n1,A\n1,B\n", encoding="utf-8")
    with pytest.raises(ValueError, match="two groups"):
        read_rater_groups(clash)
    with pytest.raises(ValueError, match="columns worker and team"):
        read_rater_groups(tmp_path / "clash.csv", column="team")
    env = {"GALTON_AUTH": "off", "GALTON_RATER_GROUPS": str(table), "GALTON_JURY": "A=1,B=1"}
    review = Settings.from_env(env).review
    assert dict(review.rater_groups) == {"1": "A", "ann@x.org": "B"} and dict(review.jury_composition) == {
        "A": 1, "B": 1}
    with pytest.raises(SettingsError, match="GALTON_RATER_GROUPS"):
        Settings.from_env({"GALTON_AUTH": "off", "GALTON_RATER_GROUPS": str(tmp_path / "missing.csv")})
    with pytest.raises(SettingsError, match="GALTON_JURY"):
        Settings.from_env({"GALTON_AUTH": "off", "GALTON_RATER_GROUPS": str(table), "GALTON_JURY": "C=1"})


# ---------------------------------------------------------------- soft labels (galton score --soft-labels)


def test_soft_label_rows_sum_to_one_and_match_the_votes(planted):
    from galton.backend.review import soft_label_rows

    sim, pulled, _ = planted
    rows = soft_label_rows(pulled)
    assert len(rows) == 2 * sim.matrix.n_items
    counts = sim.matrix.label_counts()
    by_item: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_item.setdefault(row["item"], {})[row["label"]] = row
    for i in range(sim.matrix.n_items):
        cells = by_item[f"i{i}"]
        assert [cells["neg"]["votes"], cells["pos"]["votes"]] == counts[i].tolist()
        assert cells["neg"]["share"] + cells["pos"]["share"] == pytest.approx(1.0, abs=1e-6)
        assert cells["pos"]["share"] == pytest.approx(counts[i, 1] / counts[i].sum(), abs=1e-6)
        assert cells["pos"]["task"] == 1000 + i
    smoothed = soft_label_rows(pulled, smoothing=1.0)
    assert smoothed[1]["share"] == pytest.approx((counts[0, 1] + 1) / (counts[0].sum() + 2), abs=1e-6)


def test_cli_score_writes_soft_labels_and_disagreement(tmp_path, planted):
    import csv
    import json

    from click.testing import CliRunner

    from galton.backend.cli import main

    sim, _, _ = planted
    m = sim.matrix
    annotations = tmp_path / "annotations.csv"
    with annotations.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "worker", "label"])
        for i, w, c in zip(m.items.tolist(), m.workers.tolist(), m.labels.tolist(), strict=True):
            writer.writerow([f"i{i}", f"w{w}", ["neg", "pos"][c]])
    raters = tmp_path / "raters.csv"
    raters.write_text("worker,group\n" + "".join(f"w{w},{g}\n" for w, g in enumerate(sim.groups)), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["score", "--annotations", str(annotations), "--rater-groups", str(raters),
                                       "--jury", "A=3,B=3", "--soft-labels", "both", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["rater_groups"] == {"n_workers": m.n_workers, "groups": ["A", "B"]}
    assert summary["flags"]["systematic_disagreement"] == summary["disagreement"]["label"]["kinds"]["systematic"] > 0
    counts = m.label_counts()
    with (out / "soft_labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * m.n_items
    shares: dict[str, float] = {}
    for row in rows:
        i = int(row["item"][1:])
        assert int(row["votes"]) == counts[i, ["neg", "pos"].index(row["label"])]
        shares[row["item"]] = shares.get(row["item"], 0.0) + float(row["share"])
    assert all(abs(total - 1.0) < 1e-6 for total in shares.values())
    records = json.loads((out / "soft_labels.json").read_text())
    assert len(records) == m.n_items and records[0]["classes"] == ["neg", "pos"]
    for record in records:
        i = int(record["item"][1:])
        assert record["votes"] == counts[i].tolist() and sum(record["soft_label"]) == pytest.approx(1.0, abs=1e-6)
    with (out / "disagreement.csv").open(newline="") as handle:
        diag = list(csv.DictReader(handle))
    assert len(diag) == m.n_items
    systematic = {row["item"] for row in diag if row["kind"] == "systematic"}
    assert len(systematic) == summary["flags"]["systematic_disagreement"]
    assert {json.loads(row["groups"]).keys() == {"A", "B"} for row in diag if row["item"] in systematic} == {True}
    none = CliRunner().invoke(main, ["score", "--annotations", str(annotations), "--soft-labels", "none",
                                     "--out", str(tmp_path / "plain"), "--json"])
    assert none.exit_code == 0 and not (tmp_path / "plain" / "soft_labels.csv").exists()
    bad = CliRunner().invoke(main, ["score", "--annotations", str(annotations), "--jury", "A=3",
                                    "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--jury needs --rater-groups" in bad.output
    unknown = CliRunner().invoke(main, ["score", "--annotations", str(annotations), "--rater-groups", str(raters),
                                        "--jury", "C=2", "--out", str(tmp_path / "bad2")])
    assert unknown.exit_code == 2 and "--rater-groups / --jury" in unknown.output and "'C'" in unknown.output
