"""Families defined by their exponential-family form.

A researcher writes, for one observation x and one component, the sufficient
statistics T(x), the log base measure log h(x), the log-partition A(η), and the
maps between readable parameters and the natural parameters η (flat vectors of
length M). Everything the engine needs follows by autodiff:

* log p(x | η) = ⟨η, T(x)⟩ + log h(x) − A(η);
* the mean parameters E[T(x)] = ∇A(η);
* accumulation: Sₖ = Σₙ rₙₖ T(xₙ), one matrix product per block of rows;
* the M-step: the η whose mean ∇A(η) equals Sₖ / Nₖ, found by a damped Newton
  solve of the convex problem minᵧ A(η) − ⟨η, Sₖ/Nₖ⟩ (its Hessian ∇²A is the
  Fisher information), warm-started at the previous η.

A family that knows its M-step in closed form overrides :meth:`params_from_mean`;
the test suite checks every such override against the Newton solve.
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mixtures._src.core import blocks
from mixtures._src.core.family import Family
from mixtures._src.core.priors import ConjugatePrior, check_conjugate_prior
from mixtures._src.families import conjugate

__all__ = ["ExponentialFamily", "ExpFamStats", "newton_natural_from_mean"]

_HI = lax.Precision.HIGHEST
NEWTON_ITERATIONS = 40
_STEP_SIZES = 0.5 ** np.arange(48)  # step halvings tried by the line search


class ExpFamStats(NamedTuple):
    """Summed sufficient statistics: ``sum_t`` (K, M) = Σₙ rₙₖ T(xₙ)."""

    sum_t: jax.Array


def newton_natural_from_mean(log_partition, mean, start):
    """Natural parameters η with ∇A(η) = ``mean``, by damped Newton from ``start``.

    Minimises the convex f(η) = A(η) − ⟨η, mean⟩. Each step solves
    (∇²A + λI) d = ∇f with a small ridge λ, then halves the step until f
    decreases (a step to a point where f is not finite is never taken).

    Args:
      log_partition: A, a function of η (M,) returning a scalar.
      mean: target mean parameters, shape (M,).
      start: a natural parameter in A's domain, shape (M,).

    Returns:
      η of shape (M,).

    Example:
      >>> import jax.numpy as jnp
      >>> from mixtures._src.families.expfam import newton_natural_from_mean
      >>> a = lambda eta: jnp.exp(eta[0])  # Poisson: mean = exp(η)
      >>> float(newton_natural_from_mean(a, jnp.array([3.0]), jnp.array([0.0]))[0]).__round__(6)
      1.098612
    """

    def objective(eta):
        return log_partition(eta) - jnp.dot(eta, mean, precision=_HI)

    grad_f = jax.grad(objective)
    hess_a = jax.hessian(log_partition)

    def step(_, eta):
        g = grad_f(eta)
        h = hess_a(eta)
        ridge = 1e-10 * (1.0 + jnp.max(jnp.abs(jnp.diagonal(h))))
        direction = jnp.linalg.solve(h + ridge * jnp.eye(h.shape[0], dtype=h.dtype), g)
        f0 = objective(eta)
        candidates = eta[None, :] - _STEP_SIZES.astype(eta.dtype)[:, None] * direction[None, :]
        values = jax.vmap(objective)(candidates)
        ok = jnp.isfinite(values) & (values <= f0)
        first = jnp.argmax(ok)
        new = jnp.where(jnp.any(ok), candidates[first], eta)
        return jnp.where(jnp.all(jnp.isfinite(new)), new, eta)

    return lax.fori_loop(0, NEWTON_ITERATIONS, step, start)


class ExponentialFamily(Family):
    """Base class of families given by T(x), log h(x), A(η) and the parameter maps.

    Subclasses (frozen dataclasses) implement :meth:`sufficient_stats`,
    :meth:`log_base_measure`, :meth:`log_partition`, :meth:`to_natural`,
    :meth:`from_natural`, and the :class:`~mixtures.Family` methods that no
    exponential-family form determines: :meth:`sample`, :meth:`n_features`,
    :meth:`n_free_parameters` and, for domain checks, :meth:`check_data`.
    A family whose log-partition is not finite at η = 0 also overrides
    :meth:`initial_natural`. Parameters are NamedTuples
    whose leaves have a leading component axis K; the five methods above see
    one component (no K axis) and one observation.

    Derived: :meth:`log_prob`, :meth:`mean_params`, :meth:`accumulate`,
    :meth:`m_step` (via :meth:`params_from_mean`) and :meth:`init_params`.
    """

    # -- what a family defines ----------------------------------------------

    @abc.abstractmethod
    def sufficient_stats(self, x: jax.Array) -> jax.Array:
        """T(x) for one observation x (D,); a flat vector (M,)."""

    @abc.abstractmethod
    def log_base_measure(self, x: jax.Array) -> jax.Array:
        """log h(x) for one observation; a scalar."""

    @abc.abstractmethod
    def log_partition(self, natural: jax.Array) -> jax.Array:
        """A(η) for natural parameters η (M,); a scalar (+inf or NaN outside the domain)."""

    @abc.abstractmethod
    def to_natural(self, params) -> jax.Array:
        """η (M,) of one component's parameters."""

    @abc.abstractmethod
    def from_natural(self, natural: jax.Array):
        """One component's parameters from η (M,)."""

    # -- derived ------------------------------------------------------------

    def log_prob(self, params, x):
        eta = self.to_natural(params)
        t = self.sufficient_stats(x)
        return jnp.dot(eta, t, precision=_HI) + self.log_base_measure(x) - self.log_partition(eta)

    def log_prob_components(self, params, x):
        """(B, K) log-densities as one matrix product T(X) ηᵀ."""
        eta = jax.vmap(self.to_natural)(params)  # (K, M)
        t = jax.vmap(self.sufficient_stats)(x)  # (B, M)
        base = jax.vmap(self.log_base_measure)(x)  # (B,)
        a = jax.vmap(self.log_partition)(eta)  # (K,)
        return jnp.dot(t, eta.T, precision=_HI) + base[:, None] - a[None, :]

    def mean_params(self, params) -> jax.Array:
        """E[T(x)] = ∇A(η) for one component; shape (M,).

        Example:
          >>> import jax.numpy as jnp, mixtures as mx
          >>> mx.Poisson().mean_params(mx.Poisson().make_params(jnp.array([[2.0, 5.0]]))._replace(
          ...     rates=jnp.array([2.0, 5.0]))).round(6).tolist()
          [2.0, 5.0]
        """
        return jax.grad(self.log_partition)(self.to_natural(params))

    def params_from_mean(self, mean: jax.Array, previous):
        """One component's parameters whose mean parameters equal ``mean`` (M,).

        The M-step of an exponential family. The default solves ∇A(η) = mean
        by damped Newton from ``previous``'s η; a family with a closed form
        overrides this method.

        Args:
          mean: target mean parameters (M,), e.g. Sₖ / Nₖ.
          previous: the component's current parameters (the warm start).

        Returns:
          One component's parameters.
        """
        eta = newton_natural_from_mean(self.log_partition, mean, self.to_natural(previous))
        return self.from_natural(eta)

    def accumulate(self, params, x, resp) -> ExpFamStats:
        t = jax.vmap(self.sufficient_stats)(x)  # (B, M)
        return ExpFamStats(jnp.dot(resp.T, t, precision=_HI))

    # -- rows with missing entries, for families whose columns are independent ---------------

    def stat_columns(self, n_features: int) -> np.ndarray | None:
        """The data column each entry of T(x) depends on alone, (M,) ints; None (the default) if not so.

        A family whose columns are independent given the component, with
        every entry of T(x) a function of one column, returns this map and
        sets :attr:`~mixtures.Family.handles_missing`: a missing entry then
        drops out of the density, and its statistics are replaced by their
        expectation under the component, ∇A(η) (the exact EM step, the
        missing entries being latent).

        Example:
          >>> import mixtures as mx
          >>> mx.Poisson().stat_columns(3).tolist()
          [0, 1, 2]
        """
        del n_features
        return None

    def log_prob_observed(self, params, x, max_missing: int):
        """Σ over the observed columns of each column's log-density (the columns are independent)."""
        del max_missing
        observed = ~jnp.isnan(x)
        filled = jnp.where(observed, x, jnp.ones_like(x))  # in every such family's domain; masked below

        def column(p, xj):
            return self.log_prob_components(p, xj)

        by_column = jax.vmap(column, in_axes=(1, 1))(
            jax.tree.map(lambda leaf: leaf[:, :, None], params), filled[:, :, None]
        )  # (D, B, K)
        return jnp.sum(jnp.where(observed.T[:, :, None], by_column, 0.0), axis=0)

    def accumulate_observed(self, params, x, resp, max_missing: int) -> ExpFamStats:
        """Σₙ rₙₖ E[T(xₙ) | xₙ,ₒ, k]: observed entries' T, and ∇A(ηₖ) for the missing ones."""
        del max_missing
        observed = ~jnp.isnan(x)
        filled = jnp.where(observed, x, jnp.ones_like(x))
        cols = self.stat_columns(x.shape[-1])
        seen = observed[:, cols].astype(x.dtype)  # (B, M)
        t = jax.vmap(self.sufficient_stats)(filled) * seen
        mean = jax.vmap(self.mean_params)(params)  # (K, M)
        unseen = jnp.dot(resp.T, 1 - seen, precision=_HI)  # (K, M)
        return ExpFamStats(jnp.dot(resp.T, t, precision=_HI) + mean * unseen)

    def m_step(self, stats: ExpFamStats, counts, previous):
        mean = stats.sum_t / jnp.maximum(counts, jnp.finfo(counts.dtype).tiny)[:, None]
        return jax.vmap(self.params_from_mean)(mean, previous)

    # -- host-side checks ---------------------------------------------------------

    def check_methods(self, x) -> None:
        """Checks, before compiling, that T(x), log h(x) and A(η) have the contract's shapes and values.

        * T(x) is a flat vector (M,), log h(x) and A(η) are scalars, and
          :meth:`to_natural` gives back an η of shape (M,);
        * for a family that does not state its domain (no :meth:`check_data`
          of its own), T(x) and log h(x) are finite on every row;
        * without a closed-form :meth:`params_from_mean`, A is finite at
          :meth:`initial_natural`, where the Newton solve of the first M-step
          starts (η = 0 by default, outside the domain of many families).

        Raises:
          TypeError: for a method that returns the wrong shape.
          ValueError: for data on which T or log h is not finite, or an
            ``initial_natural`` outside A's domain.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> mx.Poisson().check_methods(np.array([[1.0], [3.0]]))  # nothing to report
        """
        x = np.asarray(x)
        name = type(self).__name__
        row = jax.ShapeDtypeStruct(x.shape[1:], x.dtype)
        t = jax.eval_shape(self.sufficient_stats, row)
        if len(t.shape) != 1:
            raise TypeError(
                f"{name}.sufficient_stats must return a flat vector T(x) of shape (M,) for one observation of "
                f"shape {x.shape[1:]}; it returns shape {t.shape}. Return a 1-D array, e.g. jnp.atleast_1d(...) "
                "or jnp.concatenate of the statistics."
            )
        for method, shape in (
            ("log_base_measure", jax.eval_shape(self.log_base_measure, row).shape),
            ("log_partition", jax.eval_shape(self.log_partition, jax.ShapeDtypeStruct(t.shape, x.dtype)).shape),
        ):
            if shape != ():
                raise TypeError(f"{name}.{method} must return a scalar for one observation; it returns shape {shape}.")
        natural_shape = jax.eval_shape(lambda v: self.to_natural(self.from_natural(v)), jax.ShapeDtypeStruct(t.shape, x.dtype)).shape
        if natural_shape != t.shape:
            raise TypeError(
                f"{name}.to_natural must return η of the shape of T(x), {t.shape}; it returns {natural_shape}."
            )
        if type(self).check_data is Family.check_data:
            stats = jax.vmap(self.sufficient_stats)
            base = jax.vmap(self.log_base_measure)
            for start in range(0, len(x), 4096):
                block = jnp.asarray(x[start : start + 4096])
                ok = np.asarray(jnp.all(jnp.isfinite(stats(block)), axis=1) & jnp.isfinite(base(block)))
                if not ok.all():
                    r = start + int(np.argmin(ok))
                    raise ValueError(
                        f"row {r} of `x` ({x[r].tolist()}) gives a non-finite T(x) or log h(x) under {name}: it "
                        "lies outside the family's domain. A family states its domain with check_data, which "
                        "then refuses such rows by name."
                    )
        if type(self).params_from_mean is ExponentialFamily.params_from_mean:
            eta = self.initial_natural(self.sufficient_stats(jnp.asarray(x[0])))
            value = float(self.log_partition(eta))
            if not np.isfinite(value):
                raise ValueError(
                    f"{name}.log_partition is {value} at initial_natural(...) = {np.asarray(eta).tolist()}, where "
                    "the Newton solve of the first M-step starts. A family whose A(η) is not finite at η = 0 "
                    "overrides initial_natural(mean) to return a point inside A's domain (or gives its M-step in "
                    "closed form by overriding params_from_mean)."
                )

    def check_params(self, params) -> None:
        """Refuses a warm start whose parameters map to an η outside A's domain.

        Runs :meth:`~mixtures.Family.check_params` first (the family's
        ``make_params``, if it takes the parameter fields by name), then
        requires every component's η = :meth:`to_natural` and A(η) to be
        finite.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> mx.Poisson().check_params(mx.PoissonParams(np.array([[2.0]])))  # inside the domain
        """
        super().check_params(params)
        eta = np.asarray(jax.vmap(self.to_natural)(params))
        value = np.asarray(jax.vmap(self.log_partition)(jnp.asarray(eta)))
        bad = np.flatnonzero(~(np.all(np.isfinite(eta.reshape(len(eta), -1)), axis=1) & np.isfinite(value)))
        if len(bad):
            k = int(bad[0])
            raise ValueError(
                f"`init.params` must lie in the parameter space of {self!r}: component {k} maps to natural "
                f"parameters η = {eta[k].tolist()} where A(η) = {float(value[k])}, which is not finite."
            )

    # -- MAP-EM with the conjugate prior -----------------------------------------

    def check_prior(self, prior, x) -> ConjugatePrior:
        """Checks a :class:`~mixtures.priors.ConjugatePrior` against M, the length of T(x).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import ConjugatePrior
          >>> mx.Poisson().check_prior(ConjugatePrior(1.0, np.ones(3)), np.zeros((4, 2)))
          Traceback (most recent call last):
          ...
          ValueError: `prior.mean` must have shape (M,), M the length of T(x) = (2,); received shape (3,).
        """
        n_stats = jax.eval_shape(self.sufficient_stats, jax.ShapeDtypeStruct(x.shape[1:], x.dtype)).shape[0]
        return check_conjugate_prior(prior, n_stats, x.dtype)

    def default_prior(self, x, n_components: int, sample_weight=None) -> ConjugatePrior:
        """One pseudo-observation at the data's average of T(x) (:meth:`~mixtures.priors.ConjugatePrior.default`).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> mx.Bernoulli().default_prior(np.array([[0.0, 1.0], [1.0, 1.0]]), 2).mean.tolist()
          [0.5, 1.0]
        """
        del n_components
        return ConjugatePrior.default(self, x, sample_weight=sample_weight)

    def map_step(self, stats: ExpFamStats, counts, previous, prior: ConjugatePrior, weights):
        """Posterior mode: the parameters whose mean is (Sₖ + a μ₀) / (Nₖ + a), via :meth:`params_from_mean`.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures._src.families.expfam import ExpFamStats
          >>> from mixtures.priors import ConjugatePrior
          >>> f = mx.Poisson()
          >>> prior = ConjugatePrior(np.array(2.0), np.array([1.0]))
          >>> new = f.map_step(ExpFamStats(np.array([[10.0]])), np.array([2.0]), None, prior, np.ones(1))
          >>> new.rates.tolist()  # (10 + 2·1) / (2 + 2)
          [[3.0]]
        """
        del weights  # switched-off components have zero counts; the engine keeps their parameters
        a = prior.pseudo_count
        mean = (stats.sum_t + a * prior.mean[None, :]) / (counts + a)[:, None]
        return jax.vmap(self.params_from_mean)(mean, previous)

    def log_prior(self, params, prior: ConjugatePrior, weights):
        """Σ over switched-on components of a (⟨ηₖ, μ₀⟩ − A(ηₖ)), the conjugate log prior without its constant.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import ConjugatePrior
          >>> f = mx.Poisson()
          >>> prior = ConjugatePrior(np.array(2.0), np.array([1.0]))
          >>> float(f.log_prior(f.make_params([[1.0]]), prior, np.ones(1)))  # 2 (0·1 − e⁰)
          -2.0
        """
        eta = jax.vmap(self.to_natural)(params)  # (K, M)
        per = jnp.dot(eta, prior.mean, precision=_HI) - jax.vmap(self.log_partition)(eta)
        return prior.pseudo_count * jnp.sum(jnp.where(weights > 0, per, 0.0))

    # -- variational Bayes, from the conjugate prior's normaliser -------------------

    def log_conjugate_normalizer(self, tau: jax.Array, nu: jax.Array) -> jax.Array:
        """log Z(τ, ν) = log ∫ exp(⟨η, τ⟩ − ν A(η)) dη of one component's conjugate prior; optional.

        A family that states it gets variational Bayes
        (:func:`mixtures.fit_variational`) and posterior-predictive densities
        by autodiff (see :mod:`mixtures._src.families.conjugate`); the
        default raises ``NotImplementedError`` and :attr:`conjugate` is False.

        Args:
          tau: τ, shape (M,) (in pseudo-count form, a μ₀).
          nu: ν, a scalar (the pseudo-count a).

        Returns:
          A scalar (+inf or NaN where the integral diverges).
        """
        del tau, nu
        raise NotImplementedError(f"{type(self).__name__} does not state its conjugate prior's normaliser.")

    @property
    def conjugate(self) -> bool:
        """Whether the family states :meth:`log_conjugate_normalizer` (and so supports variational Bayes)."""
        return type(self).log_conjugate_normalizer is not ExponentialFamily.log_conjugate_normalizer

    def default_variational_prior(self, x, n_components: int, sample_weight=None) -> ConjugatePrior:
        """One pseudo-observation midway between the data's average of T(x) and the mean at η = :meth:`initial_natural`.

        A weak prior (one observation's worth) that stays away from the edge
        of the mean space where a feature's average sits on it (a Bernoulli
        feature that is always 0, a Poisson count that is always 0): there
        the conjugate normaliser diverges, or E_q[η] runs off to ±∞.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> mx.Bernoulli().default_variational_prior(np.array([[0.0], [0.0], [0.0]]), 2).mean.tolist()  # (0 + ½) / 2
          [0.25]
        """
        del n_components
        prior = ConjugatePrior.default(self, x, sample_weight=sample_weight)
        centre = jax.grad(self.log_partition)(self.initial_natural(prior.mean))
        return ConjugatePrior(prior.pseudo_count, ((prior.mean + centre) / 2).astype(prior.mean.dtype))

    def posterior_update(self, stats: ExpFamStats, counts, frame, prior: ConjugatePrior) -> ConjugatePrior:
        del frame
        return conjugate.posterior_update(self, stats, counts, prior)

    def expected_params(self, posterior: ConjugatePrior):
        return conjugate.expected_params(self, posterior)

    def posterior_kl(self, posterior: ConjugatePrior, prior: ConjugatePrior):
        return conjugate.posterior_kl(self, posterior, prior)

    def posterior_mean(self, posterior: ConjugatePrior):
        """The parameters at the posterior mean of the mean parameters, E_q[∇A(η)] = τ / ν."""
        return conjugate.posterior_mean(self, posterior)

    def predictive_log_prob(self, posterior: ConjugatePrior, x):
        return conjugate.predictive_log_prob(self, posterior, x)

    def initial_natural(self, mean: jax.Array) -> jax.Array:
        """A natural parameter inside A's domain from which Newton starts when no fit exists yet.

        Used only by :meth:`init_params`; later M-steps start from the
        previous parameters. The default is η = 0; a family whose A is not
        finite at 0 (e.g. one that needs η < 0) overrides it.

        Args:
          mean: the target mean parameters (M,), should the family use them.

        Returns:
          η of shape (M,).
        """
        return jnp.zeros_like(mean)

    def init_params(self, points, x):
        """Components whose mean parameters are halfway between T(point) and the data's mean of T.

        Blending with the data average keeps every start inside the parameter
        space (a Bernoulli point of zeros and ones, a Poisson row of zeros).
        Without a closed form, the Newton solve starts at :meth:`initial_natural`.
        """
        t_points = jax.vmap(self.sufficient_stats)(points)
        t_sum = blocks.sum_over_chunks(
            lambda rows, w, idx: jnp.dot(w, jax.vmap(self.sufficient_stats)(rows), precision=_HI),
            x, None, min(x.shape[0], 4096),
        )
        t_mean = t_sum / x.shape[0]
        means = 0.5 * t_points + 0.5 * t_mean[None, :]
        starts = jax.vmap(lambda mu: self.from_natural(self.initial_natural(mu)))(means)
        return jax.vmap(self.params_from_mean)(means, starts)
