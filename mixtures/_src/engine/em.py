"""The EM engine: chunked E-step and accumulation, M-step, and the compiled fit loop.

Nothing here knows which family it fits; see :mod:`mixtures.family` for the
contract. All functions are pure and run under ``jit``; the public
:func:`em_step` validates its input on the host first.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from mixtures._src.core import checks
from mixtures._src.core import blocks
from mixtures._src.core import progress
from mixtures._src.families.gradient import GradientFamily
from mixtures._src.core.mixture import Mixture, finite_components, responsibilities_from_log_probs, where_components

_HI = lax.Precision.HIGHEST
# A family's matrix-product form is compiled only for passes of at least this many
# multiply-adds (N·K·M) and rows of at least this many statistics (M): below either, it
# saved less run time than its second compiled branch costs (about 0.8 s of compile;
# the Gaussian's M = 5 for D = 2 ran no faster than the whitened residuals).
PRODUCTS_MIN_WORK = 1 << 24
PRODUCTS_MIN_WIDTH = 16

__all__ = ["FitResult", "Sums", "accumulate", "em_step", "fit_loop", "init_from_points", "log_prior", "maximize"]


class FitResult(NamedTuple):
    """What :func:`mixtures.fit` returns (a pytree).

    Attributes:
      mixture: the fitted :class:`~mixtures.Mixture`.
      log_likelihood: scalar, mean log-likelihood per sample of ``mixture``
        (weighted by ``sample_weight`` when given). With a prior, the mean log
        posterior per sample: (Σₙ wₙ log p(xₙ) + log p(θ)) / Σₙ wₙ, log p(θ)
        without its normalising constant (see :func:`log_prior`).
      history: (max_iter,) mean log-likelihood (or log posterior) at the
        start of each iteration (before its M-step); NaN after the last
        iteration run.
      n_iter: number of EM iterations (M-steps) run.
      converged: whether the change in mean log-likelihood between two
        iterations fell below ``tol`` before ``max_iter``.
      all_log_likelihoods: (R,) final mean log-likelihood of every restart
        (R = ``n_init``); ``mixture`` is the restart with the highest.
      all_n_iter: (R,) iterations run by every restart.
      all_converged: (R,) convergence flag of every restart.
      n_collapsed: int32 scalar, the number of components that collapsed
        during the EM iterations of the returned restart: switched-on
        components (weight > 0) whose M-step update :func:`maximize` refused
        at least once, because their count Σₙ wₙ rₙₖ fell below 10·ε or
        their new parameters were not all finite. Each such component kept
        its previous parameters at that iteration (see
        ``docs/numerics.md``). 0 on well-posed data; between 0 and K.
      all_n_collapsed: (R,) ``n_collapsed`` of every restart.
    """

    mixture: Mixture
    log_likelihood: jax.Array
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    all_log_likelihoods: jax.Array
    all_n_iter: jax.Array
    all_converged: jax.Array
    n_collapsed: jax.Array
    all_n_collapsed: jax.Array


class Sums(NamedTuple):
    """Sums over the data: per-component counts and statistics, and Σₙ wₙ log p(xₙ)."""

    counts: jax.Array
    stats: object
    log_likelihood: jax.Array


def accumulate(
    mixture: Mixture, x, weights, chunk_size: int, hard: bool = False, labels=None, *, products: bool = True
) -> Sums:
    """E-step and accumulation, block by block over the rows.

    When the family has a :class:`~mixtures.family.GemmForm` for the current
    parameters, the pass is large enough to repay its compilation (N·K·M at
    least :data:`PRODUCTS_MIN_WORK` and M at least :data:`PRODUCTS_MIN_WIDTH`,
    decided from the static shapes), a block of T(rows) is at most 4× the
    (rows, K, D) block the chunk size is set for, and the form is usable for
    every restart run side by side (see :func:`mixtures._chunks.vmap_restarts`;
    never inside a mesh fit's per-device program), each block costs two matrix
    products, T(rows) @ η and Rᵀ T(rows), and the log-likelihood comes from
    the statistics (Σₙₖ rₙₖ (log πₖ + log pₖ(xₙ) − log rₙₖ), with
    Σₙ rₙₖ log pₖ(xₙ) from :meth:`~mixtures.Family.expected_log_prob`);
    otherwise from :meth:`~mixtures.Family.log_prob_components_and_cache`
    and :meth:`~mixtures.Family.accumulate_from_cache`. Both give the same
    sums up to rounding; the choice is made once per call, under ``lax.cond``.

    Args:
      mixture: current mixture.
      x: (N, D) data.
      weights: (N,) row weights or None.
      chunk_size: rows per block.
      hard: replace responsibilities by one-hot argmax assignments
        (classification EM); the log-likelihood term is then the complete-data
        one, maxₖ log πₖ p(xₙ | θₖ).
      labels: optional (N,) int32 component of each labelled row, −1 for
        unlabelled rows. A labelled row's responsibilities are one-hot at its
        label and its log-likelihood term is log π_l p(xₙ | θ_l).
      products: False skips the matrix-product form (one compiled path:
        for passes that run once, where a second branch would only add
        compile time).

    Returns:
      :class:`Sums` over all rows.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> from mixtures import engine
      >>> g = mx.Gaussian("diag")
      >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[0.0], [4.0]]), np.ones((2, 1))), g)
      >>> sums = engine.accumulate(m, np.array([[0.0], [4.0], [4.0]]), None, chunk_size=2)
      >>> sums.counts.round(3).tolist()
      [1.0, 2.0]
    """
    family = mixture.family
    log_weights = jnp.log(mixture.weights)[None, :]

    def block(rows, w, idx):
        logp, cache = family.log_prob_components_and_cache(mixture.params, rows)
        resp, ll = responsibilities_from_log_probs(logp + log_weights, hard, None if labels is None else labels[idx])
        resp = resp * w[:, None]
        ll_sum = jnp.sum(jnp.where(w > 0, w * ll, 0.0))
        return Sums(jnp.sum(resp, axis=0), family.accumulate_from_cache(mixture.params, rows, resp, cache), ll_sum)

    def by_blocks():
        return blocks.sum_over_chunks(block, x, weights, chunk_size)

    form = family.gemm_form(mixture.params) if products else None
    if form is None:
        return by_blocks()
    width = form.natural.shape[0]
    k = mixture.weights.shape[-1]
    if width < PRODUCTS_MIN_WIDTH or x.shape[0] * k * width < PRODUCTS_MIN_WORK or width > 4 * k * x.shape[1]:
        return by_blocks()
    usable = blocks.for_all_restarts(form.usable)
    if usable is None:
        return by_blocks()

    def gemm_block(rows, w, idx):
        t = family.gemm_features(form.aux, rows)
        logp = jnp.dot(t, form.natural, precision=_HI) + form.offset[None, :]
        resp, _ = responsibilities_from_log_probs(logp + log_weights, hard, None if labels is None else labels[idx])
        weighted = resp * w[:, None]
        entropy = jnp.sum(jnp.where(resp > 0, weighted * jnp.log(jnp.where(resp > 0, resp, 1.0)), 0.0))
        return Sums(jnp.sum(weighted, axis=0), jnp.dot(weighted.T, t, precision=_HI), entropy)

    def by_products():
        # The log-likelihood is Σₙₖ rₙₖ (log πₖ + log pₖ(xₙ) − log rₙₖ), its E-step identity, with
        # Σₙ rₙₖ log pₖ(xₙ) from the family's statistics rather than from the expanded
        # log-densities: those carry the form's rounding, which does not average out over rows.
        s = blocks.sum_over_chunks(gemm_block, x, weights, chunk_size)
        stats = family.gemm_stats(form.aux, s.stats, s.counts, mixture.params)
        expected = jnp.where(
            s.counts > 0, s.counts * log_weights[0] + family.expected_log_prob(stats, s.counts, mixture.params), 0.0
        )
        return Sums(s.counts, stats, jnp.sum(expected) - s.log_likelihood)

    return lax.cond(usable, by_products, by_blocks)


def maximize(mixture: Mixture, sums: Sums, update_weights: bool = True, *, params=None, prior=None) -> Mixture:
    """M-step: new weights πₖ ∝ Nₖ and the family's new parameters.

    The new parameters are ``family.m_step`` of the summed statistics, or
    ``params`` when given (parameters already computed from the data, as for a
    :class:`~mixtures.gradient.GradientFamily`). With a
    :class:`~mixtures.priors.Prior` whose ``components`` is set, they are
    ``family.map_step`` (the posterior mode) instead; with its ``weights`` a
    :class:`~mixtures.priors.DirichletPrior` (α), πₖ ∝ Nₖ + α − 1. A component whose count is
    below 10·ε (ε the dtype's machine epsilon), or whose new parameters are
    not all finite, keeps its previous parameters;
    its weight still follows its count, so an empty component's weight is
    (nearly) zero. As in scikit-learn, 10·ε is added to every count so no
    weight is exactly zero. With ``update_weights=False`` the weights are
    kept as they are. A refused update of a switched-on component (weight
    > 0) is what :attr:`FitResult.n_collapsed` counts.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> from mixtures import engine
      >>> g = mx.Gaussian("diag")
      >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[0.0], [4.0]]), np.ones((2, 1))), g)
      >>> x = np.array([[0.0], [4.0], [4.0]])
      >>> engine.maximize(m, engine.accumulate(m, x, None, chunk_size=3)).weights.round(3).tolist()
      [0.333, 0.667]
    """
    return _maximize(mixture, sums, update_weights, params, prior)[0]


def _maximize(mixture: Mixture, sums: Sums, update_weights: bool, params, prior):
    """:func:`maximize`, also returning the (K,) mask of switched-on components whose update it refused."""
    counts = sums.counts
    eps = jnp.finfo(counts.dtype).eps
    family = mixture.family
    if params is not None:
        new = params
    elif prior is None or prior.components is None:
        new = family.m_step(sums.stats, counts, mixture.params)
    else:
        new = family.map_step(sums.stats, counts, mixture.params, prior.components, mixture.weights)
    update = (counts >= 10 * eps) & finite_components(new)
    refused = (mixture.weights > 0) & ~update
    params = where_components(update, new, mixture.params)
    if not update_weights:
        return Mixture(mixture.weights, params, family), refused
    pseudo = counts + 10 * eps
    if prior is not None and prior.weights is not None:
        pseudo = pseudo + (prior.weights.concentration - 1)
    nk = jnp.where(mixture.weights > 0, pseudo, 0.0)
    return Mixture(nk / jnp.sum(nk), params, family), refused


def log_prior(mixture: Mixture, prior) -> jax.Array:
    """log p(θ) of a mixture's parameters and weights under ``prior``, up to a constant.

    The sum of ``family.log_prior`` (when ``prior.components`` is set) and
    (α − 1) Σₖ log πₖ (when ``prior.weights`` is a Dirichlet(α)), both over
    the switched-on components (πₖ > 0). The dropped constant depends on the
    prior and K only, so differences between mixtures are exact.

    Args:
      mixture: the mixture.
      prior: a :class:`~mixtures.priors.Prior` of validated arrays, or None (0).

    Returns:
      A scalar.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> from mixtures import engine
      >>> from mixtures.priors import DirichletPrior, Prior
      >>> g = mx.Gaussian("diag")
      >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.zeros((2, 1)), np.ones((2, 1))), g)
      >>> round(float(engine.log_prior(m, Prior(weights=DirichletPrior(np.array(2.0))))), 6)  # 2 log ½
      -1.386294
    """
    weights = mixture.weights
    total = jnp.zeros((), weights.dtype)
    if prior is None:
        return total
    if prior.components is not None:
        total = total + mixture.family.log_prior(mixture.params, prior.components, weights)
    if prior.weights is not None:
        on = weights > 0
        log_w = jnp.where(on, jnp.log(jnp.where(on, weights, 1.0)), 0.0)
        total = total + (prior.weights.concentration - 1) * jnp.sum(log_w)
    return total


def _objective(mixture: Mixture, log_likelihood_sum, prior):
    """Σₙ wₙ log p(xₙ), plus log p(θ) when a prior is given (the monotone quantity of MAP-EM)."""
    if prior is None:
        return log_likelihood_sum
    return log_likelihood_sum + log_prior(mixture, prior)


def _total_weight(x, weights):
    """Σₙ wₙ over all rows (every device's, inside :func:`mixtures._chunks.rows_split_over`)."""
    total = jnp.asarray(x.shape[0], x.dtype) if weights is None else jnp.sum(weights)
    return blocks.across_devices(total)


def em_step_impl(
    mixture: Mixture,
    x,
    weights,
    chunk_size: int,
    hard: bool = False,
    update_weights: bool = True,
    labels=None,
    prior=None,
):
    """One E+M step without validation; returns (new mixture, mean log-likelihood before).

    A :class:`~mixtures.gradient.GradientFamily` has no M-step from summed
    statistics: its new parameters come from optimiser steps over the data
    (:meth:`~mixtures.gradient.GradientFamily.m_step_from_data`), and the
    weights and the empty/non-finite rule from :func:`maximize` as usual.
    With ``prior`` (a validated :class:`~mixtures.priors.Prior`) the M-step
    is the posterior mode and the returned value is the mean log posterior
    (Σₙ wₙ log p(xₙ) + :func:`log_prior`) / Σₙ wₙ, both before the step.
    """
    return _em_step(mixture, x, weights, chunk_size, hard, update_weights, labels, prior)[:2]


def _em_step(mixture, x, weights, chunk_size, hard, update_weights, labels, prior, products=True):
    """:func:`em_step_impl`, also returning the mask of refused updates (see :func:`_maximize`)."""
    sums = accumulate(mixture, x, weights, chunk_size, hard, labels, products=products)
    params = None
    if isinstance(mixture.family, GradientFamily):
        params = mixture.family.m_step_from_data(mixture, x, weights, chunk_size, hard, labels)
    new, refused = _maximize(mixture, sums, update_weights, params, prior)
    return new, _objective(mixture, sums.log_likelihood, prior) / _total_weight(x, weights), refused


def em_step(mixture: Mixture, x, *, sample_weight=None, chunk_size: int | None = None):
    """One EM iteration: E-step, accumulation, M-step.

    Jit-able: inside ``jax.jit`` only shapes are checked.

    Args:
      mixture: the current :class:`~mixtures.Mixture`.
      x: (N, D) data.
      sample_weight: optional (N,) non-negative row weights.
      chunk_size: rows per block; default chosen from K and D.

    Returns:
      ``(new_mixture, log_likelihood)``, the latter the mean log-likelihood
      per sample of ``mixture`` (before the step).

    Example:
      >>> import jax, mixtures as mx
      >>> x = mx.datasets.load_old_faithful()
      >>> m = mx.fit(x, mx.Gaussian(), 2, key=jax.random.key(0), max_iter=5).mixture
      >>> m2, ll = mx.em_step(m, x)
      >>> bool(m2.log_prob(x).mean() >= ll)
      True
    """
    x = mixture._data(x)
    weights = checks.as_sample_weight(sample_weight, x.shape[0])
    if weights is not None and not checks.is_traced(weights):
        weights = checks.unit_mean_weights(weights, x.dtype)
    elif weights is not None:
        weights = jnp.asarray(weights, x.dtype)
    return _em_step_jit(mixture, x, weights, mixture._chunk(chunk_size))


@functools.partial(jax.jit, static_argnums=3)
def _em_step_jit(mixture, x, weights, chunk_size):
    return em_step_impl(mixture, x, weights, chunk_size)


def fit_loop(
    mixture: Mixture,
    x,
    weights,
    tol,
    max_iter: int,
    chunk_size: int,
    hard: bool = False,
    update_weights: bool = True,
    labels=None,
    prior=None,
    report: bool = False,
    restart=0,
) -> FitResult:
    """EM from ``mixture`` until the mean log-likelihood changes by less than ``tol``.

    One ``lax.while_loop``; jit- and vmap-compatible (``max_iter``,
    ``chunk_size``, ``hard`` and ``update_weights`` static). With ``hard``
    (classification EM) the monitored quantity is the complete-data
    log-likelihood of the hard assignments; with ``labels`` (see
    :func:`accumulate`) labelled rows contribute their complete-data term.
    With ``prior`` (a validated :class:`~mixtures.priors.Prior`, a pytree of
    arrays) this is MAP-EM: every M-step is the posterior mode, and the
    monitored quantity, ``history`` and ``log_likelihood`` are the mean log
    posterior per sample, which never decreases. With ``report`` (static)
    every iteration sends (``restart``, iteration, value) to the host through
    ``jax.debug.callback``, to the receiver installed by
    :func:`mixtures._progress.receiving`. ``n_collapsed`` counts the
    switched-on components whose update :func:`maximize` refused in at
    least one of the iterations (the initial ``mixture`` is not judged).
    Traced as the per-device program of a data-parallel fit
    (:mod:`mixtures._parallel`), ``x``, ``weights`` and ``labels`` are this
    device's rows, every sum over rows is over all devices' rows, and only
    the first device reports.

    Example:
      >>> import jax, numpy as np, mixtures as mx
      >>> from mixtures import engine
      >>> x = mx.datasets.load_old_faithful()
      >>> start = mx.fit(x, mx.Gaussian(), 2, key=jax.random.key(0), max_iter=1).mixture
      >>> r = engine.fit_loop(start, jax.numpy.asarray(x), None, 1e-3, max_iter=50, chunk_size=100)
      >>> bool(r.converged), r.history.shape
      (True, (50,))
    """
    total = _total_weight(x, weights)
    dtype = x.dtype

    def cond(state):
        _, i, _, _, converged, _ = state
        return (i < max_iter) & ~converged

    def body(state):
        m, i, previous, history, _, collapsed = state
        new, ll, refused = _em_step(m, x, weights, chunk_size, hard, update_weights, labels, prior)
        collapsed = collapsed | refused
        if report:
            # With rows split over devices every device runs this loop: one reports.
            jax.debug.callback(progress.emit, blocks.first_device_only(cond(state)), restart, i + 1, ll)
        return new, i + 1, ll, history.at[i].set(ll), jnp.abs(ll - previous) < tol, collapsed

    init = (
        mixture,
        jnp.asarray(0, jnp.int32),
        jnp.asarray(-jnp.inf, dtype),
        jnp.full((max_iter,), jnp.nan, dtype),
        jnp.asarray(False),
        jnp.zeros(mixture.weights.shape, bool),
    )
    m, n_iter, _, history, converged, collapsed = lax.while_loop(cond, body, init)
    final = _objective(m, accumulate(m, x, weights, chunk_size, hard, labels, products=False).log_likelihood, prior) / total
    n_collapsed = jnp.sum(collapsed, dtype=jnp.int32)
    return FitResult(
        mixture=m,
        log_likelihood=final,
        history=history,
        n_iter=n_iter,
        converged=converged,
        all_log_likelihoods=final[None],
        all_n_iter=n_iter[None],
        all_converged=converged[None],
        n_collapsed=n_collapsed,
        all_n_collapsed=n_collapsed[None],
    )


def init_from_points(
    family, points, x, weights, chunk_size: int, labels=None, initial_weights=None
) -> Mixture:
    """Components at the given rows, refined by one hard-assignment EM step.

    Every row is assigned to the component under which it is most likely
    (equal weights, or ``initial_weights``; a labelled row to its label), and
    the M-step is taken from those assignments.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> from mixtures import engine
      >>> x = np.array([[0.0], [0.2], [5.0], [5.4]])
      >>> m = engine.init_from_points(mx.Gaussian("diag"), x[[0, 2]], x, None, chunk_size=4)
      >>> m.params.means.round(3).tolist(), m.weights.round(3).tolist()
      ([[0.1], [5.2]], [0.5, 0.5])
    """
    k = points.shape[0]
    w0 = jnp.full((k,), 1.0 / k, x.dtype) if initial_weights is None else initial_weights
    start = Mixture(w0, family.init_params(points, x), family)
    return _em_step(start, x, weights, chunk_size, hard=True, update_weights=True, labels=labels, prior=None, products=False)[0]
