"""`galton score` and `galton gate` on the bundled sample: exit codes, JSON, files."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from galton.backend.cli import main
from galton.connectors import load_sample, sample_path

SAMPLE = sample_path("weather_cf")
FILES = ["--annotations", str(SAMPLE / "annotations.csv"), "--gold", str(SAMPLE / "gold.csv")]


@pytest.fixture(scope="module")
def sample():
    return load_sample("weather_cf")


def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def rows(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_help_explains_commands():
    result = runner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "gate" in result.output and "score" in result.output
    result = runner().invoke(main, ["gate", "--help"])
    assert result.exit_code == 0 and "P(accuracy >= target)" in result.output


def test_score_json_and_files(tmp_path, sample):
    result = runner().invoke(main, ["score", *FILES, "--method", "dawid_skene", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["n_tasks"] == sample.matrix.n_items == 300
    assert summary["n_annotations"] == 1720 and summary["n_workers"] == 461 and summary["method"] == "dawid_skene"
    assert set(summary["files"]) == {"consensus", "items", "raters", "disagreement", "soft_labels", "summary"}
    consensus = rows(tmp_path / "consensus.csv")
    items = rows(tmp_path / "items.csv")
    raters = rows(tmp_path / "raters.csv")
    assert len(consensus) == len(items) == 300 and len(raters) == 461
    assert {row["item"] for row in consensus} == {str(i) for i in sample.encoding.item_ids}
    assert set(consensus[0]) == {"item", "question", "label", "confidence"}
    assert {"flags", "agreement", "gold"} <= set(items[0])
    flagged = sum(1 for row in items if row["flags"])
    assert flagged == summary["n_flagged_tasks"]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_score_human_output(tmp_path):
    result = runner().invoke(main, ["score", *FILES, "--method", "majority_vote", "--out", str(tmp_path)])
    assert result.exit_code == 0
    assert "tasks scored" in result.stdout and "300 of 300" in result.stdout


def test_gate_json(tmp_path, sample):
    result = runner().invoke(main, ["gate", *FILES, "--json", "--target", "0.8", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) >= {"question", "params", "counts", "workers", "write_back"}
    assert payload["params"]["target"] == 0.8 and payload["n_gold_items"] == 300
    assert sum(payload["counts"].values()) == len(payload["workers"]) == 461
    assert payload["counts"]["fail"] > 0 and payload["counts"]["pass"] > 0
    for row in payload["workers"]:
        assert row["decision"] in {"pass", "fail", "pending"}
        assert 0 <= row["gold_correct"] <= row["gold_n"]
        assert (row["more_gold_needed"] == 0) == (row["decision"] != "pending") or row["more_gold_needed"] is None
    assert len(rows(tmp_path / "gate.csv")) == 461
    assert len(json.loads((tmp_path / "gate.json").read_text())) == 461


def test_gate_fail_exit():
    result = runner().invoke(main, ["gate", *FILES, "--json", "--fail-exit"])
    assert result.exit_code == 3
    assert json.loads(result.stdout)["counts"]["fail"] > 0
    # a lenient target: nobody fails, exit 0
    result = runner().invoke(main, ["gate", *FILES, "--json", "--fail-exit", "--target", "0.05"])
    assert result.exit_code == 0 and json.loads(result.stdout)["counts"]["fail"] == 0


@pytest.mark.parametrize("args, message", [
    (["--annotations", "missing.csv"], "no such file"),
    ([], "give exactly one input"),
    (["--annotations", str(SAMPLE / "gold.csv")], "worker"),
    (["--annotations", str(SAMPLE / "annotations.csv"), "--export", "x.json"], "exactly one input"),
])
def test_bad_input_exit_2(args, message):
    for command in ("score", "gate"):
        result = runner().invoke(main, [command, *args, "--json"])
        assert result.exit_code == 2, (command, result.output)
        assert message in result.stderr and result.stdout == ""


def test_gate_without_gold_exit_2():
    result = runner().invoke(main, ["gate", "--annotations", str(SAMPLE / "annotations.csv")])
    assert result.exit_code == 2 and "gold" in result.stderr


def test_bad_option_exit_2():
    result = runner().invoke(main, ["gate", *FILES, "--confidence", "0.4"])
    assert result.exit_code == 2


def test_export_input(tmp_path):
    tasks = [{"id": t, "data": {"text": str(t)}, "annotations": [
        {"id": 10 * t + w, "completed_by": w, "result": [
            {"from_name": "label", "to_name": "text", "type": "choices",
             "value": {"choices": ["pos" if (t + (w == 3)) % 2 else "neg"]}}]} for w in (1, 2, 3)]}
        for t in range(1, 13)]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    gold = tmp_path / "gold.csv"
    gold.write_text("item,label\n" + "".join(f"{t},{'pos' if t % 2 else 'neg'}\n" for t in range(1, 13)))
    result = runner().invoke(main, ["gate", "--export", str(export), "--gold", str(gold), "--json",
                                    "--min-gold", "5", "--target", "0.7"])
    assert result.exit_code == 0, result.stderr
    decisions = {row["worker"]: row["decision"] for row in json.loads(result.stdout)["workers"]}
    assert decisions == {1: "pass", 2: "pass", 3: "fail"}
    result = runner().invoke(main, ["score", "--export", str(export), "--out", str(tmp_path / "s"), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["n_tasks"] == 12
