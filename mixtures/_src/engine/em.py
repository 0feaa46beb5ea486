"""The EM engine: E-step and accumulation over row blocks, M-step, and the compiled fit loop.

Nothing here knows which family it fits: it holds a family to the contract of
:class:`~mixtures.Family` (log-densities, additive statistics, M-step) and
takes the family's one optional fast path, :meth:`~mixtures.Family.fast_sums`,
where the family offers one. Every function is pure and runs under ``jit``;
what changes the compiled program arrives as one static
:class:`~mixtures.engine.EMOptions`, and the per-row arrays as one
:class:`~mixtures.engine.Rows` pytree.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from mixtures._src.core import blocks, progress
from mixtures._src.core.mixture import Mixture, finite_components, where_components
from mixtures._src.core.posterior import Posterior, Sums
from mixtures._src.engine.options import EMOptions, Rows

__all__ = [
    "EMOptions", "FitResult", "LoopState", "Rows", "Sums", "accumulate", "advance", "finish_loop", "fit_loop",
    "init_from_points", "log_prior", "maximize", "running", "start_loop", "step",
]


class FitResult(NamedTuple):
    """What :func:`mixtures.fit` returns (a pytree).

    Attributes:
      mixture: the fitted :class:`~mixtures.Mixture`.
      log_likelihood: scalar, mean log-likelihood per sample of ``mixture``
        (weighted by ``sample_weight`` when given). With a prior, the mean log
        posterior per sample: (Σₙ wₙ log p(xₙ) + log p(θ)) / Σₙ wₙ, log p(θ)
        without its normalising constant (see :func:`log_prior`).
      history: mean log-likelihood (or log posterior) at the start of each
        iteration (before its M-step). From :func:`mixtures.fit` and
        :func:`mixtures.select`, shape (n_iter,): the iterations run, so
        its memory does not depend on ``max_iter``. From
        :func:`~mixtures.engine.fit_loop`, which runs under ``jit``,
        (max_iter,), NaN after the last iteration run.
      n_iter: number of EM iterations (M-steps) run.
      converged: whether the change in mean log-likelihood between the
        last two entries of ``history`` fell below ``tol``, or within the
        dtype's resolution of it (see :func:`has_converged`), by ``max_iter``.
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


def accumulate(mixture: Mixture, rows: Rows, options: EMOptions, *, once: bool = False, log_weights=None) -> Sums:
    """E-step and accumulation over all rows, block by block.

    With ``options.missing`` (rows with missing entries, NaN), per block the
    family's :meth:`~mixtures.Family.log_prob_observed` and
    :meth:`~mixtures.Family.accumulate_observed`. Otherwise, where the family
    offers :meth:`~mixtures.Family.fast_sums` (and ``options.fast`` is not
    "never"), its pass; otherwise the generic one:
    per block of ``options.chunk_size`` rows, the family's log-densities, the
    responsibilities (hard with ``options.hard``; a labelled row's one-hot at
    its label, with its complete-data term log π_l p(xₙ | θ_l)), and the
    family's statistics weighted by them.

    Args:
      mixture: current mixture.
      rows: the data, row weights and labels.
      options: the static options (chunk size, hard, fast path, axes).
      once: a pass that runs once per compiled program (the final
        log-likelihood, an initialisation): the family compiles one path.
      log_weights: (K,) log-weights to use instead of log πₖ, which need
        not be normalised (variational Bayes passes E_q[log πₖ] plus the
        family's offsets); the log-likelihood is then
        Σₙ wₙ log Σₖ exp(log_weightsₖ + log p(xₙ | θₖ)).

    Returns:
      :class:`~mixtures.engine.Sums` over all rows.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> from mixtures import engine
      >>> g = mx.Gaussian("diag")
      >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[0.0], [4.0]]), np.ones((2, 1))), g)
      >>> rows = engine.Rows(np.array([[0.0], [4.0], [4.0]]))
      >>> engine.accumulate(m, rows, engine.EMOptions(chunk_size=2)).counts.round(3).tolist()
      [1.0, 2.0]
    """
    family = mixture.family
    log_w = jnp.log(mixture.weights) if log_weights is None else log_weights
    posterior = Posterior(log_w, options.hard, rows.labels)
    if options.missing:

        def observed_block(x, w, index):
            sums = family.observed_sums(mixture.params, x, w, index, posterior, options.missing)
            if sums is not None:
                return sums
            logp = family.log_prob_observed(mixture.params, x, options.missing)
            resp, ll_sum = posterior.weighted(logp, index, w)
            stats = family.accumulate_observed(mixture.params, x, resp, options.missing)
            return Sums(jnp.sum(resp, axis=0), stats, ll_sum)

        return blocks.sum_over_chunks(observed_block, rows.x, rows.weights, options.chunk_size, options.axes)
    if options.fast != "never":
        mode = "once" if once else options.fast
        sums = family.fast_sums(
            mixture.params, rows.x, rows.weights, posterior, chunk_size=options.chunk_size, axes=options.axes, mode=mode
        )
        if sums is not None:
            return sums

    def block(x, w, index):
        resp, ll_sum = posterior.weighted(family.log_prob_components(mixture.params, x), index, w)
        return Sums(jnp.sum(resp, axis=0), family.accumulate(mixture.params, x, resp), ll_sum)

    return blocks.sum_over_chunks(block, rows.x, rows.weights, options.chunk_size, options.axes)


def maximize(mixture: Mixture, sums: Sums, update_weights: bool = True, *, params=None, prior=None) -> Mixture:
    """M-step: new weights πₖ ∝ Nₖ and the family's new parameters.

    The new parameters are ``family.m_step`` of the summed statistics, or
    ``params`` when given (parameters already computed from the data, for a
    family whose :attr:`~mixtures.Family.m_step_needs_data`). With a
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
      >>> sums = engine.accumulate(m, engine.Rows(x), engine.EMOptions(chunk_size=3))
      >>> engine.maximize(m, sums).weights.round(3).tolist()
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


def _total_weight(rows: Rows, axes) -> jax.Array:
    """Σₙ wₙ over all rows (every device's, when the rows are split over devices)."""
    x = rows.x
    total = jnp.asarray(x.shape[0], x.dtype) if rows.weights is None else jnp.sum(rows.weights)
    return axes.sum_over_devices(total)


def step(mixture: Mixture, rows: Rows, options: EMOptions, prior=None, *, once: bool = False):
    """One E+M step; returns (new mixture, mean objective before the step, (K,) refused updates).

    The mean objective is Σₙ wₙ log p(xₙ) / Σₙ wₙ of ``mixture`` (with
    ``prior``, a validated :class:`~mixtures.priors.Prior`, the mean log
    posterior (Σₙ wₙ log p(xₙ) + :func:`log_prior`) / Σₙ wₙ, and the M-step
    the posterior mode). A family whose
    :attr:`~mixtures.Family.m_step_needs_data` gets its new parameters from
    ``family.m_step_from_data`` over the rows; the weights and the rule for
    empty or non-finite components are :func:`maximize`'s as usual. The
    refused updates are those of switched-on components (see
    :attr:`FitResult.n_collapsed`). ``once`` as for :func:`accumulate`.

    Example:
      >>> import jax, mixtures as mx
      >>> from mixtures import engine
      >>> x = mx.datasets.load_old_faithful()
      >>> m = mx.fit(x, mx.Gaussian(), 2, key=jax.random.key(0), max_iter=5).mixture
      >>> new, ll, refused = engine.step(m, engine.Rows(jax.numpy.asarray(x)), engine.EMOptions(chunk_size=512))
      >>> bool(new.log_prob(x).mean() >= ll), refused.tolist()
      (True, [False, False])
    """
    sums = accumulate(mixture, rows, options, once=once)
    params = None
    if mixture.family.m_step_needs_data:
        params = mixture.family.m_step_from_data(
            mixture, rows.x, rows.weights, options.chunk_size, options.hard, rows.labels, axes=options.axes
        )
    new, refused = _maximize(mixture, sums, options.update_weights, params, prior)
    return new, _objective(mixture, sums.log_likelihood, prior) / _total_weight(rows, options.axes), refused


RESOLUTION = 4  # changes of at most this many ε·|ℓ| are rounding: see has_converged


def has_converged(ll, previous, tol):
    """The stopping test: |ℓ − ℓ_prev| < ``tol``, or (for ``tol`` > 0) at most ``RESOLUTION`` · ε · |ℓ|.

    ε is the machine epsilon of ℓ's dtype. A mean log-likelihood is summed
    from rounded per-row terms, so a change of a few units in its last place
    is rounding, not progress: a positive ``tol`` below that resolution stops
    when the change reaches it, rather than running to ``max_iter``.
    ``tol=0`` is the explicit request to run all ``max_iter`` iterations and
    never holds. False while either value is −∞ (before two iterations).

    Example:
      >>> import jax.numpy as jnp
      >>> from mixtures._src.engine.em import has_converged
      >>> ll = jnp.float32(-542.1123657)
      >>> bool(has_converged(ll, jnp.nextafter(ll, jnp.float32(0)), 1e-9))  # one unit in the last place
      True
      >>> bool(has_converged(ll, ll, 0.0))  # tol=0: run every iteration
      False
      >>> bool(has_converged(ll, ll - 1e-3, 1e-4))
      False
    """
    change = jnp.abs(ll - previous)
    resolution = RESOLUTION * jnp.finfo(ll.dtype).eps * jnp.abs(ll)
    return (change < tol) | ((tol > 0) & (change <= resolution))


def fit_loop(mixture: Mixture, rows: Rows, tol, options: EMOptions, *, prior=None, restart=0, receiver=0) -> FitResult:
    """EM from ``mixture`` until the mean log-likelihood changes by less than ``tol``.

    One ``lax.while_loop`` of at most ``options.max_iter`` calls of :func:`step`;
    jit- and vmap-compatible. With ``options.hard`` (classification EM) the
    monitored quantity is the complete-data log-likelihood of the hard
    assignments; labelled rows contribute their complete-data term. With
    ``prior`` (a validated :class:`~mixtures.priors.Prior`, a pytree of
    arrays) this is MAP-EM: every M-step is the posterior mode, and the
    monitored quantity, ``history`` and ``log_likelihood`` are the mean log
    posterior per sample, which never decreases. With ``options.report``
    every iteration sends (``restart``, iteration, value) to the host through
    ``jax.debug.callback``, to the callable that
    :func:`mixtures._src.core.progress.receiving` holds under ``receiver``
    (an int32 scalar, traced: one compiled program serves every callable).
    The loop stops at ``max_iter`` or when :func:`has_converged` holds for
    the last two values of ``history`` (read back from the loop's state).
    ``n_collapsed`` counts the switched-on components whose update
    :func:`maximize` refused in at least one of the iterations (the initial
    ``mixture`` is not judged). Traced as the per-device program of a
    data-parallel fit (``options.axes.rows`` set), ``rows`` are this
    device's, every sum over rows is over all devices' rows, and only the
    first device reports.

    Example:
      >>> import jax, numpy as np, mixtures as mx
      >>> from mixtures import engine
      >>> x = mx.datasets.load_old_faithful()
      >>> start = mx.fit(x, mx.Gaussian(), 2, key=jax.random.key(0), max_iter=1).mixture
      >>> options = engine.EMOptions(chunk_size=100, max_iter=50)
      >>> r = engine.fit_loop(start, engine.Rows(jax.numpy.asarray(x)), 1e-3, options)
      >>> bool(r.converged), r.history.shape
      (True, (50,))
    """
    history = jnp.full((options.max_iter,), jnp.nan, rows.x.dtype)
    state, history = advance(
        start_loop(mixture), rows, tol, options, history, prior=prior, until=options.max_iter, restart=restart,
        receiver=receiver,
    )
    return finish_loop(state, rows, tol, options, history, prior=prior)


class LoopState(NamedTuple):
    """The state of the EM loop between iterations (a pytree): what a fit needs to go on from where it stopped.

    Attributes:
      mixture: the current mixture (after ``n_iter`` M-steps).
      n_iter: int32 scalar, the M-steps run.
      log_likelihood: the mean objective before the last M-step (−∞ before the first).
      previous: the one before it (−∞ before the second).
      collapsed: (K,) bool, the switched-on components whose update was refused at least once.
    """

    mixture: Mixture
    n_iter: jax.Array
    log_likelihood: jax.Array
    previous: jax.Array
    collapsed: jax.Array


def start_loop(mixture: Mixture) -> LoopState:
    """The :class:`LoopState` of an EM loop about to start from ``mixture``."""
    start = jnp.asarray(-jnp.inf, mixture.dtype)
    return LoopState(mixture, jnp.asarray(0, jnp.int32), start, start, jnp.zeros(mixture.weights.shape, bool))


def running(state: LoopState, tol, max_iter) -> jax.Array:
    """Whether the loop goes on: fewer than ``max_iter`` iterations run and :func:`has_converged` does not hold."""
    return (state.n_iter < max_iter) & ~has_converged(state.log_likelihood, state.previous, tol)


def advance(
    state: LoopState, rows: Rows, tol, options: EMOptions, history, *, prior=None, until, first=0, restart=0,
    receiver=0,
):
    """EM iterations from ``state`` while :func:`running` holds and fewer than ``until`` have run in all.

    Iteration i (counted from the start of the fit) writes its mean
    objective at ``history[i - first]``, so a fit run in segments keeps only
    each segment's values; :func:`fit_loop` is one segment of
    ``options.max_iter`` iterations. ``until`` and ``first`` may be traced:
    one compiled program serves every segment. ``prior``, ``restart`` and
    ``receiver`` as for :func:`fit_loop`. Returns the new state and
    ``history``.
    """

    # The stopping test reads ℓ and its predecessor from the loop's state, the very values
    # written to ``history``: computed where ℓ is made, XLA:CPU may fuse the test with ℓ's
    # last product (a fused multiply-add), comparing a value more precise than the one kept.
    def cond(carry):
        state, _ = carry
        return running(state, tol, until)

    def body(carry):
        state, history = carry
        i = state.n_iter
        new, ll, refused = step(state.mixture, rows, options, prior)
        if options.report:
            # With rows split over devices every device runs this loop: one reports.
            active = options.axes.first_device_only(cond(carry))
            jax.debug.callback(progress.emit, receiver, active, restart, i + 1, ll)
        state = LoopState(new, i + 1, ll, state.log_likelihood, state.collapsed | refused)
        return state, history.at[i - first].set(ll)

    return lax.while_loop(cond, body, (state, history))


def finish_loop(state: LoopState, rows: Rows, tol, options: EMOptions, history, *, prior=None) -> FitResult:
    """The :class:`FitResult` of a loop that stopped at ``state``: the final objective, convergence, collapses."""
    m = state.mixture
    converged = has_converged(state.log_likelihood, state.previous, tol)
    total = _total_weight(rows, options.axes)
    final = _objective(m, accumulate(m, rows, options, once=True).log_likelihood, prior) / total
    n_collapsed = jnp.sum(state.collapsed, dtype=jnp.int32)
    return FitResult(
        mixture=m,
        log_likelihood=final,
        history=history,
        n_iter=state.n_iter,
        converged=converged,
        all_log_likelihoods=final[None],
        all_n_iter=state.n_iter[None],
        all_converged=converged[None],
        n_collapsed=n_collapsed,
        all_n_collapsed=n_collapsed[None],
    )


def init_from_points(family, points, rows: Rows, options: EMOptions, initial_weights=None) -> Mixture:
    """Components at the given rows, refined by one hard-assignment EM step.

    Every row is assigned to the component under which it is most likely
    (equal weights, or ``initial_weights``; a labelled row to its label), and
    the M-step is taken from those assignments (weights updated), whatever
    ``options.hard`` and ``options.update_weights`` say.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> from mixtures import engine
      >>> x = np.array([[0.0], [0.2], [5.0], [5.4]])
      >>> m = engine.init_from_points(mx.Gaussian("diag"), x[[0, 2]], engine.Rows(x), engine.EMOptions(chunk_size=4))
      >>> m.params.means.round(3).tolist(), m.weights.round(3).tolist()
      ([[0.1], [5.2]], [0.5, 0.5])
    """
    x = rows.x
    k = points.shape[0]
    w0 = jnp.full((k,), 1.0 / k, x.dtype) if initial_weights is None else initial_weights
    start = Mixture(w0, family.init_params(points, x), family)
    return step(start, rows, options.replace(hard=True, update_weights=True), once=True)[0]
