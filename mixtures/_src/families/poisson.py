"""Poisson components: count data, features independent given the component."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from mixtures._src.core import checks
from mixtures._src.core import domain
from mixtures._src.families import deviance
from mixtures._src.families.expfam import ExponentialFamily
from mixtures._src.core.registry import register_family

__all__ = ["Poisson", "PoissonParams"]


class PoissonParams(NamedTuple):
    """Parameters of K Poisson components.

    Attributes:
      rates: (K, D) rate (mean) λ of each feature in each component.
    """

    rates: jax.Array


@register_family
@dataclasses.dataclass(frozen=True)
class Poisson(ExponentialFamily):
    """Independent Poisson features: p(x | λ) = Πⱼ λⱼ^xⱼ e^(−λⱼ) / xⱼ!.

    Exponential-family form per feature: T(x) = x, η = log λ, A(η) = Σ exp(η),
    log h(x) = −Σ log xⱼ!. The M-step is closed form: λ = Σₙ rₙₖ xₙ / Nₖ.
    The log-density is evaluated in Loader's saddle-point form for counts
    x ≥ 1, −bd0(x, λ) − ½ log(2πx) − (Stirling's error at x), which has no
    cancellation between terms of size x log x: float32 stays accurate to a
    few units of its resolution up to λ = 10⁸ (see ``docs/numerics.md``).

    Args:
      min_rate: positive floor on every fitted rate. A component whose data
        are all 0 in a feature has maximum-likelihood rate 0 (η = −∞); the
        M-step returns ``min_rate`` instead, so log λ and the fit stay finite.

    Example:
      >>> from mixtures import Poisson
      >>> Poisson()
      Poisson(min_rate=1e-06)
    """

    min_rate: float = 1e-6

    def __post_init__(self):
        object.__setattr__(self, "min_rate", domain.positive_number(self.min_rate, "min_rate"))

    def make_params(self, rates) -> PoissonParams:
        """Parameters from rates, checked on the host.

        Args:
          rates: (K, D) finite positive rates.

        Returns:
          PoissonParams in the floating dtype of ``rates``.

        Example:
          >>> from mixtures import Poisson
          >>> Poisson().make_params([[1.0, 4.0]]).rates.shape
          (1, 2)
        """
        rates = np.asarray(rates)
        if rates.ndim != 2:
            raise ValueError(f"`rates` must have shape (K, D); received shape {rates.shape}.")
        if not np.all(np.isfinite(rates) & (rates > 0)):
            raise ValueError(f"`rates` must be finite and positive; received {rates}.")
        return PoissonParams(jnp.asarray(rates, checks.float_dtype_for(rates.dtype)))

    def sufficient_stats(self, x):
        """T(x) = x, shape (D,).

        Example:
          >>> import numpy as np
          >>> from mixtures import Poisson
          >>> Poisson().sufficient_stats(np.array([0.0, 3.0])).tolist()
          [0.0, 3.0]
        """
        return jnp.asarray(x)

    def log_prob(self, params, x):
        """log p(x | λ) of one observation x (D,) under one component; a scalar.

        Example:
          >>> import numpy as np
          >>> from mixtures import Poisson, PoissonParams
          >>> one = PoissonParams(np.array([1e7], np.float32))
          >>> round(float(Poisson().log_prob(one, np.array([1e7], np.float32))), 3)  # −½ log(2π · 10⁷), in float32
          -8.978
        """
        return jnp.sum(log_pmf(jnp.asarray(x), params.rates))

    def log_prob_components(self, params, x):
        """(B, K) log-densities of the rows x (B, D) under every component."""
        return jnp.sum(log_pmf(x[:, None, :], params.rates[None, :, :]), axis=-1)

    def log_base_measure(self, x):
        """log h(x) = −Σⱼ log xⱼ! for x of shape (D,); a scalar.

        Example:
          >>> import numpy as np
          >>> from mixtures import Poisson
          >>> round(float(Poisson().log_base_measure(np.array([3.0, 1.0]))), 6)  # −log 6
          -1.791759
        """
        return -jnp.sum(gammaln(x + 1.0))

    def log_partition(self, natural):
        """A(η) = Σⱼ exp(ηⱼ) for η = log λ of shape (D,); a scalar.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Poisson
          >>> round(float(Poisson().log_partition(jnp.log(jnp.array([2.0, 3.0])))), 6)
          5.0
        """
        return jnp.sum(jnp.exp(natural))

    def log_conjugate_normalizer(self, tau, nu):
        """log Z(τ, ν) = Σⱼ [log Γ(τⱼ) − τⱼ log ν]: a gamma(τⱼ, ν) posterior on each rate.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Poisson
          >>> round(float(Poisson().log_conjugate_normalizer(jnp.array([3.0]), jnp.array(2.0))), 6)  # log 2 − 3 log 2
          -1.386294
        """
        return jnp.sum(gammaln(tau) - tau * jnp.log(nu))

    def to_natural(self, params):
        """η = log λ, shape (D,), of one component's parameters.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Poisson, PoissonParams
          >>> Poisson().to_natural(PoissonParams(jnp.array([1.0]))).tolist()
          [0.0]
        """
        return jnp.log(params.rates)

    def from_natural(self, natural):
        """One component's parameters from η = log λ (D,).

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Poisson
          >>> Poisson().from_natural(jnp.zeros(2)).rates.tolist()
          [1.0, 1.0]
        """
        # A rate that underflows is kept at the dtype's smallest normal number (log λ stays finite).
        return PoissonParams(jnp.maximum(jnp.exp(natural), jnp.finfo(natural.dtype).tiny))

    def params_from_mean(self, mean, previous):
        """Closed-form M-step: λ = max(mean, ``min_rate``), for mean (D,).

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Poisson
          >>> Poisson().params_from_mean(jnp.array([2.5, 0.0]), None).rates.tolist()
          [2.5, 1e-06]
        """
        del previous
        floor = max(self.min_rate, float(jnp.finfo(mean.dtype).tiny))  # a positive rate in this dtype
        return PoissonParams(jnp.maximum(mean, floor))

    def sample(self, params, key):
        """One draw, shape (D,), in the rates' dtype, from one component.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> from mixtures import Poisson, PoissonParams
          >>> Poisson().sample(PoissonParams(jnp.array([3.0, 0.5])), jax.random.key(0)).shape
          (2,)
        """
        rates = params.rates
        return jax.random.poisson(key, rates, rates.shape).astype(rates.dtype)

    def n_features(self, params) -> int:
        """Number of features D, from the rates' shape.

        Example:
          >>> import numpy as np
          >>> from mixtures import Poisson
          >>> Poisson().n_features(Poisson().make_params(np.ones((2, 3))))
          3
        """
        return params.rates.shape[-1]

    def n_free_parameters(self, n_components: int, n_features: int) -> int:
        """K·D: one rate per feature and component.

        Example:
          >>> from mixtures import Poisson
          >>> Poisson().n_free_parameters(3, 4)
          12
        """
        return n_components * n_features

    def check_data(self, x) -> None:
        """Raises ``ValueError`` unless every entry of ``x`` (N, D) is a non-negative whole number.

        Example:
          >>> import numpy as np
          >>> from mixtures import Poisson
          >>> Poisson().check_data(np.array([[0.0, 2.0], [-1.0, 1.0]]))
          Traceback (most recent call last):
          ...
          ValueError: column 0 of `x` must hold non-negative integer counts; row 1 has -1.0.
        """
        x = domain.as_matrix(x)
        domain.require(x, domain.is_integer(x) & (x >= 0), "non-negative integer counts")

    # -- describing itself to the front ends ------------------------------------------------

    support = "integer"
    density_on_the_plane = False
    independent_columns = True
    handles_missing = True

    def stat_columns(self, n_features: int) -> np.ndarray:
        """T(x) = x: entry j is column j."""
        return np.arange(n_features)


def log_pmf(x, rates):
    """Elementwise log P(x | λ), in Loader's saddle-point form for x ≥ 1.

    x ≥ 1 gives −bd0(x, λ) − ½ log(2πx) − Stirling's error at x (see
    :mod:`mixtures._src.families.deviance`), whose terms are no larger than
    the result; below 1 (x = 0 gives −λ exactly) the textbook
    x log λ − λ − log Γ(x + 1), whose terms are small.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.families.poisson import log_pmf
      >>> log_pmf(np.array([0.0, 2.0, 40.0]), np.array([3.0, 3.0, 40.0])).round(6).tolist()
      [-3.0, -1.495923, -2.765462]
    """
    large = x >= 1
    big = jnp.where(large, x, 1.0)
    saddle = -deviance.bd0(big, rates) - 0.5 * jnp.log(2 * np.pi * big) - deviance.stirling_error(big)
    direct = x * jnp.log(rates) - rates - deviance.log_gamma_plus_one(x)
    return jnp.where(large, saddle, direct)
