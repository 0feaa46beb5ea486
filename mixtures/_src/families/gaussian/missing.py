"""Gaussian components on rows with missing entries: marginal densities and expected statistics.

A row's missing entries are NaN. Under component k, with precision
Λₖ = Uₖ Uₖᵀ, observed entries o and missing entries m, everything the E-step
and the M-step need comes from the precision's missing block Aₙₖ = (Λₖ)ₘₘ,
m × m with m the row's number of missing entries (Ghahramani & Jordan):

* with zₙ the residual xₙ − μₖ set to 0 at the missing entries and
  bₙₖ = (Λₖ zₙ)ₘ, the conditional mean of the missing entries is μₘ − A⁻¹ b
  and their conditional covariance A⁻¹;
* the residual completed by the conditional mean, ẑ, minimises
  (x − μ)ᵀ Λ (x − μ) over the missing entries, so the marginal density of
  the observed entries is log N(xₒ; μₒ, Σₒₒ) = −½ [(D − m) log 2π + |ẑ U|²]
  + log |U| − ½ log |A| (|Σ| = |Σₒₒ| |A⁻¹|): a sum of squares, with none
  of the cancellation of zᵀΛz − bᵀA⁻¹b;
* the expected statistics in the whitened frame y = (x − μₖ) Uₖ are
  E[y] = ẑ U and E[y yᵀ] = E[y] E[y]ᵀ + Uᵀ Cov[x | xₒ] U, whose second term
  is added up over rows in the data's frame (each row's conditional
  covariance lives on its m × m block) and whitened once per component.

Per block of B rows that is three matrix products over D per component
(Λz, ẑU, and the statistics' E[y]ᵀE[y]), gathers of b and of A's entries
from Λ, and the m × m work per row and component: A's factorisation, two
triangular solves, A⁻¹'s m (m + 1) / 2 entries, and their sum into D × D.
The rows' missing columns are gathered into (B, M) indices, M static (part
of the compiled program), shorter lists padded with an identity block that
changes nothing. The m × m work is written out as arithmetic on (B, K)
arrays, one per entry, so that XLA fuses it into loops over rows and
components instead of a batched LAPACK call per row; beyond ``UNROLLED``
missing entries per row the batched library factorisation is used instead.

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
import numpy as np
from jax.scipy.linalg import solve_triangular

from mixtures._src.families.gaussian.params import GaussianParams, GaussianStats

__all__ = ["Pattern", "Completed", "by_block", "pattern", "complete", "sizes", "stats", "conditional_moments"]

_HI = jax.lax.Precision.HIGHEST
UNROLLED = 12
"""Most missing entries per row for the factorisation written out as fused arithmetic."""


class Pattern(NamedTuple):
    """Where a block of rows misses entries.

    Attributes:
      index: (B, M) int32 the missing columns of each row, in order, padded with 0.
      valid: (B, M) bool whether an index entry is a missing column (not padding).
      hit: (B, M, D) bool row i of each row's block marks its i-th missing column (none for padding).
    """

    index: jax.Array
    valid: jax.Array
    hit: jax.Array


def pattern(x: jax.Array, max_missing: int) -> Pattern:
    """The :class:`Pattern` of a block of rows whose missing entries are NaN."""
    d = x.shape[-1]
    max_missing = min(max_missing, d)
    missing = jnp.isnan(x)
    # A missing entry's place among its row's missing entries: a product with a triangle of ones (exact
    # counts), which XLA:CPU runs faster than a cumulative sum.
    rank = jnp.dot(missing.astype(x.dtype), jnp.triu(jnp.ones((d, d), x.dtype)), precision=_HI).astype(jnp.int32) - 1
    hit = missing[:, None, :] & (rank[:, None, :] == jnp.arange(max_missing)[None, :, None])  # (B, M, D)
    index = jnp.sum(jnp.where(hit, jnp.arange(d)[None, None, :], 0), axis=-1).astype(jnp.int32)
    valid = jnp.arange(max_missing)[None, :] < jnp.sum(missing, axis=-1)[:, None]
    return Pattern(index, valid, hit)


class Completed(NamedTuple):
    """Per component and row: the observed entries' log-density and the missing entries' conditional moments.

    Attributes:
      log_probs: (B, K) log N(xₒ; μₖₒ, Σₖₒₒ).
      whitened: (K, B, D) E[y | xₒ, k], y = (x − μₖ) Uₖ.
      residual: (K, B, D) E[x | xₒ, k] − μₖ.
      covariance: (T, B, K) the lower triangle of Cov[xₘ | xₒ, k] = A⁻¹, T = M (M + 1) / 2 entries in
        the order of ``numpy.tril_indices(M)``, 0 where a slot is padding; None for the diagonal layouts
        (where it is the component's own variance on the missing entries).
      pairs: (T, B) int32 where each of those entries belongs in a D × D matrix, row · D + column; or None.
      factor: the rows of L (A = L Lᵀ) as a list of M lists of (B, K) arrays, or None (diagonal layouts).
    """

    log_probs: jax.Array
    whitened: jax.Array
    residual: jax.Array
    covariance: jax.Array | None
    pairs: jax.Array | None
    factor: list | None


def complete(layout: str, log_det, params: GaussianParams, x: jax.Array, max_missing: int) -> Completed:
    """The :class:`Completed` moments of a block of rows (missing entries NaN) under every component.

    The work per row and component beyond three matrix products over D is
    the m × m block: gathering A and b = (Λz)ₘ, factorising A, two triangular
    solves and, for the statistics, A⁻¹'s m (m + 1) / 2 entries.

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
        return Completed(logp.T, y, diff, None, None, None)
    m = min(max_missing, d)
    p = pattern(x, m)
    precision = jnp.einsum("kde,kfe->kdf", u, u, precision=_HI)  # Λ = U Uᵀ
    batched = (((2,), (1,)), ((0,), (0,)))
    lam_z = jax.lax.dot_general(diff, precision, batched, precision=_HI)  # Λ z, (K, B, D)
    # The m × m work runs on (B, K) arrays, one per entry, which XLA fuses into loops over rows and
    # components; gathers from Λ then fetch a component-contiguous row per entry.
    precision = precision.reshape(u.shape[0], d * d).T  # (D², K)
    b = jnp.take_along_axis(lam_z, jnp.broadcast_to(p.index[None], lam_z.shape[:2] + (m,)), axis=2)
    b = jnp.transpose(jnp.where(p.valid[None], b, 0), (2, 1, 0))  # (Λ z)ₘ, (M, B, K)
    rows, cols = np.tril_indices(m)
    pairs = p.index[:, rows] * d + p.index[:, cols]  # (B, T)
    both = (p.valid[:, rows] & p.valid[:, cols]).T  # (T, B)
    # A's lower triangle gathered from Λ, (T, B, K); a padding slot's block is the identity.
    a = jnp.where(both[..., None], jnp.take(precision, pairs.T, axis=0), jnp.asarray(rows == cols, x.dtype)[:, None, None])
    if m <= UNROLLED:
        entry = [[None] * m for _ in range(m)]
        for t_, (i, j) in enumerate(zip(rows, cols)):
            entry[i][j] = a[t_]
        # The barriers keep the factor and its inverse as arrays: without them XLA fuses their
        # arithmetic into each of their many consumers and computes it again in every one.
        factor = jax.lax.optimization_barrier(_cholesky(entry))
        t = _backward(factor, _forward(factor, list(b)))
        inverse = jax.lax.optimization_barrier(_inverse(factor))
        cov = jnp.stack([sum(inverse[q][i] * inverse[q][j] for q in range(i, m)) for i, j in zip(rows, cols)])
        log_det_a = sum(jnp.log(factor[i][i]) for i in range(m))
    else:
        full = jnp.zeros(a.shape[1:] + (m, m), x.dtype).at[..., rows, cols].set(jnp.moveaxis(a, 0, -1))
        full = full + jnp.swapaxes(jnp.tril(full, -1), -1, -2)
        # One batched factorisation and one solve for both right-hand sides, then the solve that needs
        # its result: batched LAPACK calls that could run at once can deadlock (shared/JAX-CPU-NOTES.md).
        chol = jnp.linalg.cholesky(full)  # (B, K, M, M)
        eye = jnp.broadcast_to(jnp.eye(m, dtype=x.dtype), full.shape)
        solved = solve_triangular(chol, jnp.concatenate([jnp.moveaxis(b, 0, -1)[..., None], eye], axis=-1), lower=True)
        s, inverse = solved[..., 0:1], solved[..., 1:]  # L⁻¹ b and L⁻¹
        t = list(jnp.moveaxis(solve_triangular(chol, s, lower=True, trans="T")[..., 0], -1, 0))
        cov = jnp.moveaxis(jnp.einsum("...qi,...qj->...ij", inverse, inverse, precision=_HI)[..., rows, cols], -1, 0)
        log_det_a = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        factor = [[chol[..., i, j] for j in range(m)] for i in range(m)]
    # E[x | xₒ, k] − μₖ: the residual at the observed entries, −A⁻¹b at the missing ones.
    residual = diff
    for i in range(m):
        residual = jnp.where(p.hit[None, :, i, :], -t[i].T[:, :, None], residual)
    completed = jax.lax.dot_general(residual, u, batched, precision=_HI)
    # The conditional mean minimises (x − μ)ᵀ Λ (x − μ) over the missing entries, to (xₒ − μₒ)ᵀ Σₒₒ⁻¹ (xₒ − μₒ):
    # a sum of squares, with no cancellation.
    quad = jnp.sum(completed * completed, axis=-1).T
    logp = -0.5 * (n_obs[:, None] * math.log(2 * math.pi) + quad) + log_det[None, :] - log_det_a
    logp = jnp.where(n_obs[:, None] > 0, logp, 0)  # nothing observed: density one, not its rounding
    return Completed(logp, completed, residual, jnp.where(both[..., None], cov, 0), pairs.T, factor)


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


def stats(layout: str, params: GaussianParams, resp: jax.Array, done: Completed, observed: jax.Array) -> GaussianStats:
    """Σₙ rₙₖ E[yₙₖ] and Σₙ rₙₖ E[yₙₖ yₙₖᵀ] (its diagonal for the diagonal layouts) given the observed entries.

    For full covariances, E[y yᵀ] = E[y] E[y]ᵀ + Uᵀ Cov[x | xₒ] U: the
    conditional covariances, each nonzero on its row's m × m missing block
    only, are added up in the data's frame, D × D per component, and
    whitened once.
    """
    rt = resp.T  # (K, B)
    y = done.whitened
    first = jnp.einsum("kb,kbd->kd", rt, y, precision=_HI)
    if layout != "full":
        second = jnp.einsum("kb,kbd->kd", rt, y * y + (1 - observed.astype(y.dtype))[None], precision=_HI)
        return GaussianStats(first, second)
    k, _, d = y.shape
    second = jax.lax.dot_general(rt[:, :, None] * y, y, (((1,), (1,)), ((0,), (0,))), precision=_HI)
    weighted = (resp[None] * done.covariance).reshape(-1, k)  # (T·B, K)
    low = jax.ops.segment_sum(weighted, done.pairs.reshape(-1), num_segments=d * d).T.reshape(k, d, d)
    # The pairs are the lower triangle (the missing columns are in order), the diagonal counted once.
    spread = low + jnp.swapaxes(low, 1, 2) - jnp.eye(d, dtype=y.dtype)[None] * low
    u = params.precisions_cholesky
    return GaussianStats(first, second + jnp.einsum("kde,kdf,kfg->keg", u, spread, u, precision=_HI))


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
    onehot = p.hit.astype(x.dtype)
    if layout != "full":
        u = params.precisions_cholesky
        scale = u if u.ndim == 2 else jnp.broadcast_to(u[:, None], (u.shape[0], d))
        sd = jnp.einsum("bmd,kd->kbm", onehot, 1.0 / scale, precision=_HI)

        def draw(noise):
            return jnp.einsum("kbm,bmd->kbd", noise * sd, onehot, precision=_HI)

        return means, draw

    def draw_full(noise):
        # A⁻¹ = L⁻ᵀ L⁻¹: L⁻ᵀ ε has covariance A⁻¹.
        e = jnp.stack([v.T for v in _backward(done.factor, [noise[..., i].T for i in range(max_missing)])], axis=-1)
        return jnp.einsum("kbm,bmd->kbd", e * p.valid[None], onehot, precision=_HI)

    return means, draw_full


def _cholesky(entry):
    """Lower Cholesky factor, written out, of matrices given by their lower triangles' entries (lists of (B, K) arrays)."""
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


def _forward(low, rhs):
    """Solves L v = rhs, rhs a list of M (B, K) arrays."""
    out = []
    for i in range(len(rhs)):
        s = rhs[i]
        for q in range(i):
            s = s - low[i][q] * out[q]
        out.append(s / low[i][i])
    return out


def _inverse(low):
    """L⁻¹, written out, of a lower-triangular factor given as lists of (B, K) arrays (its lower triangle)."""
    m = len(low)
    inv = [[None] * m for _ in range(m)]
    for j in range(m):
        inv[j][j] = 1 / low[j][j]
        for i in range(j + 1, m):
            inv[i][j] = -sum(low[i][q] * inv[q][j] for q in range(j, i)) / low[i][i]
    return inv


def _backward(low, rhs):
    """Solves Lᵀ v = rhs, rhs a list of M (B, K) arrays."""
    m = len(rhs)
    out = [None] * m
    for i in reversed(range(m)):
        s = rhs[i]
        for q in range(i + 1, m):
            s = s - low[q][i] * out[q]
        out[i] = s / low[i][i]
    return out
