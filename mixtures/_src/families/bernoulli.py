"""Bernoulli components: binary vectors, features independent given the component."""

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

__all__ = ["Bernoulli", "BernoulliParams"]


class BernoulliParams(NamedTuple):
    """Parameters of K Bernoulli components.

    Attributes:
      probs: (K, D) probability that each feature is 1 in each component.
    """

    probs: jax.Array


@register_family
@dataclasses.dataclass(frozen=True)
class Bernoulli(ExponentialFamily):
    """Independent binary features: p(x | p) = Πⱼ pⱼ^xⱼ (1 − pⱼ)^(1 − xⱼ), xⱼ ∈ {0, 1}.

    Exponential-family form per feature: T(x) = x, η = logit p,
    A(η) = Σ log(1 + exp η), h(x) = 1. The M-step is closed form:
    p = Σₙ rₙₖ xₙ / Nₖ.

    Args:
      min_prob: margin in (0, 0.5) keeping fitted probabilities in
        [min_prob, 1 − min_prob]. A component whose data are all 0 (or all 1)
        in a feature has maximum-likelihood probability 0 (or 1), η = ∓∞;
        the clip keeps η and the fit finite. The default suits float32 too.

    Example:
      >>> from mixtures import Bernoulli
      >>> Bernoulli()
      Bernoulli(min_prob=1e-06)
    """

    min_prob: float = 1e-6

    def __post_init__(self):
        object.__setattr__(self, "min_prob", domain.positive_number(self.min_prob, "min_prob", upper=0.5))

    def make_params(self, probs) -> BernoulliParams:
        """Parameters from probabilities, checked on the host.

        Args:
          probs: (K, D) probabilities strictly between 0 and 1.

        Returns:
          BernoulliParams in the floating dtype of ``probs``.

        Example:
          >>> from mixtures import Bernoulli
          >>> Bernoulli().make_params([[0.2, 0.9], [0.5, 0.5]]).probs.shape
          (2, 2)
        """
        probs = np.asarray(probs)
        if probs.ndim != 2:
            raise ValueError(f"`probs` must have shape (K, D); received shape {probs.shape}.")
        if not np.all((probs > 0) & (probs < 1)):
            raise ValueError(f"`probs` must lie strictly between 0 and 1; received {probs}.")
        return BernoulliParams(jnp.asarray(probs, checks.float_dtype_for(probs.dtype)))

    def sufficient_stats(self, x):
        """T(x) = x, shape (D,).

        Example:
          >>> import numpy as np
          >>> from mixtures import Bernoulli
          >>> Bernoulli().sufficient_stats(np.array([1.0, 0.0])).tolist()
          [1.0, 0.0]
        """
        return jnp.asarray(x)

    def log_base_measure(self, x):
        """log h(x) = 0 for x of shape (D,); a scalar.

        Example:
          >>> import numpy as np
          >>> from mixtures import Bernoulli
          >>> float(Bernoulli().log_base_measure(np.array([1.0, 0.0])))
          0.0
        """
        return jnp.zeros((), jnp.asarray(x).dtype)

    def log_partition(self, natural):
        """A(η) = Σⱼ log(1 + exp ηⱼ) for η = logit p of shape (D,); a scalar.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Bernoulli
          >>> round(float(Bernoulli().log_partition(jnp.zeros(2))), 6)  # 2 log 2
          1.386294
        """
        return jnp.sum(jax.nn.softplus(natural))

    def log_conjugate_normalizer(self, tau, nu):
        """log Z(τ, ν) = Σⱼ log B(τⱼ, ν − τⱼ): a beta(τⱼ, ν − τⱼ) posterior on each probability.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Bernoulli
          >>> round(float(Bernoulli().log_conjugate_normalizer(jnp.array([1.0]), jnp.array(2.0))), 6)  # B(1, 1) = 1
          0.0
        """
        return jnp.sum(gammaln(tau) + gammaln(nu - tau) - gammaln(nu))

    def to_natural(self, params):
        """η = log p − log(1 − p), shape (D,), of one component's parameters.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Bernoulli, BernoulliParams
          >>> Bernoulli().to_natural(BernoulliParams(jnp.array([0.5]))).tolist()
          [0.0]
        """
        return jnp.log(params.probs) - jnp.log1p(-params.probs)

    def from_natural(self, natural):
        """One component's parameters from η = logit p (D,).

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Bernoulli
          >>> Bernoulli().from_natural(jnp.zeros(2)).probs.tolist()
          [0.5, 0.5]
        """
        # A probability that underflows is kept at the dtype's smallest normal number, so that log p
        # stays finite (variational Bayes can ask for η far beyond ±700).
        tiny = jnp.finfo(natural.dtype).tiny
        return BernoulliParams(jnp.clip(jax.nn.sigmoid(natural), tiny, 1.0 - jnp.finfo(natural.dtype).epsneg))

    def params_from_mean(self, mean, previous):
        """Closed-form M-step: p = mean clipped to [``min_prob``, 1 − ``min_prob``], mean (D,).

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Bernoulli
          >>> Bernoulli(min_prob=0.01).params_from_mean(jnp.array([0.25, 0.0, 1.0]), None).probs.tolist()
          [0.25, 0.01, 0.99]
        """
        del previous
        margin = max(self.min_prob, float(jnp.finfo(mean.dtype).eps))  # 1 − margin must be < 1 in this dtype
        return BernoulliParams(jnp.clip(mean, margin, 1.0 - margin))

    def sample(self, params, key):
        """One draw of zeros and ones, shape (D,), in the probabilities' dtype.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> from mixtures import Bernoulli, BernoulliParams
          >>> Bernoulli().sample(BernoulliParams(jnp.array([0.0, 1.0])), jax.random.key(0)).tolist()
          [0.0, 1.0]
        """
        probs = params.probs
        return jax.random.bernoulli(key, probs, probs.shape).astype(probs.dtype)

    def n_features(self, params) -> int:
        """Number of features D, from the probabilities' shape.

        Example:
          >>> import numpy as np
          >>> from mixtures import Bernoulli
          >>> Bernoulli().n_features(Bernoulli().make_params(np.full((2, 5), 0.5)))
          5
        """
        return params.probs.shape[-1]

    def n_free_parameters(self, n_components: int, n_features: int) -> int:
        """K·D: one probability per feature and component.

        Example:
          >>> from mixtures import Bernoulli
          >>> Bernoulli().n_free_parameters(2, 5)
          10
        """
        return n_components * n_features

    def check_data(self, x) -> None:
        """Raises ``ValueError`` unless every entry of ``x`` (N, D) is 0 or 1.

        Example:
          >>> import numpy as np
          >>> from mixtures import Bernoulli
          >>> Bernoulli().check_data(np.array([[0.0, 1.0], [1.0, 2.0]]))
          Traceback (most recent call last):
          ...
          ValueError: column 1 of `x` must hold binary values (0 or 1); row 1 has 2.0.
        """
        x = domain.as_matrix(x)
        domain.require(x, (x == 0) | (x == 1), "binary values (0 or 1)")

    # -- describing itself to the front ends ------------------------------------------------

    support = "integer"
    density_on_the_plane = False
    independent_columns = True
    handles_missing = True

    def stat_columns(self, n_features: int) -> np.ndarray:
        """T(x) = x: entry j is column j."""
        return np.arange(n_features)

    def parameter_table(self, params: BernoulliParams, columns) -> list:
        """p(x = 1) of every column: "p(c=1)"."""
        probs = np.asarray(params.probs, np.float64)
        return [(f"p({c}=1)", probs[:, j]) for j, c in enumerate(columns)]
