"""``fit_variational``: mean-field variational Bayes for a mixture of any conjugate family.

Host-side validation as :func:`mixtures.fit` does it, then the compiled
start, the updates in interruptible segments, and the finish
(:mod:`mixtures._src.engine.variational`).
"""

from __future__ import annotations

import contextlib
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import blocks, checks, progress
from mixtures._src.core.family import Family
from mixtures._src.core.mixture import Mixture
from mixtures._src.core.posterior import Sums
from mixtures._src.core.priors import DirichletPrior, DirichletProcessPrior, Prior, _positive_scalar
from mixtures._src.core.variational import StickBreaking, VariationalMixture
from mixtures._src.engine import em
from mixtures._src.engine import variational as engine
from mixtures._src.engine.options import DEFAULT_TOL, EMOptions, Rows
from mixtures._src.fitting import segments
from mixtures._src.fitting.fit import start_restart
from mixtures._src.fitting.init import INIT_METHODS, check_method, start_key, tree_classes

__all__ = ["VariationalResult", "best_result", "check_family", "check_prior", "fit_variational", "without_missing_hint"]


class VariationalResult(NamedTuple):
    """What :func:`mixtures.fit_variational` returns (a pytree).

    Attributes:
      posterior: the :class:`~mixtures.VariationalMixture` q(π) q(θ) of the
        best restart.
      mixture: ``posterior.mixture``, the :class:`~mixtures.Mixture` at the
        posterior mean (weights E_q[π], the family's
        :meth:`~mixtures.Family.posterior_mean`), for ``log_prob``,
        ``predict``, ``sample`` and the rest.
      elbo: scalar, the evidence lower bound of ``posterior`` per unit of
        weight (per sample without ``sample_weight``), every constant
        included: a lower bound on log p(x) / N.
      history: the ELBO per unit weight before each update, (n_iter,);
        it never decreases.
      n_iter: updates run.
      converged: whether the ELBO's last change was below ``tol`` (see
        :func:`mixtures.fit`'s ``converged``).
      n_effective: int32, the components whose expected count
        Σₙ wₙ q(zₙ = k) is at least 1 (one observation's worth).
      counts: (K,) those expected counts.
      all_elbos: (R,) final ELBO of every restart (R = ``n_init``).
      all_n_iter: (R,) updates run by every restart.
      all_converged: (R,) convergence flag of every restart.
    """

    posterior: VariationalMixture
    mixture: Mixture
    elbo: jax.Array
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    n_effective: jax.Array
    counts: jax.Array
    all_elbos: jax.Array
    all_n_iter: jax.Array
    all_converged: jax.Array


def fit_variational(
    x,
    family: Family,
    n_components: int,
    *,
    key=None,
    prior=None,
    init="kmeans++",
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = DEFAULT_TOL,
    sample_weight=None,
    chunk_size: int | None = None,
    callback=None,
) -> VariationalResult:
    """Fits a mixture of ``family`` by mean-field variational Bayes, with K = ``n_components`` at most.

    The posterior q(π) q(θ) q(z) is updated in turn until the evidence lower
    bound (ELBO) stops improving. The E-step and the statistics are
    :func:`mixtures.fit`'s; the update adds the statistics to the prior's
    hyperparameters. Unneeded components end with expected counts near
    zero (their posterior is the prior): ``n_effective`` counts the rest.
    ``n_init`` restarts run side by side under ``jax.vmap``; the one with
    the highest final ELBO is returned.

    Args:
      x: (N, D) data in the family's domain.
      family: a family with a conjugate posterior (``family.conjugate``):
        :class:`~mixtures.Gaussian` "full" (VVV), "tied" (EEE), "diag"
        (VVI), EEI, "spherical" (VII), EII or "identity";
        :class:`~mixtures.Poisson`, :class:`~mixtures.Bernoulli`,
        :class:`~mixtures.Exponential`, :class:`~mixtures.Categorical`;
        :class:`~mixtures.Independent` products of these; and any
        :class:`~mixtures.ExponentialFamily` that states
        :meth:`~mixtures.ExponentialFamily.log_conjugate_normalizer`.
      n_components: K, the number of components (the truncation, for a
        stick-breaking prior).
      key: a JAX PRNG key for the initialisation (as :func:`mixtures.fit`).
      prior: a :class:`~mixtures.priors.Prior`. ``components``: the family's
        prior (:class:`~mixtures.priors.GaussianPrior`,
        :class:`~mixtures.priors.ConjugatePrior`, a tuple of them for
        :class:`~mixtures.Independent`), or None or "default" for the
        family's data-driven default (mclust's for the Gaussian; one
        pseudo-observation near the data's average of T(x) otherwise).
        ``weights``: a :class:`~mixtures.priors.DirichletPrior` (α > 0) or
        a :class:`~mixtures.priors.DirichletProcessPrior` (γ > 0), or None
        for ``DirichletProcessPrior(1 / K)`` (scikit-learn's default).
      init: how each restart starts: one of :func:`mixtures.fit`'s methods
        (the posterior is then the update from the starting mixture's
        responsibilities), an (N, K) array of initial responsibilities, or a
        :class:`~mixtures.VariationalMixture` to continue from.
      n_init: the number of restarts (1 with an array or a posterior as ``init``).
      max_iter: the most updates.
      tol: stop when the ELBO per unit weight changes by less.
      sample_weight: optional (N,) non-negative row weights, counted as
        replicated rows (their total is the data's strength against the prior).
      chunk_size: rows per block of the E-step (None: chosen from K and D).
      callback: called as ``callback(Progress)`` after every update, with
        the ELBO per unit weight as ``log_likelihood``.

    Returns:
      A :class:`~mixtures.VariationalResult`.

    Raises:
      ValueError, TypeError: for invalid arguments, before anything is compiled.

    Example:
      >>> import jax, mixtures as mx
      >>> x = mx.datasets.load_old_faithful()
      >>> result = mx.fit_variational(x, mx.Gaussian("full"), 6, key=jax.random.key(0), n_init=4)
      >>> int(result.n_effective), result.all_elbos.shape  # two of the six components are used
      (2, (4,))
    """
    check_family(family)
    with without_missing_hint():
        x = checks.as_data(x, "x")
    if checks.is_traced(x):
        raise TypeError("`x` must be a concrete array: mx.fit_variational validates on the host and cannot be traced.")
    host = np.asarray(x)
    family.check_data(host)
    n, d = x.shape
    k = checks.positive_int(n_components, "n_components", upper=n, upper_name="the number of samples N")
    n_init = checks.positive_int(n_init, "n_init")
    max_iter = checks.max_iter(max_iter)
    tol = checks.non_negative_float(tol, "tol")
    chunk = blocks.default_chunk_size(k * n_init, d) if chunk_size is None else checks.positive_int(chunk_size, "chunk_size")
    weights = checks.as_sample_weight(sample_weight, n)
    weights = None if weights is None else np.asarray(weights, np.float64)
    if weights is not None:
        checks.components_within_rows(1, int(np.count_nonzero(np.asarray(weights) > 0)))
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable or None; received {callback!r}.")
    prior = check_prior(prior, family, host, k, weights, x.dtype)
    resp = None
    if isinstance(init, VariationalMixture):
        init = _check_posterior_start(init, family, k, n_init, prior, d, x.dtype)
    elif isinstance(init, str):
        if init not in INIT_METHODS:
            raise ValueError(f"`init` must be one of {INIT_METHODS}, an (N, K) array or a VariationalMixture; received {init!r}.")
        check_method(init, family)
        key = start_key(key, init)
    else:
        resp = _check_responsibilities(init, n, k, n_init)
    family.check_methods(host)

    # max_iter stays out of the static options (the host loop stops at it): another max_iter compiles nothing.
    options = EMOptions(chunk_size=chunk, report=callback is not None)
    tol = checks.to_device(tol, x.dtype)
    w = None if weights is None else checks.to_device(weights, x.dtype)
    rows = Rows(x, w)
    if isinstance(init, VariationalMixture):
        begin = functools.partial(_from_posterior, init)
    elif resp is not None:
        begin = functools.partial(
            _from_responsibilities, checks.to_device(resp, x.dtype), rows, prior, family=family, options=options
        )
    else:
        classes = tree_classes(init, host, [k], weights)
        classes = None if classes is None else classes[0]
        begin = functools.partial(
            _starts, jax.random.split(key, n_init), rows, prior, classes, family=family, k=k, method=init,
            options=options,
        )

    def advance(states, first, until):
        return _advance(states, rows, tol, prior, receiver, first, until, options=options)

    with progress.receiving(callback) as receiver:
        states, history = segments.run(begin, advance, max_iter=max_iter, receiver=receiver, what="mx.fit_variational")
        result, best = _finish(states, rows, tol, prior, options=options)
    history = np.asarray(history)[int(best)]
    return result._replace(history=checks.to_device(history[: int(result.n_iter)]))


# -- host checks ------------------------------------------------------------------


MISSING_HINT = '; NaN marks a missing entry only with missing="marginalize".'


@contextlib.contextmanager
def without_missing_hint():
    """Data checks' errors without their hint about ``missing=``, which variational Bayes does not take."""
    try:
        yield
    except ValueError as error:
        text = str(error)
        if MISSING_HINT not in text:
            raise
        raise ValueError(text.replace(MISSING_HINT, " (variational Bayes takes no missing entries).")) from None


def check_family(family) -> None:
    """Raises unless ``family`` is a hashable Family with a conjugate posterior."""
    if not isinstance(family, Family):
        raise TypeError(f"`family` must be a mixtures.Family such as mx.Gaussian(); received {family!r}.")
    checks.hashable_family(family)
    if not family.conjugate:
        raise ValueError(
            f"`family`: {family!r} has no conjugate posterior, which variational Bayes needs; families with one: "
            "Gaussian('full'|'tied'|'diag'|'spherical'|'EEI'|'EII'|'identity'), Poisson, Bernoulli, Exponential, "
            "Categorical, Independent products of these, and exponential families that state "
            "log_conjugate_normalizer."
        )


def check_prior(prior, family, x: np.ndarray, k: int, weights, dtype) -> Prior:
    """The validated Prior in the data's dtype, defaults filled in.

    ``prior`` may be None, "default", a component prior, a weight prior
    (DirichletPrior or DirichletProcessPrior) or a Prior; for an
    :class:`~mixtures.Independent` family a tuple of component priors, any
    of them None or "default" (that group's default).
    """
    if prior is None or (isinstance(prior, str) and prior == "default"):
        prior = Prior()
    elif isinstance(prior, (DirichletPrior, DirichletProcessPrior)):
        prior = Prior(weights=prior)
    elif isinstance(prior, str):
        raise ValueError(f'`prior` must be None, "default" or a prior object; received {prior!r}.')
    elif not isinstance(prior, Prior):
        prior = Prior(components=prior)
    components = _fill_defaults(prior.components, family, x, k, weights)
    components = family.check_prior(components, x.astype(dtype))
    one = jax.tree.map(lambda a: jnp.asarray(a)[None], components)
    params, offsets = family.expected_params(one)
    if not (np.all(np.isfinite(np.asarray(offsets))) and all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree.leaves(params))):
        raise ValueError(
            "`prior.components` is improper: its normaliser is not finite (for instance a Poisson or Bernoulli "
            "feature whose prior mean is at the edge of its range, 0 or 1); give a prior mean strictly inside."
        )
    w = prior.weights
    if w is None:
        w = DirichletProcessPrior(1.0 / k)
    if not isinstance(w, (DirichletPrior, DirichletProcessPrior)):
        raise TypeError(
            "`prior.weights` must be a mixtures.priors.DirichletPrior, a DirichletProcessPrior or None; "
            f"received {type(w).__name__}."
        )
    alpha = _positive_scalar(w.concentration, "prior.weights.concentration")
    return Prior(components, type(w)(jnp.asarray(alpha, dtype)))


def _fill_defaults(components, family, x: np.ndarray, k: int, weights):
    """``components`` with None and "default" (whole, or a group's in a tuple) replaced by the family's defaults."""
    def is_default(part):
        return part is None or (isinstance(part, str) and part == "default")

    if is_default(components):
        return family.default_variational_prior(x, k, sample_weight=weights)
    if isinstance(components, str):
        raise ValueError(f'`prior.components` must be a prior, "default" or None; received {components!r}.')
    if isinstance(components, tuple) and not hasattr(components, "_fields") and any(map(is_default, components)):
        defaults = family.default_variational_prior(x, k, sample_weight=weights)
        if isinstance(defaults, tuple) and len(defaults) == len(components):
            return tuple(d if is_default(part) else part for part, d in zip(components, defaults))
    return components


def _check_responsibilities(init, n: int, k: int, n_init: int) -> np.ndarray:
    try:
        resp = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"`init` must be one of {INIT_METHODS}, an (N, K) array of responsibilities or a VariationalMixture; "
            f"received {type(init).__name__}."
        ) from None
    if resp.shape != (n, k):
        raise ValueError(f"`init` as responsibilities must have shape (N, K) = {(n, k)}; received shape {resp.shape}.")
    if not np.all(np.isfinite(resp)) or np.any(resp < 0) or not np.allclose(resp.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("`init` as responsibilities must be finite, non-negative, and sum to one in every row.")
    if n_init != 1:
        raise ValueError(f"`n_init` must be 1 with responsibilities as `init`; received {n_init}.")
    return resp


def _check_posterior_start(init: VariationalMixture, family, k: int, n_init: int, prior: Prior, d: int, dtype):
    """A posterior to continue from, checked against the fit's family, K, prior and D; returned in ``dtype``."""
    if init.family != family:
        raise ValueError(f"`init` is a posterior over {init.family!r}, not over `family` {family!r}.")
    if init.n_components != k:
        raise ValueError(f"`init` has {init.n_components} components; `n_components` is {k}.")
    if n_init != 1:
        raise ValueError(f"`n_init` must be 1 with a posterior as `init`; received {n_init}.")
    sticks = isinstance(init.weights, StickBreaking)
    if sticks != isinstance(prior.weights, DirichletProcessPrior):
        held, given = ("stick-breaking", "Dirichlet") if sticks else ("Dirichlet", "stick-breaking")
        raise ValueError(
            f"`init` holds {held} weights but the weight prior is {given} (the default is stick-breaking): "
            "pass the prior the posterior was fitted with."
        )
    expected = [(k,) + np.shape(a) for a in jax.tree.leaves(prior.components)]
    given = [np.shape(a) for a in jax.tree.leaves(init.components)]
    if jax.tree.structure(init.components) != jax.tree.structure(prior.components) or given != expected:
        raise ValueError(
            f"`init`'s component posterior does not fit this data ({d} features) and prior: its arrays have "
            f"shapes {given}, where {expected} are expected."
        )
    return jax.tree.map(lambda a: checks.to_device(np.asarray(a), dtype), init)


# -- compiled parts ---------------------------------------------------------------


def _batch(state):
    return jax.tree.map(lambda a: a[None], state)


def _each(fn, options: EMOptions, *batched):
    """``fn(options, *one)`` over the restarts, batched as :func:`mixtures.fit` batches them.

    On a named restart axis (``blocks.vmap_restarts``), so that a choice the
    family makes per pass (the Gaussian's matrix-product form) is made once
    for all restarts and stays a branch, not both sides under ``vmap``.
    """
    return blocks.vmap_restarts(lambda axes, *one: fn(options.replace(axes=axes), *one), options.axes)(*batched)


@jax.jit
def _from_posterior(posterior: VariationalMixture):
    begin = jnp.asarray(-jnp.inf, jax.tree.leaves(posterior.components)[0].dtype)
    return _batch(engine.VariationalState(posterior, jnp.asarray(0, jnp.int32), begin, begin))


@functools.partial(jax.jit, static_argnames=("family", "options"))
def _from_responsibilities(resp, rows: Rows, prior, *, family, options):
    """The posterior updated from given responsibilities (N, K), as a batch of one state.

    The statistics are accumulated under components placed at the row each
    component is most responsible for (a frame near its data).
    """
    x = rows.x
    frame = family.init_params(x[jnp.argmax(resp, axis=0)], x)

    def block(xb, wb, index):
        r = resp[index] * wb[:, None]
        return Sums(jnp.sum(r, axis=0), family.accumulate(frame, xb, r), jnp.zeros((), x.dtype))

    sums = blocks.sum_over_chunks(block, x, rows.weights, options.chunk_size)
    posterior = engine.posterior_from(family, sums, frame, prior)
    begin = jnp.asarray(-jnp.inf, x.dtype)
    return _batch(engine.VariationalState(posterior, jnp.asarray(0, jnp.int32), begin, begin))


@functools.partial(jax.jit, static_argnames=("family", "k", "method", "options"))
def _starts(keys, rows: Rows, prior, classes, *, family, k, method, options):
    def one(options, key):
        mixture = start_restart(family, k, method, key, rows, options, classes=classes)
        return engine.start(mixture, rows, options, prior)

    return _each(one, options, keys)


@functools.partial(jax.jit, static_argnames="options")
def _advance(states, rows, tol, prior, receiver, first, until, *, options):
    def one(options, state, restart):
        history = jnp.full((segments.SEGMENT,), jnp.nan, rows.x.dtype)
        return engine.advance(
            state, rows, tol, options, history, prior=prior, until=until, first=first, restart=restart,
            receiver=receiver,
        )

    states, history = _each(one, options, states, jnp.arange(jax.tree.leaves(states)[0].shape[0]))
    return states, history, segments.any_unconverged(states, tol), jnp.max(states.n_iter)


@functools.partial(jax.jit, static_argnames="options")
def _finish(states, rows, tol, prior, *, options):
    total = em._total_weight(rows, options.axes)

    def one(options, state):
        sums, _, elbo = engine.elbo_sums(state.posterior, rows, options, prior, once=True)
        return state.posterior, elbo / total, sums.counts, state.n_iter, em.has_converged(
            state.log_likelihood, state.previous, tol
        )

    posterior, elbo, counts, n_iter, converged = _each(one, options, states)
    return best_result(posterior, elbo, counts, n_iter, converged)


def best_result(posteriors: VariationalMixture, elbo, counts, n_iter, converged):
    """The :class:`VariationalResult` of the restart with the highest ELBO (its history left empty), and its index.

    Every argument has a leading restart axis R: ``elbo`` per unit weight,
    ``counts`` (R, K) the expected counts of the final E-step.
    """
    best = jnp.argmax(jnp.where(jnp.isnan(elbo), -jnp.inf, elbo))
    chosen = jax.tree.map(lambda a: a[best], posteriors)
    return VariationalResult(
        posterior=chosen,
        mixture=chosen.mixture,
        elbo=elbo[best],
        history=jnp.zeros((0,), elbo.dtype),
        n_iter=n_iter[best],
        converged=converged[best],
        n_effective=jnp.sum(counts[best] >= 1.0, dtype=jnp.int32),
        counts=counts[best],
        all_elbos=elbo,
        all_n_iter=n_iter,
        all_converged=converged,
    ), best
