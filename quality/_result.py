"""The immutable result every consensus method returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._errors import InputError

__all__ = ["AggregationResult"]


def _frozen_array(value: Any, dtype: Any = None) -> NDArray[Any]:
    array = np.array(value, dtype=dtype, copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class AggregationResult:
    """Consensus labels, posteriors and fitted parameters of one aggregation run.

    Attributes
    ----------
    method : str
        Name of the method (``"dawid_skene"``, ``"mace"``, ...).
    params : mapping
        JSON-serialisable echo of the options the method ran with.
    labels : ndarray of int32, shape (n_items,)
        ``posteriors.argmax(1)``; a tie goes to the class listed first (lowest code).
    posteriors : ndarray of float64, shape (n_items, n_classes)
        Rows sum to 1. Items without annotations get the class prior.
    worker_params : mapping of str to ndarray
        Per-worker parameters; arrays have ``n_workers`` as their first axis.
    class_prior : ndarray of float64, shape (n_classes,)
        Estimated (or assumed) prevalence of each class.
    log_likelihood : float
        Objective of the fit (marginal log-likelihood, or ELBO for variational fits);
        ``nan`` for methods without one.
    n_iter : int
        Iterations of the best run (0 for closed-form methods).
    converged : bool
        Whether the best run met ``tol`` before ``max_iter``.

    Every array is read-only.
    """

    method: str
    params: Mapping[str, Any]
    labels: NDArray[np.int32]
    posteriors: NDArray[np.float64]
    worker_params: Mapping[str, NDArray[Any]]
    class_prior: NDArray[np.float64]
    log_likelihood: float = float("nan")
    n_iter: int = 0
    converged: bool = True
    item_params: Mapping[str, NDArray[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        posteriors = _frozen_array(self.posteriors, np.float64)
        object.__setattr__(self, "posteriors", posteriors)
        object.__setattr__(self, "labels", _frozen_array(self.labels, np.int32))
        object.__setattr__(self, "class_prior", _frozen_array(self.class_prior, np.float64))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(
            self,
            "worker_params",
            MappingProxyType({k: _frozen_array(v) for k, v in self.worker_params.items()}),
        )
        object.__setattr__(
            self,
            "item_params",
            MappingProxyType({k: _frozen_array(v) for k, v in self.item_params.items()}),
        )
        object.__setattr__(self, "log_likelihood", float(self.log_likelihood))
        object.__setattr__(self, "n_iter", int(self.n_iter))
        object.__setattr__(self, "converged", bool(self.converged))

    @property
    def n_items(self) -> int:
        return int(self.posteriors.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.posteriors.shape[1])

    def confidence(self) -> NDArray[np.float64]:
        """Posterior probability of the chosen label, shape ``(n_items,)``, in ``[1/K, 1]``."""
        return self.posteriors[np.arange(self.n_items), self.labels]

    def entropy(self) -> NDArray[np.float64]:
        """Normalised Shannon entropy of each posterior row, in ``[0, 1]`` (0 = certain)."""
        p = self.posteriors
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        return h / np.log(self.n_classes) if self.n_classes > 1 else np.zeros(self.n_items)

    def labels_at_coverage(self, coverage: float) -> NDArray[np.int32]:
        """Labels for the ``coverage`` share of most certain items, ``-1`` for the rest.

        The option of Hovy et al. (2013, MACE, section 4.2) to leave the least certain
        items unlabelled, trading coverage for accuracy. Certainty is the posterior
        entropy; ties at the cut keep the item with the lower code.

        Parameters
        ----------
        coverage : float in (0, 1]
            Share of items that keep a label.
        """
        if not 0.0 < coverage <= 1.0:
            raise InputError(f"coverage must be in (0, 1], got {coverage!r}")
        keep = int(np.ceil(coverage * self.n_items))
        order = np.argsort(self.entropy(), kind="stable")
        labels = np.full(self.n_items, -1, dtype=np.int32)
        labels[order[:keep]] = self.labels[order[:keep]]
        return labels
