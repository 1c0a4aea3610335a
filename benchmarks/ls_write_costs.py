"""What one Label Studio write costs: single requests against bulk calls, by size.

galton's write-back chooses between one request per prediction and Label Studio's bulk
calls (``LabelStudioConnector.write_predictions``, threshold ``BULK_MIN``). This script
measures the figures behind that choice on a real Label Studio (started for the run, from a
migrated template): a project of ``--tasks`` tasks x 4 raters, then for each size ``n``

* single requests, ``n`` at a time from 4 threads: create, update (PATCH), delete a
  prediction; list one task's predictions;
* bulk calls: import ``n`` predictions; the Data Manager action ``delete_tasks_predictions``
  on ``n`` tasks; list every prediction of the project; read ``n`` tasks (fields=all).

Run from the repository root::

    .venv/bin/python benchmarks/ls_write_costs.py                 # sizes 1, 5, 20, 100, 300
    .venv/bin/python benchmarks/ls_write_costs.py --sizes 1 20 --template /tmp/galton-bench-template

Results: ``benchmarks/results/ls_write_costs.json`` and ``.md``; seconds per call, with the
load average at start (the machine is often shared: compare rows of one run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _tables import md_table, secs, table  # noqa: E402
from connector import crowd_dataset, label_studio_server, load, machine, say, timed  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "ls_write_costs.json"


def one_size(connector: Any, pool: ThreadPoolExecutor, project_id: int, batch: list[int],
             result: list[dict[str, Any]]) -> dict[str, Any]:
    sdk = connector.sdk

    def create(task_id: int) -> Any:
        return sdk.predictions.create(task=task_id, result=result, score=0.5, model_version="galton-bench")

    def listing(task_id: int) -> Any:
        return connector._raw("GET", "api/predictions/", project_id=project_id, what="listing",
                              params={"task": task_id})

    row: dict[str, Any] = {"n": len(batch)}
    made, row["create_single"] = timed(lambda: list(pool.map(create, batch)))
    ids = [m.id for m in made]
    row["update_single"] = timed(lambda: list(pool.map(lambda i: sdk.predictions.update(id=i, score=0.7), ids)))[1]
    row["list_per_task"] = timed(lambda: list(pool.map(listing, batch)))[1]
    row["delete_single"] = timed(lambda: list(pool.map(lambda i: sdk.predictions.delete(id=i), ids)))[1]
    row["import_bulk"] = timed(lambda: sdk.projects.import_predictions(id=project_id, request=[
        {"task": t, "result": result, "score": 0.5, "model_version": "galton-bench"} for t in batch]))[1]
    row["read_tasks"] = timed(lambda: connector._raw(
        "GET", "api/tasks/", project_id=project_id, what="reading tasks",
        params={"project": project_id, "page": 1, "page_size": len(batch), "fields": "all",
                "query": json.dumps({"selectedItems": {"all": False, "included": batch}})}))[1]
    row["delete_action"] = timed(lambda: connector._delete_task_predictions(project_id, batch))[1]
    row["list_project"] = timed(lambda: connector.predictions(project_id))[1]
    return row


def measure(connector: Any, project_id: int, tasks: list[int], result: list[dict[str, Any]],
            sizes: Sequence[int]) -> list[dict[str, Any]]:
    if sum(sizes) > len(tasks):
        raise SystemExit(f"--tasks is too small for the sizes asked ({sum(sizes)} tasks needed)")
    rows = []
    offset = 0
    with ThreadPoolExecutor(4) as pool:
        for n in sizes:
            row = one_size(connector, pool, project_id, tasks[offset:offset + n], result)
            offset += n
            rows.append(row)
            say(f"  n={n}: " + ", ".join(f"{k} {secs(v)}" for k, v in row.items() if k != "n"))
    return rows


COLUMNS = [("create_single", "create x n"), ("update_single", "PATCH x n"), ("delete_single", "DELETE x n"),
           ("list_per_task", "list per task x n"), ("import_bulk", "import n"), ("delete_action", "delete action n"),
           ("read_tasks", "read n tasks"), ("list_project", "list project")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks in the project (default 1000)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 20, 100, 300])
    parser.add_argument("--template", help="keep a migrated Label Studio template here between runs")
    args = parser.parse_args(argv)
    from galton.connectors import LabelStudioConnector, parse_label_config, prediction_result, seed_crowd_project

    report: dict[str, Any] = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                              "machine": machine(), "load_average": load(), "tasks": args.tasks}
    with tempfile.TemporaryDirectory(prefix="galton-bench-costs-") as tmp, \
            label_studio_server(Path(tmp), Path(args.template) if args.template else None) as (url, token, _pid):
        connector = LabelStudioConnector(url, token, n_threads=4)
        dataset = crowd_dataset(args.tasks, 4, 3, 0)
        seeded = seed_crowd_project(connector, dataset, title="write costs")
        config = parse_label_config(seeded.label_config)
        result = list(prediction_result(config, {"label": str(dataset.encoding.class_names[0])}))
        tasks = sorted(seeded.task_of_item.values())
        say(f"project of {args.tasks} tasks x 4 raters; seconds per call:")
        report["rows"] = measure(connector, seeded.project_id, tasks, result, args.sizes)
        connector.close()
    headers = ["n"] + [title for _, title in COLUMNS]
    rows = [[r["n"]] + [secs(r[key]) for key, _ in COLUMNS] for r in report["rows"]]
    print(table(headers, rows, title="\nseconds per call (x n: n single requests from 4 threads)"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    md = [
        "# Label Studio write costs: single requests against bulk calls",
        "",
        f"Run {report['when']} on {report['machine'].get('cpu_count')} CPUs, Label Studio "
        f"{report['machine'].get('label_studio')}; load average at start {report['load_average']}; "
        f"a project of {args.tasks} tasks x 4 raters. Command: `benchmarks/ls_write_costs.py`.",
        "",
        "Seconds per call; `x n` columns are n single requests from 4 threads.",
        "",
        md_table(headers, rows),
        "",
    ]
    OUT.with_suffix(".md").write_text("\n".join(md))
    say(f"wrote {OUT} and {OUT.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
