"""Log-densities of counts and shapes in deviance form, accurate in float32 at large values.

The textbook forms of the Poisson and Gamma log-densities, x log λ − λ − log x!
and α log β − log Γ(α) + (α − 1) log x − βx, subtract terms of size x log x
to leave a result of size log x: in float32 at x = 10⁷ the terms are 10⁸ and
their rounding (about 10 nats) swamps the answer. Loader's saddle-point
form ("Fast and accurate computation of binomial probabilities", 2000)
writes the same quantities with no such cancellation:

* the deviance term ``bd0(x, m)`` = x log(x / m) + m − x ≥ 0, by a series in
  v = (x − m)/(x + m) when x and m are close, so it is accurate relative to
  its own (small) size;
* Stirling's error ``stirling_error(x)`` = log Γ(x + 1) − (x log x − x + ½ log 2πx),
  by its asymptotic series for x ≥ 16 and directly below.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import gammaln

__all__ = ["LARGE", "bd0", "log_gamma_plus_one", "stirling_error"]

LARGE = 16.0  # from here on, Stirling's series and the deviance form are used
_SERIES_TERMS = 12  # v² ≤ 1/100 in the series branch: 12 terms reach float64's resolution
# Stirling's series: 1/(12x) − 1/(360x³) + 1/(1260x⁵) − 1/(1680x⁷) + 1/(1188x⁹) − 691/(360360x¹¹).
_STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360)
# Stirling's error at the counts 0..15, from float64's log Γ (exact to its last digit), so
# that small counts are as exact as the dtype allows; index 0 is never read (x > 0).
_TABLE = tuple(
    math.inf if n == 0 else math.lgamma(n + 1) - (n * math.log(n) - n + 0.5 * math.log(2 * math.pi * n))
    for n in range(int(LARGE))
)
_LOG_FACTORIAL = tuple(math.lgamma(n + 1) for n in range(int(LARGE)))


def _whole(x, table):
    """(x is a whole number in 0..15, the table's entry there)."""
    whole = jnp.clip(jnp.round(x), 0, LARGE - 1)
    return x == whole, jnp.asarray(table, x.dtype)[whole.astype(jnp.int32)]


def log_gamma_plus_one(x):
    """log Γ(x + 1) for x ≥ 0 (elementwise), from a table at the whole numbers 0..15.

    ``jax.scipy.special.gammaln`` is not exact there in float32 (log Γ(1) comes
    out as 5·10⁻⁷, not 0).

    Example:
      >>> import numpy as np
      >>> from mixtures._src.families.deviance import log_gamma_plus_one
      >>> log_gamma_plus_one(np.array([0.0, 3.0], np.float32)).tolist()
      [0.0, 1.7917594909667969]
    """
    x = jnp.asarray(x)
    whole, table = _whole(x, _LOG_FACTORIAL)
    return jnp.where(whole, table, gammaln(x + 1.0))


def bd0(x, m, log_m=None):
    """x log(x / m) + m − x for x > 0, m ≥ 0 (elementwise), accurate relative to its value.

    ``log_m``, when given, is log m computed without forming m (for an m
    that may underflow); it is used where x / m overflows or underflows.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.families.deviance import bd0
      >>> x, m = np.float32(1e7), np.float32(1e7 + 3000)
      >>> round(float(bd0(x, m)), 4)  # ≈ (x − m)² / 2m
      0.4499
    """
    x, m = jnp.asarray(x), jnp.asarray(m)
    diff = x - m
    total = x + m
    close = jnp.abs(diff) < 0.1 * total
    v = jnp.where(close, diff / total, 0.0)
    v2 = v * v
    term = 2.0 * x * v  # ej of Loader's algorithm
    series = diff * v
    for j in range(1, _SERIES_TERMS + 1):
        term = term * v2
        series = series + term / (2 * j + 1)
    safe_x = jnp.where(close, 1.0, x)
    safe_m = jnp.where(close, 1.0, m)
    ratio = safe_x / safe_m
    in_range = jnp.isfinite(ratio) & (ratio > 0)  # else x / m overflowed or underflowed
    log_m = jnp.log(safe_m) if log_m is None else jnp.where(close, 0.0, log_m)
    log_ratio = jnp.where(in_range, jnp.log(jnp.where(in_range, ratio, 1.0)), jnp.log(safe_x) - log_m)
    direct = safe_x * log_ratio + safe_m - safe_x
    return jnp.where(close, series, direct)


def stirling_error(x):
    """log Γ(x + 1) − (x log x − x + ½ log(2πx)) for x > 0 (elementwise).

    For x ≥ 16 its asymptotic series; below, a table at whole numbers and
    the difference of log Γ and Stirling's formula elsewhere.

    Example:
      >>> import math
      >>> from mixtures._src.families.deviance import stirling_error
      >>> x = 20.0
      >>> exact = math.lgamma(x + 1) - (x * math.log(x) - x + 0.5 * math.log(2 * math.pi * x))
      >>> abs(float(stirling_error(x)) - exact) < 1e-12  # the direct difference itself loses ~1e-14
      True
    """
    x = jnp.asarray(x)
    large = x >= LARGE
    big = jnp.where(large, x, LARGE)
    inv2 = 1.0 / (big * big)
    poly = jnp.zeros_like(big)
    for c in reversed(_STIRLING):
        poly = poly * inv2 + c
    series = poly / big
    small = jnp.where(large, 1.0, jnp.maximum(x, jnp.finfo(x.dtype).tiny))
    direct = gammaln(small + 1.0) - (small * jnp.log(small) - small + 0.5 * jnp.log(2 * math.pi * small))
    whole, table = _whole(x, _TABLE)
    return jnp.where(large, series, jnp.where(whole, table, direct))
