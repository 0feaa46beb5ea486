"""Variational Bayes for Gaussian components: the normal–Wishart posterior and its expectations.

The prior is the one MAP-EM uses (:class:`~mixtures.priors.GaussianPrior`,
normal–inverse-Wishart on (μ, Σ), i.e. normal–Wishart on (μ, Λ = Σ⁻¹)), and
the posterior is of the same type with a leading component axis:
μₖ | Λₖ ~ N(mₖ, (βₖ Λₖ)⁻¹), Λₖ ~ Wishart(νₖ, Ψₖ⁻¹), with βₖ = κ₀ + Nₖ,
mₖ the posterior mean and Ψₖ = Ψ₀ + Sₖ (Sₖ the scatter about mₖ with the
prior's term, :meth:`~mixtures.Gaussian.posterior_scatter`, plus
Nₖ·``reg_covar`` on its diagonal as scikit-learn adds).

The precision's posterior by covariance model (p its Wishart dimension):

* "full" (VVV): Wishart of dimension D per component, νₖ = ν₀ + Nₖ;
  "tied" (EEE): one for all components, ν = ν₀ + Σₖ Nₖ, Ψ = Ψ₀ + Σₖ Sₖ.
* "diag" (VVI): a gamma(νₖ/2, Ψₖⱼ/2) per feature (p = 1), νₖ = ν₀ + Nₖ;
  EEI: one per feature for all components.
* "spherical" (VII): one gamma(νₖ/2, Ψₖ/2) on the precision, νₖ = ν₀ + D Nₖ,
  Ψₖ = Ψ₀ + tr Sₖ; EII: one for all components.
* "identity": the precision is fixed at I; only the means have a posterior.

mclust's other models constrain the covariance's shape or orientation across
components and have no conjugate prior; they are refused.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import digamma, multigammaln

from mixtures._src.families.gaussian.params import GaussianParams, precision_cholesky
from mixtures._src.families.gaussian.prior import GaussianPrior

__all__ = [
    "MODELS", "data_moments", "expected_params", "posterior_kl", "posterior_update", "predictive_log_prob",
    "proper_covariance",
]

_HI = lax.Precision.HIGHEST

MODELS = ("VVV", "EEE", "VVI", "EEI", "VII", "EII", "identity")
"""The covariance models with a conjugate (normal–Wishart or normal–gamma) posterior."""

SHARED = ("EEE", "EEI", "EII")


def data_moments(x, sample_weight, reg_covar: float):
    """The (weighted) mean and covariance of rows ``x`` (host, float64), divided by Σw − 1 and made proper.

    The data-driven prior's moments, as scikit-learn's ``BayesianGaussianMixture``
    takes them (``np.cov``), with :func:`proper_covariance` applied.
    """
    host = np.asarray(x, np.float64)
    w = np.ones(host.shape[0]) if sample_weight is None else np.asarray(sample_weight, np.float64)
    total = np.sum(w)
    mean = w @ host / total
    centred = host - mean[None, :]
    return mean, proper_covariance((centred * w[:, None]).T @ centred / max(total - 1.0, 1e-12), reg_covar)


def proper_covariance(cov, reg_covar: float):
    """A data covariance (host, float64) made positive definite for a prior: ``cov`` itself when it is.

    Otherwise ``cov`` plus ε I, ε the larger of ``reg_covar`` and 10⁻⁶ of
    the mean variance (10⁻⁶ if that is 0).
    """
    cov = np.asarray(cov, np.float64)
    try:
        np.linalg.cholesky(cov)
        if np.all(np.diagonal(cov) > 0):
            return cov
    except np.linalg.LinAlgError:
        pass
    mean_var = float(np.mean(np.diagonal(cov)))
    eps = max(reg_covar, 1e-6 * mean_var if mean_var > 0 else 1e-6)
    return cov + eps * np.eye(cov.shape[0])


def _precision_dim(family, d: int) -> int:
    """p: the dimension of each Wishart factor of the precision (1 for a gamma)."""
    return d if family.layout == "full" else 1


def posterior_update(family, stats, counts, frame: GaussianParams, prior: GaussianPrior) -> GaussianPrior:
    """The normal–Wishart posterior of every component (leading axis K) from the statistics."""
    k, d = frame.means.shape
    means, scatter = family.posterior_scatter(stats, counts, frame, prior)
    beta = counts + prior.shrinkage
    model = family.model
    if model == "identity":
        return GaussianPrior(means, beta, jnp.broadcast_to(prior.dof, (k,)), jnp.broadcast_to(prior.scale, (k,)))
    reg = family.reg_covar * counts
    if family.layout == "full":
        scatter = scatter + reg[:, None, None] * jnp.eye(d, dtype=scatter.dtype)[None]
    else:
        scatter = scatter + reg[:, None]
    if family.layout == "spherical":
        scatter = jnp.sum(scatter, axis=-1)  # the trace
        grown = d * counts
    else:
        grown = counts
    if model in SHARED:
        dof = jnp.broadcast_to(prior.dof + jnp.sum(grown), (k,))
        scale = jnp.broadcast_to(prior.scale + jnp.sum(scatter, axis=0), scatter.shape)
    else:
        dof = prior.dof + grown
        scale = prior.scale[None] + scatter
    return GaussianPrior(means, beta, dof, scale)


def _precision_factor(family, posterior: GaussianPrior):
    """U with U Uᵀ = E_q[Λ] = ν Ψ⁻¹, in the family's layout (ones for "identity")."""
    dof, scale = posterior.dof, posterior.scale
    if family.model == "identity":
        return jnp.ones_like(dof)
    if family.layout == "full":
        return precision_cholesky(scale / dof[:, None, None])
    if family.layout == "diag":
        return jnp.sqrt(dof[:, None] / scale)
    return jnp.sqrt(dof / scale)


def _log_det_precision_factor(family, u, d: int):
    """log|U| per component (the sum over D dimensions: U's diagonal, or a scale repeated D times)."""
    if family.layout == "full":
        return jnp.sum(jnp.log(jnp.diagonal(u, axis1=-2, axis2=-1)), axis=-1)
    if family.layout == "diag":
        return jnp.sum(jnp.log(u), axis=-1)
    return d * jnp.log(u)


def _digamma_sum(dof, p: int):
    """Σᵢ₌₁ᵖ ψ((ν + 1 − i)/2), per component (for p = 1, elementwise over any shape)."""
    if p == 1:
        return digamma(dof / 2.0)
    i = jnp.arange(1, p + 1, dtype=dof.dtype)
    return jnp.sum(digamma((dof[:, None] + 1.0 - i[None, :]) / 2.0), axis=-1)


def expected_params(family, posterior: GaussianPrior):
    """Means mₖ and precision E_q[Λₖ], with offsets ½ (E_q log|Λₖ| − log|E_q Λₖ|) − D / (2βₖ)."""
    means = posterior.mean
    d = means.shape[-1]
    u = _precision_factor(family, posterior)
    offsets = -0.5 * d / posterior.shrinkage
    if family.model != "identity":
        p = _precision_dim(family, d)
        dof = posterior.dof
        per_factor = _digamma_sum(dof, p) + p * (math.log(2.0) - jnp.log(dof))
        offsets = offsets + 0.5 * (d // p) * per_factor
    return GaussianParams(means, u), offsets


def _wishart_kl(dof, log_det_scale, trace_term, prior_dof, prior_log_det, p: int):
    """KL(Wishart(ν, Ψ⁻¹) ‖ Wishart(ν₀, Ψ₀⁻¹)) of dimension p; ``trace_term`` is tr(Ψ₀ Ψ⁻¹)."""
    return (
        0.5 * (dof - prior_dof) * _digamma_sum(dof, p)
        + 0.5 * prior_dof * (log_det_scale - prior_log_det)
        + 0.5 * dof * (trace_term - p)
        - multigammaln(0.5 * dof, p)
        + multigammaln(0.5 * prior_dof, p)
    )


def posterior_kl(family, posterior: GaussianPrior, prior: GaussianPrior):
    """KL(q ‖ p) of the means and precisions, summed over components (a shared precision counted once)."""
    means, beta, dof = posterior.mean, posterior.shrinkage, posterior.dof
    k, d = means.shape
    beta0 = prior.shrinkage
    u = _precision_factor(family, posterior)
    diff = means - prior.mean[None, :]
    model = family.model
    # E_q[(m − μ₀)ᵀ Λ (m − μ₀)] with E_q[Λ] = U Uᵀ.
    if model == "identity":
        quad = jnp.sum(diff**2, axis=-1)
    elif family.layout == "full":
        quad = jnp.sum(jnp.einsum("kd,kde->ke", diff, u, precision=_HI) ** 2, axis=-1)
    elif family.layout == "diag":
        quad = jnp.sum((diff * u) ** 2, axis=-1)
    else:
        quad = jnp.sum(diff**2, axis=-1) * u**2
    normal = 0.5 * (d * beta0 / beta - d + d * jnp.log(beta / beta0) + beta0 * quad)
    if model == "identity":
        return jnp.sum(normal)
    p = _precision_dim(family, d)
    if family.layout == "full":
        # log|Ψ| = D log ν − 2 log|U|; tr(Ψ₀ Ψ⁻¹) = tr(Uᵀ Ψ₀ U) / ν.
        log_det = d * jnp.log(dof) - 2.0 * _log_det_precision_factor(family, u, d)
        trace = jnp.einsum("de,kdf,kef->k", prior.scale, u, u, precision=_HI) / dof
        prior_log_det = jnp.linalg.slogdet(prior.scale)[1]
        wishart = _wishart_kl(dof, log_det, trace, prior.dof, prior_log_det, p)
    elif family.layout == "diag":
        scale, nu = posterior.scale, dof[:, None]
        per = _wishart_kl(
            nu, jnp.log(scale), prior.scale[None, :] / scale, prior.dof, jnp.log(prior.scale)[None, :], 1
        )
        wishart = jnp.sum(per, axis=-1)
    else:
        scale = posterior.scale
        wishart = _wishart_kl(dof, jnp.log(scale), prior.scale / scale, prior.dof, jnp.log(prior.scale), 1)
    once = wishart[0] if model in SHARED else jnp.sum(wishart)
    return jnp.sum(normal) + once


def predictive_log_prob(family, posterior: GaussianPrior, x):
    """(B, K) log posterior-predictive densities: Student-t (a product of 1-D ones for "diag")."""
    means, beta, dof = posterior.mean, posterior.shrinkage, posterior.dof
    d = means.shape[-1]
    u = _precision_factor(family, posterior)
    diff = x[:, None, :] - means[None, :, :]  # (B, K, D)
    if family.model == "identity":
        var = 1.0 + 1.0 / beta
        sq = jnp.sum(diff**2, axis=-1)
        return -0.5 * (d * jnp.log(2 * math.pi * var)[None, :] + sq / var[None, :])
    p = _precision_dim(family, d)
    t_dof = dof - p + 1.0
    # Scale⁻¹ of the t: E_q[Λ] βₖ (ν − p + 1) / (ν (βₖ + 1)).
    c = beta * t_dof / (dof * (beta + 1.0))
    if family.layout == "diag":
        z = diff * u[None, :, :]
        per = (
            lax.lgamma((t_dof + 1.0) / 2.0)[None, :, None]
            - lax.lgamma(t_dof / 2.0)[None, :, None]
            - 0.5 * jnp.log(t_dof * math.pi)[None, :, None]
            + jnp.log(u)[None, :, :]
            + 0.5 * jnp.log(c)[None, :, None]
            - ((t_dof + 1.0) / 2.0)[None, :, None] * jnp.log1p(c[None, :, None] * z**2 / t_dof[None, :, None])
        )
        return jnp.sum(per, axis=-1)
    if family.layout == "full":
        sq = jnp.sum(jnp.einsum("bkd,kde->bke", diff, u, precision=_HI) ** 2, axis=-1)
    else:
        sq = jnp.sum(diff**2, axis=-1) * (u**2)[None, :]
    log_det = _log_det_precision_factor(family, u, d) + 0.5 * d * jnp.log(c)  # log|Scale|^(−½)
    head = (
        lax.lgamma((t_dof + d) / 2.0) - lax.lgamma(t_dof / 2.0) - 0.5 * d * jnp.log(t_dof * math.pi) + log_det
    )
    return head[None, :] - ((t_dof + d) / 2.0)[None, :] * jnp.log1p(c[None, :] * sq / t_dof[None, :])
