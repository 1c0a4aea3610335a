"""Long CSV files: ``item,worker,label`` annotations and ``item,label`` gold labels.

The format of ``shared/data/crowd/*`` and of many crowdsourcing exports: one row per
annotation, a header naming the columns. Ids and labels are kept as strings exactly as
written (``"01"`` and ``"1"`` are different ids), so nothing is silently merged.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from galton.quality import AnnotationMatrix, Encoding, InputError
from galton.quality._errors import describe_examples

__all__ = ["CrowdDataset", "read_annotations_csv", "read_crowd_dataset", "read_gold_csv"]

PathLike = str | os.PathLike[str]


def _open_rows(path: PathLike, required: Sequence[str]) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [name for name in required if name not in header]
        if missing:
            raise InputError(
                f"{path}: the header must name the columns {list(required)!r}; "
                f"missing {missing!r} (found {header!r})"
            )
        reader.fieldnames = header
        rows = []
        short = []
        for number, row in enumerate(reader, start=2):
            if None in row.values() or None in row:
                short.append(number)
                continue
            rows.append({name: row[name].strip() for name in required})
    if short:
        raise InputError(
            f"{path}: {len(short)} rows have a different number of fields than the header "
            f"(lines {describe_examples(short)}); check for unquoted commas"
        )
    if not rows:
        raise InputError(f"{path}: the file has a header but no rows")
    return rows


def read_annotations_csv(
    path: PathLike,
    *,
    classes: Sequence[str] | None = None,
    item_column: str = "item",
    worker_column: str = "worker",
    label_column: str = "label",
) -> tuple[AnnotationMatrix, Encoding]:
    """Read ``item,worker,label`` rows into an :class:`AnnotationMatrix`.

    Parameters
    ----------
    path : path
        CSV file with a header; extra columns are ignored.
    classes : sequence of str, optional
        Class order; default the sorted distinct labels.
    item_column, worker_column, label_column : str
        Column names when they differ from the defaults.

    Raises
    ------
    InputError
        Missing file or columns, ragged rows, empty cells, duplicate (item, worker)
        pairs or labels outside ``classes``; messages give line numbers (the header is
        line 1).
    """
    columns = (item_column, worker_column, label_column)
    rows = _open_rows(path, columns)
    return _encode_rows(path, rows, columns, classes)


def _encode_rows(
    path: PathLike, rows: list[dict[str, str]], columns: Sequence[str], classes: Sequence[str] | None
) -> tuple[AnnotationMatrix, Encoding]:
    item, worker, label = columns
    try:
        return AnnotationMatrix.from_triplets(
            [row[item] for row in rows], [row[worker] for row in rows], [row[label] for row in rows],
            classes=classes,
        )
    except InputError as error:
        raise InputError(f"{path}: {error} (data rows; line = row + 1)") from None


def read_gold_csv(path: PathLike, *, item_column: str = "item", label_column: str = "label") -> dict[str, str]:
    """Read ``item,label`` gold rows into ``{item: label}``.

    Raises
    ------
    InputError
        Missing file or columns, empty cells, or an item listed twice with different
        labels (the same label twice is accepted).
    """
    rows = _open_rows(path, (item_column, label_column))
    gold: dict[str, str] = {}
    conflicts: list[str] = []
    blank: list[int] = []
    for number, row in enumerate(rows, start=2):
        item, label = row[item_column], row[label_column]
        if not item or not label:
            blank.append(number)
            continue
        if gold.setdefault(item, label) != label:
            conflicts.append(item)
    if blank:
        raise InputError(
            f"{path}: {len(blank)} gold rows have an empty item or label (lines {describe_examples(blank)})"
        )
    if conflicts:
        raise InputError(
            f"{path}: {len(conflicts)} gold items are listed with two different labels: "
            f"{describe_examples(dict.fromkeys(conflicts))}"
        )
    return gold


@dataclass(frozen=True)
class CrowdDataset:
    """A crowdsourced dataset: annotations, their encoding and optional gold labels."""

    name: str
    matrix: AnnotationMatrix
    encoding: Encoding
    gold: dict[str, str]

    def gold_codes(self):
        """Gold as an ``(n_items,)`` code array, ``-1`` where unknown (gold-only items dropped)."""
        return self.encoding.encode_gold(self.gold, strict=False)


def read_crowd_dataset(folder: PathLike) -> CrowdDataset:
    """Read a folder holding ``annotations.csv`` and optionally ``gold.csv``.

    Class order is the sorted union of annotated and gold labels, so a class that only
    gold uses still gets a code.
    """
    folder = Path(folder)
    gold_path = folder / "gold.csv"
    gold = read_gold_csv(gold_path) if gold_path.is_file() else {}
    path = folder / "annotations.csv"
    columns = ("item", "worker", "label")
    rows = _open_rows(path, columns)
    classes = sorted({row["label"] for row in rows} | set(gold.values()))
    matrix, encoding = _encode_rows(path, rows, columns, classes)
    return CrowdDataset(folder.name, matrix, encoding, gold)
