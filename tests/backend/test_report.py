"""`galton report` and galton.backend.report on the bundled sample: content, escaping, self-containment, rendering.

The rendering test takes a screenshot with headless Chromium (Debian package ``chromium``) and
is skipped where it is not installed.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner
from markupsafe import escape

from galton.backend.cli import main
from galton.backend.offline import load_csv
from galton.backend.report import agreement_reports, build_report, gate_decisions, mislabeled_reports, task_url
from galton.backend.review import ReviewSettings, review_project
from galton.connectors import WorkerInfo, sample_path
from galton.quality import InputError, StatisticsWarning, agreement_report, gate_workers

from .conftest import CONFIG, task

pytest.importorskip("jinja2")
pytest.importorskip("matplotlib")

SAMPLE = sample_path("weather_cf")
FILES = ["--annotations", str(SAMPLE / "annotations.csv"), "--gold", str(SAMPLE / "gold.csv")]
LS_URL = "http://ls.example.org:8080"
EVIL = "<script>alert(1)</script>"


class Tables(HTMLParser):
    """Cell texts of every ``<table class=...>``, and every ``<img src>`` and ``<a href>``."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.links: list[str] = []
        self.headings: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("class", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag in ("h1", "h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())  # type: ignore[index]
            self._cell = None
        elif tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)


def parse(page: str) -> Tables:
    parser = Tables()
    parser.feed(page)
    return parser


def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def engine_agreement(pulled):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticsWarning)
        return agreement_report(pulled.questions()["label"].matrix, n_boot=1000, random_state=0)


@pytest.fixture(scope="module")
def reviewed():
    pulled = load_csv(SAMPLE / "annotations.csv", SAMPLE / "gold.csv")
    settings = ReviewSettings()
    return pulled, settings, review_project(pulled, settings)


@pytest.fixture(scope="module")
def agreement(reviewed):
    return agreement_reports(reviewed[0])


@pytest.fixture(scope="module")
def page(reviewed, agreement):
    pulled, settings, review = reviewed
    return build_report(pulled, review, agreement=agreement, gates=gate_decisions(pulled), settings=settings,
                        label_studio_url=LS_URL, project_id=7)


def test_sections_present(page):
    headings = parse(page).headings
    assert headings[:2] == ["galton quality report", "Question label"]
    assert {"Agreement", "Annotators, riskiest first"} <= set(headings)
    assert any(h.startswith("Flagged tasks (") for h in headings)
    assert "Training dynamics" not in headings  # no dynamics given
    assert 'alt="pairwise Cohen\'s kappa heatmap"' in page.replace("&#39;", "'")
    assert 'alt="consensus confidence histogram"' in page


def test_agreement_equals_the_engine(reviewed, page):
    pulled, _, _ = reviewed
    engine = engine_agreement(pulled)
    rows = {row[0]: row[1:] for row in parse(page).tables["agreement"][1:]}
    for name, interval in (("raw agreement", engine.raw_agreement), ("Fleiss' kappa", engine.fleiss_kappa),
                           ("Krippendorff's alpha", engine.krippendorff_alpha), ("Gwet's AC1", engine.gwet_ac1)):
        assert rows[name] == [f"{interval.estimate:.3f}", f"[{interval.low:.3f}, {interval.high:.3f}]", "1000"]
    assert f"overlap-weighted mean over all pairs: {engine.pairwise.mean_kappa:.3f}" in " ".join(page.split())


def test_raters_sorted_by_risk_with_gate_decisions(reviewed, page):
    pulled, _, review = reviewed
    table = parse(page).tables["raters"]
    header, rows = table[0], table[1:]
    assert header[:4] == ["annotator", "gate", "annotations", "spam prob."]
    assert len(rows) == 461
    spam = [float(row[3]) for row in rows]
    assert spam == sorted(spam, reverse=True) and spam[0] > spam[-1]
    assert [row[0] for row in rows] == [str(r["worker"]) for r in review.worker_rows]
    data = pulled.questions()["label"]
    gates = gate_workers(data.matrix, data.gold_codes())
    expected = {str(data.encoding.worker_ids[w]): str(d) for w, d in enumerate(gates.decision)}
    assert {row[0]: row[1] for row in rows} == expected
    assert "2 pass, 9 fail, 450 pending" in page


def test_flagged_tasks_link_to_label_studio(reviewed, page):
    pulled, _, review = reviewed
    parsed = parse(page)
    rows = parsed.tables["flagged"][1:]
    flagged = {task_id for task_id, entry in review.meta.items() if entry["flags"]}
    assert len(rows) == len(flagged) == 226
    assert {int(row[0]) for row in rows} == flagged
    assert sorted(parsed.links) == sorted(f"{LS_URL}/projects/7/data?task={t}" for t in flagged)
    first = rows[0]
    assert first[1] == str(pulled.item_of(int(first[0])))
    assert set(first[-1].split()) <= {"low_agreement", "low_confidence", "spam_suspect", "gold_mismatch",
                                      "single_annotation"}


def test_self_contained(page):
    parsed = parse(page)
    assert "<script" not in page.lower()
    assert len(parsed.images) == 2
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", page)
    urls = re.findall(r"(?:[a-z]+:)?//[^\s\"'<>)]+", text)
    assert urls and all(re.fullmatch(re.escape(LS_URL) + r"/projects/7/data\?task=\d+", u) for u in urls), urls
    attributes = re.findall(r"\s(?:src|href)\s*=\s*([\"']?)([^\"'\s>]*)", text)
    assert attributes and all(quote and (value == "data:" or value.startswith(LS_URL)) for quote, value in attributes)
    assert "url(" not in page and "@import" not in page


def test_no_links_without_url_or_project(reviewed, agreement):
    pulled, settings, review = reviewed
    assert parse(build_report(pulled, review, agreement=agreement, settings=settings)).links == []
    assert parse(build_report(pulled, review, agreement=agreement, label_studio_url=LS_URL)).links == []


@pytest.mark.parametrize("url", ["javascript:alert(1)//", "file:///etc/passwd", "ls.example.org", "http://"])
def test_only_http_links(reviewed, url):
    pulled, _, review = reviewed
    with pytest.raises(InputError, match="http"):
        build_report(pulled, review, label_studio_url=url, project_id=1)


def test_task_url_quotes_the_base():
    assert task_url("https://ls.example.org/a b/", 2, 5) == "https://ls.example.org/a%20b/projects/2/data?task=5"


def test_escapes_everything_it_shows(tmp_path):
    with (SAMPLE / "annotations.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    busiest = max({r["worker"] for r in rows}, key=lambda w: sum(r["worker"] == w for r in rows))
    evil_item = '<img src=x onerror="alert(2)">'
    first_item = rows[0]["item"]
    for row in rows:
        row["worker"] = {busiest: EVIL, rows[1]["worker"]: "$\\frac{a$ & co"}.get(row["worker"], row["worker"])
        row["item"] = evil_item if row["item"] == first_item else row["item"]
        row["label"] = {"0": '"><b>zero</b>'}.get(row["label"], row["label"])
    path = tmp_path / "evil.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["item", "worker", "label"])
        writer.writeheader()
        writer.writerows(rows)
    pulled = load_csv(path)
    other = rows[2]["worker"]
    pulled = dataclasses.replace(pulled, workers={other: WorkerInfo(1, email="<u>mail</u>@x.org", name="Ann <i>")})
    review = review_project(pulled, ReviewSettings(low_agreement=1.0))  # every task with disagreement is flagged
    page = build_report(pulled, review, title="<h1>Round 3</h1> & QA")
    lowered = page.lower()
    for raw in ("<script", "<img src=x", "<b>zero", "<u>mail", "<i>\"", "ann <i>", "<h1>round"):
        assert raw not in lowered
    assert escape(EVIL) in page  # in the rater table, escaped
    assert escape(evil_item) in page  # in the flagged tasks
    assert escape('"><b>zero</b>') in page  # a class name
    assert escape("Ann <i> <<u>mail</u>@x.org>") in page
    assert "&lt;h1&gt;Round 3&lt;/h1&gt; &amp; QA" in page
    assert escape("$\\frac{a$ & co") in page  # and matplotlib drew it as text, not mathtext


def test_dynamics_section(reviewed, agreement):
    pytest.importorskip("torch")
    pulled, settings, review = reviewed
    features = _features(pulled)
    dynamics = mislabeled_reports(pulled, review, features, epochs=3, methods=("datamaps", "aum"),
                                  combine=("datamaps", "aum"))
    page = build_report(pulled, review, agreement=agreement, dynamics=dynamics, settings=settings)
    parsed = parse(page)
    assert "Training dynamics" in parsed.headings
    assert 'alt="data map"' in page and 'alt="AUM histogram"' in page
    assert len(parsed.images) == 4 and all(src.startswith("data:image/png;base64,") for src in parsed.images)
    flagged = int(dynamics["label"].flags["combined"].sum())
    assert flagged and f"{flagged} of 300 tasks flagged by the combined ranking" in page
    assert "likely_mislabeled" in page
    with pytest.raises(InputError, match=r"expected \(300, d\)"):
        mislabeled_reports(pulled, review, features[:10])


def _features(pulled):
    """Per task the share of each label among its annotations, plus noise: rows in task id order."""
    data = pulled.questions()["label"]
    m = data.matrix
    shares = np.zeros((m.n_items, m.n_classes))
    np.add.at(shares, (m.items, m.labels), 1.0)
    shares /= shares.sum(axis=1, keepdims=True)
    by_item = dict(zip(data.encoding.item_ids, shares, strict=True))
    rng = np.random.default_rng(0)
    return np.hstack([[by_item[pulled.tasks[t].item] for t in sorted(pulled.tasks)], rng.normal(size=(m.n_items, 2))])


# ---------------------------------------------------------------------- the command
def test_cli_report_json(tmp_path, reviewed):
    out = tmp_path / "sub" / "report.html"
    result = runner().invoke(main, ["report", *FILES, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["report"] == str(out) and out.is_file()
    engine = engine_agreement(reviewed[0])
    assert payload["agreement"]["label"]["fleiss_kappa"] == engine.fleiss_kappa.to_dict()
    assert payload["gates"] == {"label": {"pass": 2, "fail": 9, "pending": 450}}
    assert payload["n_flagged_tasks"] == 226 and payload["links"] is False and payload["dynamics"] == []
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page and "Flagged tasks (226)" in page


def test_cli_report_with_features(tmp_path, reviewed):
    pytest.importorskip("torch")
    np.save(tmp_path / "features.npy", _features(reviewed[0]))
    out = tmp_path / "report.html"
    result = runner().invoke(main, ["report", *FILES, "--features", str(tmp_path / "features.npy"), "--epochs", "2",
                                    "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert f"wrote{out}" in "".join(result.stdout.split())  # rich may wrap the path anywhere
    assert 'alt="data map"' in out.read_text(encoding="utf-8")


def test_cli_report_export_links(tmp_path):
    export = [task(i, *(["pos", "pos", "neg"] if i % 3 else ["neg", "neg", "neg"])) for i in range(1, 13)]
    (tmp_path / "export.json").write_text(json.dumps(export), encoding="utf-8")
    (tmp_path / "config.xml").write_text(CONFIG, encoding="utf-8")
    out = tmp_path / "report.html"
    result = runner().invoke(main, ["report", "--export", str(tmp_path / "export.json"), "--label-config",
                                    str(tmp_path / "config.xml"), "--label-studio-url", "https://ls.example.org/ls/",
                                    "--link-project", "12", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["links"] is True
    links = parse(out.read_text(encoding="utf-8")).links
    assert links and all(re.fullmatch(r"https://ls\.example\.org/ls/projects/12/data\?task=\d+", u) for u in links)
    assert "https://ls.example.org/ls/projects/12/data?task=1" in links  # task 1: 2 of 3 say pos


@pytest.mark.parametrize(("extra", "message"), [
    (["--label-studio-url", LS_URL], "no task ids"),
    (["--features", "missing.npy"], "no such file"),
    (["--label-studio-url", "ftp://x"], None),
])
def test_cli_report_bad_input_exits_2(tmp_path, extra, message):
    args = ["report", *FILES, "--out", str(tmp_path / "r.html"), *extra]
    if extra[0] == "--label-studio-url" and message is None:  # a bad URL is rejected for a Label Studio input too
        args = ["report", "--export", str(tmp_path / "x.json"), *extra, "--link-project", "1",
                "--out", str(tmp_path / "r.html")]
        (tmp_path / "x.json").write_text(json.dumps([task(1, "pos", "neg")]), encoding="utf-8")
        message = "must be http"
    result = runner().invoke(main, args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_cli_report_features_wrong_shape_exits_2(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((5, 2)))
    result = runner().invoke(main, ["report", *FILES, "--features", str(tmp_path / "f.npy"),
                                    "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "expected (300, d)" in result.stderr


# ---------------------------------------------------------------------- it renders
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium)")
def test_renders_in_headless_chromium(tmp_path, page):
    from matplotlib.image import imread

    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1280,2400", report.as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = imread(shot)
    assert pixels.shape[:2] == (2400, 1280)
    rgb = (pixels[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3)
    colours = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
    assert len(np.unique(colours)) > 500  # text, plots and colour maps, not a blank or error page
    not_white = (rgb < 245).any(axis=1).mean()
    assert 0.05 < not_white < 0.9
    # the heatmap's greens and the histogram's blue made it to the screen
    assert ((rgb[:, 1] > 100) & (rgb[:, 0] < 60) & (rgb[:, 2] < 90)).sum() > 1000
    assert ((rgb[:, 2] > 150) & (rgb[:, 0] < 90) & (rgb[:, 1] > 100) & (rgb[:, 1] < 160)).sum() > 1000


# ---------------------------------------------------------------- disagreement between rater groups


def _planted_project(evil_group: str = "B"):
    from galton.backend.offline import crowd_project
    from galton.quality import AnnotationMatrix
    from galton.quality.perspectives import simulate_perspectives

    sim = simulate_perspectives(200, random_state=0)
    m = sim.matrix
    matrix, encoding = AnnotationMatrix.from_triplets(
        [f"i{i}" for i in m.items.tolist()], [f"w{w}" for w in m.workers.tolist()],
        [["neg", "pos"][c] for c in m.labels.tolist()], classes=["neg", "pos"])
    groups = {f"w{w}": (evil_group if g == "B" else g) for w, g in enumerate(sim.groups)}
    return sim, crowd_project(matrix, encoding), groups


def test_disagreement_section_lists_systematic_tasks_groups_and_jury():
    _, pulled, groups = _planted_project()
    settings = ReviewSettings(rater_groups=groups, jury_composition={"A": 6, "B": 6})
    review = review_project(pulled, settings)
    page = build_report(pulled, review, agreement={}, settings=settings, label_studio_url=LS_URL, project_id=7)
    parsed = parse(page)
    assert "Disagreement between rater groups" in parsed.headings
    systematic = {t: e for t, e in review.meta.items() if "systematic_disagreement" in e["flags"]}
    assert systematic
    rows = parsed.tables["systematic"]
    assert rows[0] == ["task", "item", "consensus", "score", "p-value", "A", "B", "jury verdict"]
    assert len(rows) - 1 == len(systematic)
    scores = [float(r[3]) for r in rows[1:]]
    assert scores == sorted(scores, reverse=True)  # highest score first
    for row in rows[1:]:
        entry = systematic[int(row[0])]
        d = entry["disagreement"]
        assert row[1] == str(pulled.item_of(int(row[0]))) and row[2] == entry["questions"]["label"]["label"]
        assert float(row[3]) == pytest.approx(d["score"], abs=5e-4)
        for cell, group in zip(row[5:7], ("A", "B"), strict=True):
            share = d["groups"][group]["distribution"]["pos"]
            assert f"pos {share:.2f} (n={d['groups'][group]['n']})" in cell
        assert row[7].startswith(d["jury"]["verdict"])
    assert f"{LS_URL}/projects/7/data?task={rows[1][0]}" in parsed.links
    # per-group label distribution over all annotations equals the raw counts
    overall = {r[0]: r[1:] for r in parsed.tables["group-distribution"][1:]}
    data = pulled.questions()["label"]
    m = data.matrix
    group_of = np.array([groups[w] for w in data.encoding.worker_ids])[m.workers]
    for group in ("A", "B"):
        mine = m.labels[group_of == group]
        assert int(overall[group][0]) == mine.size
        assert float(overall[group][2]) == pytest.approx((mine == 1).mean(), abs=5e-4)
    jury = review.summary["disagreement"]["label"]["jury"]
    assert "6 from A, 6 from B" in page and f"neg: {jury['verdicts']['neg']}" in page


def test_disagreement_section_without_groups_and_escaping():
    _, pulled, groups = _planted_project(evil_group=EVIL)
    page = build_report(pulled, review_project(pulled, ReviewSettings()), agreement={})
    assert "No rater groups are known for this question" in page
    assert "systematic" not in parse(page).tables
    settings = ReviewSettings(rater_groups=groups, jury_composition={EVIL: 2, "A": 2})
    page = build_report(pulled, review_project(pulled, settings), agreement={}, settings=settings)
    assert "<script" not in page.lower()
    assert escape(EVIL) in page
    assert parse(page).tables["systematic"][0][5:7] == sorted(["A", EVIL])  # groups in sorted order


def test_cli_report_with_rater_groups_shows_the_split(tmp_path):
    _, pulled, groups = _planted_project()
    rows = ["item,worker,label"] + [
        f"{pulled.tasks[a.task_id].item},{a.worker},{next(iter(a.answers.values()))}" for a in pulled.annotations]
    (tmp_path / "annotations.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "groups.csv").write_text("worker,group\n" + "".join(f"{w},{g}\n" for w, g in groups.items()),
                                         encoding="utf-8")
    out = tmp_path / "report.html"
    args = ["report", "--annotations", str(tmp_path / "annotations.csv"), "--rater-groups",
            str(tmp_path / "groups.csv"), "--jury", "A=3,B=3", "--out", str(out), "--json"]
    result = runner().invoke(main, args)
    assert result.exit_code == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    expected = build_review_with_groups(pulled, groups)
    n_systematic = sum("systematic_disagreement" in e["flags"] for e in expected.meta.values())
    assert n_systematic > 0 and f"{n_systematic} tasks with systematic disagreement" in page
    without = runner().invoke(main, ["report", "--annotations", str(tmp_path / "annotations.csv"), "--jury", "A=3",
                                     "--out", str(tmp_path / "r2.html")])
    assert without.exit_code != 0 and "--jury needs --rater-groups" in without.stderr


def build_review_with_groups(pulled, groups):
    from galton.backend.review import ReviewSettings, review_project

    return review_project(pulled, ReviewSettings(rater_groups=groups, jury_composition={"A": 3, "B": 3}))
