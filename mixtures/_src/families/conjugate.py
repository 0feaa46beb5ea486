"""Variational Bayes for any exponential family whose conjugate prior has a known normaliser.

The conjugate prior of p(x | η) = h(x) exp(⟨η, T(x)⟩ − A(η)) is
q(η) ∝ exp(⟨η, τ⟩ − ν A(η)) with normaliser Z(τ, ν) = ∫ exp(⟨η, τ⟩ − ν A(η)) dη
(Lebesgue measure on η). In the pseudo-count form of
:class:`~mixtures.priors.ConjugatePrior`, ν = a and τ = a μ₀. Everything
variational Bayes needs follows from log Z by autodiff:

* E_q[η] = ∂ log Z / ∂τ and E_q[A(η)] = −∂ log Z / ∂ν;
* E_q[log p(x | η)] = log h(x) + ⟨E_q[η], T(x)⟩ − E_q[A(η)]
  = log p(x | η̃) + A(η̃) − E_q[A(η)] with η̃ = E_q[η]: the ordinary
  log-density at η̃ plus a per-component offset;
* the posterior given statistics (Nₖ, Sₖ) is (τ + Sₖ, ν + Nₖ);
* KL(q ‖ p) = ⟨τ_q − τ_p, E_q[η]⟩ − (ν_q − ν_p) E_q[A(η)] − log Z_q + log Z_p;
* the posterior predictive density is h(x) Z(τ + T(x), ν + 1) / Z(τ, ν);
* the posterior mean of the mean parameters E_q[∇A(η)] is τ / ν.

A family states log Z in :meth:`~mixtures.ExponentialFamily.log_conjugate_normalizer`;
these functions do the rest.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from mixtures._src.core.priors import ConjugatePrior

__all__ = ["expected_params", "posterior_kl", "posterior_mean", "posterior_update", "predictive_log_prob"]

_HI = lax.Precision.HIGHEST


def _natural_form(posterior: ConjugatePrior):
    """(τ, ν) of a pseudo-count posterior or prior: τ = a μ, ν = a (any leading axes)."""
    a = posterior.pseudo_count
    return a[..., None] * posterior.mean, a


def _expectations(family, tau, nu):
    """E_q[η] (M,) and E_q[A(η)] of one component's q(η) ∝ exp(⟨η, τ⟩ − ν A(η))."""
    d_tau, d_nu = jax.grad(family.log_conjugate_normalizer, argnums=(0, 1))(tau, nu)
    return d_tau, -d_nu


def posterior_update(family, stats, counts, prior: ConjugatePrior) -> ConjugatePrior:
    """The posterior (a + Nₖ, (a μ₀ + Sₖ) / (a + Nₖ)) of every component; leading axis K."""
    del family
    a = prior.pseudo_count
    total = counts + a
    return ConjugatePrior(total, (stats.sum_t + a * prior.mean[None, :]) / total[:, None])


def expected_params(family, posterior: ConjugatePrior):
    """Parameters at η̃ₖ = E_q[ηₖ] and the offsets A(η̃ₖ) − E_q[A(ηₖ)], (K,)."""
    tau, nu = _natural_form(posterior)
    eta, mean_a = jax.vmap(lambda t, n: _expectations(family, t, n))(tau, nu)
    offsets = jax.vmap(family.log_partition)(eta) - mean_a
    return jax.vmap(family.from_natural)(eta), offsets


def posterior_kl(family, posterior: ConjugatePrior, prior: ConjugatePrior):
    """Σₖ KL(qₖ ‖ p), from log Z and its gradient; a scalar."""
    tau_q, nu_q = _natural_form(posterior)
    tau_p, nu_p = _natural_form(prior)
    eta, mean_a = jax.vmap(lambda t, n: _expectations(family, t, n))(tau_q, nu_q)
    log_z_q = jax.vmap(family.log_conjugate_normalizer)(tau_q, nu_q)
    log_z_p = family.log_conjugate_normalizer(tau_p, nu_p)
    per = jnp.sum((tau_q - tau_p[None, :]) * eta, axis=-1) - (nu_q - nu_p) * mean_a - log_z_q + log_z_p
    return jnp.sum(per)


def posterior_mean(family, posterior: ConjugatePrior):
    """The parameters whose mean parameters are E_q[∇A(η)] = τ / ν, the posterior ``mean``."""
    eta, _ = jax.vmap(lambda t, n: _expectations(family, t, n))(*_natural_form(posterior))
    start = jax.vmap(family.from_natural)(eta)
    return jax.vmap(family.params_from_mean)(posterior.mean, start)


def predictive_log_prob(family, posterior: ConjugatePrior, x):
    """(B, K) log h(xₙ) + log Z(τₖ + T(xₙ), νₖ + 1) − log Z(τₖ, νₖ)."""
    tau, nu = _natural_form(posterior)
    t = jax.vmap(family.sufficient_stats)(x)  # (B, M)
    base = jax.vmap(family.log_base_measure)(x)  # (B,)
    log_z = jax.vmap(family.log_conjugate_normalizer)(tau, nu)  # (K,)

    def one(t_row):
        return jax.vmap(family.log_conjugate_normalizer)(tau + t_row[None, :], nu + 1.0)

    return base[:, None] + jax.vmap(one)(t) - log_z[None, :]
