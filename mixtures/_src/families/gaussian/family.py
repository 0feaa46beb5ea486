"""Multivariate Gaussian components under any of mclust's fourteen covariance models (and the identity)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from mixtures._src.core import checks
from mixtures._src.core import domain
from mixtures._src.core.family import Family
from mixtures._src.core.posterior import Sums
from mixtures._src.families.gaussian import fast
from mixtures._src.families.gaussian import missing
from mixtures._src.families.gaussian import models
from mixtures._src.families.gaussian import variational
from mixtures._src.families.gaussian.params import (
    GaussianParams,
    GaussianStats,
    data_frame,
    moved,
    precision_cholesky,
    upper_inverse,
    whitened,
)
from mixtures._src.families.gaussian.prior import GaussianPrior, check_gaussian_prior
from mixtures._src.core.registry import register_family

__all__ = ["Gaussian", "GaussianParams", "GaussianStats"]

COVARIANCE_TYPES = ("full", "diag", "spherical", "tied", "identity") + models.MODELS
_HI = jax.lax.Precision.HIGHEST
# The full and tied M-steps' rounding allowance (Gaussian._factor): ALLOWANCE·D·ε·tr(S)/N, added
# where a pivot of the covariance's Cholesky factorisation is below it.
ALLOWANCE = 16


@register_family
@dataclasses.dataclass(frozen=True)
class Gaussian(domain.SquaredRealData, Family):
    """Multivariate normal components.

    The statistics are taken in each component's whitened frame (residuals
    from its current mean, multiplied by its precision Cholesky factor), which
    keeps float32 covariances accurate for clusters far from the origin and of
    very different scales; the E-step's whitened residuals are reused by the
    accumulation. Log-densities use the precision Cholesky factor; no matrix
    is inverted.

    Args:
      covariance: one of mclust's fourteen models, Σₖ = λₖ Dₖ Aₖ Dₖᵀ with
        the volume λₖ, shape Aₖ and orientation Dₖ each Equal across
        components, Variable, or the Identity, in that order: "EII", "VII",
        "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV",
        "VEV", "EVV", "VVV" (see ``docs/models.md``); or scikit-learn's
        names for four of them, "full" (VVV: each component its own
        covariance), "diag" (VVI), "spherical" (VII) and "tied" (EEE: one
        covariance shared by all components); or "identity" (covariance
        fixed to the identity matrix: only the means are fitted; with
        ``assignment="hard"`` in :func:`mixtures.fit` this is K-means). The
        M-steps of VEI, VEE, EVE, VVE and VEV are iterative (see
        :mod:`mixtures._src.families.gaussian.models`).
      reg_covar: non-negative number added to the covariance diagonal at every
        M-step, as scikit-learn's ``reg_covar`` (for the models other than
        the four scikit-learn names, added to the scatter's diagonal before
        the model's constraints are imposed, so that the result keeps the
        model's form).

    Example:
      >>> import mixtures as mx
      >>> mx.Gaussian(covariance="diag")
      Gaussian(covariance='diag', reg_covar=1e-06)
    """

    covariance: str = dataclasses.field(
        default="full",
        metadata={"help": "covariance model: one of mclust's EII ... VVV, or full, diag, spherical, tied or identity (default full)"},
    )
    reg_covar: float = dataclasses.field(
        default=1e-6, metadata={"help": "added to the covariance diagonals (default 1e-6)"}
    )

    def __post_init__(self):
        if not isinstance(self.covariance, str):
            raise TypeError(
                f"`covariance` must be one of {COVARIANCE_TYPES}; received {self.covariance!r}."
            )
        if self.covariance not in COVARIANCE_TYPES:
            raise ValueError(
                f"`covariance` must be one of {COVARIANCE_TYPES}; received {self.covariance!r}."
            )
        object.__setattr__(self, "reg_covar", checks.non_negative_float(self.reg_covar, "reg_covar"))

    MODELS = models.MODELS

    @property
    def model(self) -> str:
        """The mclust name of the covariance model ("identity" for the identity).

        Example:
          >>> import mixtures as mx
          >>> mx.Gaussian("full").model, mx.Gaussian("VEV").model
          ('VVV', 'VEV')
        """
        return models.ALIASES.get(self.covariance, self.covariance)

    @property
    def layout(self) -> str:
        """How the precision factors are stored: "full" (K, D, D), "diag" (K, D) or "spherical" (K,)."""
        return models.layout(self.model)

    @property
    def _shared(self) -> bool:
        """One covariance for every component (EII, EEI, EEE): a prior on it counts once."""
        return self.model in ("EII", "EEI", "EEE")

    # -- parameters ---------------------------------------------------------

    def make_params(self, means, covariances=None) -> GaussianParams:
        """Builds parameters from means and covariances (checked on the host).

        Args:
          means: (K, D).
          covariances: (K, D, D) for "full", (D, D) for "tied", (K, D) for
            "diag", (K,) for "spherical" (scikit-learn's layouts); symmetric
            positive definite. None (or omitted) for "identity". For
            mclust's names, one covariance per component in the model's
            layout ((K,) for EII and VII, (K, D) for EEI, VEI, EVI and VVI,
            (K, D, D) for the others), of the model's form (checked to
            1e-6 relative, 1e-3 for float32 means); the three models with
            one shared covariance also take it alone: a scalar (EII), (D,)
            (EEI) or (D, D) (EEE).

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
        dtype = checks.float_dtype_for(means.dtype)
        if self.covariance == "identity":
            if covariances is not None:
                raise ValueError('`covariances` must be None for covariance="identity".')
            if not np.all(np.isfinite(means)):
                raise ValueError("`means` must be finite.")
            return GaussianParams(jnp.asarray(means, dtype), jnp.ones((k,), dtype))
        cov = np.asarray(covariances, dtype=np.float64)
        per_component = {"full": (k, d, d), "diag": (k, d), "spherical": (k,)}[self.layout]
        one = {"full": (d, d), "diag": (d,), "spherical": ()}[self.layout]
        if self.covariance == "tied":
            expected = (one,)
        elif self._shared:
            expected = (per_component, one)
        else:
            expected = (per_component,)
        if cov.shape not in expected:
            raise ValueError(
                f"`covariances` for covariance={self.covariance!r} with K={k}, D={d} must have "
                f"shape {' or '.join(map(str, expected))}; received shape {cov.shape}."
            )
        if not np.all(np.isfinite(cov)) or not np.all(np.isfinite(means)):
            raise ValueError("`means` and `covariances` must be finite.")
        cov = np.broadcast_to(cov, per_component)
        if self.layout == "full":
            chol = checks.symmetric_positive_definite(cov, "covariances")
            eye = np.broadcast_to(np.eye(d), cov.shape)
            prec_chol = np.swapaxes(np.linalg.solve(chol, eye), -1, -2)
        else:
            if np.any(cov <= 0):
                raise ValueError("`covariances` (variances) must be positive.")
            prec_chol = 1.0 / np.sqrt(cov)
        if self.covariance != self.model:  # scikit-learn's names: any covariances of the layout
            return GaussianParams(jnp.asarray(means, dtype), jnp.asarray(prec_chol, dtype))
        rtol = 1e-6 if np.dtype(dtype) == np.float64 else 1e-3
        models.check_form(self.model, cov, rtol)
        return GaussianParams(jnp.asarray(means, dtype), jnp.asarray(prec_chol, dtype))

    def check_params(self, params: GaussianParams) -> None:
        """Precision factors as :meth:`make_params` builds them: upper triangular, positive diagonal (ones for "identity").

        For the constrained models (EII, EEI, VEI, EVI, EEE, VEE, EVE, VVE,
        EEV, VEV, EVV), the covariances must also have the model's form, as
        :meth:`make_params` asks.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> mx.Gaussian("diag").check_params(mx.GaussianParams(np.zeros((1, 2)), np.array([[1.0, -1.0]])))
          Traceback (most recent call last):
          ...
          ValueError: `init.params.precisions_cholesky` (covariance='diag') must have a positive diagonal (positive-definite covariances); component 0 has [1.0, -1.0]. Build warm starts with Gaussian.make_params(means, covariances).
        """
        u = np.asarray(params.precisions_cholesky)
        where = f"`init.params.precisions_cholesky` (covariance={self.covariance!r})"
        if self.covariance == "identity":
            if not np.all(u == 1):
                raise ValueError(f"{where} must be all ones: the covariance is fixed to the identity.")
            return
        if u.ndim == 3:
            diagonal = np.diagonal(u, axis1=-2, axis2=-1)
            scale = np.max(np.abs(u), axis=(-2, -1), keepdims=True)
            below = np.abs(np.tril(u, k=-1)) > 1e-6 * scale
            if np.any(below):
                k = int(np.argwhere(below)[0][0])
                raise ValueError(
                    f"{where} must hold upper-triangular factors U (precision = U Uᵀ), as "
                    f"Gaussian.make_params builds them; component {k} has entries below the diagonal."
                )
        else:
            diagonal = u.reshape(u.shape[0], -1)
        if np.any(diagonal <= 0):
            k = int(np.argwhere(diagonal <= 0)[0][0])
            raise ValueError(
                f"{where} must have a positive diagonal (positive-definite covariances); component {k} "
                f"has {diagonal[k].tolist()}. Build warm starts with Gaussian.make_params(means, covariances)."
            )
        if self.covariance == self.model and self.model not in ("VVV", "VVI", "VII"):
            # The covariances the factors give, against the model's constraints. Through a full U
            # their small eigenvalues lose about ε cond(Σₖ), which the tolerance allows.
            covariances = np.asarray(params.covariances, np.float64)
            eps = np.finfo(np.float64 if u.dtype == np.float64 else np.float32).eps
            rtol = 1e-6 if u.dtype == np.float64 else 1e-3
            if u.ndim == 3:
                rtol += 64 * eps * float(np.max(np.linalg.cond(covariances)))
            models.check_form(self.model, covariances, rtol, name=f"The covariances of {where}")

    def n_features(self, params: GaussianParams) -> int:
        return params.means.shape[-1]

    def n_free_parameters(self, n_components: int, n_features: int) -> int:
        return n_components * n_features + models.n_covariance_parameters(self.model, n_components, n_features)

    def init_params(self, points, x) -> GaussianParams:
        k, d = points.shape
        if self.covariance == "identity":
            return GaussianParams(points, jnp.ones((k,), x.dtype))
        var = jnp.var(x, axis=0) + self.reg_covar
        var = jnp.where(var > 0, var, 1.0)
        if self.layout == "spherical":
            prec_chol = jnp.full((k,), 1.0 / jnp.sqrt(jnp.mean(var)), dtype=x.dtype)
        elif self.layout == "diag":
            prec_chol = jnp.broadcast_to(1.0 / jnp.sqrt(var), (k, d))
        else:
            prec_chol = jnp.broadcast_to(jnp.diag(1.0 / jnp.sqrt(var)), (k, d, d))
        return GaussianParams(points, prec_chol)

    # -- densities ----------------------------------------------------------

    def log_det(self, u, d):
        """log |Uₖ| per component, (K,) (or a scalar for one component's U)."""
        if self.layout == "full":
            return jnp.sum(jnp.log(jnp.diagonal(u, axis1=-2, axis2=-1)), axis=-1)
        if self.layout == "diag":
            return jnp.sum(jnp.log(u), axis=-1)
        return d * jnp.log(u)

    def log_prob(self, params: GaussianParams, x: jax.Array) -> jax.Array:
        d = x.shape[-1]
        diff = x - params.means
        u = params.precisions_cholesky
        y = jnp.dot(diff, u, precision=_HI) if u.ndim == 2 else diff * u
        return -0.5 * (d * math.log(2 * math.pi) + jnp.sum(y * y)) + self.log_det(u, d)

    def log_prob_components(self, params: GaussianParams, x: jax.Array) -> jax.Array:
        return fast.log_probs_and_residuals(self, params, x)[0]

    def fast_sums(self, params: GaussianParams, x, weights, posterior, *, chunk_size: int, axes, mode: str):
        """The E-step pass with whitened residuals shared by densities and statistics, or as two matrix products.

        See :mod:`mixtures._src.families.gaussian.fast`: the products are
        taken (float64 only) where the rounding guard allows and the pass is
        large enough to repay their compilation.
        """
        return fast.sums(self, params, x, weights, posterior, chunk_size=chunk_size, axes=axes, mode=mode)

    # -- rows with missing entries -------------------------------------------

    handles_missing = True

    def log_prob_observed(self, params: GaussianParams, x, max_missing: int):
        """The marginal density of each row's observed entries (see :mod:`mixtures._src.families.gaussian.missing`)."""
        log_det = self.log_det(params.precisions_cholesky, x.shape[-1])
        if self.layout != "full":
            return missing.complete(self.layout, log_det, params, x, 1).log_probs
        return missing.by_block(lambda m: missing.complete(self.layout, log_det, params, x, m).log_probs, x, max_missing)

    def observed_sums(self, params: GaussianParams, x, weights, index, posterior, max_missing: int) -> Sums:
        """A block's sums with the conditional moments computed once, at the block's own number of missing entries.

        The rows' missing entries are factorised at the smallest size of
        :func:`~mixtures._src.families.gaussian.missing.sizes` that covers the
        block (one compiled branch per size); the fitting functions sort the
        rows by their number of missing entries, so most blocks need far
        fewer than the data's most.
        """
        log_det = self.log_det(params.precisions_cholesky, x.shape[-1])
        observed = ~jnp.isnan(x)

        def block(m):
            done = missing.complete(self.layout, log_det, params, x, m)
            resp, ll_sum = posterior.weighted(done.log_probs, index, weights)
            return Sums(jnp.sum(resp, axis=0), missing.stats(self.layout, params, resp, done, observed), ll_sum)

        if self.layout != "full":
            return block(1)
        return missing.by_block(block, x, max_missing, weights)

    def accumulate_observed(self, params: GaussianParams, x, resp, max_missing: int) -> GaussianStats:
        """Whitened statistics completed by the missing entries' conditional means and covariances."""
        done = missing.complete(self.layout, self.log_det(params.precisions_cholesky, x.shape[-1]), params, x, max_missing)
        return missing.stats(self.layout, params, resp, done, ~jnp.isnan(x))

    def conditional_rows(self, params: GaussianParams, x, max_missing: int):
        """Per component, each row's observed-entry log-density, its conditional mean, and a conditional draw.

        Returns ``(log_probs, means, draw)``: (B, K) log p(xₒ | θₖ); (K, B, D)
        E[x | xₒ, k] (the observed entries as given); ``draw(noise)`` maps
        (K, B, M) standard normal noise to (K, B, D) deviations from those
        means distributed as x − E[x | xₒ, k] given xₒ and k.
        """
        done = missing.complete(self.layout, self.log_det(params.precisions_cholesky, x.shape[-1]), params, x, max_missing)
        means, draw = missing.conditional_moments(self.layout, params, done, x, max_missing)
        return done.log_probs, means, draw

    # -- EM -----------------------------------------------------------------

    def accumulate(self, params: GaussianParams, x, resp) -> GaussianStats:
        return fast.stats_from_residuals(self.layout, resp, whitened(params, x))

    def m_step(self, stats: GaussianStats, counts, previous: GaussianParams) -> GaussianParams:
        if self.model not in ("VVV", "EEE", "VVI", "VII", "identity"):
            return self._constrained_m_step(stats, counts, previous)
        k, d = previous.means.shape
        nk = counts + 10 * jnp.finfo(counts.dtype).eps
        o = stats.first / nk[:, None]  # the mean's move, whitened: (new mean − μ) U
        u = previous.precisions_cholesky
        if self.layout != "full":
            scale = u if u.ndim == 2 else u[:, None]
            means = previous.means + o / scale
            if self.model == "identity":
                return GaussianParams(means, u)
            var = (stats.second / nk[:, None] - o**2) / scale**2 + self.reg_covar
            if self.layout == "spherical":
                var = jnp.mean(var, axis=-1)
            return GaussianParams(means, 1.0 / jnp.sqrt(var))
        if self.model == "EEE":
            # Pooled in the whitened frame of the component with the largest count, as "full"
            # below. Every component normally holds that same U; one whose update the engine
            # refused may hold an older one, and its statistics are carried over by U_k⁻¹ U.
            inv = upper_inverse(u)
            offset = jnp.einsum("kd,kde->ke", o, inv, precision=_HI)  # o U_k⁻¹
            ref = u[jnp.argmax(counts)]
            same = jnp.all(u == ref[None], axis=(1, 2))
            carry = jnp.where(same[:, None, None], jnp.eye(d, dtype=u.dtype)[None], jnp.einsum("kij,jl->kil", inv, ref, precision=_HI))
            scatter = stats.second - nk[:, None, None] * o[:, :, None] * o[:, None, :]
            pooled = jnp.einsum("kji,kjl,klm->im", carry, scatter, carry, precision=_HI) / jnp.sum(nk)
            size = jnp.trace(pooled) + jnp.sum(nk * jnp.sum(o * o, axis=-1)) / jnp.sum(nk)
            pooled = pooled + self.reg_covar * jnp.einsum("ji,jl->il", ref, ref, precision=_HI)
            new_u = jnp.dot(ref, self._factor(pooled, size), precision=_HI)
            return GaussianParams(previous.means + offset, jnp.broadcast_to(new_u, (k, d, d)))
        # Full, in the whitened frame: C = S/N − ooᵀ + reg_covar·UᵀU is the new covariance
        # (plus reg_covar·I) seen through U; if C = L Lᵀ the new precision factor is
        # U' = U L⁻ᵀ, and the mean moves by o U⁻¹ = (o L⁻ᵀ) U'⁻¹. Every solve depends on
        # the one before it (see shared/JAX-CPU-NOTES.md on concurrent batched solves).
        second = stats.second / nk[:, None, None]
        cov = second - o[:, :, None] * o[:, None, :]
        cov = cov + self.reg_covar * jnp.einsum("kji,kjl->kil", u, u, precision=_HI)
        inv_lt = self._factor(cov, jnp.trace(second, axis1=-2, axis2=-1))  # L⁻ᵀ, upper triangular
        new_u = jnp.einsum("kij,kjl->kil", u, inv_lt, precision=_HI)
        through = jnp.einsum("kd,kde->ke", o, inv_lt, precision=_HI)  # o L⁻ᵀ
        offset = solve_triangular(new_u, through[:, :, None], trans="T", lower=False)[:, :, 0]
        return GaussianParams(previous.means + offset, new_u)

    def _constrained_m_step(self, stats: GaussianStats, counts, previous: GaussianParams) -> GaussianParams:
        """The M-step of the models other than VVV, EEE, VVI and VII, in the data frame (see :mod:`.models`).

        The statistics are moved out of each component's whitened frame
        (relative to its previous mean), giving its new mean and its scatter
        Wₖ about it; the model's covariances are fitted to
        Wₖ + Nₖ·reg_covar·I, so that they keep the model's form.

        Wₖ formed in the data frame is rounded by about ε·tr(Wₖ) in every
        direction. Where the data leave a direction (nearly) empty, a
        collinear column say, that rounding, not the data, would set its
        variance, differently at every iteration, and the log-likelihood
        would swing (by 0.1 per row, measured in float32). So, with
        reg_covar > 0 and as :meth:`_factor` does for "full" and "tied",
        a component whose smallest eigenvalue of Wₖ is below
        ``ALLOWANCE``·D·ε·tr(Wₖ) gets that much added to its diagonal;
        well-resolved scatters are left as they are.
        """
        eps = jnp.finfo(counts.dtype).eps
        nk = counts + 10 * eps
        frame = data_frame(self.layout, stats, previous.precisions_cholesky)
        o = frame.first / nk[:, None]  # the mean's move
        if self.layout == "full":
            d = o.shape[-1]
            eye = jnp.eye(d, dtype=o.dtype)
            scatter = frame.second - nk[:, None, None] * o[:, :, None] * o[:, None, :] + (nk * self.reg_covar)[:, None, None] * eye[None]
            if self.reg_covar > 0:
                allowance = ALLOWANCE * d * eps * jnp.trace(scatter, axis1=-2, axis2=-1)
                needed = ~(jnp.linalg.eigvalsh(scatter)[:, 0] >= allowance)
                scatter = scatter + jnp.where(needed, allowance, 0.0)[:, None, None] * eye[None]
        else:
            scatter = frame.second - nk[:, None] * o**2 + (nk * self.reg_covar)[:, None]
        return self._fitted(previous.means + o, scatter, nk, previous, counts >= 10 * eps)

    def _fitted(self, means, scatter, counts, previous: GaussianParams, on) -> GaussianParams:
        """Parameters with the model's covariances for the scatter matrices (or diagonals) and counts."""
        cov = models.constrained_covariances(self.model, scatter, counts, previous.covariances, on)
        if self.layout == "full":
            return GaussianParams(means, precision_cholesky(cov))
        return GaussianParams(means, 1.0 / jnp.sqrt(cov))

    def _factor(self, cov, size):
        """``precision_cholesky(cov)`` of a covariance formed in a whitened frame, with a rounding allowance where needed.

        ``size`` is tr(S)/N of the frame's second moments (one per component,
        or a scalar). The covariance S/N − ooᵀ + reg_covar·UᵀU formed there is
        rounded by about ε·tr(S)/N in every direction (up to 16·ε·tr(S)/N
        measured on float32 sums of 2000 rows). Where the frame does not
        resolve a direction (data on a plane in float32, a first step from
        the initial or a warm start's frame, a component shrinking onto
        duplicated rows), rounding can leave that direction a variance below
        reg_covar, a covariance sharper than any later, better-resolved
        M-step gives, and the log-likelihood then falls; or the
        factorisation fails where float64's succeeds (a collapse float64 does
        not report). So where a pivot of the factorisation (a conditional
        variance) is below ``ALLOWANCE``·D·ε·tr(S)/N, or it failed,
        the covariance is factorised again with that much added to its
        diagonal; later steps, in frames that resolve the direction, need no
        allowance and remove it, so the log-likelihood rises. A covariance
        whose every direction is resolved is factorised as it is: fits of
        well-posed data do not change, in either dtype. Nothing is added
        with reg_covar = 0 (a singular covariance is to be refused, not
        regularised by rounding).
        """
        inv_lt = precision_cholesky(cov)
        if self.reg_covar == 0:
            return inv_lt
        d = cov.shape[-1]
        allowance = ALLOWANCE * d * jnp.finfo(cov.dtype).eps * size
        inverse_pivots = jnp.diagonal(inv_lt, axis1=-2, axis2=-1)  # 1/√(pivot) of each step of the factorisation
        pivots = 1.0 / jnp.max(inverse_pivots * inverse_pivots, axis=-1)
        needed = ~(pivots >= allowance)  # NaN from a failed factorisation too
        eye = jnp.broadcast_to(jnp.eye(d, dtype=cov.dtype), cov.shape)

        def again():
            allowed = precision_cholesky(cov + allowance[..., None, None] * eye)
            return jnp.where(needed[..., None, None], allowed, inv_lt)

        # The second factorisation only when a component needs it (under vmap, a cond runs both sides).
        return jax.lax.cond(jnp.any(needed), again, lambda: inv_lt)

    def transport_stats(self, stats: GaussianStats, counts, old: GaussianParams, new: GaussianParams) -> GaussianStats:
        """Statistics taken in the whitened frames of ``old`` moved into those of ``new``, exactly.

        A row whitened by the old parameters, y = (x − μ) U, is whitened by
        the new ones as y' = y A + c, with A = U⁻¹ U' (one triangular solve;
        upper triangular) and c = (μ − μ') U', per component. Hence
        first' = first A + N c and
        second' = Aᵀ second A + (first A)ᵀ c + cᵀ (first A) + N cᵀ c for
        "full" and "tied"; for the diagonal types A is the diagonal
        a = U' / U and second' = a² second + 2 c (first a) + N c².

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("full")
          >>> old = g.make_params(np.zeros((1, 2)), np.eye(2)[None])
          >>> new = g.make_params(np.ones((1, 2)), np.array([[[2.0, 0.3], [0.3, 1.0]]]))
          >>> x, r = np.array([[0.5, -1.0], [2.0, 1.5], [1.0, 0.0]]), np.ones((3, 1))
          >>> moved = g.transport_stats(g.accumulate(old, x, r), np.array([3.0]), old, new)
          >>> bool(np.allclose(moved.second, g.accumulate(new, x, r).second))
          True
        """
        u_old, u_new = old.precisions_cholesky, new.precisions_cholesky
        shift = old.means - new.means
        if u_old.ndim == 3:
            a = solve_triangular(u_old, u_new, lower=False)  # U⁻¹ U'
            return moved(stats, counts, a, jnp.einsum("kd,kde->ke", shift, u_new, precision=_HI))
        scale_old = u_old if u_old.ndim == 2 else u_old[:, None]
        scale_new = u_new if u_new.ndim == 2 else u_new[:, None]
        return moved(stats, counts, scale_new / scale_old, shift * scale_new)

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

        mclust's other models: EEI and EII have one prior on their one
        covariance, as "tied": σ²ⱼ = (Ψⱼ + Σₖ Sₖⱼⱼ) / (Σₖ Nₖ + K + ν₀ + 2) and
        σ² = (Ψ + Σₖ tr Sₖ) / (D (Σₖ Nₖ + K) + ν₀ + 2). The others have one
        prior per component, as "full" and "diag", and their covariances
        maximise Σₖ [−(ñₖ/2) log|Σₖ| − ½ tr(Σₖ⁻¹ W̃ₖ)] under the model's
        constraints, with W̃ₖ = Ψ + Sₖ and ñₖ = Nₖ + ν₀ + D + 2 (the full
        layouts) or ñₖ = Nₖ + ν₀ + 3 (VEI, EVI): the M-step of
        :mod:`~mixtures._src.families.gaussian.models` with these in place of
        the scatter and counts (``reg_covar`` added to W̃ₖ/ñₖ's diagonal).

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
        model = self.model
        nu = prior.dof
        means, scatter = self.posterior_scatter(stats, counts, previous, prior)
        if model == "identity":
            return GaussianParams(means, previous.precisions_cholesky)
        on = weights > 0  # switched-off components have zero counts and zero scatter
        n_on = jnp.sum(on).astype(counts.dtype)
        total = jnp.sum(jnp.where(on, counts, 0.0))
        if self.layout == "full":
            eye = jnp.eye(d, dtype=means.dtype)
            if model == "VVV":
                cov = (prior.scale[None] + scatter) / (counts + nu + d + 2)[:, None, None] + self.reg_covar * eye[None]
                return GaussianParams(means, precision_cholesky(cov))
            if model == "EEE":
                pooled = (prior.scale + jnp.sum(jnp.where(on[:, None, None], scatter, 0.0), axis=0)) / (
                    total + n_on + nu + d + 1
                ) + self.reg_covar * eye
                return GaussianParams(means, jnp.broadcast_to(precision_cholesky(pooled), (k, d, d)))
            shifted = counts + nu + d + 2
            scatter = prior.scale[None] + scatter + (shifted * self.reg_covar)[:, None, None] * eye[None]
            return self._fitted(means, scatter, shifted, previous, on)
        if model == "VVI":
            var = (prior.scale[None, :] + scatter) / (counts + nu + 3)[:, None]
        elif model == "VII":
            var = (prior.scale + jnp.sum(scatter, axis=-1)) / (d * (counts + 1) + nu + 2)
        elif model == "EEI":
            pooled = (prior.scale + jnp.sum(jnp.where(on[:, None], scatter, 0.0), axis=0)) / (total + n_on + nu + 2)
            var = jnp.broadcast_to(pooled, (k, d))
        elif model == "EII":
            pooled = (prior.scale + jnp.sum(jnp.where(on[:, None], scatter, 0.0))) / (d * (total + n_on) + nu + 2)
            var = jnp.broadcast_to(pooled, (k,))
        else:
            shifted = counts + nu + 3
            scatter = prior.scale[None, :] + scatter + (shifted * self.reg_covar)[:, None]
            return self._fitted(means, scatter, shifted, previous, on)
        return GaussianParams(means, 1.0 / jnp.sqrt(var + self.reg_covar))

    def posterior_scatter(self, stats: GaussianStats, counts, previous: GaussianParams, prior: GaussianPrior):
        """The posterior means and the scatter about them, prior term included.

        μₖ = (Nₖ x̄ₖ + κ₀ μ₀) / (Nₖ + κ₀) and
        Sₖ = Σₙ rₙₖ (xₙ − μₖ)(xₙ − μₖ)ᵀ + κ₀ (μₖ − μ₀)(μₖ − μ₀)ᵀ
        (= Nₖ Cₖ + κ₀ Nₖ / (κ₀ + Nₖ) (x̄ₖ − μ₀)(x̄ₖ − μ₀)ᵀ, Cₖ the weighted
        covariance), from statistics accumulated under ``previous``. The MAP
        step and the variational posterior both start from these.

        Returns:
          ``(means, scatter)``: (K, D), and (K, D, D) for the full layout or
          (K, D) (the diagonal) otherwise; None for "identity".
        """
        stats = data_frame(self.layout, stats, previous.precisions_cholesky)
        kappa = prior.shrinkage
        offset = (stats.first + kappa * (prior.mean[None, :] - previous.means)) / (counts + kappa)[:, None]
        means = previous.means + offset  # the shift c plus (Nₖ (x̄ₖ − c) + κ₀ (μ₀ − c)) / (Nₖ + κ₀)
        if self.model == "identity":
            return means, None
        to_prior = means - prior.mean[None, :]
        if self.layout == "full":
            cross = stats.first[:, :, None] * offset[:, None, :]
            scatter = (
                stats.second
                - cross
                - jnp.swapaxes(cross, 1, 2)
                + counts[:, None, None] * offset[:, :, None] * offset[:, None, :]
                + kappa * to_prior[:, :, None] * to_prior[:, None, :]
            )
        else:
            scatter = stats.second - 2.0 * stats.first * offset + counts[:, None] * offset**2 + kappa * to_prior**2
        return means, scatter

    def log_prior(self, params: GaussianParams, prior: GaussianPrior, weights):
        """Log density of the normal–inverse-Wishart prior (or its analogue) without its constant.

        Per switched-on component ("full", and every model with a full
        layout other than EEE):
        −((ν₀ + D + 2)/2) log|Σₖ| − ½ tr(Σₖ⁻¹ Ψ) − (κ₀/2)(μₖ − μ₀)ᵀ Σₖ⁻¹ (μₖ − μ₀);
        "diag" (and VEI, EVI) the same per feature with D = 1 and Ψⱼ; "spherical"
        −((ν₀ + D + 2)/2) log σ²ₖ − (Ψ + κ₀ ‖μₖ − μ₀‖²) / (2σ²ₖ); "identity"
        −(κ₀/2)‖μₖ − μ₀‖². "tied": Σₖ [−½ log|Σ| − (κ₀/2)(μₖ − μ₀)ᵀ Σ⁻¹ (μₖ − μ₀)]
        − ((ν₀ + D + 1)/2) log|Σ| − ½ tr(Σ⁻¹ Ψ), with Σ read from the
        component of largest weight (the one surely updated last); EEI and EII
        likewise, with the one inverse-gamma prior per feature (EEI) or on
        the one variance (EII) counted once.

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
        model = self.model
        if model == "identity":
            per = -0.5 * kappa * jnp.sum(diff**2, axis=-1)
        elif model in ("EEE", "EEI", "EII"):
            shared = u[jnp.argmax(weights)]
            if model == "EEE":
                log_det = self.log_det(shared, d)  # −½ log|Σ|
                y = jnp.dot(diff, shared, precision=_HI)
                per = log_det - 0.5 * kappa * jnp.sum(y**2, axis=-1)
                once = (nu + d + 1) * log_det - 0.5 * jnp.einsum("de,df,ef->", prior.scale, shared, shared, precision=_HI)
            else:
                scale = jnp.broadcast_to(shared, (d,))  # the inverse standard deviations
                per = jnp.sum(jnp.log(scale)) - 0.5 * kappa * jnp.sum((diff * scale[None, :]) ** 2, axis=-1)
                if model == "EEI":
                    once = jnp.sum((nu + 2) * jnp.log(scale) - 0.5 * prior.scale * scale**2)
                else:
                    once = (nu + 2) * jnp.log(shared) - 0.5 * prior.scale * shared**2
            return jnp.sum(jnp.where(on, per, 0.0)) + once
        elif self.layout == "full":
            y = jnp.einsum("kd,kde->ke", diff, u, precision=_HI)
            trace = jnp.einsum("de,kdf,kef->k", prior.scale, u, u, precision=_HI)  # tr(Uᵀ Ψ U)
            per = (nu + d + 2) * self.log_det(u, d) - 0.5 * trace - 0.5 * kappa * jnp.sum(y**2, axis=-1)
        elif self.layout == "diag":
            per = jnp.sum((nu + 3) * jnp.log(u) - 0.5 * (prior.scale[None, :] + kappa * diff**2) * u**2, axis=-1)
        else:
            per = (nu + d + 2) * jnp.log(u) - 0.5 * (prior.scale + kappa * jnp.sum(diff**2, axis=-1)) * u**2
        return jnp.sum(jnp.where(on, per, 0.0))

    # -- variational Bayes (mixtures._src.families.gaussian.variational) ---------------

    @property
    def conjugate(self) -> bool:
        """Whether this covariance model has a conjugate posterior: VVV, EEE, VVI, EEI, VII, EII and "identity"."""
        return self.model in variational.MODELS

    def default_variational_prior(self, x, n_components: int, sample_weight=None) -> GaussianPrior:
        """scikit-learn's ``BayesianGaussianMixture`` defaults, in :class:`~mixtures.priors.GaussianPrior`'s terms.

        μ₀ the data's mean, κ₀ = 1, and for "full": ν₀ = D, Ψ = the data's
        covariance (divided by Σw − 1); "diag": ν₀ = D, Ψ the variances;
        "spherical": ν₀ = D², Ψ = D × the mean variance (scikit-learn's
        prior is per feature). A model shared by all components counts
        the prior once per component, as scikit-learn's "tied": ν₀ and Ψ
        times K. "identity": only μ₀ and κ₀ are used. Where the data's
        covariance is singular (fewer rows than features, a constant
        feature), ``reg_covar`` (at least 10⁻⁶ of the mean variance, or
        10⁻⁶) is added to its diagonal, so the prior stays proper.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> x = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]])
          >>> p = mx.Gaussian("spherical").default_variational_prior(x, 3)
          >>> float(p.dof), round(float(p.scale), 6)  # D², D × (4/3 + 16/3)/2
          (4.0, 6.666667)
        """
        d = np.shape(x)[1]
        mean, cov = variational.data_moments(x, sample_weight, self.reg_covar)
        var = np.diagonal(cov).copy()
        if self.layout == "full":
            dof, scale = float(d), cov
        elif self.layout == "diag":
            dof, scale = float(d), var
        else:
            dof, scale = float(d * d), d * float(np.mean(var))
        if self.model in variational.SHARED:
            dof, scale = n_components * dof, n_components * scale
        if self.model == "identity":
            dof, scale = float(d), 1.0
        dtype = checks.float_dtype_for(np.asarray(x).dtype)
        as_array = lambda a: jnp.asarray(a, dtype)  # noqa: E731
        return GaussianPrior(as_array(mean), as_array(1.0), as_array(dof), as_array(scale))

    def posterior_update(self, stats: GaussianStats, counts, frame: GaussianParams, prior: GaussianPrior):
        """The normal–Wishart (or normal–gamma) posterior of every component; see the module above.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import GaussianPrior
          >>> g = mx.Gaussian("spherical", reg_covar=0.0)
          >>> p = g.make_params(np.zeros((1, 1)), np.ones(1))
          >>> x = np.array([[1.0], [3.0]])
          >>> prior = GaussianPrior(np.array([0.0]), np.array(1.0), np.array(1.0), np.array(1.0))
          >>> post = g.posterior_update(g.accumulate(p, x, np.ones((2, 1))), np.array([2.0]), p, prior)
          >>> round(float(post.mean[0, 0]), 4), float(post.dof[0]), round(float(post.scale[0]), 4)  # Ψ = 1 + 2 + 8/3
          (1.3333, 3.0, 5.6667)
        """
        return variational.posterior_update(self, stats, counts, frame, prior)

    def expected_params(self, posterior: GaussianPrior):
        return variational.expected_params(self, posterior)

    def posterior_kl(self, posterior: GaussianPrior, prior: GaussianPrior):
        return variational.posterior_kl(self, posterior, prior)

    def posterior_mean(self, posterior: GaussianPrior) -> GaussianParams:
        """The posterior means mₖ and covariances E_q[Λₖ]⁻¹ = Ψₖ / νₖ (scikit-learn's ``covariances_``)."""
        return variational.expected_params(self, posterior)[0]

    def predictive_log_prob(self, posterior: GaussianPrior, x):
        return variational.predictive_log_prob(self, posterior, x)

    def sample(self, params: GaussianParams, key) -> jax.Array:
        eps = jax.random.normal(key, params.means.shape, params.means.dtype)
        u = params.precisions_cholesky
        if u.ndim == 2:  # x = μ + U⁻ᵀ ε has covariance U⁻ᵀ U⁻¹ = (U Uᵀ)⁻¹
            return params.means + solve_triangular(u, eps, trans="T", lower=False)
        return params.means + eps / u

    # -- describing itself to the front ends ------------------------------------------------

    def label(self) -> str:
        """"Gaussian (full)", "Gaussian (diag)", ...: the class name and the covariance type."""
        return f"Gaussian ({self.covariance})"

    def marginal(self, params: GaussianParams, columns) -> tuple[Gaussian, GaussianParams]:
        """A Gaussian("full") with the chosen entries of the means and blocks of the covariances (host-side).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("diag")
          >>> family, p = g.marginal(g.make_params(np.array([[0.0, 1.0, 2.0]]), np.array([[1.0, 4.0, 9.0]])), (2, 0))
          >>> family.covariance, p.means.tolist(), p.covariances.round(6).tolist()
          ('full', [[2.0, 0.0]], [[[9.0, 0.0], [0.0, 1.0]]])
        """
        means = np.asarray(params.means)
        covariances = _full_covariances(params)
        chosen = np.asarray(list(columns), dtype=np.intp)
        full = Gaussian("full", reg_covar=self.reg_covar)
        return full, full.make_params(means[:, chosen], covariances[:, chosen[:, None], chosen[None, :]])

    def condition(self, params: GaussianParams, observed, values) -> tuple[Gaussian, GaussianParams]:
        """Each component's conditional over the other columns given ``values`` at ``observed`` (host, float64).

        Mean μₘ + Σₘₒ Σₒₒ⁻¹ (xₒ − μₒ), covariance Σₘₘ − Σₘₒ Σₒₒ⁻¹ Σₒₘ, as a
        Gaussian("full"); the other columns in increasing order.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("full")
          >>> family, p = g.condition(g.make_params(np.zeros((1, 2)), np.array([[[2.0, 1.0], [1.0, 2.0]]])), [1], [2.0])
          >>> np.asarray(p.means).round(6).tolist(), np.asarray(p.covariances).round(6).tolist()
          ([[1.0]], [[[1.5]]])
        """
        means = np.asarray(params.means, np.float64)
        d = means.shape[1]
        cov = _full_covariances(params)
        o = np.asarray(list(observed), np.intp)
        m = np.asarray([j for j in range(d) if j not in set(o.tolist())], np.intp)
        s_oo = cov[:, o[:, None], o[None, :]]
        s_mo = cov[:, m[:, None], o[None, :]]
        gain = np.swapaxes(np.linalg.solve(s_oo, np.swapaxes(s_mo, 1, 2)), 1, 2)  # Σₘₒ Σₒₒ⁻¹
        offset = np.asarray(values, np.float64)[None, :] - means[:, o]
        cond_means = means[:, m] + np.einsum("kij,kj->ki", gain, offset)
        cond_cov = cov[:, m[:, None], m[None, :]] - np.einsum("kij,klj->kil", gain, s_mo)
        cond_cov = 0.5 * (cond_cov + np.swapaxes(cond_cov, 1, 2))
        full = Gaussian("full", reg_covar=self.reg_covar)
        return full, full.make_params(cond_means.astype(np.asarray(params.means).dtype), cond_cov)

    def extent(self, params: GaussianParams) -> tuple[np.ndarray, np.ndarray]:
        """The means and the standard deviations of every column."""
        means = np.asarray(params.means, np.float64)
        covariances = np.asarray(params.covariances, np.float64)
        variances = np.diagonal(covariances, axis1=-2, axis2=-1) if covariances.ndim == 3 else covariances
        return means, np.sqrt(np.broadcast_to(variances.reshape(len(means), -1), means.shape))

    def parameter_table(self, params: GaussianParams, columns) -> list:
        """The means, then the standard deviations (square roots of the covariances' diagonals), per column.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical")
          >>> rows = g.parameter_table(g.make_params(np.array([[1.0, 2.0]]), np.array([4.0])), ["a", "b"])
          >>> [(label, values.tolist()) for label, values in rows]
          [('mean a', [1.0]), ('mean b', [2.0]), ('sd a', [2.0]), ('sd b', [2.0])]
        """
        means, sds = self.extent(params)
        rows = [(f"mean {c}", means[:, j]) for j, c in enumerate(columns)]
        return rows + [(f"sd {c}", sds[:, j]) for j, c in enumerate(columns)]


def _full_covariances(params: GaussianParams) -> np.ndarray:
    """(K, D, D) float64 covariances on the host, whatever the layout the parameters store."""
    d = np.shape(params.means)[1]
    covariances = np.asarray(params.covariances, np.float64)
    if covariances.ndim == 2:
        return covariances[:, :, None] * np.eye(d)
    if covariances.ndim == 1:
        return covariances[:, None, None] * np.eye(d)
    return covariances
