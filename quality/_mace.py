"""MACE: multi-annotator competence estimation (Hovy et al., NAACL 2013).

Each worker either *knows* the answer and gives the true label, or *spams* and draws
a label from a personal strategy. MACE learns, per worker, how often they know
(``theta``) and what they answer when they do not (``strategy``), and from those the
posterior over each item's true label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import digamma, expit, gammaln

from ._common import (
    RandomState,
    as_generator,
    check_gold,
    check_matrix,
    check_positive,
    clamp_gold,
    warn_not_converged,
)
from ._errors import InputError
from ._matrix import AnnotationMatrix
from ._result import AggregationResult

__all__ = ["mace"]

_METHODS = ("em", "vb")
# Probabilities are floored here in the E-step so that log(0) never appears
# (reachable only with smoothing=0, where a count can underflow to exactly 0).
_LOG_FLOOR = float(np.log(np.finfo(np.float64).tiny))
# Random initial parameters are 1 + U(0, _INIT_NOISE), normalised (MACE.java's default).
_INIT_NOISE = 0.5
# Restarts are screened for this many iterations; only the best one runs on to max_iter.
_SCREEN_ITER = 5


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class _Problem:
    """The annotations in the form the iterations need (built once per fit)."""

    n_items: int
    n_classes: int
    n_annotations: int
    item_class: NDArray[np.intp]  # (n_annotations,) items * K + labels, sorted
    worker_class: NDArray[np.intp]  # (n_annotations,) workers * K + labels, same order
    pair_counts: NDArray[np.float64]  # (n_workers, K) annotations per worker and label
    gold_items: NDArray[np.intp]  # (n_gold,) items with a known class
    gold_classes: NDArray[np.intp]  # (n_gold,) their class
    gold: NDArray[np.int32] | None  # (n_items,) -1 where unknown, or None

    @classmethod
    def build(cls, matrix: AnnotationMatrix, gold: NDArray[np.int32] | None) -> _Problem:
        k = matrix.n_classes
        item_class = matrix.items.astype(np.intp) * k + matrix.labels
        worker_class = matrix.workers.astype(np.intp) * k + matrix.labels
        # Item order makes the two per-iteration passes over the large (n_items, K)
        # arrays sequential instead of random: ~20% less time per iteration at 1M
        # annotations, for a one-off sort costing about eight iterations.
        if item_class.size > 1 and np.any(item_class[1:] < item_class[:-1]):
            order = np.argsort(item_class, kind="stable")
            item_class = item_class[order]
            worker_class = worker_class[order]
            del order
        pair_counts = np.bincount(worker_class, minlength=matrix.n_workers * k).astype(np.float64)
        if gold is not None and not np.any(gold >= 0):
            gold = None
        known = np.flatnonzero(gold >= 0) if gold is not None else np.zeros(0, dtype=np.intp)
        return cls(
            n_items=matrix.n_items,
            n_classes=k,
            n_annotations=matrix.n_annotations,
            item_class=item_class,
            worker_class=worker_class,
            pair_counts=pair_counts.reshape(matrix.n_workers, k),
            gold_items=known,
            gold_classes=gold[known].astype(np.intp) if gold is not None else known,
            gold=gold,
        )


@dataclass(frozen=True)
class _Params:
    """Worker parameters: log-probabilities the E-step uses, and their reported values.

    For EM the two agree (``theta = exp(log_know)``). For VB the logs are
    ``E_q[log theta]`` etc. (sub-normalised) and ``theta``/``strategy`` are the
    posterior means of ``q``.
    """

    log_know: NDArray[np.float64]  # (n_workers,)      log P(S=0)
    log_spam: NDArray[np.float64]  # (n_workers,)      log P(S=1)
    log_strategy: NDArray[np.float64]  # (n_workers, K)  log xi
    theta: NDArray[np.float64]  # (n_workers,)
    strategy: NDArray[np.float64]  # (n_workers, K)
    extra: float  # objective term beside the log-likelihood: log prior (EM) or -KL (VB)


@dataclass(frozen=True)
class _Options:
    method: str
    max_iter: int
    tol: float
    smoothing: float
    alpha: float
    beta: float
    strategy_prior: float


@dataclass(frozen=True)
class _Run:
    """One restart: its final parameters and the objective after every E-step."""

    params: _Params
    trace: NDArray[np.float64]
    n_iter: int
    converged: bool

    @property
    def objective(self) -> float:
        return float(self.trace[-1])


# --------------------------------------------------------------------------- steps
def _floor_log(values: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.maximum(values, _LOG_FLOOR)


def _e_step(problem: _Problem, params: _Params) -> tuple[NDArray[np.float64], float, NDArray[np.float64]]:
    """Posteriors over true labels, the log-likelihood and ``P(S=0 | A=k, T=k)`` per worker.

    With ``q_jk = (1 - theta_j) xi_jk`` and ``r_jk = theta_j + q_jk`` an annotation
    ``k`` by worker ``j`` has likelihood ``r_jk`` if ``T = k`` and ``q_jk`` otherwise,
    so ``log P(T_i = t, A_i) = -log K + sum_a log q_a + sum_{a: k_a = t} log(r_a / q_a)``.
    The middle sum does not depend on ``t``: it enters only the likelihood, as
    ``sum_jk n_jk log q_jk``. Cost: one gather and one bincount over the annotations.
    """
    k = problem.n_classes
    log_q = params.log_spam[:, None] + params.log_strategy  # (W, K)
    gap = params.log_know[:, None] - log_q  # log(theta / q)
    log_ratio = np.logaddexp(0.0, gap)  # log(r / q) >= 0
    scores = np.bincount(
        problem.item_class, weights=log_ratio.ravel()[problem.worker_class], minlength=problem.n_items * k
    ).reshape(problem.n_items, k)
    gold_scores = scores[problem.gold_items, problem.gold_classes]
    # In-place softmax: no (n_items, K) temporaries beside `scores` itself.
    top = scores.max(axis=1, keepdims=True)
    scores -= top
    np.exp(scores, out=scores)
    total = scores.sum(axis=1, keepdims=True)
    scores /= total
    log_norm = top[:, 0] + np.log(total[:, 0])
    # A gold item contributes log P(T_i = gold, A_i) instead of log P(A_i).
    log_lik = (
        float(np.dot(problem.pair_counts.ravel(), log_q.ravel()))
        - problem.n_items * np.log(k)
        + float(log_norm.sum() - log_norm[problem.gold_items].sum() + gold_scores.sum())
    )
    clamp_gold(scores, problem.gold)
    return scores, log_lik, expit(gap)


def _expected_counts(
    problem: _Problem, posteriors: NDArray[np.float64], know_share: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Expected non-spam counts per worker and spam counts per worker and label.

    ``P(S_a = 0 | A) = P(T_i = k_a | A) * theta_j / r_jk``, so the non-spam count of
    worker ``j`` on label ``k`` is ``(theta_j / r_jk) * sum_{a in (j, k)} P(T_{i_a} = k)``.
    Returns ``know (W,)`` and ``spam (W, K)``.
    """
    shape = problem.pair_counts.shape
    weights = posteriors.ravel()[problem.item_class]
    reach = np.bincount(problem.worker_class, weights=weights, minlength=shape[0] * shape[1]).reshape(shape)
    know = know_share * reach
    spam = np.maximum(problem.pair_counts - know, 0.0)
    return know.sum(axis=1), spam


def _sweep(problem: _Problem, params: _Params) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """E-step and expected counts; the posteriors are dropped at once."""
    posteriors, log_lik, know_share = _e_step(problem, params)
    know, spam = _expected_counts(problem, posteriors, know_share)
    return log_lik, know, spam


def _m_step_em(know: NDArray[np.float64], spam: NDArray[np.float64], smoothing: float) -> _Params:
    """Smoothed maximum-likelihood update: ``(count + delta) / (total + size * delta)``."""
    k = spam.shape[1]
    n_spam = spam.sum(axis=1)
    know_s, spam_s = know + smoothing, n_spam + smoothing
    total = know_s + spam_s
    empty = total <= 0  # workers without annotations and smoothing == 0
    know_s[empty], spam_s[empty], total[empty] = 1.0, 1.0, 2.0
    strat = spam + smoothing
    strat_total = strat.sum(axis=1, keepdims=True)
    idle = strat_total[:, 0] <= 0
    strat[idle], strat_total[idle] = 1.0, float(k)
    with np.errstate(divide="ignore"):
        log_total = np.log(total)
        params = _Params(
            log_know=_floor_log(np.log(know_s) - log_total),
            log_spam=_floor_log(np.log(spam_s) - log_total),
            log_strategy=_floor_log(np.log(strat) - np.log(strat_total)),
            theta=know_s / total,
            strategy=strat / strat_total,
            extra=0.0,
        )
    return _with_extra(params, _em_log_prior(params, smoothing))


def _em_log_prior(params: _Params, smoothing: float) -> float:
    """``delta * sum_j [log theta_j + log(1 - theta_j) + sum_k log xi_jk]``.

    Adding ``delta`` to the counts is MAP estimation under Beta(1 + delta, 1 + delta)
    and Dirichlet(1 + delta) priors; with this term the objective never decreases.
    """
    if smoothing == 0:
        return 0.0
    return smoothing * float(params.log_know.sum() + params.log_spam.sum() + params.log_strategy.sum())


def _with_extra(params: _Params, extra: float) -> _Params:
    return _Params(params.log_know, params.log_spam, params.log_strategy, params.theta, params.strategy, extra)


def _dirichlet_kl(post: NDArray[np.float64], prior: NDArray[np.float64]) -> float:
    """``sum_rows KL(Dir(post) || Dir(prior))``; a Beta is a Dirichlet with two columns."""
    post_sum = post.sum(axis=1)
    prior_sum = prior.sum(axis=1)
    kl = (
        gammaln(post_sum)
        - gammaln(post).sum(axis=1)
        - gammaln(prior_sum)
        + gammaln(prior).sum(axis=1)
        + ((post - prior) * (digamma(post) - digamma(post_sum)[:, None])).sum(axis=1)
    )
    return float(kl.sum())


def _m_step_vb(know: NDArray[np.float64], spam: NDArray[np.float64], options: _Options) -> _Params:
    """Mean-field update of ``q(theta_j) q(xi_j)`` and the sub-normalised E-step weights."""
    n_spam = spam.sum(axis=1)
    # column 0: not spamming (pseudo-count beta); column 1: spamming (alpha)
    prior_theta = np.empty((know.size, 2))
    prior_theta[:, 0], prior_theta[:, 1] = options.beta, options.alpha
    post_theta = prior_theta + np.column_stack([know, n_spam])
    dig_sum = digamma(post_theta[:, 0] + post_theta[:, 1])
    prior_strategy = np.full(spam.shape, options.strategy_prior)
    post_strategy = prior_strategy + spam
    post_strategy_sum = post_strategy.sum(axis=1, keepdims=True)
    kl = _dirichlet_kl(post_theta, prior_theta) + _dirichlet_kl(post_strategy, prior_strategy)
    return _Params(
        log_know=_floor_log(digamma(post_theta[:, 0]) - dig_sum),
        log_spam=_floor_log(digamma(post_theta[:, 1]) - dig_sum),
        log_strategy=_floor_log(digamma(post_strategy) - digamma(post_strategy_sum)),
        theta=post_theta[:, 0] / post_theta.sum(axis=1),
        strategy=post_strategy / post_strategy_sum,
        extra=-kl,
    )


def _initial_params(rng: np.random.Generator, n_workers: int, n_classes: int, options: _Options) -> _Params:
    """Random start as in MACE.java: weights ``1 + U(0, 0.5)``, normalised per worker."""
    pair = rng.uniform(1.0, 1.0 + _INIT_NOISE, size=(n_workers, 2))
    strat = rng.uniform(1.0, 1.0 + _INIT_NOISE, size=(n_workers, n_classes))
    return _params_from(pair[:, 0] / pair.sum(axis=1), strat / strat.sum(axis=1, keepdims=True), options)


def _params_from(theta: NDArray[np.float64], strategy: NDArray[np.float64], options: _Options) -> _Params:
    """Point parameters (the starting values of every run)."""
    theta = np.asarray(theta, dtype=np.float64)
    strategy = np.asarray(strategy, dtype=np.float64)
    with np.errstate(divide="ignore"):
        params = _Params(
            log_know=_floor_log(np.log(theta)),
            log_spam=_floor_log(np.log1p(-theta)),
            log_strategy=_floor_log(np.log(strategy)),
            theta=theta,
            strategy=strategy,
            extra=0.0,
        )
    if options.method == "em":
        params = _with_extra(params, _em_log_prior(params, options.smoothing))
    return params


def _iterate(
    problem: _Problem,
    options: _Options,
    start: _Params,
    max_iter: int,
    history: NDArray[np.float64] | None = None,
    done: int = 0,
) -> _Run:
    """EM or VB from ``start`` until ``max_iter`` iterations (M-step, then E-step) in all.

    The trace holds the objective after each E-step: for EM it starts at the random
    start (the smoothed log-likelihood is defined there); for VB it starts after the
    first update, when ``q`` exists and the ELBO is defined. ``history`` and ``done``
    continue an earlier run whose last parameters are ``start``.
    """
    log_lik, know, spam = _sweep(problem, start)
    if history is not None:
        trace = list(history)
    else:
        trace = [log_lik + start.extra] if options.method == "em" else []
    params = start
    converged = False
    n_iter = done
    threshold = options.tol * max(problem.n_annotations, 1)
    for n_iter in range(done + 1, max_iter + 1):  # noqa: B007 - n_iter is reported
        if options.method == "em":
            params = _m_step_em(know, spam, options.smoothing)
        else:
            params = _m_step_vb(know, spam, options)
        log_lik, know, spam = _sweep(problem, params)
        trace.append(log_lik + params.extra)
        if len(trace) >= 2 and abs(trace[-1] - trace[-2]) <= threshold:
            converged = True
            break
    return _Run(params=params, trace=np.asarray(trace), n_iter=n_iter, converged=converged)


# --------------------------------------------------------------------------- API
def _check_options(
    method: Any,
    n_init: Any,
    max_iter: Any,
    tol: Any,
    smoothing: Any,
    alpha: Any,
    beta: Any,
    strategy_prior: Any,
) -> _Options:
    if not isinstance(method, str) or method not in _METHODS:
        raise InputError(f"method must be 'em' (smoothed EM) or 'vb' (variational Bayes), got {method!r}")
    check_positive("n_init", n_init, integer=True)
    check_positive("max_iter", max_iter, integer=True)
    check_positive("tol", tol, allow_zero=True)
    check_positive("smoothing", smoothing, allow_zero=True)
    check_positive("alpha", alpha)
    check_positive("beta", beta)
    check_positive("strategy_prior", strategy_prior)
    return _Options(
        method=method,
        max_iter=int(max_iter),
        tol=float(tol),
        smoothing=float(smoothing),
        alpha=float(alpha),
        beta=float(beta),
        strategy_prior=float(strategy_prior),
    )


def _fit(
    matrix: AnnotationMatrix,
    *,
    method: str = "em",
    n_init: int = 10,
    max_iter: int = 200,
    tol: float = 1e-7,
    smoothing: float = 0.01,
    alpha: float = 0.5,
    beta: float = 0.5,
    strategy_prior: float = 10.0,
    gold: Any = None,
    random_state: RandomState = 0,
) -> tuple[_Problem, _Options, list[_Run], int]:
    """Validate, run every restart and return them with the index of the best.

    Restarts are screened: each runs ``min(max_iter, _SCREEN_ITER)`` iterations from
    its own random start; the one with the highest objective then runs on to
    ``max_iter``. The returned runs are the screened ones, except the best, which is
    complete.
    """
    matrix = check_matrix(matrix)
    options = _check_options(method, n_init, max_iter, tol, smoothing, alpha, beta, strategy_prior)
    problem = _Problem.build(matrix, check_gold(gold, matrix))
    rng = as_generator(random_state)
    screen = min(options.max_iter, _SCREEN_ITER)
    runs = []
    for _ in range(int(n_init)):
        start = _initial_params(rng, matrix.n_workers, matrix.n_classes, options)
        runs.append(_iterate(problem, options, start, screen))
    best = int(np.argmax([run.objective for run in runs]))
    first = runs[best]
    if not first.converged and first.n_iter < options.max_iter:
        runs[best] = _iterate(problem, options, first.params, options.max_iter, history=first.trace, done=first.n_iter)
    return problem, options, runs, best


def mace(
    matrix: AnnotationMatrix,
    *,
    method: str = "em",
    n_init: int = 10,
    max_iter: int = 200,
    tol: float = 1e-7,
    smoothing: float = 0.01,
    alpha: float = 0.5,
    beta: float = 0.5,
    strategy_prior: float = 10.0,
    gold: Any = None,
    random_state: RandomState = 0,
) -> AggregationResult:
    r"""MACE consensus: true labels, worker competence and spamming strategies.

    The generative model of Hovy et al. (2013). Item ``i`` has a true label
    :math:`T_i \sim \mathrm{Uniform}(K)`. On each annotation worker ``j`` spams with
    probability :math:`1 - \theta_j` (:math:`S_{ij} \sim \mathrm{Bernoulli}(1 - \theta_j)`);
    a worker who does not spam gives the true label, one who spams draws from their
    strategy :math:`\xi_j`:

    .. math::

        P(A_{ij} = k \mid T_i = t) = \theta_j [k = t] + (1 - \theta_j)\, \xi_{jk}.

    The posterior over true labels is

    .. math::

        P(T_i = t \mid A) \propto \prod_{j \in W_i} P(A_{ij} \mid T_i = t),

    and the expected counts are :math:`P(S_{ij} = 0 \mid A) = P(T_i = A_{ij} \mid A)
    \, \theta_j / (\theta_j + (1 - \theta_j) \xi_{j A_{ij}})`.

    ``method="em"`` maximises the marginal likelihood with EM, adding ``smoothing``
    (:math:`\delta`) to the fractional counts before normalising:
    :math:`\theta_j = (\mathbb{E}[\#S=0] + \delta) / (n_j + 2\delta)`,
    :math:`\xi_{jk} = (\mathbb{E}[\#S=1, A=k] + \delta) / (\mathbb{E}[\#S=1] + K\delta)`.
    This is MAP estimation under Beta(1 + δ, 1 + δ) and Dirichlet(1 + δ) priors.

    ``method="vb"`` is mean-field variational Bayes with
    :math:`1 - \theta_j \sim \mathrm{Beta}(\alpha, \beta)` (``alpha`` is the prior
    pseudo-count of spamming, ``beta`` of knowing, as ``thetaPriors`` in MACE.java) and
    :math:`\xi_j \sim \mathrm{Dirichlet}(\gamma, \dots, \gamma)` with
    :math:`\gamma` = ``strategy_prior``. Its E-step uses the sub-normalised weights
    :math:`\exp \mathbb{E}_q[\log \theta_j] = \exp(\psi(a_j) - \psi(a_j + b_j))` etc.

    Parameters
    ----------
    matrix : AnnotationMatrix
        ``n_annotations >= 1``. Items without annotations get a uniform posterior.
    method : {"em", "vb"}
        Smoothed EM or variational Bayes (MACE.java's default is ``"vb"``).
    n_init : int >= 1
        Random restarts. Each draws its start from the one generator, runs a few
        (5) iterations, and only the best by objective runs on to ``max_iter``.
    max_iter : int >= 1
        Iterations (M-step then E-step) of the best restart, screening included.
    tol : float >= 0
        Stop when the objective changes by at most ``tol`` per annotation.
        MACE.java runs a fixed 50 iterations (``max_iter=50, tol=0``). MACE's EM
        creeps: on the 8,315-item ``product`` set 50 iterations give 0.82 accuracy and
        convergence 0.84, so the defaults (200, 1e-7) iterate to convergence; they
        still cost at most ``5 * n_init + 200`` sweeps (about 4 s for 1M annotations).
    smoothing : float >= 0
        :math:`\delta` for ``method="em"`` (ignored by VB). MACE.java's default is
        ``0.01 / K``; 0.01 differs from it by well under a vote per worker.
    alpha, beta : float > 0
        Beta prior pseudo-counts of spamming and of knowing (``method="vb"``).
        The defaults 0.5, 0.5 are MACE.java's: a Jeffreys prior favouring workers
        who almost always know or almost always spam.
    strategy_prior : float > 0
        Symmetric Dirichlet parameter of each strategy :math:`\xi_j` (``method="vb"``).
        Default 10, the value MACE.java sets: strong smoothing towards a uniform
        strategy, so a strategy needs many spam votes to look like a true signal.
    gold : array of int, shape (n_items,), or mapping, optional
        Known class codes, ``-1`` for unknown (MACE's control items). Gold items'
        posteriors are clamped to their class in every E-step; their annotations
        then count as spam whenever they disagree with the gold label.
    random_state : int, Generator or None
        One generator supplies every restart's start; restarts therefore differ.

    Returns
    -------
    AggregationResult
        ``method="mace"``; ``posteriors`` of shape ``(n_items, K)`` with rows summing
        to 1 (gold items one-hot). ``worker_params``:

        - ``"theta"`` ``(n_workers,)`` in [0, 1]: probability the worker does *not*
          spam (higher is better; MACE.java's "competence"). VB: posterior mean.
        - ``"spamming_posterior"`` ``(n_workers,)`` in [0, 1]: the mean over the
          worker's annotations of :math:`P(S_{ij} = 1 \mid A)`; ``nan`` for a worker
          without annotations.
        - ``"strategy"`` ``(n_workers, K)``: :math:`\xi_j`, rows sum to 1 (VB:
          posterior mean).

        ``class_prior`` is uniform (the model's assumption). ``log_likelihood``: for
        EM the smoothed log-likelihood :math:`\log P(A, T_{gold}) + \delta \sum_j
        [\log \theta_j + \log(1 - \theta_j) + \sum_k \log \xi_{jk}]`, the quantity
        EM never decreases (with ``smoothing=0`` exactly the paper's marginal
        log-likelihood); for VB the evidence lower bound. ``n_iter``/``converged``
        describe the chosen restart.
        ``labels_at_coverage`` gives MACE's ``--threshold`` (keep the most certain
        items by posterior entropy).

    Raises
    ------
    InputError
        Not an AnnotationMatrix or empty; unknown ``method``; ``n_init`` or
        ``max_iter`` not a whole number >= 1; ``tol`` or ``smoothing`` negative;
        ``alpha``, ``beta`` or ``strategy_prior`` not > 0; bad ``gold``.

    Warns
    -----
    ConvergenceWarning
        When the chosen restart ran ``max_iter`` iterations without meeting ``tol``.

    Notes
    -----
    Cost per iteration: two gathers and two ``bincount`` passes over the annotations
    plus a softmax over ``(n_items, K)``; the ``(n_annotations, K)`` table is never
    formed. Memory: two ``intp`` index arrays and one float temporary per annotation,
    plus about three ``(n_items, K)`` arrays. Total sweeps: at most
    ``5 * n_init + max_iter``.

    Comparing with crowd-kit (1.4): its ``MACE`` indexes parameters by
    ``pd.factorize`` (first-appearance) order but builds the strategy counts with a
    sorted ``groupby``, so unless worker and label codes first appear in sorted order
    it pairs each strategy with the wrong workers or labels. That changes its answers
    (zencrowd: 0.864 with sorted class codes, 0.788 with first-appearance codes).
    Feed it first-appearance codes (``pd.factorize``) to compare the MACE model itself;
    then this function and crowd-kit agree. crowd-kit also re-seeds every restart
    (they are identical) and always runs 50 iterations.

    References
    ----------
    D. Hovy, T. Berg-Kirkpatrick, A. Vaswani and E. Hovy. Learning Whom to Trust with
    MACE. *Proceedings of NAACL-HLT 2013*, 1120-1130. https://aclanthology.org/N13-1132

    Examples
    --------
    >>> from galton.quality import AnnotationMatrix
    >>> m, enc = AnnotationMatrix.from_triplets(
    ...     [1, 1, 1, 2, 2, 2, 3, 3, 3], ["a", "b", "c"] * 3, ["x", "x", "y", "y", "y", "y", "x", "x", "x"])
    >>> result = mace(m)
    >>> enc.decode_labels(result.labels)
    ['x', 'y', 'x']
    >>> bool(result.worker_params["theta"][2] < result.worker_params["theta"][0])
    True
    """
    problem, options, runs, best = _fit(
        matrix,
        method=method,
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        smoothing=smoothing,
        alpha=alpha,
        beta=beta,
        strategy_prior=strategy_prior,
        gold=gold,
        random_state=random_state,
    )
    run = runs[best]
    if not run.converged:
        warn_not_converged("mace", options.max_iter, options.tol)
    # final E-step: the posteriors and spam shares of the stored parameters
    posteriors, _, know_share = _e_step(problem, run.params)
    _, spam = _expected_counts(problem, posteriors, know_share)
    n_annotations = problem.pair_counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        spamming = np.where(n_annotations > 0, spam.sum(axis=1) / n_annotations, np.nan)
    k = problem.n_classes
    return AggregationResult(
        method="mace",
        params={
            "method": options.method,
            "n_init": int(n_init),
            "max_iter": options.max_iter,
            "tol": options.tol,
            "smoothing": options.smoothing,
            "alpha": options.alpha,
            "beta": options.beta,
            "strategy_prior": options.strategy_prior,
            "gold_items": int(problem.gold_items.size),
            "random_state": int(random_state) if isinstance(random_state, (int, np.integer)) else None,
        },
        labels=posteriors.argmax(axis=1),
        posteriors=posteriors,
        worker_params={
            "theta": run.params.theta,
            "spamming_posterior": np.clip(spamming, 0.0, 1.0),
            "strategy": run.params.strategy,
        },
        class_prior=np.full(k, 1.0 / k),
        log_likelihood=run.objective,
        n_iter=run.n_iter,
        converged=run.converged,
    )
