"""The ``galton`` command line.

``galton serve`` runs the Label Studio ML backend on waitress (a production WSGI server,
pure Python). ``galton score`` runs the engine offline on files, ``galton gate`` decides
pass / fail / pending for new raters from their gold answers, ``galton report`` writes a
self-contained HTML report, ``galton sync`` pulls, scores and writes back once or on a
schedule (galton.backend.sync).

Exit codes: 0 ok; 1 an unexpected error; 2 bad usage, configuration or input (the message
names the problem); 3 ``galton gate --fail-exit`` and at least one rater failed; 4 Label
Studio refused or could not be reached; 5 ``galton sync``: a project was skipped because
another run holds its lock.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import click

__all__ = ["main"]

log = logging.getLogger(__name__)
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_GATE_FAILED = 3
EXIT_PLATFORM = 4


# the consensus methods of galton.backend.review.METHODS (listed here so --help needs no numpy import)
_METHOD_NAMES = ("dawid_skene", "glad", "mace", "mace_vb", "majority_vote", "one_coin_dawid_skene", "wawa",
                 "weighted_vote")


def _configure_logging(level: str | int, tag: str = "") -> None:
    """Log lines with time, level and logger (``tag`` marks another process's, e.g. ``[jobs]``)."""
    number = level if isinstance(level, int) else getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=number, format=f"%(asctime)s %(levelname)s %(name)s{' ' + tag if tag else ''}: "
                                             "%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry full URLs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="galton", prog_name="galton")
def main() -> None:
    """galton: quality control for human-labelled data (consensus, rater scores, flags).

    Configuration comes from environment variables (see `galton serve --help`).
    """


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default $GALTON_HOST or 127.0.0.1; "
              "use 0.0.0.0 in a container).")
@click.option("--port", type=int, default=None, help="Port (default $GALTON_PORT or 9090).")
@click.option("--threads", type=int, default=None, help="HTTP request threads (default $GALTON_HTTP_THREADS or 8).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
def serve(host: str | None, port: int | None, threads: int | None, log_level: str) -> None:
    """Run the Label Studio ML backend (GET /health, POST /setup, /predict, /webhook).

    \b
    Environment:
      LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY   where galton pulls and writes back
      GALTON_STATE_URL                         sqlite:///.galton/backend.sqlite3 or a PostgreSQL URL
      GALTON_BASIC_AUTH_USER/_PASSWORD         basic auth Label Studio sends (ML backend settings)
      GALTON_WEBHOOK_SECRET                    value of the X-Galton-Secret header on webhooks
      GALTON_AUTH=off                          run without authentication (explicit)
      GALTON_METHOD, GALTON_WORKER_THREADS     consensus method, background job threads
      GALTON_JOB_PROCESS=off, GALTON_JOB_NICE  jobs in this process (default: a child process,
                                               at a CPU priority lower by GALTON_JOB_NICE=5)

    Connect it in Label Studio: Project > Settings > Model > Connect Model, URL of this
    server, "Use for interactive preannotations" off, basic auth as configured.
    """
    _configure_logging(log_level)
    try:
        from waitress import serve as waitress_serve

        from .app import create_app
        from .settings import Settings, SettingsError
        from .state import StateError
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        click.echo(f"galton serve needs the backend extra: pip install 'galton[backend]' ({error})", err=True)
        sys.exit(EXIT_CONFIG)
    try:
        from .config import CONFIG_ENV, DEFAULT_PATH, load_config, settings_for

        if os.environ.get(CONFIG_ENV, "").strip() or Path(DEFAULT_PATH).is_file():
            # galton.toml's top-level tables (label_studio, state, review, dynamics) under the environment
            settings = settings_for(load_config(), None, require_auth=True)
        else:
            settings = Settings.from_env()
        if host is not None or port is not None or threads is not None:
            settings = settings.with_(host=host or settings.host, port=settings.port if port is None else port,
                                      http_threads=threads or settings.http_threads)
        app = create_app(settings)
    except (SettingsError, StateError) as error:
        click.echo(f"galton serve: {error}", err=True)
        sys.exit(EXIT_CONFIG)
    log.info("galton backend on http://%s:%d (method %s, %d job threads, state %s)", settings.host, settings.port,
             settings.review.method, settings.worker_threads, app.extensions["galton"].store)
    from .worker import freeze_heap

    freeze_heap()  # what lives now lives as long as the server: no collector pauses for it
    waitress_serve(app, host=settings.host, port=settings.port, threads=settings.http_threads,
                   ident="galton", clear_untrusted_proxy_headers=True)


# ---------------------------------------------------------------------- score and gate
def _input_options(fn: Any) -> Any:
    """The input options shared by ``score`` and ``gate``."""
    options = [
        click.option("--annotations", "annotations", type=click.Path(dir_okay=False, path_type=Path),
                     help="CSV with item,worker,label columns (one row per annotation)."),
        click.option("--export", "export", type=click.Path(dir_okay=False, path_type=Path),
                     help="Label Studio JSON export (Export > JSON)."),
        click.option("--label-config", type=click.Path(dir_okay=False, path_type=Path),
                     help="The project's labeling config XML, for --export (default: inferred from the results)."),
        click.option("--project", type=int, help="Label Studio project id, read live from $LABEL_STUDIO_URL "
                     "with $LABEL_STUDIO_API_KEY."),
        click.option("--gold", type=click.Path(dir_okay=False, path_type=Path),
                     help="CSV with item,label columns: known answers (for an export or project: task ids). "
                     "Label Studio ground-truth marks are used too."),
        click.option("--question", help="Which question to use when the labeling config has several."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout, nothing else."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _console(as_json: bool) -> Any:
    from rich.console import Console

    # with --json, stdout carries only the JSON: progress and notes go to stderr
    return Console(stderr=True) if as_json else Console()


def _load(annotations: Path | None, export: Path | None, label_config: Path | None, project: int | None,
          gold: Path | None, question: str | None, console: Any) -> tuple[Any, Any]:
    """Read the input into a PulledProject; returns it with the connector (None for files)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from galton.connectors import LabelStudioConnector, read_gold_csv
    from galton.quality import InputError

    from .offline import load_csv, load_export, pick_question, with_gold

    given = [name for name, value in (("--annotations", annotations), ("--export", export),
                                      ("--project", project)) if value is not None]
    if len(given) != 1:
        raise InputError("give exactly one input: --annotations FILE.csv, --export FILE.json or --project ID"
                         + (f" (got {' and '.join(given)})" if given else ""))
    if label_config is not None and export is None:
        raise InputError("--label-config goes with --export")
    connector = None
    if annotations is not None:
        pulled = load_csv(annotations, gold)
        return pulled, None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        bar = progress.add_task("reading tasks", total=None)

        def advance(done: int, total: int | None) -> None:
            progress.update(bar, completed=done, total=total)

        if export is not None:
            pulled = load_export(export, label_config, progress=advance)
        else:
            url = os.environ.get("LABEL_STUDIO_URL", "")
            key = os.environ.get("LABEL_STUDIO_API_KEY", "")
            if not url:
                raise InputError("--project reads from Label Studio: set LABEL_STUDIO_URL (and LABEL_STUDIO_API_KEY)")
            connector = LabelStudioConnector(url, key)
            pulled = connector.pull(int(project), progress=advance)  # type: ignore[arg-type]
    if gold is not None:
        pulled = with_gold(pulled, read_gold_csv(gold), pick_question(pulled, question).question.key)
    return pulled, connector


def _load_and_review(annotations: Path | None, export: Path | None, label_config: Path | None, project: int | None,
                     gold: Path | None, question: str | None, settings: Any, console: Any) -> tuple[Any, Any]:
    """Read the input (only ``question`` when given) and review it: ``(pulled, review)`` for score and report."""
    from .review import review_project

    pulled, connector = _load(annotations, export, label_config, project, gold, question, console)
    if connector is not None:
        connector.close()
    if question is not None:
        from .offline import pick_question

        key = pick_question(pulled, question).question.key
        pulled = dataclasses.replace(pulled, config=dataclasses.replace(
            pulled.config, questions=tuple(q for q in pulled.config.questions if q.key == key)))
    with console.status(f"scoring {len(pulled.annotations)} annotations with {settings.method}"):
        review = review_project(pulled, settings)
    if not review.predictions:
        from galton.quality import InputError

        raise InputError("the input holds no scored answers (no choices, rating or pairwise annotations)")
    return pulled, review


def _run(fn: Any) -> Any:
    """Map galton's errors to exit codes and one-line messages (no traceback)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from galton.connectors import PlatformError
        from galton.quality import InputError

        name = click.get_current_context().info_name
        try:
            return fn(*args, **kwargs)
        except InputError as error:
            click.echo(f"galton {name}: {error}", err=True)
            sys.exit(EXIT_CONFIG)
        except PlatformError as error:
            click.echo(f"galton {name}: {error}", err=True)
            sys.exit(EXIT_PLATFORM)
        except OSError as error:
            click.echo(f"galton {name}: {error}", err=True)
            sys.exit(EXIT_ERROR)

    return wrapper


def _emit_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=1, default=str, allow_nan=False))


def _clean(value: Any) -> Any:
    """JSON-safe: nan/inf -> None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _cell(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _review_options(fn: Any) -> Any:
    """The consensus and flag options shared by ``score`` and ``report``."""
    options = [
        click.option("--method", default="mace", show_default=True, type=click.Choice(sorted(_METHOD_NAMES)),
                     help="Consensus method."),
        click.option("--low-agreement", type=click.FloatRange(0, 1), default=0.6, show_default=True,
                     help="Flag tasks whose raw agreement is below this."),
        click.option("--low-confidence", type=click.FloatRange(0, 1), default=0.7, show_default=True,
                     help="Flag tasks whose consensus confidence is below this."),
        click.option("--seed", type=int, default=0, show_default=True, help="Random state of the model fits."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _perspective_options(fn: Any) -> Any:
    fn = click.option("--jury", default=None, metavar="GROUP=N,...",
                      help="Jury composition, e.g. A=6,B=6: the verdict distribution of juries drawn from each "
                      "group's label distribution (needs --rater-groups; default $GALTON_JURY).")(fn)
    return click.option("--rater-groups", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Rater table CSV with worker,group columns (worker: Label Studio user id or e-mail, "
                        "or the CSV worker): diagnoses systematic disagreement between the groups (default "
                        "$GALTON_RATER_GROUPS).")(fn)


@main.command()
@_input_options
@_review_options
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("galton-score"),
              show_default=True, help="Folder for consensus.csv, raters.csv, items.csv and summary.json.")
@_perspective_options
@click.option("--soft-labels", "soft_format", type=click.Choice(["csv", "json", "both", "none"]), default="csv",
              show_default=True, help="Write the per-item label distribution (soft labels) as soft_labels.csv "
              "and/or soft_labels.json.")
@click.option("--soft-label-smoothing", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Pseudo-votes added to every class of every item in the soft labels.")
@_run
def score(annotations: Path | None, export: Path | None, label_config: Path | None, project: int | None,
          gold: Path | None, question: str | None, as_json: bool, method: str, out: Path, low_agreement: float,
          low_confidence: float, seed: int, rater_groups: Path | None = None, jury: str | None = None,
          soft_format: str = "csv", soft_label_smoothing: float = 0.0) -> None:
    """Score annotations offline: consensus, rater table, task flags and a summary.

    \b
    Input (one of):
      --annotations FILE.csv   item,worker,label rows (with --gold FILE.csv: item,label)
      --export FILE.json       a Label Studio JSON export (with --label-config FILE.xml)
      --project ID             a live project ($LABEL_STUDIO_URL, $LABEL_STUDIO_API_KEY)

    \b
    Writes to --out:
      consensus.csv   item, question, label, confidence
      items.csv       ... plus agreement, n_annotations, flags, gold, label distribution
      raters.csv      one row per annotator and question (gold accuracy, MACE spam probability, ...)
      disagreement.csv  per task and question: systematic / noise / agreement (contested without
                      --rater-groups), score, p-value, per-group label distributions, jury verdict
      soft_labels.csv item, task, question, label, votes, share (--soft-labels; shares sum to 1)
      summary.json    counts, flags, method, model version

    \b
    Flags: low_agreement, low_confidence, spam_suspect, gold_mismatch, single_annotation,
    systematic_disagreement (with --rater-groups).
    Example:
      galton score --annotations annotations.csv --gold gold.csv --method dawid_skene --out results/
      galton score --export project-12.json --rater-groups raters.csv --jury A=6,B=6 --soft-labels both
    """
    from galton.connectors import write_table

    from .offline import consensus_rows
    from .review import ReviewSettings

    console = _console(as_json)
    settings = ReviewSettings(method=method, low_agreement=low_agreement, low_confidence=low_confidence,
                              random_state=seed, **_perspective_settings(rater_groups, jury))
    pulled, review = _load_and_review(annotations, export, label_config, project, gold, question, settings, console)
    consensus, items = consensus_rows(pulled, review)
    files = {
        "consensus": str(write_table(consensus, out / "consensus.csv")),
        "items": str(write_table(items, out / "items.csv")),
        "raters": str(write_table(review.worker_rows, out / "raters.csv")),
        "disagreement": str(write_table(_disagreement_rows(pulled, review), out / "disagreement.csv")),
        **_write_soft_labels(pulled, out, soft_format, soft_label_smoothing),
    }
    settings_echo = dataclasses.asdict(settings)
    settings_echo["rater_groups"] = {"n_workers": len(settings.rater_groups),
                                     "groups": sorted({g for _, g in settings.rater_groups})}
    settings_echo["jury_composition"] = dict(settings.jury_composition)
    summary = _clean({**review.summary, "method": method, "project_id": pulled.project_id,
                      "settings": settings_echo, "notes": list(pulled.notes),
                      "n_flagged_tasks": sum(1 for entry in review.meta.values() if entry["flags"]),
                      "files": {**files, "summary": str(out / "summary.json")}})
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    if as_json:
        _emit_json(summary)
        return
    from rich.table import Table

    overview = Table(title=f"galton score ({review.model_version})", show_header=False)
    for name, value in (("tasks scored", f"{summary['n_scored_tasks']} of {summary['n_tasks']}"),
                        ("annotations", summary["n_annotations"]), ("annotators", summary["n_workers"]),
                        ("questions", ", ".join(summary["questions"])),
                        ("flagged tasks", summary["n_flagged_tasks"]),
                        *((f"  {flag}", count) for flag, count in sorted(summary["flags"].items())),
                        *((f"skipped: {why}", count) for why, count in summary["skipped"].items())):
        overview.add_row(str(name), str(value))
    console.print(overview)
    raters = Table(title="riskiest annotators (by MACE spam probability)")
    for column in ("annotator", "question", "annotations", "agreement", "gold acc.", "spam prob."):
        raters.add_column(column, justify="left" if column in ("annotator", "question") else "right")
    for row in review.worker_rows[:10]:
        raters.add_row(str(row.get("email") or row["worker"]), str(row["question"]), str(row["n_annotations"]),
                       _cell(row["agreement"]), _cell(row["gold_accuracy"]) if row["gold_n"] else "-",
                       _cell(row["spam_probability"]))
    console.print(raters)
    for note in pulled.notes:
        console.print(f"note: {note}")
    console.print(f"wrote {', '.join(files.values())} and {out / 'summary.json'}")


def _perspective_settings(rater_groups: Path | None, jury: str | None) -> dict[str, Any]:
    """``rater_groups`` and ``jury_composition`` for ReviewSettings from the options (or the environment)."""
    from galton.quality import InputError

    from .review import ReviewSettings, load_perspectives

    path = rater_groups if rater_groups is not None else (os.environ.get("GALTON_RATER_GROUPS", "").strip() or None)
    text = jury if jury is not None else (os.environ.get("GALTON_JURY", "").strip() or None)
    options = load_perspectives(path, text)
    if options["jury_composition"] and not options["rater_groups"]:
        raise InputError("--jury needs --rater-groups (the jurors are drawn per rater group)")
    try:
        ReviewSettings(**options)  # the one place that checks the jury against the groups
    except ValueError as error:
        raise InputError(f"--rater-groups / --jury: {error}") from None
    return options


def _disagreement_rows(pulled: Any, review: Any) -> list[dict[str, Any]]:
    """disagreement.csv: one row per task and question from ``meta["galton"]["questions"][q]["disagreement"]``."""
    rows = []
    for task_id in sorted(review.meta):
        item = pulled.item_of(task_id)
        for key, answer in review.meta[task_id]["questions"].items():
            d = answer.get("disagreement")
            if d is None:
                continue
            jury = d.get("jury") or {}
            rows.append({"item": item if isinstance(item, int | str) else str(item), "task": task_id,
                         "question": key, "kind": d["kind"], "basis": d["basis"], "score": d["score"],
                         "p_value": d.get("p_value"), "noise_score": d.get("noise_score"),
                         "groups": d["groups"], "jury_verdict": jury.get("verdict"),
                         "jury_distribution": jury.get("distribution")})
    return rows


def _write_soft_labels(pulled: Any, out: Path, soft_format: str, smoothing: float) -> dict[str, str]:
    """soft_labels.csv (long: one row per item, question and class) and/or .json (one record per item)."""
    from galton.connectors import write_table

    from .review import soft_label_rows

    if soft_format == "none":
        return {}
    rows = soft_label_rows(pulled, smoothing=smoothing)
    files = {}
    if soft_format in ("csv", "both"):
        files["soft_labels"] = str(write_table(rows, out / "soft_labels.csv"))
    if soft_format in ("json", "both"):
        records: dict[tuple[Any, str], dict[str, Any]] = {}
        for row in rows:
            record = records.setdefault((row["task"], row["question"]), {
                "item": row["item"], "task": row["task"], "question": row["question"], "classes": [], "votes": [],
                "soft_label": []})
            record["classes"].append(row["label"])
            record["votes"].append(row["votes"])
            record["soft_label"].append(row["share"])
        files["soft_labels_json"] = str(write_table(list(records.values()), out / "soft_labels.json"))
    return files


# Label Studio editions and where a gate decision can go (see README "galton gate"):
# Community: no annotator-level field, no pause API -> files only.
# Enterprise: POST /api/projects/{id}/members/{user}/pauses/ (reason ANNOTATOR_EVALUATION) pauses an annotator.
PAUSE_REASON = "ANNOTATOR_EVALUATION"


def _pause_failed(connector: Any, project_id: int, workers: list[Any], console: Any) -> dict[str, Any]:
    """Pause failed annotators in an Enterprise project; degrade to a note where the API is missing."""
    from galton.connectors import PlatformError

    paused, errors = [], []
    for worker in workers:
        try:
            # a connectors-level method would be the right home; this is the SDK's Enterprise call
            connector._call("pausing an annotator", project_id, lambda w=worker: connector.sdk.projects.pauses.create(
                project_pk=project_id, user_pk=int(w), reason=PAUSE_REASON,
                verbose_reason="galton gate: accuracy on gold tasks below the project's target"), max_retries=1)
            paused.append(worker)
        except PlatformError as error:
            if error.status in (403, 404, 405):
                note = (f"pausing annotators is a Label Studio Enterprise API (HTTP {error.status} here); "
                        "the decisions are in the output only")
                console.print(f"note: {note}")
                return {"paused": paused, "unavailable": note}
            errors.append(f"{worker}: {error}")
    return {"paused": paused, "errors": errors}


@main.command()
@_input_options
@click.option("--target", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Accuracy on gold a rater must reach (default: galton.toml's [gate] target, else 0.8).")
@click.option("--confidence", type=click.FloatRange(0.5, 1, min_open=True, max_open=True), default=None,
              help="Posterior probability needed to pass (accuracy >= target) or fail (<) (default: "
              "galton.toml, else 0.95).")
@click.option("--min-gold", type=click.IntRange(0), default=None,
              help="Gold answers required before any decision (default: galton.toml, else 10).")
@click.option("--prior", nargs=2, type=click.FloatRange(0, min_open=True), default=(1.0, 1.0), show_default=True,
              help="Beta prior pseudo-counts (a b) on accuracy.")
@click.option("--spam-threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="MACE spam probability from which an undecided rater is reported as a suspect.")
@click.option("--fail-on-spam", is_flag=True, help="Fail undecided raters whose spam probability reaches "
              "--spam-threshold (not covered by the simulated error rates).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write gate.csv and gate.json to this folder.")
@click.option("--pause-failed", is_flag=True, help="With --project: pause failed raters in the project "
              "(Label Studio Enterprise only; a note otherwise).")
@click.option("--fail-exit", is_flag=True, help="Exit with status 3 when any rater fails (for CI pipelines).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random state of the MACE fit.")
@_run
def gate(annotations: Path | None, export: Path | None, label_config: Path | None, project: int | None,
         gold: Path | None, question: str | None, as_json: bool, target: float | None, confidence: float | None,
         min_gold: int | None,
         prior: tuple[float, float], spam_threshold: float, fail_on_spam: bool, out: Path | None,
         pause_failed: bool, fail_exit: bool, seed: int) -> None:
    """Gate new raters on gold (honeypot) tasks: pass, fail or pending.

    After n >= --min-gold gold answers, s right, a rater's accuracy has the posterior
    Beta(a + s, b + n - s). The rater passes when P(accuracy >= target) >= confidence,
    fails when P(accuracy < target) >= confidence, and is pending otherwise, with about how
    many more gold tasks a decision needs (median under the posterior predictive). Run it
    as answers come in: clear raters are decided after a few tasks. MACE spam probability
    and agreement with co-raters are reported as supporting evidence.

    The error rate of this sequential rule is not 1 - confidence: benchmarks/results/gating.md
    gives it by planted accuracy. Inputs as for `galton score`; --gold is needed unless the
    export or project marks ground-truth annotations.

    \b
    Example:
      galton gate --annotations answers.csv --gold gold.csv --target 0.85 --fail-exit
    """
    from galton.connectors import write_table
    from galton.quality import StatisticsWarning, gate_workers

    from .config import ConfigError, load_config
    from .offline import pick_question, worker_display

    try:  # flags > galton.toml (the project's [projects.gate], else [gate]) > defaults
        targets = load_config().project(project).gate if project is not None else load_config().gate
    except ConfigError as error:
        from galton.quality import InputError

        raise InputError(str(error)) from None
    target = targets.target if target is None else target
    confidence = targets.confidence if confidence is None else confidence
    min_gold = targets.min_gold if min_gold is None else min_gold
    console = _console(as_json)
    pulled, connector = _load(annotations, export, label_config, project, gold, question, console)
    try:
        data = pick_question(pulled, question)
        codes = data.gold_codes()
        with console.status("fitting MACE for the supporting evidence"), warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", StatisticsWarning)
            decisions = gate_workers(data.matrix, codes, target=target, confidence=confidence, prior=prior,
                                     min_gold=min_gold, spam_threshold=spam_threshold, fail_on_spam=fail_on_spam,
                                     random_state=seed)
        rows = decisions.to_rows(data.encoding)
        for row in rows:
            row["name"] = worker_display(pulled, row["worker"])
        failed = [row["worker"] for row in rows if row["decision"] == "fail"]
        write_back: dict[str, Any] = {"files": []}
        if out is not None:
            write_back["files"] = [str(write_table(rows, out / "gate.csv")), str(write_table(rows, out / "gate.json"))]
        if pause_failed:
            if connector is None:
                from galton.quality import InputError

                raise InputError("--pause-failed needs --project (it pauses annotators in Label Studio)")
            write_back["labelstudio"] = _pause_failed(connector, int(project), failed, console)  # type: ignore
    finally:
        if connector is not None:
            connector.close()
    counts = decisions.counts()
    notes = [str(w.message) for w in seen]
    payload = _clean({"question": data.question.key, "params": decisions.params, "counts": counts,
                      "n_gold_items": int((codes >= 0).sum()), "workers": rows, "write_back": write_back,
                      "notes": notes})
    if as_json:
        _emit_json(payload)
    else:
        from rich.table import Table

        colour = {"pass": "green", "fail": "red", "pending": "yellow"}
        table = Table(title=f"galton gate: {data.question.key!r}, target {target}, confidence {confidence}, "
                            f"min {min_gold} gold")
        for column in ("annotator", "decision", "gold", "P(acc>=target)", "accuracy [95% CI]", "more gold",
                       "spam prob.", "agreement"):
            table.add_column(column, justify="left" if column in ("annotator", "decision") else "right")
        for row in rows:
            more = row["more_gold_needed"]
            table.add_row(row["name"], f"[{colour[row['decision']]}]{row['decision']}[/]",
                          f"{row['gold_correct']}/{row['gold_n']}", _cell(row["p_above_target"]),
                          f"{_cell(row['accuracy'], 2)} [{_cell(row['accuracy_low'], 2)}, "
                          f"{_cell(row['accuracy_high'], 2)}]",
                          "0" if row["decision"] != "pending" else (f"~{more}" if more is not None else ">500"),
                          _cell(row["spam_probability"]), _cell(row["agreement"]))
        console.print(table)
        console.print(f"{counts['pass']} pass, {counts['fail']} fail, {counts['pending']} pending "
                      f"({payload['n_gold_items']} gold tasks)")
        for note in notes:
            console.print(f"note: {note}")
        for path in write_back["files"]:
            console.print(f"wrote {path}")
    if fail_exit and counts["fail"]:
        sys.exit(EXIT_GATE_FAILED)


@main.command()
@_input_options
@_review_options
@click.option("--target", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8,
              show_default=True, help="Gate decisions: accuracy on gold a rater must reach.")
@click.option("--confidence", type=click.FloatRange(0.5, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Gate decisions: posterior probability needed to pass or fail.")
@click.option("--min-gold", type=click.IntRange(0), default=10, show_default=True,
              help="Gate decisions: gold answers required before any decision.")
@click.option("--features", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="FILE.npy, one row of floats per task in increasing task id (for --annotations: the row "
              "order of galton score's consensus.csv): runs training dynamics on the consensus labels "
              "(needs the torch extra).")
@click.option("--epochs", type=click.IntRange(1), default=20, show_default=True,
              help="Training epochs of the dynamics run (with --features).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=Path("galton-report.html"),
              show_default=True, help="The HTML file to write.")
@click.option("--label-studio-url", default=None, help="Base URL for task links (default with --project: "
              "$LABEL_STUDIO_URL). http or https only.")
@click.option("--link-project", type=int, default=None, help="Project id for task links of an --export "
              "(with --project: that project).")
@click.option("--title", default="galton quality report", show_default=True, help="Title of the report.")
@_perspective_options
@_run
def report(annotations: Path | None, export: Path | None, label_config: Path | None, project: int | None,
           gold: Path | None, question: str | None, as_json: bool, method: str, low_agreement: float,
           low_confidence: float, seed: int, target: float, confidence: float, min_gold: int,
           features: Path | None, epochs: int, out: Path, label_studio_url: str | None, link_project: int | None,
           title: str, rater_groups: Path | None = None, jury: str | None = None) -> None:
    """Write a self-contained HTML report (one file, plots embedded, no scripts).

    \b
    Per question:
      agreement        raw agreement, Fleiss' kappa, Krippendorff's alpha, Gwet's AC1 with 95% intervals
      pairwise kappa   heatmap of Cohen's kappa among the 25 most active annotators
      annotators       riskiest first (MACE spam probability), with gate decisions where there is gold
      confidence       histogram of the consensus confidence
      dynamics         data map and AUM histogram (with --features)
      disagreement     tasks where rater groups split, per-group distributions, jury verdicts
                       (with --rater-groups [--jury])
      flagged tasks    least confident first, linked to Label Studio (--label-studio-url, project id)

    Inputs and consensus options as for `galton score`; gate options as for `galton gate`.

    \b
    Example:
      galton report --export project-12.json --gold gold.csv --label-studio-url https://ls.example.org \\
                    --link-project 12 --out report.html
    """
    from galton.quality import InputError

    from .review import ReviewSettings

    try:
        import jinja2  # noqa: F401
        import matplotlib  # noqa: F401

        from . import report as reporting
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise InputError(f"galton report needs the backend and dynamics extras: "
                         f"pip install 'galton[backend,dynamics]' ({error})") from None
    console = _console(as_json)
    if label_studio_url is None and project is not None:
        label_studio_url = os.environ.get("LABEL_STUDIO_URL") or None
    if label_studio_url is not None and annotations is not None:
        raise InputError("--label-studio-url links Label Studio tasks; --annotations CSV input has no task ids "
                         "(use --export or --project)")
    if link_project is not None and project is not None and link_project != project:
        raise InputError(f"--link-project {link_project} differs from --project {project}")
    settings = ReviewSettings(method=method, low_agreement=low_agreement, low_confidence=low_confidence,
                              random_state=seed, **_perspective_settings(rater_groups, jury))
    pulled, review = _load_and_review(annotations, export, label_config, project, gold, question, settings, console)
    link_id = link_project if link_project is not None else (project if project is not None else pulled.project_id)
    with console.status("agreement with bootstrap intervals"):
        agreement = reporting.agreement_reports(pulled, random_state=seed)
    with console.status("gate decisions"):
        gates = reporting.gate_decisions(pulled, target=target, confidence=confidence, min_gold=min_gold,
                                         random_state=seed)
    dynamics = None
    if features is not None:
        import numpy as np

        if not features.is_file():
            raise InputError(f"{features}: no such file (--features, a .npy matrix)")
        try:
            matrix = np.load(features, allow_pickle=False)
        except ValueError as error:
            raise InputError(f"{features}: not a .npy matrix of numbers ({error})") from None
        try:
            with console.status(f"training dynamics ({epochs} epochs)"):
                dynamics = reporting.mislabeled_reports(pulled, review, matrix, random_state=seed, epochs=epochs)
        except ImportError as error:
            raise InputError(f"--features runs training dynamics, which needs the torch extra: "
                             f"pip install 'galton[torch,dynamics]' ({error})") from None
    with console.status("rendering the report"):
        path = reporting.write_report(out, pulled, review, agreement=agreement, gates=gates, dynamics=dynamics,
                                      settings=settings, label_studio_url=label_studio_url, project_id=link_id,
                                      title=title)
    payload = _clean({
        "report": str(path), "model_version": review.model_version, "questions": sorted(review.results),
        "n_flagged_tasks": sum(1 for entry in review.meta.values() if entry["flags"]),
        "agreement": {key: {name: getattr(value, name).to_dict() for name in
                            ("raw_agreement", "fleiss_kappa", "krippendorff_alpha", "gwet_ac1")}
                      for key, value in agreement.items()},
        "gates": {key: value.counts() for key, value in gates.items()},
        "dynamics": sorted(dynamics or {}), "links": bool(label_studio_url and link_id is not None),
        "notes": list(pulled.notes)})
    if as_json:
        _emit_json(payload)
        return
    for key, value in agreement.items():
        console.print(f"{key}: Krippendorff's alpha {_cell(value.krippendorff_alpha.estimate)} "
                      f"[{_cell(value.krippendorff_alpha.low)}, {_cell(value.krippendorff_alpha.high)}]"
                      + (f"; gate {gates[key].counts()}" if key in gates else ""))
    if not payload["links"]:
        console.print("note: no task links (give --label-studio-url and the project id)")
    console.print(f"wrote {path} ({payload['n_flagged_tasks']} flagged tasks)")


# ---------------------------------------------------------------------- sync
EXIT_LOCKED = 5


@main.command()
@click.option("--project", "projects", type=click.IntRange(1), multiple=True,
              help="Label Studio project id; repeat for several (default: every [[projects]] of galton.toml).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="galton.toml to read (default $GALTON_CONFIG, else ./galton.toml when present).")
@click.option("--every", default=None, help="Run on a schedule, e.g. 15m, 90s, 2h (default: once; "
              "[sync] every in galton.toml).")
@click.option("--wait", "wait", default=None, help="How long to wait for another run's lock on a project "
              "(e.g. 30s; default 0: report it as locked, exit code 5).")
@click.option("--method", default=None, type=click.Choice(sorted(_METHOD_NAMES)),
              help="Consensus method for every project (overrides $GALTON_METHOD and galton.toml).")
@click.option("--dynamics/--no-dynamics", "dynamics", default=None,
              help="Run training dynamics (overrides $GALTON_DYNAMICS and galton.toml).")
@click.option("--label-studio-url", default=None, help="Overrides $LABEL_STUDIO_URL and galton.toml.")
@click.option("--state-url", default=None, help="State database URL (overrides $GALTON_STATE_URL and galton.toml).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document per run on stdout, nothing else.")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
def sync(projects: tuple[int, ...], config_path: Path | None, every: str | None, wait: str | None,
         method: str | None, dynamics: bool | None, label_studio_url: str | None, state_url: str | None,
         as_json: bool, log_level: str) -> None:
    """Pull, score, (train dynamics) and write back, for one or many projects.

    Incremental: only tasks changed since the last run are pulled and only what changed
    materially is written (a full re-score when the labeling config or the method changes).
    A second run writes nothing; a run that dies half-way is continued by the next one. Runs
    of one project never overlap: a lock in the state database (with a lease) makes a second
    run wait (--wait) or stop with exit code 5.

    \b
    Precedence: flags > environment > galton.toml > defaults.
      LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY (or LABEL_STUDIO_API_KEY_FILE), GALTON_STATE_URL,
      GALTON_METHOD, GALTON_DYNAMICS, GALTON_CONFIG

    \b
    Exit codes: 0 synced; 1 unexpected error; 2 bad configuration; 4 Label Studio refused or
    could not be reached (or rejected the data) for a project; 5 a project was skipped because
    another run holds its lock.

    \b
    Examples:
      galton sync --project 12                       # once (cron, systemd timer)
      galton sync --project 12 --project 13 --every 15m
      galton sync --config /etc/galton/galton.toml --json
    """
    _configure_logging(log_level)
    try:
        from .config import ConfigError, load_config, parse_duration, settings_for
        from .settings import SettingsError
        from .state import StateError, StateStore
        from .sync import exit_code, run_every, sync_project
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        click.echo(f"galton sync needs the backend extra: pip install 'galton[backend]' ({error})", err=True)
        sys.exit(EXIT_CONFIG)
    console = _console(as_json)
    try:
        config = load_config(config_path)
        for warning in config.warnings:
            console.print(f"warning: {warning}")
        interval = parse_duration(every, name="--every") if every is not None else config.every_s
        wait_s = parse_duration(wait, name="--wait") if wait is not None else config.wait_s
        if interval is not None and interval < 1:
            raise ConfigError(f"--every must be at least 1 s, got {every!r}")
        ids = list(dict.fromkeys(projects)) or [p.id for p in config.projects]
        if not ids:
            raise ConfigError("no project to sync: pass --project ID or list [[projects]] in galton.toml")
        flags = {"method": method, "dynamics": dynamics, "label_studio_url": label_studio_url, "state_url": state_url}
        per_project = {pid: settings_for(config, pid, **flags) for pid in ids}
        missing = [pid for pid, s in per_project.items() if not s.can_write_back]
        if missing:
            raise ConfigError("set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (or LABEL_STUDIO_API_KEY_FILE, or "
                              "[label_studio] url and token_file in galton.toml): galton sync pulls and writes back")
        state_urls = {s.state_url for s in per_project.values()}
        store = StateStore(next(iter(state_urls)))
    except (ConfigError, SettingsError, StateError) as error:
        click.echo(f"galton sync: {error}", err=True)
        sys.exit(EXIT_CONFIG)

    def once() -> int:
        outcomes = [sync_project(per_project[pid], store, pid, wait_s=wait_s, lease_s=config.lease_s)
                    for pid in ids]
        code = exit_code(outcomes)
        if as_json:
            _emit_json(_clean({"exit_code": code, "projects": [o.to_dict() for o in outcomes]}))
        else:
            _print_sync(console, outcomes)
        return code

    if interval is None:
        code = once()
        store.close()
        sys.exit(code)
    import signal
    import threading

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if not as_json:
        console.print(f"galton sync: projects {', '.join(map(str, ids))} every {interval:g} s (Ctrl-C stops)")
    run_every(interval, once, stop)
    store.close()


def _print_sync(console: Any, outcomes: Any) -> None:
    from rich.table import Table

    colour = {"synced": "green", "locked": "yellow", "failed": "red"}
    table = Table(title="galton sync")
    for column in ("project", "status", "pull", "tasks", "predictions", "meta", "flagged", "dynamics", "seconds"):
        table.add_column(column, justify="left" if column in ("status", "pull", "dynamics") else "right")
    for o in outcomes:
        pull = "-" if o.full_pull is None else ("full" if o.full_pull else f"{o.n_pulled} changed")
        table.add_row(str(o.project_id), f"[{colour.get(o.status, 'white')}]{o.status}[/]", pull, str(o.n_tasks),
                      str(o.predictions_written + o.predictions_deleted), str(o.meta_written), str(o.n_flagged),
                      str(o.dynamics.get("status", "off")).split(":")[0], f"{o.seconds:.1f}")
    console.print(table)
    for o in outcomes:
        if o.error:
            console.print(f"project {o.project_id}: {o.error}")
        elif o.status == "synced" and o.n_written == 0:
            console.print(f"project {o.project_id}: nothing changed, nothing written")


if __name__ == "__main__":  # pragma: no cover
    main()
