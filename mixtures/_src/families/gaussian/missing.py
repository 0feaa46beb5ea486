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

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from mixtures._src.families.gaussian.params import GaussianParams, GaussianStats

__all__ = ["Pattern", "Completed", "by_block", "pattern", "complete", "sizes", "stats", "conditional_moments"]

_HI = jax.lax.Precision.HIGHEST
UNROLLED = 12
"""Most missing entries per row for the factorisation written out as fused arithmetic."""


class Pattern(NamedTuple):
    """Where a block of rows is observed.

    Attributes:
      observed: (B, D) bool.
      filled: (B, D) the rows with 0 at the missing entries.
      index: (B, M) int32 the missing columns of each row, in order, padded with 0.
      valid: (B, M) bool whether an index entry is a missing column (not padding).
      onehot: (B, M, D) row i of each row's block is the unit vector of its i-th missing column (0 for padding).
    """

    observed: jax.Array
    filled: jax.Array
    index: jax.Array
    valid: jax.Array
    onehot: jax.Array


def pattern(x: jax.Array, max_missing: int) -> Pattern:
    """The :class:`Pattern` of a block of rows whose missing entries are NaN."""
    d = x.shape[-1]
    max_missing = min(max_missing, d)
    observed = ~jnp.isnan(x)
    filled = jnp.where(observed, x, 0)
    rank = jnp.cumsum(~observed, axis=-1) - 1  # a missing entry's place among its row's missing entries
    slots = jnp.arange(max_missing)[None, :, None]
    hit = ~observed[:, None, :] & (rank[:, None, :] == slots)  # (B, M, D)
    index = jnp.sum(jnp.where(hit, jnp.arange(d)[None, None, :], 0), axis=-1).astype(jnp.int32)
    valid = jnp.any(hit, axis=-1)
    return Pattern(observed, filled, index, valid, hit.astype(x.dtype))


class Completed(NamedTuple):
    """Per component and row: the observed entries' log-density and the missing entries' conditional moments.

    Attributes:
      log_probs: (B, K) log N(xₒ; μₖₒ, Σₖₒₒ).
      whitened: (K, B, D) E[y | xₒ, k], y = (x − μₖ) Uₖ.
      spread: (K, B, M, D) W with Cov[y | xₒ, k] = Wᵀ W (L⁻¹ times the missing rows of Uₖ,
        A = L Lᵀ), or None for the diagonal layouts (where it is the identity on the missing entries).
      residual: (K, B, D) E[x | xₒ, k] − μₖ.
      factor: the rows of L as a list of M lists of (K, B) arrays, or None (diagonal layouts).
    """

    log_probs: jax.Array
    whitened: jax.Array
    spread: jax.Array | None
    residual: jax.Array
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
    observed = ~jnp.isnan(x)
    obs = observed.astype(x.dtype)
    u = params.precisions_cholesky
    diff = jnp.where(observed[None], jnp.where(observed, x, 0)[None, :, :] - params.means[:, None, :], 0)  # (K, B, D)
    n_obs = jnp.sum(obs, axis=-1)  # (B,)
    if layout != "full":
        scale = u if u.ndim == 2 else jnp.broadcast_to(u[:, None], (u.shape[0], d))
        y = diff * scale[:, None, :]
        log_scale = jnp.einsum("bd,kd->kb", obs, jnp.log(scale), precision=_HI)
        logp = -0.5 * (n_obs[None, :] * math.log(2 * math.pi) + jnp.sum(y * y, axis=-1)) + log_scale
        return Completed(logp.T, y, None, diff, None)
    max_missing = min(max_missing, d)
    p = pattern(x, max_missing)
    y = jax.lax.dot_general(diff, u, (((2,), (1,)), ((0,), (0,))), precision=_HI)  # z U, (K, B, D)
    rows_u = u[:, p.index, :] * p.valid[None, :, :, None].astype(x.dtype)  # (K, B, M, D): the missing rows of U
    # Products over D of a few vectors per row: broadcast and sum, which XLA fuses.
    b = jnp.sum(rows_u * y[:, :, None, :], axis=-1)  # (Λ z)ₘ
    if max_missing <= UNROLLED:
        # The lower triangle of A, entry by entry; a padding slot's diagonal is 1.
        entry = [[None] * max_missing for _ in range(max_missing)]
        for i in range(max_missing):
            for j in range(i + 1):
                entry[i][j] = jnp.sum(rows_u[:, :, i, :] * rows_u[:, :, j, :], axis=-1)
            entry[i][i] = jnp.where(p.valid[None, :, i], entry[i][i], 1)
        factor = _cholesky(entry)
        s = _forward(factor, [b[..., i] for i in range(max_missing)])
        t = jnp.stack(_backward(factor, s), axis=-1)
        w = jnp.stack(_forward(factor, [rows_u[:, :, i, :] for i in range(max_missing)], trailing=True), axis=2)
        log_det_a = sum(jnp.log(factor[i][i]) for i in range(max_missing))
        s = jnp.stack(s, axis=-1)
    else:
        a = jnp.sum(rows_u[:, :, :, None, :] * rows_u[:, :, None, :, :], axis=-1)
        pad = ~(p.valid[:, :, None] & p.valid[:, None, :])
        a = jnp.where(pad[None], jnp.eye(max_missing, dtype=x.dtype), a)
        # One batched factorisation and one solve for both right-hand sides, then the solve that needs
        # its result: batched LAPACK calls that could run at once can deadlock (shared/JAX-CPU-NOTES.md).
        chol = jnp.linalg.cholesky(a)
        solved = solve_triangular(chol, jnp.concatenate([b[..., None], rows_u], axis=-1), lower=True)
        s, w = solved[..., 0], solved[..., 1:]
        t = solve_triangular(chol, s[..., None], lower=True, trans="T")[..., 0]
        log_det_a = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        factor = [[chol[..., i, j] for j in range(max_missing)] for i in range(max_missing)]
    quad = jnp.sum(y * y, axis=-1) - jnp.sum(s * s, axis=-1)
    logp = -0.5 * (n_obs[None, :] * math.log(2 * math.pi) + quad) + log_det[:, None] - log_det_a
    logp = jnp.where(n_obs[None, :] > 0, logp, 0)  # nothing observed: density one, not its rounding
    completed = y - jnp.sum(t[..., None] * rows_u, axis=2)
    residual = diff - jnp.sum(t[..., None] * p.onehot[None], axis=2)
    return Completed(logp.T, completed, w, residual, factor)


def sizes(max_missing: int, d: int) -> list[int]:
    """The sizes M a block's work is compiled for: 1, 2, 3, 4, 6, 8, 12, 16, 24, … below min(M, D), and min(M, D).

    Example:
      >>> sizes(11, 16), sizes(30, 16), sizes(1, 5)
      ([1, 2, 3, 4, 6, 8, 11], [1, 2, 3, 4, 6, 8, 12, 16], [1])
    """
    top = max(1, min(max_missing, d))
    ladder, power = [1, 2, 3], 4
    while power < top:
        ladder += [power, power * 3 // 2]
        power *= 2
    return [size for size in ladder if size < top] + [top]


def by_block(fn, x: jax.Array, max_missing: int, weights: jax.Array | None = None):
    """``fn(m)`` for the smallest size m of :func:`sizes` that covers the block's rows (a branch per size).

    Rows of weight 0 need not be covered: they contribute nothing, and the
    work for them, done at a smaller size, stays finite. The block's size is
    data, the same for every restart traced side by side, so the choice stays
    a branch under ``vmap``.
    """
    options = sizes(max_missing, x.shape[-1])
    if len(options) == 1:
        return fn(options[0])
    n_missing = jnp.sum(jnp.isnan(x), axis=-1)
    if weights is not None:
        n_missing = jnp.where(weights > 0, n_missing, 0)
    branch = jnp.searchsorted(jnp.asarray(options), jnp.max(n_missing))
    return jax.lax.switch(jnp.minimum(branch, len(options) - 1), [functools.partial(fn, m) for m in options])


def stats(layout: str, resp: jax.Array, done: Completed, observed: jax.Array) -> GaussianStats:
    """Σₙ rₙₖ E[yₙₖ] and Σₙ rₙₖ E[yₙₖ yₙₖᵀ] (its diagonal for the diagonal layouts) given the observed entries."""
    rt = resp.T  # (K, B)
    y = done.whitened
    first = jnp.einsum("kb,kbd->kd", rt, y, precision=_HI)
    if layout != "full":
        second = jnp.einsum("kb,kbd->kd", rt, y * y + (1 - observed.astype(y.dtype))[None], precision=_HI)
        return GaussianStats(first, second)
    k, n, m, d = done.spread.shape
    batched = (((1,), (1,)), ((0,), (0,)))
    second = jax.lax.dot_general(rt[:, :, None] * y, y, batched, precision=_HI)
    spread = done.spread.reshape(k, n * m, d)
    weighted = (rt[:, :, None, None] * done.spread).reshape(k, n * m, d)
    second = second + jax.lax.dot_general(weighted, spread, batched, precision=_HI)
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
    onehot = p.onehot
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


def _cholesky(entry):
    """Lower Cholesky factor, written out, of matrices given by their lower triangles' entries (lists of (K, B) arrays)."""
    m = len(entry)
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
