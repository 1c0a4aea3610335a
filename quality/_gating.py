r"""Rater gating during onboarding: pass, fail or keep testing, from answers on gold tasks.

The rule
--------
A worker who answered :math:`n` gold (honeypot) tasks, :math:`s` of them right, has under
a :math:`\mathrm{Beta}(a, b)` prior the posterior

.. math:: \theta \mid s, n \sim \mathrm{Beta}(a + s,\; b + n - s)

on their accuracy :math:`\theta`. With a target accuracy :math:`t` and a confidence
:math:`c \in (0.5, 1)` the worker

* **passes** when :math:`n \ge n_{\min}` and :math:`P(\theta \ge t \mid s, n) \ge c`,
* **fails** when :math:`n \ge n_{\min}` and :math:`P(\theta < t \mid s, n) \ge c`,
* is **pending** otherwise (both cannot hold since :math:`c > 0.5`).

The rule is meant to be applied after every gold answer (a sequential test), so a clear
rater is decided after a handful of tasks and a rater near the target keeps being tested.
More right answers never hurt: :math:`P(\theta \ge t)` grows with :math:`s` at fixed
:math:`n`, and with a right answer added (:math:`s + 1, n + 1`), so a pass never turns into a
fail by answering correctly.

Error rate. :math:`1 - c` is the posterior probability of being wrong *at the moment of a
decision*, averaged over the prior. Raters are not drawn from the prior and the rule is
checked again after every answer (optional stopping), so the frequentist error rate for a
rater of a given accuracy is **not** :math:`1 - c`: near the target it can be far larger,
far from it far smaller. ``benchmarks/gating.py`` measures it by simulation (gold tasks
needed and error rate per planted accuracy); read those tables to choose ``target``,
``confidence`` and ``min_gold``.

Gold tasks still needed. For an undecided worker, ``more_gold_needed`` is the median
number of further gold answers until the rule decides, under the posterior predictive: the
next answers are drawn from the Beta-binomial (each right with probability
:math:`(a + s') / (a + b + n')` given the answers so far), the probability that the rule has
decided after :math:`k` more is computed exactly by a forward pass over those paths, and the
smallest :math:`k` where it reaches 1/2 is reported ("about N more"). ``-1`` means more
than ``max_more``, which happens when the accuracy looks close to the target.
(Projecting at the posterior-mean accuracy instead would say "hundreds more" for a rater
with 4 of 4 right, who passes after 9 more right answers.)

Supporting evidence. :func:`gate_workers` adds MACE's spamming probability (Hovy et al.,
NAACL 2013) and raw agreement with co-raters (Tratz & Hovy) from all the worker's
annotations, gold or not. They appear in the reason of undecided workers; only with
``fail_on_spam=True`` does a spam probability at or above ``spam_threshold`` fail a worker
whose gold is not yet decisive (a gold pass is never overridden). That path is not covered
by the simulated error rates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import beta as beta_distribution

from ._agreement import raw_agreement
from ._common import RandomState, check_gold, check_matrix, check_positive
from ._errors import ConvergenceWarning, InputError, StatisticsWarning
from ._mace import mace
from ._matrix import AnnotationMatrix, Encoding
from ._raters import beta_interval
from ._result import AggregationResult

__all__ = ["DECISIONS", "GateDecisions", "gate_boundaries", "gate_workers", "gold_gate"]

DECISIONS = ("pass", "fail", "pending")


def _frozen(value: ArrayLike, dtype: Any = None) -> NDArray[Any]:
    array = np.array(value, dtype=dtype, copy=True)
    array.flags.writeable = False
    return array


def _json(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class GateDecisions:
    """One gating decision per worker, with the evidence behind it.

    Attributes (each of length ``n_workers``)
    -----------------------------------------
    decision : str
        ``"pass"``, ``"fail"`` or ``"pending"``.
    gold_n, gold_correct : int
        Gold tasks answered, and answered right.
    p_above_target : float in [0, 1]
        Posterior :math:`P(\\theta \\ge t)`.
    accuracy, accuracy_low, accuracy_high : float in [0, 1]
        Posterior mean and equal-tailed ``credible`` interval of the accuracy.
    more_gold_needed : int
        0 for decided workers; for pending ones about how many more gold tasks a decision
        needs (see the module doc), ``-1`` for more than ``params["max_more"]``.
    spam_probability : float
        MACE spamming probability (nan from :func:`gold_gate`).
    agreement : float
        Raw agreement with co-raters (nan from :func:`gold_gate` or without co-raters).
    reason : tuple of str
        Why, in words.
    params : dict
        The options (JSON-serialisable).
    """

    decision: NDArray[np.str_]
    gold_n: NDArray[np.int64]
    gold_correct: NDArray[np.int64]
    p_above_target: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    accuracy_low: NDArray[np.float64]
    accuracy_high: NDArray[np.float64]
    more_gold_needed: NDArray[np.int64]
    spam_probability: NDArray[np.float64]
    agreement: NDArray[np.float64]
    reason: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)

    _COLUMNS = ("decision", "gold_n", "gold_correct", "p_above_target", "accuracy", "accuracy_low",
                "accuracy_high", "more_gold_needed", "spam_probability", "agreement")

    def __post_init__(self) -> None:
        for name in self._COLUMNS:
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "reason", tuple(self.reason))

    @property
    def n_workers(self) -> int:
        return int(self.decision.shape[0])

    def counts(self) -> dict[str, int]:
        """``{"pass": ..., "fail": ..., "pending": ...}``."""
        return {name: int(np.count_nonzero(self.decision == name)) for name in DECISIONS}

    def to_rows(self, encoding: Encoding | None = None) -> list[dict[str, Any]]:
        """JSON-serialisable rows (nan and ``-1`` "needed" become None), fails first, then pending."""
        order = {"fail": 0, "pending": 1, "pass": 2}
        ranked = sorted(range(self.n_workers), key=lambda w: (order[str(self.decision[w])], -self.gold_n[w], w))
        rows = []
        for w in ranked:
            row: dict[str, Any] = {"worker": encoding.worker_ids[w] if encoding is not None else w}
            row.update({name: _json(getattr(self, name)[w]) for name in self._COLUMNS})
            if row["more_gold_needed"] == -1:
                row["more_gold_needed"] = None
            row["reason"] = self.reason[w]
            rows.append(row)
        return rows


def _check_options(target: Any, confidence: Any, prior: Any, min_gold: Any, credible: Any,
                   max_more: Any) -> tuple[float, float, tuple[float, float], int, float, int]:
    if isinstance(target, bool) or not isinstance(target, int | float | np.number) or not 0.0 < target < 1.0:
        raise InputError(f"target must be an accuracy strictly between 0 and 1, got {target!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float | np.number) \
            or not 0.5 < confidence < 1.0:
        raise InputError(f"confidence must be in (0.5, 1) so that pass and fail exclude each other, "
                         f"got {confidence!r}")
    try:
        a, b = (float(v) for v in prior)
    except (TypeError, ValueError):
        raise InputError(f"prior must be a pair of pseudo-counts (a, b), got {prior!r}") from None
    check_positive("prior[0]", a)
    check_positive("prior[1]", b)
    check_positive("min_gold", min_gold, integer=True, allow_zero=True)
    check_positive("max_more", max_more, integer=True)
    if not 0.0 < credible < 1.0:
        raise InputError(f"credible must be in (0, 1), got {credible!r}")
    return float(target), float(confidence), (a, b), int(min_gold), float(credible), int(max_more)


def _boundaries(n_max: int, target: float, confidence: float, prior: tuple[float, float],
                min_gold: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    a, b = prior
    n = np.arange(n_max + 1, dtype=np.float64)

    def bisect(satisfied: Any, smallest: bool) -> NDArray[np.int64]:
        # over s in [0, n], vectorised over n; -1 and n + 1 are virtual ends never evaluated
        lo, hi = np.full(n.shape, -1.0), n + 1.0
        while np.any(hi - lo > 1):
            mid = np.floor((lo + hi) / 2.0)
            ok = satisfied(np.clip(mid, 0.0, n))
            if smallest:  # satisfied is increasing in s: False on (lo, ...], True on [hi, ...)
                hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
            else:  # decreasing: True up to lo, False from hi
                lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
        return (hi if smallest else lo).astype(np.int64)

    def passes(s: NDArray[np.float64]) -> NDArray[np.bool_]:
        return beta_distribution.sf(target, a + s, b + n - s) >= confidence

    def fails(s: NDArray[np.float64]) -> NDArray[np.bool_]:
        return beta_distribution.cdf(target, a + s, b + n - s) >= confidence

    pass_at = bisect(passes, True)  # n + 1: cannot pass
    fail_at = bisect(fails, False)  # -1: cannot fail
    early = n < min_gold
    pass_at[early] = n[early].astype(np.int64) + 1
    fail_at[early] = -1
    return pass_at, fail_at


def gate_boundaries(
    n_max: int,
    *,
    target: float = 0.8,
    confidence: float = 0.95,
    prior: tuple[float, float] = (1.0, 1.0),
    min_gold: int = 10,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The rule of :func:`gold_gate` as two boundaries over the number of gold answers.

    Parameters
    ----------
    n_max : int >= 0
        Largest number of gold answers to tabulate.
    target, confidence, prior, min_gold
        See :func:`gold_gate`.

    Returns
    -------
    (pass_at, fail_at) : arrays of int64, shape (n_max + 1,)
        After ``n`` gold answers a worker with ``s`` right passes iff ``s >= pass_at[n]``
        and fails iff ``s <= fail_at[n]``; ``pass_at[n] == n + 1`` means nobody can pass yet
        and ``fail_at[n] == -1`` that nobody can fail yet. What an onboarding page can show
        ("13 of your first 13 right, or ...").

    Examples
    --------
    >>> pass_at, fail_at = gate_boundaries(14, target=0.8, confidence=0.95, min_gold=5)
    >>> pass_at[13:].tolist(), fail_at[5:8].tolist()
    ([13, 14], [2, 3, 3])
    """
    target, confidence, prior, min_gold, _, _ = _check_options(target, confidence, prior, min_gold, 0.5, 1)
    check_positive("n_max", n_max, integer=True, allow_zero=True)
    return _boundaries(int(n_max), target, confidence, prior, min_gold)


def _more_needed(s0: NDArray[np.int64], n0: NDArray[np.int64], target: float, confidence: float,
                 prior: tuple[float, float], min_gold: int, max_more: int) -> NDArray[np.int64]:
    """Median number of further gold answers to a decision under the posterior predictive (-1: > max_more).

    A forward pass over the Beta-binomial (Polya urn) paths of the next ``max_more``
    answers, vectorised over workers: ``mass[w, j]`` is the probability of ``j`` right
    answers among the next ``k`` with no decision yet. O(n_workers * max_more**2).
    """
    a, b = prior
    n_workers = s0.shape[0]
    out = np.full(n_workers, -1, dtype=np.int64)
    if n_workers == 0:
        return out
    pass_at, fail_at = _boundaries(int(n0.max()) + max_more, target, confidence, prior, min_gold)
    mass = np.zeros((n_workers, max_more + 1))
    mass[:, 0] = 1.0
    decided = np.zeros(n_workers)
    open_rows = np.arange(n_workers)
    for k in range(max_more):
        width = k + 1
        j = np.arange(width + 1, dtype=np.float64)
        s = s0[open_rows, None] + j[None, :width]
        p = (a + s) / (a + b + (n0[open_rows, None] + k))
        current = mass[open_rows, :width]
        step = np.zeros((open_rows.size, width + 1))
        step[:, :width] += current * (1.0 - p)
        step[:, 1:] += current * p
        n_next = n0[open_rows] + k + 1
        s_next = s0[open_rows, None] + j[None, :]
        stop = (s_next >= pass_at[n_next][:, None]) | (s_next <= fail_at[n_next][:, None])
        decided[open_rows] += np.where(stop, step, 0.0).sum(axis=1)
        mass[open_rows, : width + 1] = np.where(stop, 0.0, step)
        done = decided[open_rows] >= 0.5
        out[open_rows[done]] = k + 1
        open_rows = open_rows[~done]
        if open_rows.size == 0:
            break
    return out


def _fmt(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if np.isfinite(value) else "n/a"


def _decide(successes: NDArray[np.int64], trials: NDArray[np.int64], spam: NDArray[np.float64],
            agreement: NDArray[np.float64], *, target: float, confidence: float, prior: tuple[float, float],
            min_gold: int, credible: float, max_more: int, spam_threshold: float | None,
            fail_on_spam: bool) -> GateDecisions:
    s = successes.astype(np.float64)
    n = trials.astype(np.float64)
    a, b = prior
    p_above = beta_distribution.sf(target, a + s, b + n - s)
    p_below = beta_distribution.cdf(target, a + s, b + n - s)
    mean, low, high = beta_interval(successes, trials, prior=prior, credible=credible)
    enough = trials >= min_gold
    passed = enough & (p_above >= confidence)
    failed = enough & (p_below >= confidence)
    decision = np.where(passed, "pass", np.where(failed, "fail", "pending")).astype("<U7")
    needed = np.zeros(successes.shape, dtype=np.int64)
    pending = decision == "pending"
    if pending.any():
        needed[pending] = _more_needed(successes[pending], trials[pending], target, confidence, prior, min_gold,
                                       max_more)
    suspect = np.zeros(successes.shape, dtype=bool) if spam_threshold is None else (spam >= spam_threshold)
    spam_failed = pending & suspect & bool(fail_on_spam)
    decision[spam_failed] = "fail"
    reasons = []
    for w in range(successes.shape[0]):
        sw, nw = int(successes[w]), int(trials[w])
        evidence = f"{nw} gold task{'' if nw == 1 else 's'}, {sw} correct"
        if spam_failed[w]:
            text = (f"MACE spam probability {_fmt(spam[w])} >= {_fmt(spam_threshold)} while gold is undecided "
                    f"({evidence})")
        elif decision[w] == "pass":
            text = f"P(accuracy >= {_fmt(target)}) = {_fmt(p_above[w])} >= {_fmt(confidence)} ({evidence})"
        elif decision[w] == "fail":
            text = f"P(accuracy < {_fmt(target)}) = {_fmt(p_below[w])} >= {_fmt(confidence)} ({evidence})"
        else:
            if nw < min_gold:
                text = f"{evidence}; at least {min_gold} needed before deciding"
            else:
                text = f"P(accuracy >= {_fmt(target)}) = {_fmt(p_above[w])}, not yet decisive ({evidence})"
            text += (f"; about {needed[w]} more gold tasks needed" if needed[w] >= 0
                     else f"; more than {max_more} more gold tasks needed (accuracy close to the target)")
            notes = []
            if np.isfinite(spam[w]):
                notes.append(f"MACE spam probability {_fmt(spam[w])}" + (" (suspect)" if suspect[w] else ""))
            if np.isfinite(agreement[w]):
                notes.append(f"agreement with co-raters {_fmt(agreement[w])}")
            if notes:
                text += "; " + ", ".join(notes)
        reasons.append(text)
    return GateDecisions(
        decision=decision, gold_n=trials.astype(np.int64), gold_correct=successes.astype(np.int64),
        p_above_target=p_above, accuracy=mean, accuracy_low=low, accuracy_high=high, more_gold_needed=needed,
        spam_probability=spam, agreement=agreement, reason=tuple(reasons),
        params={"target": target, "confidence": confidence, "prior": list(prior), "min_gold": min_gold,
                "credible": credible, "max_more": max_more, "spam_threshold": spam_threshold,
                "fail_on_spam": bool(fail_on_spam)},
    )


def gold_gate(
    gold_correct: ArrayLike,
    gold_n: ArrayLike,
    *,
    target: float = 0.8,
    confidence: float = 0.95,
    prior: tuple[float, float] = (1.0, 1.0),
    min_gold: int = 10,
    credible: float = 0.95,
    max_more: int = 500,
) -> GateDecisions:
    r"""The sequential Beta rule (module doc) on gold counts alone.

    Parameters
    ----------
    gold_correct, gold_n : array of int, shape (n_workers,)
        Right answers and answers on gold tasks, ``0 <= gold_correct <= gold_n``.
    target : float in (0, 1)
        The accuracy a worker must reach.
    confidence : float in (0.5, 1)
        Posterior probability needed to pass (accuracy >= target) or fail (< target).
    prior : (float, float)
        Beta prior pseudo-counts, both > 0; ``(1, 1)`` is uniform. A prior centred on the
        accuracy of past recruits (e.g. ``(8, 2)``) makes early fails rarer.
    min_gold : int >= 0
        Gold answers required before any decision. The default 10 is from
        ``benchmarks/results/gating.md``: at target 0.8 and confidence 0.95 it lowers the worst
        error rate outside +-0.05 of the target from about 0.10 (``min_gold=5``) to 0.06 for
        about 4 more gold tasks per rater.
    credible : float in (0, 1)
        Mass of the reported accuracy interval.
    max_more : int > 0
        Search limit for ``more_gold_needed``.

    Returns
    -------
    GateDecisions
        ``spam_probability`` and ``agreement`` are nan.

    Raises
    ------
    InputError
        Options out of range, or counts that are not whole numbers with
        ``0 <= gold_correct <= gold_n``.

    Notes
    -----
    Cost: two Beta cdf evaluations per worker, plus about :math:`\log_2` ``max_more`` more
    per pending worker for ``more_gold_needed``.

    Examples
    --------
    >>> gate = gold_gate([14, 2, 3], [14, 6, 3], target=0.8, confidence=0.95, min_gold=5)
    >>> gate.decision.tolist(), gate.more_gold_needed.tolist()
    (['pass', 'fail', 'pending'], [0, 0, 18])
    >>> round(float(gate.p_above_target[0]), 4)   # 1 - 0.8 ** 15
    0.9648
    """
    target, confidence, prior, min_gold, credible, max_more = _check_options(
        target, confidence, prior, min_gold, credible, max_more)
    s = np.asarray(gold_correct)
    n = np.asarray(gold_n)
    if s.shape != n.shape or s.ndim != 1:
        raise InputError(f"gold_correct and gold_n must be 1-d arrays of the same length, got shapes "
                         f"{s.shape} and {n.shape}")
    if s.size and (not np.all(np.mod(s, 1) == 0) or not np.all(np.mod(n, 1) == 0)):
        raise InputError("gold_correct and gold_n must be whole numbers")
    s, n = s.astype(np.int64), n.astype(np.int64)
    if np.any(s < 0) or np.any(s > n):
        bad = np.flatnonzero((s < 0) | (s > n))
        raise InputError(f"{bad.size} workers have gold_correct outside [0, gold_n] (positions "
                         f"{', '.join(str(int(i)) for i in bad[:5])})")
    nan = np.full(s.shape, np.nan)
    return _decide(s, n, nan, nan, target=target, confidence=confidence, prior=prior, min_gold=min_gold,
                   credible=credible, max_more=max_more, spam_threshold=None, fail_on_spam=False)


def gate_workers(
    matrix: AnnotationMatrix,
    gold: ArrayLike,
    *,
    target: float = 0.8,
    confidence: float = 0.95,
    prior: tuple[float, float] = (1.0, 1.0),
    min_gold: int = 10,
    credible: float = 0.95,
    max_more: int = 500,
    mace_result: AggregationResult | None = None,
    spam_threshold: float = 0.5,
    fail_on_spam: bool = False,
    random_state: RandomState = 0,
) -> GateDecisions:
    """Gate every worker of a matrix on its gold items (the rule of :func:`gold_gate`).

    Parameters
    ----------
    matrix : AnnotationMatrix
    gold : array of int, shape (n_items,)
        Gold class codes, ``-1`` where unknown (``Encoding.encode_gold(..., strict=False)``).
    target, confidence, prior, min_gold, credible, max_more
        See :func:`gold_gate`.
    mace_result : AggregationResult, optional
        A MACE fit on this matrix to take spam probabilities from; fitted here (with
        ``gold`` and ``random_state``) when omitted.
    spam_threshold : float in [0, 1]
        Spam probability from which an undecided worker is reported as a suspect.
    fail_on_spam : bool
        Fail undecided suspects (off by default: the simulated error rates cover only the
        gold rule).
    random_state
        Seed for the MACE fit.

    Returns
    -------
    GateDecisions

    Raises
    ------
    InputError
        Bad options, a gold array that does not fit the matrix, no gold item at all, or a
        ``mace_result`` from another matrix.

    Warns
    -----
    StatisticsWarning
        When gold items exist but no worker has reached ``min_gold`` of them.

    Examples
    --------
    >>> from galton.quality import AnnotationMatrix
    >>> m, enc = AnnotationMatrix.from_triplets(
    ...     [i for i in range(8) for _ in range(2)], ["ann", "bob"] * 8,
    ...     ["x", "x", "y", "x", "x", "x", "y", "x", "x", "y", "y", "y", "x", "y", "y", "y"])
    >>> gold = enc.encode_gold({0: "x", 1: "y", 2: "x", 3: "y", 4: "x", 5: "y", 6: "x", 7: "y"})
    >>> gate = gate_workers(m, gold, target=0.6, confidence=0.9, min_gold=5)
    >>> dict(zip(enc.worker_ids, gate.decision.tolist()))
    {'ann': 'pass', 'bob': 'pending'}
    """
    target, confidence, prior, min_gold, credible, max_more = _check_options(
        target, confidence, prior, min_gold, credible, max_more)
    matrix = check_matrix(matrix)
    gold_codes = check_gold(gold, matrix)
    if gold_codes is None or not np.any(gold_codes >= 0):
        raise InputError("no item of the matrix has a gold label: gating needs gold (honeypot) tasks; "
                         "give gold labels for some of the annotated items")
    if isinstance(spam_threshold, bool) or not 0.0 <= float(spam_threshold) <= 1.0:
        raise InputError(f"spam_threshold must be in [0, 1], got {spam_threshold!r}")
    if mace_result is not None and (not isinstance(mace_result, AggregationResult)
                                    or not mace_result.method.startswith("mace")
                                    or mace_result.n_items != matrix.n_items
                                    or "spamming_posterior" not in mace_result.worker_params):
        raise InputError("mace_result must be a mace() result on this matrix")
    truth = gold_codes[matrix.items]
    scored = truth >= 0
    gold_n = np.bincount(matrix.workers[scored], minlength=matrix.n_workers).astype(np.int64)
    gold_correct = np.bincount(matrix.workers[scored], weights=matrix.labels[scored] == truth[scored],
                               minlength=matrix.n_workers).astype(np.int64)
    if gold_n.max() < min_gold:
        warnings.warn(f"no worker has answered {min_gold} gold tasks yet (most: {int(gold_n.max())}); "
                      "every decision is pending", StatisticsWarning, stacklevel=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", StatisticsWarning)
        if mace_result is None:
            mace_result = mace(matrix, gold=gold_codes, random_state=random_state)
        agreement = np.asarray(raw_agreement(matrix).per_worker, dtype=np.float64)
    spam = np.asarray(mace_result.worker_params["spamming_posterior"], dtype=np.float64)
    return _decide(gold_correct, gold_n, spam, agreement, target=target, confidence=confidence, prior=prior,
                   min_gold=min_gold, credible=credible, max_more=max_more, spam_threshold=float(spam_threshold),
                   fail_on_spam=fail_on_spam)

