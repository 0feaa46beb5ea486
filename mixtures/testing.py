"""A conformance check for component families, public so researchers can run it on theirs.

``check_family(family, x, key=...)`` runs every contract check the library's own
families pass and raises ``AssertionError`` listing each one that fails:

* ``batched_density``: :meth:`~mixtures.Family.log_prob_components` equals the
  ``vmap`` of :meth:`~mixtures.Family.log_prob` over rows and components;
* ``m_step_maximises``: for random responsibilities, the M-step's parameters
  give an expected complete-data log-likelihood Σₙ Σₖ rₙₖ log p(xₙ | θₖ) at
  least as high as every other candidate tried: the previous parameters and
  the M-steps of perturbed responsibilities (a random search over the
  family's parameter space around the optimum; the sum over components, since
  a family may share parameters between them);
* ``m_step_improves`` (in place of ``m_step_maximises`` for a
  :class:`~mixtures.GradientFamily`, whose M-step only raises Q): no
  component's expected log-likelihood decreases;
* ``closed_form_equals_newton`` (exponential families that override
  ``params_from_mean``): the closed form equals the damped Newton solve;
* ``monotone``: the log-likelihood history of every fit never decreases;
* ``sampling``: draws lie in the family's domain (``check_data`` accepts them),
  and refitting one component to its own draws gains no more log-likelihood
  per draw than sampling noise allows (for an exponential family, the mean of
  T(x) over the draws also matches ∇A(η) within 6 standard errors);
* ``vmapped_restarts``: fits of several keys under ``jax.vmap`` equal the same
  fits one by one in a Python loop;
* ``rejects_bad_data``: ``mixtures.fit`` raises ``ValueError`` or ``TypeError``
  on each array in ``bad_data``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import checks
from mixtures._src.engine import em as engine
from mixtures._src.fitting import fit as fitting
from mixtures._src.families.expfam import ExponentialFamily
from mixtures._src.core.family import Family
from mixtures._src.engine.options import EMOptions, Rows
from mixtures._src.fitting.init import initialize
from mixtures._src.core.mixture import Mixture

__all__ = ["check_family"]


def check_family(
    family: Family,
    x,
    *,
    key,
    n_components: int = 2,
    bad_data=(),
    n_restarts: int = 3,
    n_samples: int = 20_000,
    only=None,
) -> dict:
    """Checks ``family`` against the family contract on data ``x``.

    Args:
      family: the family to check.
      x: (N, D) data in the family's domain, with some structure for
        ``n_components`` components (a few hundred rows suffice).
      key: a JAX PRNG key.
      n_components: K for the fits and M-steps.
      bad_data: arrays outside the family's domain; ``mixtures.fit`` must
        reject each with ``ValueError`` or ``TypeError``.
      n_restarts: number of keys for the vmapped-restarts check.
      n_samples: draws per component for the sampling check.
      only: names of the checks to run (default: all that apply).

    Returns:
      A dict with one entry per check that ran, holding what it measured.

    Raises:
      AssertionError: listing every failed check.

    Example:
      >>> import jax, numpy as np, mixtures as mx
      >>> from mixtures.testing import check_family
      >>> x = np.random.default_rng(0).normal(size=(200, 2)) + np.repeat([[0, 0], [6, 6]], 100, axis=0)
      >>> report = check_family(mx.Gaussian("diag"), x, key=jax.random.key(0), bad_data=[x[:, 0]])
      >>> sorted(report)  # doctest: +NORMALIZE_WHITESPACE
      ['batched_density', 'm_step_maximises', 'monotone', 'rejects_bad_data', 'sampling',
       'vmapped_restarts']
    """
    x = checks.as_data(x, "x")
    family.check_data(np.asarray(x))
    key = checks.prng_key(key)
    keys = jax.random.split(key, 4)
    f64 = x.dtype == jnp.float64
    rtol = 1e-6 if f64 else 1e-3
    chunk = min(x.shape[0], 256)
    # Fits from several keys, one by one; they serve the monotone and vmap checks,
    # and the first fitted mixture is the reference for the others.
    restart_keys = jax.random.split(keys[0], max(1, n_restarts))
    fit_one = jax.jit(_fit_from_key, static_argnames=("family", "k", "chunk"))
    looped = [fit_one(family, n_components, k, x, chunk) for k in restart_keys]
    start = looped[0].mixture

    battery = {
        "batched_density": lambda: _batched_density(start, x, rtol),
        "m_step_maximises": lambda: _m_step_maximises(start, x, keys[1], rtol),
        "monotone": lambda: _monotone(looped, f64),
        "sampling": lambda: _sampling(start, x, keys[2], n_samples),
        "vmapped_restarts": lambda: _vmapped_restarts(family, n_components, x, restart_keys, looped, chunk, rtol),
        "rejects_bad_data": lambda: _rejects(family, n_components, bad_data),
    }
    if family.m_step_needs_data:
        # Generalised EM: the M-step raises Q without maximising it.
        del battery["m_step_maximises"]
        battery["m_step_improves"] = lambda: _m_step_improves(start, x, rtol)
    if isinstance(family, ExponentialFamily) and type(family).params_from_mean is not ExponentialFamily.params_from_mean:
        battery["closed_form_equals_newton"] = lambda: _closed_form(start, x, keys[1], rtol)

    if only is not None:
        unknown = set(only) - set(battery)
        if unknown:
            raise ValueError(f"`only` names unknown or inapplicable checks {sorted(unknown)}; known: {sorted(battery)}.")
        battery = {name: run for name, run in battery.items() if name in only}
    report, failures = {}, []
    for name, run in battery.items():
        try:
            report[name] = run()
        except AssertionError as err:
            failures.append(f"{name}: {err}")
    if failures:
        raise AssertionError(f"{type(family).__name__} fails {len(failures)} check(s):\n" + "\n".join(failures))
    return report


def _expected_log_lik(family, params, x, resp):
    """(K,) Σₙ rₙₖ log p(xₙ | θₖ)."""
    logp = family.log_prob_components(params, x)
    return jnp.sum(jnp.where(resp > 0, resp * logp, 0.0), axis=0)


@functools.partial(jax.jit, static_argnames="family")
def _expected_total_jit(family, params, x, resp):
    return jnp.sum(_expected_log_lik(family, params, x, resp))


def _expected_total(family, params, x, resp):
    return float(_expected_total_jit(family, params, x, resp))


def _batched_density(m: Mixture, x, rtol):
    rows = x[:64]
    batched = m.family.log_prob_components(m.params, rows)
    generic = Family.log_prob_components(m.family, m.params, rows)
    err = float(jnp.max(jnp.abs(batched - generic) / (1.0 + jnp.abs(generic))))
    assert err < rtol, f"log_prob_components differs from vmapped log_prob by {err:.3g} (relative)"
    return {"max_relative_difference": err}


def _refit_one(m: Mixture, x):
    """M-step of a one-component mixture on ``x``."""
    if m.family.m_step_needs_data:
        return m.family.m_step_from_data(m, x, None, x.shape[0])
    return _m_step_from(m, x, jnp.ones((x.shape[0], 1), x.dtype))


def _m_step_from(m: Mixture, x, resp):
    stats = m.family.accumulate(m.params, x, resp)
    return m.family.m_step(stats, jnp.sum(resp, axis=0), m.params)


def _random_resp(key, m: Mixture, x, sharpness):
    """Posterior responsibilities tempered and mixed with Dirichlet noise."""
    logp = m.family.log_prob_components(m.params, x) + jnp.log(m.weights)[None, :]
    noise = jax.random.dirichlet(key, jnp.ones(m.n_components, x.dtype), (x.shape[0],))
    post = jax.nn.softmax(logp * sharpness, axis=1)
    return 0.5 * post + 0.5 * noise


@functools.partial(jax.jit, static_argnames="n_candidates")
def _candidate_values(m: Mixture, x, key, n_candidates):
    """Expected log-likelihood of the M-step and of the candidates it must beat."""
    family = m.family
    k_resp, k_pert = jax.random.split(key)
    resp = _random_resp(k_resp, m, x, 1.0)
    q_best = jnp.sum(_expected_log_lik(family, _m_step_from(m, x, resp), x, resp))

    def candidate(args):
        sub, scale = args
        noise = jax.random.uniform(sub, resp.shape, resp.dtype, -1.0, 1.0) * scale
        params = _m_step_from(m, x, jnp.clip(resp * (1.0 + noise), 1e-12, None))
        return jnp.sum(_expected_log_lik(family, params, x, resp))

    scales = 0.02 * 2.0 ** jnp.arange(n_candidates, dtype=x.dtype)
    q_candidates = jax.lax.map(candidate, (jax.random.split(k_pert, n_candidates), scales))
    q_previous = jnp.sum(_expected_log_lik(family, m.params, x, resp))
    return q_best, jnp.append(q_candidates, q_previous)


@jax.jit
def _gradient_m_step_values(m: Mixture, x):
    """Qₖ before and after a generalised-EM M-step, responsibilities from ``m``."""
    resp = jax.nn.softmax(m.family.log_prob_components(m.params, x) + jnp.log(m.weights)[None, :], axis=1)
    new = m.family.m_step_from_data(m, x, None, x.shape[0])
    return _expected_log_lik(m.family, m.params, x, resp), _expected_log_lik(m.family, new, x, resp)


def _m_step_improves(m: Mixture, x, rtol):
    before, after = (np.asarray(v) for v in _gradient_m_step_values(m, x))
    assert np.all(np.isfinite(after)), "the M-step's parameters give a non-finite log-likelihood"
    drop = float(np.max((before - after) / (1.0 + np.abs(before))))
    assert drop <= rtol * 1e-3, f"the M-step lowers a component's expected log-likelihood by {drop:.3g} (relative)"
    return {"largest_relative_drop": drop, "total_gain": float(np.sum(after - before))}


def _m_step_maximises(m: Mixture, x, key, rtol):
    q_best, q_candidates = (np.asarray(v) for v in _candidate_values(m, x, key, 8))
    assert np.isfinite(q_best), "the M-step's parameters give a non-finite log-likelihood"
    finite = q_candidates[np.isfinite(q_candidates)]
    worst_gain = float(np.max((finite - q_best) / (1.0 + abs(q_best)), initial=-np.inf))
    assert worst_gain <= rtol, (
        f"a candidate beats the M-step's expected log-likelihood by {worst_gain:.3g} (relative): "
        "the M-step is not the maximiser"
    )
    return {"largest_relative_gain_of_a_candidate": worst_gain}


def _closed_form(m: Mixture, x, key, rtol):
    family = m.family
    resp = jax.jit(_random_resp, static_argnames="sharpness")(key, m, x, 1.0)
    t = jax.vmap(family.sufficient_stats)(x)
    means = resp.T @ t / jnp.sum(resp, axis=0)[:, None]
    closed = jax.vmap(family.params_from_mean)(means, m.params)
    newton = jax.vmap(lambda mu, p: ExponentialFamily.params_from_mean(family, mu, p))(means, m.params)
    err = max(
        float(jnp.max(jnp.abs(a - b) / (jnp.abs(b) + 1e-12)))
        for a, b in zip(jax.tree.leaves(closed), jax.tree.leaves(newton))
    )
    assert err < rtol, f"closed-form M-step differs from the Newton solve by {err:.3g} (relative)"
    return {"max_relative_difference": err}


FIT_ITERATIONS = 20


def _fit_from_key(family, k, key, x, chunk):
    """A fit of FIT_ITERATIONS iterations (tol = 0) from a "random_from_data" start."""
    start = initialize("random_from_data", family, k, key, x, None, chunk)
    options = EMOptions(chunk_size=chunk, max_iter=FIT_ITERATIONS)
    return engine.fit_loop(start, Rows(x), jnp.asarray(0.0, x.dtype), options)


def _monotone(looped, f64):
    drop = np.inf
    for i, result in enumerate(looped):
        h = np.append(np.asarray(result.history), float(result.log_likelihood))
        assert np.all(np.isfinite(h)), f"restart {i}: the log-likelihood history has non-finite values"
        slack = (1e-9 if f64 else 1e-5) * np.max(np.abs(h))
        step = float(np.min(np.diff(h)))
        assert step >= -slack, f"restart {i}: the log-likelihood decreased by {-step:.3g} in one iteration"
        drop = min(drop, step)
    return {"smallest_step": drop, "iterations": FIT_ITERATIONS, "fits": len(looped)}


def _sampling(m: Mixture, x, key, n):
    family = m.family
    measured = {}
    for k in range(m.n_components):
        one = jax.tree.map(lambda p: p[k : k + 1], m.params)
        single = Mixture(jnp.ones((1,), x.dtype), one, family)
        draws, _ = single.sample(n, key=jax.random.fold_in(key, k))
        draws = np.asarray(draws)
        assert np.all(np.isfinite(draws)), f"component {k}: samples are not finite"
        try:
            family.check_data(draws)
        except ValueError as err:
            raise AssertionError(f"component {k}: samples are outside the family's domain: {err}") from None
        draws = jnp.asarray(draws, x.dtype)
        ones = jnp.ones((n, 1), x.dtype)
        refit = jax.jit(_refit_one)(single, draws)
        gain = (_expected_total(family, refit, draws, ones) - _expected_total(family, one, draws, ones)) / n
        dims = family.n_free_parameters(1, x.shape[1])
        bound = (dims + 8.0 * math.sqrt(2.0 * dims) + 8.0) / (2.0 * n)
        floor = 0.0 if family.m_step_needs_data else -1e-6  # generalised EM may stop short
        assert floor - 1e-6 <= gain <= bound, (
            f"component {k}: refitting to its own {n} draws gains {gain:.3g} nats per draw "
            f"(sampling noise allows {bound:.3g}): the sampler and the density disagree"
        )
        measured[f"component_{k}_refit_gain"] = gain
        if isinstance(family, ExponentialFamily):
            t = np.asarray(jax.vmap(family.sufficient_stats)(draws), np.float64)
            eta = family.to_natural(jax.tree.map(lambda p: p[0], one))
            mean = np.asarray(jax.grad(family.log_partition)(eta), np.float64)
            variance = np.diagonal(np.asarray(jax.hessian(family.log_partition)(eta), np.float64))
            se = np.sqrt(np.maximum(variance, 0.0) / n) + 1e-12 * (1.0 + np.abs(mean))
            z = float(np.max(np.abs(t.mean(axis=0) - mean) / se))
            assert z < 6.0, f"component {k}: the mean of T(x) over the draws is {z:.2f} standard errors from ∇A(η)"
            measured[f"component_{k}_moment_z"] = z
    return measured


def _vmapped_restarts(family, k, x, keys, looped, chunk, rtol):
    batched = jax.jit(jax.vmap(lambda key: _fit_from_key(family, k, key, x, chunk)))(keys)
    n_restarts = len(looped)
    err = 0.0
    for i in range(n_restarts):
        for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(looped[i])):
            a, b = np.asarray(a)[i], np.asarray(b)
            if np.issubdtype(b.dtype, np.floating):
                finite = np.isfinite(b)
                assert np.array_equal(finite, np.isfinite(a)), f"restart {i}: vmapped and looped fits differ in NaNs"
                diff = np.abs(a[finite] - b[finite]) / (np.abs(b[finite]) + 1e-8)
                err = max(err, float(diff.max(initial=0.0)))
            else:
                assert np.array_equal(a, b), f"restart {i}: vmapped and looped fits differ"
    assert err < rtol, f"vmapped restarts differ from a Python loop by {err:.3g} (relative)"
    return {"max_relative_difference": err, "restarts": n_restarts}


def _rejects(family, k, bad_data):
    for i, bad in enumerate(bad_data):
        try:
            fitting.fit(bad, family, k, key=jax.random.key(0), max_iter=1)
        except (ValueError, TypeError):
            continue
        raise AssertionError(f"bad_data[{i}] was accepted by mixtures.fit; a ValueError or TypeError was expected")
    return {"cases": len(bad_data)}
