"""Student-t components with independent features: the worked example of a gradient family.

Each component has a location μ (D,) and a positive scale σ (D,), and its
features are independent univariate Student-t variables with the family's
fixed degrees of freedom ν:

    log p(x | μ, σ) = Σ_d [ log Γ((ν+1)/2) − log Γ(ν/2) − ½ log(νπ) − log σ_d
                            − (ν+1)/2 · log(1 + ((x_d − μ_d) / σ_d)² / ν) ].

There is no closed-form M-step, so the family gives only this density and the
map (μ, log σ) ↔ (μ, σ) to unconstrained reals, and inherits the generalised-EM
M-step of :class:`~mixtures.gradient.GradientFamily`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import domain
from mixtures._src.families.gradient import GradientFamily
from mixtures._src.core.registry import register_family

__all__ = ["StudentT", "StudentTParams"]


class StudentTParams(NamedTuple):
    """Parameters of K Student-t components (or of one, without the K axis).

    Attributes:
      locations: (K, D) locations μ (the medians).
      scales: (K, D) positive scales σ.
    """

    locations: jax.Array
    scales: jax.Array


@register_family
@dataclasses.dataclass(frozen=True)
class StudentT(domain.SquaredRealData, GradientFamily):
    """Student-t components with fixed degrees of freedom and independent features.

    Attributes:
      dof: degrees of freedom ν > 0, the same for every component and
        feature (not fitted). Small ν gives heavy tails; ν → ∞ approaches a
        Gaussian with diagonal covariance σ².
      learning_rate: the M-step search's first step (keyword only); see
        :class:`~mixtures.GradientFamily`.
      n_steps: the most trial steps per M-step (keyword only).
      m_step_tol: the search's step tolerance (keyword only; None: √eps).

    Example:
      >>> import jax, numpy as np, mixtures as mx
      >>> from mixtures import StudentT
      >>> rng = np.random.default_rng(0)
      >>> x = np.concatenate([rng.standard_t(4.0, (200, 2)) - 4, rng.standard_t(4.0, (200, 2)) + 4])
      >>> result = mx.fit(x, StudentT(dof=4.0), 2, key=jax.random.key(0), max_iter=30)
      >>> np.sort(result.mixture.params.locations[:, 0]).round(0).tolist()
      [-4.0, 4.0]
    """

    dof: float = 4.0

    def __post_init__(self):
        super().__post_init__()
        dof = self.dof
        if isinstance(dof, bool) or not isinstance(dof, numbers.Real):
            raise TypeError(f"`dof` must be a positive real number; received {dof!r}.")
        if not (math.isfinite(dof) and dof > 0):
            raise ValueError(f"`dof` must be finite and positive; received {dof}.")
        object.__setattr__(self, "dof", float(dof))

    def make_params(self, locations, scales) -> StudentTParams:
        """Checked parameters from host arrays.

        Args:
          locations: (K, D) finite locations.
          scales: (K, D) finite positive scales.

        Returns:
          :class:`StudentTParams` of JAX arrays in the default float dtype.

        Raises:
          ValueError: on a shape mismatch, non-finite values or a scale ≤ 0.

        Example:
          >>> import numpy as np
          >>> from mixtures import StudentT
          >>> StudentT().make_params(np.zeros((2, 3)), np.ones((2, 3))).scales.shape
          (2, 3)
        """
        loc = np.asarray(locations, dtype=np.float64)
        scale = np.asarray(scales, dtype=np.float64)
        if loc.ndim != 2:
            raise ValueError(f"`locations` must have shape (K, D); received shape {loc.shape}.")
        if scale.shape != loc.shape:
            raise ValueError(
                f"`scales` must have the shape of `locations`, {loc.shape}; received {scale.shape}."
            )
        if not np.all(np.isfinite(loc)):
            raise ValueError("`locations` must be finite.")
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise ValueError(f"`scales` must be finite and positive; received minimum {scale.min()}.")
        return StudentTParams(jnp.asarray(loc), jnp.asarray(scale))

    def log_prob(self, params: StudentTParams, x: jax.Array) -> jax.Array:
        """Log-density of one observation x (D,) under one component; a scalar.

        Example:
          >>> import numpy as np
          >>> from mixtures import StudentT, StudentTParams
          >>> one = StudentTParams(np.zeros(1), np.ones(1))
          >>> round(float(StudentT(dof=1.0).log_prob(one, np.zeros(1))), 6)  # Cauchy: -log π
          -1.14473
        """
        nu = self.dof
        const = math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu * math.pi)
        z = (x - params.locations) / params.scales
        return jnp.sum(const - jnp.log(params.scales) - 0.5 * (nu + 1.0) * jnp.log1p(z * z / nu))

    def to_unconstrained(self, params: StudentTParams) -> tuple[jax.Array, jax.Array]:
        """(μ, log σ) of one component, each (D,).

        Example:
          >>> import numpy as np
          >>> from mixtures import StudentT, StudentTParams
          >>> u = StudentT().to_unconstrained(StudentTParams(np.array([2.0]), np.array([np.e])))
          >>> [a.tolist() for a in u]
          [[2.0], [1.0]]
        """
        return params.locations, jnp.log(params.scales)

    def from_unconstrained(self, u: tuple[jax.Array, jax.Array]) -> StudentTParams:
        """One component's parameters from (μ, log σ), each (D,).

        Example:
          >>> import numpy as np
          >>> from mixtures import StudentT
          >>> p = StudentT().from_unconstrained((np.array([2.0]), np.array([0.0])))
          >>> p.locations.tolist(), p.scales.tolist()
          ([2.0], [1.0])
        """
        locations, log_scales = u
        return StudentTParams(locations, jnp.exp(log_scales))

    def sample(self, params: StudentTParams, key: jax.Array) -> jax.Array:
        """One draw (D,), μ + σ·t with t a standard Student-t(ν) vector, in the parameters' dtype.

        Example:
          >>> import jax, numpy as np
          >>> from mixtures import StudentT, StudentTParams
          >>> StudentT().sample(StudentTParams(np.zeros(3), np.ones(3)), jax.random.key(0)).shape
          (3,)
        """
        loc = params.locations
        t = jax.random.t(key, self.dof, loc.shape, loc.dtype)
        return loc + params.scales * t

    def init_params(self, points: jax.Array, x: jax.Array) -> StudentTParams:
        """Locations at the points (K, D); every scale the data's per-feature standard deviation.

        A feature with zero spread gets scale 1.

        Example:
          >>> import numpy as np
          >>> from mixtures import StudentT
          >>> x = np.array([[0.0, 1.0], [2.0, 1.0]])
          >>> p = StudentT().init_params(x[:1], x)
          >>> p.locations.tolist(), p.scales.tolist()
          ([[0.0, 1.0]], [[1.0, 1.0]])
        """
        points = jnp.asarray(points)
        std = jnp.std(jnp.asarray(x), axis=0)
        std = jnp.where(std > 0, std, 1.0)
        return StudentTParams(points, jnp.broadcast_to(std[None, :], points.shape).astype(points.dtype))

    def n_features(self, params: StudentTParams) -> int:
        """Number of features D.

        Example:
          >>> import numpy as np
          >>> from mixtures import StudentT
          >>> StudentT().n_features(StudentT().make_params(np.zeros((2, 3)), np.ones((2, 3))))
          3
        """
        return params.locations.shape[-1]

    def n_free_parameters(self, n_components: int, n_features: int) -> int:
        """2·K·D: a location and a scale per component and feature (ν is fixed).

        Example:
          >>> from mixtures import StudentT
          >>> StudentT().n_free_parameters(3, 2)
          12
        """
        return 2 * n_components * n_features

    # -- describing itself to the front ends ------------------------------------------------

    independent_columns = True

    def extent(self, params: StudentTParams) -> tuple[np.ndarray, np.ndarray]:
        """The locations and the scales."""
        return np.asarray(params.locations, np.float64), np.asarray(params.scales, np.float64)
