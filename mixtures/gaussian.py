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
from mixtures.priors import GaussianPrior, check_gaussian_prior

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
            chol = _checks.symmetric_positive_definite(mats, "covariances")
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

    # -- MAP-EM ---------------------------------------------------------------

    def check_prior(self, prior, x) -> GaussianPrior:
        """Checks a :class:`~mixtures.priors.GaussianPrior` against this covariance type and D.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import GaussianPrior
          >>> mx.Gaussian("diag").check_prior(GaussianPrior(np.zeros(2), 0.01, 4.0, np.ones(3)), np.zeros((5, 2)))
          Traceback (most recent call last):
          ...
          ValueError: `prior.scale` must have shape (D,) = (2,); received shape (3,).
        """
        return check_gaussian_prior(prior, self.covariance, x.shape[1], x.dtype)

    def default_prior(self, x, n_components: int, sample_weight=None) -> GaussianPrior:
        """mclust's default prior, :meth:`~mixtures.priors.GaussianPrior.default`, for this covariance type.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> x = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]])
          >>> float(mx.Gaussian("spherical").default_prior(x, 2).scale)  # mean variance (1 + 4)/2, over K^(2/D)
          1.25
        """
        return GaussianPrior.default(x, n_components, self.covariance, sample_weight=sample_weight)

    def map_step(self, stats: GaussianStats, counts, previous: GaussianParams, prior: GaussianPrior, weights):
        """Posterior mode of the means and covariances given the shifted statistics (Fraley and Raftery, 2007).

        With Nₖ the counts and x̄ₖ the weighted means, μₖ = (Nₖ x̄ₖ + κ₀ μ₀) / (Nₖ + κ₀).
        With Sₖ = Σₙ rₙₖ (xₙ − μₖ)(xₙ − μₖ)ᵀ + κ₀ (μₖ − μ₀)(μₖ − μ₀)ᵀ at that mean:
        Σₖ = (Ψ + Sₖ) / (Nₖ + ν₀ + D + 2) ("full");
        Σ = (Ψ + Σₖ Sₖ) / (Σₖ Nₖ + K + ν₀ + D + 1), K the switched-on components ("tied");
        σ²ₖⱼ = (Ψⱼ + Sₖⱼⱼ) / (Nₖ + ν₀ + 3) ("diag");
        σ²ₖ = (Ψ + tr Sₖ) / (D (Nₖ + 1) + ν₀ + 2) ("spherical").
        ``reg_covar`` is then added as in :meth:`m_step`. Nothing is divided
        by Nₖ, so an empty component would get the prior's mode.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import GaussianPrior
          >>> g = mx.Gaussian("spherical", reg_covar=0.0)
          >>> p = g.make_params(np.zeros((1, 1)), np.ones(1))
          >>> prior = GaussianPrior(np.array([0.0]), np.array(1.0), np.array(1.0), np.array(1.0))
          >>> x = np.array([[1.0], [3.0]])
          >>> new = g.map_step(g.accumulate(p, x, np.ones((2, 1))), np.array([2.0]), p, prior, np.ones(1))
          >>> new.means.tolist(), new.covariances.round(6).tolist()  # (2·2 + 0) / 3; (1 + 2 + 8/3) / 6
          ([[1.3333333333333333]], [0.944444])
        """
        k, d = previous.means.shape
        kappa, nu = prior.shrinkage, prior.dof
        offset = (stats.first + kappa * (prior.mean[None, :] - previous.means)) / (counts + kappa)[:, None]
        means = previous.means + offset  # the shift c plus (Nₖ (x̄ₖ − c) + κ₀ (μ₀ − c)) / (Nₖ + κ₀)
        if self.covariance == "identity":
            return GaussianParams(means, previous.precisions_cholesky)
        to_prior = means - prior.mean[None, :]
        if self.covariance in ("full", "tied"):
            cross = stats.first[:, :, None] * offset[:, None, :]
            scatter = (
                stats.second
                - cross
                - jnp.swapaxes(cross, 1, 2)
                + counts[:, None, None] * offset[:, :, None] * offset[:, None, :]
                + kappa * to_prior[:, :, None] * to_prior[:, None, :]
            )
            eye = jnp.eye(d, dtype=means.dtype)
            if self.covariance == "full":
                cov = (prior.scale[None] + scatter) / (counts + nu + d + 2)[:, None, None] + self.reg_covar * eye[None]
                return GaussianParams(means, _precision_cholesky(cov))
            on = weights > 0  # switched-off components have zero counts and zero scatter
            total = jnp.sum(jnp.where(on, counts, 0.0)) + jnp.sum(on).astype(counts.dtype) + nu + d + 1
            pooled = (prior.scale + jnp.sum(scatter, axis=0)) / total + self.reg_covar * eye
            return GaussianParams(means, jnp.broadcast_to(_precision_cholesky(pooled), (k, d, d)))
        scatter = (
            stats.second - 2.0 * stats.first * offset + counts[:, None] * offset**2 + kappa * to_prior**2
        )
        if self.covariance == "diag":
            var = (prior.scale[None, :] + scatter) / (counts + nu + 3)[:, None]
        else:
            var = (prior.scale + jnp.sum(scatter, axis=-1)) / (d * (counts + 1) + nu + 2)
        return GaussianParams(means, 1.0 / jnp.sqrt(var + self.reg_covar))

    def log_prior(self, params: GaussianParams, prior: GaussianPrior, weights):
        """Log density of the normal–inverse-Wishart prior (or its analogue) without its constant.

        Per switched-on component ("full"):
        −((ν₀ + D + 2)/2) log|Σₖ| − ½ tr(Σₖ⁻¹ Ψ) − (κ₀/2)(μₖ − μ₀)ᵀ Σₖ⁻¹ (μₖ − μ₀);
        "diag" the same per feature with D = 1 and Ψⱼ; "spherical"
        −((ν₀ + D + 2)/2) log σ²ₖ − (Ψ + κ₀ ‖μₖ − μ₀‖²) / (2σ²ₖ); "identity"
        −(κ₀/2)‖μₖ − μ₀‖². "tied": Σₖ [−½ log|Σ| − (κ₀/2)(μₖ − μ₀)ᵀ Σ⁻¹ (μₖ − μ₀)]
        − ((ν₀ + D + 1)/2) log|Σ| − ½ tr(Σ⁻¹ Ψ), with Σ read from the
        component of largest weight (the one surely updated last).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import GaussianPrior
          >>> g = mx.Gaussian("spherical")
          >>> prior = GaussianPrior(np.array([0.0]), np.array(1.0), np.array(1.0), np.array(1.0))
          >>> float(g.log_prior(g.make_params(np.zeros((1, 1)), np.ones(1)), prior, np.ones(1)))  # −Ψ/2
          -0.5
        """
        kappa, nu = prior.shrinkage, prior.dof
        on = weights > 0
        d = params.means.shape[-1]
        diff = params.means - prior.mean[None, :]
        u = params.precisions_cholesky
        if self.covariance == "identity":
            per = -0.5 * kappa * jnp.sum(diff**2, axis=-1)
        elif self.covariance == "full":
            y = jnp.einsum("kd,kde->ke", diff, u, precision=_HI)
            trace = jnp.einsum("de,kdf,kef->k", prior.scale, u, u, precision=_HI)  # tr(Uᵀ Ψ U)
            per = (nu + d + 2) * self._log_det(u, d) - 0.5 * trace - 0.5 * kappa * jnp.sum(y**2, axis=-1)
        elif self.covariance == "tied":
            shared = u[jnp.argmax(weights)]
            log_det = self._log_det(shared, d)  # −½ log|Σ|
            y = jnp.dot(diff, shared, precision=_HI)
            per = log_det - 0.5 * kappa * jnp.sum(y**2, axis=-1)
            trace = jnp.einsum("de,df,ef->", prior.scale, shared, shared, precision=_HI)
            return jnp.sum(jnp.where(on, per, 0.0)) + (nu + d + 1) * log_det - 0.5 * trace
        elif self.covariance == "diag":
            per = jnp.sum((nu + 3) * jnp.log(u) - 0.5 * (prior.scale[None, :] + kappa * diff**2) * u**2, axis=-1)
        else:
            per = (nu + d + 2) * jnp.log(u) - 0.5 * (prior.scale + kappa * jnp.sum(diff**2, axis=-1)) * u**2
        return jnp.sum(jnp.where(on, per, 0.0))

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
