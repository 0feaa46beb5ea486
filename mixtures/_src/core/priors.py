"""Conjugate priors for MAP-EM: on the component parameters and on the mixing weights.

A prior is a NamedTuple of arrays (a pytree), passed to :func:`mixtures.fit` as
``prior=``. The fit then maximises the log posterior log p(x | θ) + log p(θ)
instead of the log-likelihood: the M-step takes the posterior mode given the
expected statistics, and ``history`` and ``log_likelihood`` report the mean
log posterior per sample (see ``docs/priors.md``).

* :class:`GaussianPrior`: normal–inverse-Wishart on a Gaussian component's
  mean and covariance (and its diagonal, spherical and tied analogues), with
  mclust's data-driven defaults (:meth:`GaussianPrior.default`).
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
    "GaussianPrior",
    "Prior",
    "check_conjugate_prior",
    "check_dirichlet_prior",
    "check_gaussian_prior",
]

GAUSSIAN_SHRINKAGE = 0.01
"""mclust's default κ₀: the prior mean counts as 1/100 of an observation."""


class GaussianPrior(NamedTuple):
    """Conjugate prior on Gaussian components (Fraley and Raftery, 2007).

    For covariance "full": μₖ | Σₖ ~ N(``mean``, Σₖ / κ₀) and
    Σₖ ~ inverse-Wishart(ν₀, Ψ), independently for each component; the
    log density is, up to a constant,
    −((ν₀ + D + 2)/2) log|Σₖ| − ½ tr(Σₖ⁻¹ [Ψ + κ₀ (μₖ − μ₀)(μₖ − μ₀)ᵀ]).
    "tied": the same normal on every μₖ given the one Σ, one inverse-Wishart
    on Σ. "diag": for each feature j, μₖⱼ | σ²ₖⱼ ~ N(μ₀ⱼ, σ²ₖⱼ / κ₀) and
    σ²ₖⱼ ~ inverse-gamma(ν₀/2, Ψⱼ/2). "spherical": μₖ | σ²ₖ ~ N(μ₀, σ²ₖ I / κ₀)
    and σ²ₖ ~ inverse-gamma(ν₀/2, Ψ/2). "identity": μₖ ~ N(μ₀, I / κ₀); ``dof``
    and ``scale`` are checked as for "spherical" but not used.

    Attributes:
      mean: μ₀, shape (D,).
      shrinkage: κ₀ > 0, scalar: how many observations the prior mean is worth.
      dof: ν₀, scalar: > D − 1 for "full" and "tied", > 0 otherwise.
      scale: Ψ, symmetric positive definite (D, D) for "full" and "tied",
        positive (D,) for "diag", a positive scalar for "spherical" and
        "identity".

    Example:
      >>> import numpy as np
      >>> from mixtures.priors import GaussianPrior
      >>> p = GaussianPrior(mean=np.zeros(2), shrinkage=0.01, dof=4.0, scale=np.eye(2))
      >>> p.scale.shape
      (2, 2)
    """

    mean: Any
    shrinkage: Any
    dof: Any
    scale: Any

    @classmethod
    def default(cls, x, n_components: int, covariance: str, *, sample_weight=None) -> GaussianPrior:
        """mclust's data-driven default prior (``priorControl()``/``defaultPrior``).

        With m and C the (weighted) mean and covariance of the data (divided
        by Σw, not N − 1): μ₀ = m, κ₀ = 0.01, ν₀ = D + 2, and
        Ψ = C / K^(2/D) for "full" and "tied", diag(C) / K^(2/D) for "diag",
        and the mean of diag(C) / K^(2/D) for "spherical" and "identity".
        Zero variances are replaced by 1; a singular C for "full"/"tied" is
        replaced by its (floored) diagonal, so Ψ is always positive definite.

        Args:
          x: (N, D) data.
          n_components: K.
          covariance: the Gaussian family's covariance type.
          sample_weight: optional (N,) non-negative row weights.

        Returns:
          A GaussianPrior of arrays in the data's floating dtype.

        Example:
          >>> import numpy as np
          >>> from mixtures.priors import GaussianPrior
          >>> x = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]])
          >>> p = GaussianPrior.default(x, 2, "diag")
          >>> p.mean.tolist(), float(p.dof), p.scale.tolist()
          ([1.0, 2.0], 4.0, [0.5, 2.0])
        """
        x64 = np.asarray(x, dtype=np.float64)
        d = x64.shape[1]
        w = np.ones(x64.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        mean = w @ x64 / np.sum(w)
        centred = x64 - mean[None, :]
        cov = (centred * w[:, None]).T @ centred / np.sum(w)
        var = np.diag(cov)
        var = np.where(var > 0, var, 1.0)
        factor = float(n_components) ** (-2.0 / d)
        if covariance in ("full", "tied"):
            try:
                np.linalg.cholesky(cov)
                scale = cov * factor
            except np.linalg.LinAlgError:
                scale = np.diag(var) * factor
        elif covariance == "diag":
            scale = var * factor
        else:
            scale = np.mean(var) * factor
        dtype = _dtype_of(x)
        return cls(
            jnp.asarray(mean, dtype),
            jnp.asarray(GAUSSIAN_SHRINKAGE, dtype),
            jnp.asarray(d + 2.0, dtype),
            jnp.asarray(scale, dtype),
        )


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

    The M-step's weights become πₖ ∝ Nₖ + α − 1 and the log prior is
    (α − 1) Σₖ log πₖ (without its normalising constant). α = 1 is the flat
    prior (the maximum-likelihood weights); α > 1 pulls the weights towards
    1/K and keeps every weight away from zero.

    Attributes:
      concentration: α ≥ 1, scalar.

    Example:
      >>> from mixtures.priors import DirichletPrior
      >>> float(DirichletPrior(2.0).concentration)
      2.0
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
      weights: a :class:`DirichletPrior` or None.

    Example:
      >>> from mixtures.priors import DirichletPrior, Prior
      >>> Prior(components="default", weights=DirichletPrior(2.0)).components
      'default'
    """

    components: Any = None
    weights: Any = None


# -- host-side validation -------------------------------------------------


def check_gaussian_prior(prior, covariance: str, n_features: int, dtype) -> GaussianPrior:
    """Checks a :class:`GaussianPrior` against the covariance type and D; returns it in ``dtype``.

    Args:
      prior: the prior to check.
      covariance: "full", "tied", "diag", "spherical" or "identity".
      n_features: D.
      dtype: the data's floating dtype.

    Returns:
      The prior with every field a ``jax.Array`` of ``dtype``.

    Raises:
      TypeError: if ``prior`` is not a GaussianPrior.
      ValueError: naming the field that has the wrong shape or value.

    Example:
      >>> import numpy as np
      >>> from mixtures.priors import GaussianPrior, check_gaussian_prior
      >>> check_gaussian_prior(GaussianPrior(np.zeros(2), 0.01, 1.0, np.eye(2)), "full", 2, np.float64)
      Traceback (most recent call last):
      ...
      ValueError: `prior.dof` must be greater than D − 1 = 1 for covariance='full'; received 1.0.
    """
    if not isinstance(prior, GaussianPrior):
        raise TypeError(
            "`prior` for a Gaussian family must be a mixtures.GaussianPrior (or \"default\"); "
            f"received {type(prior).__name__}."
        )
    d = n_features
    mean = _finite_array(prior.mean, "prior.mean", (d,), "(D,)")
    shrinkage = _positive_scalar(prior.shrinkage, "prior.shrinkage")
    dof = _finite_scalar(prior.dof, "prior.dof")
    lower = d - 1 if covariance in ("full", "tied") else 0
    if dof <= lower:
        what = f"D − 1 = {lower}" if lower else "0"
        raise ValueError(f"`prior.dof` must be greater than {what} for covariance={covariance!r}; received {dof}.")
    if covariance in ("full", "tied"):
        scale = _finite_array(prior.scale, "prior.scale", (d, d), "(D, D)")
        checks.symmetric_positive_definite(scale, "prior.scale")
    else:
        shape, text = ((d,), "(D,)") if covariance == "diag" else ((), "() (a scalar)")
        scale = _finite_array(prior.scale, "prior.scale", shape, text)
        if np.any(scale <= 0):
            raise ValueError(f"`prior.scale` must be positive for covariance={covariance!r}; received {scale}.")
    return GaussianPrior(*(jnp.asarray(v, dtype) for v in (mean, shrinkage, dof, scale)))


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
      >>> from mixtures.priors import ConjugatePrior, check_conjugate_prior
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
      >>> from mixtures.priors import DirichletPrior, check_dirichlet_prior
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
