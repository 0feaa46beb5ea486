"""Conjugate priors for MAP-EM: on the component parameters and on the mixing weights.

A prior is a NamedTuple of arrays (a pytree), passed to :func:`mixtures.fit` as
``prior=``. The fit then maximises the log posterior log p(x | θ) + log p(θ)
instead of the log-likelihood: the M-step takes the posterior mode given the
expected statistics, and ``history`` and ``log_likelihood`` report the mean
log posterior per sample (see ``docs/priors.md``).

* :class:`~mixtures.priors.GaussianPrior` (beside the Gaussian family):
  normal–inverse-Wishart on a Gaussian component's mean and covariance.
* :class:`ConjugatePrior`: pseudo-counts on the mean parameters of any
  :class:`~mixtures.ExponentialFamily`.
* :class:`DirichletPrior`: a symmetric Dirichlet on the mixing weights.
* :class:`Prior`: a component prior and a weight prior together.

The ``check_*`` functions validate a prior on the host and cast it to the
data's dtype; a family's :meth:`~mixtures.Family.check_prior` calls them.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import checks

__all__ = [
    "ConjugatePrior",
    "DirichletPrior",
    "DirichletProcessPrior",
    "Prior",
    "check_conjugate_prior",
    "check_dirichlet_prior",
]

class ConjugatePrior(NamedTuple):
    """Conjugate prior of an exponential family, as pseudo-counts on its mean parameters.

    p(η) ∝ exp(a (⟨η, μ₀⟩ − A(η))) for each component: a pseudo-observations
    whose sufficient statistics average μ₀. The M-step's target mean becomes
    (Sₖ + a μ₀) / (Nₖ + a), and the log prior is a (⟨η, μ₀⟩ − A(η)) per
    component (without its normalising constant).

    Attributes:
      pseudo_count: a > 0, scalar.
      mean: μ₀, shape (M,), mean parameters E[T(x)] in the family's mean
        space (e.g. an average of T over data).

    Example:
      >>> import numpy as np
      >>> from mixtures.priors import ConjugatePrior
      >>> ConjugatePrior(pseudo_count=2.0, mean=np.array([3.0, 1.0])).mean.shape
      (2,)
    """

    pseudo_count: Any
    mean: Any

    @classmethod
    def default(cls, family, x, *, pseudo_count: float = 1.0, sample_weight=None) -> ConjugatePrior:
        """One pseudo-observation at the data's (weighted) average of T(x).

        Args:
          family: an :class:`~mixtures.ExponentialFamily`.
          x: (N, D) data in the family's domain.
          pseudo_count: a > 0.
          sample_weight: optional (N,) non-negative row weights.

        Returns:
          A ConjugatePrior of arrays in the data's floating dtype.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import ConjugatePrior
          >>> p = ConjugatePrior.default(mx.Poisson(), np.array([[1.0, 0.0], [3.0, 2.0]]))
          >>> float(p.pseudo_count), p.mean.tolist()
          (1.0, [2.0, 1.0])
        """
        dtype = _dtype_of(x)
        t = np.asarray(jax.vmap(family.sufficient_stats)(jnp.asarray(x, dtype)), dtype=np.float64)
        w = np.ones(t.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        mean = w @ t / np.sum(w)
        return cls(jnp.asarray(pseudo_count, dtype), jnp.asarray(mean, dtype))


class DirichletPrior(NamedTuple):
    """Symmetric Dirichlet(α, …, α) prior on the mixing weights.

    In MAP-EM (:func:`mixtures.fit`) the M-step's weights become
    πₖ ∝ Nₖ + α − 1 and the log prior is (α − 1) Σₖ log πₖ (without its
    normalising constant). α = 1 is the flat prior (the maximum-likelihood
    weights); α > 1 pulls the weights towards 1/K and keeps every weight away
    from zero; MAP-EM needs α ≥ 1. Variational Bayes
    (:func:`mixtures.fit_variational`) takes any α > 0: its posterior is
    Dirichlet(α + Nₖ), and a small α empties unneeded components.

    Attributes:
      concentration: α, scalar: ≥ 1 for MAP-EM, > 0 for variational Bayes.

    Example:
      >>> from mixtures.priors import DirichletPrior
      >>> float(DirichletPrior(2.0).concentration)
      2.0
    """

    concentration: Any


class DirichletProcessPrior(NamedTuple):
    """Truncated stick-breaking Dirichlet-process prior on the mixing weights (variational Bayes).

    πₖ = vₖ (1 − v₁) ⋯ (1 − vₖ₋₁) with sticks vₖ ~ beta(1, γ), k = 1 … K (K the
    truncation). A small γ makes the first few sticks take most of the mass,
    so unneeded components get weight near zero; the expected number of
    components grows like γ log N. Only :func:`mixtures.fit_variational`
    takes it.

    Attributes:
      concentration: γ > 0, scalar.

    Example:
      >>> from mixtures.priors import DirichletProcessPrior
      >>> float(DirichletProcessPrior(0.5).concentration)
      0.5
    """

    concentration: Any


class Prior(NamedTuple):
    """A prior on a mixture: one on the component parameters, one on the weights.

    Either may be None (no prior on that part). ``components`` may also be
    the string "default" in :func:`mixtures.fit`, meaning the family's
    data-driven default (:meth:`~mixtures.Family.default_prior`).

    Attributes:
      components: the family's prior (a :class:`GaussianPrior` for
        :class:`~mixtures.Gaussian`, a :class:`ConjugatePrior` for an
        :class:`~mixtures.ExponentialFamily`), "default", or None.
      weights: a :class:`DirichletPrior` or None (no prior on the weights in
        MAP-EM); for :func:`mixtures.fit_variational` also a
        :class:`DirichletProcessPrior`, and None means its default,
        ``DirichletProcessPrior(1 / K)``.

    Example:
      >>> from mixtures.priors import DirichletPrior, Prior
      >>> Prior(components="default", weights=DirichletPrior(2.0)).components
      'default'
    """

    components: Any = None
    weights: Any = None


# -- host-side validation -------------------------------------------------


def check_conjugate_prior(prior, n_stats: int, dtype) -> ConjugatePrior:
    """Checks a :class:`ConjugatePrior` for a family with M sufficient statistics; returns it in ``dtype``.

    Args:
      prior: the prior to check.
      n_stats: M, the length of T(x).
      dtype: the data's floating dtype.

    Returns:
      The prior with every field a ``jax.Array`` of ``dtype``.

    Raises:
      TypeError: if ``prior`` is not a ConjugatePrior.
      ValueError: naming the field that has the wrong shape or value.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.core.priors import ConjugatePrior, check_conjugate_prior
      >>> check_conjugate_prior(ConjugatePrior(0.0, np.ones(2)), 2, np.float64)
      Traceback (most recent call last):
      ...
      ValueError: `prior.pseudo_count` must be finite and positive; received 0.0.
    """
    if not isinstance(prior, ConjugatePrior):
        raise TypeError(
            "`prior` for an exponential family must be a mixtures.ConjugatePrior (or \"default\"); "
            f"received {type(prior).__name__}."
        )
    count = _positive_scalar(prior.pseudo_count, "prior.pseudo_count")
    mean = _finite_array(prior.mean, "prior.mean", (n_stats,), "(M,), M the length of T(x)")
    return ConjugatePrior(jnp.asarray(count, dtype), jnp.asarray(mean, dtype))


def check_dirichlet_prior(prior, dtype) -> DirichletPrior:
    """Checks a :class:`DirichletPrior` (α ≥ 1); returns it in ``dtype``.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.core.priors import DirichletPrior, check_dirichlet_prior
      >>> check_dirichlet_prior(DirichletPrior(0.5), np.float64)
      Traceback (most recent call last):
      ...
      ValueError: `prior.weights.concentration` must be at least 1 (weights ∝ Nₖ + α − 1 stay positive); received 0.5.
    """
    if not isinstance(prior, DirichletPrior):
        raise TypeError(f"`prior.weights` must be a mixtures.DirichletPrior or None; received {type(prior).__name__}.")
    alpha = _finite_scalar(prior.concentration, "prior.weights.concentration")
    if alpha < 1:
        raise ValueError(
            "`prior.weights.concentration` must be at least 1 (weights ∝ Nₖ + α − 1 stay positive); "
            f"received {alpha}."
        )
    return DirichletPrior(jnp.asarray(alpha, dtype))


def _dtype_of(x):
    return checks.float_dtype_for(x.dtype if isinstance(x, jax.Array) else np.asarray(x).dtype)


def _finite_array(value, name: str, shape: tuple, text: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be an array of real numbers; received {value!r}.") from None
    if arr.shape != shape:
        raise ValueError(f"`{name}` must have shape {text} = {shape}; received shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite; received {arr}.")
    return arr


def _finite_scalar(value, name: str) -> float:
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or np.ndim(value) == 0):
        raise TypeError(f"`{name}` must be a real number; received {value!r}.")
    return float(_finite_array(value, name, (), "() (a scalar)"))


def _positive_scalar(value, name: str) -> float:
    v = _finite_scalar(value, name)
    if v <= 0:
        raise ValueError(f"`{name}` must be finite and positive; received {v}.")
    return v
