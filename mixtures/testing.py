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
* ``normalisation``: each component's density integrates to one (sums to
  one for ``support = "integer"``, over the sphere for ``"sphere"``) within
  10⁻³ — by Gauss–Legendre quadrature over the domain ``check_data`` accepts
  for one or two columns or columns that are independent given the
  component (each column's marginal, per group of an ``Independent``), by an
  exact lattice sum for discrete families, and beyond that by Monte Carlo
  from the family's own draws (importance weights q(x)/p(x) with a Gaussian
  q narrower than the draws) with the allowance widened by 5 standard
  errors — and, where it integrates column by column, the draws'
  distribution matches the density's (Kolmogorov–Smirnov √n·D ≤ 2.3). A
  wrong constant in log h(x), in A(η) or a missing normalising term moves
  the log-likelihood, and the BIC with it, without changing any M-step;
  this is the check that sees it;
* ``m_step_improves`` (in place of ``m_step_maximises`` for a family whose
  M-step searches, as a :class:`~mixtures.GradientFamily`'s does): from
  parameters perturbed away from a fit, the M-step raises every component's
  expected log-likelihood by a positive amount, and ends within 10⁻⁹
  (float64; 10⁻⁵ in float32) relative of the maximum that a search twenty
  times longer and finer reaches;
* ``closed_form_equals_newton`` (exponential families that override
  ``params_from_mean``): the closed form equals the damped Newton solve;
* ``monotone``: the log-likelihood history of every fit never decreases;
* ``sampling``: draws lie in the family's domain (``check_data`` accepts them),
  and refitting one component to its own draws gains no more log-likelihood
  per draw than sampling noise allows (for an exponential family, the mean of
  T(x) over the draws also matches ∇A(η) within 6 standard errors);
* ``vmapped_restarts``: fits of several keys under ``jax.vmap`` equal the same
  fits one by one in a Python loop (relative to each parameter's scale; for a
  searching M-step in float32 within 10⁻², the resolution to which float32
  rounding locates a maximum, with the log-likelihoods still within 10⁻³);
* ``rejects_bad_data``: ``mixtures.fit`` raises ``ValueError`` or ``TypeError``
  on each array in ``bad_data``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import checks
from mixtures._src.engine import em as engine
from mixtures._src.fitting import fit as fitting
from mixtures._src.families.expfam import ExponentialFamily
from mixtures._src.families.gradient import GradientFamily
from mixtures._src.families.independent import Independent
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
      ['batched_density', 'm_step_maximises', 'monotone', 'normalisation', 'rejects_bad_data',
       'sampling', 'vmapped_restarts']
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
    looped = functools.cache(lambda: [fit_one(family, n_components, k, x, chunk) for k in restart_keys])
    start = fit_one(family, n_components, restart_keys[0], x, chunk).mixture

    draws = functools.cache(lambda: _draws(start, keys[2], n_samples))
    battery = {
        "batched_density": lambda: _batched_density(start, x, rtol),
        "normalisation": lambda: _normalisation(start, draws(), keys[3], x.dtype),
        "m_step_maximises": lambda: _m_step_maximises(start, x, keys[1], rtol),
        "monotone": lambda: _monotone(looped(), f64),
        "sampling": lambda: _sampling(start, x, draws()),
        "vmapped_restarts": lambda: _vmapped_restarts(family, n_components, x, restart_keys, looped(), chunk, rtol, f64),
        "rejects_bad_data": lambda: _rejects(family, n_components, bad_data),
    }
    if family.m_step_needs_data:
        # Generalised EM: the M-step raises Q without maximising it.
        del battery["m_step_maximises"]
        battery["m_step_improves"] = lambda: _m_step_improves(start, x, keys[1], f64)
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


def _gradient_m_step_values(m: Mixture, x, with_params=False):
    """Qₖ before and after a generalised-EM M-step, responsibilities from ``m`` (and the new parameters)."""
    before, after, new = _gradient_m_step(m, x)
    return (before, after, new) if with_params else (before, after)


@jax.jit
def _gradient_m_step(m: Mixture, x):
    resp = jax.nn.softmax(m.family.log_prob_components(m.params, x) + jnp.log(m.weights)[None, :], axis=1)
    new = m.family.m_step_from_data(m, x, None, x.shape[0])
    return _expected_log_lik(m.family, m.params, x, resp), _expected_log_lik(m.family, new, x, resp), new


def _perturbed(m: Mixture, key, leaf=None) -> Mixture:
    """``m`` with each component's unconstrained parameters (or one leaf of them) moved by about 30 %."""
    family = m.family
    if not isinstance(family, GradientFamily):
        return m
    u = jax.vmap(family.to_unconstrained)(m.params)
    leaves, treedef = jax.tree.flatten(u)
    keys = jax.random.split(key, len(leaves))
    moved = [
        a + 0.3 * (1.0 + jnp.abs(a)) * jax.random.normal(k, a.shape, a.dtype) if leaf in (None, i) else a
        for i, (a, k) in enumerate(zip(leaves, keys))
    ]
    return Mixture(m.weights, jax.vmap(family.from_unconstrained)(jax.tree.unflatten(treedef, moved)), family)


def _m_step_improves(m: Mixture, x, key, f64):
    start = _perturbed(m, key)
    before, after = (np.asarray(v, np.float64) for v in _gradient_m_step_values(start, x))
    assert np.all(np.isfinite(before)), "the perturbed parameters give a non-finite expected log-likelihood"
    assert np.all(np.isfinite(after)), "the M-step's parameters give a non-finite log-likelihood"
    gain = after - before
    assert np.all(gain > 0), (
        f"from perturbed parameters the M-step raises the expected log-likelihood of components "
        f"{np.flatnonzero(gain <= 0).tolist()} by {gain.min():.3g}, not by a positive amount: its gradient is zero "
        "or never points uphill (is log_prob differentiable in the parameters, with no stop_gradient, and do "
        "to_unconstrained and from_unconstrained invert each other?)"
    )
    measured = {"total_gain": float(np.sum(gain))}
    family = m.family
    if isinstance(family, GradientFamily):
        # Each field alone: a field the gradient cannot see (cut by stop_gradient, or
        # lost in the maps) stays where the perturbation put it.
        to_u = jax.vmap(family.to_unconstrained)
        n_leaves = len(jax.tree.leaves(to_u(m.params)))
        for leaf in range(n_leaves):
            one = _perturbed(m, jax.random.fold_in(key, leaf), leaf)
            b, a, new = _gradient_m_step_values(one, x, with_params=True)
            moved = np.abs(np.asarray(jax.tree.leaves(to_u(new))[leaf]) - np.asarray(jax.tree.leaves(to_u(one.params))[leaf]))
            stuck = np.flatnonzero(~np.any(moved.reshape(len(moved), -1) > 0, axis=1))
            assert len(stuck) == 0 and np.all(np.asarray(a) - np.asarray(b) > 0), (
                f"with only field {leaf} of the unconstrained parameters perturbed, the M-step leaves it where it "
                f"was for components {stuck.tolist()} (gains {(np.asarray(a) - np.asarray(b)).min():.3g}): "
                "log_prob's gradient does not reach that field (a stop_gradient, or a from_unconstrained that "
                "ignores it?)"
            )
        eps = float(jnp.finfo(x.dtype).eps)
        longer = dataclasses.replace(family, n_steps=20 * family.n_steps, m_step_tol=eps**0.75)
        best = np.asarray(_gradient_m_step_values(Mixture(start.weights, start.params, longer), x)[1], np.float64)
        shortfall = float(np.max((best - after) / (1.0 + np.abs(best))))
        allowed = 1e-9 if f64 else 1e-5
        assert shortfall <= allowed, (
            f"the M-step stops {shortfall:.3g} (relative) below the maximum a twenty times longer, finer search "
            f"reaches (allowed {allowed:g}): raise n_steps, or lower m_step_tol"
        )
        measured["shortfall_against_a_long_run"] = shortfall
    return measured


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


def _draws(m: Mixture, key, n) -> list[np.ndarray]:
    """``n`` host draws from each component alone, in component order."""
    out = []
    for k in range(m.n_components):
        one = jax.tree.map(lambda p: p[k : k + 1], m.params)
        single = Mixture(jnp.ones((1,), m.weights.dtype), one, m.family)
        out.append(np.asarray(single.sample(n, key=jax.random.fold_in(key, k))[0]))
    return out


def _sampling(m: Mixture, x, draws_by_component):
    family = m.family
    measured = {}
    for k, draws in enumerate(draws_by_component):
        n = len(draws)
        one = jax.tree.map(lambda p: p[k : k + 1], m.params)
        single = Mixture(jnp.ones((1,), x.dtype), one, family)
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


def _vmapped_restarts(family, k, x, keys, looped, chunk, rtol, f64):
    batched = jax.jit(jax.vmap(lambda key: _fit_from_key(family, k, key, x, chunk)))(keys)
    # A search M-step (m_step_needs_data) locates its maximum only as finely as
    # rounding lets Q tell nearby points apart, about √eps of the parameters'
    # scale; the batched program rounds differently from the looped one, so in
    # float32 the two may settle on points that far apart. Their
    # log-likelihoods still agree to rtol.
    param_rtol = 1e-2 if (family.m_step_needs_data and not f64) else rtol
    errors = {"parameters": 0.0, "log-likelihoods": 0.0}
    for i in range(len(looped)):
        for part, a_tree, b_tree in (
            ("parameters", jax.tree.map(lambda a: a[i], batched.mixture), looped[i].mixture),
            ("log-likelihoods", jax.tree.map(lambda a: a[i], batched._replace(mixture=None)), looped[i]._replace(mixture=None)),
        ):
            for a, b in zip(jax.tree.leaves(a_tree), jax.tree.leaves(b_tree)):
                a, b = np.asarray(a), np.asarray(b)
                if np.issubdtype(b.dtype, np.floating):
                    finite = np.isfinite(b)
                    assert np.array_equal(finite, np.isfinite(a)), f"restart {i}: vmapped and looped fits differ in NaNs"
                    scale = np.max(np.abs(b[finite]), initial=0.0)
                    diff = np.abs(a[finite] - b[finite]) / (np.abs(b[finite]) + scale + 1e-30)
                    errors[part] = max(errors[part], float(diff.max(initial=0.0)))
                else:
                    assert np.array_equal(a, b), f"restart {i}: vmapped and looped fits differ"
    assert errors["log-likelihoods"] < rtol, (
        f"vmapped restarts' log-likelihoods differ from a Python loop's by {errors['log-likelihoods']:.3g} (relative)"
    )
    assert errors["parameters"] < param_rtol, (
        f"vmapped restarts' parameters differ from a Python loop's by {errors['parameters']:.3g} relative to each "
        f"parameter's scale (allowed {param_rtol:g}): the fit depends on how XLA batches it; look for a result "
        "that turns on comparing nearly equal numbers, or on the order of a sum"
    )
    return {"max_relative_difference": max(errors.values()), **errors, "restarts": len(looped)}


def _rejects(family, k, bad_data):
    for i, bad in enumerate(bad_data):
        try:
            fitting.fit(bad, family, k, key=jax.random.key(0), max_iter=1)
        except (ValueError, TypeError):
            continue
        raise AssertionError(f"bad_data[{i}] was accepted by mixtures.fit; a ValueError or TypeError was expected")
    return {"cases": len(bad_data)}


# -- normalisation: the density integrates (or sums) to one ---------------------------------------

MASS_TOL = 1e-3  # |∫p − 1| allowed by quadrature and lattice sums
KS_LIMIT = 2.3  # √n · (largest CDF gap) allowed between the draws and the density
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(12)
_MAX_LATTICE = 1 << 22


def _in_domain(family, points: np.ndarray) -> np.ndarray:
    """(P,) whether ``family.check_data`` accepts each row of ``points`` (P, D)."""
    mask = np.ones(len(points), bool)

    def visit(lo, hi):
        try:
            family.check_data(points[lo:hi])
            return
        except ValueError:
            pass
        if hi - lo == 1:
            mask[lo] = False
            return
        mid = (lo + hi) // 2
        visit(lo, mid)
        visit(mid, hi)

    if len(points):
        visit(0, len(points))
    return mask


def _ordered(value: float) -> int:
    """An integer that orders float64 values as the floats themselves are ordered."""
    bits = int(np.float64(value).view(np.int64))
    return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)


def _unordered(key: int) -> float:
    bits = key if key >= 0 else (-key) | (1 << 63)
    return float(np.array(bits, dtype=np.uint64).view(np.float64))


def _edge(accepts, inside: float, outside: float, integer: bool) -> float:
    """The accepted value nearest ``outside`` on the segment from ``inside`` (accepted), by bisection.

    Bisects over the float64 values themselves (or the integers), so the edge
    found is exact: the next value towards ``outside`` is refused.
    """
    if accepts(outside):
        return outside
    if integer:
        a, b = int(inside), int(outside)
        while abs(b - a) > 1:
            mid = (a + b) // 2
            a, b = (mid, b) if accepts(float(mid)) else (a, mid)
        return float(a)
    a, b = _ordered(inside), _ordered(outside)
    while abs(b - a) > 1:
        mid = (a + b) // 2
        a, b = (mid, b) if accepts(_unordered(mid)) else (a, mid)
    return _unordered(a)


def _axis_rule(values: np.ndarray, accepts, integer: bool):
    """Nodes and weights of a rule for one axis, from draws ``values`` (n,) along it.

    Continuous: Gauss–Legendre on intervals between quantiles of the draws,
    refined geometrically towards the domain's edges (where a density may be
    singular, as a Gamma's with shape below one) and out into the tails, two
    spans of the draws beyond them. Discrete: every accepted integer within
    that range. Returns (nodes, weights, breaks): ``breaks`` are the points at
    which the cumulative distribution is compared with the draws'.
    """
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo if hi > lo else max(abs(lo), 1.0)
    reach = 2.0 * span + (10.0 if integer else 0.0)
    if integer:
        reach = float(np.ceil(reach))
    left = _edge(accepts, lo, lo - reach, integer)
    right = _edge(accepts, hi, hi + reach, integer)
    if integer:
        count = right - left + 1
        if count > _MAX_LATTICE:
            raise AssertionError(f"the support to sum over holds {count:.3g} integers, more than {_MAX_LATTICE}")
        nodes = np.arange(left, right + 1.0)
        return nodes, np.ones_like(nodes), nodes
    halves = 0.5 ** np.arange(1, 17)
    levels = np.unique(np.concatenate([halves, 1.0 - halves, np.linspace(0.0, 1.0, 33)]))
    inner = np.quantile(values, levels)
    # Dyadic steps towards each end: 60 towards an edge of the domain, 8 into an open tail.
    down = 1.0 - 0.5 ** np.arange(1, 61 if left > lo - reach else 9)
    up = 1.0 - 0.5 ** np.arange(1, 61 if right < hi + reach else 9)
    breaks = np.unique(np.concatenate([inner, lo - (lo - left) * down, hi + (right - hi) * up, [left, right]]))
    a, b = breaks[:-1], breaks[1:]
    half = 0.5 * (b - a)
    nodes = (0.5 * (a + b))[:, None] + half[:, None] * _GL_NODES[None, :]
    weights = half[:, None] * _GL_WEIGHTS[None, :]
    return nodes.reshape(-1), weights.reshape(-1), breaks


@functools.partial(jax.jit, static_argnames="family")
def _log_density_jit(family, params, points):
    return family.log_prob_components(params, points)[:, 0]


def _log_density(family, params, points: np.ndarray, dtype) -> np.ndarray:
    """log p at host ``points`` (P, D) under one component, in float64 on the host."""
    n = len(points)
    size = max(4096, 1 << (n - 1).bit_length())  # few distinct shapes to compile
    padded = np.concatenate([points, np.repeat(points[:1], size - n, axis=0)]).astype(dtype)
    return np.asarray(_log_density_jit(family, params, jnp.asarray(padded)), np.float64)[:n]


def _cdf_gap(breaks, node_axis_values, masses, values) -> float:
    """√n · the largest gap between the density's CDF and the draws' at ``breaks``."""
    order = np.argsort(node_axis_values, kind="stable")
    cumulative = np.cumsum(masses[order]) / np.sum(masses)
    at = np.searchsorted(node_axis_values[order], breaks, side="right")
    density_cdf = np.where(at > 0, cumulative[np.maximum(at - 1, 0)], 0.0)
    draws_cdf = np.searchsorted(np.sort(values), breaks, side="right") / len(values)
    return float(np.sqrt(len(values)) * np.max(np.abs(density_cdf - draws_cdf)))


def _product_mass(family, params, draws, dtype, integer):
    """Mass and CDF gaps of one component over a tensor rule (D ≤ 2, or a small lattice)."""
    centre = np.median(draws, axis=0)
    rules = []
    for j in range(draws.shape[1]):
        def accepts(value, j=j):
            point = centre.copy()
            point[j] = value
            return bool(_in_domain(family, point[None, :].astype(draws.dtype))[0])

        rules.append(_axis_rule(draws[:, j], accepts, integer))
    size = math.prod(len(r[0]) for r in rules)
    if size > _MAX_LATTICE * 4:
        return None
    grids = np.meshgrid(*[r[0] for r in rules], indexing="ij")
    points = np.stack([g.reshape(-1) for g in grids], axis=1)
    weights = math.prod(np.meshgrid(*[r[1] for r in rules], indexing="ij")).reshape(-1)
    inside = _in_domain(family, points)
    logp = _log_density(family, params, points[inside], dtype)
    masses = np.zeros(len(points))
    masses[inside] = np.exp(logp) * weights[inside]
    if not np.all(np.isfinite(masses)):
        raise AssertionError("the density is not finite at some points of its domain")
    mass = float(np.sum(masses))
    gaps = [_cdf_gap(r[2], points[:, j], masses, draws[:, j]) for j, r in enumerate(rules)]
    return mass, gaps


def _importance_mass(family, params, draws, key, dtype):
    """∫p by the family's own draws: E_p[q(x)/p(x)] = Q(domain) for a Gaussian q narrower than p."""
    n, d = draws.shape
    mean = draws.mean(axis=0)
    cov = 0.5 * np.cov(draws, rowvar=False).reshape(d, d) + 1e-12 * np.eye(d)
    chol = np.linalg.cholesky(cov)
    def log_q(z):
        white = np.linalg.solve(chol, (z - mean).T).T
        return -0.5 * np.sum(white**2, axis=1) - np.sum(np.log(np.diag(chol))) - 0.5 * d * np.log(2 * np.pi)
    ratio = np.exp(log_q(draws) - _log_density(family, params, draws, dtype))
    from_q = mean + np.asarray(jax.random.normal(key, (n, d), jnp.float32), np.float64) @ chol.T
    share = float(np.mean(_in_domain(family, from_q.astype(draws.dtype))))
    estimate = float(np.mean(ratio))
    se = float(np.std(ratio) / np.sqrt(n))
    if not (estimate > 0 and np.isfinite(estimate)):
        raise AssertionError("the density is zero or not finite at some of its own draws")
    return share / estimate, se / estimate


def _distinct_mass(family, params, draws, dtype):
    """Σ p over the distinct draws plus the Good–Turing estimate of the mass never drawn."""
    distinct, counts = np.unique(draws, axis=0, return_counts=True)
    seen = float(np.sum(np.exp(_log_density(family, params, distinct, dtype))))
    singles = int(np.sum(counts == 1))
    return seen + singles / len(draws), math.sqrt(max(singles, 1)) / len(draws)


def _sphere_mass(family, params, draws, dtype):
    """∫p over the unit circle (D = 2) or sphere (D = 3) by quadrature about the draws' mean direction."""
    d = draws.shape[1]
    if d == 2:
        theta = np.linspace(0.0, 2.0 * np.pi, 8192, endpoint=False)
        points = np.stack([np.cos(theta), np.sin(theta)], axis=1)
        return float(np.sum(np.exp(_log_density(family, params, points, dtype))) * 2.0 * np.pi / len(theta))
    pole = draws.mean(axis=0)
    pole = pole / np.linalg.norm(pole) if np.linalg.norm(pole) > 0 else np.eye(3)[0]
    basis = np.linalg.qr(np.stack([pole, *np.eye(3)], axis=1))[0]
    basis[:, 0] *= np.sign(basis[:, 0] @ pole)
    angle = np.arccos(np.clip(draws @ basis[:, 0], -1.0, 1.0))
    def accepts(value):
        return 0.0 <= value <= np.pi
    nodes, weights, _ = _axis_rule(angle, accepts, False)
    phi = np.linspace(0.0, 2.0 * np.pi, 256, endpoint=False)
    t, f = np.meshgrid(nodes, phi, indexing="ij")
    local = np.stack([np.cos(t), np.sin(t) * np.cos(f), np.sin(t) * np.sin(f)], axis=-1).reshape(-1, 3)
    points = local @ basis.T
    area = (np.sin(t) * weights[:, None] * (2.0 * np.pi / len(phi))).reshape(-1)
    return float(np.sum(np.exp(_log_density(family, params, points, dtype)) * area))


def _uniform_sphere_mass(family, params, n, d, key, dtype):
    z = np.asarray(jax.random.normal(key, (n, d), jnp.float32), np.float64)
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    area = 2.0 * np.pi ** (d / 2) / math.gamma(d / 2)
    p = np.exp(_log_density(family, params, u, dtype)) * area
    return float(np.mean(p)), float(np.std(p) / np.sqrt(n))


def _factors(family, params, draws):
    """Independent pieces of one component: (family, params, draws) per group of columns."""
    if isinstance(family, Independent):
        return [
            piece
            for (group, columns), group_params in zip(family.components, params)
            for piece in _factors(group, group_params, draws[:, list(columns)])
        ]
    d = draws.shape[1]
    if d > 1:
        columns = [family.marginal(params, [j]) for j in range(d)]
        if all(c is not None for c in columns):
            probe = jnp.asarray(draws[:64])
            joint = np.asarray(family.log_prob_components(params, probe)[:, 0])
            parts = sum(np.asarray(f.log_prob_components(p, probe[:, j : j + 1])[:, 0]) for j, (f, p) in enumerate(columns))
            if np.allclose(joint, parts, rtol=1e-5, atol=1e-5):
                return [(f, p, draws[:, j : j + 1]) for j, (f, p) in enumerate(columns)]
    return [(family, params, draws)]


def _normalisation(m: Mixture, draws_by_component, key, dtype):
    measured, problems = {}, []
    for k, draws in enumerate(draws_by_component):
        one = jax.tree.map(lambda p: p[k : k + 1], m.params)
        for piece, (family, params, columns) in enumerate(_factors(m.family, one, draws)):
            tag = f"component {k}" + (f", factor {piece}" if piece else "")
            support = family.support
            d = columns.shape[1]
            se = 0.0
            gaps = []
            if support == "sphere":
                if d <= 3:
                    mass = _sphere_mass(family, params, columns, dtype)
                    method = "quadrature over the sphere"
                else:
                    mass, se = _uniform_sphere_mass(family, params, len(columns), d, jax.random.fold_in(key, k), dtype)
                    method = "Monte Carlo, uniform points on the sphere"
            elif support in ("real", "integer"):
                integer = support == "integer"
                if integer and not np.all(columns == np.round(columns)):
                    raise AssertionError(f"{tag}: support is 'integer' but the sampler draws non-integers")
                result = _product_mass(family, params, columns, dtype, integer) if (d <= 2 or integer) else None
                if result is not None:
                    mass, gaps = result
                    method = "lattice sum" if integer else "quadrature"
                elif integer:
                    mass, se = _distinct_mass(family, params, columns, dtype)
                    method = "the distinct draws and the Good–Turing estimate of the rest"
                else:
                    mass, se = _importance_mass(family, params, columns, jax.random.fold_in(key, k), dtype)
                    method = "Monte Carlo, the family's own draws"
            else:
                raise AssertionError(f"support must be 'real', 'integer' or 'sphere'; the family gives {support!r}")
            allowed = MASS_TOL + 5.0 * se
            measured[f"{tag} mass"] = mass
            if not abs(mass - 1.0) <= allowed:
                hint = ""
                if support == "real" and np.all(columns == np.round(columns)):
                    hint = " (the draws are all integers: a discrete family sets support = 'integer')"
                problems.append(
                    f"{tag}: the density {'sums' if support == 'integer' else 'integrates'} to {mass:.6g} "
                    f"({method}), not 1 within {allowed:.2g}: log_prob is off by a constant of about "
                    f"{np.log(mass) if mass > 0 else -np.inf:.3g} (log h(x), A(η) or a normalising term){hint}"
                )
            if gaps:
                measured[f"{tag} ks"] = max(gaps)
                if max(gaps) > KS_LIMIT:
                    problems.append(
                        f"{tag}: the draws' distribution differs from the density's "
                        f"(Kolmogorov–Smirnov √n·D = {max(gaps):.4f} > {KS_LIMIT}): the sampler and log_prob disagree"
                    )
    assert not problems, "; ".join(problems)
    return measured
