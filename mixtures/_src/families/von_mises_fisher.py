"""Von Mises–Fisher components: directional data on the unit sphere S^(D−1), D ≥ 2."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mixtures._src.core import checks
from mixtures._src.families.bessel import bessel_ratio, log_ive
from mixtures._src.families.expfam import ExponentialFamily
from mixtures._src.core.registry import register_family

__all__ = ["VonMisesFisher", "VonMisesFisherParams"]

NORM_TOLERANCE = 1e-6
"""Relative tolerance on the norm of a data row (``check_data``) or mean direction."""

NEWTON_STEPS = 6
"""Newton steps refining Banerjee et al.'s concentration in the M-step."""


class VonMisesFisherParams(NamedTuple):
    """Parameters of K von Mises–Fisher components.

    Attributes:
      mean_directions: (K, D) unit vectors μₖ.
      concentrations: (K,) non-negative concentrations κₖ.
    """

    mean_directions: jax.Array
    concentrations: jax.Array


@register_family
@dataclasses.dataclass(frozen=True)
class VonMisesFisher(ExponentialFamily):
    """Von Mises–Fisher components on the unit sphere: p(x | μ, κ) = C_D(κ) exp(κ μᵀx).

    Exponential-family form: T(x) = x, η = κμ, log h(x) = 0 and
    A(η) = −log C_D(‖η‖), with log C_D(κ) = ν log κ − (D/2) log 2π − log I_ν(κ)
    and ν = D/2 − 1 (:mod:`mixtures._bessel` evaluates log I_ν). The density
    is with respect to the surface measure of S^(D−1); κ = 0 is the uniform
    distribution.

    **M-step.** With r̄ = ‖Σₙ rₙ xₙ‖ / Σₙ rₙ, the mean direction is
    Σₙ rₙ xₙ normalised and the concentration solves A_D(κ) = r̄, where
    A_D(κ) = I_{D/2}(κ) / I_{D/2−1}(κ). Banerjee et al. (2005)'s approximation
    κ ≈ r̄(D − r̄²)/(1 − r̄²) is only the starting point: :data:`NEWTON_STEPS`
    Newton steps on A_D(κ) = r̄, with A_D'(κ) = 1 − A_D² − (D − 1)A_D/κ, make
    the M-step the exact maximiser (to rounding). r̄ is clipped below 1 and κ
    to ``max_concentration``, so a component on a single point (r̄ = 1) gets
    κ = ``max_concentration`` instead of an infinite one.

    **Sampling** is Wood (1994)'s rejection algorithm for the component
    w = μᵀx, then a uniform direction orthogonal to μ, placed by a Householder
    reflection that takes the first axis to μ.

    Args:
      max_concentration: positive upper bound on fitted concentrations
        (default 1e5: an angular spread of about 1/√κ ≈ 0.2°). At κ the
        log-density loses about κ·ε of absolute accuracy to rounding in μᵀx
        (ε the dtype's machine epsilon), so keep it well below 1/ε.

    Example:
      >>> from mixtures import VonMisesFisher
      >>> VonMisesFisher()
      VonMisesFisher(max_concentration=100000.0)
    """

    max_concentration: float = 1e5

    def __post_init__(self):
        value = self.max_concentration
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"`max_concentration` must be a positive real number; received {value!r}.")
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"`max_concentration` must be finite and positive; received {value}.")
        object.__setattr__(self, "max_concentration", value)

    # -- parameters ---------------------------------------------------------

    def make_params(self, mean_directions, concentrations) -> VonMisesFisherParams:
        """Parameters from unit mean directions and concentrations, checked on the host.

        Args:
          mean_directions: (K, D) unit vectors (norm 1 within 1e-6 relative), D ≥ 2.
          concentrations: (K,) finite non-negative concentrations.

        Returns:
          VonMisesFisherParams in the floating dtype of ``mean_directions``.

        Example:
          >>> from mixtures import VonMisesFisher
          >>> p = VonMisesFisher().make_params([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], [10.0, 2.0])
          >>> p.mean_directions.shape, p.concentrations.tolist()
          ((2, 3), [10.0, 2.0])
        """
        directions = np.asarray(mean_directions)
        if directions.ndim != 2 or directions.shape[1] < 2:
            raise ValueError(
                f"`mean_directions` must have shape (K, D) with D ≥ 2; received shape {directions.shape}."
            )
        _check_unit_rows(directions, "mean_directions", "mean directions")
        kappa = np.asarray(concentrations, dtype=np.float64)
        if kappa.shape != directions.shape[:1]:
            raise ValueError(
                f"`concentrations` must have shape ({directions.shape[0]},), one per mean direction; "
                f"received shape {kappa.shape}."
            )
        if not np.all(np.isfinite(kappa) & (kappa >= 0)):
            raise ValueError(f"`concentrations` must be finite and non-negative; received {kappa}.")
        dtype = checks.float_dtype_for(directions.dtype)
        return VonMisesFisherParams(jnp.asarray(directions, dtype), jnp.asarray(kappa, dtype))

    def n_features(self, params: VonMisesFisherParams) -> int:
        """Number of coordinates D of the sphere's ambient space.

        Example:
          >>> from mixtures import VonMisesFisher
          >>> f = VonMisesFisher()
          >>> f.n_features(f.make_params([[0.0, 1.0, 0.0]], [1.0]))
          3
        """
        return params.mean_directions.shape[-1]

    def n_free_parameters(self, n_components: int, n_features: int) -> int:
        """K·D: D − 1 for each mean direction (a point on S^(D−1)) and one concentration.

        Example:
          >>> from mixtures import VonMisesFisher
          >>> VonMisesFisher().n_free_parameters(3, 3)
          9
        """
        return n_components * n_features

    def init_params(self, points, x) -> VonMisesFisherParams:
        """Mean directions at the (normalised) points, every concentration D.

        Equal concentrations make the engine's first hard assignment the
        nearest mean direction (largest μₖᵀx); the M-step then fits each κ.

        Args:
          points: (K, D) rows of the data.
          x: (N, D) all data (only its dtype is used).

        Returns:
          VonMisesFisherParams with leading axis K.

        Example:
          >>> import numpy as np
          >>> from mixtures import VonMisesFisher
          >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
          >>> p = VonMisesFisher().init_params(x[:2], x)
          >>> p.mean_directions.tolist(), p.concentrations.tolist()
          ([[1.0, 0.0], [0.0, 1.0]], [2.0, 2.0])
        """
        k, d = points.shape
        directions = points / jnp.linalg.norm(points, axis=1, keepdims=True)
        return VonMisesFisherParams(directions.astype(x.dtype), jnp.full((k,), float(d), x.dtype))

    def check_data(self, x) -> None:
        """Raises ``ValueError`` unless ``x`` (N, D) has D ≥ 2 and unit rows (norm 1 within 1e-6).

        Example:
          >>> import numpy as np
          >>> from mixtures import VonMisesFisher
          >>> VonMisesFisher().check_data(np.array([[0.6, 0.8], [0.0, 0.0]]))
          Traceback (most recent call last):
          ...
          ValueError: row 1 of `x` has norm 0.0; von Mises–Fisher data must be unit vectors
          (norm 1 within a relative 1e-06). Normalise the rows: x / np.linalg.norm(x, axis=1, keepdims=True).
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] < 2:
            raise ValueError(
                "von Mises–Fisher data must have shape (N, D) with D ≥ 2 coordinates per row "
                f"(points on the sphere in D dimensions); received shape {x.shape}."
            )
        _check_unit_rows(x, "x", "data")

    # -- exponential-family form --------------------------------------------

    def sufficient_stats(self, x):
        """T(x) = x, shape (D,).

        Example:
          >>> import numpy as np
          >>> from mixtures import VonMisesFisher
          >>> VonMisesFisher().sufficient_stats(np.array([0.6, 0.8])).tolist()
          [0.6, 0.8]
        """
        return jnp.asarray(x)

    def log_base_measure(self, x):
        """log h(x) = 0 (the density is relative to the sphere's surface measure).

        Example:
          >>> import numpy as np
          >>> from mixtures import VonMisesFisher
          >>> float(VonMisesFisher().log_base_measure(np.array([0.6, 0.8])))
          0.0
        """
        return jnp.zeros((), jnp.asarray(x).dtype)

    def log_partition(self, natural):
        """A(η) = −log C_D(‖η‖) for η = κμ of shape (D,); a scalar.

        At η = 0 this is the log surface area of S^(D−1).

        Example:
          >>> import math, jax, jax.numpy as jnp
          >>> from mixtures import VonMisesFisher
          >>> a = jax.jit(VonMisesFisher().log_partition)(jnp.zeros(3))
          >>> round(float(a), 10) == round(math.log(4 * math.pi), 10)  # area of S²
          True
        """
        return _log_partition(natural)

    def to_natural(self, params: VonMisesFisherParams):
        """η = κμ, shape (D,), of one component's parameters.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import VonMisesFisher, VonMisesFisherParams
          >>> VonMisesFisher().to_natural(VonMisesFisherParams(jnp.array([0.0, 1.0]), jnp.array(3.0))).tolist()
          [0.0, 3.0]
        """
        return params.concentrations[..., None] * params.mean_directions

    def from_natural(self, natural) -> VonMisesFisherParams:
        """One component's parameters from η (D,): κ = ‖η‖, μ = η/κ (the first axis when η = 0).

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import VonMisesFisher
          >>> p = VonMisesFisher().from_natural(jnp.array([0.0, -2.0]))
          >>> p.mean_directions.tolist(), float(p.concentrations)
          ([0.0, -1.0], 2.0)
        """
        kappa = jnp.linalg.norm(natural)
        first_axis = jnp.zeros_like(natural).at[0].set(1.0)
        direction = jnp.where(kappa > 0, natural / jnp.where(kappa > 0, kappa, 1.0), first_axis)
        return VonMisesFisherParams(direction, kappa)

    def params_from_mean(self, mean, previous) -> VonMisesFisherParams:
        """Closed-form direction and Newton-refined concentration from the mean Σ rₙxₙ / Σ rₙ (D,).

        Direction: mean / ‖mean‖ (NaN for a zero mean; the engine then keeps
        the previous component). Concentration: the root of A_D(κ) = r̄ = ‖mean‖,
        started at Banerjee et al.'s r̄(D − r̄²)/(1 − r̄²) and refined by
        :data:`NEWTON_STEPS` safeguarded Newton steps; r̄ is clipped below 1 and
        κ to [0, ``max_concentration``].

        Example:
          >>> import jax, jax.numpy as jnp
          >>> from mixtures import VonMisesFisher
          >>> p = jax.jit(VonMisesFisher().params_from_mean)(jnp.array([0.0, 0.0, 0.9]), None)
          >>> p.mean_directions.tolist(), round(float(p.concentrations), 7)  # coth κ − 1/κ = 0.9
          ([0.0, 0.0, 1.0], 9.9999996)
        """
        del previous
        d = mean.shape[-1]
        nu = 0.5 * d - 1.0
        length = jnp.linalg.norm(mean)
        direction = mean / length
        eps = jnp.finfo(mean.dtype).eps
        rbar = jnp.clip(length, 0.0, 1.0 - 4.0 * eps)
        kappa_max = jnp.asarray(self.max_concentration, mean.dtype)
        start = jnp.minimum(rbar * (d - rbar * rbar) / (1.0 - rbar * rbar), kappa_max)

        def newton(_, kappa):
            a = bessel_ratio(nu, kappa)
            small = kappa < 1e-8
            a_over_kappa = jnp.where(small, 1.0 / d, a / jnp.where(small, 1.0, kappa))  # A_D(κ)/κ → 1/D
            slope = 1.0 - a * a - (d - 1.0) * a_over_kappa
            step = jnp.where(slope > 0, (a - rbar) / jnp.where(slope > 0, slope, 1.0), 0.0)
            # Never more than halve κ in one step: A_D is concave, so a Newton step from
            # above the root can land far below it; from below, Newton rises monotonically.
            return jnp.clip(kappa - step, 0.5 * kappa, kappa_max)

        kappa = lax.fori_loop(0, NEWTON_STEPS, newton, start)
        return VonMisesFisherParams(direction, kappa)

    # -- sampling -----------------------------------------------------------

    def sample(self, params: VonMisesFisherParams, key) -> jax.Array:
        """One draw, shape (D,), from one component (Wood, 1994), in the parameters' dtype.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> from mixtures import VonMisesFisher, VonMisesFisherParams
          >>> one = VonMisesFisherParams(jnp.array([0.0, 0.0, 1.0]), jnp.array(50.0))
          >>> x = jax.jit(VonMisesFisher().sample)(one, jax.random.key(0))
          >>> x.shape, round(float(jnp.linalg.norm(x)), 12)
          ((3,), 1.0)
        """
        mu = params.mean_directions
        kappa = params.concentrations
        dtype = mu.dtype
        d = mu.shape[-1]
        key_w, key_v = jax.random.split(key)
        w, one_minus_w = _wood_component(kappa, d, key_w, dtype)
        v = jax.random.normal(key_v, (d - 1,), dtype)
        norm_v = jnp.linalg.norm(v)
        v = jnp.where(norm_v > 0, v / jnp.where(norm_v > 0, norm_v, 1.0), jnp.zeros_like(v).at[0].set(1.0))
        radius = jnp.sqrt(one_minus_w * (1.0 + w))  # √(1 − w²) without cancellation
        y = jnp.concatenate([w[None], radius * v])  # the draw for μ = first axis
        # Householder: u = μ + s e₁ (s = ±1, no cancellation) reflects e₁ to −sμ.
        sign = jnp.where(mu[0] >= 0, 1.0, -1.0).astype(dtype)
        u = mu.at[0].add(sign)
        hi = lax.Precision.HIGHEST
        reflected = y - 2.0 * u * (jnp.dot(u, y, precision=hi) / jnp.dot(u, u, precision=hi))
        return -sign * reflected

    # -- describing itself to the front ends ------------------------------------------------

    support = "sphere"
    density_on_the_plane = False

    def params_layout(self, n_components: int, n_features: int):
        """As :meth:`Family.params_layout`; ``ValueError`` for D < 2 (the sphere S^(D−1) needs D ≥ 2)."""
        if n_features < 2:
            raise ValueError(f"VonMisesFisher needs parameters of shape (K, D) with D ≥ 2; received D = {n_features}.")
        return super().params_layout(n_components, n_features)


def _wood_component(kappa, d, key, dtype):
    """w = μᵀx by Wood's rejection sampler, with 1 − w computed without cancellation."""
    m1 = d - 1.0
    b = m1 / (2.0 * kappa + jnp.sqrt(4.0 * kappa * kappa + m1 * m1))
    x0 = (1.0 - b) / (1.0 + b)
    one_minus_x0 = 2.0 * b / (1.0 + b)
    log_c = jnp.log(one_minus_x0 * (1.0 + x0))  # log(1 − x0²)

    def body(state):
        key, _, _, _ = state
        key, sub = jax.random.split(key)
        # One normal draw per proposal: z ~ Beta((D−1)/2, (D−1)/2) as χ²_{D−1} / (χ²_{D−1} + χ²_{D−1})
        # from 2(D − 1) normals, and u = exp(−χ²₂/2) ~ Uniform(0, 1) from two more. Exact, and
        # much cheaper to compile than jax.random.beta's gamma sampler.
        g = jax.random.normal(sub, (2 * d,), dtype)
        squares = g * g
        first = jnp.sum(squares[: d - 1])
        z = first / (first + jnp.sum(squares[d - 1 : 2 * d - 2]))
        log_u = -0.5 * (squares[2 * d - 2] + squares[2 * d - 1])
        denom = 1.0 - (1.0 - b) * z
        w = (1.0 - (1.0 + b) * z) / denom
        one_minus_w = 2.0 * b * z / denom
        log_ratio = kappa * (one_minus_x0 - one_minus_w) + m1 * (jnp.log(one_minus_x0 + x0 * one_minus_w) - log_c)
        return key, w, one_minus_w, log_ratio >= log_u

    start = (key, jnp.zeros((), dtype), jnp.ones((), dtype), jnp.asarray(False))
    _, w, one_minus_w, _ = lax.while_loop(lambda state: ~state[3], body, start)
    return w, one_minus_w


def _kappa(natural):
    squared = jnp.sum(natural * natural)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


@jax.custom_jvp
def _log_partition(natural):
    """A(η) = −log C_D(‖η‖)."""
    return -_log_normaliser(_kappa(natural), natural.shape[-1])


@_log_partition.defjvp
def _log_partition_jvp(primals, tangents):
    # ∇A(η) = A_D(κ) η / κ with A_D = I_{D/2} / I_{D/2−1}. Written as g(κ) η, with
    # g = A_D(κ) / κ → 1/D as κ → 0, it keeps full precision at small κ, where
    # differentiating the log-normaliser loses it to cancellation.
    (natural,), (tangent,) = primals, tangents
    d = natural.shape[-1]
    kappa = _kappa(natural)
    small = kappa < 1e-3
    safe = jnp.where(small, 1.0, kappa)
    series = 1.0 / d - kappa**2 / (d * d * (d + 2.0))  # A_D(κ)/κ = 1/D − κ²/(D²(D+2)) + O(κ⁴)
    g = jnp.where(small, series, bessel_ratio(0.5 * d - 1.0, safe) / safe)
    return _log_partition(natural), g * jnp.dot(natural, tangent)


_SMALL_KAPPA_TERMS = 8  # (κ²/4)ᵏ / (k! (ν+1)ₖ) below κ = 1: the 9th term is under 10⁻¹⁷


def _log_normaliser(kappa, d: int):
    """log C_D(κ) = ν log κ − (D/2) log 2π − log I_ν(κ), ν = D/2 − 1; its limit at κ = 0."""
    nu = 0.5 * d - 1.0
    positive = kappa > 0
    safe = jnp.where(positive, kappa, 1.0)
    value = nu * jnp.log(safe) - 0.5 * d * math.log(2.0 * math.pi) - log_ive(nu, safe) - safe
    at_zero = math.lgamma(0.5 * d) - math.log(2.0) - 0.5 * d * math.log(math.pi)  # −log |S^(D−1)|
    # Below κ = 1, ν log κ and log I_ν(κ) cancel (in float32 to 10⁻⁵); instead
    # log C_D(κ) = log C_D(0) − log ₀F₁(; ν + 1; κ²/4), summed as a series.
    small = kappa < 1.0
    z = 0.25 * jnp.where(small, kappa, 0.0) ** 2
    term, excess = jnp.ones_like(z), jnp.zeros_like(z)
    for k in range(1, _SMALL_KAPPA_TERMS + 1):
        term = term * z / (k * (nu + k))
        excess = excess + term
    near_zero = at_zero - jnp.log1p(excess)
    return jnp.where(small, near_zero, value)


def _check_unit_rows(x: np.ndarray, name: str, what: str) -> None:
    norms = np.linalg.norm(np.asarray(x, dtype=np.float64), axis=1)
    bad = ~(np.abs(norms - 1.0) <= NORM_TOLERANCE)
    if np.any(bad):
        row = int(np.argmax(bad))
        raise ValueError(
            f"row {row} of `{name}` has norm {float(norms[row])!r}; von Mises–Fisher {what} must be unit "
            f"vectors (norm 1 within a relative {NORM_TOLERANCE}). Normalise the rows: "
            f"{name} / np.linalg.norm({name}, axis=1, keepdims=True)."
        )
