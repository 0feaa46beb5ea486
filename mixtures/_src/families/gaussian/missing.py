"""Gaussian components on rows with missing entries: marginal densities and expected statistics.

A row's missing entries are NaN. Under component k, with precision
Λₖ = Uₖ Uₖᵀ, observed entries o and missing entries m, everything the E-step
and the M-step need comes from the precision's missing block Aₙₖ = (Λₖ)ₘₘ,
m × m with m the row's number of missing entries:

* the marginal density of the observed entries (Ghahramani & Jordan):
  with zₙ the residual xₙ − μₖ set to 0 at the missing entries and
  bₙₖ = (Λₖ zₙ)ₘ, log N(xₒ; μₒ, Σₒₒ) = −½ [(D − m) log 2π + zᵀΛz − bᵀA⁻¹b]
  + log |Uₖ| − ½ log |A|, since Σₒₒ⁻¹ = Λₒₒ − Λₒₘ A⁻¹ Λₘₒ and
  |Σ| = |Σₒₒ| |A⁻¹|;
* the conditional mean of the missing entries, μₘ − A⁻¹ b, and their
  conditional covariance A⁻¹, which complete the row's expected statistics
  E[y] and E[y yᵀ] in the whitened frame y = (x − μₖ) Uₖ.

The rows' missing columns are gathered into (B, M) indices, M the most any
row of the data misses (static: part of the compiled program), shorter lists
padded with an identity block that changes nothing. The factorisation of the
small A's is written out as arithmetic on (K, B) arrays, one per entry, so
that XLA fuses it into one loop over rows and components instead of a
batched LAPACK call per row; beyond ``UNROLLED`` missing entries per row the
batched library factorisation is used instead.

The diagonal layouts need none of this: a missing entry drops out of the
density and contributes its expectation (0 for y, 1 for y²) to the whitened
statistics.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from mixtures._src.families.gaussian.params import GaussianParams, GaussianStats

__all__ = ["Pattern", "Completed", "pattern", "complete", "stats", "conditional_moments"]

_HI = jax.lax.Precision.HIGHEST
UNROLLED = 12
"""Most missing entries per row for the factorisation written out as fused arithmetic."""


class Pattern(NamedTuple):
    """Where a block of rows is observed.

    Attributes:
      observed: (B, D) bool.
      filled: (B, D) the rows with 0 at the missing entries.
      index: (B, M) int32 the missing columns of each row, first, padded.
      valid: (B, M) bool whether an index entry is a missing column (not padding).
    """

    observed: jax.Array
    filled: jax.Array
    index: jax.Array
    valid: jax.Array


def pattern(x: jax.Array, max_missing: int) -> Pattern:
    """The :class:`Pattern` of a block of rows whose missing entries are NaN."""
    max_missing = min(max_missing, x.shape[-1])
    observed = ~jnp.isnan(x)
    filled = jnp.where(observed, x, 0)
    order = jnp.argsort(observed.astype(jnp.int8), axis=-1, stable=True)  # missing columns first
    index = order[:, :max_missing].astype(jnp.int32)
    n_missing = jnp.sum(~observed, axis=-1)
    valid = jnp.arange(max_missing)[None, :] < n_missing[:, None]
    return Pattern(observed, filled, index, valid)


class Completed(NamedTuple):
    """Per component and row: the observed entries' log-density and the missing entries' conditional moments.

    Attributes:
      log_probs: (B, K) log N(xₒ; μₖₒ, Σₖₒₒ).
      whitened: (K, B, D) E[y | xₒ, k], y = (x − μₖ) Uₖ.
      spread: (K, B, M, D) W with Cov[y | xₒ, k] = Wᵀ W (L⁻¹ times the missing rows of Uₖ,
        A = L Lᵀ), or None for the diagonal layouts (where it is the identity on the missing entries).
      residual: (K, B, D) E[x | xₒ, k] − μₖ.
      shift: (K, B, M) A⁻¹ b, by which the conditional means of the missing entries sit below μₘ.
      factor: the rows of L as a list of M lists of (K, B) arrays, or None (diagonal layouts).
    """

    log_probs: jax.Array
    whitened: jax.Array
    spread: jax.Array | None
    residual: jax.Array
    shift: jax.Array | None
    factor: list | None


def complete(layout: str, log_det, params: GaussianParams, x: jax.Array, max_missing: int) -> Completed:
    """The :class:`Completed` moments of a block of rows (missing entries NaN) under every component.

    Args:
      layout: "full", "diag" or "spherical" (how the precision factors are stored).
      log_det: log |Uₖ| per component, (K,).
      params: the components.
      x: (B, D) rows, NaN where missing.
      max_missing: M, at least the number of missing entries in any row.
    """
    d = x.shape[-1]
    max_missing = min(max_missing, d)
    p = pattern(x, max_missing)
    obs = p.observed.astype(x.dtype)
    u = params.precisions_cholesky
    diff = jnp.where(p.observed[None], p.filled[None, :, :] - params.means[:, None, :], 0)  # (K, B, D)
    n_obs = jnp.sum(obs, axis=-1)  # (B,)
    if layout != "full":
        scale = u if u.ndim == 2 else jnp.broadcast_to(u[:, None], (u.shape[0], d))
        y = diff * scale[:, None, :]
        log_scale = jnp.einsum("bd,kd->kb", obs, jnp.log(scale), precision=_HI)
        logp = -0.5 * (n_obs[None, :] * math.log(2 * math.pi) + jnp.sum(y * y, axis=-1)) + log_scale
        return Completed(logp.T, y, None, diff, None, None)
    y = jax.lax.dot_general(diff, u, (((2,), (1,)), ((0,), (0,))), precision=_HI)  # z U, (K, B, D)
    rows_u = u[:, p.index, :] * p.valid[None, :, :, None]  # (K, B, M, D): the missing rows of U
    b = jnp.einsum("kbmd,kbd->kbm", rows_u, y, precision=_HI)  # (Λ z)ₘ
    a = jnp.einsum("kbid,kbjd->kbij", rows_u, rows_u, precision=_HI)
    pad = ~(p.valid[:, :, None] & p.valid[:, None, :])
    a = jnp.where(pad[None], jnp.eye(max_missing, dtype=x.dtype), a)
    if max_missing <= UNROLLED:
        factor = _cholesky(a)
        s = _forward(factor, [b[..., i] for i in range(max_missing)])
        t = jnp.stack(_backward(factor, s), axis=-1)
        w = jnp.stack(_forward(factor, [rows_u[:, :, i, :] for i in range(max_missing)], trailing=True), axis=2)
        log_det_a = sum(jnp.log(factor[i][i]) for i in range(max_missing))
        s = jnp.stack(s, axis=-1)
    else:
        chol = jnp.linalg.cholesky(a)
        s = solve_triangular(chol, b[..., None], lower=True)[..., 0]
        t = solve_triangular(chol, s[..., None], lower=True, trans="T")[..., 0]
        w = solve_triangular(chol, rows_u, lower=True)
        log_det_a = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        factor = [[chol[..., i, j] for j in range(max_missing)] for i in range(max_missing)]
    quad = jnp.sum(y * y, axis=-1) - jnp.sum(s * s, axis=-1)
    logp = -0.5 * (n_obs[None, :] * math.log(2 * math.pi) + quad) + log_det[:, None] - log_det_a
    completed = y - jnp.einsum("kbm,kbmd->kbd", t, rows_u, precision=_HI)
    onehot = jax.nn.one_hot(p.index, d, dtype=x.dtype) * p.valid[:, :, None]  # (B, M, D)
    residual = diff - jnp.einsum("kbm,bmd->kbd", t, onehot, precision=_HI)
    return Completed(logp.T, completed, w, residual, t, factor)


def stats(layout: str, resp: jax.Array, done: Completed, observed: jax.Array) -> GaussianStats:
    """Σₙ rₙₖ E[yₙₖ] and Σₙ rₙₖ E[yₙₖ yₙₖᵀ] (its diagonal for the diagonal layouts) given the observed entries."""
    rt = resp.T  # (K, B)
    y = done.whitened
    first = jnp.einsum("kb,kbd->kd", rt, y, precision=_HI)
    if layout != "full":
        second = jnp.einsum("kb,kbd->kd", rt, y * y + (1 - observed.astype(y.dtype))[None], precision=_HI)
        return GaussianStats(first, second)
    k, n, m, d = done.spread.shape
    rows = jnp.concatenate([y[:, :, None, :], done.spread], axis=2).reshape(k, n * (m + 1), d)
    weighted = jnp.repeat(rt, m + 1, axis=1)[:, :, None] * rows
    second = jax.lax.dot_general(weighted, rows, (((1,), (1,)), ((0,), (0,))), precision=_HI)
    return GaussianStats(first, second)


def conditional_moments(layout: str, params: GaussianParams, done: Completed, x: jax.Array, max_missing: int):
    """Per component: the conditional means (K, B, D) of the rows (observed entries kept) and a draw's scale.

    Returns ``(means, draw)`` where ``draw(noise)`` maps (K, B, M) standard
    normal noise to the (K, B, D) deviations of a conditional draw from its
    mean (zero at the observed entries).
    """
    means = params.means[:, None, :] + done.residual
    d = x.shape[-1]
    max_missing = min(max_missing, d)
    p = pattern(x, max_missing)
    onehot = jax.nn.one_hot(p.index, d, dtype=x.dtype) * p.valid[:, :, None]  # (B, M, D)
    if layout != "full":
        u = params.precisions_cholesky
        scale = u if u.ndim == 2 else jnp.broadcast_to(u[:, None], (u.shape[0], d))
        sd = jnp.einsum("bmd,kd->kbm", onehot, 1.0 / scale, precision=_HI)

        def draw(noise):
            return jnp.einsum("kbm,bmd->kbd", noise * sd, onehot, precision=_HI)

        return means, draw

    def draw_full(noise):
        # A⁻¹ = L⁻ᵀ L⁻¹: L⁻ᵀ ε has covariance A⁻¹.
        e = jnp.stack(_backward(done.factor, [noise[..., i] for i in range(max_missing)]), axis=-1)
        return jnp.einsum("kbm,bmd->kbd", e * p.valid[None], onehot, precision=_HI)

    return means, draw_full


def _cholesky(a):
    """Lower Cholesky factor of (K, B, M, M) matrices as lists of (K, B) entries, written out."""
    m = a.shape[-1]
    entry = [[a[..., i, j] for j in range(m)] for i in range(m)]
    low = [[None] * m for _ in range(m)]
    for j in range(m):
        s = entry[j][j]
        for q in range(j):
            s = s - low[j][q] * low[j][q]
        # A is a principal block of a positive-definite precision; a pivot lost to rounding is
        # floored at the resolution of its diagonal entry, so the factor stays finite.
        low[j][j] = jnp.sqrt(jnp.maximum(s, jnp.finfo(s.dtype).eps * entry[j][j]))
        for i in range(j + 1, m):
            s = entry[i][j]
            for q in range(j):
                s = s - low[i][q] * low[j][q]
            low[i][j] = s / low[j][j]
    return low


def _forward(low, rhs, trailing=False):
    """Solves L v = rhs, rhs a list of M arrays ((K, B), or (K, B, D) with ``trailing``)."""
    out = []
    for i in range(len(rhs)):
        s = rhs[i]
        for q in range(i):
            f = low[i][q][..., None] if trailing else low[i][q]
            s = s - f * out[q]
        out.append(s / (low[i][i][..., None] if trailing else low[i][i]))
    return out


def _backward(low, rhs):
    """Solves Lᵀ v = rhs, rhs a list of M (K, B) arrays."""
    m = len(rhs)
    out = [None] * m
    for i in reversed(range(m)):
        s = rhs[i]
        for q in range(i + 1, m):
            s = s - low[q][i] * out[q]
        out[i] = s / low[i][i]
    return out
