"""A self-contained HTML quality report: one file, images embedded, nothing fetched.

What a lead sends around after a labelling round, per question of the project:

* the agreement summary (raw agreement, Fleiss' kappa, Krippendorff's alpha, Gwet's AC1)
  with percentile bootstrap intervals (:func:`galton.quality.agreement_report`);
* a heatmap of pairwise Cohen's kappa between the most active annotators;
* the rater table in risk order (MACE spam probability, highest first) with the gold
  gate decision of each rater when gates were computed (:func:`galton.quality.gate_workers`);
* a histogram of the consensus confidence;
* the data map and the AUM histogram when training dynamics ran
  (:func:`galton.quality.dynamics.find_mislabeled`);
* disagreement between rater groups (when the review had a rater table): the tasks with
  systematic disagreement, each group's label distribution and, with a jury composition,
  the jury verdicts (:mod:`galton.quality.perspectives`);
* the flagged tasks, linked to the task in Label Studio when its URL and project are known.

Safety: the HTML is rendered by Jinja2 with autoescaping on, so every string that comes
from the data (item ids, annotator names and e-mails, class names, the title) is escaped;
the page holds no script, loads no external resource (plots are PNG ``data:`` URIs, styles
inline) and says so in a Content-Security-Policy. The only external references are the task
links, built from a URL whose scheme must be http or https.

matplotlib (the ``dynamics`` extra) and Jinja2 (the ``backend`` extra) are imported on call.
"""

from __future__ import annotations

import base64
import io
import math
import tempfile
import urllib.parse
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from galton.connectors import PulledProject
from galton.quality import (
    AgreementReport,
    GateDecisions,
    InputError,
    StatisticsWarning,
    agreement_report,
    gate_workers,
)

from .review import Review, ReviewSettings

if TYPE_CHECKING:  # pragma: no cover
    from galton.quality.dynamics import MislabeledReport

__all__ = ["agreement_reports", "build_report", "gate_decisions", "mislabeled_reports", "task_order",
           "task_url", "write_report"]

#: annotators shown in the pairwise kappa heatmap (the most active ones)
HEATMAP_WORKERS = 25
#: flagged tasks listed per question (the least confident first)
MAX_FLAGGED = 500


# ---------------------------------------------------------------------- engine runs the report shows
def agreement_reports(pulled: PulledProject, *, n_boot: int = 1000, confidence: float = 0.95,
                      random_state: int = 0) -> dict[str, AgreementReport]:
    """:func:`~galton.quality.agreement_report` per question (ordinal questions at the ordinal level)."""
    out = {}
    for key, data in pulled.questions().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StatisticsWarning)
            out[key] = agreement_report(data.matrix, level="ordinal" if data.question.ordinal else "nominal",
                                        n_boot=n_boot, confidence=confidence, random_state=random_state)
    return out


def gate_decisions(pulled: PulledProject, *, target: float = 0.8, confidence: float = 0.95, min_gold: int = 10,
                   random_state: int = 0) -> dict[str, GateDecisions]:
    """:func:`~galton.quality.gate_workers` for every question that has gold answers."""
    out = {}
    for key, data in pulled.questions().items():
        codes = data.gold_codes()
        if not (codes >= 0).any():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StatisticsWarning)
            out[key] = gate_workers(data.matrix, codes, target=target, confidence=confidence, min_gold=min_gold,
                                    random_state=random_state)
    return out


def task_order(pulled: PulledProject) -> list[int]:
    """The task ids in increasing order: row ``r`` of a ``--features`` matrix belongs to task ``task_order[r]``.

    For a CSV input the tasks are numbered 1..n in the order galton reads the items, which
    is the row order of ``galton score``'s ``consensus.csv``.
    """
    return sorted(pulled.tasks)


def mislabeled_reports(pulled: PulledProject, review: Review, features: Any, *, random_state: int = 0,
                       **options: Any) -> dict[str, MislabeledReport]:
    """Training dynamics on the consensus labels of each question.

    Parameters
    ----------
    features : array of float, shape (n_tasks, d)
        One row per task, in :func:`task_order`; the rows of a question's items are used.
    **options
        Passed to :func:`galton.quality.dynamics.find_mislabeled` (``epochs``, ``methods``, ...).
    """
    from galton.quality.dynamics import find_mislabeled

    features = np.asarray(features)
    order = task_order(pulled)
    if features.ndim != 2 or features.shape[0] != len(order):
        raise InputError(f"the features hold shape {features.shape}; expected ({len(order)}, d): one row per task "
                         "in increasing task id (for a CSV: the order of galton score's consensus.csv)")
    row_of = {pulled.tasks[task_id].item: row for row, task_id in enumerate(order)}
    out = {}
    for key, data in pulled.questions().items():
        result = review.results.get(key)
        if result is None:
            continue
        rows = [row_of[item] for item in data.encoding.item_ids]
        out[key] = find_mislabeled(features[rows], result.labels, n_classes=data.matrix.n_classes,
                                   random_state=random_state, **options)
    return out


# ---------------------------------------------------------------------- links
def _check_base_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InputError(f"the Label Studio URL must be http(s)://host[:port][/path], got {url!r}")
    path = urllib.parse.quote(parts.path.rstrip("/"), safe="/%~")
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))


def task_url(label_studio_url: str, project_id: int, task_id: int) -> str:
    """``{label_studio_url}/projects/{project_id}/data?task={task_id}`` (http and https URLs only).

    >>> task_url("https://ls.example.org/", 3, 17)
    'https://ls.example.org/projects/3/data?task=17'
    """
    return f"{_check_base_url(label_studio_url)}/projects/{int(project_id)}/data?task={int(task_id)}"


# ---------------------------------------------------------------------- plots
def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in a threaded server

    return Figure(figsize=(width, height), dpi=100)


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _kappa_heatmap(report: AgreementReport, names: Sequence[str]) -> tuple[str, int]:
    """PNG of the kappa matrix among the most active annotators; returns it and how many are shown."""
    import matplotlib

    overlap = report.pairwise.overlap
    activity = np.diag(overlap)
    chosen = np.argsort(-activity, kind="stable")[:HEATMAP_WORKERS]
    chosen = chosen[activity[chosen] > 0]
    kappa = report.pairwise.kappa[np.ix_(chosen, chosen)]
    n = len(chosen)
    side = min(6.0, max(3.5, 1.5 + 0.18 * n))
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(kappa), cmap=cmap, vmin=-1, vmax=1)
    labels = [names[int(w)] for w in chosen]
    with matplotlib.rc_context({"text.parse_math": False}):  # a '$' in a name is text, not mathtext
        ax.set_xticks(range(n), labels, rotation=90, fontsize=6 if n > 15 else 8)
        ax.set_yticks(range(n), labels, fontsize=6 if n > 15 else 8)
        if n <= 12:
            for i in range(n):
                for j in range(n):
                    if math.isfinite(kappa[i, j]):
                        ax.text(j, i, f"{kappa[i, j]:.2f}", ha="center", va="center", fontsize=7)
        fig.colorbar(image, ax=ax, label="Cohen's kappa (grey: no shared tasks)", shrink=0.8)
        return _png(fig), n


def _confidence_histogram(confidence: Sequence[float], threshold: float | None) -> str:
    import matplotlib

    fig = _figure(5.5, 3.6)
    ax = fig.add_subplot()
    values = np.asarray([c for c in confidence if c is not None and math.isfinite(c)], dtype=np.float64)
    ax.hist(values, bins=np.linspace(0, 1, 21), color="steelblue", edgecolor="white")
    if threshold is not None:
        ax.axvline(threshold, color="crimson", linestyle="--", label=f"low_confidence threshold {threshold:g}")
        ax.legend(fontsize=8, loc="upper left")
    with matplotlib.rc_context({"text.parse_math": False}):
        ax.set_xlabel("consensus confidence (posterior probability of the consensus label)")
        ax.set_ylabel("tasks")
    return _png(fig)


def _dynamics_plots(report: MislabeledReport) -> dict[str, str]:
    """The data map and AUM histogram of galton.quality.dynamics, as data URIs (those that apply)."""
    from galton.quality.dynamics import plot_aum_histogram, plot_data_map

    out = {}
    with tempfile.TemporaryDirectory(prefix="galton-report-") as folder:
        for name, plot in (("data_map", plot_data_map), ("aum", plot_aum_histogram)):
            try:
                path = plot(report, Path(folder) / f"{name}.png")
            except InputError:  # that method did not run
                continue
            out[name] = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return out


# ---------------------------------------------------------------------- the page
_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1f2328;
       margin: 0 auto; padding: 24px 32px; max-width: 1200px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid #d0d7de;
padding-bottom: 4px; } h3 { font-size: 15px; margin: 20px 0 6px; }
.meta { color: #59636e; margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.card b { display: block; font-size: 20px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; position: sticky; top: 0; }
td.l, th.l { text-align: left; }
.scroll { max-height: 480px; overflow: auto; border: 1px solid #d0d7de; border-radius: 6px; display: inline-block;
          max-width: 100%; }
.grid { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
figure { margin: 0; flex: 1 1 420px; max-width: 580px; } figcaption { color: #59636e; font-size: 12px; }
img { max-width: 100%; height: auto; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.pending { color: #9a6700; font-weight: 600; }
.flag { display: inline-block; background: #fff1e5; border: 1px solid #f0c39a; border-radius: 10px; padding: 0 6px;
        margin: 1px 2px; font-size: 12px; }
.note { color: #59636e; font-size: 12px; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="meta">{{ subtitle }}</p>
<div class="cards">
{% for name, value in cards %}<div class="card">{{ name }}<b>{{ value }}</b></div>
{% endfor %}</div>
{% for note in notes %}<p class="note">note: {{ note }}</p>
{% endfor %}
{% for q in questions %}
<section id="question-{{ loop.index }}">
<h2>Question {{ q.key }}</h2>
<p class="meta">classes: {{ q.classes | join(", ") }}</p>

<h3 id="agreement-{{ loop.index }}">Agreement</h3>
{% if q.agreement %}
<table class="agreement">
<tr><th class="l">coefficient</th><th>estimate</th><th>{{ q.agreement.confidence }} interval</th>
<th>bootstrap draws</th></tr>
{% for row in q.agreement.rows %}<tr><td class="l">{{ row.name }}</td><td>{{ row.estimate }}</td>
<td>[{{ row.low }}, {{ row.high }}]</td><td>{{ row.n_boot }}</td></tr>
{% endfor %}</table>
<p class="note">Percentile bootstrap over tasks; {{ q.agreement.size }}. Krippendorff's alpha at the
{{ q.agreement.level }} level.</p>
{% else %}<p class="note">not computed</p>{% endif %}

<div class="grid">
{% if q.heatmap %}<figure class="heatmap"><img alt="pairwise Cohen's kappa heatmap" src="{{ q.heatmap }}">
<figcaption>Pairwise Cohen's kappa among the {{ q.heatmap_n }} most active of {{ q.n_workers }} annotators
(overlap-weighted mean over all pairs: {{ q.mean_kappa }}).</figcaption></figure>{% endif %}
<figure class="confidence"><img alt="consensus confidence histogram" src="{{ q.histogram }}">
<figcaption>Consensus confidence of {{ q.n_tasks }} tasks ({{ method }}).</figcaption></figure>
</div>

<h3 id="raters-{{ loop.index }}">Annotators, riskiest first</h3>
<p class="note">Sorted by MACE spam probability (highest first).{% if q.gated %} Gate: target accuracy
{{ q.gate_params.target }} on gold at confidence {{ q.gate_params.confidence }}, at least
{{ q.gate_params.min_gold }} gold answers: {{ q.gate_counts }}.{% else %} No gate decisions (no gold answers for
this question).{% endif %}</p>
<div class="scroll"><table class="raters">
<tr><th class="l">annotator</th>{% if q.gated %}<th class="l">gate</th>{% endif %}<th>annotations</th>
<th>spam prob.</th><th>MACE competence</th><th>agreement</th><th>mean kappa</th><th>gold</th>
<th>gold accuracy [95% CI]</th></tr>
{% for r in q.raters %}<tr><td class="l">{{ r.name }}</td>{% if q.gated %}<td class="l {{ r.decision }}"
title="{{ r.reason }}">{{ r.decision }}</td>{% endif %}<td>{{ r.n_annotations }}</td><td>{{ r.spam }}</td>
<td>{{ r.competence }}</td><td>{{ r.agreement }}</td><td>{{ r.kappa }}</td><td>{{ r.gold }}</td>
<td>{{ r.accuracy }}</td></tr>
{% endfor %}</table></div>

{% if q.dynamics %}
<h3 id="dynamics-{{ loop.index }}">Training dynamics</h3>
<p class="note">A model trained on the consensus labels ({{ q.dynamics.summary }}).</p>
<div class="grid">
{% if q.dynamics.data_map %}<figure class="data-map"><img alt="data map" src="{{ q.dynamics.data_map }}">
<figcaption>Data map (Swayamdipta et al. 2020): confidence against variability; ringed tasks are flagged by the
combined ranking.</figcaption></figure>{% endif %}
{% if q.dynamics.aum %}<figure class="aum"><img alt="AUM histogram" src="{{ q.dynamics.aum }}">
<figcaption>Area under the margin (Pleiss et al. 2020) with the threshold samples' 99th percentile.</figcaption>
</figure>{% endif %}
</div>
{% endif %}

{% if q.perspectives %}{% set p = q.perspectives %}
<h3 id="disagreement-{{ loop.index }}">Disagreement between rater groups</h3>
{% if p.basis == "groups" %}
<p class="note">Rater groups {{ p.groups | join(", ") }} ({{ p.n_workers_grouped }} annotators with a group):
{{ p.kinds.systematic }} tasks with systematic disagreement (the groups are split), {{ p.kinds.noise }} with
noise, {{ p.kinds.agreement }} unanimous. Permutation test of the group labels within each task and a
shrunk Jensen-Shannon score (galton.quality.perspectives.disagreement_diagnosis).</p>
<table class="group-distribution">
<tr><th class="l">group</th><th>annotations</th>{% for c in q.classes %}<th>{{ c }}</th>{% endfor %}</tr>
{% for g in p.overall %}<tr><td class="l">{{ g.name }}</td><td>{{ g.n }}</td>{% for v in g.shares %}<td>{{ v }}</td>
{% endfor %}</tr>
{% endfor %}</table>
<p class="note">Label distribution of each group over all its annotations of this question.</p>
{% if p.jury %}<p class="jury">Jury {{ p.jury.composition }}: {% if p.jury.skipped %}{{ p.jury.skipped }}{% else %}
verdicts {{ p.jury.verdicts }} over {{ p.jury.n_samples }} sampled juries per task, drawn from each group's label
distribution; the jury verdict differs from the consensus on {{ p.jury.n_differs }} tasks.{% endif %}</p>{% endif %}
{% if p.rows %}
<div class="scroll"><table class="systematic">
<tr><th class="l">task</th><th class="l">item</th><th class="l">consensus</th><th>score</th><th>p-value</th>
{% for g in p.groups %}<th class="l">{{ g }}</th>{% endfor %}{% if p.jury and not p.jury.skipped %}
<th class="l">jury verdict</th>{% endif %}</tr>
{% for f in p.rows %}<tr><td class="l">{% if f.url %}<a href="{{ f.url }}">{{ f.task }}</a>{% else %}{{ f.task }}
{% endif %}</td><td class="l">{{ f.item }}</td><td class="l">{{ f.label }}</td><td>{{ f.score }}</td>
<td>{{ f.p_value }}</td>{% for cell in f.groups %}<td class="l">{{ cell }}</td>{% endfor %}
{% if p.jury and not p.jury.skipped %}<td class="l">{{ f.jury }}</td>{% endif %}</tr>
{% endfor %}</table></div>
{% if p.n_rows > p.rows | length %}<p class="note">The {{ p.rows | length }} highest scores of {{ p.n_rows }}
are listed (disagreement.csv of galton score has them all).</p>{% endif %}
{% else %}<p class="note">No task has systematic disagreement.</p>{% endif %}
{% else %}
<p class="note">No rater groups are known for this question, so systematic disagreement cannot be tested. From the
annotators' MACE competence: {{ p.kinds.noise }} tasks with noise (only unreliable raters dissent, or one reliable
rater), {{ p.kinds.contested }} contested (reliable raters disagree among themselves), {{ p.kinds.agreement }}
unanimous. Give a rater table (worker,group CSV: GALTON_RATER_GROUPS, galton score --rater-groups) to tell
perspectives from noise.</p>
{% endif %}
{% endif %}

<h3 id="flagged-{{ loop.index }}">Flagged tasks ({{ q.n_flagged }})</h3>
{% if q.flagged %}
<p class="note">Least confident first{% if q.n_flagged > q.flagged | length %}; the first {{ q.flagged | length }}
are listed (items.csv of galton score has them all){% endif %}.{% if not linked %} Links to Label Studio need its
URL and the project id.{% endif %}</p>
<div class="scroll"><table class="flagged">
<tr><th class="l">task</th><th class="l">item</th><th class="l">consensus</th><th>confidence</th><th>agreement</th>
<th>annotations</th><th class="l">gold</th><th class="l">flags</th></tr>
{% for f in q.flagged %}<tr><td class="l">{% if f.url %}<a href="{{ f.url }}">{{ f.task }}</a>{% else %}{{ f.task }}
{% endif %}</td><td class="l">{{ f.item }}</td><td class="l">{{ f.label }}</td><td>{{ f.confidence }}</td>
<td>{{ f.agreement }}</td><td>{{ f.n_annotations }}</td><td class="l">{{ f.gold }}</td>
<td class="l">{% for flag in f.flags %}<span class="flag">{{ flag }}</span> {% endfor %}</td></tr>
{% endfor %}</table></div>
{% else %}<p class="note">No task is flagged.</p>{% endif %}
</section>
{% endfor %}
<p class="note">Made by galton {{ version }} ({{ model_version }}). This file is self-contained: no scripts, no
external resources.</p>
</body>
</html>
"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float | np.floating):
        return f"{float(value):.{digits}f}"
    return str(value)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("galton")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "(source)"


def _agreement_rows(report: AgreementReport) -> dict[str, Any]:
    rows = []
    for name, interval in (("raw agreement", report.raw_agreement), ("Fleiss' kappa", report.fleiss_kappa),
                           ("Krippendorff's alpha", report.krippendorff_alpha), ("Gwet's AC1", report.gwet_ac1)):
        rows.append({"name": name, "estimate": _fmt(interval.estimate), "low": _fmt(interval.low),
                     "high": _fmt(interval.high), "n_boot": interval.n_boot - interval.n_failed})
    return {"rows": rows, "confidence": f"{report.raw_agreement.confidence:.0%}",
            "level": report.params.get("level", "nominal"),
            "size": f"{report.n_items} tasks, {report.n_workers} annotators, {report.n_annotations} annotations"}


def _rater_rows(pulled: PulledProject, review: Review, key: str,
                gates: GateDecisions | None, worker_ids: Sequence[Any]) -> list[dict[str, Any]]:
    by_worker = {}
    if gates is not None:
        for row in gates.to_rows():
            by_worker[worker_ids[row["worker"]]] = row
    rows = []
    for row in review.worker_rows:  # already in risk order (WorkerScores.to_rows)
        if row["question"] != key:
            continue
        info = pulled.workers.get(row["worker"])
        name = info.display if info is not None else str(row["worker"])
        if info is not None and info.email and info.email != name:
            name = f"{name} <{info.email}>"
        gate = by_worker.get(row["worker"], {})
        rows.append({
            "name": name, "decision": gate.get("decision", ""), "reason": gate.get("reason", ""),
            "n_annotations": row["n_annotations"], "spam": _fmt(row["spam_probability"]),
            "competence": _fmt(row["mace_competence"]), "agreement": _fmt(row["agreement"]),
            "kappa": _fmt(row["mean_kappa"]),
            "gold": f"{row['gold_correct']}/{row['gold_n']}" if row["gold_n"] else "-",
            "accuracy": (f"{_fmt(row['gold_accuracy'], 2)} [{_fmt(row['gold_low'], 2)}, {_fmt(row['gold_high'], 2)}]"
                         if row["gold_n"] else "-"),
        })
    return rows


def _perspectives_view(pulled: PulledProject, review: Review, key: str, classes: list[str], base_url: str | None,
                       project_id: int | None, limit: int) -> dict[str, Any] | None:
    """The "disagreement between rater groups" section of one question, from the review's meta and summary."""
    summary = review.summary.get("disagreement", {}).get(key)
    if not summary:
        return None
    view: dict[str, Any] = {"basis": summary["basis"], "groups": list(summary["groups"]),
                            "n_workers_grouped": summary["n_workers_grouped"], "kinds": summary["kinds"],
                            "jury": None, "rows": [], "n_rows": 0, "overall": []}
    if summary["basis"] != "groups":
        return view
    totals = {g: np.zeros(len(classes)) for g in view["groups"]}
    rows = []
    n_differs = 0
    for task_id in sorted(review.meta):
        answer = review.meta[task_id]["questions"].get(key)
        if answer is None or "disagreement" not in answer:
            continue
        d = answer["disagreement"]
        for g, cell in d["groups"].items():
            totals[g] += np.array([cell["n"] * (cell["distribution"][c] or 0.0) for c in classes])
        jury = d.get("jury")
        if jury is not None and jury["verdict"] != answer["label"]:
            n_differs += 1
        if d["kind"] != "systematic":
            continue
        cells = []
        for g in view["groups"]:
            cell = d["groups"].get(g)
            cells.append("-" if cell is None else " / ".join(
                f"{c} {_fmt(cell['distribution'][c], 2)}" for c in classes) + f" (n={cell['n']})")
        rows.append((-(d["score"] or 0.0), task_id, {
            "task": task_id, "item": str(pulled.item_of(task_id)), "label": answer["label"],
            "score": _fmt(d["score"]), "p_value": _fmt(d.get("p_value")), "groups": cells,
            "jury": "" if jury is None else f"{jury['verdict']} ({_fmt(jury['distribution'][jury['verdict']], 2)})",
            "url": f"{base_url}/projects/{int(project_id)}/data?task={int(task_id)}"
            if base_url is not None and project_id is not None else None}))
    rows.sort(key=lambda row: (row[0], row[1]))
    view["rows"] = [row[2] for row in rows[:limit]]
    view["n_rows"] = len(rows)
    for g in view["groups"]:
        n = float(totals[g].sum())
        view["overall"].append({"name": g, "n": round(n),
                                "shares": [_fmt(v / n if n else None) for v in totals[g]]})
    jury_summary = summary.get("jury")
    if jury_summary is not None:
        composition = ", ".join(f"{n} from {g}" for g, n in jury_summary["composition"].items())
        view["jury"] = {"composition": composition, "skipped": jury_summary.get("skipped"),
                        "n_samples": jury_summary.get("n_samples"),
                        "verdicts": ", ".join(f"{c}: {n}" for c, n in jury_summary.get("verdicts", {}).items()),
                        "n_differs": n_differs}
    return view


def build_report(pulled: PulledProject, review: Review, *, agreement: Mapping[str, AgreementReport] | None = None,
                 gates: Mapping[str, GateDecisions] | None = None,
                 dynamics: Mapping[str, MislabeledReport] | None = None, settings: ReviewSettings | None = None,
                 label_studio_url: str | None = None, project_id: int | None = None,
                 title: str = "galton quality report", max_flagged: int = MAX_FLAGGED) -> str:
    """The HTML report of one review (see the module doc); returns the page as a string.

    Parameters
    ----------
    pulled : PulledProject
        What was reviewed (from :mod:`galton.backend.offline` or a connector's ``pull``).
    review : Review
        :func:`galton.backend.review.review_project` of ``pulled``.
    agreement : mapping of question key to AgreementReport, optional
        Computed with :func:`agreement_reports` (1000 draws, seed 0) when omitted.
    gates : mapping of question key to GateDecisions, optional
        From :func:`gate_decisions`; the rater table gets a gate column where given.
    dynamics : mapping of question key to MislabeledReport, optional
        From :func:`mislabeled_reports`; adds the data map and AUM plots, and the tasks the
        combined ranking flags get the flag ``likely_mislabeled``.
    settings : ReviewSettings, optional
        The review's settings, shown in the header (and the confidence threshold in the histogram).
    label_studio_url, project_id
        Where the tasks live (``project_id`` defaults to ``pulled.project_id``): flagged tasks
        link to ``{label_studio_url}/projects/{project_id}/data?task={task_id}``. No links
        unless both are known.
    title : str
    max_flagged : int
        Flagged tasks listed per question (least confident first).

    Raises
    ------
    InputError
        ``label_studio_url`` is not an http(s) URL.
    """
    from jinja2 import Environment, StrictUndefined

    project_id = pulled.project_id if project_id is None else project_id
    base_url = _check_base_url(label_studio_url) if label_studio_url else None
    linked = base_url is not None and project_id is not None
    if agreement is None:
        agreement = agreement_reports(pulled, random_state=settings.random_state if settings else 0)
    gates = gates or {}
    dynamics = dynamics or {}
    task_of = pulled.task_of_item()
    questions = []
    for key, data in pulled.questions().items():
        if key not in review.results:
            continue
        names = [_worker_name(pulled, w) for w in data.encoding.worker_ids]
        report = agreement.get(key)
        heatmap, heatmap_n = _kappa_heatmap(report, names) if report is not None else (None, 0)
        gate = gates.get(key)
        mislabeled = dynamics.get(key)
        dynamic_flags: set[int] = set()
        dynamics_view = None
        if mislabeled is not None:
            combined = mislabeled.flags.get("combined")
            if combined is not None:
                dynamic_flags = {task_of[data.encoding.item_ids[i]] for i in np.flatnonzero(combined)}
            dynamics_view = {**_dynamics_plots(mislabeled), "summary": (
                f"{mislabeled.params.get('epochs', '?')} epochs, methods "
                f"{', '.join(m for m in mislabeled.scores if m != 'combined')}; {len(dynamic_flags)} of "
                f"{len(mislabeled.labels)} tasks flagged by the combined ranking")}
        confidence, flagged = [], []
        for item in data.encoding.item_ids:
            task_id = task_of[item]
            answer = review.meta.get(task_id, {}).get("questions", {}).get(key)
            if answer is None:
                continue
            confidence.append(answer["confidence"])
            flags = list(answer["flags"]) + (["likely_mislabeled"] if task_id in dynamic_flags else [])
            if flags:
                flagged.append((answer["confidence"] if answer["confidence"] is not None else -1.0, task_id, {
                    "task": task_id, "item": str(item), "label": answer["label"],
                    "confidence": _fmt(answer["confidence"]), "agreement": _fmt(answer["agreement"]),
                    "n_annotations": answer["n_annotations"], "gold": pulled.gold.get(key, {}).get(item, ""),
                    "flags": flags,
                    "url": f"{base_url}/projects/{int(project_id)}/data?task={int(task_id)}" if linked else None}))
        flagged.sort(key=lambda entry: (entry[0], -len(entry[2]["flags"]), entry[1]))
        questions.append({
            "key": key, "classes": [str(c) for c in data.encoding.class_names],
            "n_workers": data.matrix.n_workers, "n_tasks": len(confidence),
            "agreement": _agreement_rows(report) if report is not None else None,
            "heatmap": heatmap, "heatmap_n": heatmap_n,
            "mean_kappa": _fmt(report.pairwise.mean_kappa) if report is not None else "-",
            "histogram": _confidence_histogram(confidence, settings.low_confidence if settings else None),
            "raters": _rater_rows(pulled, review, key, gate, data.encoding.worker_ids),
            "gated": gate is not None, "gate_params": gate.params if gate is not None else {},
            "gate_counts": ", ".join(f"{n} {name}" for name, n in gate.counts().items()) if gate is not None else "",
            "dynamics": dynamics_view,
            "perspectives": _perspectives_view(pulled, review, key, [str(c) for c in data.encoding.class_names],
                                               base_url if linked else None, project_id, max_flagged),
            "n_flagged": len(flagged), "flagged": [entry[2] for entry in flagged[:max_flagged]],
        })
    summary = review.summary
    n_flagged = sum(1 for entry in review.meta.values() if entry["flags"])
    cards = [("tasks scored", f"{summary.get('n_scored_tasks', len(review.meta))} / {summary.get('n_tasks', '-')}"),
             ("annotations", summary.get("n_annotations", "-")), ("annotators", summary.get("n_workers", "-")),
             ("flagged tasks", n_flagged)]
    if len(questions) == 1 and questions[0]["agreement"]:
        cards.append(("Krippendorff's alpha", questions[0]["agreement"]["rows"][2]["estimate"]))
    subtitle = f"consensus: {settings.method if settings else review.model_version}"
    if settings is not None:
        subtitle += (f"; flags at agreement < {settings.low_agreement:g}, confidence < {settings.low_confidence:g}, "
                     f"spam probability > {settings.spam_probability:g}")
    if project_id is not None:
        subtitle += f"; Label Studio project {project_id}"
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=False)
    return env.from_string(_TEMPLATE).render(
        title=title, subtitle=subtitle, cards=cards, notes=list(pulled.notes), questions=questions, linked=linked,
        method=settings.method if settings else review.model_version, version=_version(),
        model_version=review.model_version)


def _worker_name(pulled: PulledProject, worker: Any) -> str:
    info = pulled.workers.get(worker)
    return info.display if info is not None else str(worker)


def write_report(path: str | Path, pulled: PulledProject, review: Review, **options: Any) -> Path:
    """:func:`build_report` written to ``path`` (UTF-8; parent folders created); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(pulled, review, **options), encoding="utf-8")
    return out
