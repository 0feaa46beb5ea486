"""``fit_variational_stream``: variational Bayes over data read in batches on every update.

The statistics of an update are sums over the rows, so a pass over the
batches gives exactly what :func:`mixtures.fit_variational` computes from the
data in memory: from the same start the two agree to rounding. The source,
its validation and the initialisation sample are :func:`mixtures.fit_stream`'s.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import blocks, checks
from mixtures._src.core.mixture import Mixture
from mixtures._src.core.progress import Progress
from mixtures._src.core.variational import VariationalMixture
from mixtures._src.engine import em
from mixtures._src.engine import variational as engine
from mixtures._src.engine.options import DEFAULT_TOL, EMOptions, Rows
from mixtures._src.fitting import segments, sources
from mixtures._src.fitting.init import tree_classes
from mixtures._src.fitting.streaming import DEFAULT_INIT_SAMPLE_SIZE, _initial, scan_for_fit
from mixtures._src.fitting.variational import (
    VariationalResult,
    _check_posterior_start,
    _from_posterior,
    best_result,
    check_family,
    check_prior,
    without_missing_hint,
)

__all__ = ["fit_variational_stream"]


def fit_variational_stream(
    batches,
    family,
    n_components: int,
    *,
    key,
    prior=None,
    init="kmeans++",
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = DEFAULT_TOL,
    batch_size: int | None = None,
    sample_weight=None,
    init_sample_size: int = DEFAULT_INIT_SAMPLE_SIZE,
    chunk_size: int | None = None,
    callback=None,
) -> VariationalResult:
    """:func:`mixtures.fit_variational` over data read in batches, one pass per update.

    ``family``, ``n_components``, ``prior``, ``n_init``, ``max_iter``,
    ``tol``, ``chunk_size`` and ``callback`` are as for
    :func:`mixtures.fit_variational`; a data-driven default prior is
    computed from the initialisation sample.

    Args:
      batches: the data, as :func:`mixtures.fit_stream` takes it (an array,
        a ``.npy`` path, a sequence of arrays, or a callable returning a
        fresh iterator of arrays or ``(x, weights)`` pairs); every pass must
        yield the same rows.
      key: a JAX PRNG key for the initialisation sample and the starts.
      init: one of :func:`mixtures.fit`'s methods, run on the
        initialisation sample (the first posterior is the update from the
        start's hard assignments over all the rows), or a
        :class:`~mixtures.VariationalMixture` to continue from.
      batch_size: rows per batch when ``batches`` is one array or file.
      sample_weight: row weights when ``batches`` is one array or file.
      init_sample_size: rows drawn (uniformly, in one pass) for the initialisation.

    Returns:
      A :class:`~mixtures.VariationalResult`.

    Example:
      >>> import jax, mixtures as mx
      >>> x = mx.datasets.load_old_faithful()
      >>> r = mx.fit_variational_stream(x, mx.Gaussian("full"), 4, key=jax.random.key(0), batch_size=100)
      >>> int(r.n_effective), r.posterior.n_components
      (2, 4)
    """
    check_family(family)
    k = checks.positive_int(n_components, "n_components")
    n_init = checks.positive_int(n_init, "n_init")
    max_iter = checks.max_iter(max_iter)
    tol = checks.non_negative_float(tol, "tol")
    sample_size = checks.positive_int(init_sample_size, "init_sample_size")
    if chunk_size is not None:
        chunk_size = checks.positive_int(chunk_size, "chunk_size")
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable or None; received {callback!r}.")
    warm = isinstance(init, VariationalMixture)
    if not warm and not isinstance(init, str):
        raise ValueError(
            "`init` must be the name of an initialisation method or a VariationalMixture to continue from; "
            f"received {type(init).__name__}."
        )
    # A posterior to continue from is checked as fit_stream checks a warm start (no key needed).
    with without_missing_hint():
        source, seen, key, _ = scan_for_fit(
            batches, family, k, init=init.mixture if warm else init, n_init=n_init, key=key, batch_size=batch_size,
            sample_weight=sample_weight, sample_size=sample_size,
        )
    n, d, dtype = seen.n_rows, seen.n_features, seen.sample.dtype
    prior = check_prior(prior, family, np.asarray(seen.sample), k, seen.sample_weights, dtype)
    if warm:
        init = _check_posterior_start(init, family, k, n_init, prior, d, dtype)
    family.check_methods(np.asarray(seen.sample))
    chunk = chunk_size or blocks.default_chunk_size(k * n_init, d)
    options = EMOptions(chunk_size=chunk)
    rows = seen.max_rows
    total = checks.to_device(seen.total_weight if seen.sample_weights is not None else float(n), dtype)
    sample = checks.to_device(seen.sample)
    sample_weights = None if seen.sample_weights is None else checks.to_device(seen.sample_weights, dtype)
    del seen

    def one_pass(add, state_like):
        sums = None
        count = 0
        for batch in source.batches():
            x, w = sources.padded(batch, rows, source.name)
            x, w = jax.device_put(x), jax.device_put(w)
            part = add(state_like, x, w)
            sums = part if sums is None else _plus(sums, part)
            count += batch.x.shape[0]
        if count != n:
            raise ValueError(
                f"`{source.name}` yielded {count} rows on a later pass but {n} on the first; "
                "fit_variational_stream needs a source that yields the same rows on every pass."
            )
        return sums

    def begin():
        if warm:
            return _from_posterior(init)
        keys = jax.random.split(key, n_init)
        classes = tree_classes(init, sample, [k], sample_weights)
        classes = None if classes is None else classes[0]
        mixtures = _initial(keys, sample, sample_weights, classes, family=family, k=k, method=init, options=options)
        sums = one_pass(functools.partial(_hard_sums, options=options), mixtures)
        return _start(mixtures, sums, prior)

    host_tol = np.asarray(tol, dtype)
    tol_device = checks.to_device(tol, dtype)

    def advance(state, first, until):
        del until  # one pass per call: Ctrl-C acts between passes
        active = ~np.asarray(em.has_converged(state.log_likelihood, state.previous, tol_device))
        sums = one_pass(functools.partial(_expected_sums, options=options), state.posterior)
        new, elbo = _update(state.posterior, sums, total, prior)
        elbo = np.asarray(elbo)
        keep = jax.device_put(active)
        posterior = jax.tree.map(
            lambda a, b: jnp.where(keep.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, state.posterior
        )
        state = engine.VariationalState(
            posterior,
            jnp.asarray(np.asarray(state.n_iter) + active, jnp.int32),
            jnp.asarray(np.where(active, elbo, np.asarray(state.log_likelihood)), dtype),
            jnp.asarray(np.where(active, np.asarray(state.log_likelihood), np.asarray(state.previous)), dtype),
        )
        if callback is not None:
            for j in np.flatnonzero(active):
                callback(Progress(int(j), first + 1, float(elbo[j])))
        done = np.asarray(em.has_converged(state.log_likelihood, state.previous, host_tol))
        going = bool(np.any(~done)) and first + 1 < max_iter
        history = np.where(active, elbo, np.nan).astype(dtype)[:, None]
        return state, history, np.asarray(going), np.asarray(first + 1)

    states, history = segments.run(begin, advance, max_iter=max_iter, what="mx.fit_variational_stream")
    sums = one_pass(functools.partial(_expected_sums, options=options), states.posterior)
    result, best = _finish(states, sums, total, tol_device, prior)
    history = np.asarray(history)[int(best)]
    return result._replace(history=checks.to_device(history[: int(result.n_iter)]))


# -- compiled parts ----------------------------------------------------------------


@jax.jit
def _plus(a, b):
    return jax.tree.map(jnp.add, a, b)


@functools.partial(jax.jit, static_argnames="options")
def _hard_sums(mixtures: Mixture, x, w, *, options):
    """Each start's sums over one batch under its hard assignments."""
    return jax.vmap(lambda m: em.accumulate(m, Rows(x, w), options.replace(hard=True), once=True))(mixtures)


@functools.partial(jax.jit, static_argnames="options")
def _expected_sums(posteriors: VariationalMixture, x, w, *, options):
    """Each posterior's variational E-step sums over one batch (its ELBO term: the log-likelihood sum)."""
    return jax.vmap(lambda p: engine.expected_sums(p, Rows(x, w), options)[0])(posteriors)


@jax.jit
def _start(mixtures: Mixture, sums, prior):
    posterior = jax.vmap(lambda m, s: engine.posterior_from(m.family, s, m.params, prior))(mixtures, sums)
    begin = jnp.full(mixtures.weights.shape[:1], -jnp.inf, mixtures.weights.dtype)
    return engine.VariationalState(posterior, jnp.zeros(begin.shape, jnp.int32), begin, begin)


def _elbo_and_frame(posterior: VariationalMixture, sums, prior):
    """The ELBO (a total) of ``posterior`` from its pass's sums, and the parameters those sums were taken under."""
    params, _ = posterior.family.expected_params(posterior.components)
    return sums.log_likelihood - engine.divergence(posterior, prior), params


@jax.jit
def _update(posteriors: VariationalMixture, sums, total, prior):
    def one(p, s):
        elbo, frame = _elbo_and_frame(p, s, prior)
        return engine.posterior_from(p.family, s, frame, prior), elbo / total

    return jax.vmap(one)(posteriors, sums)


@jax.jit
def _finish(states, sums, total, tol, prior):
    def one(state, s):
        elbo, _ = _elbo_and_frame(state.posterior, s, prior)
        return elbo / total, em.has_converged(state.log_likelihood, state.previous, tol)

    elbo, converged = jax.vmap(one)(states, sums)
    return best_result(states.posterior, elbo, sums.counts, states.n_iter, converged)
