"""Error and warning types shared by every galton package.

The root is :class:`GaltonError`. Input problems also subclass :class:`ValueError`
so generic callers can catch them the usual way. Platform failures
(``PlatformError``) live in ``galton.connectors`` but derive from the same root.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "ConvergenceWarning",
    "GaltonError",
    "InputError",
    "StatisticsWarning",
    "describe_examples",
]


class GaltonError(Exception):
    """Root of every exception galton raises on purpose."""


class InputError(GaltonError, ValueError):
    """The caller's data or options are wrong; the message says how to fix them."""


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped at ``max_iter`` before reaching ``tol``."""


class StatisticsWarning(UserWarning):
    """Legal input for which a statistic is undefined or unreliable.

    Examples: two workers with no item in common, a single class, an agreement
    coefficient whose chance agreement is 1.
    """


def describe_examples(values: Iterable[object], count: int | None = None, limit: int = 5) -> str:
    """Format the first ``limit`` offending values and the total count for an error message.

    >>> describe_examples(["a", "b", "c"], limit=2)
    "'a', 'b' and 1 more"
    """
    shown: list[str] = []
    total = 0
    for value in values:
        if len(shown) < limit:
            shown.append(repr(value))
        total += 1
    if count is not None:
        total = count
    text = ", ".join(shown)
    if total > len(shown):
        text += f" and {total - len(shown)} more"
    return text


def rows_text(rows: Sequence[int], limit: int = 5) -> str:
    """Format 0-based row positions as 1-based data-row numbers (header not counted)."""
    return describe_examples((int(r) + 1 for r in rows), count=len(rows), limit=limit)
