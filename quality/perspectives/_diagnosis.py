"""Disagreement diagnosis and soft labels: pure numpy, vectorised over the triplets.

Two kinds of disagreement look alike in a vote count and mean opposite things:

* **noise** -- raters who share a perspective still disagree (one rater off, a careless
  or low-competence rater, a genuinely hard item);
* **systematic** -- groups of raters are split: within each group the raters agree,
  between the groups they do not (Davani et al. 2021; Gordon et al. 2022).

:func:`disagreement_diagnosis` separates them per item by comparing the label
distributions of the rater groups with a shrunk Jensen-Shannon divergence and a
within-item permutation test. :func:`soft_labels` exports the per-item label
distribution for models that learn from disagreement.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._common import RandomState, as_generator, check_matrix, check_positive
from .._errors import InputError, describe_examples
from .._matrix import AnnotationMatrix

__all__ = [
    "KINDS",
    "UNGROUPED_KINDS",
    "CompetenceDiagnosis",
    "DisagreementDiagnosis",
    "competence_diagnosis",
    "disagreement_diagnosis",
    "encode_groups",
    "group_jury_verdicts",
    "soft_labels",
]

#: ``DisagreementDiagnosis.kind`` codes: ``KINDS[kind[i]]`` is the name shown to users
KINDS = ("agreement", "noise", "systematic")
#: ``CompetenceDiagnosis.kind`` codes, for crowds without rater groups
UNGROUPED_KINDS = ("agreement", "noise", "contested")


def _readonly(array: NDArray[Any]) -> NDArray[Any]:
    array.flags.writeable = False
    return array


def soft_labels(matrix: AnnotationMatrix, *, smoothing: float = 0.0) -> NDArray[np.float64]:
    r"""Per-item label distribution (soft labels) for learning from disagreement.

    .. math:: q_{ik} = \frac{n_{ik} + s}{n_i + K s}

    with :math:`n_{ik}` the votes for class :math:`k` on item :math:`i`, :math:`n_i`
    their sum and :math:`s` = ``smoothing`` (additive / Laplace smoothing). With
    ``smoothing=0`` the rows are the plain vote shares. Items without annotations get
    the uniform row. Cost: one ``bincount`` over the triplets.

    Parameters
    ----------
    matrix : AnnotationMatrix
    smoothing : float >= 0
        Pseudo-votes added to every class of every item.

    Returns
    -------
    ndarray of float64, shape (n_items, n_classes), read-only
        Rows sum to 1.

    Raises
    ------
    InputError
        Not an AnnotationMatrix, an empty matrix, or a negative ``smoothing``.

    >>> from galton.quality import AnnotationMatrix
    >>> m = AnnotationMatrix.from_codes([0, 0, 0, 1], [0, 1, 2, 0], [1, 1, 0, 0])
    >>> soft_labels(m).round(3).tolist()
    [[0.333, 0.667], [1.0, 0.0]]
    >>> soft_labels(m, smoothing=1.0).round(3).tolist()
    [[0.4, 0.6], [0.667, 0.333]]
    """
    matrix = check_matrix(matrix)
    check_positive("smoothing", smoothing, allow_zero=True)
    counts = matrix.label_counts().astype(np.float64) + float(smoothing)
    totals = counts.sum(axis=1, keepdims=True)
    empty = totals[:, 0] <= 0
    counts[empty] = 1.0
    totals[empty] = matrix.n_classes
    return _readonly(counts / totals)


def encode_groups(groups: Sequence[Hashable | None], n_workers: int) -> tuple[NDArray[np.int64], tuple[Hashable, ...]]:
    """Group codes per worker (``-1`` for no group) and the sorted group names.

    ``groups[w]`` is worker ``w``'s group; ``None`` (or NaN / empty string) means unknown.
    """
    if isinstance(groups, (str, bytes)) or isinstance(groups, Mapping):
        raise InputError("groups must be a sequence with one group per worker code, e.g. ['A', 'B', None, ...]")
    values = list(np.asarray(groups, dtype=object).ravel()) if not isinstance(groups, list) else list(groups)
    if len(values) != n_workers:
        raise InputError(
            f"groups must name one group per worker: got {len(values)} values for {n_workers} workers; "
            "use None for workers without a group"
        )

    def missing(v: object) -> bool:
        return v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip())

    present = list(dict.fromkeys(v for v in values if not missing(v)))
    try:
        names = tuple(sorted(present))  # type: ignore[type-var]
    except TypeError:
        names = tuple(sorted(present, key=lambda v: (type(v).__name__, str(v))))
    index = {name: code for code, name in enumerate(names)}
    codes = np.array([-1 if missing(v) else index[v] for v in values], dtype=np.int64)
    return codes, names


@dataclass(frozen=True)
class DisagreementDiagnosis:
    """Per-item diagnosis of disagreement: systematic (groups split) or noise.

    Attributes
    ----------
    method : str
    params : mapping
        JSON-serialisable echo of the options.
    group_names : tuple
        ``group_names[g]`` is the caller's name of group code ``g``.
    systematic_score : float64, shape (n_items,), in [0, 1]
        Shrunk between-group Jensen-Shannon divergence, normalised by
        ``log(min(n_groups, n_classes))``; higher = groups more split.
    p_value : float64, shape (n_items,), in (0, 1]
        Within-item permutation test of "group does not matter" (group labels of the
        item's annotations shuffled); 1 where fewer than two groups rated the item.
    noise_score : float64, shape (n_items,), in [0, 1)
        Share of the item's grouped annotations that differ from their own group's
        majority: disagreement that the groups do not explain.
    disagreement : float64, shape (n_items,), in [0, 1)
        ``1 - max_k share_k`` over all grouped annotations (0 when unanimous).
    systematic : bool, shape (n_items,)
        The flag: ``p_value <= alpha`` and ``systematic_score >= min_score``.
    kind : int8, shape (n_items,)
        ``0`` agreement (unanimous or no grouped annotations), ``1`` noise, ``2``
        systematic; names in :data:`KINDS`.
    group_distributions : float64, shape (n_items, n_groups, n_classes)
        Shrunk label distribution of each group on each item (the pooled item
        distribution where a group did not rate it).
    group_counts : int64, shape (n_items, n_groups)
        Annotations per item and group.
    group_label_counts : int64, shape (n_items, n_groups, n_classes)
        Raw votes per item, group and class (``group_counts`` is their sum over classes).

    Every array is read-only.
    """

    method: str
    params: Mapping[str, Any]
    group_names: tuple[Hashable, ...]
    systematic_score: NDArray[np.float64]
    p_value: NDArray[np.float64]
    noise_score: NDArray[np.float64]
    disagreement: NDArray[np.float64]
    systematic: NDArray[np.bool_]
    kind: NDArray[np.int8]
    group_distributions: NDArray[np.float64]
    group_counts: NDArray[np.int64]
    group_label_counts: NDArray[np.int64]

    def kind_names(self) -> list[str]:
        """``kind`` as names (``'agreement'``, ``'noise'``, ``'systematic'``), one per item."""
        return [KINDS[k] for k in self.kind.tolist()]

    def item_meta(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per item, for a platform's per-task meta fields (filterable).

        Keys: ``disagreement`` (a :data:`KINDS` name), ``systematic_disagreement`` (bool),
        ``systematic_score``, ``noise_score``, ``disagreement_p_value`` (rounded to 4
        decimals) and ``split_groups``: per group, its majority class code (only where
        the item is flagged systematic).
        """
        names = self.kind_names()
        majority = self.group_distributions.argmax(axis=2)
        out = []
        for i in range(len(names)):
            meta: dict[str, Any] = {
                "disagreement": names[i],
                "systematic_disagreement": bool(self.systematic[i]),
                "systematic_score": round(float(self.systematic_score[i]), 4),
                "noise_score": round(float(self.noise_score[i]), 4),
                "disagreement_p_value": round(float(self.p_value[i]), 4),
            }
            if self.systematic[i]:
                meta["split_groups"] = {
                    str(g): int(majority[i, c]) for c, g in enumerate(self.group_names) if self.group_counts[i, c] > 0
                }
            out.append(meta)
        return out


def _entropy(p: NDArray[np.float64], axis: int = -1) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=axis)


def _group_counts(item: NDArray[np.int64], group: NDArray[np.int64], label: NDArray[np.int64],
                  shape: tuple[int, int, int]) -> NDArray[np.float64]:
    n_items, n_groups, n_classes = shape
    flat = (item * n_groups + group) * n_classes + label
    return np.bincount(flat, minlength=n_items * n_groups * n_classes).reshape(shape).astype(np.float64)


def _divergence(counts: NDArray[np.float64], strength: float, norm: float) -> NDArray[np.float64]:
    """Shrunk, size-weighted generalised Jensen-Shannon divergence per item, in [0, 1]."""
    n_ig = counts.sum(axis=2)  # (I, G)
    n_i = n_ig.sum(axis=1)  # (I,)
    pooled = counts.sum(axis=1) / np.maximum(n_i, 1)[:, None]  # (I, K)
    denominator = (n_ig + strength)[:, :, None]
    shrunk = np.divide(
        counts + strength * pooled[:, None, :],
        denominator,
        out=np.broadcast_to(pooled[:, None, :], counts.shape).copy(),
        where=denominator > 0,
    )
    weights = n_ig / np.maximum(n_i, 1)[:, None]
    mixture = (weights[:, :, None] * shrunk).sum(axis=1)
    js = _entropy(mixture) - (weights * _entropy(shrunk)).sum(axis=1)
    return np.clip(js / norm, 0.0, 1.0), shrunk


def disagreement_diagnosis(
    matrix: AnnotationMatrix,
    groups: Sequence[Hashable | None],
    *,
    prior_strength: float = 2.0,
    n_permutations: int = 200,
    alpha: float = 0.05,
    min_score: float = 0.15,
    random_state: RandomState = 0,
) -> DisagreementDiagnosis:
    r"""Tell systematic (group-split) disagreement from noise, per item.

    For item :math:`i` and rater group :math:`g` with :math:`n_{igk}` votes for class
    :math:`k`, the group's label distribution is shrunk towards the item's pooled
    distribution :math:`\bar p_i` (a Dirichlet prior of ``prior_strength`` :math:`s`
    pseudo-votes), so a group of one or two raters cannot look split on its own:

    .. math:: p_{ig} = \frac{n_{ig\cdot} + s\,\bar p_i}{n_{ig} + s}, \qquad
              \mathrm{JS}_i = H\Big(\sum_g w_{ig} p_{ig}\Big) - \sum_g w_{ig} H(p_{ig}),
              \quad w_{ig} = n_{ig} / n_i

    ``systematic_score`` is :math:`\mathrm{JS}_i / \log\min(G, K)` in [0, 1]. Its
    ``p_value`` comes from ``n_permutations`` shuffles of the group labels among the
    item's own annotations (the null: a rater's group does not matter for this item):
    :math:`p = (1 + \#\{\mathrm{JS}^{\pi} \ge \mathrm{JS}\}) / (1 + n_\pi)`. An item is
    flagged systematic when ``p_value <= alpha`` and ``systematic_score >= min_score``;
    the effect-size floor keeps random noise from firing at the test's nominal rate.
    The test is per item (no multiple-testing correction: with 5-10 raters per item the
    exact permutation p-value cannot go below about 0.01, so FDR control would flag
    nothing); use ``systematic_score`` as a ranking when that matters.

    ``noise_score`` is the share of the item's grouped annotations that differ from
    their own group's majority. ``kind`` is ``systematic`` for flagged items, else
    ``noise`` where the grouped annotations disagree at all, else ``agreement``.

    Workers without a group (``None``) are left out of the diagnosis (their votes
    still count in :func:`soft_labels`). Cost: ``O(n_permutations * n_annotations
    log n_annotations)`` for the shuffles plus one ``bincount`` of size
    ``n_items * n_groups * n_classes`` per shuffle.

    Parameters
    ----------
    matrix : AnnotationMatrix
    groups : sequence, length n_workers
        Group of each worker code (hashable), ``None`` for unknown; at least two groups.
    prior_strength : float >= 0
        Pseudo-votes of the shrinkage prior (0: raw group shares).
    n_permutations : int >= 1
    alpha : float in (0, 1]
        Per-item level of the permutation test.
    min_score : float in [0, 1]
        Effect-size floor of the flag.
    random_state : int, Generator or None

    Returns
    -------
    DisagreementDiagnosis

    Raises
    ------
    InputError
        Not an AnnotationMatrix, ``groups`` of the wrong length or with fewer than two
        groups, or an option out of range.

    References
    ----------
    Davani, Díaz, Prabhakaran. Dealing with Disagreements: Looking Beyond the Majority
    Vote in Subjective Annotations. TACL 2022 (arXiv 2110.05719, 2021).
    Gordon, Lam, Park, Patel, Hancock, Hashimoto, Bernstein. Jury Learning: Integrating
    Dissenting Voices into Machine Learning Models. CHI 2022.

    >>> from galton.quality import AnnotationMatrix
    >>> m = AnnotationMatrix.from_codes([0] * 8 + [1] * 8, list(range(8)) * 2, [0] * 4 + [1] * 4 + [0] * 7 + [1])
    >>> d = disagreement_diagnosis(m, ["A"] * 4 + ["B"] * 4, random_state=0)
    >>> d.kind_names()
    ['systematic', 'noise']
    """
    matrix = check_matrix(matrix)
    codes, names = encode_groups(groups, matrix.n_workers)
    if len(names) < 2:
        raise InputError(
            f"need at least two rater groups to compare, got {len(names)}"
            + (f" ({describe_examples(names)})" if names else "")
            + "; pass one group per worker, e.g. a demographic attribute"
        )
    check_positive("prior_strength", prior_strength, allow_zero=True)
    check_positive("n_permutations", n_permutations, integer=True)
    check_positive("alpha", alpha)
    if alpha > 1:
        raise InputError(f"alpha must be in (0, 1], got {alpha!r}")
    check_positive("min_score", min_score, allow_zero=True)
    if min_score > 1:
        raise InputError(f"min_score must be in [0, 1], got {min_score!r}")
    rng = as_generator(random_state)

    n_items, n_groups, n_classes = matrix.n_items, len(names), matrix.n_classes
    worker_group = codes[matrix.workers]
    keep = worker_group >= 0
    item = matrix.items[keep].astype(np.int64)
    label = matrix.labels[keep].astype(np.int64)
    group = worker_group[keep]
    order = np.argsort(item, kind="stable")
    item, label, group = item[order], label[order], group[order]
    shape = (n_items, n_groups, n_classes)
    norm = float(np.log(min(n_groups, n_classes))) if min(n_groups, n_classes) > 1 else 1.0

    counts = _group_counts(item, group, label, shape)
    score, shrunk = _divergence(counts, float(prior_strength), norm)
    n_ig = counts.sum(axis=2)
    testable = (n_ig > 0).sum(axis=1) >= 2
    score = np.where(testable, score, 0.0)

    exceed = np.zeros(n_items, dtype=np.int64)
    tolerance = 1e-12
    for _ in range(int(n_permutations)):
        shuffled = group[np.lexsort((rng.random(item.size), item))]  # permute groups within each item
        null, _unused = _divergence(_group_counts(item, shuffled, label, shape), float(prior_strength), norm)
        exceed += null >= score - tolerance
    p_value = np.where(testable, (1.0 + exceed) / (1.0 + n_permutations), 1.0)

    totals = n_ig.sum(axis=1)
    safe = np.maximum(totals, 1)
    noise = np.where(totals > 0, 1.0 - counts.max(axis=2).sum(axis=1) / safe, 0.0)
    disagreement = np.where(totals > 0, 1.0 - counts.sum(axis=1).max(axis=1) / safe, 0.0)
    flag = testable & (p_value <= alpha) & (score >= min_score)
    kind = np.where(flag, 2, np.where(disagreement > 0, 1, 0)).astype(np.int8)

    return DisagreementDiagnosis(
        method="disagreement_diagnosis",
        params={
            "prior_strength": float(prior_strength),
            "n_permutations": int(n_permutations),
            "alpha": float(alpha),
            "min_score": float(min_score),
            "random_state": random_state if isinstance(random_state, (int, type(None))) else "generator",
        },
        group_names=names,
        systematic_score=_readonly(score.astype(np.float64)),
        p_value=_readonly(p_value.astype(np.float64)),
        noise_score=_readonly(noise.astype(np.float64)),
        disagreement=_readonly(disagreement.astype(np.float64)),
        systematic=_readonly(flag),
        kind=_readonly(kind),
        group_distributions=_readonly(shrunk),
        group_counts=_readonly(n_ig.astype(np.int64)),
        group_label_counts=_readonly(counts.astype(np.int64)),
    )


# ---------------------------------------------------------------------- without groups


@dataclass(frozen=True)
class CompetenceDiagnosis:
    """What can be said about an item's disagreement without rater groups.

    Attributes
    ----------
    method : str
    params : mapping
    kind : int8, shape (n_items,)
        ``0`` agreement (no disagreement), ``1`` noise (only raters marked unreliable
        dissent from the reliable raters, who agree), ``2`` contested (reliable raters
        disagree among themselves: a candidate for systematic disagreement, which only a
        rater-group table can confirm); names in :data:`UNGROUPED_KINDS`.
    disagreement : float64, shape (n_items,), in [0, 1)
        ``1 - max_k share_k`` over all annotations.
    reliable_disagreement : float64, shape (n_items,), in [0, 1)
        The same over the reliable raters' annotations only (0 where fewer than two).
    n_reliable : int64, shape (n_items,)
        Annotations by reliable raters.

    Every array is read-only.
    """

    method: str
    params: Mapping[str, Any]
    kind: NDArray[np.int8]
    disagreement: NDArray[np.float64]
    reliable_disagreement: NDArray[np.float64]
    n_reliable: NDArray[np.int64]

    def kind_names(self) -> list[str]:
        """``kind`` as names (``'agreement'``, ``'noise'``, ``'contested'``), one per item."""
        return [UNGROUPED_KINDS[k] for k in self.kind.tolist()]


def competence_diagnosis(matrix: AnnotationMatrix, reliable: Sequence[bool], *,
                         min_share: float = 0.25) -> CompetenceDiagnosis:
    r"""Noise or contested disagreement per item, from which raters are reliable.

    Without a rater-group table, systematic disagreement cannot be told from hard items,
    but noise can still be recognised: where the item's reliable raters (e.g. MACE
    competence above a threshold, ``1 - spam_probability``) all agree and only unreliable
    ones dissent, the disagreement is *noise*; where reliable raters disagree with each
    other -- at least two of them and at least ``min_share`` of the reliable annotations
    outside their majority -- it is *contested* (hard, ambiguous or a perspective split;
    add groups to tell). One reliable rater off is noise too. Cost: two ``bincount`` over
    the triplets.

    Parameters
    ----------
    matrix : AnnotationMatrix
    reliable : sequence of bool, length n_workers
    min_share : float in [0, 1]
        Share of the reliable annotations outside their majority from which an item is
        contested.

    Returns
    -------
    CompetenceDiagnosis

    Raises
    ------
    InputError
        Not an AnnotationMatrix, ``reliable`` of the wrong length, ``min_share`` outside [0, 1].

    >>> from galton.quality import AnnotationMatrix
    >>> m = AnnotationMatrix.from_codes([0, 0, 0, 1, 1, 1, 1, 2, 2], [0, 1, 2, 0, 1, 3, 4, 0, 1],
    ...                                 [0, 0, 1, 0, 1, 0, 1, 1, 1])
    >>> competence_diagnosis(m, [True, True, False, True, True]).kind_names()
    ['noise', 'contested', 'agreement']
    """
    matrix = check_matrix(matrix)
    ok = np.asarray(reliable, dtype=bool).ravel()
    if ok.size != matrix.n_workers:
        raise InputError(f"reliable must hold one bool per worker: got {ok.size} for {matrix.n_workers} workers")
    check_positive("min_share", min_share, allow_zero=True)
    if min_share > 1:
        raise InputError(f"min_share must be in [0, 1], got {min_share!r}")
    counts = matrix.label_counts().astype(np.float64)
    totals = counts.sum(axis=1)
    disagreement = np.where(totals > 0, 1.0 - counts.max(axis=1) / np.maximum(totals, 1), 0.0)
    keep = ok[matrix.workers]
    flat = matrix.items[keep].astype(np.int64) * matrix.n_classes + matrix.labels[keep]
    rcounts = np.bincount(flat, minlength=matrix.n_items * matrix.n_classes).reshape(matrix.n_items, -1)
    n_rel = rcounts.sum(axis=1)
    rel_dis = np.where(n_rel >= 2, 1.0 - rcounts.max(axis=1) / np.maximum(n_rel, 1), 0.0)
    outside = n_rel - rcounts.max(axis=1)
    contested = (outside >= 2) & (rel_dis >= min_share)
    kind = np.where(disagreement <= 0, 0, np.where(contested, 2, 1)).astype(np.int8)
    return CompetenceDiagnosis(
        method="competence_diagnosis",
        params={"n_reliable_workers": int(ok.sum()), "min_share": float(min_share)},
        kind=_readonly(kind),
        disagreement=_readonly(disagreement.astype(np.float64)),
        reliable_disagreement=_readonly(rel_dis.astype(np.float64)),
        n_reliable=_readonly(n_rel.astype(np.int64)),
    )


# ---------------------------------------------------------------------- juries without a model


def group_jury_verdicts(
    diagnosis: DisagreementDiagnosis,
    composition: Mapping[Hashable, int],
    *,
    n_samples: int = 200,
    random_state: RandomState = 0,
):
    r"""Verdict distribution of juries drawn from the observed group label distributions.

    A feature-free stand-in for :meth:`JuryModel.verdicts` (Gordon et al. 2022), for
    projects without item features: a juror of group :math:`g` on item :math:`i` votes
    :math:`y \sim p_{ig}`, the group's shrunk label distribution
    (``diagnosis.group_distributions``, the pooled item distribution where the group did
    not rate the item). Each of ``n_samples`` juries holds ``composition[g]`` jurors of
    every group ``g``; its verdict is the plurality (ties broken uniformly at random).
    Cost: ``O(n_samples * n_items * n_groups * n_classes)``.

    Parameters
    ----------
    diagnosis : DisagreementDiagnosis
    composition : mapping of group name to int >= 1
        E.g. ``{"A": 6, "B": 6}``; names as in ``diagnosis.group_names``.
    n_samples : int >= 1
    random_state : int, Generator or None

    Returns
    -------
    JuryVerdicts
        ``by`` is ``"group"``.

    Raises
    ------
    InputError
        An empty composition, a group the diagnosis does not know, or a count that is not
        a positive integer.

    >>> from galton.quality import AnnotationMatrix
    >>> m = AnnotationMatrix.from_codes([0] * 8, list(range(8)), [0] * 4 + [1] * 4)
    >>> d = disagreement_diagnosis(m, ["A"] * 4 + ["B"] * 4, random_state=0)
    >>> group_jury_verdicts(d, {"A": 5, "B": 1}, random_state=0).labels.tolist()
    [0]
    """
    from ._models import JuryVerdicts

    if not isinstance(diagnosis, DisagreementDiagnosis):
        raise InputError("diagnosis must be a DisagreementDiagnosis (from disagreement_diagnosis)")
    if not isinstance(composition, Mapping) or not composition:
        raise InputError("composition must be a non-empty mapping {group: number of jurors}, e.g. {'A': 6, 'B': 6}")
    check_positive("n_samples", n_samples, integer=True)
    names = list(diagnosis.group_names)
    picks = []
    for group, count in composition.items():
        check_positive(f"composition[{group!r}]", count, integer=True)
        if group not in names:
            raise InputError(f"composition names group {group!r}, which no rater has; groups: "
                             f"{describe_examples(names)}")
        picks.append((names.index(group), int(count)))
    rng = as_generator(random_state)
    p = diagnosis.group_distributions
    n_items, n_classes = p.shape[0], p.shape[2]
    tally = np.zeros((n_items, n_classes))
    rows = np.arange(n_items)
    for _ in range(int(n_samples)):
        votes = np.zeros((n_items, n_classes))
        for g, count in picks:
            votes += rng.multinomial(count, p[:, g, :])
        verdict = (votes + rng.random(votes.shape) * 0.5).argmax(axis=1)  # < 1 vote apart: ties only
        tally[rows, verdict] += 1.0
    distribution = tally / n_samples
    return JuryVerdicts(
        composition=dict(composition),
        by="group",
        n_samples=int(n_samples),
        distribution=_readonly(distribution),
        labels=_readonly(distribution.argmax(axis=1).astype(np.int32)),
    )
