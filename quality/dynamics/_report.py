"""The immutable result of one label-error detection run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import InputError

__all__ = ["MislabeledReport"]


def _frozen(value: Any, dtype: Any = None) -> NDArray[Any]:
    array = np.array(value, dtype=dtype, copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class MislabeledReport:
    """Per-item suspicion scores, flags and data-map coordinates of one run.

    Attributes
    ----------
    scores : mapping of str to ndarray of float64, shape (n_items,)
        One score per method run (``"datamaps"``, ``"aum"``, ``"forgetting"``, ``"ncv"``,
        ``"incv"``, ``"influence"``, ``"noise_classifier"``, ``"given"`` for given
        probabilities) and ``"combined"``; higher means more likely mislabeled. Only ranks
        matter across methods.
    flags : mapping of str to ndarray of bool, shape (n_items,)
        The method's own flag rule, for methods that have one (see ``find_mislabeled``).
    confidence, variability, correctness : ndarray of float64, shape (n_items,)
        Data-map coordinates (Swayamdipta et al. 2020); NaN when no dynamics were recorded.
    region : ndarray of str, shape (n_items,)
        ``"easy"``, ``"ambiguous"`` or ``"hard-to-learn"`` ("" without dynamics).
    aum : ndarray of float64, shape (n_items,)
        Area under the margin (not negated); NaN when AUM did not run.
    aum_thresholds : tuple of float
        The 99th-percentile threshold of each run's threshold samples.
    n_forgotten : ndarray of int64, shape (n_items,); never_learned : ndarray of bool
        Forgetting events per item and items never learned (Toneva et al. 2019).
    oof_probabilities : ndarray of float64, shape (n_items, n_classes) or (0, n_classes)
        Out-of-fold probabilities of the NCV folds (empty when NCV did not run): the head's,
        or the logistic-regression candidate's when that had the lower held-out loss.
    labels : ndarray of int32, shape (n_items,)
        The audited labels.
    params : mapping
        JSON-serialisable echo of the options.
    metadata : mapping
        Run facts: device, threads, seconds per phase and per epoch, training accuracy,
        ``held_out_loss`` (mean held-out cross-entropy of the NCV folds after each epoch),
        ``epochs_used`` (the epochs every dynamics run trained; 0 when nothing trained),
        ``ncv_model`` (``"head"`` or ``"logistic"``: whose probabilities NCV scores),
        ``ncv_held_out_loss`` (both candidates' mean held-out cross-entropy, when the
        logistic one ran, on ``ncv_logistic_folds`` folds),
        ``given_thresholds`` (the per-class thresholds of ``given``, None for a class no
        item carries) and ``combined_from``.

    Every array is read-only.
    """

    scores: Mapping[str, NDArray[np.float64]]
    flags: Mapping[str, NDArray[np.bool_]]
    labels: NDArray[np.int32]
    confidence: NDArray[np.float64]
    variability: NDArray[np.float64]
    correctness: NDArray[np.float64]
    region: NDArray[np.str_]
    aum: NDArray[np.float64]
    aum_thresholds: tuple[float, ...]
    n_forgotten: NDArray[np.int64]
    never_learned: NDArray[np.bool_]
    oof_probabilities: NDArray[np.float64]
    params: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "scores", MappingProxyType({k: _frozen(v, np.float64) for k, v in self.scores.items()})
        )
        object.__setattr__(self, "flags", MappingProxyType({k: _frozen(v, bool) for k, v in self.flags.items()}))
        for name, dtype in (
            ("labels", np.int32),
            ("confidence", np.float64),
            ("variability", np.float64),
            ("correctness", np.float64),
            ("region", None),
            ("aum", np.float64),
            ("n_forgotten", np.int64),
            ("never_learned", bool),
            ("oof_probabilities", np.float64),
        ):
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype))
        object.__setattr__(self, "aum_thresholds", tuple(float(t) for t in self.aum_thresholds))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def n_items(self) -> int:
        return int(self.labels.shape[0])

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.scores)

    def ranking(self, method: str = "combined") -> NDArray[np.int64]:
        """Item positions, most suspicious first (ties: lower position first)."""
        return np.argsort(-self._score(method), kind="stable")

    def flag_top(self, share: float, method: str = "combined") -> NDArray[np.bool_]:
        """Flag the ``ceil(share * n_items)`` most suspicious items: a flag budget.

        >>> import numpy as np
        >>> r = MislabeledReport({"combined": [0.1, 0.9, 0.5]}, {}, [0, 1, 0], *[np.full(3, np.nan)] * 3,
        ...     [""] * 3, np.full(3, np.nan), (), [0] * 3, [False] * 3, np.zeros((0, 2)))
        >>> r.flag_top(0.5).tolist()
        [False, True, True]
        """
        if not 0 <= share <= 1:
            raise InputError(f"share must lie in [0, 1], got {share!r}")
        k = int(np.ceil(share * self.n_items))
        flags = np.zeros(self.n_items, dtype=bool)
        flags[self.ranking(method)[:k]] = True
        return flags

    def _score(self, method: str) -> NDArray[np.float64]:
        if method not in self.scores:
            raise InputError(f"no score {method!r} in this report; it has {sorted(self.scores)}")
        return self.scores[method]

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON-serialisable) for persistence and write-back."""
        return {
            "scores": {k: v.tolist() for k, v in self.scores.items()},
            "flags": {k: v.tolist() for k, v in self.flags.items()},
            "labels": self.labels.tolist(),
            "data_map": {
                "confidence": self.confidence.tolist(),
                "variability": self.variability.tolist(),
                "correctness": self.correctness.tolist(),
                "region": self.region.tolist(),
            },
            "aum": self.aum.tolist(),
            "aum_thresholds": list(self.aum_thresholds),
            "n_forgotten": self.n_forgotten.tolist(),
            "never_learned": self.never_learned.tolist(),
            "params": dict(self.params),
            "metadata": dict(self.metadata),
        }
