"""``galton sync`` on a real Label Studio: the full first sync against a scheduled sync where 1% changed.

1. seed a simulated crowd (``--tasks`` x ``--raters``, every rater labels every task) into a
   fresh local Label Studio (SQLite) as real multi-rater annotations;
2. **full sync**: ``galton sync`` logic (:func:`galton.backend.sync.sync_project`) with an empty
   state: full export, MACE, one prediction and one ``meta`` PATCH per task, catch-up pull;
3. **no-change sync**: the same again (writes nothing);
4. **1% changed**: a new annotation on ``--changed`` share of the tasks (as one of their raters),
   then a sync: incremental pull, re-review, write back what changed materially.

Goal: the 1%-changed sync takes under 10% of the full first sync's time. Label Studio answers
each ``meta`` PATCH in about 0.2 s and has no bulk update, so the full sync of 10k tasks takes
about half an hour; ``--tasks 1000`` gives a first number in a few minutes.

    nice .venv/bin/python benchmarks/sync.py --tasks 10000      # the issue's size
    nice .venv/bin/python benchmarks/sync.py --tasks 1000       # quick

Writes benchmarks/results/sync.md and sync.json (``--out`` folder).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _tables import md_table, table  # noqa: E402
from connector import crowd_dataset, label_studio_server, load, machine, say, touch_tasks  # noqa: E402


def run(args: argparse.Namespace) -> dict[str, Any]:
    from galton.backend.review import ReviewSettings
    from galton.backend.settings import Settings
    from galton.backend.state import StateStore
    from galton.backend.sync import sync_project
    from galton.connectors import LabelStudioConnector, seed_crowd_project

    report: dict[str, Any] = {"options": vars(args) | {"out": str(args.out)}, "machine": machine(),
                              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "runs": []}
    with tempfile.TemporaryDirectory(prefix="galton-sync-bench-") as tmp, \
            label_studio_server(Path(tmp), args.template) as (url, token, _pid):
        dataset = crowd_dataset(args.tasks, args.raters, 3, args.seed)
        with LabelStudioConnector(url, token, n_threads=8) as connector:
            say(f"seeding {args.tasks} tasks x {args.raters} raters ...")
            started = time.perf_counter()
            seeded = seed_crowd_project(connector, dataset, title="galton sync bench")
            report["seed_s"] = round(time.perf_counter() - started, 1)
            settings = Settings(label_studio_url=url, label_studio_api_key=token, auth_off=True,
                                state_url=f"sqlite:///{Path(tmp) / 'state.sqlite3'}",
                                review=ReviewSettings(method="mace"))
            store = StateStore(settings.state_url)

            def timed_sync(name: str) -> dict[str, Any]:
                say(f"{name} ...")
                outcome = sync_project(settings, store, seeded.project_id)
                if outcome.status != "synced":
                    raise RuntimeError(f"{name}: {outcome.status}: {outcome.error}")
                row = {"run": name, "seconds": outcome.seconds, "full_pull": outcome.full_pull,
                       "n_pulled": outcome.n_pulled, "predictions_written": outcome.predictions_written,
                       "meta_written": outcome.meta_written, "catch_up": outcome.catch_up,
                       "load_average": load()}
                timings = [store.jobs(seeded.project_id, limit=50)]
                row["jobs"] = [{"id": j["id"], "reason": j["reason"], "detail": j["detail"]} for j in timings[0]
                               if j["id"] in outcome.jobs]
                say(f"  {outcome.seconds:.1f} s: pulled {outcome.n_pulled}, wrote {outcome.predictions_written} "
                    f"predictions and {outcome.meta_written} meta")
                report["runs"].append(row)
                return row

            full = timed_sync("full first sync")
            timed_sync("no-change sync")
            n_touch = max(1, round(args.changed * args.tasks))
            say(f"changing {n_touch} tasks (a new annotation each) ...")
            touch_tasks(connector, seeded, dataset, n_touch, args.seed + 1)
            changed = timed_sync(f"{args.changed:.0%} changed")
            store.close()
    ratio = changed["seconds"] / full["seconds"]
    report["goal"] = {"ratio": round(ratio, 4), "target": 0.10, "met": ratio < 0.10}
    return report


def render(report: dict[str, Any]) -> tuple[str, str]:
    headers = ["run", "seconds", "pull", "tasks pulled", "predictions written", "meta written", "load avg"]
    rows = [[r["run"], f"{r['seconds']:.1f}", "full" if r["full_pull"] else "incremental", r["n_pulled"],
             r["predictions_written"], r["meta_written"], f"{r['load_average'][0]:.1f}"] for r in report["runs"]]
    goal = report["goal"]
    verdict = (f"1%-changed sync / full first sync = {goal['ratio']:.3f} (goal < {goal['target']}: "
               f"{'met' if goal['met'] else 'NOT met'})")
    opts = report["options"]
    text = table(headers, rows, title=f"galton sync, {opts['tasks']} tasks x {opts['raters']} raters") + "\n" + verdict
    markdown = "\n".join([
        "# galton sync: full first sync vs a scheduled sync with 1% changed", "",
        f"Run {report['date']} with `benchmarks/sync.py --tasks {opts['tasks']} --raters {opts['raters']} "
        f"--changed {opts['changed']}` on a local Label Studio (SQLite) on this machine "
        f"({report['machine'].get('cpu_count', '?')} CPUs, shared; load averages in the table). "
        f"Seeding took {report['seed_s']} s. Method MACE; each sync is `galton sync`'s "
        "`sync_project` (review job under the project lock, catch-up pull after a large meta write).", "",
        md_table(headers, rows), "", f"**{verdict}.**", "",
        "The full sync is dominated by one `meta` PATCH per task (Label Studio has no bulk update, about "
        "0.2 s each); the 1%-changed sync pulls only the changed tasks, re-reviews the whole project "
        "in memory and writes the tasks whose prediction or meta moved materially.", ""])
    return text, markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--raters", type=int, default=5)
    parser.add_argument("--changed", type=float, default=0.01, help="share of tasks changed before the last sync")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--template", type=Path, default=None, help="keep a migrated Label Studio template here")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    report = run(args)
    text, markdown = render(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sync.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (args.out / "sync.md").write_text(markdown)
    print(f"wrote {args.out / 'sync.md'} and {args.out / 'sync.json'}")
    return 0 if report["goal"]["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
