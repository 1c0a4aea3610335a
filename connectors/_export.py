"""Rater tables and other results as files: CSV for spreadsheets, JSON for machines.

Label Studio's community edition has no place for per-annotator scores (users carry only
names, e-mail and phone; there is no custom user field and no annotator-level metadata API),
so galton always writes the rater table as a file, and puts per-task signals into
``task.meta``. The Enterprise edition's member APIs are out of scope here.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_table"]


def _cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, separators=(",", ":"))
    return value


def write_table(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write rows (dicts) as ``.csv`` or ``.json`` (by the suffix); returns the path.

    Columns are the union of the rows' keys in first-seen order; in CSV, nested values are
    written as JSON and missing or non-finite numbers as empty cells. The file is written
    to a temporary name and renamed, so a reader never sees half a table.

    >>> import tempfile, pathlib
    >>> out = write_table([{"worker": 7, "spam": 0.1}], pathlib.Path(tempfile.mkdtemp()) / "r.csv")
    >>> out.read_text().splitlines()
    ['worker,spam', '7,0.1']
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".json"}:
        raise ValueError(f"{path}: write a .csv or .json file")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    if suffix == ".json":
        clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
                 for row in rows]
        partial.write_text(json.dumps(clean, indent=1, default=str) + "\n", encoding="utf-8")
    else:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with partial.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _cell(row.get(k)) for k in columns})
    os.replace(partial, path)
    return path
