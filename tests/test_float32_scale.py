"""float32 at scale: 10⁶ rows, clusters far from the origin and of very different scales.

The data are made in float32 once; the float64 fit of the same values (cast
up) from the same warm start is the reference. Tolerances, with what was
measured when this test was written (docs/numerics.md):

* means within 0.01 σ per coordinate (the float32 spacing at 10⁴ is 0.001,
  a hundredth of the smallest σ = 0.1; measured 1.2e-3 σ);
* covariances within 10⁻³ of √(Σᵢᵢ Σⱼⱼ) per entry (measured 4e-6);
* weights within 10⁻⁶ (measured 1.5e-8);
* the final mean log-likelihood within 10⁻⁶ relative, every history entry
  within 10⁻⁵ relative (measured 1.6e-8 and 5.6e-6);
* no NaN, and a history that never falls by more than 10⁻⁶ relative.
"""

import jax
import numpy as np
import pytest

import mixtures as mx

N = 1_000_000
MEANS = np.array([[1e4, -2e4], [1.2e4, -2.1e4], [-3e4, 5e4]])
STDS = np.array([[0.1, 0.3], [100.0, 50.0], [1.0, 2.0]])  # σ spans three orders of magnitude
WEIGHTS = np.array([0.3, 0.5, 0.2])
MAX_ITER = 8


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(0)
    z = rng.choice(3, N, p=WEIGHTS)
    x = (MEANS[z] + rng.standard_normal((N, 2)) * STDS[z]).astype(np.float32)
    family = mx.Gaussian("full")
    covs = np.stack([np.diag((1.5 * s) ** 2) for s in STDS])
    out = {}
    for dtype in (np.float32, np.float64):
        start = mx.Mixture(np.full(3, 1 / 3, dtype), family.make_params((MEANS + 0.5 * STDS).astype(dtype), covs), family)
        out[dtype] = mx.fit(x.astype(dtype), family, 3, key=None, init=start, max_iter=MAX_ITER, tol=0.0)
    return out[np.float32], out[np.float64]


def test_the_fit_runs_in_float32(fits):
    f32, _ = fits
    assert f32.mixture.dtype == np.float32
    assert f32.history.dtype == np.float32 and f32.log_likelihood.dtype == np.float32
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(f32.mixture.params))


def test_float32_parameters_match_the_float64_fit(fits):
    f32, f64 = fits
    means64 = np.asarray(f64.mixture.params.means)
    covs64 = np.asarray(f64.mixture.params.covariances)
    sd = np.sqrt(np.diagonal(covs64, axis1=1, axis2=2))
    means32 = np.asarray(f32.mixture.params.means, np.float64)
    covs32 = np.asarray(f32.mixture.params.covariances, np.float64)
    assert np.all(np.isfinite(means32)) and np.all(np.isfinite(covs32))
    assert np.max(np.abs(means32 - means64) / sd) < 1e-2
    assert np.max(np.abs(covs32 - covs64) / (sd[:, :, None] * sd[:, None, :])) < 1e-3
    assert np.max(np.abs(np.asarray(f32.mixture.weights, np.float64) - np.asarray(f64.mixture.weights))) < 1e-6
    # the reference itself recovered the clusters
    np.testing.assert_allclose(sd, STDS, rtol=0.01)
    np.testing.assert_allclose(np.asarray(f64.mixture.weights), WEIGHTS, atol=3e-3)


def test_float32_log_likelihood_and_history(fits):
    f32, f64 = fits
    h32 = np.append(np.asarray(f32.history, np.float64), float(f32.log_likelihood))
    h64 = np.append(np.asarray(f64.history), float(f64.log_likelihood))
    assert int(f32.n_iter) == MAX_ITER and np.all(np.isfinite(h32))
    np.testing.assert_allclose(h32[-1], h64[-1], rtol=1e-6)
    np.testing.assert_allclose(h32, h64, rtol=1e-5)
    assert np.min(np.diff(h32)) >= -1e-6 * np.max(np.abs(h32))
