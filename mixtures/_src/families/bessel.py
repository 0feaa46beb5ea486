"""Logarithms and ratios of modified Bessel functions of the first kind, in JAX.

The von Mises–Fisher normaliser needs log I_ν(κ) for ν = D/2 − 1 over a range
of κ where I_ν itself overflows (κ ≳ 700) or underflows, and its M-step needs
the ratio I_{ν+1}(κ) / I_ν(κ). Both come from one computation:

1. **Debye's uniform asymptotic expansion** at the raised order μ = ν + M
   (M = :data:`SHIFT`): with z = κ/μ, s = √(1 + z²) and t = 1/s,

       I_μ(κ) e^(−κ) ≈ e^(μ(s − z)) (z / (1 + s))^μ / √(2πμ s) · Σₖ uₖ(t) / μᵏ,

   where the Debye polynomials u₀ = 1 and
   uₖ₊₁(t) = ½ t²(1 − t²) uₖ'(t) + ⅛ ∫₀ᵗ (1 − 5τ²) uₖ(τ) dτ are generated
   exactly (rational coefficients) at import. The expansion is uniform in
   z ∈ (0, ∞); with μ ≥ 20 and uₖ up to k = 10 the truncation error is below
   1e-13 for every κ. The exponent is written as μ/(s + z) − μ log1p((1 + 1/(s + z))/z),
   which has no cancellation for large or small z.
2. **Backward recurrence** down to ν: ρ_μ = I_{μ+1}/I_μ satisfies
   ρ_μ = 1 / (2(μ + 1)/κ + ρ_{μ+1}), which is the stable direction for I, and
   log I_ν = log I_{ν+M} − Σⱼ log ρ_{ν+j}. The recurrence starts from the
   ratio of the Debye values at orders ν + M + 1 and ν + M.
3. **Power series** for κ < :data:`SMALL` (1e-4), where the first three terms
   of I_ν(κ) = (κ/2)^ν Σₖ (κ²/4)ᵏ / (k! Γ(ν + k + 1)) are exact to rounding:
   log I_ν(κ) = log I_ν(SMALL) + ν log(κ/SMALL) + log S(κ) − log S(SMALL),
   with S the sum scaled to start at 1 and log I_ν(SMALL) from steps 1–2
   (so no log Γ is needed). The limits at κ = 0 are set explicitly.

Everything is computed on the exponentially scaled value log(I_ν(κ) e^(−κ)),
so results stay finite for any finite κ. Derivatives in κ use the identity
d/dκ log I_ν(κ) = I_{ν+1}(κ)/I_ν(κ) + ν/κ; derivatives in ν differentiate
the computation itself.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

__all__ = ["bessel_ratio", "log_ive", "log_iv"]

SHIFT = 20
"""Orders of backward recurrence between ν and the order of the Debye expansion."""

N_TERMS = 11
"""Debye polynomials u₀ … u₁₀ used."""

SMALL = 1e-4
"""Below this κ the power series is used."""


def _debye_polynomials(n: int) -> list[list[Fraction]]:
    """Exact coefficients of u₀ … u_{n−1}; uₖ(t) = tᵏ Σⱼ cₖⱼ t²ʲ, returned as the cₖⱼ."""

    def times(p, q):
        out = [Fraction(0)] * (len(p) + len(q) - 1)
        for i, a in enumerate(p):
            for j, b in enumerate(q):
                out[i + j] += a * b
        return out

    def plus(p, q):
        size = max(len(p), len(q))
        return [(p[i] if i < len(p) else 0) + (q[i] if i < len(q) else 0) for i in range(size)]

    polys = [[Fraction(1)]]  # coefficients of t⁰, t¹, … (full polynomial in t)
    for _ in range(n - 1):
        u = polys[-1]
        derivative = [i * c for i, c in enumerate(u)][1:] or [Fraction(0)]
        first = times([Fraction(0), Fraction(0), Fraction(1, 2), Fraction(0), Fraction(-1, 2)], derivative)
        integrand = times([Fraction(1), Fraction(0), Fraction(-5)], u)
        second = [Fraction(0)] + [c / (8 * (i + 1)) for i, c in enumerate(integrand)]
        polys.append(plus(first, second))
    # uₖ has only the powers tᵏ, tᵏ⁺², …, t³ᵏ.
    return [[p[k + 2 * j] for j in range(k + 1)] for k, p in enumerate(polys)]


def _coefficient_matrix(n: int) -> np.ndarray:
    """(n, n) array C with uₖ(t) = tᵏ Σⱼ C[k, j] t²ʲ (zero beyond j = k)."""
    out = np.zeros((n, n))
    for k, coeffs in enumerate(_debye_polynomials(n)):
        out[k, : len(coeffs)] = [float(c) for c in coeffs]
    return out


_DEBYE = _coefficient_matrix(N_TERMS)


def _powers(base, n: int):
    """(..., n) array of base⁰, base¹, …, base^(n−1)."""
    repeated = jnp.broadcast_to(base[..., None], base.shape + (n - 1,))
    return jnp.cumprod(jnp.concatenate([jnp.ones_like(base)[..., None], repeated], axis=-1), axis=-1)


def _debye_log_ive(mu, x):
    """log(I_μ(x) e^(−x)) by the uniform asymptotic expansion; μ ≥ 20, x > 0."""
    z = x / mu
    s = jnp.hypot(1.0, z)
    t = 1.0 / s
    coeffs = jnp.asarray(_DEBYE, x.dtype)
    u = jnp.einsum("...j,kj->...k", _powers(t * t, N_TERMS), coeffs, precision=lax.Precision.HIGHEST)
    series = jnp.sum(u * _powers(t / mu, N_TERMS), axis=-1)  # Σₖ uₖ(t) / μᵏ
    exponent = mu / (s + z) - mu * jnp.log1p((1.0 + 1.0 / (s + z)) / z)
    return exponent - 0.5 * jnp.log(2.0 * math.pi * mu * s) + jnp.log(series)


def _large(nu, x):
    """(log ive_ν(x), ρ_ν(x)) by Debye at order ν + SHIFT and backward recurrence; x > 0."""
    top = nu + SHIFT
    both = _debye_log_ive(jnp.stack([top, top + 1.0]), jnp.stack([x, x]))  # orders ν + M, ν + M + 1
    log_top = both[0]
    rho_top = jnp.exp(both[1] - both[0])

    def step(i, carry):
        rho, total = carry
        order = top - 1.0 - i  # ρ at this order, from ρ at order + 1
        rho = 1.0 / (2.0 * (order + 1.0) / x + rho)
        return rho, total + jnp.log(rho)

    rho, total = lax.fori_loop(0, SHIFT, step, (rho_top, jnp.zeros_like(x)))
    return log_top - total, rho


def _log_series(nu, x):
    """log Σₖ₌₀² (x²/4)ᵏ Γ(ν + 1) / (k! Γ(ν + k + 1)): the power series' sum after its first term."""
    q = 0.25 * x * x
    a1 = q / (nu + 1.0)
    return jnp.log1p(a1 + a1 * q / (2.0 * (nu + 2.0)))


def _log_ive_and_ratio(nu, x):
    # The Debye branch runs at max(x, SMALL). Below SMALL the power series
    # carries log I_ν from SMALL down to x: log I_ν(x) − log I_ν(SMALL) =
    # ν log(x / SMALL) + log S(x) − log S(SMALL), exact to rounding there.
    # Each branch sees only arguments where it is finite, so that no NaN or
    # infinity enters a derivative through the branch not taken.
    large = x >= SMALL
    zero = x == 0
    log_l, rho_l = _large(nu, jnp.where(large, x, SMALL))
    xs = jnp.where(large | zero, 0.5 * SMALL, x)
    log_s = (log_l + SMALL) + nu * jnp.log(xs / SMALL) + _log_series(nu, xs) - _log_series(nu, SMALL) - xs
    rho_s = 0.5 * xs / (nu + 1.0) * (1.0 - 0.25 * xs * xs / ((nu + 1.0) * (nu + 2.0)))
    log_i = jnp.where(large, log_l, log_s)
    rho = jnp.where(large, rho_l, rho_s)
    log_i = jnp.where(zero, jnp.where(nu == 0, 0.0, -jnp.inf), log_i)
    rho = jnp.where(zero, 0.0, rho)
    at_infinity = x == jnp.inf
    log_i = jnp.where(at_infinity, -jnp.inf, log_i)  # I_ν(κ) e^(−κ) ~ 1/√(2πκ)
    rho = jnp.where(at_infinity, 1.0, rho)
    invalid = (x < 0) | (nu < 0) | jnp.isnan(x) | jnp.isnan(nu)
    return jnp.where(invalid, jnp.nan, log_i), jnp.where(invalid, jnp.nan, rho)


@jax.custom_jvp
def _log_ive(nu, x):
    return _log_ive_and_ratio(nu, x)[0]


def _log_ive_jvp(primals, tangents):
    nu, x = primals
    d_nu, d_x = tangents
    log_i, rho = _log_ive_and_ratio(nu, x)
    out_tangent = jnp.zeros_like(log_i)
    if not isinstance(d_x, SymbolicZero):
        slope = rho - 1.0 + jnp.where(nu > 0, nu / x, 0.0)  # d/dx log(I_ν(x) e^(−x))
        out_tangent = out_tangent + slope * d_x
    if not isinstance(d_nu, SymbolicZero):
        out_tangent = out_tangent + jax.jvp(lambda n: _log_ive_and_ratio(n, x)[0], (nu,), (d_nu,))[1]
    return log_i, out_tangent


_log_ive.defjvp(_log_ive_jvp, symbolic_zeros=True)


def _prepare(nu, kappa):
    kappa = jnp.asarray(kappa)
    if not jnp.issubdtype(kappa.dtype, jnp.floating):
        kappa = kappa.astype(jnp.zeros(()).dtype)
    nu = jnp.asarray(nu, kappa.dtype)
    return jnp.broadcast_arrays(nu, kappa)


def log_ive(nu, kappa) -> jax.Array:
    """log(I_ν(κ) e^(−κ)), the log of the exponentially scaled Bessel function.

    Finite for every finite κ > 0 (the scaling removes the e^κ growth);
    −∞ at κ = 0 for ν > 0 and 0 at κ = 0 for ν = 0; NaN for κ < 0 or ν < 0.
    Differentiable in κ and ν; jit- and vmap-safe.

    Args:
      nu: order ν ≥ 0, a scalar or an array broadcastable with ``kappa``.
      kappa: argument κ ≥ 0, floating array of any shape.

    Returns:
      Array of the broadcast shape, in ``kappa``'s floating dtype.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.families.bessel import log_ive
      >>> from scipy.special import ive
      >>> bool(np.isclose(float(log_ive(0.5, 1e4)), np.log(ive(0.5, 1e4)), rtol=0, atol=1e-12))
      True
    """
    nu, kappa = _prepare(nu, kappa)
    return _log_ive(nu, kappa)


def log_iv(nu, kappa) -> jax.Array:
    """log I_ν(κ), the log of the modified Bessel function of the first kind.

    Equals ``log_ive(nu, kappa) + kappa``; finite where I_ν(κ) itself would
    overflow.

    Args:
      nu: order ν ≥ 0, a scalar or an array broadcastable with ``kappa``.
      kappa: argument κ ≥ 0, floating array of any shape.

    Returns:
      Array of the broadcast shape, in ``kappa``'s floating dtype.

    Example:
      >>> from mixtures._src.families.bessel import log_iv
      >>> round(float(log_iv(0.0, 1.0)), 10)  # log I₀(1) = log 1.2660658777…
      0.2359143585
      >>> bool(log_iv(49.0, 1e5) < float("inf"))
      True
    """
    nu, kappa = _prepare(nu, kappa)
    return jnp.where(kappa == jnp.inf, jnp.inf, _log_ive(nu, kappa) + kappa)


def bessel_ratio(nu, kappa) -> jax.Array:
    """The ratio I_{ν+1}(κ) / I_ν(κ), in [0, 1).

    For ν = D/2 − 1 this is A_D(κ), the mean resultant length of a
    von Mises–Fisher distribution on the sphere in D dimensions. It is the
    ratio the backward recurrence of :func:`log_ive` produces, so it costs the
    same. Differentiable (through the computation); jit- and vmap-safe.

    Args:
      nu: order ν ≥ 0, a scalar or an array broadcastable with ``kappa``.
      kappa: argument κ ≥ 0, floating array of any shape.

    Returns:
      Array of the broadcast shape, in ``kappa``'s floating dtype.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.families.bessel import bessel_ratio
      >>> from scipy.special import ive
      >>> r = float(bessel_ratio(0.5, 3.0))  # A₃(3) = coth 3 − 1/3
      >>> bool(np.isclose(r, ive(1.5, 3.0) / ive(0.5, 3.0), rtol=1e-12))
      True
    """
    nu, kappa = _prepare(nu, kappa)
    return _log_ive_and_ratio(nu, kappa)[1]
