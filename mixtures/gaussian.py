"""Multivariate Gaussian components with full, diagonal, spherical or tied covariance."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from mixtures import _checks
from mixtures.family import Family

__all__ = ["Gaussian", "GaussianParams", "GaussianStats"]

COVARIANCE_TYPES = ("full", "diag", "spherical", "tied", "identity")
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
    """Responsibility-weighted statistics, shifted by the current means c.

    Attributes:
      first: (K, D) Σₙ rₙₖ (xₙ − cₖ).
      second: Σₙ rₙₖ (xₙ − cₖ)(xₙ − cₖ)ᵀ, (K, D, D) for "full"/"tied";
        its diagonal only, (K, D), for "diag"/"spherical".
    """

    first: jax.Array
    second: jax.Array


@dataclasses.dataclass(frozen=True)
class Gaussian(Family):
    """Multivariate normal components.

    The sufficient statistics are shifted by each component's current mean,
    which keeps float32 covariances accurate for clusters far from the origin.
    Log-densities use the precision Cholesky factor; no matrix is inverted.

    Args:
      covariance: "full" (each component its own covariance), "diag"
        (diagonal), "spherical" (a multiple of the identity), "tied" (one
        full covariance shared by all components) or "identity" (covariance
        fixed to the identity matrix: only the means are fitted; with
        ``assignment="hard"`` in :func:`mixtures.fit` this is K-means).
      reg_covar: non-negative number added to the covariance diagonal at every
        M-step, as scikit-learn's ``reg_covar``.

    Example:
      >>> import mixtures as mx
      >>> mx.Gaussian(covariance="diag")
      Gaussian(covariance='diag', reg_covar=1e-06)
    """

    covariance: str = "full"
    reg_covar: float = 1e-6

    def __post_init__(self):
        if not isinstance(self.covariance, str):
            raise TypeError(
                f"`covariance` must be one of {COVARIANCE_TYPES}; received {self.covariance!r}."
            )
        if self.covariance not in COVARIANCE_TYPES:
            raise ValueError(
                f"`covariance` must be one of {COVARIANCE_TYPES}; received {self.covariance!r}."
            )
        object.__setattr__(self, "reg_covar", _checks.non_negative_float(self.reg_covar, "reg_covar"))

    # -- parameters ---------------------------------------------------------

    def make_params(self, means, covariances=None) -> GaussianParams:
        """Builds parameters from means and covariances (checked on the host).

        Args:
          means: (K, D).
          covariances: (K, D, D) for "full", (D, D) for "tied", (K, D) for
            "diag", (K,) for "spherical" (scikit-learn's layouts); symmetric
            positive definite. None (or omitted) for "identity".

        Returns:
          GaussianParams in the dtype of ``means``.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> p = mx.Gaussian("spherical").make_params(np.zeros((2, 3)), np.array([1.0, 4.0]))
          >>> p.precisions_cholesky.round(2).tolist()
          [1.0, 0.5]
        """
        means = np.asarray(means)
        if means.ndim != 2:
            raise ValueError(f"`means` must have shape (K, D); received shape {means.shape}.")
        k, d = means.shape
        dtype = _checks.float_dtype_for(means.dtype)
        if self.covariance == "identity":
            if covariances is not None:
                raise ValueError('`covariances` must be None for covariance="identity".')
            if not np.all(np.isfinite(means)):
                raise ValueError("`means` must be finite.")
            return GaussianParams(jnp.asarray(means, dtype), jnp.ones((k,), dtype))
        cov = np.asarray(covariances, dtype=np.float64)
        expected = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[self.covariance]
        if cov.shape != expected:
            raise ValueError(
                f"`covariances` for covariance={self.covariance!r} with K={k}, D={d} must have "
                f"shape {expected}; received shape {cov.shape}."
            )
        if not np.all(np.isfinite(cov)) or not np.all(np.isfinite(means)):
            raise ValueError("`means` and `covariances` must be finite.")
        if self.covariance in ("full", "tied"):
            mats = cov.reshape(-1, d, d)
            if not np.allclose(mats, np.swapaxes(mats, -1, -2), rtol=1e-6, atol=1e-12):
                raise ValueError("`covariances` must be symmetric.")
            try:
                chol = np.linalg.cholesky(mats)
            except np.linalg.LinAlgError:
                raise ValueError("`covariances` must be positive definite.") from None
            eye = np.broadcast_to(np.eye(d), mats.shape)
            prec_chol = np.swapaxes(np.linalg.solve(chol, eye), -1, -2)
            if self.covariance == "tied":
                prec_chol = np.broadcast_to(prec_chol, (k, d, d))
        else:
            if np.any(cov <= 0):
                raise ValueError("`covariances` (variances) must be positive.")
            prec_chol = 1.0 / np.sqrt(cov)
        return GaussianParams(jnp.asarray(means, dtype), jnp.asarray(prec_chol, dtype))

    def n_features(self, params: GaussianParams) -> int:
        return params.means.shape[-1]

    def n_free_parameters(self, n_components: int, n_features: int) -> int:
        k, d = n_components, n_features
        per_covariance = {
            "full": k * d * (d + 1) // 2,
            "tied": d * (d + 1) // 2,
            "diag": k * d,
            "spherical": k,
            "identity": 0,
        }[self.covariance]
        return k * d + per_covariance

    def init_params(self, points, x) -> GaussianParams:
        k, d = points.shape
        if self.covariance == "identity":
            return GaussianParams(points, jnp.ones((k,), x.dtype))
        var = jnp.var(x, axis=0) + self.reg_covar
        var = jnp.where(var > 0, var, 1.0)
        if self.covariance == "spherical":
            prec_chol = jnp.full((k,), 1.0 / jnp.sqrt(jnp.mean(var)), dtype=x.dtype)
        elif self.covariance == "diag":
            prec_chol = jnp.broadcast_to(1.0 / jnp.sqrt(var), (k, d))
        else:
            prec_chol = jnp.broadcast_to(jnp.diag(1.0 / jnp.sqrt(var)), (k, d, d))
        return GaussianParams(points, prec_chol)

    # -- densities ----------------------------------------------------------

    def _log_det(self, u, d):
        if self.covariance in ("full", "tied"):
            return jnp.sum(jnp.log(jnp.diagonal(u, axis1=-2, axis2=-1)), axis=-1)
        if self.covariance == "diag":
            return jnp.sum(jnp.log(u), axis=-1)
        return d * jnp.log(u)

    def log_prob(self, params: GaussianParams, x: jax.Array) -> jax.Array:
        d = x.shape[-1]
        diff = x - params.means
        u = params.precisions_cholesky
        y = jnp.dot(diff, u, precision=_HI) if u.ndim == 2 else diff * u
        return -0.5 * (d * math.log(2 * math.pi) + jnp.sum(y * y)) + self._log_det(u, d)

    def log_prob_components(self, params: GaussianParams, x: jax.Array) -> jax.Array:
        d = x.shape[-1]
        diff = x[:, None, :] - params.means[None, :, :]  # (B, K, D)
        u = params.precisions_cholesky
        if u.ndim == 3:
            y = jnp.einsum("bkd,kde->bke", diff, u, precision=_HI)
        elif u.ndim == 2:
            y = diff * u[None]
        else:
            y = diff * u[None, :, None]
        maha = jnp.sum(y * y, axis=-1)
        return -0.5 * (d * math.log(2 * math.pi) + maha) + self._log_det(u, d)[None, :]

    # -- EM -----------------------------------------------------------------

    def accumulate(self, params: GaussianParams, x, resp) -> GaussianStats:
        diff = x[:, None, :] - params.means[None, :, :]  # (B, K, D)
        weighted = resp[:, :, None] * diff
        first = jnp.sum(weighted, axis=0)
        if self.covariance in ("full", "tied"):
            second = jnp.einsum("bkd,bke->kde", weighted, diff, precision=_HI)
        else:
            second = jnp.sum(weighted * diff, axis=0)
        return GaussianStats(first, second)

    def m_step(self, stats: GaussianStats, counts, previous: GaussianParams) -> GaussianParams:
        k, d = previous.means.shape
        nk = counts + 10 * jnp.finfo(counts.dtype).eps
        offset = stats.first / nk[:, None]  # new mean − shift
        means = previous.means + offset
        if self.covariance == "identity":
            return GaussianParams(means, previous.precisions_cholesky)
        if self.covariance in ("full", "tied"):
            outer = offset[:, :, None] * offset[:, None, :]
            eye = jnp.eye(d, dtype=means.dtype)
            if self.covariance == "full":
                cov = stats.second / nk[:, None, None] - outer + self.reg_covar * eye[None]
                prec_chol = _precision_cholesky(cov)
            else:
                pooled = jnp.sum(stats.second - nk[:, None, None] * outer, axis=0) / jnp.sum(nk)
                prec_chol = jnp.broadcast_to(_precision_cholesky(pooled + self.reg_covar * eye), (k, d, d))
        else:
            var = stats.second / nk[:, None] - offset**2 + self.reg_covar
            if self.covariance == "spherical":
                var = jnp.mean(var, axis=-1)
            prec_chol = 1.0 / jnp.sqrt(var)
        return GaussianParams(means, prec_chol)

    def sample(self, params: GaussianParams, key) -> jax.Array:
        eps = jax.random.normal(key, params.means.shape, params.means.dtype)
        u = params.precisions_cholesky
        if u.ndim == 2:  # x = μ + U⁻ᵀ ε has covariance U⁻ᵀ U⁻¹ = (U Uᵀ)⁻¹
            return params.means + solve_triangular(u, eps, trans="T", lower=False)
        return params.means + eps / u


def _precision_cholesky(cov):
    """Upper-triangular U with U Uᵀ = cov⁻¹, from one Cholesky and one triangular solve."""
    chol = jnp.linalg.cholesky(cov)
    eye = jnp.broadcast_to(jnp.eye(cov.shape[-1], dtype=cov.dtype), cov.shape)
    return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)
