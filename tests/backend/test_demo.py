"""``make demo``: its summary numbers, the offline path, and (slow) the live demo end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from galton.backend import demo
from galton.connectors import load_sample
from galton.quality import mace, majority_vote

from .conftest import REPO


def test_summary_accuracy_is_galton_quality_without_gold():
    data = load_sample("weather_cf")
    gold = data.gold_codes()
    summary = demo.consensus_summary(data)
    assert summary["n_gold"] == 300
    for name, fit in (("MACE", mace(data.matrix, method="em", random_state=0)),
                      ("majority vote", majority_vote(data.matrix))):
        assert summary["accuracy"][name] == pytest.approx(float(np.mean(fit.labels == gold)))
    # a fit that saw gold would be clamped to it
    assert summary["accuracy"]["MACE"] < 0.95
    raters = summary["raters"]
    assert len(raters) == demo.TOP_RATERS
    assert all(r["n_annotations"] >= demo.MIN_LABELS for r in raters)
    spam = [r["spam_probability"] for r in raters]
    assert spam == sorted(spam, reverse=True)


def test_format_summary_and_flag_counts():
    flags = demo.count_flags({1: {"flags": ["spam_suspect", "low_agreement"]}, 2: {"flags": []}, 3: None,
                              4: {"flags": ["spam_suspect"]}})
    assert flags == {"spam_suspect": 2, "low_agreement": 1, "__tasks__": 2}
    text = demo.format_summary(demo.consensus_summary(load_sample("weather_cf")), flags=flags, n_tasks=4,
                               label_studio=0.5)
    assert "galton backend (MACE), in Label Studio" in text and "0.500" in text
    assert "flagged tasks (meta.galton.flags in Label Studio): 2 of 4" in text
    assert re.search(r"spam_suspect\s+2", text)
    assert demo.label_studio_accuracy({"a": "x", "b": "y"}, {"a": "x", "b": "x", "c": "x"}) == 0.5


def test_offline_demo_writes_results(tmp_path, capsys):
    assert demo.main(["--offline", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mace_em" in out and "Krippendorff" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dataset"] == "weather_cf" and len(summary["workers"]) == 461
    assert (tmp_path / "consensus.csv").read_text().count("\n") == 301


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of an exited parent is reaped by init soon; treat as gone
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_live_demo_end_to_end_twice(tmp_path):
    """The real thing: Label Studio, galton serve, the sample, the report; Ctrl-C stops both; a rerun works."""
    workdir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GALTON_", "LABEL_STUDIO_"))}
    command = [sys.executable, "-m", "galton.backend.demo", "--workdir", str(workdir)]

    # run 1: --keep, then SIGINT as Ctrl-C would send
    process = subprocess.Popen([*command, "--keep"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=REPO, env=env)
    lines = []
    deadline = time.monotonic() + 900
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "Ctrl-C stops both" in line or time.monotonic() > deadline:
            break
    out = "".join(lines)
    assert "Ctrl-C stops both" in out, out
    pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
    assert len(pids) == 2
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out + rest
    time.sleep(1)
    assert not any(_alive(pid) for pid in pids)
    assert "migrating a Label Studio data directory" in out
    assert "consensus accuracy vs gold" in out and "flagged tasks" in out and "top 5 raters" in out
    report = workdir / "report.html"
    assert report.is_file() and "/projects/1/data?task=" in report.read_text()
    token = json.loads((workdir / "label-studio-credentials.json").read_text())["token"]
    assert token not in out and token not in (workdir / "backend.log").read_text()
    accuracy = float(re.search(r"in Label Studio\s+([0-9.]+)", out).group(1))
    assert 0.8 < accuracy < 0.95

    # run 2: the template is reused, a fresh copy of it serves
    second = subprocess.run([*command, "--exit"], capture_output=True, text=True, timeout=900, cwd=REPO, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "migrating" not in second.stdout
    assert "consensus accuracy vs gold" in second.stdout


def test_mislabeled_summary_lists_flagged_tasks_most_suspicious_first():
    metas = {1: {"dynamics": {"flag": True, "score": 0.7, "label": "0", "region": "ambiguous"}},
             2: {"dynamics": {"flag": True, "score": 0.9, "label": "1", "region": "hard-to-learn"}},
             3: {"dynamics": {"flag": False, "score": 0.1, "label": "1"}}, 4: None}
    rows = demo.mislabeled_rows(metas, {1: "0", 2: "2", 3: "1"})
    assert [r["task"] for r in rows] == [2, 1]
    text = demo.format_mislabeled(rows, {"dynamics": {"status": "trained", "epochs": 5, "n_tasks": 3}})
    assert "2 tasks flagged likely_mislabeled, 1 of them with a consensus that differs from gold" in text
    assert re.search(r"2\s+1\s+2\s+0\.900\s+hard-to-learn", text)
    shares = demo.vote_shares(load_sample("weather_cf"))
    assert len(shares) == 300 and all(abs(sum(v) - 1) < 0.01 for v in shares.values())
