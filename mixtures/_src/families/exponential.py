"""Exponential components: positive reals, features independent given the component."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from mixtures._src.core import checks
from mixtures._src.core import domain
from mixtures._src.families.expfam import ExponentialFamily
from mixtures._src.core.registry import register_family

__all__ = ["Exponential", "ExponentialParams"]


class ExponentialParams(NamedTuple):
    """Parameters of K exponential components.

    Attributes:
      rates: (K, D) rate λ (inverse mean) of each feature in each component.
    """

    rates: jax.Array


@register_family
@dataclasses.dataclass(frozen=True)
class Exponential(ExponentialFamily):
    """Independent exponential features: p(x | λ) = Πⱼ λⱼ exp(−λⱼ xⱼ), xⱼ > 0.

    Exponential-family form per feature: T(x) = x, η = −λ,
    A(η) = −Σ log(−η), h(x) = 1. The M-step is closed form:
    λ = Nₖ / Σₙ rₙₖ xₙ. It needs no clipping: the data are strictly positive,
    so every weighted mean is positive and every fitted rate finite.

    Example:
      >>> from mixtures import Exponential
      >>> Exponential()
      Exponential()
    """

    def make_params(self, rates) -> ExponentialParams:
        """Parameters from rates, checked on the host.

        Args:
          rates: (K, D) finite positive rates.

        Returns:
          ExponentialParams in the floating dtype of ``rates``.

        Example:
          >>> from mixtures import Exponential
          >>> Exponential().make_params([[1.0, 0.5]]).rates.tolist()
          [[1.0, 0.5]]
        """
        rates = np.asarray(rates)
        if rates.ndim != 2:
            raise ValueError(f"`rates` must have shape (K, D); received shape {rates.shape}.")
        if not np.all(np.isfinite(rates) & (rates > 0)):
            raise ValueError(f"`rates` must be finite and positive; received {rates}.")
        return ExponentialParams(jnp.asarray(rates, checks.float_dtype_for(rates.dtype)))

    def sufficient_stats(self, x):
        """T(x) = x, shape (D,).

        Example:
          >>> import numpy as np
          >>> from mixtures import Exponential
          >>> Exponential().sufficient_stats(np.array([0.5, 2.0])).tolist()
          [0.5, 2.0]
        """
        return jnp.asarray(x)

    def log_base_measure(self, x):
        """log h(x) = 0 for x of shape (D,); a scalar.

        Example:
          >>> import numpy as np
          >>> from mixtures import Exponential
          >>> float(Exponential().log_base_measure(np.array([0.5])))
          0.0
        """
        return jnp.zeros((), jnp.asarray(x).dtype)

    def log_partition(self, natural):
        """A(η) = −Σⱼ log(−ηⱼ) for η = −λ of shape (D,); a scalar (NaN for η ≥ 0).

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Exponential
          >>> round(float(Exponential().log_partition(jnp.array([-0.5, -0.25]))), 6)  # log 2 + log 4
          2.079442
        """
        return -jnp.sum(jnp.log(-natural))

    def log_conjugate_normalizer(self, tau, nu):
        """log Z(τ, ν) = Σⱼ [log Γ(ν + 1) − (ν + 1) log τⱼ]: a gamma(ν + 1, τⱼ) posterior on each rate.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Exponential
          >>> round(float(Exponential().log_conjugate_normalizer(jnp.array([1.0]), jnp.array(1.0))), 6)  # Γ(2) = 1
          0.0
        """
        return jnp.sum(gammaln(nu + 1.0) - (nu + 1.0) * jnp.log(tau))

    def to_natural(self, params):
        """η = −λ, shape (D,), of one component's parameters.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Exponential, ExponentialParams
          >>> Exponential().to_natural(ExponentialParams(jnp.array([2.0]))).tolist()
          [-2.0]
        """
        return -params.rates

    def from_natural(self, natural):
        """One component's parameters from η = −λ (D,).

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Exponential
          >>> Exponential().from_natural(jnp.array([-3.0])).rates.tolist()
          [3.0]
        """
        return ExponentialParams(-natural)

    def initial_natural(self, mean):
        """η = −1 (rate 1), shape (M,) like ``mean``: a Newton start inside A's domain η < 0.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Exponential
          >>> Exponential().initial_natural(jnp.array([0.5, 4.0])).tolist()
          [-1.0, -1.0]
        """
        return -jnp.ones_like(mean)

    def params_from_mean(self, mean, previous):
        """Closed-form M-step: λ = 1 / mean, for the mean E[x] of shape (D,).

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Exponential
          >>> Exponential().params_from_mean(jnp.array([0.5, 4.0]), None).rates.tolist()
          [2.0, 0.25]
        """
        del previous
        return ExponentialParams(1.0 / mean)

    def sample(self, params, key):
        """One draw, shape (D,), in the rates' dtype, from one component.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> from mixtures import Exponential, ExponentialParams
          >>> x = Exponential().sample(ExponentialParams(jnp.array([1.0, 10.0])), jax.random.key(0))
          >>> x.shape, bool(jnp.all(x > 0))
          ((2,), True)
        """
        rates = params.rates
        return jax.random.exponential(key, rates.shape, rates.dtype) / rates

    def n_features(self, params) -> int:
        """Number of features D, from the rates' shape.

        Example:
          >>> import numpy as np
          >>> from mixtures import Exponential
          >>> Exponential().n_features(Exponential().make_params(np.ones((3, 2))))
          2
        """
        return params.rates.shape[-1]

    def n_free_parameters(self, n_components: int, n_features: int) -> int:
        """K·D: one rate per feature and component.

        Example:
          >>> from mixtures import Exponential
          >>> Exponential().n_free_parameters(3, 2)
          6
        """
        return n_components * n_features

    def check_data(self, x) -> None:
        """Raises ``ValueError`` unless every entry of ``x`` (N, D) is finite and strictly positive.

        Example:
          >>> import numpy as np
          >>> from mixtures import Exponential
          >>> Exponential().check_data(np.array([[1.0], [0.0]]))
          Traceback (most recent call last):
          ...
          ValueError: column 0 of `x` must hold strictly positive numbers; row 1 has 0.0.
        """
        x = domain.as_matrix(x)
        domain.require(x, np.isfinite(x) & (x > 0), "strictly positive numbers")

    # -- describing itself to the front ends ------------------------------------------------

    independent_columns = True
    handles_missing = True

    def stat_columns(self, n_features: int) -> np.ndarray:
        """T(x) = x: entry j is column j."""
        return np.arange(n_features)

    def extent(self, params: ExponentialParams) -> tuple[np.ndarray, np.ndarray]:
        """The means 1/λ, which are also the standard deviations."""
        scale = 1.0 / np.asarray(params.rates, np.float64)
        return scale, scale

    def parameter_table(self, params: ExponentialParams, columns) -> list:
        """The means 1/λ of every column: "mean c"."""
        means, _ = self.extent(params)
        return [(f"mean {c}", means[:, j]) for j, c in enumerate(columns)]
