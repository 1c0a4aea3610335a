"""GLAD: consensus labels with per-worker ability and per-item difficulty.

Whitehill, Ruvolo, Wu, Bergsma and Movellan, "Whose Vote Should Count More: Optimal
Integration of Labels from Labelers of Unknown Expertise", NIPS 2009, in its multi-class
form: a worker is right with probability ``sigmoid(alpha_i * beta_j)`` and otherwise
picks one of the ``K - 1`` wrong classes uniformly.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import expit

from ._common import (
    RandomState,
    as_generator,
    check_gold,
    check_matrix,
    check_positive,
    clamp_gold,
    normalise_log_rows,
    vote_shares,
    warn_not_converged,
)
from ._errors import InputError
from ._matrix import AnnotationMatrix
from ._result import AggregationResult

try:  # optional: scikit-learn's helper to cap BLAS threads, pure Python
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - then BLAS keeps its own thread count
    threadpool_limits = None

__all__ = ["glad"]

# The likelihood sees log(beta) clipped to [-30, 30] so that exp() cannot overflow in a
# line search; the prior keeps log(beta) far inside. (Not L-BFGS-B bounds: scipy turns
# those into Python lists element by element, which cost more than the whole fit.)
_LOG_BETA_CLIP = 30.0
_LOG_2PI = float(np.log(2.0 * np.pi))


def glad(
    matrix: AnnotationMatrix,
    *,
    max_iter: int = 100,
    tol: float = 1e-5,
    n_init: int = 1,
    m_step_iter: int = 25,
    alpha_prior: tuple[float, float] = (1.0, 1.0),
    beta_prior: tuple[float, float] = (1.0, 1.0),
    gold: ArrayLike | Mapping[int, int] | None = None,
    random_state: RandomState = 0,
) -> AggregationResult:
    r"""Consensus labels, worker abilities and item difficulties by GLAD (MAP-EM).

    Worker ``i`` labels item ``j`` correctly with a probability that grows with the
    worker's ability :math:`\alpha_i \in \mathbb{R}` and the item's inverse difficulty
    :math:`\beta_j > 0`; a wrong label is uniform over the other ``K - 1`` classes:

    .. math::

        P(L_{ij} = l \mid Z_j = c) =
        \begin{cases}
            \sigma(\alpha_i \beta_j) & l = c \\
            \dfrac{1 - \sigma(\alpha_i \beta_j)}{K - 1} & l \ne c
        \end{cases},
        \qquad \sigma(s) = \frac{1}{1 + e^{-s}},
        \qquad P(Z_j = c) = \pi_c .

    :math:`\alpha_i = 0` is a random guesser, :math:`\alpha_i < 0` a worker who tends to
    avoid the true class; :math:`\beta_j \to 0` an item nobody can get right,
    :math:`\beta_j \to \infty` one every worker with :math:`\alpha_i > 0` gets right.
    :math:`\beta_j = \exp(b_j)` is fitted through :math:`b_j = \log \beta_j`, with
    independent Gaussian priors (Whitehill et al. 2009, section 3, put priors on both;
    mean 1 and standard deviation 1 are the defaults of crowd-kit's ``GLAD``)

    .. math::

        \alpha_i \sim \mathcal{N}(\mu_\alpha, \tau_\alpha^2), \qquad
        \log \beta_j \sim \mathcal{N}(\mu_\beta, \tau_\beta^2),

    and a maximum-likelihood class prior :math:`\pi`. EM maximises the MAP objective

    .. math::

        F = \sum_{j \notin G} \log \sum_c \pi_c \prod_{i \to j} P(L_{ij} \mid Z_j = c)
            + \sum_{j \in G} \log \Big( \pi_{g_j} \prod_{i \to j} P(L_{ij} \mid Z_j = g_j) \Big)
            + \sum_i \log \mathcal{N}(\alpha_i) + \sum_j \log \mathcal{N}(\log \beta_j),

    where :math:`G` are the gold items (true class :math:`g_j` observed).

    - **E-step**, in log space over the triplets: :math:`\log q_{jc} = \log \pi_c +
      \sum_{i \to j} \log P(L_{ij} \mid Z_j = c) - \log\text{norm}_j`, gold rows clamped
      to their one-hot class.
    - **M-step**: :math:`\pi_c` is the mean posterior over items with annotations or gold
      (the closed-form maximiser; :math:`\pi` separates from the rest of the expected
      complete log-likelihood). :math:`(\alpha, \log\beta)` maximise

      .. math::

          Q = \sum_{(i, j, l)} \big[ q_{jl}\, s_{ij} - \log(1 + e^{s_{ij}}) \big]
              + \log p(\alpha) + \log p(\log\beta) + \text{const},
          \qquad s_{ij} = \alpha_i \beta_j,

      by L-BFGS-B for at most ``m_step_iter`` iterations from the current values, with
      the analytic gradient :math:`\partial Q / \partial \alpha_i = \sum_{(i, j, l)}
      (q_{jl} - \sigma(s_{ij})) \beta_j - (\alpha_i - \mu_\alpha) / \tau_\alpha^2` and
      :math:`\partial Q / \partial \log\beta_j = \sum_{(i, j, l)} (q_{jl} - \sigma(s_{ij}))
      s_{ij} - (\log\beta_j - \mu_\beta) / \tau_\beta^2`. A step that does not raise
      :math:`Q` is rejected, so this is a generalised EM and :math:`F` never decreases.

    Parameters
    ----------
    matrix : AnnotationMatrix
        ``n_annotations`` triplets over ``n_items`` items, ``n_workers`` workers and
        ``n_classes`` classes (``K``).
    max_iter : int >= 1, default 100
        EM iterations per run (an iteration is one M-step and one E-step).
    tol : float >= 0, default 1e-5
        A run has converged when an iteration raises :math:`F` by less than
        ``tol * n_annotations`` (the change of the objective per annotation, as
        scikit-learn's mixtures use the per-sample lower bound).
    n_init : int >= 1, default 1
        Number of EM runs; the one with the highest :math:`F` is returned. The first run
        starts from majority-vote shares; run ``r > 0`` from a random mixture
        ``(1 - w) * shares + w * Dirichlet(1, ..., 1)`` per item with ``w ~ U(0, 1)``.
    m_step_iter : int >= 1, default 25
        L-BFGS-B iterations per M-step (crowd-kit's ``m_step_max_iter``). A partial
        M-step is enough for EM to climb; more makes each iteration slower.
    alpha_prior : (loc, scale), default (1.0, 1.0)
        Mean :math:`\mu_\alpha` and standard deviation :math:`\tau_\alpha > 0` of the
        Gaussian prior on worker ability. The positive mean breaks the symmetry
        :math:`(\alpha, Z) \to (-\alpha, \text{flipped } Z)` in favour of workers who
        are better than chance.
    beta_prior : (loc, scale), default (1.0, 1.0)
        Mean :math:`\mu_\beta` and standard deviation :math:`\tau_\beta > 0` of the
        Gaussian prior on :math:`\log \beta` (so :math:`\beta` is log-normal with
        median :math:`e^{\mu_\beta}`).
    gold : array of int, shape (n_items,), or mapping {item code: class code}, optional
        Known true classes, ``-1`` for unknown (``Encoding.encode_gold`` builds it).
        Gold items are clamped to their class in every E-step, so they inform the
        worker abilities and the class prior.
    random_state : int, numpy Generator or None, default 0
        Seeds the one ``np.random.Generator`` drawn from by every restart.

    Returns
    -------
    AggregationResult
        ``method="glad"``; ``posteriors`` ``(n_items, n_classes)`` from a final E-step
        with the returned parameters (rows sum to 1; items without annotations get
        ``class_prior``, gold items their one-hot class); ``labels = posteriors.argmax(1)``;
        ``worker_params={"alpha": (n_workers,)}``; ``item_params={"beta": (n_items,)}``
        (:math:`\beta_j > 0`); ``class_prior`` :math:`\pi`; ``log_likelihood`` is the MAP
        objective :math:`F` above: marginal log-likelihood of the labels (joint with the
        gold classes) plus the log prior densities of :math:`\alpha` and
        :math:`\log\beta`, constants included. Workers and items without annotations sit
        at the prior mean.

    Raises
    ------
    InputError
        ``matrix`` is not a non-empty AnnotationMatrix, an option is out of range, or
        ``gold`` has the wrong shape or classes.

    Warns
    -----
    ConvergenceWarning
        The best run stopped at ``max_iter`` before meeting ``tol``.

    Notes
    -----
    Cost per EM iteration: ``O(m_step_iter * n_annotations)`` for the M-step (each
    objective and gradient evaluation is one pass of ``np.bincount`` over the
    triplets) plus ``O(n_annotations + n_items * n_classes)`` for the E-step.
    When ``threadpoolctl`` is installed, BLAS runs single-threaded during the fit
    (scipy's L-BFGS-B is slow with a multi-threaded OpenBLAS); the previous thread
    count is restored on return.
    With one class every posterior is 1 and only the priors shape the parameters.
    The likelihood sees :math:`\log\beta` clipped to ``[-30, 30]`` (a guard against
    overflow in the line search), so keep :math:`\mu_\beta` well inside that range.

    References
    ----------
    J. Whitehill, P. Ruvolo, T. Wu, J. Bergsma and J. Movellan. Whose Vote Should
    Count More: Optimal Integration of Labels from Labelers of Unknown Expertise.
    Advances in Neural Information Processing Systems 22 (NIPS), 2009.

    Examples
    --------
    >>> from galton.quality import AnnotationMatrix, glad
    >>> m, enc = AnnotationMatrix.from_triplets(
    ...     [1, 1, 1, 2, 2, 2, 3, 3, 3], ["a", "b", "c"] * 3, ["x", "x", "y", "y", "y", "y", "x", "x", "x"]
    ... )
    >>> result = glad(m)
    >>> enc.decode_labels(result.labels)
    ['x', 'y', 'x']
    >>> bool(result.worker_params["alpha"][2] < result.worker_params["alpha"][0])
    True
    """
    matrix = check_matrix(matrix)
    check_positive("max_iter", max_iter, integer=True)
    check_positive("tol", tol, allow_zero=True)
    check_positive("n_init", n_init, integer=True)
    check_positive("m_step_iter", m_step_iter, integer=True)
    alpha_loc, alpha_scale = _check_prior("alpha_prior", alpha_prior)
    beta_loc, beta_scale = _check_prior("beta_prior", beta_prior)
    gold_codes = check_gold(gold, matrix)
    rng = as_generator(random_state)

    model = _GladModel(matrix, gold_codes, (alpha_loc, alpha_scale), (beta_loc, beta_scale))
    with _single_threaded_blas():
        best = model.fit(model.initial_posteriors(rng, 0), int(max_iter), float(tol), int(m_step_iter))
        for run in range(1, int(n_init)):
            fit = model.fit(model.initial_posteriors(rng, run), int(max_iter), float(tol), int(m_step_iter))
            if fit.objective > best.objective:
                best = fit
    if not best.converged:
        warn_not_converged("glad", int(max_iter), float(tol))

    return AggregationResult(
        method="glad",
        params={
            "max_iter": int(max_iter),
            "tol": float(tol),
            "n_init": int(n_init),
            "m_step_iter": int(m_step_iter),
            "alpha_prior": [alpha_loc, alpha_scale],
            "beta_prior": [beta_loc, beta_scale],
            "n_gold": 0 if gold_codes is None else int(np.count_nonzero(gold_codes >= 0)),
            "random_state": _echo_random_state(random_state),
        },
        labels=best.posteriors.argmax(axis=1).astype(np.int32),
        posteriors=best.posteriors,
        worker_params={"alpha": best.alpha},
        item_params={"beta": _beta(best.log_beta)},
        class_prior=best.class_prior,
        log_likelihood=best.objective,
        n_iter=best.n_iter,
        converged=best.converged,
    )


@dataclass(frozen=True)
class _Fit:
    alpha: NDArray[np.float64]
    log_beta: NDArray[np.float64]
    class_prior: NDArray[np.float64]
    posteriors: NDArray[np.float64]
    objective: float
    n_iter: int
    converged: bool


class _GladModel:
    """The triplets, priors and gold of one fit, with the E-step and M-step on them."""

    def __init__(
        self,
        matrix: AnnotationMatrix,
        gold: NDArray[np.int32] | None,
        alpha_prior: tuple[float, float],
        beta_prior: tuple[float, float],
    ) -> None:
        self.matrix = matrix
        self.items = matrix.items.astype(np.intp)
        self.workers = matrix.workers.astype(np.intp)
        self.labels = matrix.labels.astype(np.intp)
        self.n_items, self.n_workers, self.n_classes = matrix.n_items, matrix.n_workers, matrix.n_classes
        self.flat = self.items * self.n_classes + self.labels
        # log(K - 1): the wrong classes share 1 - sigma; with K = 1 there is no wrong class
        self.log_wrong = float(np.log(max(self.n_classes - 1, 1)))
        self.alpha_loc, self.alpha_scale = alpha_prior
        self.beta_loc, self.beta_scale = beta_prior
        self.gold = gold
        self.gold_items = np.flatnonzero(gold >= 0) if gold is not None else np.empty(0, dtype=np.intp)
        counted = matrix.item_sizes() > 0
        if gold is not None:
            counted |= gold >= 0
        # items that carry information about the class prior (the others add 0 to F)
        self.counted = np.flatnonzero(counted)

    # ------------------------------------------------------------------ initialisation
    def initial_posteriors(self, rng: np.random.Generator, run: int) -> NDArray[np.float64]:
        """Majority-vote shares for run 0; a random mixture with Dirichlet noise after."""
        shares = vote_shares(self.matrix)
        if run > 0:
            weight = rng.random()
            noise = rng.dirichlet(np.ones(self.n_classes), size=self.n_items)
            shares = (1.0 - weight) * shares + weight * noise
        return clamp_gold(shares, self.gold)

    # ------------------------------------------------------------------ EM
    def fit(self, posteriors: NDArray[np.float64], max_iter: int, tol: float, m_step_iter: int) -> _Fit:
        alpha = np.full(self.n_workers, self.alpha_loc)
        log_beta = np.full(self.n_items, self.beta_loc)
        class_prior = np.full(self.n_classes, 1.0 / self.n_classes)
        objective = -np.inf
        converged = False
        n_iter = 0
        while n_iter < max_iter and not converged:
            n_iter += 1
            class_prior, alpha, log_beta = self.m_step(posteriors, alpha, log_beta, m_step_iter)
            posteriors, new_objective = self.e_step(alpha, log_beta, class_prior)
            # GEM: the gain is >= 0 up to rounding, so a small gain is convergence
            converged = new_objective - objective < tol * self.matrix.n_annotations
            objective = new_objective
        # the loop ends on an E-step, so the posteriors match the returned parameters
        return _Fit(alpha, log_beta, class_prior, posteriors, float(objective), n_iter, converged)

    def e_step(
        self, alpha: NDArray[np.float64], log_beta: NDArray[np.float64], class_prior: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], float]:
        """Posteriors over the true class (gold clamped) and the MAP objective F."""
        s = alpha[self.workers] * _beta(log_beta)[self.items]
        softplus = np.logaddexp(0.0, s)
        # log P(l | c) = -softplus(s) - log(K-1) for every c, plus s + log(K-1) when l == c
        log_wrong = -softplus - self.log_wrong
        with np.errstate(divide="ignore"):
            log_prior = np.log(class_prior)
        log_post = np.bincount(self.flat, weights=s + self.log_wrong, minlength=self.n_items * self.n_classes)
        log_post = log_post.reshape(self.n_items, self.n_classes)
        log_post += np.bincount(self.items, weights=log_wrong, minlength=self.n_items)[:, None]
        log_post += log_prior
        posteriors, log_norm = normalise_log_rows(log_post)
        if self.gold_items.size:
            log_norm[self.gold_items] = log_post[self.gold_items, self.gold[self.gold_items]]
            clamp_gold(posteriors, self.gold)
        objective = float(log_norm.sum()) + self.log_prior_density(alpha, log_beta)
        return posteriors, objective

    def m_step(
        self,
        posteriors: NDArray[np.float64],
        alpha: NDArray[np.float64],
        log_beta: NDArray[np.float64],
        m_step_iter: int,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Class prior in closed form; (alpha, log beta) by L-BFGS-B, never downhill."""
        class_prior = posteriors[self.counted].mean(axis=0)
        q_true = posteriors[self.items, self.labels]
        x0 = np.concatenate([alpha, log_beta])
        f0, _ = self.neg_expected_log_joint(x0, q_true)
        result = minimize(
            self.neg_expected_log_joint,
            x0,
            args=(q_true,),
            method="L-BFGS-B",
            jac=True,
            options={"maxiter": m_step_iter},
        )
        x = result.x if np.isfinite(result.fun) and result.fun <= f0 else x0
        return class_prior, x[: self.n_workers].copy(), x[self.n_workers :].copy()

    def neg_expected_log_joint(
        self, x: NDArray[np.float64], q_true: NDArray[np.float64]
    ) -> tuple[float, NDArray[np.float64]]:
        """``-Q(alpha, log beta) / n_annotations`` and its gradient, up to a constant.

        ``x`` is ``alpha`` (n_workers,) then ``log beta`` (n_items,); ``q_true`` is the
        posterior of each annotation's own label, ``q[items, labels]``.
        """
        alpha = x[: self.n_workers]
        log_beta = x[self.n_workers :]
        inside = np.abs(log_beta) < _LOG_BETA_CLIP
        beta_t = _beta(log_beta)[self.items]
        s = alpha[self.workers] * beta_t
        value = float((q_true * s).sum() - np.logaddexp(0.0, s).sum())
        residual = q_true - expit(s)
        grad_alpha = np.bincount(self.workers, weights=residual * beta_t, minlength=self.n_workers)
        grad_log_beta = np.bincount(self.items, weights=residual * s, minlength=self.n_items)
        grad_log_beta[~inside] = 0.0  # the likelihood is flat in log(beta) past the clip
        z_alpha = (alpha - self.alpha_loc) / self.alpha_scale
        z_beta = (log_beta - self.beta_loc) / self.beta_scale
        value -= 0.5 * float(np.square(z_alpha).sum() + np.square(z_beta).sum())
        grad_alpha -= z_alpha / self.alpha_scale
        grad_log_beta -= z_beta / self.beta_scale
        scale = -1.0 / self.matrix.n_annotations
        return value * scale, np.concatenate([grad_alpha, grad_log_beta]) * scale

    def log_prior_density(self, alpha: NDArray[np.float64], log_beta: NDArray[np.float64]) -> float:
        """Sum of the Gaussian log densities of alpha and log beta, constants included."""
        total = 0.0
        for values, loc, scale in (
            (alpha, self.alpha_loc, self.alpha_scale),
            (log_beta, self.beta_loc, self.beta_scale),
        ):
            z = (values - loc) / scale
            total -= 0.5 * float(np.square(z).sum()) + values.size * (np.log(scale) + 0.5 * _LOG_2PI)
        return total


def _beta(log_beta: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.exp(np.clip(log_beta, -_LOG_BETA_CLIP, _LOG_BETA_CLIP))


def _single_threaded_blas() -> AbstractContextManager[Any]:
    """Run BLAS on one thread for the duration of a fit.

    Since scipy 1.15 L-BFGS-B is C code calling BLAS (ddot, daxpy, dpotrf, ...) on
    vectors of ``n_workers + n_items``; with a multi-threaded OpenBLAS each call pays a
    thread hand-off, which made fits 3-30x slower on a busy 2-core machine (scipy
    issues #22438 and #23191; botorch caps BLAS threads around ``minimize`` the same
    way). One thread also makes results independent of the machine's core count.
    """
    if threadpool_limits is None:  # pragma: no cover
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _check_prior(name: str, prior: Any) -> tuple[float, float]:
    try:
        loc, scale = prior
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a pair (loc, scale), got {prior!r}") from None
    for part, value in (("loc", loc), ("scale", scale)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InputError(f"{name} {part} must be a number, got {value!r}")
        if not np.isfinite(value):
            raise InputError(f"{name} {part} must be finite, got {value!r}")
    if scale <= 0:
        raise InputError(f"{name} scale (a standard deviation) must be > 0, got {scale!r}")
    return float(loc), float(scale)


def _echo_random_state(random_state: RandomState) -> int | str | None:
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    return None if random_state is None else "Generator"
