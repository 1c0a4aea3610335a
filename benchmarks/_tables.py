"""Table helpers shared by the benchmark scripts (plain text for the terminal, markdown for results/)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["md_table", "secs", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> str:
    """A plain fixed-width table; the first column left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    out = [title] if title else []
    out += [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells[1:]]
    return "\n".join(out)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    """A GitHub markdown table; the first ``left`` columns left-aligned, the rest right-aligned."""
    align = [":---"] * left + ["---:"] * (len(headers) - left)
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def secs(value: float | None) -> str:
    """Seconds with 3 decimals below 10 s, 1 decimal above; '-' for missing."""
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"
