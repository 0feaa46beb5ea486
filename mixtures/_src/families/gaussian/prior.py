"""The Gaussian's conjugate prior: normal–inverse-Wishart on a component's mean and covariance."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from mixtures._src.core import checks
from mixtures._src.core.priors import _dtype_of, _finite_array, _finite_scalar, _positive_scalar
from mixtures._src.families.gaussian import models

__all__ = ["GaussianPrior", "check_gaussian_prior"]

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
        layout = _layout(covariance)
        if layout == "full":
            try:
                np.linalg.cholesky(cov)
                scale = cov * factor
            except np.linalg.LinAlgError:
                scale = np.diag(var) * factor
        elif layout == "diag":
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
      >>> from mixtures._src.families.gaussian.prior import GaussianPrior, check_gaussian_prior
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
    layout = _layout(covariance)
    lower = d - 1 if layout == "full" else 0
    if dof <= lower:
        what = f"D − 1 = {lower}" if lower else "0"
        raise ValueError(f"`prior.dof` must be greater than {what} for covariance={covariance!r}; received {dof}.")
    if layout == "full":
        scale = _finite_array(prior.scale, "prior.scale", (d, d), "(D, D)")
        checks.symmetric_positive_definite(scale, "prior.scale")
    else:
        shape, text = ((d,), "(D,)") if layout == "diag" else ((), "() (a scalar)")
        scale = _finite_array(prior.scale, "prior.scale", shape, text)
        if np.any(scale <= 0):
            raise ValueError(f"`prior.scale` must be positive for covariance={covariance!r}; received {scale}.")
    return GaussianPrior(*(jnp.asarray(v, dtype) for v in (mean, shrinkage, dof, scale)))


def _layout(covariance: str) -> str:
    """The shape of a covariance model's prior scale Ψ: "full" (D, D), "diag" (D,) or "spherical" (a scalar)."""
    return models.layout(models.ALIASES.get(covariance, covariance))
