"""A Gaussian mixture's parameters and statistics, and the triangular algebra both the family and its fast pass use."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

__all__ = ["GaussianParams", "GaussianStats"]

_HI = jax.lax.Precision.HIGHEST


class GaussianParams(NamedTuple):
    """Parameters of K Gaussian components.

    Attributes:
      means: (K, D) component means.
      precisions_cholesky: the Cholesky factor U of each precision matrix,
        precision = U Uᵀ with U upper triangular, as scikit-learn's
        ``precisions_cholesky_``. Shape (K, D, D) for "full" and "tied" (for
        "tied" every non-empty component holds the same matrix), (K, D) for
        "diag" (the inverse standard deviations), (K,) for "spherical" and
        "identity" (all ones for "identity").
    """

    means: jax.Array
    precisions_cholesky: jax.Array

    @property
    def covariances(self) -> jax.Array:
        """Covariances in the stored layout: (K, D, D), (K, D) or (K,).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> p = mx.Gaussian("full").make_params(np.zeros((1, 2)), np.array([[[2.0, 0.5], [0.5, 1.0]]]))
          >>> p.covariances.round(6).tolist()
          [[[2.0, 0.5], [0.5, 1.0]]]
        """
        u = self.precisions_cholesky
        if u.ndim == 3:
            eye = jnp.broadcast_to(jnp.eye(u.shape[-1], dtype=u.dtype), u.shape)
            w = solve_triangular(u, eye, lower=False)  # U⁻¹
            return jnp.einsum("kji,kjl->kil", w, w, precision=_HI)  # U⁻ᵀ U⁻¹
        return 1.0 / u**2

    @property
    def precisions(self) -> jax.Array:
        """Precision matrices (inverse covariances) in the stored layout.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> p = mx.Gaussian("diag").make_params(np.zeros((1, 2)), np.array([[4.0, 0.5]]))
          >>> p.precisions.round(6).tolist()
          [[0.25, 2.0]]
        """
        u = self.precisions_cholesky
        if u.ndim == 3:
            return jnp.einsum("kij,klj->kil", u, u, precision=_HI)
        return u**2


class GaussianStats(NamedTuple):
    """Responsibility-weighted statistics, relative to the current parameters.

    With μₖ the current means and Uₖ the current precision Cholesky factors,
    yₙₖ = (xₙ − μₖ) Uₖ is row n whitened by component k.

    Attributes:
      first: (K, D) Σₙ rₙₖ yₙₖ.
      second: Σₙ rₙₖ yₙₖᵀ yₙₖ (yₙₖ a row), (K, D, D) for "full"/"tied"; its diagonal
        only, (K, D), for "diag"/"spherical"/"identity". In this frame a
        converged component's second / Nₖ is close to the identity, whatever
        the scale of the data.
    """

    first: jax.Array
    second: jax.Array


def whitened(params: GaussianParams, x) -> jax.Array:
    """Residuals in each component's whitened frame, yₙₖ = (xₙ − μₖ) Uₖ, shape (K, B, D).

    The difference xₙ − μₖ is taken first, per component, so float32 keeps the
    residual's digits however far the clusters lie from the origin and from
    each other; for full/tied it is then one batched product with the Uₖ.
    """
    u = params.precisions_cholesky
    diff = x[None, :, :] - params.means[:, None, :]  # (K, B, D)
    if u.ndim == 3:
        return jax.lax.dot_general(diff, u, (((2,), (1,)), ((0,), (0,))), precision=_HI)
    scale = u if u.ndim == 2 else u[:, None]
    return diff * scale[:, None, :]


def moved(stats: GaussianStats, counts, a, c) -> GaussianStats:
    """Sums of rows y re-expressed as sums of y A + c, per component.

    A is (K, D, D), or (K, D) for a diagonal A; c is (K, D). Then
    first' = first A + N c and second' = Aᵀ second A + (first A)ᵀ c + cᵀ (first A) + N cᵀ c
    (for a diagonal A, second holds diagonals: a² second + 2 c (first a) + N c²).
    """
    if a.ndim == 3:
        moved = jnp.einsum("kd,kde->ke", stats.first, a, precision=_HI)  # first A
        cross = moved[:, :, None] * c[:, None, :]
        second = (
            jnp.einsum("kji,kjl,klm->kim", a, stats.second, a, precision=_HI)
            + cross
            + jnp.swapaxes(cross, 1, 2)
            + counts[:, None, None] * c[:, :, None] * c[:, None, :]
        )
    else:
        moved = stats.first * a
        second = a**2 * stats.second + 2.0 * c * moved + counts[:, None] * c**2
    return GaussianStats(moved + counts[:, None] * c, second)


def upper_inverse_by_substitution(u):
    """U⁻¹ for each upper-triangular factor, by back substitution in plain array operations.

    The E-step uses this rather than a triangular solve, so that it never
    runs a batched solve alongside the M-step's (see shared/JAX-CPU-NOTES.md).
    """
    d = u.shape[-1]
    eye = jnp.eye(d, dtype=u.dtype)

    def row(step, inv):
        i = d - 1 - step  # rows below i are done and rows above are still zero
        value = (eye[i][None, :] - jnp.einsum("kj,kjl->kl", u[:, i, :], inv, precision=_HI)) / u[:, i, i][:, None]
        return inv.at[:, i, :].set(value)

    return jax.lax.fori_loop(0, d, row, jnp.zeros_like(u))


def upper_inverse(u):
    """U⁻¹ for each upper-triangular factor."""
    eye = jnp.broadcast_to(jnp.eye(u.shape[-1], dtype=u.dtype), u.shape)
    return solve_triangular(u, eye, lower=False)


def unwhiten(second, inv):
    """U⁻ᵀ S U⁻¹ for each component, given U⁻¹: a whitened scatter back in the data frame."""
    return jnp.einsum("kji,kjl,klm->kim", inv, second, inv, precision=_HI)


def data_frame(layout: str, stats: GaussianStats, u) -> GaussianStats:
    """Statistics moved from each component's whitened frame to the data frame (relative to its mean)."""
    if layout == "full":
        inv = upper_inverse(u)
        first = jnp.einsum("kd,kde->ke", stats.first, inv, precision=_HI)  # Σ r yU⁻¹
        return GaussianStats(first, unwhiten(stats.second, inv))
    scale = u if u.ndim == 2 else u[:, None]
    return GaussianStats(stats.first / scale, stats.second / scale**2)


def precision_cholesky(cov):
    """Upper-triangular U with U Uᵀ = cov⁻¹, from one Cholesky and one triangular solve."""
    chol = jnp.linalg.cholesky(cov)
    eye = jnp.broadcast_to(jnp.eye(cov.shape[-1], dtype=cov.dtype), cov.shape)
    return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)
