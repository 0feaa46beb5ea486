"""The Gaussian family's closed-form M-step equals the autodiff Newton M-step of its exponential-family form.

The Gaussian family is written with Cholesky factors for speed, not as an
``ExponentialFamily``; here the same distributions are written in
exponential-family form and the library's generic damped Newton solve must
land on the closed form. "tied" shares one covariance between components and
"identity" fixes it, so neither is a per-component exponential family; their
M-steps are checked against scikit-learn and NumPy elsewhere.
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixtures as mx
from tests.helpers import blobs


class Natural(NamedTuple):
    eta: jax.Array


@dataclasses.dataclass(frozen=True)
class FullGaussianExpFam(mx.ExponentialFamily):
    """N(μ, Σ) with T(x) = (x, vec(x xᵀ)), η = (Σ⁻¹μ, −½ vec(Σ⁻¹))."""

    d: int = 2

    def sufficient_stats(self, x):
        return jnp.concatenate([x, jnp.outer(x, x).reshape(-1)])

    def log_base_measure(self, x):
        return -0.5 * self.d * jnp.log(2 * jnp.pi)

    def _split(self, eta):
        h, j = eta[: self.d], eta[self.d :].reshape(self.d, self.d)
        return h, 0.5 * (j + j.T)

    def log_partition(self, eta):
        h, j = self._split(eta)
        chol = jnp.linalg.cholesky(-2.0 * j)  # NaN unless the precision −2J is positive definite
        y = jax.scipy.linalg.solve_triangular(chol, h, lower=True)
        value = 0.5 * y @ y - jnp.sum(jnp.log(jnp.diagonal(chol)))
        return jnp.where(jnp.all(jnp.isfinite(chol)), value, jnp.inf)

    def to_natural(self, params):
        return params.eta

    def from_natural(self, natural):
        return Natural(natural)

    def mean_and_covariance(self, eta):
        h, j = self._split(eta)
        cov = jnp.linalg.inv(-2.0 * j)
        return cov @ h, cov

    def sample(self, params, key):
        raise NotImplementedError

    def n_features(self, params):
        return self.d

    def n_free_parameters(self, n_components, n_features):
        return n_components * (n_features + n_features * (n_features + 1) // 2)


@dataclasses.dataclass(frozen=True)
class DiagGaussianExpFam(mx.ExponentialFamily):
    """Independent normal features: T(x) = (x, x²), η = (μ/σ², −1/2σ²)."""

    d: int = 2

    def sufficient_stats(self, x):
        return jnp.concatenate([x, x**2])

    def log_base_measure(self, x):
        return -0.5 * self.d * jnp.log(2 * jnp.pi)

    def log_partition(self, eta):
        h, j = eta[: self.d], eta[self.d :]
        return jnp.sum(-(h**2) / (4 * j) - 0.5 * jnp.log(-2 * j))

    def to_natural(self, params):
        return params.eta

    def from_natural(self, natural):
        return Natural(natural)

    def mean_and_covariance(self, eta):
        h, j = eta[: self.d], eta[self.d :]
        var = -0.5 / j
        return h * var, var

    def sample(self, params, key):
        raise NotImplementedError

    def n_features(self, params):
        return self.d

    def n_free_parameters(self, n_components, n_features):
        return 2 * n_components * n_features


X = blobs(1, 300, means=[[0, 0], [4, 1], [1, 5]], scales=[1.0, 0.6, 1.4])[0]


@pytest.mark.parametrize("covariance, expfam", [("full", FullGaussianExpFam()), ("diag", DiagGaussianExpFam())])
def test_closed_form_m_step_equals_newton(covariance, expfam):
    family = mx.Gaussian(covariance, reg_covar=0.0)
    start = mx.fit(X, family, 3, key=jax.random.key(0), max_iter=2).mixture
    resp = np.random.default_rng(0).dirichlet(np.ones(3), size=len(X))
    closed = family.m_step(family.accumulate(start.params, jnp.asarray(X), jnp.asarray(resp)), jnp.asarray(resp.sum(0)), start.params)

    # Newton from a deliberately poor start: unit covariances at the origin.
    d = X.shape[1]
    eta0 = np.concatenate([np.zeros(d), -0.5 * (np.eye(d).reshape(-1) if covariance == "full" else np.ones(d))])
    stats = expfam.accumulate(None, jnp.asarray(X), jnp.asarray(resp))
    previous = Natural(jnp.asarray(np.tile(eta0, (3, 1))))
    newton = expfam.m_step(stats, jnp.asarray(resp.sum(0)), previous)
    for k in range(3):
        mean, cov = expfam.mean_and_covariance(newton.eta[k])
        np.testing.assert_allclose(mean, closed.means[k], rtol=1e-6)
        np.testing.assert_allclose(cov, closed.covariances[k], rtol=1e-6)
    # Both maximise the same expected log-likelihood: the densities agree too.
    ours = family.log_prob_components(closed, jnp.asarray(X))
    theirs = expfam.log_prob_components(newton, jnp.asarray(X))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
